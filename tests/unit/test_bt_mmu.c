/*
 * The bt engine's guest page walk and shadow paging (src/cpu/bt/mmu.c) on a
 * synthetic guest: page tables built in a memfd, walks checked against Intel
 * SDM vol. 3 §4.3 (4 KiB and 4 MiB pages), §4.7 (error codes), §4.8 (A/D);
 * then real shadow mappings made in this process at guest-virtual addresses
 * below 4 GiB, read through, write-protected for translated code, and flushed.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cpu/bt/runtime.h"
#include "tap.h"

#define RAM_SIZE (16u << 20)
#define PD 0x1000u    /* page directory */
#define PT 0x2000u    /* one page table: virtual 0x40000000-0x403fffff */
#define VA_T 0x40000000u
#define P 1u
#define W 2u
#define U 4u
#define A 0x20u
#define D 0x40u
#define PS 0x80u
#define G 0x100u

static struct bt_shared sh;
static ucontext_t uc; /* the guest's EIP, as a signal handler would see it */

static uint32_t *phys32(uint32_t pa)
{
	return (uint32_t *)(rt.ram + pa);
}

static int walk(uint32_t la, unsigned acc, uint64_t *pa, struct bt_fault *f)
{
	f->vec = -1;
	return mmu_translate(la, acc, pa, f);
}

static void setup(void)
{
	rt.sh = &sh;
	rt.cpu = &sh.vcpu;
	rt.uc = &uc;
	rt.st = &sh.stats;
	rt.memfd = memfd_create("test-bt-mmu", 0);
	if (rt.memfd < 0 || ftruncate(rt.memfd, RAM_SIZE))
		exit(1);
	rt.ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, rt.memfd, 0);
	rt.ram_size = RAM_SIZE;
	rt.cpu->cr0 = CR0_PE | CR0_ET | CR0_PG | CR0_WP;
	rt.cpu->cr3 = PD;
	rt.cpu->cr4 = CR4_PSE;

	*phys32(PD + (VA_T >> 22) * 4) = PT | P | W | U;
	*phys32(PT + 0 * 4) = 0x100000 | P | W | U;	 /* user RW */
	*phys32(PT + 1 * 4) = 0x101000 | P | U;		 /* user RO */
	*phys32(PT + 2 * 4) = 0x102000 | P | W;		 /* supervisor RW */
	*phys32(PT + 3 * 4) = 0x103000 | P | W | U | G; /* global (PGE off: not global) */
	*phys32(PT + 4 * 4) = 0x7ff00000 | P | W | U;	 /* beyond RAM: MMIO */
	/* 4 MiB page: virtual 0x80000000 -> physical 0x00800000, supervisor */
	*phys32(PD + (0x80000000u >> 22) * 4) = 0x00800000 | P | W | PS;
	*phys32(PD + (0x80400000u >> 22) * 4) = 0x00c00000 | P | U | PS; /* user read-only */
}

