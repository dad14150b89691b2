/*
 * A tiny virtio-pci driver for unit tests: it plays the guest on a VM that
 * has RAM, buses, the I/O thread and a fake engine (no vCPU), finds a device
 * by its PCI capabilities as Linux does, and posts requests on queue 0.
 */
#ifndef RING3_TESTS_VIRTIO_DRIVER_H
#define RING3_TESTS_VIRTIO_DRIVER_H

#include <string.h>
#include <time.h>

#define T_UNUSED __attribute__((unused))

#include "core/vm.h"
#include "dev/pci.h"
#include "dev/virtio/virtio.h"

#define TQ_SIZE 16
#define T_DESC 0x10000
#define T_AVAIL 0x11000
#define T_USED 0x12000
#define T_DATA 0x100000

static int fake_irq_level[24], fake_msi_count;
static uint64_t fake_msi_addr;
static uint32_t fake_msi_data;

static T_UNUSED void fake_irq_line(struct vm *vm, unsigned gsi, int level)
{
	__atomic_store_n(&fake_irq_level[gsi], level, __ATOMIC_SEQ_CST);
}

static T_UNUSED int fake_msi(struct vm *vm, uint64_t addr, uint32_t data)
{
	fake_msi_addr = addr;
	fake_msi_data = data;
	__atomic_add_fetch(&fake_msi_count, 1, __ATOMIC_SEQ_CST);
	return 0;
}

static const struct cpu_engine fake_engine = {
	.name = "test", .irq_line = fake_irq_line, .msi = fake_msi,
};

/* A VM with RAM, buses, the I/O thread and PCI: what devices need. */
static T_UNUSED int tvm_init(struct vm *vm, struct vm_config *cfg)
{
	memset(vm, 0, sizeof(*vm));
	vm->cfg = cfg;
	vm->engine = &fake_engine;
	vm->pio.name = "pio";
	vm->mmio.name = "mmio";
	if (mem_init(&vm->mem, 64u << 20) || evloop_init(&vm->loop) || pci_init(vm))
		return -1;
	return 0;
}

struct tdev {
	struct vm *vm;
	unsigned slot;
	uint64_t bar, common, isr, device, notify;
	uint32_t notify_mult;
	uint16_t msix_cap;
	uint16_t used_seen;
};

static T_UNUSED uint64_t t_read(struct tdev *t, uint64_t addr, unsigned size)
{
	uint64_t v = 0;

	bus_access(&t->vm->mmio, addr, (uint8_t *)&v, size, false);
	return v;
}

static T_UNUSED void t_write(struct tdev *t, uint64_t addr, uint64_t v, unsigned size)
{
	bus_access(&t->vm->mmio, addr, (uint8_t *)&v, size, true);
}

