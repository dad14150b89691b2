/*
 * virtio-console through the device path: what the guest transmits reaches
 * the console output, host input fills the guest's receive buffers (and
 * waits when there are none), and buffers of the wrong direction break it.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/console.h"
#include "tap.h"
#include "virtio_driver.h"

#define TX_DESC 0x20000
#define TX_AVAIL 0x21000
#define TX_USED 0x22000

static struct vm vm;
static struct vm_config cfg;

static void setup_tx(struct tdev *t)
{
	memset(t_ptr(t, TX_DESC), 0, 0x3000);
	t_write(t, t->common + 0x16, 1, 2);
	t_write(t, t->common + 0x18, TQ_SIZE, 2);
	t_write(t, t->common + 0x20, TX_DESC, 4);
	t_write(t, t->common + 0x28, TX_AVAIL, 4);
	t_write(t, t->common + 0x30, TX_USED, 4);
	t_write(t, t->common + 0x1c, 1, 2);
}

static void tx(struct tdev *t, uint16_t i, uint64_t gpa, uint32_t len, uint16_t flags)
{
	uint16_t *a = t_ptr(t, TX_AVAIL);

	((struct virtq_desc *)t_ptr(t, TX_DESC))[i] = (struct virtq_desc){ gpa, len, flags, 0 };
	a[2 + a[1] % TQ_SIZE] = i;
	__atomic_store_n(&a[1], (uint16_t)(a[1] + 1), __ATOMIC_RELEASE);
	t_write(t, t->notify + 4, 1, 2);
}

static bool wait_tx_used(struct tdev *t, uint16_t want)
{
	uint16_t *u = t_ptr(t, TX_USED);

	for (int i = 0; i < 3000 && __atomic_load_n(&u[1], __ATOMIC_ACQUIRE) != want; i++)
		nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
	return u[1] == want;
}

int main(void)
{
	char path[64], buf[64] = { 0 };
	struct tdev t;
	int fd;

	snprintf(path, sizeof(path), "/tmp/ring3-test-hvc-%d.txt", (int)getpid());
	cfg.console = CONSOLE_FILE;
	cfg.console_path = path;
	cfg.console_virtio = true;
	if (console_open(&cfg) || tvm_init(&vm, &cfg) || virtio_init_all(&vm) ||
	    evloop_start(&vm.loop)) {
		skip_all("cannot build the test VM");
		return 0;
	}
	ok(tdev_find(&t, &vm, 1) == 0 && pci_conf_read(&vm, 1, PCI_DEVICE_ID, 2) == 0x1043,
	   "00:01.0 is virtio-console");
	is_int(t_read(&t, t.common + 0x12, 2), 2, "two queues");
	ok(tdev_setup(&t, 1ull << 32, TQ_SIZE) == 0, "driver set up (receive queue)");
	setup_tx(&t);

	memcpy(t_ptr(&t, T_DATA), "hello hvc0\n", 11);
	tx(&t, 0, T_DATA, 11, 0);
	ok(wait_tx_used(&t, 1), "the transmit buffer comes back");
	fd = open(path, O_RDONLY);
	ok(fd >= 0 && read(fd, buf, sizeof(buf)) == 11 && !strcmp(buf, "hello hvc0\n"),
	   "and its bytes are on the console: %s", buf);

	is_int(virtio_console_receive(&vm, "abc", 3), 3, "input is taken before the guest has buffers");
	*t_desc(&t, 0) = (struct virtq_desc){ T_DATA + 0x1000, 2, VIRTQ_DESC_F_WRITE, 0 };
	t_post(&t, 0, true);
	ok(t_wait_used(&t, 1) && t_used_len(&t, 0) == 2 && !memcmp(t_ptr(&t, T_DATA + 0x1000), "ab", 2),
	   "the guest's first receive buffer gets 2 bytes");
	*t_desc(&t, 1) = (struct virtq_desc){ T_DATA + 0x2000, 16, VIRTQ_DESC_F_WRITE, 0 };
	t_post(&t, 1, true);
	ok(t_wait_used(&t, 2) && t_used_len(&t, 1) == 1 && *(char *)t_ptr(&t, T_DATA + 0x2000) == 'c',
	   "the next gets the rest");

	tx(&t, 1, T_DATA, 4, VIRTQ_DESC_F_WRITE);
	ok(t_wait_status(&t, VIRTIO_STATUS_NEEDS_RESET), "a writable transmit buffer: NEEDS_RESET");

	evloop_stop(&vm.loop);
	close(fd);
	unlink(path);
	return done_testing();
}
