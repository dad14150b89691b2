/*
 * Doorbells and interrupts between the guest and paravirtual devices, through
 * the engine's fast paths where it has them (ioeventfd, irqfd) and through the
 * bus and irq_set() where it has not. No device asks which engine runs.
 */
#ifndef RING3_CORE_NOTIFY_H
#define RING3_CORE_NOTIFY_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct vm;

/*
 * A doorbell: make a guest write to addr signal fd without an exit. 0 when
 * the engine took it; -EOPNOTSUPP when it cannot, and then the write reaches
 * the device's bus handler as usual (which should signal fd itself).
 */
int vm_ioeventfd_add(struct vm *vm, bool pio, uint64_t addr, unsigned len, int fd);
void vm_ioeventfd_del(struct vm *vm, bool pio, uint64_t addr, unsigned len, int fd);

/*
 * A message-signalled interrupt a device raises from its I/O thread. Through
 * an irqfd when the engine routes MSIs (no ioctl per interrupt), else
 * through the engine's msi hook; a guest without a local APIC never enables
 * MSI, and an engine with neither path drops it with one warning.
 */
struct vm_msi {
	struct vm *vm;
	pthread_mutex_t lock;
	int fd;	       /* eventfd bound to the route, or -1 */
	int gsi;       /* the engine's route, or -1 */
	uint64_t addr; /* what the guest programmed */
	uint32_t data;
	bool dirty;    /* addr/data changed since the route was set */
};

int vm_msi_init(struct vm *vm, struct vm_msi *m);
void vm_msi_set(struct vm_msi *m, uint64_t addr, uint32_t data);
void vm_msi_fire(struct vm_msi *m);
void vm_msi_destroy(struct vm_msi *m);

#endif