static void test_walks(void)
{
	uint64_t pa;
	struct bt_fault f;

	ok(walk(VA_T + 0x123, 0, &pa, &f) == 0 && pa == 0x100123, "4 KiB page: physical address");
	is_int(*phys32(PT) & (A | D), A, "a read sets A in the PTE, not D");
	is_int(*phys32(PD + (VA_T >> 22) * 4) & A, A, "and A in the PDE");
	walk(VA_T + 4, ACC_W | ACC_U, &pa, &f);
	is_int(*phys32(PT) & (A | D), A | D, "a write sets D");

	ok(walk(VA_T + 0x1000, ACC_W | ACC_U, &pa, &f) < 0 && f.vec == EXC_PF &&
		   f.err == (PFERR_P | PFERR_W | PFERR_U) && f.cr2 == VA_T + 0x1000,
	   "ring-3 write to a read-only page: #PF err 7, CR2");
	ok(walk(VA_T + 0x1000, ACC_W, &pa, &f) < 0 && f.err == (PFERR_P | PFERR_W),
	   "ring-0 write to a read-only page with CR0.WP=1: #PF err 3");
	rt.cpu->cr0 &= ~CR0_WP;
	ok(walk(VA_T + 0x1000, ACC_W, &pa, &f) == 0, "... and allowed with CR0.WP=0");
	rt.cpu->cr0 |= CR0_WP;
	ok(walk(VA_T + 0x2000, ACC_U, &pa, &f) < 0 && f.err == (PFERR_P | PFERR_U),
	   "ring-3 read of a supervisor page: #PF err 5");
	ok(walk(VA_T + 0x2000, 0, &pa, &f) == 0 && pa == 0x102000, "ring 0 reads it");
	ok(walk(VA_T + 0x5000, 0, &pa, &f) < 0 && f.err == 0, "not-present PTE: #PF err 0");
	ok(walk(0x90000000u, ACC_W | ACC_U, &pa, &f) < 0 && f.err == (PFERR_W | PFERR_U),
	   "not-present PDE, ring-3 write: #PF err 6");

	ok(walk(0x80123456u, 0, &pa, &f) == 0 && pa == 0x00923456, "4 MiB page: physical address");
	walk(0x80000000u, ACC_W, &pa, &f);
	is_int(*phys32(PD + 0x200 * 4) & (A | D), A | D, "4 MiB page: a write sets A and D in the PDE");
	ok(walk(0x80400000u, ACC_W | ACC_U, &pa, &f) < 0 && f.err == 7,
	   "4 MiB user read-only page: ring-3 write faults");
	rt.cpu->cr4 &= ~CR4_PSE;
	*phys32(0x00800000) = 0x00555000 | P;
	ok(walk(0x80000010u, 0, &pa, &f) == 0 && pa == 0x00555010,
	   "with CR4.PSE=0 the PS bit is ignored: the PDE points to a page table");
	rt.cpu->cr4 |= CR4_PSE;

	rt.cpu->cr0 &= ~CR0_PG;
	ok(walk(0x12345678, ACC_W | ACC_U, &pa, &f) == 0 && pa == 0x12345678, "paging off: identity");
	rt.cpu->cr0 |= CR0_PG;
}

static void test_vmem(void)
{
	struct bt_fault f;
	uint32_t v = 0xa5a5a5a5, back = 0;
	uint8_t buf[8];

	memset(rt.ram + 0x100ffc, 0x11, 4);
	memset(rt.ram + 0x101000, 0x22, 4);
	ok(vmem_read(VA_T + 0xffc, buf, 8, 0, &f) == 0 && buf[0] == 0x11 && buf[7] == 0x22,
	   "vmem_read across a page boundary joins two physical pages");
	ok(vmem_write(VA_T + 0xffe, &v, 4, ACC_U, &f) < 0 && f.vec == EXC_PF &&
		   f.cr2 == VA_T + 0x1000,
	   "vmem_write that crosses into a read-only page faults at the second page");
	ok(vmem_read(VA_T + 0x4000, &back, 4, 0, &f) == 0 && back == 0xffffffff,
	   "memory that is not RAM reads as ones");
}

static sigjmp_buf jb;
static void on_segv(int sig)
{
	(void)sig;
	siglongjmp(jb, 1);
}

static bool readable(uint32_t la, uint32_t *out)
{
	if (sigsetjmp(jb, 1))
		return false;
	*out = *(volatile uint32_t *)(uintptr_t)la;
	return true;
}

static bool writable(uint32_t la, uint32_t v)
{
	if (sigsetjmp(jb, 1))
		return false;
	*(volatile uint32_t *)(uintptr_t)la = v;
	return true;
}

/* The #PF in f goes to the guest from guest EIP eip (what vcpu_exception reports). */
static void deliver_pf(const struct bt_fault *f, uint32_t eip)
{
	uc.uc_mcontext.gregs[REG_RIP] = eip;
	mmu_pf_delivered(f->cr2, eip);
}

/* The guest's handler returns (IRET) to eip. */
static void fault_returned(uint32_t eip)
{
	uc.uc_mcontext.gregs[REG_RIP] = eip;
	mmu_fault_returned();
}

