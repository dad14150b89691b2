/*
 * ACPI tables (ACPI 6.4 §5.2): RSDP (§5.2.5), XSDT (§5.2.8), FADT (§5.2.9),
 * FACS (§5.2.10), MADT (§5.2.12) and a hand-assembled DSDT (§5.2.11.1, AML
 * §20) holding only \_S5, so that Linux can power off through PM1a_CNT.
 * Debian's kernel has no MP-table parser: without a MADT it sees one CPU.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "../core/log.h"
#include "../core/vm.h"
#include "../dev/dev.h"
#include "../dev/pci.h"
#include "acpi.h"

#define OEM_ID "RING3 "
#define OEM_TABLE_ID "RING3VM "

struct __attribute__((packed)) acpi_header { /* §5.2.6 */
	char signature[4];
	uint32_t length;
	uint8_t revision, checksum;
	char oem_id[6], oem_table_id[8];
	uint32_t oem_revision;
	char creator_id[4];
	uint32_t creator_revision;
};

struct __attribute__((packed)) acpi_rsdp { /* §5.2.5.3 */
	char signature[8];
	uint8_t checksum;
	char oem_id[6];
	uint8_t revision;
	uint32_t rsdt_address, length;
	uint64_t xsdt_address;
	uint8_t extended_checksum, reserved[3];
};

struct __attribute__((packed)) acpi_gas { /* §5.2.3.2 Generic Address Structure */
	uint8_t space_id, bit_width, bit_offset, access_size;
	uint64_t address;
};

#define GAS_SYSTEM_IO 1
#define GAS_ACCESS_BYTE 1

struct __attribute__((packed)) acpi_fadt { /* §5.2.9, Table 5.9: 276 bytes */
	struct acpi_header h;
	uint32_t firmware_ctrl, dsdt;
	uint8_t reserved0, preferred_pm_profile;
	uint16_t sci_int;
	uint32_t smi_cmd;
	uint8_t acpi_enable, acpi_disable, s4bios_req, pstate_cnt;
	uint32_t pm1a_evt_blk, pm1b_evt_blk, pm1a_cnt_blk, pm1b_cnt_blk, pm2_cnt_blk, pm_tmr_blk;
	uint32_t gpe0_blk, gpe1_blk;
	uint8_t pm1_evt_len, pm1_cnt_len, pm2_cnt_len, pm_tmr_len, gpe0_blk_len, gpe1_blk_len;
	uint8_t gpe1_base, cst_cnt;
	uint16_t p_lvl2_lat, p_lvl3_lat, flush_size, flush_stride;
	uint8_t duty_offset, duty_width, day_alrm, mon_alrm, century;
	uint16_t iapc_boot_arch;
	uint8_t reserved1;
	uint32_t flags;
	struct acpi_gas reset_reg;
	uint8_t reset_value;
	uint16_t arm_boot_arch;
	uint8_t minor_version;
	uint64_t x_firmware_ctrl, x_dsdt;
	struct acpi_gas x_pm1a_evt_blk, x_pm1b_evt_blk, x_pm1a_cnt_blk, x_pm1b_cnt_blk;
	struct acpi_gas x_pm2_cnt_blk, x_pm_tmr_blk, x_gpe0_blk, x_gpe1_blk;
	struct acpi_gas sleep_control_reg, sleep_status_reg;
	uint64_t hypervisor_vendor_id;
};

/* FADT fixed feature flags (Table 5.10) */
#define FADT_WBINVD (1u << 0)
#define FADT_PROC_C1 (1u << 2)
#define FADT_PWR_BUTTON (1u << 4) /* set: no fixed-feature power button */
#define FADT_SLP_BUTTON (1u << 5) /* set: no fixed-feature sleep button */
#define FADT_FIX_RTC (1u << 6)
#define FADT_TMR_VAL_EXT (1u << 8)
#define FADT_RESET_REG_SUP (1u << 10)
/* IA-PC boot architecture flags (Table 5.11). No 8042 bit: Linux then skips
 * probing for a keyboard; its reboot path still pokes port 0x64 directly. */
#define IAPC_VGA_NOT_PRESENT (1u << 2)

struct __attribute__((packed)) acpi_facs { /* §5.2.10: no checksum */
	char signature[4];
	uint32_t length, hardware_signature, firmware_waking_vector, global_lock, flags;
	uint64_t x_firmware_waking_vector;
	uint8_t version, reserved[3];
	uint32_t ospm_flags;
	uint8_t reserved2[24];
};

/* MADT (§5.2.12) and its interrupt controller structures */
struct __attribute__((packed)) madt_lapic { /* type 0 */
	uint8_t type, length, uid, apic_id;
	uint32_t flags;
};
struct __attribute__((packed)) madt_ioapic { /* type 1 */
	uint8_t type, length, id, reserved;
	uint32_t address, gsi_base;
};
struct __attribute__((packed)) madt_iso { /* type 2: interrupt source override */
	uint8_t type, length, bus, source;
	uint32_t gsi;
	uint16_t flags;
};
struct __attribute__((packed)) madt_lapic_nmi { /* type 4 */
	uint8_t type, length, uid;
	uint16_t flags;
	uint8_t lint;
};

