/*
 * virtio-blk and virtio-rng through the whole device path, with the test as
 * the guest driver (virtio_driver.h): PCI discovery and BAR sizing, feature
 * negotiation, reads and writes that land in the image file, FLUSH, GET_ID,
 * DISCARD/WRITE_ZEROES, read-only disks, many requests in flight, INTx and
 * MSI-X, and hostile requests that must end in NEEDS_RESET, not a crash.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "dev/virtio/blk.h"
#include "tap.h"
#include "virtio_driver.h"

#define F_VERSION_1 (1ull << 32)
#define F_EVENT_IDX (1ull << 29)
#define F_INDIRECT (1ull << 28)
#define F_FLUSH (1ull << 9)
#define F_RO (1ull << 5)
#define F_DISCARD (1ull << 13)
#define F_WZ (1ull << 14)
#define DISK_SIZE (4u << 20)

static struct vm vm;
static struct vm_config cfg;
static char path[2][64];

struct hdr {
	uint32_t type, reserved;
	uint64_t sector;
};

/*
 * One request in descriptors base, base+1, base+2 (header, data, status) with
 * its buffers at T_DATA + base * 0x10000. Returns the status byte's address.
 */
static uint8_t *t_req(struct tdev *t, uint16_t base, uint32_t type, uint64_t sector,
		      uint32_t len, bool data_writable)
{
	uint64_t g = T_DATA + (uint64_t)base * 0x10000;
	struct hdr *h = t_ptr(t, g);
	uint8_t *status = t_ptr(t, g + 0xff00);

	*h = (struct hdr){ type, 0, sector };
	*status = 0xee;
	*t_desc(t, base) = (struct virtq_desc){ g, 16, VIRTQ_DESC_F_NEXT, (uint16_t)(base + 1) };
	if (len) {
		*t_desc(t, base + 1) = (struct virtq_desc){
			g + 0x1000, len,
			(uint16_t)(VIRTQ_DESC_F_NEXT | (data_writable ? VIRTQ_DESC_F_WRITE : 0)),
			(uint16_t)(base + 2)
		};
	} else {
		t_desc(t, base)->next = (uint16_t)(base + 2);
	}
	*t_desc(t, base + 2) = (struct virtq_desc){ g + 0xff00, 1, VIRTQ_DESC_F_WRITE, 0 };
	return status;
}

static uint8_t *t_data(struct tdev *t, uint16_t base)
{
	return t_ptr(t, T_DATA + (uint64_t)base * 0x10000 + 0x1000);
}

/* Post one request and wait for it; its status byte. */
static int t_do(struct tdev *t, uint32_t type, uint64_t sector, uint32_t len, bool wr)
{
	uint8_t *st = t_req(t, 0, type, sector, len, wr);

	t_post(t, 0, true);
	if (!t_wait_used(t, ++t->used_seen))
		return -1;
	return *st;
}

