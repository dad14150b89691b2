/*
 * blkio-backend FILE: which way should virtio-blk keep several requests in
 * flight? The shape of ring3's path, on the host alone: one dispatcher thread
 * (the I/O thread) hands 4 KiB random reads to the backend and takes the
 * completions back through an eventfd, with 32 requests in flight.
 *   threads: a queue under a mutex, N workers doing pread (src/dev/virtio/blkio.c)
 *   io_uring: one ring, submit and reap from the dispatcher (raw syscalls)
 * Prints requests per second for each, 3 runs each, interleaved.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/io_uring.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define QD 32
#define OPS 200000

static int fd;
static uint64_t nblocks;
static char bufs[QD][4096] __attribute__((aligned(4096)));

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rnd(uint64_t *x)
{
	*x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
	return *x;
}

/* --- threads, as blkio.c --- */
struct job { int slot; off_t off; struct job *next; };
static struct job jobs[QD], *work, *done;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int done_fd, stop;

static void *worker(void *arg __attribute__((unused)))
{
	uint64_t one = 1;

	pthread_mutex_lock(&lock);
	for (;;) {
		struct job *j;
		int was_empty;

		while (!work && !stop)
			pthread_cond_wait(&cond, &lock);
		if (stop)
			break;
		j = work;
		work = j->next;
		pthread_mutex_unlock(&lock);
		if (pread(fd, bufs[j->slot], 4096, j->off) != 4096)
			abort();
		pthread_mutex_lock(&lock);
		was_empty = !done;
		j->next = done;
		done = j;
		if (was_empty && write(done_fd, &one, 8) != 8)
			abort();
	}
	pthread_mutex_unlock(&lock);
	return NULL;
}

static double run_threads(int nthreads)
{
	pthread_t th[16];
	uint64_t x = 88172645463325252ull, v;
	long issued = 0, completed = 0;
	double t0 = now();

	done_fd = eventfd(0, 0);
	stop = 0;
	for (int i = 0; i < nthreads; i++)
		pthread_create(&th[i], NULL, worker, NULL);
	for (int i = 0; i < QD; i++) {
		jobs[i] = (struct job){ i, (off_t)(rnd(&x) % nblocks * 4096), NULL };
		pthread_mutex_lock(&lock);
		jobs[i].next = work;
		work = &jobs[i];
		pthread_cond_signal(&cond);
		pthread_mutex_unlock(&lock);
		issued++;
	}
	while (completed < OPS) {
		struct job *d;

		if (read(done_fd, &v, 8) != 8)
			abort();
		pthread_mutex_lock(&lock);
		d = done;
		done = NULL;
		pthread_mutex_unlock(&lock);
		while (d) {
			struct job *next = d->next;

			completed++;
			if (issued < OPS) {
				d->off = (off_t)(rnd(&x) % nblocks * 4096);
				pthread_mutex_lock(&lock);
				d->next = work;
				work = d;
				pthread_cond_signal(&cond);
				pthread_mutex_unlock(&lock);
				issued++;
			}
			d = next;
		}
	}
	pthread_mutex_lock(&lock);
	stop = 1;
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&lock);
	for (int i = 0; i < nthreads; i++)
		pthread_join(th[i], NULL);
	close(done_fd);
	return OPS / (now() - t0);
}

/* --- io_uring --- */
static double run_uring(void)
{
	struct io_uring_params p = { 0 };
	int rfd = (int)syscall(__NR_io_uring_setup, QD, &p);
	uint8_t *sq, *cq;
	struct io_uring_sqe *sqes;
	uint32_t *sq_tail, *sq_mask, *sq_array, *cq_head, *cq_tail, *cq_mask;
	struct io_uring_cqe *cqes;
	uint64_t x = 88172645463325252ull;
	long issued = 0, completed = 0;
	double t0;

	if (rfd < 0) {
		perror("io_uring_setup");
		return 0;
	}
	sq = mmap(NULL, p.sq_off.array + p.sq_entries * 4, PROT_READ | PROT_WRITE, MAP_SHARED, rfd,
		  IORING_OFF_SQ_RING);
	cq = mmap(NULL, p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe),
		  PROT_READ | PROT_WRITE, MAP_SHARED, rfd, IORING_OFF_CQ_RING);
	sqes = mmap(NULL, p.sq_entries * sizeof(*sqes), PROT_READ | PROT_WRITE, MAP_SHARED, rfd,
		    IORING_OFF_SQES);
	sq_tail = (uint32_t *)(sq + p.sq_off.tail);
	sq_mask = (uint32_t *)(sq + p.sq_off.ring_mask);
	sq_array = (uint32_t *)(sq + p.sq_off.array);
	cq_head = (uint32_t *)(cq + p.cq_off.head);
	cq_tail = (uint32_t *)(cq + p.cq_off.tail);
	cq_mask = (uint32_t *)(cq + p.cq_off.ring_mask);
	cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
	t0 = now();
	unsigned to_submit = 0;
	for (int i = 0; i < QD; i++) {
		uint32_t t = *sq_tail, idx = t & *sq_mask;

		memset(&sqes[idx], 0, sizeof(sqes[idx]));
		sqes[idx].opcode = IORING_OP_READ;
		sqes[idx].fd = fd;
		sqes[idx].addr = (uint64_t)(uintptr_t)bufs[i];
		sqes[idx].len = 4096;
		sqes[idx].off = rnd(&x) % nblocks * 4096;
		sqes[idx].user_data = (uint64_t)i;
		sq_array[idx] = idx;
		__atomic_store_n(sq_tail, t + 1, __ATOMIC_RELEASE);
		to_submit++;
		issued++;
	}
	while (completed < OPS) {
		if (syscall(__NR_io_uring_enter, rfd, to_submit, 1, IORING_ENTER_GETEVENTS, NULL, 0) < 0) {
			perror("io_uring_enter");
			return 0;
		}
		to_submit = 0;
		uint32_t h = *cq_head;
		while (h != __atomic_load_n(cq_tail, __ATOMIC_ACQUIRE)) {
			struct io_uring_cqe *c = &cqes[h & *cq_mask];
			int slot = (int)c->user_data;

			if (c->res != 4096)
				abort();
			h++;
			completed++;
			if (issued < OPS) {
				uint32_t t = *sq_tail, idx = t & *sq_mask;

				memset(&sqes[idx], 0, sizeof(sqes[idx]));
				sqes[idx].opcode = IORING_OP_READ;
				sqes[idx].fd = fd;
				sqes[idx].addr = (uint64_t)(uintptr_t)bufs[slot];
				sqes[idx].len = 4096;
				sqes[idx].off = rnd(&x) % nblocks * 4096;
				sqes[idx].user_data = (uint64_t)slot;
				sq_array[idx] = idx;
				__atomic_store_n(sq_tail, t + 1, __ATOMIC_RELEASE);
				to_submit++;
				issued++;
			}
		}
		__atomic_store_n(cq_head, h, __ATOMIC_RELEASE);
	}
	close(rfd);
	return OPS / (now() - t0);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: blkio-backend FILE (at least 64 MiB, ideally cached)\n");
		return 2;
	}
	fd = open(argv[1], O_RDONLY);
	if (fd < 0) {
		perror(argv[1]);
		return 1;
	}
	nblocks = (uint64_t)lseek(fd, 0, SEEK_END) / 4096;
	for (int r = 0; r < 3; r++) {
		printf("threads x4  %8.0f req/s\n", run_threads(4));
		printf("threads x8  %8.0f req/s\n", run_threads(8));
		printf("io_uring    %8.0f req/s\n", run_uring());
		fflush(stdout);
	}
	return 0;
}
