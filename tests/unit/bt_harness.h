/*
 * A test harness that runs 32-bit guest code for real, in compatibility mode (CS 0x23) of this
 * 64-bit process: natively, or translated by the bt translator with %gs on a fake runtime-state
 * area (an LDT segment from modify_ldt) and a tiny runtime in the SIGTRAP handler that serves
 * callouts the way the sandbox child will. Intel SDM vol. 3A §5.8 (IRET to a lower level is not
 * needed: IRETQ to CS 0x23 at CPL 3), HOST-FACTS.md (compat mode, modify_ldt).
 *
 *   0x10000000  guest memory (BTH_GUEST_SIZE): code at +0, data at +DATA, stack below +STACK
 *   0x30000000  runtime state (%gs base): vif, vflags, irq_pending, sel[6], scratch
 *   0x30001000  TC for the main tcache; a second, small TC at 0x30400000
 */
#ifndef RING3_TESTS_BT_HARNESS_H
#define RING3_TESTS_BT_HARNESS_H

#include <asm/ldt.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include "cpu/bt/translate.h"

#define BTH_GUEST 0x10000000u
#define BTH_GUEST_SIZE 0x100000u
#define BTH_DATA (BTH_GUEST + 0x40000u)
#define BTH_STACK (BTH_GUEST + 0x80000u)
#define BTH_GPA(la) ((uint64_t)(la) - BTH_GUEST + 0x200000u) /* a fake guest-physical */
#define BTH_STATE 0x30000000u
#define BTH_TC (BTH_STATE + 0x1000u)
#define BTH_TC_SIZE (2u << 20)
#define BTH_TC2 (BTH_STATE + 0x400000u)
#define BTH_TC2_SIZE (1u << 20)

/* Offsets in the state page (the runtime's layout, here ours). */
enum { ST_VIF = 0, ST_VFLAGS = 4, ST_PENDING = 8, ST_SEL = 16, ST_SCRATCH = 64, ST_SITE = 96,
       ST_FAR = 100 };

#define BTH_ARITH_FLAGS 0xcd5u /* CF PF AF ZF SF DF OF */

struct cpu32 {
	uint32_t eax, ecx, edx, ebx, esp, ebp, esi, edi; /* offsets 0..28 */
	uint32_t eflags, eip;				   /* 32, 36 */
	uint16_t cs, ds, gs, pad;			   /* 40, 42, 44 */
};

/* How the last run stopped. */
struct bth_stop {
	int sig;		/* SIGTRAP for a callout the tests handle, SIGSEGV... */
	uint32_t rip;		/* where (TC address, or guest EIP natively) */
	struct bt_site site;	/* translated runs: the site of rip (rip - 1 after int3) */
	int site_ok;
	uint32_t eip;		/* the guest EIP it stands for */
};

typedef int (*bth_callout_fn)(ucontext_t *uc, const struct bt_site *site);

static struct {
	struct tcache *tc;
	struct bt_mode mode;
	uint16_t gs_sel;
	struct cpu32 out;
	struct bth_stop stop;
	bth_callout_fn on_emulate; /* returns 1 to resume at site->resume_tc */
	unsigned n_chain, n_indirect, n_irq, n_emulate;
	uint32_t irq_eip[16];
	uint8_t unmapped[BTH_GUEST_SIZE / 4096]; /* pages fetch refuses */
	unsigned code_pages;			 /* code_page() callbacks */
	bool write_protect;			 /* code_page() write-protects, like the runtime */
	uint8_t protected_page[BTH_GUEST_SIZE / 4096];
	unsigned wp_faults, wp_dropped;
	uint32_t smc_step;			 /* stepping a write out of a stale block */
	unsigned smc_steps_done;
	uint32_t far_stub;			 /* BT_CALLOUT_FARJMP lands here (64-bit int3) */
	int chain_err, translate_err;
	/* Single-step tracing (TF): record the native run's state at every instruction, then
	 * check that every exact site of the translated run matches it. */
	int trace;				 /* 0 off, 1 record, 2 check */
	struct cpu32 *trace_buf;
	unsigned trace_len, trace_max, trace_pos;
	unsigned trace_checked, trace_bad, trace_inexact;
	struct cpu32 trace_first_bad, trace_want;
} bth;

