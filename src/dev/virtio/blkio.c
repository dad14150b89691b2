/*
 * virtio-blk's I/O workers: a few threads per disk doing preadv, pwritev,
 * fdatasync and fallocate, so that several requests are in flight at once
 * (docs/devices.md: why threads and not io_uring). A worker completes its
 * request itself, under the device lock (blk_completed: used ring, interrupt,
 * and the next requests) rather than handing it back to the I/O thread:
 * one thread wake-up less per request and simpler code (measured in
 * bench/blk.sh: no gain beyond the noise, docs/devices.md).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../core/log.h"
#include "../../core/vm.h"
#include "blk.h"

#define BLKIO_WORKERS 4

struct blkio {
	struct blk *b;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct blk_req *head, **tail; /* work, in order */
	bool stop;
	int nr_threads;
	pthread_t thread[BLKIO_WORKERS];
};

static bool aligned(const struct blk_req *r)
{
	for (unsigned i = 0; i < r->niov; i++)
		if (((uintptr_t)r->iov[i].iov_base | r->iov[i].iov_len) & 511)
			return false;
	return true;
}

/* preadv/pwritev until all of it is done; a read past the end of the file reads zeros. */
static int rw_all(struct blk *b, struct blk_req *r, bool write)
{
	struct iovec iov[VIRTQ_MAX_CHAIN];
	unsigned n = r->niov, first = 0;
	uint64_t done = 0;
	int fd = b->direct_fd >= 0 && aligned(r) ? b->direct_fd : b->fd;

	memcpy(iov, r->iov, n * sizeof(iov[0]));
	while (done < r->len) {
		ssize_t k = write ? pwritev(fd, iov + first, (int)(n - first), (off_t)(r->offset + done))
				  : preadv(fd, iov + first, (int)(n - first), (off_t)(r->offset + done));

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		if (k == 0) {
			if (write)
				return -EIO;
			for (unsigned i = first; i < n; i++)
				memset(iov[i].iov_base, 0, iov[i].iov_len);
			break;
		}
		done += (uint64_t)k;
		while (first < n && (size_t)k >= iov[first].iov_len)
			k -= (ssize_t)iov[first++].iov_len;
		if (first < n) {
			iov[first].iov_base = (uint8_t *)iov[first].iov_base + k;
			iov[first].iov_len -= (size_t)k;
		}
	}
	if (!write)
		r->written = r->len;
	return 0;
}

static int zero_range(struct blk *b, uint64_t off, uint64_t len, bool unmap)
{
	static const uint8_t zeros[65536];
	int mode = unmap ? FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
			 : FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;

	if (fallocate(b->fd, mode, (off_t)off, (off_t)len) == 0)
		return 0;
	if (errno != EOPNOTSUPP && errno != ENOSYS)
		return -errno;
	while (len) { /* a file system without zeroing: write them */
		size_t c = len < sizeof(zeros) ? len : sizeof(zeros);
		ssize_t k = pwrite(b->fd, zeros, c, (off_t)off);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return k < 0 ? -errno : -EIO;
		off += (uint64_t)k;
		len -= (uint64_t)k;
	}
	return 0;
}

/* DISCARD and WRITE_ZEROES: segments of {sector, sectors, flags} (§5.2.6). */
static int discard(struct blk *b, struct blk_req *r)
{
	struct {
		uint64_t sector;
		uint32_t num_sectors, flags;
	} seg[32];
	unsigned n = (unsigned)(r->len / 16);
	uint64_t sectors = b->size / 512;

	iov_to_buf(r->iov, r->niov, 0, seg, n * sizeof(seg[0]));
	for (unsigned i = 0; i < n; i++) {
		uint64_t off = seg[i].sector * 512, len = (uint64_t)seg[i].num_sectors * 512;
		int err;

		if (seg[i].sector > sectors || seg[i].num_sectors > sectors - seg[i].sector)
			return -EINVAL;
		if (seg[i].flags & ~1u)
			return -EINVAL;
		if (r->type == VIRTIO_BLK_T_DISCARD) {
			/* advisory: a file system without holes just keeps the data */
			if (fallocate(b->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off,
				      (off_t)len) < 0 &&
			    errno != EOPNOTSUPP)
				return -errno;
			continue;
		}
		err = zero_range(b, off, len, seg[i].flags & 1);
		if (err)
			return err;
	}
	return 0;
}

static void execute(struct blk *b, struct blk_req *r)
{
	int err = 0;

	switch (r->type) {
	case VIRTIO_BLK_T_IN:
		err = rw_all(b, r, false);
		break;
	case VIRTIO_BLK_T_OUT:
		err = rw_all(b, r, true);
		break;
	case VIRTIO_BLK_T_FLUSH:
		while ((err = fdatasync(b->fd) < 0 ? -errno : 0) == -EINTR)
			;
		break;
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
		err = discard(b, r);
		break;
	}
	*r->status = err ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK;
	if (err && err != -EINVAL)
		log_guest("%s: I/O error: %s", b->vd.name, strerror(-err));
}

static void *worker(void *arg)
{
	struct blkio *io = arg;

	pthread_mutex_lock(&io->lock);
	for (;;) {
		struct blk_req *r;

		while (!io->head && !io->stop)
			pthread_cond_wait(&io->cond, &io->lock);
		if (io->stop)
			break;
		r = io->head;
		io->head = r->next;
		if (!io->head)
			io->tail = &io->head;
		pthread_mutex_unlock(&io->lock);

		execute(io->b, r);
		blk_completed(io->b, r); /* vd->lock, then maybe io->lock (blkio_submit) */
		pthread_mutex_lock(&io->lock);
	}
	pthread_mutex_unlock(&io->lock);
	return NULL;
}

void blkio_submit(struct blk *b, struct blk_req *r)
{
	struct blkio *io = b->io;

	r->next = NULL;
	pthread_mutex_lock(&io->lock);
	*io->tail = r;
	io->tail = &r->next;
	pthread_cond_signal(&io->cond);
	pthread_mutex_unlock(&io->lock);
}

int blkio_start(struct blk *b)
{
	struct blkio *io = calloc(1, sizeof(*io));
	int err;

	if (!io)
		return -ENOMEM;
	io->b = b;
	io->tail = &io->head;
	pthread_mutex_init(&io->lock, NULL);
	pthread_cond_init(&io->cond, NULL);
	b->io = io;
	for (int i = 0; i < BLKIO_WORKERS; i++) {
		char name[16];

		err = pthread_create(&io->thread[i], NULL, worker, io);
		if (err)
			return -err;
		io->nr_threads++;
		snprintf(name, sizeof(name), "ring3-blk%d", i);
		pthread_setname_np(io->thread[i], name);
	}
	return 0;
}

/* After the vCPUs and the I/O thread stopped: let the workers finish and go. */
void blkio_stop(struct blk *b)
{
	struct blkio *io = b->io;

	if (!io)
		return;
	pthread_mutex_lock(&io->lock);
	io->stop = true;
	pthread_cond_broadcast(&io->cond);
	pthread_mutex_unlock(&io->lock);
	for (int i = 0; i < io->nr_threads; i++)
		pthread_join(io->thread[i], NULL);
	free(io);
	b->io = NULL;
}
