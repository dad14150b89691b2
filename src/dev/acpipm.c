/*
 * ACPI fixed hardware (ACPI 6.4 §4.8): the PM1a event and control blocks,
 * the PM timer, and the reset register the FADT points at (0xcf9, as the
 * PIIX/ICH reset control register). Writing SLP_TYP=S5 with SLP_EN powers
 * off, which ends ring3 with status 0.
 */
#include <string.h>
#include <time.h>

#include "../core/evloop.h"
#include "../core/log.h"
#include "../core/vm.h"
#include "dev.h"

#define PM1_CNT_SLP_TYP(v) (((v) >> 10) & 7)
#define PM1_CNT_SLP_EN (1u << 13)
#define PM1_CNT_SCI_EN 1u
#define PM_TIMER_HZ 3579545ull

static struct acpipm {
	struct vm *vm;
	uint16_t pm1_sts, pm1_en, pm1_cnt;
	uint64_t t0;
} pm;

static void acpipm_io(void *opaque, uint64_t off, uint8_t *data, unsigned size, bool is_write)
{
	uint32_t v = 0;

	if (is_write)
		memcpy(&v, data, size > 4 ? 4 : size);
	switch (off) {
	case 0: /* PM1a_STS: write 1 to clear; PM1a_EN above it */
		if (is_write) {
			pm.pm1_sts &= (uint16_t)~v;
			if (size == 4)
				pm.pm1_en = (uint16_t)(v >> 16);
		} else {
			v = pm.pm1_sts | (uint32_t)pm.pm1_en << 16;
		}
		break;
	case 2:
		if (is_write)
			pm.pm1_en = (uint16_t)v;
		else
			v = pm.pm1_en;
		break;
	case ACPI_PM1A_CNT - ACPI_PM_BASE:
		if (!is_write) {
			/* SCI_EN reads as set: ring3's machine is always in ACPI mode */
			v = pm.pm1_cnt | PM1_CNT_SCI_EN;
			break;
		}
		pm.pm1_cnt = (uint16_t)(v & ~PM1_CNT_SLP_EN);
		if (v & PM1_CNT_SLP_EN) {
			if (PM1_CNT_SLP_TYP(v) == ACPI_S5_SLP_TYP)
				vm_request_exit(pm.vm, 0, "guest powered off");
			else
				log_guest("acpi: sleep type %u is not supported", PM1_CNT_SLP_TYP(v));
		}
		break;
	case ACPI_PM_TMR - ACPI_PM_BASE:
		/* 24-bit by the spec, 32-bit with TMR_VAL_EXT (which the FADT sets) */
		v = (uint32_t)((clock_ns() - pm.t0) * PM_TIMER_HZ / 1000000000ull);
		break;
	default:
		break;
	}
	if (!is_write)
		memcpy(data, &v, size > 4 ? 4 : size);
}

static void reset_io(void *opaque, uint64_t off, uint8_t *data, unsigned size, bool is_write)
{
	/* Bit 2 starts the reset; bit 1 picks hard over soft: both end the VM. */
	if (is_write && (data[0] & 0x04))
		vm_request_exit(pm.vm, 0, "guest reset (port 0xcf9)");
	else if (!is_write)
		memset(data, 0, size);
}

int acpipm_init(struct vm *vm)
{
	int err;

	pm.vm = vm;
	pm.t0 = clock_ns();
	err = bus_register(&vm->pio, ACPI_PM_BASE, ACPI_PM_LEN, acpipm_io, &pm, "acpi-pm");
	if (!err)
		err = bus_register(&vm->pio, ACPI_RESET_PORT, 1, reset_io, &pm, "reset");
	return err;
}
