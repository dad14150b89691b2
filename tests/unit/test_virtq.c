/*
 * Split virtqueues against a hostile driver: bad queue set-ups, buffers
 * outside RAM, loops, long chains, wrong directions, bad indirect tables,
 * index jumps; then the well-behaved paths (EVENT_IDX, wrap-around) and a
 * random fuzz that checks no buffer ever points outside guest RAM.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dev/virtio/virtq.h"
#include "tap.h"

#define QSZ 8
#define DESC 0x1000
#define AVAIL 0x2000
#define USED 0x3000
#define BUF 0x10000
#define RAM (16u << 20)

static struct guest_mem mem;
static struct virtq q;

static struct virtq_desc *desc(unsigned i)
{
	return (struct virtq_desc *)mem_ptr(&mem, DESC, 16 * QSZ) + i;
}

static uint16_t *avail(void)
{
	return mem_ptr(&mem, AVAIL, 6 + 2 * QSZ);
}

static uint16_t *used(void)
{
	return mem_ptr(&mem, USED, 6 + 8 * QSZ);
}

static void setd(struct virtq_desc *d, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	*d = (struct virtq_desc){ addr, len, flags, next };
}

/* A fresh queue of QSZ entries with EVENT_IDX and indirect descriptors. */
static void fresh(void)
{
	memset(mem.host, 0, 0x20000);
	virtq_reset(&q);
	q.size = QSZ;
	q.desc_gpa = DESC;
	q.avail_gpa = AVAIL;
	q.used_gpa = USED;
	q.event_idx = q.indirect = true;
	virtq_enable(&q, &mem);
}

/* The driver makes descriptor head available. */
static void post(uint16_t head)
{
	uint16_t *a = avail();

	a[2 + (a[1] % QSZ)] = head;
	a[1]++;
}

static int pop(struct virtq_elem *e, const char **why)
{
	return virtq_pop(&q, e, why);
}

static void test_enable(void)
{
	static const struct {
		uint16_t size;
		uint64_t d, a, u;
		const char *what;
	} bad[] = {
		{ 0, DESC, AVAIL, USED, "size 0" },
		{ 3, DESC, AVAIL, USED, "size 3 (not a power of 2)" },
		{ 12, DESC, AVAIL, USED, "size 12" },
		{ 512, DESC, AVAIL, USED, "size 512 (above the maximum)" },
		{ QSZ, DESC + 8, AVAIL, USED, "misaligned descriptor table" },
		{ QSZ, DESC, AVAIL + 1, USED, "misaligned available ring" },
		{ QSZ, DESC, AVAIL, USED + 2, "misaligned used ring" },
		{ QSZ, RAM - 64, AVAIL, USED, "descriptor table past the end of RAM" },
		{ QSZ, DESC, RAM - 4, USED, "available ring past the end of RAM" },
		{ QSZ, DESC, AVAIL, 0xfffffffffffffff0ull, "used ring at the top of the address space" },
		{ QSZ, 0xC0000000ull, AVAIL, USED, "descriptor table in the PCI hole" },
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		virtq_reset(&q);
		q.size = bad[i].size;
		q.desc_gpa = bad[i].d;
		q.avail_gpa = bad[i].a;
		q.used_gpa = bad[i].u;
		ok(virtq_enable(&q, &mem) == -EINVAL && !q.ready, "enable refuses %s", bad[i].what);
	}
	virtq_reset(&q);
	q.size = QSZ;
	q.desc_gpa = DESC;
	q.avail_gpa = AVAIL;
	q.used_gpa = USED;
	ok(virtq_enable(&q, &mem) == 0 && q.ready, "enable takes a good queue");

	struct virtq_elem e;
	const char *why;
	virtq_reset(&q);
	ok(virtq_pop(&q, &e, &why) == 0, "a queue never enabled pops nothing");
}

