/*
 * ACPI tables for ring3's PC (ACPI 6.4 §5.2): how the guest learns its CPUs
 * (MADT), its power-management ports (FADT) and how to power off (DSDT \_S5).
 */
#ifndef RING3_BOOT_ACPI_H
#define RING3_BOOT_ACPI_H

#include <stdint.h>

struct vm;

/*
 * The tables live in the BIOS area, where Linux also searches for the RSDP
 * (ACPI 6.4 §5.2.5.1: 0xE0000-0xFFFFF on 16-byte boundaries).
 */
#define ACPI_AREA_START 0xe0000u
#define ACPI_AREA_SIZE 0x1000u

/* Writes RSDP, XSDT, FADT, FACS, MADT and DSDT; *rsdp is the RSDP's address. */
int acpi_build(struct vm *vm, uint64_t *rsdp);

#endif
