/*
 * The paravirtual build's side of ring3's hypercall ABI (docs/pv.md):
 * discovery by CPUID, the shared page, page-table updates through
 * MMU_UPDATE, the checks of the ABI's answers and error paths, and a fuzz
 * mode (pvfuzz=N[:seed] on the command line) that makes N calls with random
 * numbers and arguments from ring 0 and must come back from every one.
 */
#include "kernel.h"

volatile uint32_t pv_shared[1024] __attribute__((aligned(4096)));
uint32_t pv_methods, pv_features, pv_version;
/*
 * Kernel data above USER_LIMIT that ring 3's probes try to read and write
 * (user.c). Here, not in checks_user.c: kernel.ld's *user.o takes that
 * file's data into the user image.
 */
volatile uint32_t khigh_secret = KHIGH_SECRET;

/* Every call site (pv.h) becomes `mov $PV_PORT, %dx; out %eax, (%dx); nop`. */
static void patch_sites_for_port(void)
{
	extern const uint32_t __pv_sites_start[], __pv_sites_end[];
	static const uint8_t port_call[6] = { 0x66, 0xba, PV_PORT & 0xff, PV_PORT >> 8, 0xef, 0x90 };
	uint32_t r[4];

	for (const uint32_t *s = __pv_sites_start; s < __pv_sites_end; s++)
		memcpy((void *)*s, port_call, sizeof(port_call));
	cpuid(0, r); /* serializing: no stale prefetch of a patched site (SDM vol. 3 §8.1.3) */
}

int pv_init(void)
{
	uint32_t r[4];

	cpuid(PV_CPUID_BASE, r);
	if (r[1] != PV_SIG_EBX || r[2] != PV_SIG_ECX || r[3] != PV_SIG_EDX || r[0] < PV_CPUID_INFO)
		return -1;
	cpuid(PV_CPUID_INFO, r);
	pv_version = r[0];
	pv_methods = r[1];
	pv_features = r[3];
	if (pv_version >> 16 != PV_VERSION_MAJOR || !(pv_methods & (PV_METHOD_INT82 | PV_METHOD_PORT)))
		return -1;
	if (!(pv_methods & PV_METHOD_INT82)) {
		if (r[2] != PV_PORT)
			return -1;
		patch_sites_for_port();
	}
	pv_shared[PV_SH_IRQ_MASK / 4] = 1; /* multiboot enters with IF=0 */
	/* identity-mapped: its physical and linear addresses are the same */
	if (pv_call(PV_SHARED_PAGE, (uint32_t)pv_shared, (uint32_t)pv_shared) != 0)
		return -1;
	return 0;
}

int32_t pv_mmu_batch(const struct pv_mmu_req *req, uint32_t n)
{
	return pv_call(PV_MMU_UPDATE, (uint32_t)req, n);
}

int32_t pv_mmu_set(uint32_t *entry, uint32_t val, int is_pde)
{
	struct pv_mmu_req r = { (uint32_t)entry | (is_pde ? PV_MMU_PDE : PV_MMU_PTE), val };

	return pv_mmu_batch(&r, 1);
}

/* ---- checks of the ABI's answers (replace the transparency checks) ---- */

static void check_discovery(void)
{
	uint32_t r[4];

	cpuid(PV_CPUID_BASE, r);
	tap_ok(r[1] == PV_SIG_EBX && r[2] == PV_SIG_ECX && r[3] == PV_SIG_EDX,
	       "pv: CPUID 0x40000100 signature is \"ring3pvring3\"");
	tap_eq(pv_version, PV_VERSION, "pv: CPUID 0x40000101 says ABI version 1.1");
	tap_eq((uint32_t)pv_call(PV_VERSION_CALL, 0, 0), PV_VERSION, "pv: VERSION says 1.1 too");
	tap_ok(pv_features & PV_FEAT_USER_LIMIT, "pv: USER_LIMIT is offered (1.1)");
	tap_ok(pv_methods & (PV_METHOD_INT82 | PV_METHOD_PORT), "pv: a call method is offered");
	tap_eq(pv_shared[PV_SH_VERSION / 4], PV_VERSION, "pv: the shared page carries the version");
}