static void test_simple(void)
{
	struct virtq_elem e;
	const char *why;

	fresh();
	is_int(pop(&e, &why), 0, "empty ring: nothing to pop");
	setd(desc(0), BUF, 16, VIRTQ_DESC_F_NEXT, 1);
	setd(desc(1), BUF + 0x1000, 512, VIRTQ_DESC_F_NEXT, 2);
	setd(desc(2), BUF + 0x2000, 1, VIRTQ_DESC_F_WRITE, 0);
	post(0);
	is_int(pop(&e, &why), 1, "a three-buffer chain pops");
	ok(e.head == 0 && e.nr_out == 2 && e.nr_in == 1 && e.out_len == 528 && e.in_len == 1,
	   "chain: 2 readable (528 bytes), 1 writable (1 byte)");
	ok(e.iov[1].iov_base == mem_ptr(&mem, BUF + 0x1000, 1) && e.iov[1].iov_len == 512,
	   "iov points at the guest's buffer");
	is_int(pop(&e, &why), 0, "then the ring is empty");

	virtq_push(&q, e.head, 1);
	ok(used()[1] == 1 && ((uint32_t *)(used() + 2))[0] == 0 &&
		   ((uint32_t *)(used() + 2))[1] == 1,
	   "push: used idx 1, entry {id 0, len 1}");

	/* a zero-length buffer at the very end of RAM is inside it */
	setd(desc(3), RAM, 0, 0, 0);
	post(3);
	is_int(pop(&e, &why), 1, "a zero-length buffer at the end of RAM is accepted");
	/* a buffer that ends exactly at the end of RAM */
	setd(desc(4), RAM - 4096, 4096, VIRTQ_DESC_F_WRITE, 0);
	post(4);
	ok(pop(&e, &why) == 1 && e.nr_in == 1, "a buffer ending at the end of RAM is accepted");
}

/* One hostile chain: the queue must refuse it with -EINVAL and a reason. */
static void expect_bad(const char *what)
{
	struct virtq_elem e;
	const char *why = NULL;
	uint16_t before = q.last_avail;
	int r = pop(&e, &why);

	ok(r == -EINVAL && why && q.last_avail == before, "refused: %s (%s)", what,
	   why ? why : "no reason");
}