static struct cpu32 bth_regs(const ucontext_t *uc)
{
	const greg_t *g = uc->uc_mcontext.gregs;

	return (struct cpu32){
		.eax = (uint32_t)g[REG_RAX], .ecx = (uint32_t)g[REG_RCX],
		.edx = (uint32_t)g[REG_RDX], .ebx = (uint32_t)g[REG_RBX],
		.esp = (uint32_t)g[REG_RSP], .ebp = (uint32_t)g[REG_RBP],
		.esi = (uint32_t)g[REG_RSI], .edi = (uint32_t)g[REG_RDI],
		.eflags = (uint32_t)g[REG_EFL], .eip = (uint32_t)g[REG_RIP],
	};
}

static bool bth_same(const struct cpu32 *a, const struct cpu32 *b)
{
	return a->eax == b->eax && a->ecx == b->ecx && a->edx == b->edx && a->ebx == b->ebx &&
	       a->esp == b->esp && a->ebp == b->ebp && a->esi == b->esi && a->edi == b->edi &&
	       a->eip == b->eip && !((a->eflags ^ b->eflags) & 0xcd5u);
}

uint64_t bth_host_rsp;
void bth_enter(struct cpu32 *in);
void bth_exit(void);

/* Enter compat mode with IRETQ (RIP, CS, RFLAGS, RSP, SS): the guest's stack stays untouched. */
asm(".text\n"
    ".globl bth_enter\n"
    "bth_enter:\n"
    "	push %rbx\n	push %rbp\n	push %r12\n	push %r13\n	push %r14\n	push %r15\n"
    "	mov %rsp, bth_host_rsp(%rip)\n"
    "	movzwl 42(%rdi), %ecx\n	mov %ecx, %ds\n	mov %ecx, %es\n"
    "	movzwl 44(%rdi), %ecx\n	mov %ecx, %gs\n"
    "	pushq $0x2b\n"
    "	mov 16(%rdi), %ecx\n	push %rcx\n"
    "	mov 32(%rdi), %ecx\n	push %rcx\n"
    "	movzwl 40(%rdi), %ecx\n	push %rcx\n"
    "	mov 36(%rdi), %ecx\n	push %rcx\n"
    "	mov 0(%rdi), %eax\n	mov 4(%rdi), %ecx\n	mov 8(%rdi), %edx\n"
    "	mov 12(%rdi), %ebx\n	mov 20(%rdi), %ebp\n	mov 24(%rdi), %esi\n"
    "	mov 28(%rdi), %edi\n"
    "	iretq\n"
    ".globl bth_exit\n"
    "bth_exit:\n"
    "	mov bth_host_rsp(%rip), %rsp\n"
    "	pop %r15\n	pop %r14\n	pop %r13\n	pop %r12\n	pop %rbp\n	pop %rbx\n"
    "	ret\n");

static inline volatile uint32_t *bth_state(unsigned off)
{
	return (volatile uint32_t *)(uintptr_t)(BTH_STATE + off);
}

static void bth_finish(ucontext_t *uc, int sig)
{
	greg_t *g = uc->uc_mcontext.gregs;

	bth.out = bth_regs(uc);
	bth.stop.sig = sig;
	bth.stop.rip = (uint32_t)g[REG_RIP];
	g[REG_RIP] = (greg_t)(uintptr_t)bth_exit;
	g[REG_CSGSFS] = (g[REG_CSGSFS] & ~0xffffL) | 0x33;
	g[REG_EFL] = 0x202;
	g[REG_RSP] = (greg_t)bth_host_rsp;
}

/* Put back the guest registers an inline sequence holds in scratch (translate.h). */
static void bth_restore(ucontext_t *uc, uint8_t mask)
{
	static const int reg[4] = { REG_RAX, REG_RCX, REG_RDX, REG_RBX };
	greg_t *g = uc->uc_mcontext.gregs;

	for (int r = 0; r < 4; r++)
		if (mask & (1u << r))
			g[reg[r]] = *bth_state(ST_SCRATCH + BT_SCRATCH_REG(r));
}

