/*
 * PCI bus 0 as the firmware leaves it for an engine without MSI (the bt
 * engine: 8259 only): devices offer no MSI-X capability, the Interrupt Line
 * register names their INTx IRQ, and the DSDT's _PRT (ACPI 6.4 §6.2.13) says
 * the same for every slot.
 */
#include <string.h>

#include "core/vm.h"
#include "dev/pci.h"
#include "tap.h"

#include "fake_vm.h"

static int msi_fired;
static int fake_msi(struct vm *v, uint64_t addr, uint32_t data)
{
	(void)v, (void)addr, (void)data;
	msi_fired++;
	return 0;
}
static const struct cpu_engine msi_engine = { .name = "msi", .irq_line = fake_irq_line,
					      .msi = fake_msi };

/* The capability with this ID in d's list (PCI 3.0 §6.7), or 0. */
static unsigned find_cap(unsigned slot, uint8_t id)
{
	unsigned off, n = 0;

	if (!(pci_conf_read(&vm, slot, 0x06, 2) & 0x10)) /* Status: Capabilities List */
		return 0;
	for (off = pci_conf_read(&vm, slot, 0x34, 1); off && n < 48; n++) {
		if (pci_conf_read(&vm, slot, off, 1) == id)
			return off;
		off = pci_conf_read(&vm, slot, off + 1, 1);
	}
	return 0;
}

static void test_msix(const struct cpu_engine *e, bool want)
{
	struct pci_dev *d;
	uint8_t body[2] = { 0 };

	memset(&vm, 0, sizeof(vm));
	vm.engine = e;
	ok(pci_init(&vm) == 0, "%s engine: pci_init", e->name);
	d = pci_dev_new(&vm, 0x1af4, 0x1042, 0x010000, 1, 0x1af4, 0x40);
	ok(d && d->slot == 1, "%s engine: a device in slot 1", e->name);
	if (!d)
		return;
	ok(pci_cap_add(d, 0x09, body, sizeof(body)) != 0, "a vendor capability first");
	is_int(pci_msix_init(d, 3, 0, 0x4000, 0x5000), 0, "%s engine: pci_msix_init succeeds",
	       e->name);
	ok((find_cap(1, 0x11) != 0) == want && (d->msix != NULL) == want,
	   "%s engine: the MSI-X capability is %s", e->name, want ? "offered" : "not offered");
	ok(find_cap(1, 0x09) != 0, "%s engine: the other capability is still in the list", e->name);
	is_int(pci_conf_read(&vm, 1, 0x3c, 1), 10, "Interrupt Line of slot 1 is IRQ 10");
	is_int(pci_conf_read(&vm, 1, 0x3d, 1), 1, "Interrupt Pin is INTA#");
	pci_msix_notify(d, 0); /* harmless without a table */
	pci_destroy(&vm);
}

/* Walk the AML of the PCI root: Device (PCI0) { … Name (_PRT, Package { … }) }. */
static void test_prt(void)
{
	uint8_t aml[1024];
	size_t n = pci_dsdt_aml(aml, sizeof(aml)), len, i, pl;
	const uint8_t *p = NULL;

	ok(n > 0 && aml[0] == 0x5b && aml[1] == 0x82, "pci_dsdt_aml gives a DeviceOp");
	/* the Device's PkgLength (two bytes here) covers everything after the opcode */
	len = (aml[2] & 0xf) | (size_t)aml[3] << 4;
	is_int(len + 2, n, "the Device's PkgLength spans the bytes written");
	ok(memcmp(aml + 4, "PCI0", 4) == 0, "named PCI0");
	for (i = 0; i + 5 < n; i++)
		if (!memcmp(aml + i, "\x08_PRT\x12", 6)) {
			p = aml + i + 6;
			break;
		}
	ok(p != NULL, "the root has a Name (_PRT, Package …)");
	if (!p)
		return;
	pl = (p[0] & 0xf) | (size_t)p[1] << 4;
	is_int(p[2], PCI_SLOTS - 1, "one entry per slot 1-31");
	is_int(pl, 2 + 1 + 12 * (PCI_SLOTS - 1), "its PkgLength counts itself, the count and the entries");
	ok(p + pl <= aml + n, "the package ends inside the Device");
	p += 3;
	/* the IRQ of each slot's INTA# is what the Interrupt Line register says */
	memset(&vm, 0, sizeof(vm));
	vm.engine = &fake_engine;
	pci_init(&vm);
	bool all = true;
	for (unsigned s = 1; s < PCI_SLOTS; s++, p += 12) {
		uint32_t addr = p[4] | p[5] << 8 | p[6] << 16 | (uint32_t)p[7] << 24;
		struct pci_dev *d = pci_dev_new(&vm, 0x1af4, 0x1041, 0x020000, 1, 0x1af4, 0x40);

		all = all && d && p[0] == 0x12 && p[1] == 11 && p[2] == 4 && p[3] == 0x0c &&
		      addr == (s << 16 | 0xffff) && p[8] == 0 && p[9] == 0 && p[10] == 0x0a &&
		      p[11] == pci_conf_read(&vm, s, 0x3c, 1);
	}
	ok(all, "every entry: Package { slot << 16 | 0xffff, INTA#, Zero, the Interrupt Line's IRQ }");
	pci_destroy(&vm);
}

int main(void)
{
	test_msix(&fake_engine, false);
	test_msix(&msi_engine, true);
	test_prt();
	return done_testing();
}
