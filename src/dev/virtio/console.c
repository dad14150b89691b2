/*
 * virtio-console (virtio 1.2 §5.3), one port and no features: the guest's
 * hvc0. Queue 0 (receiveq) takes input, queue 1 (transmitq) gives output,
 * which goes where the UART's goes (core/console.c). Input waits here until
 * the guest has posted receive buffers.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../../core/console.h"
#include "../../core/vm.h"
#include "virtio.h"

#define CON_QUEUE_SIZE 64
#define CON_RX 0
#define CON_TX 1
#define CON_PENDING 4096

struct virtio_console {
	struct virtio_dev vd;
	struct virtq_elem e;
	uint8_t config[12]; /* cols, rows, max_nr_ports, emerg_wr: unused without features */
	uint8_t pending[CON_PENDING];
	size_t npending;
	uint8_t out[4096];
};

static struct virtio_console *the_console;

/* Lock held: hand pending input to the guest's receive buffers. */
static void con_rx(struct virtio_console *c)
{
	struct virtio_dev *vd = &c->vd;
	bool pushed = false;

	while (c->npending && virtio_running(vd) && virtio_pop(vd, CON_RX, &c->e) == 1) {
		size_t n;

		if (c->e.nr_out) {
			virtio_error(vd, "a readable buffer in the receive queue");
			return;
		}
		n = iov_from_buf(c->e.iov, c->e.nr_in, 0, c->pending, c->npending);
		memmove(c->pending, c->pending + n, c->npending - n);
		c->npending -= n;
		virtq_push(&vd->q[CON_RX].vq, c->e.head, (uint32_t)n);
		vd->stats.requests++;
		vd->stats.bytes_out += n;
		pushed = true;
	}
	if (pushed)
		virtio_queue_interrupt(vd, CON_RX);
}

/* Lock held: write out what the guest sent. */
static void con_tx(struct virtio_console *c)
{
	struct virtio_dev *vd = &c->vd;
	int more;

	do {
		while (virtio_pop(vd, CON_TX, &c->e) == 1) {
			size_t off = 0, n;

			if (c->e.nr_in) {
				virtio_error(vd, "a writable buffer in the transmit queue");
				return;
			}
			while ((n = iov_to_buf(c->e.iov, c->e.nr_out, off, c->out, sizeof(c->out)))) {
				console_write(vd->vm, c->out, n);
				off += n;
			}
			virtq_push(&vd->q[CON_TX].vq, c->e.head, 0);
			vd->stats.requests++;
			vd->stats.bytes_in += off;
		}
		virtio_queue_interrupt(vd, CON_TX);
		more = !vd->broken && virtq_notify_enable(&vd->q[CON_TX].vq, true);
	} while (more);
}

static void con_notify(struct virtio_dev *vd, unsigned qi)
{
	struct virtio_console *c = vd->priv;

	if (qi == CON_TX)
		con_tx(c);
	else
		con_rx(c);
}

static void con_reset(struct virtio_dev *vd)
{
	struct virtio_console *c = vd->priv;

	c->npending = 0;
}

static const struct virtio_ops con_ops = { .queue_notify = con_notify, .reset = con_reset };

size_t virtio_console_receive(struct vm *vm, const char *buf, size_t len)
{
	struct virtio_console *c = the_console;
	size_t n;

	if (!c || c->vd.vm != vm)
		return 0;
	pthread_mutex_lock(&c->vd.lock);
	n = CON_PENDING - c->npending < len ? CON_PENDING - c->npending : len;
	memcpy(c->pending + c->npending, buf, n);
	c->npending += n;
	con_rx(c);
	pthread_mutex_unlock(&c->vd.lock);
	return n;
}

int virtio_console_init(struct vm *vm)
{
	struct virtio_console *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	strcpy(c->vd.name, "virtio-console");
	c->vd.ops = &con_ops;
	c->vd.priv = c;
	c->vd.device_id = VIRTIO_ID_CONSOLE;
	c->vd.pci_class_hi = 0x0780; /* communication controller, other */
	c->vd.config = c->config;
	c->vd.config_len = sizeof(c->config);
	c->vd.nr_queues = 2;
	c->vd.q[CON_RX].max_size = CON_QUEUE_SIZE;
	c->vd.q[CON_TX].max_size = CON_QUEUE_SIZE;
	the_console = c;
	/* on failure the VM is not built, and c may still be referenced: it stays */
	return virtio_pci_add(vm, &c->vd);
}
