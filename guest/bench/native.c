/*
 * bench-native: the CPU-bound guest benchmarks (sieve, crc32) as an
 * ordinary 32-bit Linux program, printing the same lines as the test
 * kernel so guest and native speed compare on the same machine.
 * Usage: bench-native [bench=all|sieve[:N],crc32[:N]] [iters=N]
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "bench.h"

static uint8_t buffer[SIEVE_BYTES];

static uint64_t rdtsc(void)
{
	uint32_t lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* TSC cycles over 100 ms of CLOCK_MONOTONIC. */
static uint32_t tsc_khz_measure(void)
{
	uint64_t n0 = now_ns(), t0 = rdtsc(), n1;
	while ((n1 = now_ns()) - n0 < 100000000ull)
		;
	uint64_t t1 = rdtsc();
	return (uint32_t)((t1 - t0) * 1000000ull / (n1 - n0));
}

static void print(const struct bench_result *r, uint32_t khz)
{
	char line[160];
	bench_format(line, sizeof(line), r, khz);
	puts(line);
}

int main(int argc, char **argv)
{
	char cmdline[1024] = "";
	struct bench_opts o;

	for (int i = 1; i < argc; i++) {
		strncat(cmdline, argv[i], sizeof(cmdline) - strlen(cmdline) - 2);
		strcat(cmdline, " ");
	}
	if (bench_parse(&o, cmdline)) {
		fprintf(stderr, "usage: %s [bench=all|sieve[:N],crc32[:N]] [iters=N]\n", argv[0]);
		return 2;
	}
	if (!o.mask)
		o.mask = B_CPU_ONLY;

	uint32_t khz = tsc_khz_measure();
	char line[160];
	bench_format_tsc(line, sizeof(line), khz, "clock_gettime");
	puts(line);

	if (o.mask & (1u << B_SIEVE)) {
		struct bench_result r = {
		    .id = B_SIEVE, .iters = bench_iters(&o, B_SIEVE), .has_result = 1};
		uint64_t t0 = rdtsc();
		for (uint32_t i = 0; i < r.iters; i++)
			r.result = sieve_count_primes(buffer, SIEVE_BYTES);
		r.cycles = rdtsc() - t0;
		print(&r, khz);
	}
	if (o.mask & (1u << B_CRC32)) {
		struct bench_result r = {
		    .id = B_CRC32, .iters = bench_iters(&o, B_CRC32), .has_result = 1};
		fill_pattern(buffer, CRC_BYTES);
		crc32_init();
		uint64_t t0 = rdtsc();
		for (uint32_t i = 0; i < r.iters; i++)
			r.result = crc32_update(r.result, buffer, CRC_BYTES);
		r.cycles = rdtsc() - t0;
		print(&r, khz);
	}
	for (int b = 0; b < B_COUNT; b++)
		if ((o.mask & (1u << b)) && !(B_CPU_ONLY & (1u << b)))
			printf("# %s: guest only\n", bench_names[b]);
	return 0;
}
