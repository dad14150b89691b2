/*
 * virtio-net with libslirp through the whole device path: the guest (this
 * test) asks for 10.0.2.2's MAC with an ARP request on the transmit queue,
 * and slirp's reply comes back in the receive queue, in one buffer and then
 * spread over several small ones (mergeable receive buffers). A writable
 * transmit buffer breaks the device.
 */
#include <arpa/inet.h>
#include <unistd.h>

#include "tap.h"
#include "virtio_driver.h"

#define TX_DESC 0x20000
#define TX_AVAIL 0x21000
#define TX_USED 0x22000
#define F_MAC (1ull << 5)
#define F_MRG (1ull << 15)

static struct vm vm;
static struct vm_config cfg;
static uint16_t tx_n;

static void setup_tx(struct tdev *t)
{
	memset(t_ptr(t, TX_DESC), 0, 0x3000);
	tx_n = 0;
	t_write(t, t->common + 0x16, 1, 2);
	t_write(t, t->common + 0x18, TQ_SIZE, 2);
	t_write(t, t->common + 0x20, TX_DESC, 4);
	t_write(t, t->common + 0x28, TX_AVAIL, 4);
	t_write(t, t->common + 0x30, TX_USED, 4);
	t_write(t, t->common + 0x1c, 1, 2);
}

static void tx(struct tdev *t, uint64_t gpa, uint32_t len, uint16_t flags)
{
	uint16_t *a = t_ptr(t, TX_AVAIL), i = tx_n++ % TQ_SIZE;

	((struct virtq_desc *)t_ptr(t, TX_DESC))[i] = (struct virtq_desc){ gpa, len, flags, 0 };
	a[2 + a[1] % TQ_SIZE] = i;
	__atomic_store_n(&a[1], (uint16_t)(a[1] + 1), __ATOMIC_RELEASE);
	t_write(t, t->notify + 4, 1, 2);
}

/* A virtio-net header (12 zero bytes) and an ARP request for 10.0.2.2. */
static void arp_request(struct tdev *t, uint64_t gpa)
{
	uint8_t *p = t_ptr(t, gpa);
	static const uint8_t arp[42] = {
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x08, 0x06,
		0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01,
		0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 10, 0, 2, 15,
		0, 0, 0, 0, 0, 0, 10, 0, 2, 2,
	};

	memset(p, 0, 12);
	memcpy(p + 12, arp, sizeof(arp));
}

int main(void)
{
	struct tdev t;
	uint8_t *rx, got[64];
	uint16_t nb;

	cfg.net.kind = NET_USER;
	if (tvm_init(&vm, &cfg) || virtio_init_all(&vm) || evloop_start(&vm.loop)) {
		skip_all("cannot build the test VM (libslirp?)");
		return 0;
	}
	ok(tdev_find(&t, &vm, 1) == 0 && pci_conf_read(&vm, 1, PCI_DEVICE_ID, 2) == 0x1041,
	   "00:01.0 is virtio-net");
	is_int(pci_conf_read(&vm, 1, PCI_CLASS_REVISION + 3, 1), 0x02, "class: network");
	ok(t_read(&t, t.device, 1) == 0x52 && t_read(&t, t.device + 5, 1) == 0x56 &&
		   t_read(&t, t.device + 6, 2) == 1,
	   "MAC 52:54:00:12:34:56, link up");
	ok(tdev_setup(&t, 1ull << 32 | F_MAC | F_MRG, TQ_SIZE) == 0, "driver set up (receive queue)");
	setup_tx(&t);

	/* one receive buffer of 2 KiB */
	*t_desc(&t, 0) = (struct virtq_desc){ T_DATA, 2048, VIRTQ_DESC_F_WRITE, 0 };
	t_post(&t, 0, true);
	arp_request(&t, T_DATA + 0x10000);
	tx(&t, T_DATA + 0x10000, 54, 0);
	ok(t_wait_used(&t, 1), "a frame comes back");
	t.used_seen = 1;
	rx = t_ptr(&t, T_DATA);
	memcpy(&nb, rx + 10, 2);
	ok(nb == 1 && rx[12 + 12] == 0x08 && rx[12 + 13] == 0x06 && rx[12 + 21] == 2,
	   "an ARP reply in one buffer (num_buffers %u)", nb);
	ok(!memcmp(rx + 12 + 28, "\x0a\x00\x02\x02", 4), "from 10.0.2.2");
	memcpy(got, rx + 12, 42);

	/* mergeable: the 54-byte answer over buffers of 20 bytes */
	for (uint16_t i = 1; i <= 4; i++) {
		*t_desc(&t, i) = (struct virtq_desc){ T_DATA + 0x1000 * i, 20, VIRTQ_DESC_F_WRITE, 0 };
		t_post(&t, i, i == 4);
	}
	arp_request(&t, T_DATA + 0x10000);
	tx(&t, T_DATA + 0x10000, 54, 0);
	/* slirp pads the 42-byte reply to Ethernet's minimum and more: over 60 bytes */
	ok(t_wait_used(&t, 5), "the next reply takes all four 20-byte buffers");
	memcpy(&nb, (uint8_t *)t_ptr(&t, T_DATA + 0x1000) + 10, 2);
	is_int(nb, 4, "num_buffers 4");
	ok(t_used_len(&t, 4) > 0 && t_used_len(&t, 4) <= 20, "the last holds the rest (%u bytes)",
	   t_used_len(&t, 4));
	uint8_t joined[80];
	for (int i = 0; i < 4; i++)
		memcpy(joined + 20 * i, t_ptr(&t, T_DATA + 0x1000 * (uint64_t)(i + 1)), 20);
	ok(!memcmp(joined + 12, got, 42), "and the parts make the same frame");

	tx(&t, T_DATA + 0x10000, 54, VIRTQ_DESC_F_WRITE);
	ok(t_wait_status(&t, VIRTIO_STATUS_NEEDS_RESET), "a writable transmit buffer: NEEDS_RESET");

	evloop_stop(&vm.loop);
	virtio_destroy_all(&vm);
	return done_testing();
}
