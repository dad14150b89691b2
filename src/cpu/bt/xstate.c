/*
 * Does the runtime leave the guest's AVX state alone?
 *
 * A far callout (runtime.c) runs the runtime's C code and libraries between
 * two guest instructions. Guest ring 3 runs natively and sees the host's
 * CPUID, so a guest process may hold AVX and AVX-512 state (YMM/ZMM upper
 * halves, opmask registers) while its kernel runs under us. Saving and
 * restoring all of that around every callout (XSAVEOPT/XRSTOR of ~2.7 KiB
 * with AVX-512) was a large share of a callout (the test kernel's INT+IRET,
 * two callouts, took 3.5-4.4 us with it and 2.7-3.6 us without in three
 * interleaved runs; docs/bt.md); if nothing the runtime
 * runs touches those registers, FXSAVE of the x87/SSE state it does use is
 * enough, and the rest simply stays in the registers (legacy SSE
 * instructions leave bits 511:128 alone, Intel SDM vol. 1 §13.11, AMD APM
 * vol. 1 §3.6.3 "SSE instructions and upper bits").
 *
 * ring3 and Zydis are built for baseline x86-64; glibc picks AVX versions of
 * its string functions at start-up unless told not to (main.c restarts ring3
 * with GLIBC_TUNABLES saying so). Rather than trust that, the child probes
 * the functions the runtime calls, at the sizes it calls them with, and
 * keeps every register's upper half checked: any change, and callouts save
 * all the extended state as before. (The child's other libc calls, vsnprintf
 * and what it calls, run only on the way to stopping the VM: rt_fatal.)
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "runtime.h"

static uint8_t buf_a[65536], buf_b[65536];

/* The library calls, through pointers so that the compiler cannot inline them. */
static void *(*volatile p_memcpy)(void *, const void *, size_t) = memcpy;
static void *(*volatile p_memmove)(void *, const void *, size_t) = memmove;
static void *(*volatile p_memset)(void *, int, size_t) = memset;
static int (*volatile p_memcmp)(const void *, const void *, size_t) = memcmp;
static size_t (*volatile p_strlen)(const char *) = strlen;
static void *(*volatile p_memchr)(const void *, int, size_t) = memchr;

static void cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4])
{
	__asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(sub));
}

/* Every library call the runtime makes, over the sizes it makes them with. */
static void exercise(void)
{
	for (size_t n = 1; n <= 65536; n *= 2) {
		p_memset(buf_a, (int)n, n);
		p_memcpy(buf_b, buf_a, n);
		p_memmove(buf_a + 1, buf_a, n - 1); /* overlapping, both ways */
		p_memmove(buf_a, buf_a + 1, n - 1);
		(void)p_memcmp(buf_a, buf_b, n);
		(void)p_memchr(buf_a, 0x7e, n);
		buf_a[n - 1] = 0;
		(void)p_strlen((const char *)buf_a);
	}
}

/* AVX: YMM0-15's upper halves. AVX-512 (avx512): also ZMM0-15's bits 511:256 and K1-K7. */
bool xstate_libc_spares_avx(void)
{
	static uint64_t in[16][8] __attribute__((aligned(64))), out[16][8] __attribute__((aligned(64)));
	uint16_t kin[8], kout[8];
	uint32_t r[4], xcr0_lo, xcr0_hi;
	bool avx512;

	cpuid(1, 0, r);
	if (!(r[2] & (1u << 27)) || !(r[2] & (1u << 28)))
		return true; /* no OSXSAVE or no AVX: only x87/SSE state exists */
	__asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
	if ((xcr0_lo & 6) != 6)
		return true;
	cpuid(7, 0, r);
	avx512 = (r[1] & (1u << 16)) && (xcr0_lo & 0xe0) == 0xe0;
	for (int i = 0; i < 16; i++)
		for (int j = 0; j < 8; j++)
			in[i][j] = 0x9e3779b97f4a7c15ull * (uint64_t)(i * 8 + j + 1);
	for (int k = 1; k < 8; k++)
		kin[k] = (uint16_t)(0x1111u * (unsigned)k ^ 0x5a5au);

#define YMM_IN(n) __asm__ volatile("vmovdqu %0, %%ymm" #n : : "m"(in[n][0]))
#define YMM_OUT(n) __asm__ volatile("vmovdqu %%ymm" #n ", %0" : "=m"(out[n][0]))
#define ZMM_IN(n) __asm__ volatile("vmovdqu64 %0, %%zmm" #n : : "m"(in[n][0]))
#define ZMM_OUT(n) __asm__ volatile("vmovdqu64 %%zmm" #n ", %0" : "=m"(out[n][0]))
#define ALL(m) m(0); m(1); m(2); m(3); m(4); m(5); m(6); m(7); m(8); m(9); m(10); m(11); \
	m(12); m(13); m(14); m(15)
#define K_IN(n) __asm__ volatile("kmovw %0, %%k" #n : : "m"(kin[n]))
#define K_OUT(n) __asm__ volatile("kmovw %%k" #n ", %0" : "=m"(kout[n]))
#define ALLK(m) m(1); m(2); m(3); m(4); m(5); m(6); m(7)

	if (avx512) {
		ALL(ZMM_IN);
		ALLK(K_IN);
	} else {
		ALL(YMM_IN);
	}
	exercise();
	if (avx512) {
		ALL(ZMM_OUT);
		ALLK(K_OUT);
	} else {
		ALL(YMM_OUT);
	}
	__asm__ volatile("vzeroupper"); /* the runtime's own SSE code runs clean */
	/* the lower 128 bits are SSE state, which FXSAVE keeps: compare the rest */
	for (int i = 0; i < 16; i++)
		for (int j = 2; j < (avx512 ? 8 : 4); j++)
			if (out[i][j] != in[i][j])
				return false;
	for (int k = 1; avx512 && k < 8; k++)
		if (kout[k] != kin[k])
			return false;
	return true;
}