/* Find the BAR and the capabilities (§4.1.4), as virtio_pci_modern does. */
static T_UNUSED int tdev_find(struct tdev *t, struct vm *vm, unsigned slot)
{
	memset(t, 0, sizeof(*t));
	t->vm = vm;
	t->slot = slot;
	if (pci_conf_read(vm, slot, PCI_VENDOR_ID, 2) != 0x1af4)
		return -1;
	pci_conf_write(vm, slot, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	t->bar = pci_conf_read(vm, slot, PCI_BAR0, 4) & ~0xfu;
	for (unsigned c = pci_conf_read(vm, slot, PCI_CAPABILITY_LIST, 1); c;
	     c = pci_conf_read(vm, slot, c + 1, 1)) {
		unsigned id = pci_conf_read(vm, slot, c, 1), type = pci_conf_read(vm, slot, c + 3, 1);
		uint64_t off = t->bar + pci_conf_read(vm, slot, c + 8, 4);

		if (id == PCI_CAP_ID_MSIX)
			t->msix_cap = (uint16_t)c;
		if (id != PCI_CAP_ID_VNDR)
			continue;
		if (type == 1)
			t->common = off;
		else if (type == 2) {
			t->notify = off;
			t->notify_mult = pci_conf_read(vm, slot, c + 16, 4);
		} else if (type == 3)
			t->isr = off;
		else if (type == 4)
			t->device = off;
	}
	return t->common && t->notify && t->isr ? 0 : -1;
}

/* §3.1.1: reset, ACKNOWLEDGE, DRIVER, features, FEATURES_OK; queue 0; DRIVER_OK. */
static T_UNUSED int tdev_setup(struct tdev *t, uint64_t features, uint16_t qsize)
{
	uint8_t st;

	memset(t->vm->mem.host + T_DESC, 0, 0x3000);
	t->used_seen = 0;
	t_write(t, t->common + 0x14, 0, 1);
	t_write(t, t->common + 0x14, 1 | 2, 1);
	t_write(t, t->common + 0x08, 0, 4);
	t_write(t, t->common + 0x0c, (uint32_t)features, 4);
	t_write(t, t->common + 0x08, 1, 4);
	t_write(t, t->common + 0x0c, features >> 32, 4);
	t_write(t, t->common + 0x14, 1 | 2 | 8, 1);
	st = (uint8_t)t_read(t, t->common + 0x14, 1);
	if (!(st & 8))
		return -1;
	t_write(t, t->common + 0x16, 0, 2);
	t_write(t, t->common + 0x18, qsize, 2);
	t_write(t, t->common + 0x20, T_DESC, 4);
	t_write(t, t->common + 0x24, 0, 4);
	t_write(t, t->common + 0x28, T_AVAIL, 4);
	t_write(t, t->common + 0x2c, 0, 4);
	t_write(t, t->common + 0x30, T_USED, 4);
	t_write(t, t->common + 0x34, 0, 4);
	t_write(t, t->common + 0x1c, 1, 2);
	t_write(t, t->common + 0x14, 1 | 2 | 8 | 4, 1);
	return 0;
}

static T_UNUSED uint8_t tdev_status(struct tdev *t)
{
	return (uint8_t)t_read(t, t->common + 0x14, 1);
}

static T_UNUSED struct virtq_desc *t_desc(struct tdev *t, unsigned i)
{
	return (struct virtq_desc *)(t->vm->mem.host + T_DESC) + i;
}

static T_UNUSED void *t_ptr(struct tdev *t, uint64_t gpa)
{
	return t->vm->mem.host + gpa;
}

/* Make head available; ring the doorbell if kick. */
static T_UNUSED void t_post(struct tdev *t, uint16_t head, bool kick)
{
	uint16_t *a = t_ptr(t, T_AVAIL);

	a[2 + (a[1] % TQ_SIZE)] = head;
	a[2 + TQ_SIZE] = t->used_seen; /* used_event: interrupt me for the next completion */
	__atomic_store_n(&a[1], (uint16_t)(a[1] + 1), __ATOMIC_RELEASE);
	if (kick)
		t_write(t, t->notify, 0, 2);
}

static T_UNUSED void t_kick(struct tdev *t)
{
	t_write(t, t->notify, 0, 2);
}

/* Wait until the used index reaches want (the I/O thread serves the queue). */
static T_UNUSED bool t_wait_used(struct tdev *t, uint16_t want)
{
	uint16_t *u = t_ptr(t, T_USED);

	for (int i = 0; i < 5000; i++) {
		if ((uint16_t)(__atomic_load_n(&u[1], __ATOMIC_ACQUIRE) - want) < 0x8000)
			return true;
		nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
	}
	return false;
}

static T_UNUSED bool t_wait_status(struct tdev *t, uint8_t bit)
{
	for (int i = 0; i < 5000; i++) {
		if (tdev_status(t) & bit)
			return true;
		nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
	}
	return false;
}

static T_UNUSED uint32_t t_used_len(struct tdev *t, uint16_t idx)
{
	uint32_t *ring = (uint32_t *)((uint8_t *)t_ptr(t, T_USED) + 4);

	return ring[2 * (idx % TQ_SIZE) + 1];
}

#endif