/*
 * A write to a write-protected code page (what the runtime's shadow MMU will see): drop the
 * translations and unprotect. If the writer's own block went too, its copy of the writing
 * instruction is still the one to run (the CPU ran what it had fetched): step it with TF, and
 * at the next exact site go on from a fresh translation (which protects the page again).
 */
static bool bth_code_write(ucontext_t *uc, siginfo_t *si, uint32_t at)
{
	greg_t *g = uc->uc_mcontext.gregs;
	uint32_t la = (uint32_t)(uintptr_t)si->si_addr, page = la & ~4095u;
	struct bt_site site;

	if (!bth.tc || la < BTH_GUEST || la - BTH_GUEST >= BTH_GUEST_SIZE ||
	    !bth.protected_page[(la - BTH_GUEST) / 4096])
		return false;
	bth.wp_faults++;
	bth.wp_dropped += tc_invalidate_page(bth.tc, BTH_GPA(page));
	bth.protected_page[(la - BTH_GUEST) / 4096] = 0;
	mprotect((void *)(uintptr_t)page, 4096, PROT_READ | PROT_WRITE | PROT_EXEC);
	if (tc_site_lookup(bth.tc, at, &site) == 0 && (site.flags & BT_SITE_STALE)) {
		bth.smc_step = at;
		g[REG_EFL] |= 0x100;
	}
	return true;
}

/* The step after a write from a stale block: leave it at the first exact site. */
static void bth_smc_step(ucontext_t *uc)
{
	greg_t *g = uc->uc_mcontext.gregs;
	uint32_t rip = (uint32_t)g[REG_RIP], tc_addr, fl;
	struct bt_site site;

	if (tc_site_lookup(bth.tc, rip, &site) || !(site.flags & BT_SITE_EXACT) ||
	    site.kind == BT_SITE_INDIRECT || rip == bth.smc_step)
		return; /* step on */
	bth_restore(uc, site.restore);
	if (bt_translate(bth.tc, site.state_eip, bth.mode, &tc_addr, &fl) == 0)
		g[REG_RIP] = tc_addr;
	g[REG_EFL] &= ~0x100L;
	bth.smc_step = 0;
	bth.smc_steps_done++;
}

/*
 * A single-step trap. Natively: note the state before the next instruction. Translated: at an
 * exact site, the state with the spilled registers put back must be one the native run went
 * through, in the same order — what the runtime relies on to deliver interrupts there.
 */
static void bth_trace_step(ucontext_t *uc)
{
	struct cpu32 c = bth_regs(uc);
	struct bt_site site;

	uc->uc_mcontext.gregs[REG_EFL] |= 0x100; /* a POPF may have cleared TF: step on */
	if (bth.trace == 1) {
		if (bth.trace_len < bth.trace_max)
			bth.trace_buf[bth.trace_len++] = c;
		return;
	}
	if (tc_site_lookup(bth.tc, c.eip, &site) || !(site.flags & BT_SITE_EXACT) ||
	    site.kind == BT_SITE_INDIRECT) {
		bth.trace_inexact++;
		return;
	}
	for (int r = 0; r < 4; r++)
		if (site.restore & (1u << r))
			(&c.eax)[r] = *(volatile uint32_t *)(uintptr_t)(BTH_STATE + 64 + 4 * r);
	c.eip = site.state_eip;
	bth.trace_checked++;
	for (unsigned i = bth.trace_pos; i < bth.trace_len; i++) {
		if (bth_same(&bth.trace_buf[i], &c)) {
			bth.trace_pos = i;
			return;
		}
	}
	if (!bth.trace_bad++) {
		bth.trace_first_bad = c;
		bth.trace_want = bth.trace_buf[bth.trace_pos];
	}
}

