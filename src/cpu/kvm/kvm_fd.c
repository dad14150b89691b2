/*
 * ioeventfd, irqfd and MSI for the kvm engine (Linux Documentation/virt/kvm/
 * api.rst: KVM_IOEVENTFD, KVM_IRQFD, KVM_SET_GSI_ROUTING, KVM_SIGNAL_MSI).
 * A doorbell write then wakes a device's I/O thread from inside KVM, and the
 * I/O thread's eventfd write injects the interrupt: no vCPU waits for either.
 *
 * KVM_SET_GSI_ROUTING replaces the whole table, so MSI routes (GSI 24 and up)
 * are kept here and committed together with the PC's pin routes, which must
 * stay the same as kvm.c's kvm_set_routing(). One VM per process: the table is
 * per process.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "../../core/vm.h"
#include "kvm.h"
#include "kvm_fd.h"

#define MSI_GSI_BASE 24
#define MSI_ROUTES 256

static struct {
	pthread_mutex_t lock;
	bool used[MSI_ROUTES];
	uint64_t addr[MSI_ROUTES];
	uint32_t data[MSI_ROUTES];
} routes = { .lock = PTHREAD_MUTEX_INITIALIZER };

static int vm_fd(struct vm *vm)
{
	return ((struct kvmvm *)vm->engine_data)->vm_fd;
}

int kvm_ioeventfd(struct vm *vm, bool pio, uint64_t addr, unsigned len, int fd, bool assign)
{
	struct kvm_ioeventfd io = {
		.addr = addr,
		.len = len,
		.fd = fd,
		.flags = (pio ? KVM_IOEVENTFD_FLAG_PIO : 0) |
			 (assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN),
	};

	return ioctl(vm_fd(vm), KVM_IOEVENTFD, &io) < 0 ? -errno : 0;
}

int kvm_irqfd(struct vm *vm, unsigned gsi, int fd, bool assign)
{
	struct kvm_irqfd irqfd = {
		.fd = (uint32_t)fd,
		.gsi = gsi,
		.flags = assign ? 0 : KVM_IRQFD_FLAG_DEASSIGN,
	};

	return ioctl(vm_fd(vm), KVM_IRQFD, &irqfd) < 0 ? -errno : 0;
}

int kvm_msi(struct vm *vm, uint64_t addr, uint32_t data)
{
	struct kvm_msi msi = {
		.address_lo = (uint32_t)addr,
		.address_hi = (uint32_t)(addr >> 32),
		.data = data,
	};

	/* 0 when the guest blocked it (masked in the LAPIC): not an error */
	return ioctl(vm_fd(vm), KVM_SIGNAL_MSI, &msi) < 0 ? -errno : 0;
}

static void pin_route(struct kvm_irq_routing_entry *e, unsigned gsi, unsigned chip, unsigned pin)
{
	e->gsi = gsi;
	e->type = KVM_IRQ_ROUTING_IRQCHIP;
	e->u.irqchip.irqchip = chip;
	e->u.irqchip.pin = pin;
}

/* With routes.lock held. */
static int commit(struct vm *vm)
{
	struct kvm_irq_routing *r;
	unsigned n = 0;
	int err = 0;

	r = calloc(1, sizeof(*r) + (48 + MSI_ROUTES) * sizeof(r->entries[0]));
	if (!r)
		return -ENOMEM;
	/* the PC's pins, as kvm_set_routing() sets them */
	for (unsigned gsi = 0; gsi < 24; gsi++) {
		if (gsi == 2)
			continue;
		if (gsi < 16)
			pin_route(&r->entries[n++], gsi,
				  gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE, gsi % 8);
		pin_route(&r->entries[n++], gsi, KVM_IRQCHIP_IOAPIC, gsi == 0 ? 2 : gsi);
	}
	for (unsigned i = 0; i < MSI_ROUTES; i++) {
		if (!routes.used[i])
			continue;
		r->entries[n].gsi = MSI_GSI_BASE + i;
		r->entries[n].type = KVM_IRQ_ROUTING_MSI;
		r->entries[n].u.msi.address_lo = (uint32_t)routes.addr[i];
		r->entries[n].u.msi.address_hi = (uint32_t)(routes.addr[i] >> 32);
		r->entries[n].u.msi.data = routes.data[i];
		n++;
	}
	r->nr = n;
	if (ioctl(vm_fd(vm), KVM_SET_GSI_ROUTING, r) < 0)
		err = -errno;
	free(r);
	return err;
}

int kvm_msi_route(struct vm *vm, int gsi, uint64_t addr, uint32_t data)
{
	unsigned i;
	int err;

	pthread_mutex_lock(&routes.lock);
	if (gsi >= MSI_GSI_BASE && gsi < MSI_GSI_BASE + MSI_ROUTES &&
	    routes.used[gsi - MSI_GSI_BASE]) {
		i = (unsigned)(gsi - MSI_GSI_BASE);
	} else {
		for (i = 0; i < MSI_ROUTES && routes.used[i]; i++)
			;
		if (i == MSI_ROUTES) {
			pthread_mutex_unlock(&routes.lock);
			return -ENOSPC;
		}
		routes.used[i] = true;
	}
	routes.addr[i] = addr;
	routes.data[i] = data;
	err = commit(vm);
	pthread_mutex_unlock(&routes.lock);
	return err ? err : (int)(MSI_GSI_BASE + i);
}