static void check_irq_flag(void)
{
	cli();
	uint32_t off = irqs_enabled();
	sti();
	uint32_t on = irqs_enabled();
	tap_ok(!off && on, "pv: irq_mask follows cli and sti");
	tap_eq((uint32_t)pv_call(PV_IRQ_DISABLE, 0, 0), 0, "pv: IRQ_DISABLE");
	if (pv_features & PV_FEAT_SHARED_IF)
		tap_eq(pv_shared[PV_SH_IRQ_MASK / 4], 1, "pv: ... and the shared page shows it");
	else
		tap_ok(1, "pv: ... (no shared IF on this engine)");
	tap_eq((uint32_t)pv_call(PV_IRQ_ENABLE, 0, 0), 0, "pv: IRQ_ENABLE");
	tap_ok(irqs_enabled(), "pv: ... and interrupts are on again");
}

/* A word in the page-frame pool the MMU checks write to (and must not when refused). */
static uint32_t *scratch_table(void)
{
	static uint32_t *t;

	if (!t)
		t = (uint32_t *)frame_alloc();
	return t;
}

static void check_errors(void)
{
	uint32_t *pt = scratch_table();
	static struct pv_mmu_req req[2] __attribute__((aligned(8)));
	static const char msg[] = "# pv: console write through the ABI\n";

	tap_eq((uint32_t)pv_call(PV_NR_CALLS, 0, 0), (uint32_t)-PV_ENOSYS,
	       "pv: the first unused call number is -ENOSYS");
	tap_eq((uint32_t)pv_call(0xffffffffu, 0, 0), (uint32_t)-PV_ENOSYS,
	       "pv: call 0xffffffff is -ENOSYS");
	tap_eq((uint32_t)pv_call(PV_SET_CR3, (uint32_t)kernel_pd + 4, 0), (uint32_t)-PV_EINVAL,
	       "pv: SET_CR3 of an unaligned directory is -EINVAL");
	tap_eq((uint32_t)pv_call(PV_SET_CR3, 0xfee00000u, 0), (uint32_t)-PV_EFAULT,
	       "pv: SET_CR3 outside RAM is -EFAULT");
	tap_eq((uint32_t)pv_call(PV_SET_IDT, 0x1000, 0x800), (uint32_t)-PV_EINVAL,
	       "pv: SET_IDT with more than 256 gates is -EINVAL");
	tap_eq((uint32_t)pv_call(PV_STACK_SWITCH, SEL_UDATA, 0x9000), (uint32_t)-PV_EINVAL,
	       "pv: STACK_SWITCH to an RPL-3 selector is -EINVAL");
	tap_eq((uint32_t)pv_call(PV_TLB_FLUSH, 0xffc00000u, 0), (uint32_t)-PV_EINVAL,
	       "pv: TLB_FLUSH of the monitor's 4 MiB is -EINVAL");
	tap_eq((uint32_t)pv_call(PV_CONSOLE_WRITE, (uint32_t)msg, PV_CONSOLE_MAX + 1),
	       (uint32_t)-PV_EINVAL, "pv: CONSOLE_WRITE of more than 4 KiB is -EINVAL");
	tap_eq((uint32_t)pv_call(PV_CONSOLE_WRITE, 0xfffff000u, 16), (uint32_t)-PV_EFAULT,
	       "pv: CONSOLE_WRITE from outside RAM is -EFAULT");
	tap_eq((uint32_t)pv_call(PV_CONSOLE_WRITE, (uint32_t)msg, sizeof(msg) - 1),
	       sizeof(msg) - 1, "pv: CONSOLE_WRITE writes a line");

	/* MMU_UPDATE: entry 0 is good, entry 1 bad; the batch must change nothing. */
	static const struct {
		uint32_t ptr_ofs, kind, val, err;
		const char *what;
	} bad[] = {
		{ 8, PV_MMU_PTE, 0xf0000000u | PTE_P | PTE_W, PV_EPERM,
		  "pv: MMU_UPDATE mapping a frame outside RAM is -EPERM" },
		{ 4 * PV_PDE_MONITOR, PV_MMU_PDE, (uint32_t)0x1000 | PTE_P, PV_EPERM,
		  "pv: MMU_UPDATE of PDE 1023 (the monitor's memory) is -EPERM" },
		{ 8, PV_MMU_PDE, 0xfc000000u | PTE_P | PTE_PS, PV_EPERM,
		  "pv: MMU_UPDATE of a 4 MiB page outside RAM is -EPERM" },
		{ 8, 2, 0x1000 | PTE_P, PV_EINVAL, "pv: MMU_UPDATE of an unknown kind is -EINVAL" },
	};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		pt[1] = 0;
		req[0] = (struct pv_mmu_req){ (uint32_t)&pt[1], 0x5000 | PTE_P };
		req[1] = (struct pv_mmu_req){ ((uint32_t)pt + bad[i].ptr_ofs) | bad[i].kind,
					      bad[i].val };
		tap_eq((uint32_t)pv_mmu_batch(req, 2), (uint32_t)-bad[i].err, bad[i].what);
		tap_eq(pt[1], 0, "pv: ... and the good entry before it was not written");
	}
	req[0] = (struct pv_mmu_req){ 0xf0000000u, 0 };
	tap_eq((uint32_t)pv_mmu_batch(req, 1), (uint32_t)-PV_EFAULT,
	       "pv: MMU_UPDATE of an entry outside RAM is -EFAULT");
	tap_eq((uint32_t)pv_mmu_batch(req, 0), (uint32_t)-PV_EINVAL,
	       "pv: MMU_UPDATE of 0 entries is -EINVAL");
	tap_eq((uint32_t)pv_call(PV_MMU_UPDATE, 0xfffffff8u, 2), (uint32_t)-PV_EFAULT,
	       "pv: MMU_UPDATE of a list outside RAM is -EFAULT");
	req[0] = (struct pv_mmu_req){ (uint32_t)&pt[1], 0x5000 | PTE_P };
	req[1] = (struct pv_mmu_req){ (uint32_t)&pt[2], 0x6000 | PTE_P | PTE_W };
	tap_eq((uint32_t)pv_mmu_batch(req, 2), 2, "pv: MMU_UPDATE of 2 good entries does 2");
	tap_ok(pt[1] == (0x5000 | PTE_P) && pt[2] == (0x6000 | PTE_P | PTE_W),
	       "pv: ... and both are written");

	/* USER_LIMIT (1.1): 4 MiB-aligned, 4 MiB .. 0xffc00000; the kernel's own stands */
	tap_eq((uint32_t)pv_call1(PV_USER_LIMIT, USER_LIMIT_VA + 0x1000), (uint32_t)-PV_EINVAL,
	       "pv: USER_LIMIT not 4 MiB-aligned is -EINVAL");
	tap_eq((uint32_t)pv_call1(PV_USER_LIMIT, 0), (uint32_t)-PV_EINVAL,
	       "pv: USER_LIMIT 0 (the kernel would be user) is -EINVAL");
	tap_eq((uint32_t)pv_call1(PV_USER_LIMIT, 0xffc00000u + 0x400000u), (uint32_t)-PV_EINVAL,
	       "pv: USER_LIMIT past the monitor's 4 MiB is -EINVAL");
	tap_eq((uint32_t)pv_call1(PV_USER_LIMIT, USER_LIMIT_VA), 0,
	       "pv: USER_LIMIT 8 MiB again is accepted");
	/* a user PDE from the limit up would break the promise: refused, and nothing written */
	pt[2] = 0;
	req[0] = (struct pv_mmu_req){ ((uint32_t)&pt[PDX(USER_LIMIT_VA)]) | PV_MMU_PDE,
				      0x1000 | PTE_P | PTE_U };
	tap_eq((uint32_t)pv_mmu_batch(req, 1), (uint32_t)-PV_EPERM,
	       "pv: MMU_UPDATE of a user PDE at USER_LIMIT is -EPERM");
	req[0] = (struct pv_mmu_req){ ((uint32_t)&pt[PDX(USER_LIMIT_VA) - 1]) | PV_MMU_PDE,
				      0x1000 | PTE_P | PTE_U };
	tap_eq((uint32_t)pv_mmu_batch(req, 1), 1, "pv: ... and of one below it is done");
	tap_eq(pt[PDX(USER_LIMIT_VA)], 0, "pv: ... the refused one was not written");
}

