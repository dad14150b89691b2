/*
 * Split virtqueues (virtio 1.2 §2.7): the device side of the descriptor
 * table, the available ring and the used ring, with indirect descriptors
 * (§2.7.5.3) and EVENT_IDX (§2.7.7, §2.7.10). Every descriptor a guest hands
 * over is checked here before a device sees it.
 */
#ifndef RING3_DEV_VIRTIO_VIRTQ_H
#define RING3_DEV_VIRTIO_VIRTQ_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "../../core/mem.h"

#define VIRTQ_MAX_SIZE 256  /* the largest queue a ring3 device offers */
#define VIRTQ_MAX_CHAIN 256 /* descriptors in one chain, indirect ones included */

#define VIRTQ_DESC_F_NEXT 1
#define VIRTQ_DESC_F_WRITE 2
#define VIRTQ_DESC_F_INDIRECT 4
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1
#define VIRTQ_USED_F_NO_NOTIFY 1

struct virtq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct virtq {
	/* What the driver wrote through the transport; checked by virtq_enable(). */
	uint16_t size;
	uint64_t desc_gpa, avail_gpa, used_gpa;
	bool event_idx; /* VIRTIO_F_EVENT_IDX was negotiated */
	bool indirect;	/* VIRTIO_F_INDIRECT_DESC was negotiated */

	/* Set up by virtq_enable(): host views of the three rings. */
	bool ready;
	const struct guest_mem *mem;
	volatile struct virtq_desc *desc;
	volatile uint16_t *avail; /* flags, idx, ring[size], used_event */
	volatile uint16_t *used;  /* flags, idx, then {le32 id, le32 len}[size], avail_event */

	uint16_t last_avail; /* next available entry the device will take */
	uint16_t used_idx;   /* the device's copy of used->idx */
	uint16_t signalled;  /* used_idx when the driver was last interrupted */
	bool signalled_valid;
};

/* One popped chain: readable buffers (out) first, then writable ones (in). */
struct virtq_elem {
	uint16_t head;
	uint16_t nr_out, nr_in;
	uint64_t out_len, in_len;
	struct iovec iov[VIRTQ_MAX_CHAIN];
};

/*
 * Check the size (a power of 2, 1 to VIRTQ_MAX_SIZE), the alignments and that
 * the three rings lie in guest RAM; then the queue is live. 0 or -EINVAL.
 */
int virtq_enable(struct virtq *q, const struct guest_mem *mem);
void virtq_reset(struct virtq *q);

/*
 * Take the next available chain. 1 with *e filled, 0 when the ring is empty,
 * -EINVAL when the driver broke the rules (the device then needs a reset);
 * why says which rule, for the one log line.
 */
int virtq_pop(struct virtq *q, struct virtq_elem *e, const char **why);
/* Put a chain back as used with len bytes written. Visible to the driver at once. */
void virtq_push(struct virtq *q, uint16_t head, uint32_t len);
/* After a batch of pushes: does the driver want an interrupt (§2.7.10)? */
bool virtq_need_interrupt(struct virtq *q);
/*
 * Ask for (or stop asking for) notifications of new buffers. Enabling returns
 * true when buffers arrived meanwhile: the caller must pop again, or it could
 * sleep on a ring that already has work.
 */
bool virtq_notify_enable(struct virtq *q, bool enable);
bool virtq_has_avail(struct virtq *q);

/* Copy between a chain's buffers and a flat buffer; return the bytes copied. */
size_t iov_to_buf(const struct iovec *iov, unsigned n, size_t skip, void *buf, size_t len);
size_t iov_from_buf(const struct iovec *iov, unsigned n, size_t skip, const void *buf, size_t len);

#endif
