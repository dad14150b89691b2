/*
 * avx-user: a Linux user process (i386, no libc) that keeps values in the AVX
 * registers (YMM0-7, and under AVX-512 ZMM0-7 and K1-7) while its kernel
 * runs: system calls, page faults and timer interrupts, thousands of each,
 * checking after each that every register still holds its value. On a CPU
 * the kernel's entries and exits leave those registers alone (an i386 kernel
 * that does not know AVX never saves them); under bt the runtime runs C code
 * and libraries between guest instructions and must keep them intact
 * (docs/bt.md, "The world switch"). Exits 0 when all held, 1 at the first
 * register that changed, 77 when the CPU has no AVX (CPUID as ring 3 sees it).
 * tests/guest/bt-avx.sh runs it in the i386 guest under bt.
 */
void _start(void);

#define ROUNDS 20000
#define PAGES 2048 /* a new page touched every round: a #PF each, until they run out */

static unsigned char touch[PAGES * 4096] __attribute__((aligned(4096)));
static unsigned want[8] __attribute__((aligned(64)));
static unsigned got[16] __attribute__((aligned(64)));

int run(void);
void leave(int status);

static int sys1(int nr, int a)
{
	int r;

	__asm__ volatile("int $0x80" : "=a"(r) : "a"(nr), "b"(a) : "memory");
	return r;
}

__attribute__((noreturn, used, noinline)) void leave(int status)
{
	sys1(1, status);
	for (;;)
		;
}

static void cpuid(unsigned leaf, unsigned sub, unsigned r[4])
{
	__asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(sub));
}

static unsigned xcr0(void)
{
	unsigned lo, hi;

	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return lo;
}

/* The registers are loaded once; only stores read them afterwards. */
#define LOAD_YMM(n) __asm__ volatile("vbroadcastss %0, %%ymm" #n : : "m"(want[n]))
#define LOAD_ZMM(n) __asm__ volatile("vbroadcastss %0, %%zmm" #n : : "m"(want[n]))
/* reg is ymm or zmm, words 8 or 16 */
#define CHECK(reg, n, words)                                                               \
	do {                                                                               \
		__asm__ volatile("vmovups %%" #reg #n ", %0" : "=m"(*(unsigned(*)[words])got)); \
		for (int i = 0; i < (words); i++)                                          \
			if (got[i] != want[n])                                             \
				return 1;                                                  \
	} while (0)
#define CHECK_YMM(n) CHECK(ymm, n, 8)
#define CHECK_ZMM(n) CHECK(zmm, n, 16)

static int check_avx(void)
{
	CHECK_YMM(0); CHECK_YMM(1); CHECK_YMM(2); CHECK_YMM(3);
	CHECK_YMM(4); CHECK_YMM(5); CHECK_YMM(6); CHECK_YMM(7);
	return 0;
}

static int check_avx512(void)
{
	unsigned k;

	CHECK_ZMM(0); CHECK_ZMM(1); CHECK_ZMM(2); CHECK_ZMM(3);
	CHECK_ZMM(4); CHECK_ZMM(5); CHECK_ZMM(6); CHECK_ZMM(7);
	__asm__ volatile("kmovw %%k3, %0" : "=r"(k));
	if (k != 0x5a3c)
		return 1;
	__asm__ volatile("kmovw %%k6, %0" : "=r"(k));
	return k != 0xc3a5;
}

__attribute__((used, noinline)) int run(void)
{
	unsigned r[4];
	int avx512;

	cpuid(1, 0, r);
	if (!(r[2] & (1u << 28)) || !(r[2] & (1u << 27)) || (xcr0() & 6) != 6)
		leave(77);
	cpuid(7, 0, r);
	avx512 = (r[1] & (1u << 16)) && (xcr0() & 0xe0) == 0xe0;
	for (int i = 0; i < 8; i++)
		want[i] = 0x3fc00000u + (unsigned)i * 0x01010101u;
	if (avx512) {
		LOAD_ZMM(0); LOAD_ZMM(1); LOAD_ZMM(2); LOAD_ZMM(3);
		LOAD_ZMM(4); LOAD_ZMM(5); LOAD_ZMM(6); LOAD_ZMM(7);
		__asm__ volatile("kmovw %0, %%k3" : : "r"(0x5a3c));
		__asm__ volatile("kmovw %0, %%k6" : : "r"(0xc3a5));
	} else {
		LOAD_YMM(0); LOAD_YMM(1); LOAD_YMM(2); LOAD_YMM(3);
		LOAD_YMM(4); LOAD_YMM(5); LOAD_YMM(6); LOAD_YMM(7);
	}
	for (int n = 0; n < ROUNDS; n++) {
		sys1(64, 0); /* getppid: a system call */
		if (n < PAGES)
			touch[n * 4096] = 1; /* a page fault */
		for (volatile int spin = 0; spin < 2000; spin++) /* timer interrupts land here */
			;
		if (avx512 ? check_avx512() : check_avx())
			return 1;
	}
	return 0;
}

__attribute__((naked, noreturn)) void _start(void)
{
	__asm__ volatile("and $-64, %esp\n\t"
			 "call run\n\t"
			 "push %eax\n\t"
			 "call leave");
}