/* The tiny runtime: what the sandbox child's SIGTRAP handler will do with callouts. */
static void bth_on_signal(int sig, siginfo_t *si, void *uc_)
{
	ucontext_t *uc = uc_;
	greg_t *g = uc->uc_mcontext.gregs;
	uint32_t rip = (uint32_t)g[REG_RIP], at = sig == SIGTRAP ? rip - 1 : rip, tc_addr, fl;
	struct bt_site *site = &bth.stop.site;
	bool in_tc, far = false;

	if (sig == SIGTRAP && si->si_code == TRAP_TRACE && bth.smc_step) {
		bth_smc_step(uc);
		return;
	}
	if (sig == SIGTRAP && si->si_code == TRAP_TRACE && bth.trace) {
		bth_trace_step(uc);
		return;
	}
	if (sig == SIGTRAP && bth.far_stub && rip == bth.far_stub + 1) {
		/* A far-jump callout: the site is in the state area, we are in 64-bit mode. */
		at = *bth_state(ST_SITE);
		far = true;
		g[REG_CSGSFS] = (g[REG_CSGSFS] & ~0xffffL) | 0x23;
	}
	in_tc = bth.tc && at >= BTH_TC && at < BTH_TC2 + BTH_TC2_SIZE;
	if (sig == SIGSEGV && bth.write_protect && bth_code_write(uc, si, at))
		return;
	bth.stop.site_ok = in_tc && tc_site_lookup(bth.tc, at, site) == 0;
	bth.stop.eip = bth.stop.site_ok ? site->eip : rip;
	if (sig == SIGTRAP && bth.stop.site_ok) {
		switch (site->kind) {
		case BT_SITE_CHAIN:
			bth.n_chain++;
			bth.chain_err = bt_chain(bth.tc, at, bth.mode, &tc_addr, &fl);
			if (bth.chain_err)
				break;
			g[REG_RIP] = tc_addr;
			return;
		case BT_SITE_INDIRECT:
			bth.n_indirect++;
			bth.stop.eip = *bth_state(ST_SCRATCH + BT_SCRATCH_TARGET);
			bth.translate_err = bt_translate(bth.tc, bth.stop.eip, bth.mode, &tc_addr, &fl);
			if (bth.translate_err)
				break;
			g[REG_RIP] = tc_addr;
			return;
		case BT_SITE_IRQ_WINDOW:
			/* "Deliver" it: note where, and take the interrupt off the wire. */
			if (bth.n_irq < 16)
				bth.irq_eip[bth.n_irq] = site->state_eip;
			bth.n_irq++;
			*bth_state(ST_PENDING) = 0;
			g[REG_RIP] = site->resume_tc;
			return;
		case BT_SITE_EMULATE:
			bth.n_emulate++;
			if (bth.on_emulate && site->resume_tc && bth.on_emulate(uc, site)) {
				g[REG_RIP] = site->resume_tc;
				return;
			}
			break;
		default:
			break;
		}
	}
	if (far)
		g[REG_RIP] = at; /* report the site's address, as an int3 would */
	bth_finish(uc, sig);
}

static int bth_fetch(void *ctx, uint32_t la, void *buf, uint32_t len, uint64_t *gpa)
{
	(void)ctx;
	if (la < BTH_GUEST || la - BTH_GUEST + (uint64_t)len > BTH_GUEST_SIZE ||
	    bth.unmapped[(la - BTH_GUEST) / 4096])
		return -EFAULT;
	if ((la & 4095) + len > 4096)
		return -EINVAL; /* the translator promised never to cross a page */
	memcpy(buf, (void *)(uintptr_t)la, len);
	*gpa = BTH_GPA(la);
	return 0;
}

static void bth_code_page(void *ctx, uint64_t gpa)
{
	uint32_t la = (uint32_t)(gpa - BTH_GPA(BTH_GUEST)) + BTH_GUEST;

	(void)ctx;
	bth.code_pages++;
	if (bth.write_protect) {
		bth.protected_page[(la - BTH_GUEST) / 4096] = 1;
		mprotect((void *)(uintptr_t)la, 4096, PROT_READ | PROT_EXEC);
	}
}

/* Make all guest memory writable again. */
static void bth_unprotect(void)
{
	mprotect((void *)(uintptr_t)BTH_GUEST, BTH_GUEST_SIZE, PROT_READ | PROT_WRITE | PROT_EXEC);
	memset(bth.protected_page, 0, sizeof(bth.protected_page));
}

