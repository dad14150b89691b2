/*
 * Split virtqueues, device side (virtio 1.2 §2.7). The driver is another CPU
 * writing the same memory while we read it: every index and descriptor is
 * read once into a local copy and checked there, the available index with
 * acquire order, the used index published with release order (§2.7.13).
 */
#include <errno.h>
#include <string.h>

#include "virtq.h"

/* Offsets (in uint16_t) into the avail and used rings, §2.7.6 and §2.7.8. */
#define AVAIL_FLAGS 0
#define AVAIL_IDX 1
#define AVAIL_RING 2
#define USED_FLAGS 0
#define USED_IDX 1

static bool is_pow2(unsigned v)
{
	return v && !(v & (v - 1));
}

int virtq_enable(struct virtq *q, const struct guest_mem *mem)
{
	uint64_t n = q->size;
	void *d, *a, *u;

	if (!is_pow2(q->size) || q->size > VIRTQ_MAX_SIZE)
		return -EINVAL;
	/* §2.7: descriptor table 16-byte, available ring 2-byte, used ring 4-byte aligned */
	if ((q->desc_gpa & 15) || (q->avail_gpa & 1) || (q->used_gpa & 3))
		return -EINVAL;
	d = mem_ptr(mem, q->desc_gpa, 16 * n);
	a = mem_ptr(mem, q->avail_gpa, 6 + 2 * n);
	u = mem_ptr(mem, q->used_gpa, 6 + 8 * n);
	if (!d || !a || !u)
		return -EINVAL;
	q->mem = mem;
	q->desc = d;
	q->avail = a;
	q->used = u;
	q->last_avail = q->used_idx = q->signalled = 0;
	q->signalled_valid = false;
	q->ready = true;
	return 0;
}

void virtq_reset(struct virtq *q)
{
	memset(q, 0, sizeof(*q));
}

static uint16_t avail_idx(const struct virtq *q)
{
	return __atomic_load_n(&q->avail[AVAIL_IDX], __ATOMIC_ACQUIRE);
}

/*
 * One snapshot of a descriptor. The compiler barrier keeps it from reading
 * the guest's copy again later, which the guest may have changed meanwhile.
 */
static void desc_read(const volatile struct virtq_desc *src, struct virtq_desc *d)
{
	memcpy(d, (const void *)src, sizeof(*d));
	__asm__ volatile("" ::: "memory");
}

#define FAIL(msg)                                                                                  \
	do {                                                                                       \
		*why = msg;                                                                        \
		return -EINVAL;                                                                    \
	} while (0)

/*
 * The walk terminates: each step takes one descriptor from a table of known
 * size, and a chain may visit each table at most that many times (a longer
 * chain has a loop). The indirect table may not hold another indirect one.
 */
int virtq_pop(struct virtq *q, struct virtq_elem *e, const char **why)
{
	const volatile struct virtq_desc *table = q->desc;
	unsigned table_size = q->size, steps = 0, n = 0;
	bool in_indirect = false;
	uint16_t avail, head, idx;
	struct virtq_desc d;

	*why = NULL;
	if (!q->ready)
		return 0;
	avail = avail_idx(q);
	if (avail == q->last_avail)
		return 0;
	if ((uint16_t)(avail - q->last_avail) > q->size)
		FAIL("the available index moved past the queue size");
	head = q->avail[AVAIL_RING + (q->last_avail & (q->size - 1))];
	if (head >= q->size)
		FAIL("an available entry names a descriptor beyond the queue");

	e->head = head;
	e->nr_out = e->nr_in = 0;
	e->out_len = e->in_len = 0;
	idx = head;
	for (;;) {
		void *p;

		if (++steps > table_size)
			FAIL(in_indirect ? "an indirect chain loops" : "a descriptor chain loops or "
								       "is longer than the queue");
		desc_read(&table[idx], &d);
		if (d.flags & VIRTQ_DESC_F_INDIRECT) {
			if (!q->indirect)
				FAIL("an indirect descriptor, not negotiated");
			if (in_indirect)
				FAIL("an indirect descriptor inside an indirect table");
			if (d.flags & VIRTQ_DESC_F_NEXT)
				FAIL("an indirect descriptor with NEXT set");
			if (d.len == 0 || d.len % 16 || d.len / 16 > VIRTQ_MAX_CHAIN)
				FAIL("an indirect table of a bad length");
			if (d.addr & 15)
				FAIL("a misaligned indirect table");
			table = mem_ptr(q->mem, d.addr, d.len);
			if (!table)
				FAIL("an indirect table outside guest RAM");
			table_size = d.len / 16;
			in_indirect = true;
			steps = 0;
			idx = 0;
			continue;
		}
		if (n == VIRTQ_MAX_CHAIN)
			FAIL("a chain of more buffers than a ring3 device takes");
		p = mem_ptr(q->mem, d.addr, d.len);
		if (!p)
			FAIL("a buffer outside guest RAM");
		e->iov[n].iov_base = p;
		e->iov[n].iov_len = d.len;
		n++;
		if (d.flags & VIRTQ_DESC_F_WRITE) {
			e->nr_in++;
			e->in_len += d.len;
		} else {
			/* §2.7.4.2: device-readable buffers come first */
			if (e->nr_in)
				FAIL("a readable buffer after a writable one");
			e->nr_out++;
			e->out_len += d.len;
		}
		if (!(d.flags & VIRTQ_DESC_F_NEXT))
			break;
		idx = d.next;
		if (idx >= table_size)
			FAIL("a next index beyond its table");
	}
	q->last_avail++;
	return 1;
}