static void test_shadow(void)
{
	struct bt_fault f = { .vec = -1 };
	uint64_t mmio = 0;
	uint32_t v = 0;

	signal(SIGSEGV, on_segv);
	mmu_init();
	*phys32(0x100010) = 0xcafe;
	*phys32(PT) &= ~D;
	ok(mmu_fault(VA_T + 0x10, 0, &f, &mmio) == 0, "a read fault fills the shadow");
	ok(readable(VA_T + 0x10, &v) && v == 0xcafe, "the guest-virtual page shows guest RAM");
	ok(!writable(VA_T + 0x10, 1), "a page whose D bit is clear is mapped read-only");
	ok(mmu_fault(VA_T + 0x10, PFERR_P | PFERR_W, &f, &mmio) == 0 && writable(VA_T + 0x10, 0xbeef) &&
		   *phys32(0x100010) == 0xbeef,
	   "the first write sets D and maps it writable, onto the same RAM");
	ok(mmu_fault(VA_T + 0x1000, PFERR_W, &f, &mmio) < 0 && f.vec == EXC_PF,
	   "a write to a guest read-only page is the guest's #PF");
	ok(mmu_fault(VA_T + 0x4000, 0, &f, &mmio) == 1 && mmio == 0x7ff00000,
	   "a page beyond RAM is MMIO, at its guest-physical address");

	mmu_code_page(0x100000);
	ok(!writable(VA_T + 0x10, 1), "a page with translated code becomes read-only everywhere");
	ok(mmu_fault(VA_T + 0x10, PFERR_P | PFERR_W, &f, &mmio) == 2 && writable(VA_T + 0x10, 2),
	   "a write to it drops the translations (2) and makes it writable again");
	is_int(rt.st->smc_writes, 1, "one self-modifying write counted");

	ok(mmu_fault(0x80000123u, 0, &f, &mmio) == 0 && readable(0x803ff000u, &v),
	   "a 4 MiB page is shadowed whole at the first fault");
	mmu_invlpg(0x80200000u);
	ok(!readable(0x80000000u, &v), "INVLPG anywhere in it drops the whole 4 MiB page");

	rt.cpu->cpl = 3;
	mmu_fault(VA_T + 0x2000, 0, &f, &mmio);
	ok(f.vec == EXC_PF, "at CPL 3 a supervisor page is not shadowed");
	rt.cpu->cpl = 0;
	ok(mmu_fault(VA_T + 0x2000, 0, &f, &mmio) == 0 && readable(VA_T + 0x2000, &v),
	   "at CPL 0 it is");
	rt.cpu->cpl = 3;
	mmu_cpl_changed(0);
	ok(!readable(VA_T + 0x2000, &v) && readable(VA_T + 0x10, &v),
	   "switching to CPL 3 hides the supervisor page, not the user page");
	rt.cpu->cpl = 0; /* no mmu_cpl_changed: a hidden page the kernel-entry path did not show */
	ok(!readable(VA_T + 0x2000, &v), "hidden until shown");
	ok(mmu_fault(VA_T + 0x2000, 0, &f, &mmio) == 0 && readable(VA_T + 0x2000, &v) &&
		   rt.st->us_shows == 1,
	   "the kernel's fault on a hidden page shows it again (the lazy path)");
	rt.cpu->cpl = 3;
	mmu_cpl_changed(0);
	ok(!readable(VA_T + 0x2000, &v) && rt.st->us_hides == 2,
	   "the next switch to CPL 3 hides only what the kernel exposed");
	rt.cpu->cpl = 0;
	mmu_cpl_changed(3);
	ok(readable(VA_T + 0x2000, &v) && rt.st->us_preshows == 1 && rt.st->us_shows == 1,
	   "entering the kernel shows the runs hidden on the way out at once, without a fault");
	rt.cpu->cpl = 3;
	mmu_cpl_changed(0);
	mmu_invlpg(VA_T + 0x2000);
	rt.cpu->cpl = 0;
	mmu_cpl_changed(3);
	ok(!readable(VA_T + 0x2000, &v) && rt.st->us_preshows == 1,
	   "a run dropped meanwhile (INVLPG at CPL 3) is not shown again");

	/* prefill: INVLPG of a page in use whose entry changed maps the new one at once */
	ok(mmu_fault(VA_T + 0x10, 0, &f, &mmio) == 0 && readable(VA_T + 0x10, &v), "mapped");
	*phys32(0x100400) = 0x5eed;
	*phys32(PT) = 0x100000 | P | W | U | D; /* D set: a read may map it writable */
	*phys32(PT + 5 * 4) = 0x104000 | P | W | U;
	*phys32(0x104010) = 0x600d;
	*phys32(PT) = 0x104000 | P | W | U | D;
	uint64_t pf0 = rt.st->prefills, sf0 = rt.st->shadow_faults;
	mmu_invlpg(VA_T);
	ok(readable(VA_T + 0x10, &v) && v == 0x600d && rt.st->prefills == pf0 + 1 &&
		   rt.st->shadow_faults == sf0,
	   "INVLPG of a changed, present entry maps the new frame without a fault");
	ok(writable(VA_T + 0x10, 0x600e) && *phys32(0x104010) == 0x600e,
	   "writable at once: D was already set");
	*phys32(PT) = 0x100000 | P | W | U; /* D clear */
	mmu_invlpg(VA_T);
	ok(readable(VA_T + 0x10, &v) && !writable(VA_T + 0x10, 1) && (*phys32(PT) & (A | D)) == A,
	   "a clean page is prefilled read-only, with A set as a speculative walk may");
	*phys32(PT) = 0x100000 | W | U; /* not present */
	pf0 = rt.st->prefills;
	mmu_invlpg(VA_T);
	ok(!readable(VA_T + 0x10, &v) && rt.st->prefills == pf0, "a not-present entry is not prefilled");

	/* prefill of a reflected #PF's page when the guest returns to the faulting code */
	ok(mmu_fault(VA_T + 0x10, 0, &f, &mmio) < 0 && f.vec == EXC_PF, "a not-present page: #PF");
	deliver_pf(&f, 0xc0001000u);
	*phys32(PT) = 0x100000 | P | W | U;
	fault_returned(0xc0001000u);
	ok(readable(VA_T + 0x10, &v) && rt.st->prefills == pf0 + 1,
	   "the handler made it present: the return maps it, the retry does not fault");
	mmu_invlpg(VA_T);
	*phys32(PT) = 0x100000 | W | U;
	mmu_invlpg(VA_T);
	rt.cpu->cpl = 3;
	mmu_fault(VA_T + 0x10, 0, &f, &mmio);
	deliver_pf(&f, 0x08048000u);
	rt.cpu->cpl = 0;
	*phys32(PT) = 0x100000 | P | W | U;
	fault_returned(0xc0002000u);
	ok(!readable(VA_T + 0x10, &v) && rt.st->prefills == pf0 + 1,
	   "not while the kernel's handler still runs at another CPL than the fault's");
	rt.cpu->cpl = 3;
	fault_returned(0x08048000u);
	ok(readable(VA_T + 0x10, &v) && rt.st->prefills == pf0 + 2, "at the fault's CPL it is");
	rt.cpu->cpl = 0;

	/* a CR3 load keeps what the (new) tables grant exactly, drops the rest */
	mmu_flush(false);
	*phys32(PT + 0 * 4) = 0x100000 | P | W | U | A | D;
	*phys32(PT + 5 * 4) = 0x105000 | P | W | U | A;
	*phys32(PT + 6 * 4) = 0x106000 | P | W | U | A | D;
	*phys32(PT + 7 * 4) = 0x107000 | P | W | U | A | D;
	*phys32(0x107000) = 0x7007;
	*phys32(0x108000) = 0x8008;
	ok(mmu_fault(VA_T, PFERR_W, &f, &mmio) == 0 && mmu_fault(VA_T + 0x5000, 0, &f, &mmio) == 0 &&
		   mmu_fault(VA_T + 0x6000, PFERR_W, &f, &mmio) == 0 &&
		   mmu_fault(VA_T + 0x7000, 0, &f, &mmio) == 0 && readable(VA_T + 0x7000, &v) &&
		   v == 0x7007,
	   "four pages mapped");
	*phys32(PT + 5 * 4) &= ~A;			   /* the guest cleared A */
	*phys32(PT + 6 * 4) &= ~D;			   /* ... D of a writable mapping */
	*phys32(PT + 7 * 4) = 0x108000 | P | W | U | A | D; /* another frame */
	uint64_t sf1 = rt.st->shadow_faults, kept0 = rt.st->reval_kept;
	mmu_cr3_loaded();
	ok(writable(VA_T + 0x10, 0x1234) && rt.st->shadow_faults == sf1 &&
		   rt.st->reval_kept == kept0 + 1,
	   "CR3 load: a page the tables grant as mapped (A, D set) is kept, no refault");
	ok(!readable(VA_T + 0x5000, &v), "one whose A the guest cleared is dropped (A must be set again)");
	ok(!readable(VA_T + 0x6000, &v), "a writable one whose D was cleared is dropped");
	ok(mmu_fault(VA_T + 0x7000, 0, &f, &mmio) == 0 && readable(VA_T + 0x7000, &v) && v == 0x8008,
	   "one the tables now map elsewhere is dropped and refaults onto the new frame");
	ok((*phys32(PT + 5 * 4) & A) == 0, "and the dropped page's A stays clear until it is touched");
	*phys32(PD + (VA_T >> 22) * 4) &= ~A;
	mmu_cr3_loaded();
	ok(!readable(VA_T + 0x10, &v), "the PDE's A cleared: everything under it is dropped");

	/* a CR4.PGE toggle (a global flush) revalidates too, 4 MiB pages included */
	ok(mmu_fault(0x80000123u, 0, &f, &mmio) == 0 && readable(0x803ff000u, &v), "4 MiB page mapped");
	uint32_t cr4 = rt.cpu->cr4;
	sf1 = rt.st->shadow_faults;
	rt.cpu->cr4 = cr4 | CR4_PGE;
	mmu_cr_changed(rt.cpu->cr0, cr4);
	ok(readable(0x80200000u, &v) && rt.st->shadow_faults == sf1 && rt.st->reval_kept >= kept0 + 1024,
	   "CR4.PGE set: the 4 MiB page the tables still grant is kept");
	*phys32(PD + (0x80000000u >> 22) * 4) = 0x00400000 | P | W | PS | A;
	rt.cpu->cr4 = cr4;
	mmu_cr_changed(rt.cpu->cr0, cr4 | CR4_PGE);
	ok(!readable(0x80200000u, &v), "CR4.PGE cleared after the PDE moved: the 4 MiB page is dropped");
	*phys32(PD + (0x80000000u >> 22) * 4) = 0x00800000 | P | W | PS;

	/* fault-around at CPL 3: the window's present, user, accessed pages come along */
	uint32_t va2 = 0x40400000u, pt2 = 0x3000u;
	*phys32(PD + (va2 >> 22) * 4) = pt2 | P | W | U | A;
	for (uint32_t i = 0; i < 16; i++)
		*phys32(pt2 + i * 4) = (0x200000 + i * 0x1000) | P | U | A; /* read-only, accessed */
	*phys32(pt2 + 3 * 4) = 0x203000 | P | W | U | A | D;	/* writable and dirty */
	*phys32(pt2 + 4 * 4) = 0x204000 | P | W | U;		/* never accessed */
	*phys32(pt2 + 5 * 4) = 0x205000 | P | W | A;		/* supervisor */
	*phys32(pt2 + 6 * 4) = 0x206000 | U | A;		/* not present */
	*phys32(pt2 + 7 * 4) = 0x7ff00000 | P | U | A;		/* not RAM */
	*phys32(pt2 + 16 * 4) = 0x210000 | P | U | A;		/* the next window */
	*phys32(pt2 + 17 * 4) = 0x211000 | P | U | A;
	*phys32(0x20f000) = 0xf00f;
	rt.cpu->cpl = 3;
	uint64_t pf2 = rt.st->prefills;
	ok(mmu_fault(va2 + 0x1010, 0, &f, &mmio) == 0 && readable(va2 + 0x1010, &v), "a ring-3 fault");
	ok(readable(va2, &v) && readable(va2 + 0xf000, &v) && v == 0xf00f,
	   "fault-around maps the accessed user pages of its 16-page window, onto their frames");
	ok(!writable(va2 + 0x2000, 1) && writable(va2 + 0x3000, 7) && *phys32(0x203000) == 7,
	   "writable only where D is set");
	ok(!readable(va2 + 0x4000, &v) && (*phys32(pt2 + 4 * 4) & (A | D)) == 0,
	   "not a page whose A is clear, and its entry is left as it was");
	ok(!readable(va2 + 0x5000, &v) && !readable(va2 + 0x6000, &v) && !readable(va2 + 0x7000, &v),
	   "nor a supervisor, a not-present or a non-RAM page");
	ok(!readable(va2 + 0x10000, &v) && rt.st->prefills == pf2 + 11,
	   "nor beyond the window: 11 pages prefilled");
	rt.cpu->cpl = 0;
	ok(mmu_fault(va2 + 0x11000, 0, &f, &mmio) == 0 && !readable(va2 + 0x10000, &v),
	   "at CPL 0 (the kernel's own faults) no fault-around");

	mmu_flush(false);
	ok(!readable(VA_T + 0x10, &v) && !readable(VA_T + 0x2000, &v), "a flush drops every mapping");
	signal(SIGSEGV, SIG_DFL);
}