_Static_assert(sizeof(struct acpi_rsdp) == 36, "RSDP layout");
_Static_assert(sizeof(struct acpi_fadt) == 276, "FADT layout");
_Static_assert(sizeof(struct acpi_facs) == 64, "FACS layout");

#define MADT_PCAT_COMPAT 1u /* the 8259 pair is present too */
#define MADT_LAPIC_ENABLED 1u
#define LAPIC_ADDR 0xfee00000u
#define IOAPIC_ADDR 0xfec00000u
#define ISO_ACTIVE_HIGH 0x1u
#define ISO_LEVEL (0x3u << 2)

static uint8_t checksum(const void *p, size_t len)
{
	const uint8_t *b = p;
	uint8_t sum = 0;

	while (len--)
		sum += *b++;
	return (uint8_t)-sum;
}

static void header(void *table, const char *sig, uint32_t len, uint8_t rev)
{
	struct acpi_header *h = table;

	memcpy(h->signature, sig, 4);
	h->length = len;
	h->revision = rev;
	memcpy(h->oem_id, OEM_ID, 6);
	memcpy(h->oem_table_id, OEM_TABLE_ID, 8);
	h->oem_revision = 1;
	memcpy(h->creator_id, "RNG3", 4);
	h->creator_revision = 1;
	h->checksum = 0;
	h->checksum = checksum(table, len);
}

/* Bump allocation inside the ACPI area, 64-byte aligned (the FACS needs it). */
struct area {
	uint8_t *host;
	uint32_t used;
};

static uint32_t alloc(struct area *a, uint32_t len)
{
	uint32_t off = (a->used + 63) & ~63u;

	if (off > ACPI_AREA_SIZE || len > ACPI_AREA_SIZE - off)
		return 0;
	a->used = off + len;
	return ACPI_AREA_START + off;
}

#define AT(a, gpa) ((void *)((a)->host + ((gpa) - ACPI_AREA_START)))

/*
 * The DSDT's AML, by hand (ACPI 6.4 §20.2):
 *   Name (\_S5, Package (4) { SLP_TYPa, SLP_TYPb, 0, 0 })
 * NameOp 0x08, NameString "\_S5_", PackageOp 0x12 PkgLength NumElements,
 * then each element as BytePrefix 0x0A + byte.
 */
static size_t dsdt_aml(uint8_t *p)
{
	static const uint8_t s5[] = {
		0x08, '\\', '_', 'S', '5', '_',		 /* Name (\_S5, */
		0x12, 0x0a, 0x04,			 /* Package, PkgLength 10, 4 elements */
		0x0a, ACPI_S5_SLP_TYP, 0x0a, ACPI_S5_SLP_TYP, /* SLP_TYPa, SLP_TYPb */
		0x0a, 0x00, 0x0a, 0x00,			 /* reserved */
	};

	memcpy(p, s5, sizeof(s5));
	return sizeof(s5);
}

static void fadt_fill(struct acpi_fadt *f, uint32_t facs, uint32_t dsdt)
{
	memset(f, 0, sizeof(*f));
	f->x_firmware_ctrl = facs; /* the 32-bit fields stay 0 when these are set */
	f->x_dsdt = dsdt;
	f->sci_int = ACPI_SCI_IRQ;
	f->smi_cmd = 0; /* no SMM: the machine is always in ACPI mode (SCI_EN reads 1) */
	f->pm1a_evt_blk = ACPI_PM1A_EVT;
	f->pm1a_cnt_blk = ACPI_PM1A_CNT;
	f->pm_tmr_blk = ACPI_PM_TMR;
	f->pm1_evt_len = 4;
	f->pm1_cnt_len = 2;
	f->pm_tmr_len = 4;
	f->p_lvl2_lat = 101; /* > 100: no C2 */
	f->p_lvl3_lat = 1001; /* > 1000: no C3 */
	f->iapc_boot_arch = IAPC_VGA_NOT_PRESENT;
	f->flags = FADT_WBINVD | FADT_PROC_C1 | FADT_PWR_BUTTON | FADT_SLP_BUTTON | FADT_FIX_RTC |
		   FADT_TMR_VAL_EXT | FADT_RESET_REG_SUP;
	f->reset_reg = (struct acpi_gas){ .space_id = GAS_SYSTEM_IO, .bit_width = 8,
					  .access_size = GAS_ACCESS_BYTE,
					  .address = ACPI_RESET_PORT };
	f->reset_value = ACPI_RESET_VALUE;
	f->minor_version = 4;
	header(f, "FACP", sizeof(*f), 6);
}

