/*
 * The virtio-pci modern transport (virtio 1.2 §4.1): vendor capabilities
 * pointing into one memory BAR, the common configuration structure, the ISR,
 * per-queue doorbells and MSI-X, with INTx for a guest without a local APIC.
 *
 * BAR0 (32 KiB):   0x0000 common config   0x3000 doorbells, 4 bytes a queue
 *                  0x1000 ISR status      0x4000 MSI-X table
 *                  0x2000 device config   0x5000 MSI-X pending bits
 * Doorbells are eventfds: KVM signals them itself (ioeventfd), and without
 * that fast path the BAR handler below does. Either way, the queue is served
 * on the I/O thread, and the vCPU goes back to the guest at once.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "../../core/log.h"
#include "../../core/notify.h"
#include "../../core/vm.h"
#include "../pci.h"
#include "virtio.h"

#define BAR_SIZE 0x8000
#define COMMON_OFF 0x0000
#define ISR_OFF 0x1000
#define DEVCFG_OFF 0x2000
#define NOTIFY_OFF 0x3000
#define MSIX_TABLE_OFF 0x4000
#define MSIX_PBA_OFF 0x5000
#define NOTIFY_MULT 4

/* virtio_pci_cap cfg_type (§4.1.4) */
#define CAP_COMMON 1
#define CAP_NOTIFY 2
#define CAP_ISR 3
#define CAP_DEVICE 4

/* Common configuration structure (§4.1.4.3) */
#define CC_DFSELECT 0x00
#define CC_DF 0x04
#define CC_GFSELECT 0x08
#define CC_GF 0x0c
#define CC_MSIX_CONFIG 0x10
#define CC_NUM_QUEUES 0x12
#define CC_STATUS 0x14
#define CC_CFG_GENERATION 0x15
#define CC_Q_SELECT 0x16
#define CC_Q_SIZE 0x18
#define CC_Q_MSIX_VECTOR 0x1a
#define CC_Q_ENABLE 0x1c
#define CC_Q_NOTIFY_OFF 0x1e
#define CC_Q_DESC 0x20
#define CC_Q_AVAIL 0x28
#define CC_Q_USED 0x30
#define CC_SIZE 0x38

bool virtio_has_feature(const struct virtio_dev *vd, unsigned bit)
{
	return vd->guest_features >> bit & 1;
}

bool virtio_running(const struct virtio_dev *vd)
{
	return (vd->status & VIRTIO_STATUS_DRIVER_OK) && !vd->broken;
}

/* ISR bit 0 (queue) or 1 (config) on INTx; an MSI-X vector otherwise. Lock held. */
static void virtio_raise(struct virtio_dev *vd, uint16_t vector, uint8_t isr_bit)
{
	vd->stats.interrupts++;
	if (pci_msix_enabled(vd->pci)) {
		if (vector != VIRTIO_NO_VECTOR)
			pci_msix_notify(vd->pci, vector);
		return;
	}
	vd->isr |= isr_bit;
	pci_intx(vd->pci, 1);
}

void virtio_queue_interrupt(struct virtio_dev *vd, unsigned q)
{
	if (virtq_need_interrupt(&vd->q[q].vq))
		virtio_raise(vd, vd->q[q].vector, 1);
}

void virtio_config_changed(struct virtio_dev *vd)
{
	vd->config_gen++;
	virtio_raise(vd, vd->config_vector, 2);
}

void virtio_error(struct virtio_dev *vd, const char *why)
{
	if (vd->broken)
		return;
	vd->broken = true;
	/* once per breakage, and a few times per device, so a guest cannot flood stderr */
	log_ratelimited(&vd->log_budget, "%s: the guest broke the virtio rules (%s): device needs a reset",
			vd->name, why);
	vd->status |= VIRTIO_STATUS_NEEDS_RESET;
	if (vd->status & VIRTIO_STATUS_DRIVER_OK)
		virtio_config_changed(vd);
}

int virtio_pop(struct virtio_dev *vd, unsigned q, struct virtq_elem *e)
{
	const char *why;
	int r;

	if (vd->broken)
		return -EINVAL;
	r = virtq_pop(&vd->q[q].vq, e, &why);
	if (r < 0) {
		char msg[96];

		snprintf(msg, sizeof(msg), "queue %u: %s", q, why);
		virtio_error(vd, msg);
	}
	return r;
}