/*
 * A 4 MiB page made read-only, then a CR3 load or a CR4.PGE toggle: its first
 * page holds translated code (read-only in the shadow whatever the PDE says),
 * which must not make the check miss that the other 1023 were writable.
 */
static void test_big_recheck(void)
{
	struct bt_fault f = { .vec = -1 };
	uint64_t mmio = 0;
	uint32_t pde = PD + (0x80000000u >> 22) * 4, cr4 = rt.cpu->cr4, v;

	signal(SIGSEGV, on_segv);
	mmu_flush(false);
	*phys32(pde) = 0x00800000 | P | W | PS | A | D;
	ok(mmu_fault(0x80001000u, PFERR_W, &f, &mmio) == 0 && writable(0x80001000u, 5),
	   "4 MiB page mapped writable");
	mmu_code_page(0x00800000);
	ok(!writable(0x80000000u, 1) && writable(0x80001000u, 5),
	   "translated code in its first page: that page read-only, the others not");
	*phys32(pde) = 0x00800000 | P | PS | A | D;
	mmu_cr3_loaded();
	ok(!writable(0x80001000u, 6) && *phys32(0x00801000) == 5,
	   "made read-only, then a CR3 load: no page of it stays writable");

	*phys32(pde) = 0x00800000 | P | W | PS | A | D;
	ok(mmu_fault(0x80001000u, PFERR_W, &f, &mmio) == 0 && writable(0x80001000u, 5) &&
		   !writable(0x80000000u, 1),
	   "mapped writable again, the code page still read-only");
	*phys32(pde) = 0x00800000 | P | PS | A | D;
	rt.cpu->cr4 = cr4 | CR4_PGE;
	mmu_cr_changed(rt.cpu->cr0, cr4);
	ok(!writable(0x80001000u, 7) && *phys32(0x00801000) == 5,
	   "the same through a CR4.PGE toggle");
	rt.cpu->cr4 = cr4;

	mmu_flush(false);
	*phys32(pde) = 0x00800000 | 0x1000 | P | W | PS | A | D; /* PAT set: bit 12 */
	ok(mmu_fault(0x80001000u, 0, &f, &mmio) == 0 && readable(0x80001000u, &v),
	   "a 4 MiB page with PAT set mapped");
	uint64_t kept = rt.st->reval_kept, sf = rt.st->shadow_faults;
	mmu_cr3_loaded();
	ok(readable(0x80001000u, &v) && rt.st->reval_kept == kept + 1024 && rt.st->shadow_faults == sf,
	   "a CR3 load keeps it: PAT is not part of the frame");
	*phys32(pde) = 0x00800000 | P | W | PS;
	mmu_flush(false);
	signal(SIGSEGV, SIG_DFL);
}

