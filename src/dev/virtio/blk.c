/*
 * virtio-blk (virtio 1.2 §5.2) on a raw image file: READ, WRITE, FLUSH,
 * GET_ID, DISCARD and WRITE_ZEROES. The I/O thread parses requests and hands
 * them to a few worker threads (blkio.c), which complete them, so many
 * requests are in flight and neither the I/O thread nor a vCPU waits for the
 * disk. A request is
 * completed to the guest only after its system call returned: a completed
 * write is in the host's page cache (or on the device, with cache=none), and
 * a completed FLUSH has been through fdatasync().
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../core/log.h"
#include "../../core/vm.h"
#include "blk.h"
#include "virtio.h"

/* Feature bits (§5.2.3) */
#define VIRTIO_BLK_F_SEG_MAX 2
#define VIRTIO_BLK_F_RO 5
#define VIRTIO_BLK_F_BLK_SIZE 6
#define VIRTIO_BLK_F_FLUSH 9
#define VIRTIO_BLK_F_DISCARD 13
#define VIRTIO_BLK_F_WRITE_ZEROES 14

#define BLK_QUEUE_SIZE 256
#define BLK_SEG_MAX (BLK_QUEUE_SIZE - 2) /* plus header and status */
#define BLK_DISCARD_SEGS 32

/* Configuration layout (§5.2.4), little-endian */
struct blk_config {
	uint64_t capacity; /* 512-byte sectors */
	uint32_t size_max;
	uint32_t seg_max;
	uint16_t cylinders;
	uint8_t heads, sectors;
	uint32_t blk_size;
	uint8_t physical_block_exp, alignment_offset;
	uint16_t min_io_size;
	uint32_t opt_io_size;
	uint8_t writeback, unused0;
	uint16_t num_queues;
	uint32_t max_discard_sectors, max_discard_seg, discard_sector_alignment;
	uint32_t max_write_zeroes_sectors, max_write_zeroes_seg;
	uint8_t write_zeroes_may_unmap, unused1[3];
} __attribute__((packed));

static void blk_complete_req(struct blk *b, struct blk_req *r);

/* Parse one chain into a request for the workers; false if the chain broke a rule. */
static bool blk_parse(struct blk *b, struct blk_req *r)
{
	struct virtq_elem *e = &r->e;
	struct {
		uint32_t type, reserved;
		uint64_t sector;
	} hdr;
	struct iovec *last;

	if (e->out_len < sizeof(hdr) || e->in_len < 1) {
		virtio_error(&b->vd, "a request without a readable header or a writable status");
		return false;
	}
	iov_to_buf(e->iov, e->nr_out, 0, &hdr, sizeof(hdr));
	r->type = hdr.type;
	r->offset = hdr.sector;
	/* the status byte: the last byte the device may write */
	last = &e->iov[e->nr_out + e->nr_in - 1];
	r->status = (uint8_t *)last->iov_base + last->iov_len - 1;
	r->len = 0;
	r->niov = 0;
	r->written = 0;

	switch (r->type) {
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_GET_ID:
		/* data goes into writable buffers only: none may hide among the readable */
		if (e->out_len != sizeof(hdr)) {
			virtio_error(&b->vd, "a read whose data buffer is device-readable");
			return false;
		}
		r->iov = &e->iov[e->nr_out];
		r->niov = e->nr_in;
		r->len = e->in_len - 1;
		/* trim the status byte off the end */
		if (last->iov_len == 1)
			r->niov--;
		else
			last->iov_len--;
		break;
	case VIRTIO_BLK_T_OUT:
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES: {
		/* the data follows the header in the readable buffers */
		size_t skip = sizeof(hdr);
		unsigned i = 0;

		while (i < e->nr_out && skip >= e->iov[i].iov_len)
			skip -= e->iov[i++].iov_len;
		if (i < e->nr_out) {
			e->iov[i].iov_base = (uint8_t *)e->iov[i].iov_base + skip;
			e->iov[i].iov_len -= skip;
		}
		r->iov = &e->iov[i];
		r->niov = e->nr_out - i;
		r->len = e->out_len - sizeof(hdr);
		break;
	}
	default:
		break;
	}
	return true;
}