/* §2.4: writing 0 to status resets the device. Lock held. */
static void virtio_reset(struct virtio_dev *vd)
{
	if (vd->ops->reset)
		vd->ops->reset(vd);
	for (unsigned i = 0; i < vd->nr_queues; i++) {
		struct virtio_queue *q = &vd->q[i];

		virtq_reset(&q->vq);
		q->vq.size = q->max_size;
		q->vector = VIRTIO_NO_VECTOR;
	}
	vd->status = vd->isr = 0;
	vd->guest_features = 0;
	vd->dfselect = vd->gfselect = 0;
	vd->queue_sel = 0;
	vd->config_vector = VIRTIO_NO_VECTOR;
	vd->broken = false;
	pci_intx(vd->pci, 0);
}

static void virtio_set_status(struct virtio_dev *vd, uint8_t v)
{
	if (v == 0) {
		virtio_reset(vd);
		return;
	}
	/* §2.2.2: FEATURES_OK only for a subset of ours that includes VERSION_1 */
	if ((v & VIRTIO_STATUS_FEATURES_OK) && !(vd->status & VIRTIO_STATUS_FEATURES_OK)) {
		if ((vd->guest_features & ~vd->host_features) ||
		    !virtio_has_feature(vd, VIRTIO_F_VERSION_1))
			v &= (uint8_t)~VIRTIO_STATUS_FEATURES_OK;
	}
	vd->status = (uint8_t)(v | (vd->status & VIRTIO_STATUS_NEEDS_RESET));
	/* Buffers may have been made available before DRIVER_OK, with no doorbell to follow. */
	if (virtio_running(vd))
		for (unsigned i = 0; i < vd->nr_queues; i++)
			if (vd->q[i].vq.ready) {
				uint64_t one = 1;

				if (write(vd->q[i].kick_fd, &one, sizeof(one)) < 0)
					log_msg("%s: doorbell: %s", vd->name, strerror(errno));
			}
}

static void queue_enable(struct virtio_dev *vd, struct virtio_queue *q)
{
	q->vq.event_idx = virtio_has_feature(vd, VIRTIO_F_EVENT_IDX);
	q->vq.indirect = virtio_has_feature(vd, VIRTIO_F_INDIRECT_DESC);
	if (virtq_enable(&q->vq, &vd->vm->mem)) {
		char msg[64];

		snprintf(msg, sizeof(msg), "queue %u: bad size or rings outside RAM", q->index);
		virtio_error(vd, msg);
	}
}

static uint64_t common_read(struct virtio_dev *vd, unsigned off)
{
	struct virtio_queue *q = vd->queue_sel < vd->nr_queues ? &vd->q[vd->queue_sel] : NULL;

	switch (off) {
	case CC_DFSELECT: return vd->dfselect;
	case CC_DF: return vd->dfselect < 2 ? (uint32_t)(vd->host_features >> (32 * vd->dfselect)) : 0;
	case CC_GFSELECT: return vd->gfselect;
	case CC_GF: return vd->gfselect < 2 ? (uint32_t)(vd->guest_features >> (32 * vd->gfselect)) : 0;
	case CC_MSIX_CONFIG: return vd->config_vector;
	case CC_NUM_QUEUES: return vd->nr_queues;
	case CC_STATUS: return vd->status;
	case CC_CFG_GENERATION: return vd->config_gen;
	case CC_Q_SELECT: return vd->queue_sel;
	}
	if (!q) /* §4.1.4.3.1: queue_size 0 for a queue that does not exist */
		return 0;
	switch (off) {
	case CC_Q_SIZE: return q->vq.size;
	case CC_Q_MSIX_VECTOR: return q->vector;
	case CC_Q_ENABLE: return q->vq.ready;
	case CC_Q_NOTIFY_OFF: return q->index;
	case CC_Q_DESC: return q->vq.desc_gpa;
	case CC_Q_DESC + 4: return q->vq.desc_gpa >> 32;
	case CC_Q_AVAIL: return q->vq.avail_gpa;
	case CC_Q_AVAIL + 4: return q->vq.avail_gpa >> 32;
	case CC_Q_USED: return q->vq.used_gpa;
	case CC_Q_USED + 4: return q->vq.used_gpa >> 32;
	}
	return 0;
}

/* Set the 32-bit half of a 64-bit ring address the driver wrote. */
static void set_half(uint64_t *r, unsigned half, uint32_t v)
{
	*r = half ? (*r & 0xffffffffull) | (uint64_t)v << 32 : (*r & ~0xffffffffull) | v;
}

static uint16_t valid_vector(struct virtio_dev *vd, uint32_t v)
{
	/* §4.1.5.1.2: a vector the device cannot use reads back as NO_VECTOR */
	return vd->pci->msix && v < vd->pci->msix->nr ? (uint16_t)v : VIRTIO_NO_VECTOR;
}

