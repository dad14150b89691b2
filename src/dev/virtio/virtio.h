/*
 * A virtio 1.2 device as its backends see it: feature bits, device status
 * (§2.1), queues and interrupts, behind the virtio-pci transport (pci.c,
 * §4.1). Backends (blk.c, net.c, rng.c, console.c) fill a struct virtio_dev
 * and its ops; the transport calls them on the I/O thread with vd->lock held.
 */
#ifndef RING3_DEV_VIRTIO_VIRTIO_H
#define RING3_DEV_VIRTIO_VIRTIO_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "virtq.h"

/* Device IDs (§5) */
#define VIRTIO_ID_NET 1
#define VIRTIO_ID_BLOCK 2
#define VIRTIO_ID_CONSOLE 3
#define VIRTIO_ID_RNG 4

/* Device status (§2.1) */
#define VIRTIO_STATUS_ACKNOWLEDGE 1
#define VIRTIO_STATUS_DRIVER 2
#define VIRTIO_STATUS_DRIVER_OK 4
#define VIRTIO_STATUS_FEATURES_OK 8
#define VIRTIO_STATUS_NEEDS_RESET 0x40
#define VIRTIO_STATUS_FAILED 0x80

/* Reserved feature bits (§6) */
#define VIRTIO_F_INDIRECT_DESC 28
#define VIRTIO_F_EVENT_IDX 29
#define VIRTIO_F_VERSION_1 32

#define VIRTIO_MAX_QUEUES 8
#define VIRTIO_NO_VECTOR 0xffff

struct vm;
struct pci_dev;
struct virtio_dev;

struct virtio_queue {
	struct virtio_dev *vd;
	unsigned index;
	struct virtq vq;
	uint16_t max_size;
	uint16_t vector; /* MSI-X vector, or VIRTIO_NO_VECTOR */
	int kick_fd;	 /* eventfd: the guest's doorbell, by ioeventfd or the bus */
};

struct virtio_ops {
	/* The driver made buffers available on queue q (I/O thread, lock held). */
	void (*queue_notify)(struct virtio_dev *vd, unsigned q);
	/* The driver reset the device (lock held): forget in-flight work. Optional. */
	void (*reset)(struct virtio_dev *vd);
	/* The driver wrote the device's configuration space. Optional. */
	void (*config_write)(struct virtio_dev *vd, unsigned off, const uint8_t *data,
			     unsigned size);
};

struct virtio_stats {
	uint64_t requests, bytes_in, bytes_out; /* in: guest to host */
	uint64_t notifies, interrupts;
};

struct virtio_dev {
	struct vm *vm;
	const struct virtio_ops *ops;
	char name[32]; /* "virtio-blk vda", for messages and --stats */
	uint16_t device_id;
	uint16_t pci_class_hi; /* PCI class code >> 8 */
	uint64_t host_features, guest_features;
	void *config;	   /* device-specific configuration space, little-endian */
	unsigned config_len;
	unsigned nr_queues;
	struct virtio_queue q[VIRTIO_MAX_QUEUES];
	void *priv;

	/* Transport state: written by vCPU threads, read by the I/O thread, under lock. */
	pthread_mutex_t lock;
	uint8_t status, isr, config_gen;
	uint32_t dfselect, gfselect;
	uint16_t queue_sel, config_vector;
	bool broken; /* NEEDS_RESET is set and the error was reported */
	int log_budget; /* lines this device may still print about a guest's errors */
	struct pci_dev *pci;
	struct virtio_stats stats;
};

/*
 * Register vd (name, ops, features, config, nr_queues and max sizes filled)
 * as a PCI function with its doorbells on the I/O thread. 0 or -errno.
 */
int virtio_pci_add(struct vm *vm, struct virtio_dev *vd);
void virtio_pci_remove(struct virtio_dev *vd);

bool virtio_has_feature(const struct virtio_dev *vd, unsigned bit);
/* Pop from queue q; a malformed chain breaks the device (NEEDS_RESET). 1, 0 or -EINVAL. */
int virtio_pop(struct virtio_dev *vd, unsigned q, struct virtq_elem *e);
/* Interrupt the driver for queue q if it wants one (EVENT_IDX, NO_INTERRUPT). */
void virtio_queue_interrupt(struct virtio_dev *vd, unsigned q);
/* The configuration changed: bump the generation and interrupt. */
void virtio_config_changed(struct virtio_dev *vd);
/* The guest broke a rule: set NEEDS_RESET, say so once on stderr, stop the device. */
void virtio_error(struct virtio_dev *vd, const char *why);
bool virtio_running(const struct virtio_dev *vd); /* DRIVER_OK and not broken */

/* Backends, one per --disk/--net/--console virtio, plus the entropy device. */
int virtio_blk_init_all(struct vm *vm);
int virtio_net_init(struct vm *vm);
void virtio_net_stop(struct virtio_dev *vd);
int virtio_rng_init(struct vm *vm);
int virtio_console_init(struct vm *vm);
/* Console input for hvc0; the bytes taken (the rest: try again later). */
size_t virtio_console_receive(struct vm *vm, const char *buf, size_t len);
int virtio_init_all(struct vm *vm);
void virtio_destroy_all(struct vm *vm);
void virtio_print_stats(struct vm *vm, FILE *f);

#endif