/* Checks that need no system call; true when the request was answered here. */
static bool blk_answer_now(struct blk *b, struct blk_req *r)
{
	uint64_t sectors = b->size / 512;

	switch (r->type) {
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_OUT:
		if (r->type == VIRTIO_BLK_T_OUT && b->ro)
			break;
		/* whole sectors, inside the disk; written so that nothing overflows */
		if (r->len % 512 || r->offset > sectors || r->len / 512 > sectors - r->offset)
			break;
		r->offset *= 512;
		return false;
	case VIRTIO_BLK_T_FLUSH:
		return false;
	case VIRTIO_BLK_T_GET_ID: {
		char id[20] = { 0 }; /* §5.2.6: up to 20 bytes, NUL-padded, not terminated */

		memcpy(id, b->serial, strnlen(b->serial, sizeof(id)));
		r->written = iov_from_buf(r->iov, r->niov, 0, id, sizeof(id));
		*r->status = VIRTIO_BLK_S_OK;
		return true;
	}
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
		if (b->ro || r->len == 0 || r->len % 16 || r->len / 16 > BLK_DISCARD_SEGS)
			break;
		return false;
	default:
		*r->status = VIRTIO_BLK_S_UNSUPP;
		return true;
	}
	*r->status = VIRTIO_BLK_S_IOERR;
	return true;
}

static void blk_process(struct blk *b)
{
	struct virtio_dev *vd = &b->vd;
	bool more;

	do {
		while (!vd->broken && b->free) {
			struct blk_req *r = b->free;

			if (virtio_pop(vd, 0, &r->e) != 1)
				break;
			b->free = r->next;
			r->gen = b->gen;
			vd->stats.requests++;
			if (!blk_parse(b, r)) {
				r->next = b->free;
				b->free = r;
				return;
			}
			if (blk_answer_now(b, r)) {
				blk_complete_req(b, r);
				continue;
			}
			if (r->type == VIRTIO_BLK_T_OUT)
				vd->stats.bytes_in += r->len;
			blkio_submit(b, r);
		}
		virtio_queue_interrupt(vd, 0);
		/* out of request slots: completions will call us again */
		more = !vd->broken && b->free && virtq_notify_enable(&vd->q[0].vq, true);
	} while (more);
}

static void blk_notify(struct virtio_dev *vd, unsigned qi)
{
	blk_process(vd->priv);
}

/* Lock held: give a request back to the guest (unless it reset meanwhile). */
static void blk_complete_req(struct blk *b, struct blk_req *r)
{
	if (r->gen == b->gen) {
		if (r->type == VIRTIO_BLK_T_IN && *r->status == VIRTIO_BLK_S_OK)
			b->vd.stats.bytes_out += r->written;
		virtq_push(&b->vd.q[0].vq, r->e.head, (uint32_t)(r->written + 1));
	}
	r->next = b->free;
	b->free = r;
}

/* A worker finished a request (its thread; the device lock is not held). */
void blk_completed(struct blk *b, struct blk_req *r)
{
	struct virtio_dev *vd = &b->vd;

	pthread_mutex_lock(&vd->lock);
	blk_complete_req(b, r);
	if (virtio_running(vd)) {
		virtio_queue_interrupt(vd, 0);
		blk_process(b); /* slots are free again */
	}
	pthread_mutex_unlock(&vd->lock);
}

static void blk_reset(struct virtio_dev *vd)
{
	struct blk *b = vd->priv;

	b->gen++; /* requests still with the workers are dropped when they finish */
}

static const struct virtio_ops blk_ops = { .queue_notify = blk_notify, .reset = blk_reset };

