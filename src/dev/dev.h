/*
 * The PC's devices, built in one table (dev.c) so the order is visible in
 * one place. Each device file registers its ports or MMIO range on the bus
 * and raises interrupts through irq_set(); none knows which engine runs.
 */
#ifndef RING3_DEV_DEV_H
#define RING3_DEV_DEV_H

struct vm;

/* Fixed I/O ports the boot tables (FADT, MP tables) also name. */
#define DEBUGEXIT_PORT 0xf4
#define ACPI_PM_BASE 0x600
#define ACPI_PM_LEN 0x0c
#define ACPI_PM1A_EVT 0x600 /* 4 bytes: status, enable */
#define ACPI_PM1A_CNT 0x604 /* 2 bytes */
#define ACPI_PM_TMR 0x608   /* 4 bytes, 32-bit (TMR_VAL_EXT) */
#define ACPI_RESET_PORT 0xcf9
#define ACPI_RESET_VALUE 0x06
#define ACPI_S5_SLP_TYP 5   /* the DSDT's \_S5 package must say the same */
#define ACPI_SCI_IRQ 9

int dev_init_all(struct vm *vm);
void dev_destroy_all(struct vm *vm);

int serial8250_init(struct vm *vm);
int i8042_init(struct vm *vm);
int rtc_init(struct vm *vm);
int debugexit_init(struct vm *vm);
int acpipm_init(struct vm *vm);
int pic_init(struct vm *vm);
int pit_init(struct vm *vm);
void serial8250_destroy(struct vm *vm);

#endif
