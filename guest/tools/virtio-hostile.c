/*
 * virtio-hostile PCI-ADDRESS: a hostile virtio-blk driver, run as root in a
 * guest. It takes a virtio-blk function away from Linux's driver, drives it
 * from user space through its BAR (sysfs resource0) and pages whose physical
 * addresses /proc/self/pagemap gives, and posts what no honest driver would:
 * buffers outside RAM, a looping chain, an oversized indirect chain and a
 * read into a device-readable buffer (virtio 1.2 §2.7, §4.1, §5.2). After
 * each, the device must say DEVICE_NEEDS_RESET, and must work again after a
 * reset. Prints TAP; exits 0 when every check passed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define QSZ 16
#define NEEDS_RESET 0x40
#define F_NEXT 1
#define F_WRITE 2
#define F_INDIRECT 4

struct desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
};

static volatile uint8_t *bar;
static uint32_t common, notify, isr;
static int n, failed;

/* One page of this process, locked, and its guest-physical address. */
struct page {
	uint8_t *p;
	uint64_t gpa;
};

static void check(int cond, const char *fmt, ...)
{
	va_list ap;

	printf("%sok %d - ", cond ? "" : "not ", ++n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	failed += !cond;
}

static int page_get(struct page *pg)
{
	uint64_t ent;
	int fd;

	pg->p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_LOCKED,
		     -1, 0);
	if (pg->p == MAP_FAILED)
		return -1;
	memset(pg->p, 0, 4096);
	fd = open("/proc/self/pagemap", O_RDONLY);
	if (fd < 0)
		return -1;
	if (pread(fd, &ent, 8, (off_t)((uintptr_t)pg->p / 4096 * 8)) != 8 || !(ent >> 63 & 1)) {
		close(fd);
		return -1;
	}
	close(fd);
	pg->gpa = (ent & ((1ull << 55) - 1)) * 4096;
	return pg->gpa ? 0 : -1; /* 0: not root, pagemap hides the frame */
}

static void w8(uint32_t off, uint8_t v) { *(volatile uint8_t *)(bar + off) = v; }
static void w16(uint32_t off, uint16_t v) { *(volatile uint16_t *)(bar + off) = v; }
static void w32(uint32_t off, uint32_t v) { *(volatile uint32_t *)(bar + off) = v; }
static uint8_t r8(uint32_t off) { return *(volatile uint8_t *)(bar + off); }

static struct page ring_desc, ring_avail, ring_used, data, indirect;

/* Reset, negotiate VERSION_1 and INDIRECT_DESC, set up queue 0, DRIVER_OK. */
static int setup(void)
{
	w8(common + 0x14, 0);
	w8(common + 0x14, 1 | 2);
	w32(common + 0x08, 0);
	w32(common + 0x0c, 1u << 28); /* INDIRECT_DESC */
	w32(common + 0x08, 1);
	w32(common + 0x0c, 1); /* VERSION_1 */
	w8(common + 0x14, 1 | 2 | 8);
	if (!(r8(common + 0x14) & 8))
		return -1;
	memset(ring_desc.p, 0, 4096);
	memset(ring_avail.p, 0, 4096);
	memset(ring_used.p, 0, 4096);
	w16(common + 0x16, 0);
	w16(common + 0x18, QSZ);
	w32(common + 0x20, (uint32_t)ring_desc.gpa);
	w32(common + 0x24, (uint32_t)(ring_desc.gpa >> 32));
	w32(common + 0x28, (uint32_t)ring_avail.gpa);
	w32(common + 0x2c, (uint32_t)(ring_avail.gpa >> 32));
	w32(common + 0x30, (uint32_t)ring_used.gpa);
	w32(common + 0x34, (uint32_t)(ring_used.gpa >> 32));
	w16(common + 0x1c, 1);
	w8(common + 0x14, 1 | 2 | 8 | 4);
	return 0;
}

static struct desc *d(unsigned i)
{
	return (struct desc *)ring_desc.p + i;
}

static void post(uint16_t head)
{
	volatile uint16_t *a = (volatile uint16_t *)ring_avail.p;

	a[2 + a[1] % QSZ] = head;
	__atomic_store_n(&a[1], (uint16_t)(a[1] + 1), __ATOMIC_RELEASE);
	w16(notify, 0);
}

static int wait_for(int (*done)(void))
{
	for (int i = 0; i < 3000; i++) {
		if (done())
			return 1;
		nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
	}
	return 0;
}

static int needs_reset(void) { return r8(common + 0x14) & NEEDS_RESET; }
static int used_one(void) { return __atomic_load_n((volatile uint16_t *)ring_used.p + 1, __ATOMIC_ACQUIRE) == 1; }