static int blk_open(struct blk *b, const struct vm_disk *disk)
{
	int flags = (disk->ro ? O_RDONLY : O_RDWR) | O_CLOEXEC;
	struct stat st;

	b->fd = open(disk->path, flags);
	if (b->fd < 0)
		return -errno;
	if (fstat(b->fd, &st) < 0)
		return -errno;
	if (S_ISBLK(st.st_mode)) {
		off_t end = lseek(b->fd, 0, SEEK_END);

		if (end < 0)
			return -errno;
		b->size = (uint64_t)end;
	} else {
		b->size = (uint64_t)st.st_size;
	}
	b->direct_fd = -1;
	if (disk->direct) {
		b->direct_fd = open(disk->path, flags | O_DIRECT);
		if (b->direct_fd < 0)
			return -errno;
	}
	/* the serial: what GET_ID answers, /sys/block/vdX/serial in the guest */
	snprintf(b->serial, sizeof(b->serial), "ring3-%llx-%llx", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino);
	return 0;
}

static int blk_init(struct vm *vm, const struct vm_disk *disk, int index)
{
	struct blk *b = calloc(1, sizeof(*b));
	struct blk_config *c = calloc(1, sizeof(*c));
	int err;

	if (!b || !c)
		return -ENOMEM;
	b->ro = disk->ro;
	err = blk_open(b, disk);
	if (err) {
		log_msg("--disk %s: %s", disk->path, strerror(-err));
		return err;
	}
	if (b->size % 512)
		log_msg("--disk %s: the last %llu bytes are not a whole sector and are not seen",
			disk->path, (unsigned long long)(b->size % 512));
	b->reqs = calloc(BLK_QUEUE_SIZE, sizeof(*b->reqs));
	if (!b->reqs)
		return -ENOMEM;
	for (int i = 0; i < BLK_QUEUE_SIZE; i++) {
		b->reqs[i].next = b->free;
		b->free = &b->reqs[i];
	}
	c->capacity = b->size / 512;
	c->seg_max = BLK_SEG_MAX;
	c->blk_size = 512;
	c->max_discard_sectors = c->max_write_zeroes_sectors = UINT32_MAX;
	c->max_discard_seg = c->max_write_zeroes_seg = BLK_DISCARD_SEGS;
	c->discard_sector_alignment = 8; /* 4 KiB: the host file system's hole granularity */
	c->write_zeroes_may_unmap = 1;
	snprintf(b->vd.name, sizeof(b->vd.name), "virtio-blk vd%c", 'a' + index);
	b->vd.ops = &blk_ops;
	b->vd.priv = b;
	b->vd.device_id = VIRTIO_ID_BLOCK;
	b->vd.pci_class_hi = 0x0100; /* mass storage: SCSI, as QEMU says */
	b->vd.config = c;
	b->vd.config_len = sizeof(*c);
	b->vd.nr_queues = 1;
	b->vd.q[0].max_size = BLK_QUEUE_SIZE;
	b->vd.host_features = 1ull << VIRTIO_BLK_F_SEG_MAX | 1ull << VIRTIO_BLK_F_BLK_SIZE |
			      1ull << VIRTIO_BLK_F_FLUSH;
	if (b->ro)
		b->vd.host_features |= 1ull << VIRTIO_BLK_F_RO;
	else
		b->vd.host_features |= 1ull << VIRTIO_BLK_F_DISCARD |
				       1ull << VIRTIO_BLK_F_WRITE_ZEROES;
	err = blkio_start(b);
	if (!err)
		err = virtio_pci_add(vm, &b->vd);
	return err;
}

int virtio_blk_init_all(struct vm *vm)
{
	for (int i = 0; i < vm->cfg->nr_disks; i++) {
		int err = blk_init(vm, &vm->cfg->disk[i], i);

		if (err)
			return err;
	}
	return 0;
}
