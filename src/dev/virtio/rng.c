/*
 * virtio-rng (virtio 1.2 §5.4): one queue of device-writable buffers, filled
 * from the host's getrandom(). A guest's /dev/hwrng reads from it.
 * Before the host's own pool is initialized (a fresh VM without RDRAND, such
 * as the nested test bed's, can take minutes) GRND_NONBLOCK has nothing to
 * give. The request is then answered at once from GRND_INSECURE, what
 * /dev/urandom gives (QEMU's default rng backend): never an empty answer,
 * which the guest's driver asks again at once, spinning both sides; never a
 * held request, which stalls the guest's `modprobe virtio_rng` (its
 * add_early_randomness() waits on the same mutex as the hwrng thread); never
 * a blocking call on the I/O thread. (GRND_INSECURE needs Linux 5.6: an
 * older host refuses it, and until its pool is ready the guest gets the
 * empty answers above. Debian 12's 6.1 has it.)
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "../../core/vm.h"
#include "virtio.h"

#define RNG_QUEUE_SIZE 64
#define RNG_MAX_FILL 65536 /* per request: a huge buffer gets a partial fill, not a stall */

struct virtio_rng {
	struct virtio_dev vd;
	struct virtq_elem e;
	uint8_t buf[RNG_MAX_FILL];
};

static void rng_notify(struct virtio_dev *vd, unsigned qi)
{
	struct virtio_rng *r = vd->priv;
	int more;

	do {
		while (virtio_pop(vd, qi, &r->e) == 1) {
			size_t want = r->e.in_len < RNG_MAX_FILL ? r->e.in_len : RNG_MAX_FILL;
			ssize_t got = 0;

			if (r->e.nr_out) { /* §5.4.6.1: the driver posts writable buffers only */
				virtio_error(vd, "a readable buffer in the request queue");
				return;
			}
			if (want) {
				got = getrandom(r->buf, want, GRND_NONBLOCK);
				if (got < 0 && errno == EAGAIN)
					got = getrandom(r->buf, want, GRND_INSECURE);
			}
			if (got < 0)
				got = 0;
			iov_from_buf(r->e.iov, r->e.nr_in, 0, r->buf, (size_t)got);
			virtq_push(&vd->q[qi].vq, r->e.head, (uint32_t)got);
			vd->stats.requests++;
			vd->stats.bytes_out += (uint64_t)got;
		}
		virtio_queue_interrupt(vd, qi);
		more = !vd->broken && virtq_notify_enable(&vd->q[qi].vq, true);
	} while (more);
}

static const struct virtio_ops rng_ops = { .queue_notify = rng_notify };

int virtio_rng_init(struct vm *vm)
{
	struct virtio_rng *r = calloc(1, sizeof(*r));
	int err;

	if (!r)
		return -ENOMEM;
	strcpy(r->vd.name, "virtio-rng");
	r->vd.ops = &rng_ops;
	r->vd.priv = r;
	r->vd.device_id = VIRTIO_ID_RNG;
	r->vd.pci_class_hi = 0x00ff; /* unclassified device */
	r->vd.nr_queues = 1;
	r->vd.q[0].max_size = RNG_QUEUE_SIZE;
	/* on failure the VM is not built, and r may still be referenced: it stays */
	err = virtio_pci_add(vm, &r->vd);
	return err;
}
