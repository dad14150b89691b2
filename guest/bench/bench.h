/*
 * What the guest test kernel and the native build share: the CPU-bound
 * loops (cpuloops.c), the benchmark names and options, and the one line
 * format both print (benchfmt.c). No kernel or libc dependencies.
 */
#ifndef GUEST_BENCH_H
#define GUEST_BENCH_H

#include <stdint.h>

enum bench_id {
	B_SYSCALL,   /* ring 3 -> int 0x80 -> back */
	B_PAGEFAULT, /* unmap, INVLPG, touch: fault, handler maps, retry */
	B_PORTIO,    /* inb from the 8259 IMR */
	B_CR3,	     /* CR3 reload, alternating two page directories */
	B_INVLPG,    /* PTE retarget + INVLPG + touch */
	B_INT,	     /* int $0x81 in ring 0 and iret */
	B_CLISTI,    /* a cli; sti pair */
	B_PUSHFPOPF, /* a pushf; popf pair */
	B_SIEVE,     /* sieve of Eratosthenes over 16 MiB */
	B_CRC32,     /* table-driven CRC-32 over 1 MiB, per iteration */
	B_COUNT
};

#define B_CPU_ONLY ((1u << B_SIEVE) | (1u << B_CRC32)) /* what bench-native can run */
#define SIEVE_BYTES (16u << 20)
#define CRC_BYTES (1u << 20)

struct bench_opts {
	uint32_t mask;		    /* bit per enum bench_id; 0: no bench= given */
	uint32_t iters;		    /* iters=N for all; 0: defaults */
	uint32_t iters_of[B_COUNT]; /* name:N for one; 0: not given */
};

extern const char *const bench_names[B_COUNT];

/* Parse "bench=all|name[:N],... iters=N" out of a command line. 0 or -1. */
int bench_parse(struct bench_opts *o, const char *cmdline);
uint32_t bench_iters(const struct bench_opts *o, enum bench_id b);

/* One result line, e.g. "bench sieve iters=4 cycles_per_iter=... ns_per_iter=12.3 result=1077871".
 */
struct bench_result {
	enum bench_id id;
	uint32_t iters;
	uint64_t cycles; /* total over all iterations */
	int has_result;
	uint32_t result; /* a checksum both builds must agree on */
};
int bench_format(char *buf, int len, const struct bench_result *r, uint32_t tsc_khz);
int bench_format_tsc(char *buf, int len, uint32_t tsc_khz, const char *source);

/* cpuloops.c */
uint32_t sieve_count_primes(uint8_t *buf, uint32_t n);
void crc32_init(void);
uint32_t crc32_update(uint32_t crc, const uint8_t *buf, uint32_t len);
void fill_pattern(uint8_t *buf, uint32_t len);

#endif
