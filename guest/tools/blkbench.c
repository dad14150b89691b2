/*
 * blkbench DEV: the block workload of bench/blk.sh, run inside a guest on a
 * virtio disk, the same under ring3 and QEMU. O_DIRECT throughout, so the
 * guest's page cache measures nothing:
 *   sequential write and read, 1 MiB requests, over 64 MiB (MB/s);
 *   random 4 KiB reads for 3 seconds, 4 threads with one request each (IOPS).
 * Prints "blkbench NAME VALUE" lines.
 */
#define _GNU_SOURCE /* O_DIRECT */
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SEQ_BYTES (64u << 20)
#define SEQ_REQ (1u << 20)
#define RAND_THREADS 4
#define RAND_SECS 3

static const char *dev;
static uint64_t dev_size;
static volatile int stop;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *xalloc(size_t n)
{
	void *p;

	if (posix_memalign(&p, 4096, n)) {
		perror("posix_memalign");
		exit(1);
	}
	memset(p, 0x5a, n);
	return p;
}

static double seq(int write)
{
	int fd = open(dev, (write ? O_WRONLY : O_RDONLY) | O_DIRECT);
	char *buf = xalloc(SEQ_REQ);
	double t0;

	if (fd < 0) {
		perror(dev);
		exit(1);
	}
	t0 = now();
	for (uint64_t off = 0; off < SEQ_BYTES; off += SEQ_REQ) {
		ssize_t n = write ? pwrite(fd, buf, SEQ_REQ, (off_t)off) : pread(fd, buf, SEQ_REQ, (off_t)off);

		if (n != SEQ_REQ) {
			perror(write ? "pwrite" : "pread");
			exit(1);
		}
	}
	if (write)
		fdatasync(fd);
	t0 = now() - t0;
	close(fd);
	free(buf);
	return SEQ_BYTES / 1e6 / t0;
}

static void *rand_reader(void *arg)
{
	uint64_t *count = arg, x = (uint64_t)(uintptr_t)arg * 2654435761u + 1;
	int fd = open(dev, O_RDONLY | O_DIRECT);
	char *buf = xalloc(4096);

	if (fd < 0) {
		perror(dev);
		exit(1);
	}
	while (!stop) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		if (pread(fd, buf, 4096, (off_t)(x % (dev_size / 4096) * 4096)) != 4096) {
			perror("pread");
			exit(1);
		}
		(*count)++;
	}
	close(fd);
	free(buf);
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t th[RAND_THREADS];
	uint64_t count[RAND_THREADS] = { 0 }, total = 0;
	double t0;
	int fd;

	if (argc != 2) {
		fprintf(stderr, "usage: blkbench /dev/vdX (its contents are overwritten)\n");
		return 2;
	}
	dev = argv[1];
	fd = open(dev, O_RDONLY);
	if (fd < 0 || (dev_size = (uint64_t)lseek(fd, 0, SEEK_END)) < SEQ_BYTES) {
		fprintf(stderr, "blkbench: %s must hold at least 64 MiB\n", dev);
		return 1;
	}
	close(fd);
	printf("blkbench seqwrite_MBps %.1f\n", seq(1));
	printf("blkbench seqread_MBps %.1f\n", seq(0));
	t0 = now();
	for (int i = 0; i < RAND_THREADS; i++)
		pthread_create(&th[i], NULL, rand_reader, &count[i]);
	sleep(RAND_SECS);
	stop = 1;
	for (int i = 0; i < RAND_THREADS; i++) {
		pthread_join(th[i], NULL);
		total += count[i];
	}
	printf("blkbench randread4k_IOPS %.0f\n", (double)total / (now() - t0));
	return 0;
}