void virtq_push(struct virtq *q, uint16_t head, uint32_t len)
{
	volatile uint32_t *ring = (volatile uint32_t *)(q->used + 2);
	unsigned slot = q->used_idx & (q->size - 1);

	ring[2 * slot] = head;
	ring[2 * slot + 1] = len;
	q->used_idx++;
	/* the entry before the index that publishes it */
	__atomic_store_n(&q->used[USED_IDX], q->used_idx, __ATOMIC_RELEASE);
}

bool virtq_need_interrupt(struct virtq *q)
{
	uint16_t old = q->signalled, new = q->used_idx, event;
	bool valid = q->signalled_valid;

	if (!q->ready)
		return false;
	/* our used index must be visible before we read what the driver asked for */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (!q->event_idx)
		return !(q->avail[AVAIL_FLAGS] & VIRTQ_AVAIL_F_NO_INTERRUPT);
	q->signalled = new;
	q->signalled_valid = true;
	if (!valid)
		return true;
	event = q->avail[AVAIL_RING + q->size]; /* used_event */
	/* vring_need_event(): did new pass event since old? */
	return (uint16_t)(new - event - 1) < (uint16_t)(new - old);
}

bool virtq_notify_enable(struct virtq *q, bool enable)
{
	if (!q->ready)
		return false;
	if (q->event_idx) {
		if (enable) /* avail_event, after the used ring */
			q->used[2 + 4 * q->size] = q->last_avail;
	} else if (enable) {
		q->used[USED_FLAGS] = 0;
	} else {
		q->used[USED_FLAGS] = VIRTQ_USED_F_NO_NOTIFY;
	}
	if (!enable)
		return false;
	/* the request must be visible before we look for buffers once more */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return avail_idx(q) != q->last_avail;
}

bool virtq_has_avail(struct virtq *q)
{
	return q->ready && avail_idx(q) != q->last_avail;
}

size_t iov_to_buf(const struct iovec *iov, unsigned n, size_t skip, void *buf, size_t len)
{
	size_t done = 0;

	for (unsigned i = 0; i < n && done < len; i++) {
		size_t l = iov[i].iov_len, c;

		if (skip >= l) {
			skip -= l;
			continue;
		}
		c = l - skip < len - done ? l - skip : len - done;
		memcpy((uint8_t *)buf + done, (uint8_t *)iov[i].iov_base + skip, c);
		done += c;
		skip = 0;
	}
	return done;
}

size_t iov_from_buf(const struct iovec *iov, unsigned n, size_t skip, const void *buf, size_t len)
{
	size_t done = 0;

	for (unsigned i = 0; i < n && done < len; i++) {
		size_t l = iov[i].iov_len, c;

		if (skip >= l) {
			skip -= l;
			continue;
		}
		c = l - skip < len - done ? l - skip : len - done;
		memcpy((uint8_t *)iov[i].iov_base + skip, (const uint8_t *)buf + done, c);
		done += c;
		skip = 0;
	}
	return done;
}