/*
 * UPDATE_VA (1.1): retarget the benchmark's window page twice, each time one
 * call with its flush, and read through it; then the error paths. Where the
 * engine needs the guest's own store (MMU_RESTORE, kvm) the call writes
 * without a flush, and the store and TLB_FLUSH follow.
 */
static void check_update_va(void)
{
	uint32_t va = WIN_VA(WIN_BENCH_PG), *pte = pte_of(va), was = *pte;
	uint32_t f[2] = { frame_alloc(), frame_alloc() };
	int restore = !!(pv_features & PV_FEAT_MMU_RESTORE);

	*(uint32_t *)f[0] = 0x11111111u;
	*(uint32_t *)f[1] = 0x22222222u;
	for (int i = 0; i < 2; i++) {
		uint32_t val = f[i] | PTE_P | PTE_W;
		int32_t r = pv_call4(PV_UPDATE_VA, va, val, restore ? 0 : PV_UVA_INVLPG, 0);

		if (restore && r == 0) {
			*(volatile uint32_t *)pte = val;
			invlpg(va);
		}
		tap_eq((uint32_t)r, 0, i ? "pv: UPDATE_VA retargets the page again"
					 : "pv: UPDATE_VA retargets a page and flushes it");
		tap_eq(*(volatile uint32_t *)va, i ? 0x22222222u : 0x11111111u,
		       "pv: ... and it reads through the new frame");
	}
	tap_eq((uint32_t)pv_call4(PV_UPDATE_VA, va + 4, f[0] | PTE_P, 0, 0), (uint32_t)-PV_EINVAL,
	       "pv: UPDATE_VA of an unaligned address is -EINVAL");
	tap_eq((uint32_t)pv_call4(PV_UPDATE_VA, ALIAS4M_BASE, f[0] | PTE_P, 0, 0),
	       (uint32_t)-PV_EINVAL, "pv: UPDATE_VA inside a 4 MiB page is -EINVAL");
	tap_eq((uint32_t)pv_call4(PV_UPDATE_VA, va, 0xf0000000u | PTE_P, PV_UVA_INVLPG, 0),
	       (uint32_t)-PV_EPERM, "pv: UPDATE_VA to a frame outside RAM is -EPERM");
	tap_eq(*pte, f[1] | PTE_P | PTE_W | PTE_A, "pv: ... and the PTE is unchanged");
	pte_write_flush(va, pte, was);
}

