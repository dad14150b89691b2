/*
 * The devices of ring3's PC, in the order they are built. The 8259 PIC and
 * 8254 PIT come from ring3's own models only when the engine has none in the
 * kernel (the bt engine); under kvm they are KVM's.
 */
#include <string.h>

#include "../core/log.h"
#include "../core/vm.h"
#include "../pv/pv.h"
#include "dev.h"
#include "pic.h"
#include "pit.h"
#include "pci.h"
#include "virtio/virtio.h"

static const struct {
	const char *name;
	int (*init)(struct vm *vm);
	bool user_irqchip_only;
} devices[] = {
	{ "8259 PIC", pic_init, true },
	{ "8254 PIT", pit_init, true },
	{ "16550A UART (ttyS0)", serial8250_init, false },
	{ "i8042 keyboard controller", i8042_init, false },
	{ "MC146818 RTC/CMOS", rtc_init, false },
	{ "debug-exit port", debugexit_init, false },
	{ "ACPI PM registers", acpipm_init, false },
	{ "PCI host bridge", pci_init, false },
	{ "virtio devices", virtio_init_all, false },
	{ "pv hypercall timer", pv_init, false },
};

int dev_init_all(struct vm *vm)
{
	bool in_kernel = vm->engine->flags & ENGINE_IRQCHIP_IN_KERNEL;

	for (size_t i = 0; i < sizeof(devices) / sizeof(devices[0]); i++) {
		int err;

		if (devices[i].user_irqchip_only && in_kernel)
			continue;
		err = devices[i].init(vm);
		if (err) {
			log_msg("cannot create the %s: %s", devices[i].name, strerror(-err));
			return err;
		}
	}
	return 0;
}

/* Each destroy takes a device that was never made: a VM that failed half-built goes too. */
void dev_destroy_all(struct vm *vm)
{
	pv_destroy(vm);
	virtio_destroy_all(vm);
	pci_destroy(vm);
	serial8250_destroy(vm);
	pit_destroy(vm);
	pic_destroy(vm);
}
