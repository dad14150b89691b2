/*
 * Micro-benchmarks of what a virtual machine makes expensive (system calls,
 * page faults, port I/O, CR3 and INVLPG, interrupts, IF changes) and two
 * CPU-bound loops shared with bench-native. Each prints one line in the
 * format of ../bench/benchfmt.c, in TSC cycles and nanoseconds.
 */
#include "task.h"
#include "../bench/bench.h"

/* Each runner returns the TSC cycles of all iterations; only the CPU loops set *result. */
static uint64_t run_syscall(uint32_t iters, uint32_t *result)
{
	(void)result;
	struct task *t = task_spawn(UM_BENCH_SYSCALL, iters);
	task_run_all(); /* the task times itself with RDTSC in ring 3 */
	return t->report[R_CYCLES_LO] | (uint64_t)t->report[R_CYCLES_HI] << 32;
}

/* Each iteration: mark the PTE not present, INVLPG, touch: #PF, the handler sets P, retry. */
static uint64_t run_pagefault(uint32_t iters, uint32_t *result)
{
	(void)result;
	uint32_t va = WIN_VA(WIN_BENCH_PF);
	volatile uint32_t *p = (volatile uint32_t *)va;

	*p = 0; /* the first fault gives the slot its frame */
	uint32_t *pte = pte_of(va);
	uint64_t t0 = rdtsc();
	for (uint32_t i = 0; i < iters; i++) {
		pte_write_flush(va, pte, *pte & ~PTE_P);
		*p = i;
	}
	return rdtsc() - t0;
}

static uint64_t run_portio(uint32_t iters, uint32_t *result)
{
	(void)result;
	uint64_t t0 = rdtsc();
	for (uint32_t i = 0; i < iters; i++)
		(void)inb(0x21); /* the 8259 IMR: harmless to read */
	return rdtsc() - t0;
}

static uint64_t run_cr3(uint32_t iters, uint32_t *result)
{
	(void)result;
	uint32_t *copy = (uint32_t *)frame_alloc();

	memcpy(copy, kernel_pd, PAGE_SIZE);
	uint64_t t0 = rdtsc();
	for (uint32_t i = 0; i < iters; i++)
		write_cr3(i & 1 ? (uint32_t)kernel_pd : (uint32_t)copy);
	uint64_t dt = rdtsc() - t0;
	write_cr3((uint32_t)kernel_pd);
	return dt;
}

static uint64_t run_invlpg(uint32_t iters, uint32_t *result)
{
	(void)result;
	uint32_t va = WIN_VA(WIN_BENCH_PG);
	uint32_t *pte = pte_of(va);
	uint32_t f[2] = {frame_alloc(), frame_alloc()};

	uint64_t t0 = rdtsc();
	for (uint32_t i = 0; i < iters; i++) {
		pte_write_flush(va, pte, f[i & 1] | PTE_P | PTE_W);
		(void)*(volatile uint32_t *)va;
	}
	return rdtsc() - t0;
}

static uint64_t run_int(uint32_t iters, uint32_t *result)
{
	(void)result;
	uint64_t t0 = rdtsc();
	for (uint32_t i = 0; i < iters; i++)
		asm volatile("int $0x81" ::: "memory");
	return rdtsc() - t0;
}

static uint64_t run_clisti(uint32_t iters, uint32_t *result)
{
	(void)result;
	uint64_t t0 = rdtsc();
	for (uint32_t i = 0; i < iters; i++)
#ifdef TK_PV
	{
		cli();
		sti();
	}
#else
		asm volatile("cli; sti" ::: "memory");
#endif
	return rdtsc() - t0;
}

static uint64_t run_pushfpopf(uint32_t iters, uint32_t *result)
{
	(void)result;
	uint64_t t0 = rdtsc();
	for (uint32_t i = 0; i < iters; i++)
#ifdef TK_PV /* save and restore the virtual IF: the shared page's irq_mask */
		pv_shared[PV_SH_IRQ_MASK / 4] = pv_shared[PV_SH_IRQ_MASK / 4];
#else
		asm volatile("pushfl; popfl" ::: "memory", "cc");
#endif
	return rdtsc() - t0;
}

static uint64_t run_sieve(uint32_t iters, uint32_t *result)
{
	uint64_t t0 = rdtsc();
	for (uint32_t i = 0; i < iters; i++)
		*result = sieve_count_primes((uint8_t *)SIEVE_BASE, SIEVE_BYTES);
	return rdtsc() - t0;
}

static uint64_t run_crc32(uint32_t iters, uint32_t *result)
{
	fill_pattern((uint8_t *)CRC_BASE, CRC_BYTES);
	crc32_init();
	*result = 0;
	uint64_t t0 = rdtsc();
	for (uint32_t i = 0; i < iters; i++)
		*result = crc32_update(*result, (uint8_t *)CRC_BASE, CRC_BYTES);
	return rdtsc() - t0;
}

_Static_assert(SIEVE_BYTES == SIEVE_SIZE && CRC_BYTES <= CRC_SIZE, "buffers fit the memory map");

static uint64_t (*const runners[B_COUNT])(uint32_t iters, uint32_t *result) = {
    [B_SYSCALL] = run_syscall, [B_PAGEFAULT] = run_pagefault, [B_PORTIO] = run_portio,
    [B_CR3] = run_cr3,	       [B_INVLPG] = run_invlpg,	      [B_INT] = run_int,
    [B_CLISTI] = run_clisti,   [B_PUSHFPOPF] = run_pushfpopf, [B_SIEVE] = run_sieve,
    [B_CRC32] = run_crc32,
};

static void print_line(const struct bench_result *r)
{
	char line[160];

	bench_format(line, sizeof(line), r, tsc_khz);
	kprintf("%s\n", line);
}

/* Run what the command line asks for, in enum order; 0 or the number of errors. */
uint32_t bench_run(const char *cmdline)
{
	struct bench_opts o;

	if (bench_parse(&o, cmdline)) {
		kprintf("# bad benchmark options in \"%s\"\n", cmdline);
		return 1;
	}
	char line[80];
	bench_format_tsc(line, sizeof(line), tsc_khz, tsc_source);
	kprintf("%s\n", line);
	for (int b = 0; b < B_COUNT; b++) {
		if (!(o.mask & (1u << b)))
			continue;
		struct bench_result r = {.id = (enum bench_id)b, .iters = bench_iters(&o, b)};
		r.cycles = runners[b](r.iters, &r.result);
		r.has_result = b == B_SIEVE || b == B_CRC32;
		print_line(&r);
	}
	return 0;
}

/* Does the command line ask for benchmarks at all? */
int bench_wanted(const char *cmdline)
{
	struct bench_opts o;

	return bench_parse(&o, cmdline) != 0 || o.mask != 0;
}