static void common_write(struct virtio_dev *vd, unsigned off, uint64_t v, unsigned size)
{
	struct virtio_queue *q = vd->queue_sel < vd->nr_queues ? &vd->q[vd->queue_sel] : NULL;

	switch (off) {
	case CC_DFSELECT: vd->dfselect = (uint32_t)v; return;
	case CC_GFSELECT: vd->gfselect = (uint32_t)v; return;
	case CC_GF:
		if (vd->gfselect < 2 && !(vd->status & VIRTIO_STATUS_FEATURES_OK))
			set_half(&vd->guest_features, vd->gfselect, (uint32_t)v);
		return;
	case CC_MSIX_CONFIG: vd->config_vector = valid_vector(vd, (uint32_t)v); return;
	case CC_STATUS: virtio_set_status(vd, (uint8_t)v); return;
	case CC_Q_SELECT: vd->queue_sel = (uint16_t)v; return;
	}
	/* §4.1.4.3.2: the queue's set-up is fixed while it is enabled */
	if (!q || (q->vq.ready && off != CC_Q_MSIX_VECTOR))
		return;
	switch (off) {
	case CC_Q_SIZE: q->vq.size = (uint16_t)v; break;
	case CC_Q_MSIX_VECTOR: q->vector = valid_vector(vd, (uint32_t)v); break;
	case CC_Q_ENABLE:
		if (v == 1)
			queue_enable(vd, q);
		break;
	case CC_Q_DESC: case CC_Q_DESC + 4:
		set_half(&q->vq.desc_gpa, (off - CC_Q_DESC) / 4, (uint32_t)v);
		if (size == 8)
			q->vq.desc_gpa = v;
		break;
	case CC_Q_AVAIL: case CC_Q_AVAIL + 4:
		set_half(&q->vq.avail_gpa, (off - CC_Q_AVAIL) / 4, (uint32_t)v);
		if (size == 8)
			q->vq.avail_gpa = v;
		break;
	case CC_Q_USED: case CC_Q_USED + 4:
		set_half(&q->vq.used_gpa, (off - CC_Q_USED) / 4, (uint32_t)v);
		if (size == 8)
			q->vq.used_gpa = v;
		break;
	}
}

static void bar_io(void *opaque, uint64_t off, uint8_t *data, unsigned size, bool is_write)
{
	struct virtio_dev *vd = opaque;
	uint64_t v = 0;

	if (off >= MSIX_PBA_OFF) {
		pci_msix_pba_io(vd->pci, off - MSIX_PBA_OFF, data, size, is_write);
		return;
	}
	if (off >= MSIX_TABLE_OFF) {
		pci_msix_table_io(vd->pci, off - MSIX_TABLE_OFF, data, size, is_write);
		return;
	}
	if (off >= NOTIFY_OFF) {
		/* the slow doorbell: KVM's ioeventfd takes these writes when it can */
		unsigned qi = (unsigned)(off - NOTIFY_OFF) / NOTIFY_MULT;
		uint64_t one = 1;

		if (!is_write)
			memset(data, 0, size);
		else if (qi < vd->nr_queues && write(vd->q[qi].kick_fd, &one, sizeof(one)) < 0)
			log_msg("%s: doorbell: %s", vd->name, strerror(errno));
		return;
	}
	if (is_write)
		memcpy(&v, data, size);
	pthread_mutex_lock(&vd->lock);
	if (off >= DEVCFG_OFF) {
		unsigned o = (unsigned)(off - DEVCFG_OFF);

		if (o >= vd->config_len || size > vd->config_len - o) {
			if (!is_write)
				memset(data, 0, size);
		} else if (is_write) {
			if (vd->ops->config_write)
				vd->ops->config_write(vd, o, data, size);
		} else {
			memcpy(data, (uint8_t *)vd->config + o, size);
		}
	} else if (off >= ISR_OFF) {
		if (!is_write) {
			/* §4.1.4.5: reading clears it and lowers INTx */
			memset(data, 0, size);
			data[0] = vd->isr;
			vd->isr = 0;
			pci_intx(vd->pci, 0);
		}
	} else if (off < CC_SIZE) {
		unsigned o = (unsigned)off;

		if (is_write) {
			common_write(vd, o, v, size);
		} else {
			/* registers are read at their own offsets (§4.1.3.1) */
			v = common_read(vd, o);
			memcpy(data, &v, size);
		}
	} else if (!is_write) {
		memset(data, 0, size);
	}
	pthread_mutex_unlock(&vd->lock);
}