static void test_pci(struct tdev *t)
{
	uint32_t bar;

	is_int(pci_conf_read(&vm, 0, PCI_VENDOR_ID, 4), 0x12378086, "00:00.0 is the host bridge");
	is_int(pci_conf_read(&vm, 1, PCI_DEVICE_ID, 2), 0x1042, "00:01.0 is virtio-blk (modern)");
	is_int(pci_conf_read(&vm, 1, PCI_CLASS_REVISION, 1), 1, "revision 1");
	is_int(pci_conf_read(&vm, 30, PCI_VENDOR_ID, 2), 0xffff, "an empty slot reads all ones");
	ok(tdev_find(t, &vm, 1) == 0, "common, notify, ISR capabilities found");
	ok(t->device && t->msix_cap && t->notify_mult == 4, "device config, MSI-X, multiplier 4");
	is_int(pci_conf_read(&vm, 1, PCI_INTERRUPT_PIN, 1), 1, "INTA#");
	is_int(pci_conf_read(&vm, 1, PCI_INTERRUPT_LINE, 1), 10, "interrupt line 10");

	/* BAR sizing, as every OS does it */
	bar = pci_conf_read(&vm, 1, PCI_BAR0, 4);
	pci_conf_write(&vm, 1, PCI_BAR0, 4, 0xffffffff);
	is_int(pci_conf_read(&vm, 1, PCI_BAR0, 4), 0xffff8000, "BAR0 sizes as 32 KiB memory");
	pci_conf_write(&vm, 1, PCI_BAR0, 4, 0xd0000000);
	is_int(t_read(t, 0xd0000000 + 0x12, 2), 1, "a moved BAR answers at its new address");
	is_int(t_read(t, t->common + 0x12, 2), 0xffff, "and no longer at the old one");
	pci_conf_write(&vm, 1, PCI_BAR0, 4, bar);
	pci_conf_write(&vm, 1, PCI_COMMAND, 2, 0);
	is_int(t_read(t, t->common + 0x12, 2), 0xffff, "memory decoding off: the BAR is gone");
	pci_conf_write(&vm, 1, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	is_int(t_read(t, t->common + 0x12, 2), 1, "num_queues 1");

	/* conf1 through the ports, as Linux probes it */
	uint32_t a = 0x80000000u | 1 << 11, v = 0;
	bus_access(&vm.pio, 0xcf8, (uint8_t *)&a, 4, true);
	bus_access(&vm.pio, 0xcfc, (uint8_t *)&v, 4, false);
	is_int(v, 0x10421af4, "mechanism #1: vendor and device of 00:01.0");
	bus_access(&vm.pio, 0xcfe, (uint8_t *)&v, 2, false);
	is_int(v & 0xffff, 0x1042, "mechanism #1: a 16-bit read at 0xcfe");
}

static void test_features(struct tdev *t)
{
	uint64_t f;

	t_write(t, t->common + 0x14, 0, 1);
	t_write(t, t->common + 0x00, 1, 4);
	f = t_read(t, t->common + 0x04, 4) << 32;
	t_write(t, t->common + 0x00, 0, 4);
	f |= t_read(t, t->common + 0x04, 4);
	ok((f & (F_VERSION_1 | F_EVENT_IDX | F_INDIRECT | F_FLUSH | F_DISCARD | F_WZ)) ==
		   (F_VERSION_1 | F_EVENT_IDX | F_INDIRECT | F_FLUSH | F_DISCARD | F_WZ),
	   "offers VERSION_1, EVENT_IDX, INDIRECT, FLUSH, DISCARD, WRITE_ZEROES");
	ok(!(f & F_RO), "a writable disk does not say RO");
	ok(tdev_setup(t, F_VERSION_1 | 1ull << 40, TQ_SIZE) < 0, "an unoffered feature: no FEATURES_OK");
	ok(tdev_setup(t, F_FLUSH, TQ_SIZE) < 0, "no VERSION_1: no FEATURES_OK");
	is_int(t_read(t, t->device, 8), DISK_SIZE / 512, "capacity in sectors");
	is_int(t_read(t, t->device + 12, 4), 254, "seg_max");
	is_int(t_read(t, t->device + 20, 4), 512, "blk_size");
	is_int(t_read(t, t->device + 0x1000, 4), 0, "past the device config: zeros");
}

static void test_io(struct tdev *t, int fd)
{
	uint8_t buf[4096];

	ok(tdev_setup(t, F_VERSION_1 | F_EVENT_IDX | F_INDIRECT | F_FLUSH | F_DISCARD | F_WZ,
		      TQ_SIZE) == 0, "driver set up");
	memset(t_data(t, 0), 0x5a, 4096);
	is_int(t_do(t, VIRTIO_BLK_T_OUT, 8, 4096, false), VIRTIO_BLK_S_OK, "write 4 KiB at sector 8");
	ok(pread(fd, buf, 4096, 8 * 512) == 4096 && buf[0] == 0x5a && buf[4095] == 0x5a,
	   "the write is in the image file when it completes");
	memset(t_data(t, 0), 0, 4096);
	is_int(t_do(t, VIRTIO_BLK_T_IN, 8, 4096, true), VIRTIO_BLK_S_OK, "read it back");
	ok(t_data(t, 0)[100] == 0x5a && t_used_len(t, 1) == 4097, "the data, used len 4097");
	is_int(t_do(t, VIRTIO_BLK_T_FLUSH, 0, 0, false), VIRTIO_BLK_S_OK, "flush");
	is_int(t_do(t, VIRTIO_BLK_T_GET_ID, 0, 20, true), VIRTIO_BLK_S_OK, "GET_ID");
	ok(!memcmp(t_data(t, 0), "ring3-", 6), "serial %.20s", (char *)t_data(t, 0));
	is_int(t_do(t, VIRTIO_BLK_T_IN, DISK_SIZE / 512, 512, true), VIRTIO_BLK_S_IOERR,
	       "a read past the end: IOERR");
	is_int(t_do(t, VIRTIO_BLK_T_IN, UINT64_MAX / 256, 512, true), VIRTIO_BLK_S_IOERR,
	       "a sector number that overflows: IOERR");
	is_int(t_do(t, VIRTIO_BLK_T_OUT, 0, 100, false), VIRTIO_BLK_S_IOERR,
	       "a write of 100 bytes: IOERR");
	is_int(t_do(t, 77, 0, 512, true), VIRTIO_BLK_S_UNSUPP, "an unknown type: UNSUPP");
	is_int(t_do(t, VIRTIO_BLK_T_IN, DISK_SIZE / 512 - 1, 512, true), VIRTIO_BLK_S_OK,
	       "the last sector reads");

	/* WRITE_ZEROES over the 4 KiB, then DISCARD */
	struct { uint64_t sector; uint32_t num, flags; } seg = { 8, 8, 0 };
	memcpy(t_data(t, 0), &seg, 16);
	is_int(t_do(t, VIRTIO_BLK_T_WRITE_ZEROES, 0, 16, false), VIRTIO_BLK_S_OK, "write zeroes");
	ok(pread(fd, buf, 4096, 8 * 512) == 4096 && buf[0] == 0 && buf[4095] == 0,
	   "the range is zero in the file");
	seg = (typeof(seg)){ 0, 16, 0 };
	memcpy(t_data(t, 0), &seg, 16);
	is_int(t_do(t, VIRTIO_BLK_T_DISCARD, 0, 16, false), VIRTIO_BLK_S_OK, "discard");
	seg = (typeof(seg)){ DISK_SIZE / 512 - 1, 2, 0 };
	memcpy(t_data(t, 0), &seg, 16);
	is_int(t_do(t, VIRTIO_BLK_T_DISCARD, 0, 16, false), VIRTIO_BLK_S_IOERR,
	       "discard past the end: IOERR");
}

/* Fill the queue with writes and ring once: all must land. */
static void test_inflight(struct tdev *t, int fd)
{
	const unsigned n = 5; /* 5 requests of 3 descriptors in a 16-entry queue */
	uint16_t want;
	bool good = true;

	for (unsigned i = 0; i < n; i++) {
		t_req(t, (uint16_t)(3 * i), VIRTIO_BLK_T_OUT, 64 + 8 * i, 4096, false);
		memset(t_data(t, (uint16_t)(3 * i)), 'A' + (int)i, 4096);
		t_post(t, (uint16_t)(3 * i), false);
	}
	t_kick(t);
	want = (uint16_t)(t->used_seen + n);
	ok(t_wait_used(t, want), "%u writes posted at once all complete", n);
	t->used_seen = want;
	for (unsigned i = 0; i < n; i++) {
		uint8_t c;

		if (pread(fd, &c, 1, (64 + 8 * i) * 512 + 4000) != 1 || c != 'A' + i)
			good = false;
	}
	ok(good, "each is in the file");
}

static void test_irq(struct tdev *t)
{
	/* INTx: MSI-X is off */
	ok(__atomic_load_n(&fake_irq_level[10], __ATOMIC_SEQ_CST) == 1, "INTx: line 10 is high");
	is_int(t_read(t, t->isr, 1), 1, "ISR says: a queue");
	ok(fake_irq_level[10] == 0, "reading ISR lowers the line");
	is_int(t_read(t, t->isr, 1), 0, "and clears it");

	/* MSI-X: vector 0 for the queue */
	t_write(t, t->common + 0x16, 0, 2);
	t_write(t, t->common + 0x1a, 0, 2);
	is_int(t_read(t, t->common + 0x1a, 2), 0, "queue vector 0 accepted");
	t_write(t, t->common + 0x1a, 99, 2);
	is_int(t_read(t, t->common + 0x1a, 2), 0xffff, "vector 99 reads back as NO_VECTOR");
	t_write(t, t->common + 0x1a, 0, 2);
	uint64_t tbl = t->bar + 0x4000;
	t_write(t, tbl, 0xfee00000, 4);
	t_write(t, tbl + 4, 0, 4);
	t_write(t, tbl + 8, 0x41, 4);
	pci_conf_write(&vm, 1, t->msix_cap + 2, 2, MSIX_ENABLE);
	int before = fake_msi_count;
	t_do(t, VIRTIO_BLK_T_FLUSH, 0, 0, false);
	nanosleep(&(struct timespec){ 0, 20000000 }, NULL);
	ok(fake_msi_count == before, "a masked vector does not fire");
	is_int(t_read(t, t->bar + 0x5000, 8) & 1, 1, "its pending bit is set");
	t_write(t, tbl + 12, 0, 4); /* unmask */
	ok(fake_msi_count == before + 1 && fake_msi_addr == 0xfee00000 && fake_msi_data == 0x41,
	   "unmasking delivers it: address 0xfee00000, data 0x41");
	is_int(t_read(t, t->bar + 0x5000, 8) & 1, 0, "pending bit clear");
	t_do(t, VIRTIO_BLK_T_FLUSH, 0, 0, false);
	for (int i = 0; i < 500 && fake_msi_count < before + 2; i++)
		nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
	is_int(fake_msi_count, before + 2, "the next completion is an MSI");
	ok(fake_irq_level[10] == 0, "and INTx stays low");
	pci_conf_write(&vm, 1, t->msix_cap + 2, 2, 0);
}

static void test_hostile(struct tdev *t, int fd)
{
	uint8_t *st;

	/* a read into a device-readable buffer: never written, the device breaks */
	tdev_setup(t, F_VERSION_1 | F_FLUSH, TQ_SIZE);
	memset(t_data(t, 0), 0x11, 512);
	st = t_req(t, 0, VIRTIO_BLK_T_IN, 0, 512, false);
	t_post(t, 0, true);
	ok(t_wait_status(t, VIRTIO_STATUS_NEEDS_RESET), "a read into a read-only buffer: NEEDS_RESET");
	ok(t_data(t, 0)[0] == 0x11 && *st == 0xee, "and nothing was written to it");

	static const struct {
		uint64_t addr;
		uint32_t len;
		const char *what;
	} bad[] = {
		{ 64u << 20, 512, "a buffer past the end of RAM" },
		{ 0xC0000000ull, 512, "a buffer in the PCI hole" },
		{ 0x1000, 0xfffffff0u, "a 4 GiB buffer" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		tdev_setup(t, F_VERSION_1 | F_FLUSH, TQ_SIZE);
		ok(!(tdev_status(t) & VIRTIO_STATUS_NEEDS_RESET), "reset clears NEEDS_RESET");
		t_req(t, 0, VIRTIO_BLK_T_IN, 0, 512, true);
		t_desc(t, 1)->addr = bad[i].addr;
		t_desc(t, 1)->len = bad[i].len;
		t_post(t, 0, true);
		ok(t_wait_status(t, VIRTIO_STATUS_NEEDS_RESET), "%s: NEEDS_RESET", bad[i].what);
	}

	tdev_setup(t, F_VERSION_1, TQ_SIZE);
	t_req(t, 0, VIRTIO_BLK_T_IN, 0, 512, true);
	t_desc(t, 2)->flags = VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE;
	t_desc(t, 2)->next = 0;
	t_post(t, 0, true);
	ok(t_wait_status(t, VIRTIO_STATUS_NEEDS_RESET), "a looping chain: NEEDS_RESET");

	tdev_setup(t, F_VERSION_1, TQ_SIZE);
	*t_desc(t, 0) = (struct virtq_desc){ T_DATA, 16, VIRTQ_DESC_F_WRITE, 0 };
	t_post(t, 0, true);
	ok(t_wait_status(t, VIRTIO_STATUS_NEEDS_RESET), "a request with no readable header");

	ok(tdev_setup(t, F_VERSION_1, 12) == 0 && t_wait_status(t, VIRTIO_STATUS_NEEDS_RESET),
	   "queue size 12 (not a power of 2): NEEDS_RESET at enable");

	tdev_setup(t, F_VERSION_1, TQ_SIZE);
	uint16_t *a = t_ptr(t, T_AVAIL);
	a[1] = 1000;
	t_kick(t);
	ok(t_wait_status(t, VIRTIO_STATUS_NEEDS_RESET), "the avail index jumps by 1000");

	/* the device still works after a reset */
	ok(tdev_setup(t, F_VERSION_1 | F_FLUSH, TQ_SIZE) == 0 &&
		   t_do(t, VIRTIO_BLK_T_IN, 0, 512, true) == VIRTIO_BLK_S_OK,
	   "after a reset the disk reads again");
	(void)fd;
}

static void test_ro(struct tdev *t)
{
	uint64_t f;

	ok(tdev_find(t, &vm, 2) == 0, "the read-only disk is 00:02.0");
	t_write(t, t->common + 0x00, 0, 4);
	f = t_read(t, t->common + 0x04, 4);
	ok((f & F_RO) && !(f & F_DISCARD), "it offers RO, not DISCARD");
	tdev_setup(t, F_VERSION_1 | F_RO, TQ_SIZE);
	is_int(t_do(t, VIRTIO_BLK_T_OUT, 0, 512, false), VIRTIO_BLK_S_IOERR, "a write: IOERR");
	is_int(t_do(t, VIRTIO_BLK_T_IN, 0, 512, true), VIRTIO_BLK_S_OK, "a read works");
	is_int(pci_conf_read(&vm, 2, PCI_INTERRUPT_LINE, 1), 11, "its interrupt line is 11");
}

static void test_rng(struct tdev *t)
{
	uint8_t *p;
	bool nonzero = false;

	ok(tdev_find(t, &vm, 3) == 0 && pci_conf_read(&vm, 3, PCI_DEVICE_ID, 2) == 0x1044,
	   "00:03.0 is virtio-rng");
	tdev_setup(t, F_VERSION_1, TQ_SIZE);
	p = t_ptr(t, T_DATA);
	memset(p, 0, 64);
	*t_desc(t, 0) = (struct virtq_desc){ T_DATA, 64, VIRTQ_DESC_F_WRITE, 0 };
	t_post(t, 0, true);
	ok(t_wait_used(t, 1) && t_used_len(t, 0) == 64, "64 random bytes");
	for (int i = 0; i < 64; i++)
		nonzero |= p[i] != 0;
	ok(nonzero, "not all zero");
	*t_desc(t, 1) = (struct virtq_desc){ T_DATA, 64, 0, 0 };
	t_post(t, 1, true);
	ok(t_wait_status(t, VIRTIO_STATUS_NEEDS_RESET), "a readable buffer: NEEDS_RESET");
}

int main(void)
{
	struct tdev t;
	int fd;

	for (int i = 0; i < 2; i++) {
		snprintf(path[i], sizeof(path[i]), "/tmp/ring3-test-blk-%d-%d.img", (int)getpid(), i);
		fd = open(path[i], O_RDWR | O_CREAT | O_TRUNC, 0600);
		if (fd < 0 || ftruncate(fd, DISK_SIZE) < 0) {
			skip_all("cannot make an image file in /tmp");
			return 0;
		}
		close(fd);
	}
	cfg.nr_disks = 2;
	cfg.disk[0] = (struct vm_disk){ .path = path[0] };
	cfg.disk[1] = (struct vm_disk){ .path = path[1], .ro = true };
	if (tvm_init(&vm, &cfg) || virtio_init_all(&vm) || evloop_start(&vm.loop)) {
		skip_all("cannot build the test VM");
		return 0;
	}
	fd = open(path[0], O_RDONLY);
	test_pci(&t);
	test_features(&t);
	test_io(&t, fd);
	test_inflight(&t, fd);
	test_irq(&t);
	test_hostile(&t, fd);
	test_ro(&t);
	test_rng(&t);
	evloop_stop(&vm.loop);
	virtio_destroy_all(&vm);
	close(fd);
	unlink(path[0]);
	unlink(path[1]);
	return done_testing();
}