/* One local APIC per vCPU (APIC ID = vCPU index), KVM's IOAPIC, and the ISA overrides. */
static uint32_t madt_fill(struct area *a, int cpus)
{
	uint32_t len = sizeof(struct acpi_header) + 8 + (uint32_t)cpus * sizeof(struct madt_lapic) +
		       sizeof(struct madt_ioapic) + 2 * sizeof(struct madt_iso) +
		       sizeof(struct madt_lapic_nmi);
	uint32_t gpa = alloc(a, len);
	uint8_t *t, *p;
	uint32_t v;

	if (!gpa)
		return 0;
	t = AT(a, gpa);
	p = t + sizeof(struct acpi_header);
	v = LAPIC_ADDR;
	memcpy(p, &v, 4);
	v = MADT_PCAT_COMPAT;
	memcpy(p + 4, &v, 4);
	p += 8;
	for (int i = 0; i < cpus; i++) {
		struct madt_lapic l = { 0, sizeof(l), (uint8_t)i, (uint8_t)i, MADT_LAPIC_ENABLED };

		memcpy(p, &l, sizeof(l));
		p += sizeof(l);
	}
	/* An IOAPIC ID apart from every APIC ID, so a 32-bit kernel keeps it. */
	struct madt_ioapic io = { 1, sizeof(io), (uint8_t)cpus, 0, IOAPIC_ADDR, 0 };
	memcpy(p, &io, sizeof(io));
	p += sizeof(io);
	/* ISA IRQ 0 (the PIT) is IOAPIC pin 2, as KVM's routing says (kvm.c). */
	struct madt_iso pit = { 2, sizeof(pit), 0, 0, 2, 0 };
	memcpy(p, &pit, sizeof(pit));
	p += sizeof(pit);
	/* The SCI is level-triggered, active high (as on PIIX4 and QEMU). */
	struct madt_iso sci = { 2, sizeof(sci), 0, ACPI_SCI_IRQ, ACPI_SCI_IRQ,
				ISO_ACTIVE_HIGH | ISO_LEVEL };
	memcpy(p, &sci, sizeof(sci));
	p += sizeof(sci);
	/* LINT1 of every processor (UID 0xFF) is the NMI input. */
	struct madt_lapic_nmi nmi = { 4, sizeof(nmi), 0xff, 0, 1 };
	memcpy(p, &nmi, sizeof(nmi));
	header(t, "APIC", len, 5);
	return gpa;
}

/*
 * Under an engine without an in-kernel irqchip there is no LAPIC or IOAPIC
 * to describe: the guest then gets no MADT and uses the 8259 alone, and one
 * CPU. FADT and DSDT (power-off, reset, PM timer) are the same for both.
 */
int acpi_build(struct vm *vm, uint64_t *rsdp_gpa)
{
	struct area a = { .host = mem_ptr(&vm->mem, ACPI_AREA_START, ACPI_AREA_SIZE) };
	bool apic = vm->engine->flags & ENGINE_IRQCHIP_IN_KERNEL;
	uint32_t rsdp, facs, xsdt, fadt, madt = 0, dsdt;
	uint32_t xsdt_len = sizeof(struct acpi_header) + (apic ? 16 : 8);
	struct acpi_rsdp *r;
	struct acpi_facs *fc;
	uint64_t e[2];
	size_t aml;

	if (!a.host) {
		log_msg("guest RAM does not cover the ACPI area at %#x", ACPI_AREA_START);
		return -ENOMEM;
	}
	memset(a.host, 0, ACPI_AREA_SIZE);
	rsdp = alloc(&a, sizeof(struct acpi_rsdp)); /* first: 16-byte aligned at 0xE0000 */
	facs = alloc(&a, sizeof(struct acpi_facs));
	xsdt = alloc(&a, xsdt_len);
	fadt = alloc(&a, sizeof(struct acpi_fadt));
	dsdt = alloc(&a, sizeof(struct acpi_header) + 64 + 640); /* \_S5, the PCI root */
	if (apic)
		madt = madt_fill(&a, vm->nr_vcpus);
	if (!rsdp || !facs || !xsdt || !fadt || !dsdt || (apic && !madt)) {
		log_msg("the ACPI tables for %d CPUs do not fit in %u bytes", vm->nr_vcpus,
			ACPI_AREA_SIZE);
		return -ENOSPC;
	}

	aml = dsdt_aml((uint8_t *)AT(&a, dsdt) + sizeof(struct acpi_header));
	aml += pci_dsdt_aml((uint8_t *)AT(&a, dsdt) + sizeof(struct acpi_header) + aml, 640);
	header(AT(&a, dsdt), "DSDT", (uint32_t)(sizeof(struct acpi_header) + aml), 2);

	fc = AT(&a, facs);
	memcpy(fc->signature, "FACS", 4);
	fc->length = sizeof(*fc);
	fc->version = 2;

	fadt_fill(AT(&a, fadt), facs, dsdt);

	e[0] = fadt;
	e[1] = madt;
	memcpy((uint8_t *)AT(&a, xsdt) + sizeof(struct acpi_header), e, xsdt_len - 36);
	header(AT(&a, xsdt), "XSDT", xsdt_len, 1);

	r = AT(&a, rsdp);
	memcpy(r->signature, "RSD PTR ", 8);
	memcpy(r->oem_id, OEM_ID, 6);
	r->revision = 2;
	r->length = sizeof(*r);
	r->xsdt_address = xsdt;
	r->checksum = checksum(r, 20); /* the ACPI 1.0 part */
	r->extended_checksum = checksum(r, sizeof(*r));
	*rsdp_gpa = rsdp;
	return 0;
}