/* A doorbell rang: serve the queue on the I/O thread. */
static void on_kick(void *opaque, uint32_t events)
{
	struct virtio_queue *q = opaque;
	struct virtio_dev *vd = q->vd;
	uint64_t n;

	if (read(q->kick_fd, &n, sizeof(n)) != sizeof(n))
		return;
	pthread_mutex_lock(&vd->lock);
	vd->stats.notifies += n;
	if (virtio_running(vd) && q->vq.ready)
		vd->ops->queue_notify(vd, q->index);
	pthread_mutex_unlock(&vd->lock);
}

/* The BAR moved (or decoding was switched): move the doorbells' ioeventfds. */
static void bar_moved(struct pci_dev *d, unsigned bar, uint32_t old, uint32_t now)
{
	struct virtio_dev *vd = d->opaque;

	if (bar != 0)
		return;
	for (unsigned i = 0; i < vd->nr_queues; i++) {
		if (old)
			vm_ioeventfd_del(vd->vm, false, old + NOTIFY_OFF + NOTIFY_MULT * i, 2,
					 vd->q[i].kick_fd);
		if (now)
			vm_ioeventfd_add(vd->vm, false, now + NOTIFY_OFF + NOTIFY_MULT * i, 2,
					 vd->q[i].kick_fd);
	}
}

static int add_cap(struct pci_dev *d, uint8_t type, uint32_t off, uint32_t len, bool notify)
{
	uint8_t b[18] = { notify ? 20 : 16, type, 0 /* BAR0 */ };

	memcpy(b + 6, &off, 4);
	memcpy(b + 10, &len, 4);
	if (notify) {
		uint32_t mult = NOTIFY_MULT;

		memcpy(b + 14, &mult, 4);
	}
	return pci_cap_add(d, PCI_CAP_ID_VNDR, b, notify ? 18 : 14) ? 0 : -ENOSPC;
}

int virtio_pci_add(struct vm *vm, struct virtio_dev *vd)
{
	struct pci_dev *d;
	int err;

	if (vd->nr_queues == 0 || vd->nr_queues > VIRTIO_MAX_QUEUES || vd->config_len > 0x1000 ||
	    vm->nr_virtio == (int)(sizeof(vm->virtio) / sizeof(vm->virtio[0])))
		return -EINVAL;
	for (unsigned i = 0; i < VIRTIO_MAX_QUEUES; i++)
		vd->q[i].kick_fd = -1;
	vd->vm = vm;
	vd->host_features |= 1ull << VIRTIO_F_VERSION_1 | 1ull << VIRTIO_F_INDIRECT_DESC |
			     1ull << VIRTIO_F_EVENT_IDX;
	vd->config_vector = VIRTIO_NO_VECTOR;
	vd->log_budget = 5;
	pthread_mutex_init(&vd->lock, NULL);
	for (unsigned i = 0; i < vd->nr_queues; i++) {
		struct virtio_queue *q = &vd->q[i];

		q->vd = vd;
		q->index = i;
		q->vector = VIRTIO_NO_VECTOR;
		q->vq.size = q->max_size;
		q->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (q->kick_fd < 0)
			return -errno;
		err = evloop_add(&vm->loop, q->kick_fd, EPOLLIN, on_kick, q);
		if (err)
			return err;
	}
	/* modern-only: device ID 0x1040 + type, revision 1 (§4.1.2) */
	d = pci_dev_new(vm, 0x1af4, (uint16_t)(0x1040 + vd->device_id),
			(uint32_t)vd->pci_class_hi << 8, 1, 0x1af4, 0x40);
	if (!d)
		return -ENOSPC;
	d->opaque = vd;
	d->bar_moved = bar_moved;
	vd->pci = d;
	err = add_cap(d, CAP_COMMON, COMMON_OFF, CC_SIZE, false);
	if (!err)
		err = add_cap(d, CAP_ISR, ISR_OFF, 4, false);
	if (!err && vd->config_len)
		err = add_cap(d, CAP_DEVICE, DEVCFG_OFF, vd->config_len, false);
	if (!err)
		err = add_cap(d, CAP_NOTIFY, NOTIFY_OFF, NOTIFY_MULT * vd->nr_queues, true);
	if (!err) /* one vector per queue and one for configuration changes */
		err = pci_msix_init(d, vd->nr_queues + 1, 0, MSIX_TABLE_OFF, MSIX_PBA_OFF);
	if (!err)
		err = pci_bar_set(d, 0, BAR_SIZE, bar_io, vd);
	if (err)
		return err;
	vm->virtio[vm->nr_virtio++] = vd;
	return 0;
}

void virtio_pci_remove(struct virtio_dev *vd)
{
	for (unsigned i = 0; i < vd->nr_queues; i++)
		if (vd->q[i].kick_fd >= 0) {
			close(vd->q[i].kick_fd);
			vd->q[i].kick_fd = -1;
		}
}
