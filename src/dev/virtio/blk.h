/*
 * virtio-blk's state, shared by the device (blk.c: requests, parsing, the
 * queue) and its I/O workers (blkio.c: the system calls).
 */
#ifndef RING3_DEV_VIRTIO_BLK_H
#define RING3_DEV_VIRTIO_BLK_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "virtio.h"

/* Request types and status (§5.2.6) */
#define VIRTIO_BLK_T_IN 0
#define VIRTIO_BLK_T_OUT 1
#define VIRTIO_BLK_T_FLUSH 4
#define VIRTIO_BLK_T_GET_ID 8
#define VIRTIO_BLK_T_DISCARD 11
#define VIRTIO_BLK_T_WRITE_ZEROES 13
#define VIRTIO_BLK_S_OK 0
#define VIRTIO_BLK_S_IOERR 1
#define VIRTIO_BLK_S_UNSUPP 2

struct vm;

struct blk_req {
	struct blk_req *next; /* free list, work queue or done list */
	struct virtq_elem e;
	uint32_t type;
	uint64_t offset;     /* bytes, once checked */
	struct iovec *iov;   /* the data, inside e.iov */
	unsigned niov;
	uint64_t len;
	uint64_t written;    /* bytes the device wrote into the guest's buffers */
	uint8_t *status;
	unsigned gen;
};

struct blkio;

struct blk {
	struct virtio_dev vd;
	int fd, direct_fd; /* direct_fd: O_DIRECT for cache=none, else -1 */
	bool ro;
	uint64_t size;
	char serial[21];
	struct blk_req *reqs, *free;
	unsigned gen;
	struct blkio *io;
};

int blkio_start(struct blk *b);
void blkio_submit(struct blk *b, struct blk_req *r);
void blkio_stop(struct blk *b);
/* Called by a worker with the request it finished (takes vd->lock). */
void blk_completed(struct blk *b, struct blk_req *r);

#endif