/* SET_TIMER: a one-shot on IRQ 5, seen in the 8259's IRR (the line stays masked). */
static void check_timer(void)
{
	uint64_t t0 = rdtsc(), limit = (uint64_t)tsc_khz * 500; /* 0.5 s */
	int seen = 0;

	tap_eq((uint32_t)pv_call(PV_SET_TIMER, 1000000, 0), 0, "pv: SET_TIMER 1 ms");
	while (!seen && rdtsc() - t0 < limit)
		seen = pic_read_irr() & (1u << PV_TIMER_IRQ);
	tap_ok(seen, "pv: ... raises IRQ 5 (the 8259's IRR shows it)");
}

void pv_checks(void)
{
	check_discovery();
	check_irq_flag();
	check_errors();
	check_update_va();
	check_timer();
}

/* ---- fuzz: random calls from ring 0; ring3 must answer every one ---- */

static uint32_t rng;
static uint32_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 17;
	rng ^= rng << 5;
	return rng;
}

/* A switch, not a chain of ||: gcc 12 -O2 miscompiles such chains (test_pv.c). */
static int documented(int32_t r)
{
	switch (r) {
	case -PV_EPERM:
	case -PV_EFAULT:
	case -PV_EINVAL:
	case -PV_ENOSYS:
		return 1;
	default:
		return 0;
	}
}

static uint32_t parse_num(const char **s)
{
	uint32_t v = 0;

	while (**s >= '0' && **s <= '9')
		v = v * 10 + (uint32_t)(*(*s)++ - '0');
	return v;
}

static const char *find_opt(const char *cmdline)
{
	for (const char *p = cmdline; *p; p++)
		if ((p == cmdline || p[-1] == ' ') && !memcmp(p, "pvfuzz=", 7))
			return p + 7;
	return 0;
}