/* A READ of sector 0: header, data (writable unless told), status. */
static void read_req(int data_writable)
{
	struct { uint32_t type, reserved; uint64_t sector; } *h = (void *)data.p;

	h->type = 0;
	h->sector = 0;
	data.p[4095] = 0xee;
	*d(0) = (struct desc){ data.gpa, 16, F_NEXT, 1 };
	*d(1) = (struct desc){ data.gpa + 512, 512, (uint16_t)(F_NEXT | (data_writable ? F_WRITE : 0)), 2 };
	*d(2) = (struct desc){ data.gpa + 4095, 1, F_WRITE, 0 };
}

int main(int argc, char **argv)
{
	char path[256];
	int fd;

	if (argc != 2) {
		fprintf(stderr, "usage: virtio-hostile 0000:00:0N.0 (a virtio-blk function)\n");
		return 2;
	}
	/* take the function from Linux's driver; it may not have one */
	fd = open("/sys/bus/pci/drivers/virtio-pci/unbind", O_WRONLY);
	if (fd >= 0) {
		if (write(fd, argv[1], strlen(argv[1])) < 0 && errno != ENODEV)
			perror("unbind");
		close(fd);
	}
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/resource0", argv[1]);
	fd = open(path, O_RDWR | O_SYNC);
	if (fd < 0) {
		perror(path);
		return 2;
	}
	bar = mmap(NULL, 0x8000, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (bar == MAP_FAILED) {
		perror("mmap resource0");
		return 2;
	}
	/* ring3's layout, as its capabilities say (src/dev/virtio/pci.c) */
	common = 0x0000, isr = 0x1000, notify = 0x3000;
	(void)isr;
	/* bus mastering, which the unbound driver turned off */
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/enable", argv[1]);
	fd = open(path, O_WRONLY);
	if (fd >= 0) {
		if (write(fd, "1", 1) < 0)
			perror("enable");
		close(fd);
	}
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/config", argv[1]);
	fd = open(path, O_RDWR);
	if (fd >= 0) {
		uint16_t cmd;

		if (pread(fd, &cmd, 2, 4) == 2) {
			cmd |= 6; /* memory, bus master */
			if (pwrite(fd, &cmd, 2, 4) != 2)
				perror("config");
		}
		close(fd);
	}
	if (page_get(&ring_desc) || page_get(&ring_avail) || page_get(&ring_used) ||
	    page_get(&data) || page_get(&indirect)) {
		fprintf(stderr, "cannot lock pages and learn their addresses (root?)\n");
		return 2;
	}

	check(setup() == 0, "the device takes our features");
	read_req(1);
	post(0);
	check(wait_for(used_one) && data.p[4095] == 0, "an honest read completes with status OK");

	setup();
	read_req(1);
	d(1)->addr = 0x7fff00000000ull; /* far beyond any RAM */
	post(0);
	check(wait_for(needs_reset), "a buffer outside guest RAM: NEEDS_RESET");

	setup();
	read_req(1);
	d(1)->addr = 0xC0000000ull; /* the PCI hole */
	post(0);
	check(wait_for(needs_reset), "a buffer in the PCI hole: NEEDS_RESET");

	setup();
	read_req(1);
	d(2)->flags = F_NEXT | F_WRITE;
	d(2)->next = 1; /* 1 → 2 → 1 → … */
	post(0);
	check(wait_for(needs_reset), "a looping chain: NEEDS_RESET");

	setup();
	for (unsigned i = 0; i < 256; i++) /* 256 entries of 16 bytes: the whole page */
		((struct desc *)indirect.p)[i] = (struct desc){ data.gpa, 1, F_NEXT, (uint16_t)(i + 1) };
	*d(0) = (struct desc){ indirect.gpa, 4096, F_INDIRECT, 0 };
	((struct desc *)indirect.p)[255].next = 0; /* and round again */
	post(0);
	check(wait_for(needs_reset), "an indirect chain longer than its table: NEEDS_RESET");

	setup();
	read_req(0);
	memset(data.p + 512, 0x11, 512);
	post(0);
	check(wait_for(needs_reset), "a read into a device-readable buffer: NEEDS_RESET");
	check(data.p[512] == 0x11 && data.p[1023] == 0x11, "and the device did not write into it");

	setup();
	*d(0) = (struct desc){ data.gpa, 16, F_NEXT, 0xffff };
	post(0);
	check(wait_for(needs_reset), "a next index of 0xffff: NEEDS_RESET");

	check(setup() == 0 && !needs_reset(), "a reset clears NEEDS_RESET");
	read_req(1);
	post(0);
	check(wait_for(used_one) && data.p[4095] == 0, "and the device works again");
	w8(common + 0x14, 0);
	printf("1..%d\n", n);
	return failed ? 1 : 0;
}