static void test_hostile(void)
{
	/* addresses */
	fresh();
	setd(desc(0), RAM, 1, 0, 0);
	post(0);
	expect_bad("a buffer just past the end of RAM");

	fresh();
	setd(desc(0), RAM - 8, 16, 0, 0);
	post(0);
	expect_bad("a buffer straddling the end of RAM");

	fresh();
	setd(desc(0), 0xC0000000ull, 4096, VIRTQ_DESC_F_WRITE, 0);
	post(0);
	expect_bad("a buffer in the PCI hole");

	fresh();
	setd(desc(0), 0xfffffffffffff000ull, 0x2000, 0, 0);
	post(0);
	expect_bad("a buffer whose end wraps around 2^64");

	fresh();
	setd(desc(0), BUF, 0xffffffffu, VIRTQ_DESC_F_WRITE, 0);
	post(0);
	expect_bad("a 4 GiB buffer in 16 MiB of RAM");

	/* loops and long chains */
	fresh();
	setd(desc(0), BUF, 16, VIRTQ_DESC_F_NEXT, 0);
	post(0);
	expect_bad("a descriptor whose next is itself");

	fresh();
	setd(desc(0), BUF, 16, VIRTQ_DESC_F_NEXT, 1);
	setd(desc(1), BUF, 16, VIRTQ_DESC_F_NEXT, 2);
	setd(desc(2), BUF, 16, VIRTQ_DESC_F_NEXT, 0);
	post(0);
	expect_bad("a three-descriptor loop");

	fresh();
	for (unsigned i = 0; i < QSZ; i++)
		setd(desc(i), BUF, 16, VIRTQ_DESC_F_NEXT, (uint16_t)((i + 1) % QSZ));
	post(3);
	expect_bad("a chain through every descriptor and around again");

	fresh();
	setd(desc(0), BUF, 16, VIRTQ_DESC_F_NEXT, QSZ);
	post(0);
	expect_bad("a next index equal to the queue size");

	fresh();
	setd(desc(0), BUF, 16, VIRTQ_DESC_F_NEXT, 0xffff);
	post(0);
	expect_bad("a next index of 0xffff");

	/* direction */
	fresh();
	setd(desc(0), BUF, 16, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
	setd(desc(1), BUF, 16, 0, 0);
	post(0);
	expect_bad("a readable buffer after a writable one");

	/* ring indices */
	fresh();
	setd(desc(0), BUF, 16, 0, 0);
	avail()[2] = QSZ;
	avail()[1] = 1;
	expect_bad("an available entry naming descriptor QSZ");

	fresh();
	avail()[1] = QSZ + 1;
	expect_bad("the available index jumping by more than the queue size");

	fresh();
	avail()[1] = 0x8000;
	expect_bad("the available index jumping by 0x8000");

	/* indirect tables */
	uint64_t tbl = BUF + 0x4000;
	struct virtq_desc *t = mem_ptr(&mem, tbl, 16 * 300);

	fresh();
	q.indirect = false;
	setd(desc(0), tbl, 32, VIRTQ_DESC_F_INDIRECT, 0);
	setd(&t[0], BUF, 16, VIRTQ_DESC_F_NEXT, 1);
	setd(&t[1], BUF, 16, VIRTQ_DESC_F_WRITE, 0);
	post(0);
	expect_bad("an indirect descriptor that was not negotiated");

	fresh();
	setd(desc(0), tbl, 32, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, 1);
	post(0);
	expect_bad("an indirect descriptor with NEXT");

	fresh();
	setd(desc(0), tbl, 0, VIRTQ_DESC_F_INDIRECT, 0);
	post(0);
	expect_bad("an empty indirect table");

	fresh();
	setd(desc(0), tbl, 17, VIRTQ_DESC_F_INDIRECT, 0);
	post(0);
	expect_bad("an indirect table of 17 bytes");

	fresh();
	setd(desc(0), tbl + 8, 32, VIRTQ_DESC_F_INDIRECT, 0);
	post(0);
	expect_bad("a misaligned indirect table");

	fresh();
	setd(desc(0), RAM - 16, 32, VIRTQ_DESC_F_INDIRECT, 0);
	post(0);
	expect_bad("an indirect table past the end of RAM");

	fresh();
	setd(desc(0), tbl, 16 * 300, VIRTQ_DESC_F_INDIRECT, 0);
	for (unsigned i = 0; i < 300; i++)
		setd(&t[i], BUF, 1, VIRTQ_DESC_F_NEXT, (uint16_t)(i + 1));
	post(0);
	expect_bad("an indirect table of 300 entries");

	fresh();
	setd(desc(0), tbl, 16 * 4, VIRTQ_DESC_F_INDIRECT, 0);
	setd(&t[0], BUF, 16, VIRTQ_DESC_F_NEXT, 1);
	setd(&t[1], BUF, 16, VIRTQ_DESC_F_NEXT, 0);
	post(0);
	expect_bad("a loop inside an indirect table");

	fresh();
	setd(desc(0), tbl, 16 * 2, VIRTQ_DESC_F_INDIRECT, 0);
	setd(&t[0], BUF, 16, VIRTQ_DESC_F_NEXT, 2);
	post(0);
	expect_bad("an indirect next beyond its table");

	fresh();
	setd(desc(0), tbl, 16 * 2, VIRTQ_DESC_F_INDIRECT, 0);
	setd(&t[0], BUF, 16, VIRTQ_DESC_F_NEXT, 1);
	setd(&t[1], tbl, 32, VIRTQ_DESC_F_INDIRECT, 0);
	post(0);
	expect_bad("an indirect descriptor inside an indirect table");

	fresh();
	setd(desc(0), tbl, 16 * 2, VIRTQ_DESC_F_INDIRECT, 0);
	setd(&t[0], BUF, 16, VIRTQ_DESC_F_NEXT, 1);
	setd(&t[1], 0x7fff00000000ull, 16, VIRTQ_DESC_F_WRITE, 0);
	post(0);
	expect_bad("an indirect buffer outside guest RAM");

	/* a good indirect chain, after a direct descriptor */
	struct virtq_elem e;
	const char *why;
	fresh();
	setd(desc(5), BUF, 16, VIRTQ_DESC_F_NEXT, 6);
	setd(desc(6), tbl, 16 * 3, VIRTQ_DESC_F_INDIRECT, 0);
	setd(&t[0], BUF, 100, VIRTQ_DESC_F_NEXT, 2);
	setd(&t[2], BUF + 0x100, 200, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
	setd(&t[1], BUF + 0x200, 1, VIRTQ_DESC_F_WRITE, 0);
	post(5);
	ok(pop(&e, &why) == 1 && e.head == 5 && e.nr_out == 2 && e.nr_in == 2 &&
		   e.out_len == 116 && e.in_len == 201,
	   "a direct buffer then an indirect table of three: 2 out, 2 in");
}

static void test_notify(void)
{
	struct virtq_elem e;
	const char *why;
	uint16_t *a, *u;

	/* without EVENT_IDX: the NO_INTERRUPT and NO_NOTIFY flags */
	fresh();
	q.event_idx = false;
	a = avail();
	u = used();
	setd(desc(0), BUF, 1, VIRTQ_DESC_F_WRITE, 0);
	post(0);
	pop(&e, &why);
	virtq_push(&q, 0, 1);
	ok(virtq_need_interrupt(&q), "flags: an interrupt by default");
	a[0] = VIRTQ_AVAIL_F_NO_INTERRUPT;
	ok(!virtq_need_interrupt(&q), "flags: none when the driver set NO_INTERRUPT");
	virtq_notify_enable(&q, false);
	ok(u[0] == VIRTQ_USED_F_NO_NOTIFY, "flags: NO_NOTIFY while the device polls");
	ok(!virtq_notify_enable(&q, true) && u[0] == 0, "flags: notifications on, nothing new");
	post(0);
	ok(virtq_notify_enable(&q, true), "flags: enabling sees a buffer that came meanwhile");

	/* EVENT_IDX */
	fresh();
	a = avail();
	u = used();
	for (int i = 0; i < 3; i++) {
		setd(desc((unsigned)i), BUF, 1, VIRTQ_DESC_F_WRITE, 0);
		post((uint16_t)i);
	}
	pop(&e, &why);
	virtq_push(&q, e.head, 1);
	ok(virtq_need_interrupt(&q), "event idx: the first completion interrupts");
	a[2 + QSZ] = 2; /* used_event: interrupt when used idx passes 2 */
	pop(&e, &why);
	virtq_push(&q, e.head, 1);
	ok(!virtq_need_interrupt(&q), "event idx: used idx 2 does not pass used_event 2");
	pop(&e, &why);
	virtq_push(&q, e.head, 1);
	ok(virtq_need_interrupt(&q), "event idx: used idx 3 passes used_event 2");
	ok(!virtq_need_interrupt(&q), "event idx: nothing new, no interrupt");
	ok(!virtq_notify_enable(&q, true) && u[2 + 4 * QSZ] == 3,
	   "event idx: avail_event = the next index we will read");

	/* wrap-around of the 16-bit indices */
	fresh();
	q.last_avail = q.used_idx = 0xfffe;
	avail()[1] = 0xfffe;
	for (int i = 0; i < 4; i++) {
		setd(desc((unsigned)i), BUF, 1, 0, 0);
		post((uint16_t)i);
	}
	int n = 0;
	while (pop(&e, &why) == 1) {
		virtq_push(&q, e.head, 0);
		n++;
	}
	ok(n == 4 && q.last_avail == 2 && used()[1] == 2, "indices wrap from 0xfffe to 2");
}

static void test_iov(void)
{
	char a[4] = "abc", b[6] = "defgh", out[16] = { 0 };
	struct iovec iov[2] = { { a, 3 }, { b, 5 } };

	ok(iov_to_buf(iov, 2, 0, out, sizeof(out)) == 8 && !memcmp(out, "abcdefgh", 8),
	   "iov_to_buf gathers");
	ok(iov_to_buf(iov, 2, 4, out, 2) == 2 && !memcmp(out, "ef", 2), "iov_to_buf with skip");
	ok(iov_from_buf(iov, 2, 2, "XYZ", 3) == 3 && !memcmp(a, "abX", 3) && !memcmp(b, "YZ", 2),
	   "iov_from_buf scatters across buffers");
	ok(iov_from_buf(iov, 2, 7, "123", 3) == 1 && b[4] == '1', "iov_from_buf stops at the end");
}

/* Random tables and rings: every outcome is a clean chain inside RAM or a refusal. */
static void test_fuzz(void)
{
	unsigned seed = 12345, good = 0, bad = 0, escaped = 0;
	struct virtq_elem *e = malloc(sizeof(*e));
	const char *why;

	for (int round = 0; round < 20000; round++) {
		fresh();
		for (unsigned i = 0; i < QSZ; i++) {
			struct virtq_desc *d = desc(i);
			unsigned r = (unsigned)rand_r(&seed);

			d->addr = (r & 1) ? (uint64_t)rand_r(&seed) % (RAM + 0x1000)
					  : ((uint64_t)rand_r(&seed) << 33) ^ (uint64_t)rand_r(&seed);
			d->len = (r & 2) ? (uint32_t)rand_r(&seed) % 0x2000 : (uint32_t)rand_r(&seed);
			d->flags = (uint16_t)(rand_r(&seed) & 7);
			d->next = (uint16_t)((r & 4) ? rand_r(&seed) % QSZ : rand_r(&seed));
			if ((r & 0x70) == 0x10) { /* an indirect table of random entries in RAM */
				d->addr = BUF + 0x10 * (uint64_t)(rand_r(&seed) % 64);
				d->len = 16 * (uint32_t)(rand_r(&seed) % 8);
			}
		}
		for (unsigned i = 0; i < 0x400; i += 4)
			*(uint32_t *)mem_ptr(&mem, BUF + i, 4) = (uint32_t)rand_r(&seed);
		avail()[1] = (uint16_t)(rand_r(&seed) % 12);
		for (unsigned i = 0; i < QSZ; i++)
			avail()[2 + i] = (uint16_t)(rand_r(&seed) % (QSZ + 2));
		for (int k = 0; k < 12; k++) {
			int r = pop(e, &why);

			if (r <= 0) {
				if (r < 0)
					bad++;
				break;
			}
			good++;
			for (unsigned i = 0; i < e->nr_out + e->nr_in; i++) {
				uint8_t *p = e->iov[i].iov_base;

				if (p < mem.host || p + e->iov[i].iov_len > mem.host + mem.size)
					escaped++;
			}
		}
	}
	ok(escaped == 0, "fuzz: %u chains accepted, %u refused, no buffer outside RAM", good, bad);
	ok(good > 0 && bad > 0, "fuzz: both outcomes were exercised");
	free(e);
}

int main(void)
{
	if (mem_init(&mem, RAM)) {
		skip_all("cannot allocate guest RAM");
		return 0;
	}
	test_enable();
	test_simple();
	test_hostile();
	test_notify();
	test_iov();
	test_fuzz();
	mem_destroy(&mem);
	return done_testing();
}