int pv_fuzz_wanted(const char *cmdline)
{
	return find_opt(cmdline) != 0;
}

/*
 * Calls that would end the run, stop the clock or move what the kernel stands
 * on (its page directory, IDT, GDT, stack, shared page) are made with
 * arguments ring3 must refuse, and one it accepts is counted as wrong;
 * every other call gets random arguments.
 * MMU_UPDATE's requests point at a scratch page table, so a random entry
 * that ring3 accepts changes nothing the kernel uses.
 */
uint32_t pv_fuzz(const char *cmdline)
{
	const char *s = find_opt(cmdline);
	uint32_t n = parse_num(&s), errors = 0, refused = 0;
	static struct pv_mmu_req req[8] __attribute__((aligned(8)));
	uint32_t *pt = scratch_table();

	rng = 0x2545f491u;
	if (*s == ':') {
		s++;
		rng = parse_num(&s) | 1;
	}
	kprintf("# pvfuzz: %u calls, seed %u\n", n, rng);
	for (uint32_t i = 0; i < n; i++) {
		uint32_t nr = rnd() % (PV_NR_CALLS + 8), a[4] = { rnd(), rnd(), rnd(), rnd() };
		int32_t r;
		int must_fail = 0;

		if (rnd() & 1)
			nr = rnd(); /* any 32-bit number */
		switch (nr) {
		case PV_SHUTDOWN:
		case PV_HALT:
			nr = PV_VERSION_CALL;
			break;
		case PV_SET_CR3:
		case PV_SHARED_PAGE:
			a[0] |= 1; /* unaligned: must be refused */
			must_fail = 1;
			break;
		case PV_SET_IDT:
		case PV_SET_GDT:
			a[1] |= 0x10000; /* limit too large */
			must_fail = 1;
			break;
		case PV_STACK_SWITCH:
			a[0] |= 3; /* RPL 3 */
			must_fail = 1;
			break;
		case PV_MMU_UPDATE:
			for (int k = 0; k < 8; k++)
				req[k] = (struct pv_mmu_req){ ((uint32_t)pt + (rnd() & 0xffc)) |
								      (rnd() % 3),
							      rnd() & ~(uint32_t)PTE_PS };
			/* the list itself: ours, or an address outside RAM (never the kernel's) */
			a[0] = (rnd() & 1) ? (uint32_t)req : a[0] | 0x80000000u;
			a[1] = rnd() % 10;
			break;
		case PV_CONSOLE_WRITE:
			/* our line, or an address above any RAM: never random memory on the console */
			if (a[2] & 1) {
				a[0] = (uint32_t)"# pvfuzz\n";
				a[1] = (a[1] & 1) ? 9 : PV_CONSOLE_MAX + 1;
				must_fail = a[1] != 9;
			} else
				a[0] |= 0xf0000000u, a[1] &= 0x1fff;
			break;
		case PV_SET_TIMER:
			a[1] = 0; /* at most 4.3 s away */
			break;
		case PV_IRQ_DISABLE:
			nr = PV_IRQ_ENABLE; /* the run needs its timer */
			break;
		case PV_UPDATE_VA:
			/* unaligned, or inside a 4 MiB page: never the kernel's live tables */
			a[0] = (a[1] & 1) ? a[0] | 1 : ALIAS4M_BASE | (a[0] & 0x3ff000u);
			must_fail = 1;
			break;
		case PV_USER_LIMIT:
			/* the kernel's own limit, or an unaligned one: another would move the split */
			if (a[1] & 1) {
				a[0] = USER_LIMIT_VA;
			} else {
				a[0] |= 1;
				must_fail = 1;
			}
			break;
		}
		r = pv_call4(nr, a[0], a[1], a[2], a[3]);
		if (r < 0)
			refused++;
		if ((r < 0 && !documented(r)) || (r >= 0 && must_fail)) {
			if (errors++ < 5)
				kprintf("# pvfuzz: call %u (%x %x %x %x) returned %d\n", nr, a[0], a[1],
					a[2], a[3], r);
		}
	}
	pv_call(PV_SET_TIMER, 0, 0);
	/* reached only if ring3 came back from every call */
	kprintf("# pvfuzz: done: %u calls, %u refused, %u wrong results\n", n, refused, errors);
	return errors;
}