static struct bt_config bth_config(uint32_t tc_guest, uint32_t tc_size)
{
	return (struct bt_config){
		.tc_mem = (void *)(uintptr_t)tc_guest,
		.tc_guest = tc_guest,
		.tc_size = tc_size,
		.gs_base = BTH_STATE,
		.state = { .vif = ST_VIF, .vflags = ST_VFLAGS, .irq_pending = ST_PENDING,
			   .sel = ST_SEL, .scratch = ST_SCRATCH, .callout_site = ST_SITE,
			   .callout_far = ST_FAR },
		.callout = BT_CALLOUT_INT3,
		.fetch = bth_fetch,
		.code_page = bth_code_page,
	};
}

static void *bth_map(uint32_t at, uint32_t size, int prot)
{
	void *p = mmap((void *)(uintptr_t)at, size, prot,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	return p == (void *)(uintptr_t)at ? p : NULL;
}

/* Map everything, make %gs's LDT segment, install the handlers. 0 or -errno. */
static int bth_init(void)
{
	static uint8_t altstack[64 * 1024];
	struct user_desc d = {
		.entry_number = 0, .base_addr = BTH_STATE, .limit = 0xfffff, .seg_32bit = 1,
		.contents = 0, .read_exec_only = 0, .limit_in_pages = 1, .seg_not_present = 0,
		.useable = 1,
	};
	stack_t ss = { .ss_sp = altstack, .ss_size = sizeof(altstack) };
	struct sigaction sa = { .sa_sigaction = bth_on_signal, .sa_flags = SA_SIGINFO | SA_ONSTACK };
	const int rwx = PROT_READ | PROT_WRITE | PROT_EXEC;

	if (!bth_map(BTH_GUEST, BTH_GUEST_SIZE, rwx) || !bth_map(BTH_STATE, 0x1000, PROT_READ | PROT_WRITE) ||
	    !bth_map(BTH_TC, BTH_TC_SIZE, rwx) || !bth_map(BTH_TC2, BTH_TC2_SIZE, rwx))
		return -ENOMEM;
	if (syscall(SYS_modify_ldt, 1, &d, sizeof(d)) != 0)
		return -errno;
	bth.gs_sel = 0 << 3 | 4 | 3;
	sigaltstack(&ss, NULL);
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTRAP, &sa, NULL);
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGILL, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
	sigaction(SIGFPE, &sa, NULL);
	return 0;
}

/* Fresh virtual CPU state: IF set, nothing pending, the real selectors as the guest's. */
static void bth_reset_state(void)
{
	*bth_state(ST_VIF) = BT_VIF;
	*bth_state(ST_VFLAGS) = 0;
	*bth_state(ST_PENDING) = 0;
	*bth_state(ST_SEL + 0) = 0x2b;
	*bth_state(ST_SEL + 4) = 0x23;
	*bth_state(ST_SEL + 8) = 0x2b;
	*bth_state(ST_SEL + 12) = 0x2b;
	*bth_state(ST_SEL + 16) = 0;
	*bth_state(ST_SEL + 20) = bth.gs_sel;
	bth.n_chain = bth.n_indirect = bth.n_irq = bth.n_emulate = 0;
	bth.chain_err = bth.translate_err = 0;
}

static struct cpu32 bth_cpu(uint32_t eip)
{
	return (struct cpu32){ .eip = eip, .esp = BTH_STACK, .ebp = BTH_DATA, .eflags = 0x202,
			       .cs = 0x23, .ds = 0x2b, .gs = bth.gs_sel };
}

/* Run natively from in->eip until a signal (HLT gives SIGSEGV at the HLT). */
static void bth_run_native(const struct cpu32 *in)
{
	struct cpu32 c = *in;
	struct tcache *save = bth.tc;

	bth.tc = NULL;
	memset(&bth.stop, 0, sizeof(bth.stop));
	bth_enter(&c);
	bth.tc = save;
}

/* Translate in->eip and run from its TC address until a callout the runtime does not serve. */
static int bth_run_tc(struct tcache *tc, const struct cpu32 *in)
{
	struct cpu32 c = *in;
	uint32_t fl;
	int r;

	bth.tc = tc;
	bth.mode = BT_MODE_KERNEL32;
	memset(&bth.stop, 0, sizeof(bth.stop));
	r = bt_translate(tc, in->eip, bth.mode, &c.eip, &fl);
	if (r)
		return r;
	bth_enter(&c);
	return 0;
}

#endif