/*
 * The prefill at the return from a reflected #PF: only to the faulting
 * instruction in the same address space, never setting D, and never A in
 * an entry it then does not map.
 */
static void test_fault_return(void)
{
	struct bt_fault f = { .vec = -1 };
	uint64_t mmio = 0;
	uint32_t pd2 = 0x4000, pt2 = 0x5000, pte = PT + 8 * 4, pte2 = pt2 + 8 * 4, v;
	const uint32_t eip = 0x08049000u;

	signal(SIGSEGV, on_segv);
	mmu_flush(false);
	*phys32(PD + (VA_T >> 22) * 4) = PT | P | W | U | A;
	*phys32(pd2 + (VA_T >> 22) * 4) = pt2 | P | W | U | A;
	rt.cpu->cpl = 3;

	/* process A writes a not-present page; its kernel switches to B, whose page is clean */
	*phys32(pte) = 0;
	ok(mmu_fault(VA_T + 0x8000, PFERR_W | PFERR_U, &f, &mmio) < 0, "process A: a write #PF");
	deliver_pf(&f, eip);
	*phys32(pte2) = 0x108000 | P | W | U;
	rt.cpu->cr3 = pd2;
	mmu_cr3_loaded();
	fault_returned(eip);
	ok(*phys32(pte2) == (0x108000 | P | W | U) && !readable(VA_T + 0x8000, &v),
	   "a return into process B: its entry keeps A and D clear, nothing mapped");
	rt.cpu->cr3 = PD;
	mmu_cr3_loaded();

	/* the same CR3 (U sees K's loads as revalidations), another EIP: a signal handler */
	ok(mmu_fault(VA_T + 0x8000, PFERR_W | PFERR_U, &f, &mmio) < 0, "a write #PF again");
	deliver_pf(&f, eip);
	*phys32(pte) = 0x108000 | P | W | U;
	rt.cpu->cr3 = pd2; /* switched without mmu_cr3_loaded */
	fault_returned(eip);
	ok(*phys32(pte2) == (0x108000 | P | W | U), "a return under another CR3 touches nothing");
	rt.cpu->cr3 = PD;
	mmu_flush(false);
	*phys32(pte) = 0;
	ok(mmu_fault(VA_T + 0x8000, PFERR_W | PFERR_U, &f, &mmio) < 0, "a write #PF once more");
	deliver_pf(&f, eip);
	*phys32(pte) = 0x108000 | P | W | U;
	fault_returned(eip + 0x100);
	ok(*phys32(pte) == (0x108000 | P | W | U) && !readable(VA_T + 0x8000, &v),
	   "a return elsewhere (a signal handler) prefills nothing");

	/* the return to the faulting write: mapped, A set, D left to the write */
	*phys32(pte) = 0;
	mmu_fault(VA_T + 0x8000, PFERR_W | PFERR_U, &f, &mmio);
	deliver_pf(&f, eip);
	*phys32(pte) = 0x108000 | P | W | U;
	uint64_t pf0 = rt.st->prefills;
	fault_returned(eip);
	ok(readable(VA_T + 0x8000, &v) && !writable(VA_T + 0x8000, 1) &&
		   *phys32(pte) == (0x108000 | P | W | U | A) && rt.st->prefills == pf0 + 1,
	   "the return to the faulting write maps it read-only, A set, D not");
	mmu_flush(false);
	*phys32(pte) = 0;
	mmu_fault(VA_T + 0x8000, PFERR_W | PFERR_U, &f, &mmio);
	deliver_pf(&f, eip);
	*phys32(pte) = 0x108000 | P | W | U | D; /* Linux sets D itself for a write fault */
	fault_returned(eip);
	ok(writable(VA_T + 0x8000, 9) && *phys32(0x108000) == 9,
	   "a handler that set D gets it mapped writable at once");

	/* a page the prefill does not map (not RAM) keeps A clear */
	mmu_flush(false);
	*phys32(pte) = 0;
	mmu_fault(VA_T + 0x8000, PFERR_U, &f, &mmio);
	deliver_pf(&f, eip);
	*phys32(pte) = 0x7ff00000 | P | U;
	fault_returned(eip);
	ok(*phys32(pte) == (0x7ff00000 | P | U), "a non-RAM page is not prefilled, its A stays clear");

	*phys32(pte) = 0;
	rt.cpu->cpl = 0;
	mmu_flush(false);
	signal(SIGSEGV, SIG_DFL);
}

int main(void)
{
	setup();
	test_walks();
	test_vmem();
	test_shadow();
	test_big_recheck();
	test_fault_return();
	mmu_flush(false);
	return done_testing();
}
