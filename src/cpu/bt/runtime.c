/*
 * The world switch. Guest code runs in compatibility mode at host CPL 3;
 * every trap is a signal whose 64-bit handler edits the saved context and
 * returns into the guest with sigreturn. sigreturn restores CS and SS but
 * not DS/ES/FS/GS, so the handler's assembly tail loads the guest's mirror
 * selectors last; glibc's FS base is restored first thing on entry (a guest
 * FS selector replaced it). Linux arch/x86/kernel/signal_64.c; Intel SDM
 * vol. 3 §5.2.1 (compatibility mode).
 */
#include <linux/audit.h>
#include <linux/futex.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>

#include "runtime.h"

struct rt rt;
struct rt_ro rt_ro __attribute__((aligned(4096)));
const int rt_greg[8] = { REG_RAX, REG_RCX, REG_RDX, REG_RBX, REG_RSP, REG_RBP, REG_RSI, REG_RDI };
uint64_t rt_host_fsbase, rt_entry_fsbase;
/* The far callout's state (see rt_far_entry): its context, stack, and flags. */
ucontext_t rt_far_uc;
uint64_t rt_far_stack;
/* XSAVE area for the guest's extended state across a far callout (sized in tcrun_init). */
uint8_t rt_far_xsave[RT_XSAVE_MAX] __attribute__((aligned(64)));
uint32_t rt_xsave_size;
uint8_t rt_far_fx; /* far callouts keep x87/SSE only: nothing in the runtime touches AVX */
volatile uint8_t rt_in_callout, rt_kick_deferred;
extern char rt_far_check[], rt_far_again[];
_Static_assert(offsetof(ucontext_t, uc_mcontext.gregs) == 40, "ucontext layout");
_Static_assert(REG_RAX == 13 && REG_RSP == 15 && REG_RIP == 16 && REG_CSGSFS == 18 &&
		       REG_TRAPNO == 20 && REG_RSI == 9,
	       "gregs layout");

/*
 * rt_entry: every signal handler. rt_restorer: our sa_restorer (glibc's would
 * make its rt_sigreturn from an address the seccomp filter does not allow).
 * rt_syscall6: the runtime's only other system-call instruction. When
 * rt_signal returns non-zero the signal interrupted the runtime itself (a
 * far callout, below): the segment registers stay and the FS base is put back.
 */
__asm__(".text\n"
	".globl rt_entry\n"
	".type rt_entry, @function\n"
	"rt_entry:\n\t"
	"pushq $0x202\n\t" /* the kernel leaves AC (and NT) as the guest had them: C needs them clear */
	"popfq\n\t"
	"rdfsbase %rax\n\t"
	"movq %rax, rt_entry_fsbase(%rip)\n\t"
	"movq rt_host_fsbase(%rip), %rax\n\t"
	"wrfsbase %rax\n\t"
	"subq $8, %rsp\n\t"
	"call rt_signal\n\t"
	"addq $8, %rsp\n\t"
	"testl %eax, %eax\n\t"
	"jnz 1f\n\t"
	"movw rt_sel_out+0(%rip), %ax\n\t"
	"movw %ax, %ds\n\t"
	"movw rt_sel_out+2(%rip), %ax\n\t"
	"movw %ax, %es\n\t"
	"movw rt_sel_out+4(%rip), %ax\n\t"
	"movw %ax, %fs\n\t"
	"movw rt_sel_out+6(%rip), %ax\n\t"
	"movw %ax, %gs\n\t"
	"ret\n"
	"1:\tmovq rt_entry_fsbase(%rip), %rax\n\t"
	"wrfsbase %rax\n\t"
	"ret\n"
	".size rt_entry, .-rt_entry\n"
	".globl rt_restorer\n"
	".type rt_restorer, @function\n"
	"rt_restorer:\n\t"
	"movl $15, %eax\n\t" /* rt_sigreturn */
	"syscall\n"
	".globl rt_restorer_ip\n"
	"rt_restorer_ip:\n\t"
	"ud2\n"
	".globl rt_syscall6\n"
	".type rt_syscall6, @function\n"
	"rt_syscall6:\n\t"
	"movq %rdi, %rax\n\t"
	"movq %rsi, %rdi\n\t"
	"movq %rdx, %rsi\n\t"
	"movq %rcx, %rdx\n\t"
	"movq %r8, %r10\n\t"
	"movq %r9, %r8\n\t"
	"movq 8(%rsp), %r9\n\t"
	"syscall\n"
	".globl rt_syscall_ip\n"
	"rt_syscall_ip:\n\t"
	"ret\n"
	".size rt_syscall6, .-rt_syscall6\n");

/*
 * The fast callout (BT_CALLOUT_FARJMP): translated code does
 * `movl $site, %gs:callout_site; ljmp *%gs:callout_far`, which lands in a
 * trampoline in the top region (tcrun.c: it saves RAX on the state page and
 * jumps here), in 64-bit mode at host CPL 3 — no kernel entry at all. This
 * builds the same ucontext a signal would (rt_far_uc, as an int3 after the
 * site), runs the same handler, and returns with IRETQ. A kick that arrives
 * meanwhile is deferred (rt_signal) and taken before the IRETQ; the check
 * and the IRETQ form a window a kick rewinds to the check (like rseq).
 * Offsets: glibc's ucontext_t has gregs at 40, gregs[i] at 40 + 8 * i.
 */
#define G_(i) #i
#define G(i) G_(i)
#define GR8 40
#define GRDI 104
#define GRBP 120
#define GRBX 128
#define GRDX 136
#define GRAX 144
#define GRCX 152
#define GRSP 160
#define GRIP 168
#define GEFL 176
#define GCSGSFS 184
#define GERR 192
#define GTRAPNO 200
#define GSAVE(r, off) "movq %" #r ", rt_far_uc+" G(off) "(%rip)\n\t"
#define GLOAD(r, off) "movq rt_far_uc+" G(off) "(%rip), %" #r "\n\t"
#define SAVE_GPRS                                                                                  \
	GSAVE(rbx, GRBX) GSAVE(rcx, GRCX) GSAVE(rdx, GRDX) GSAVE(rsi, 112) GSAVE(rdi, GRDI)        \
	GSAVE(rbp, GRBP) GSAVE(r8, 40) GSAVE(r9, 48) GSAVE(r10, 56) GSAVE(r11, 64) GSAVE(r12, 72)  \
	GSAVE(r13, 80) GSAVE(r14, 88) GSAVE(r15, 96)
#define LOAD_GPRS                                                                                  \
	GLOAD(rbx, GRBX) GLOAD(rcx, GRCX) GLOAD(rdx, GRDX) GLOAD(rsi, 112) GLOAD(rdi, GRDI)        \
	GLOAD(rbp, GRBP) GLOAD(r8, 40) GLOAD(r9, 48) GLOAD(r10, 56) GLOAD(r11, 64) GLOAD(r12, 72)  \
	GLOAD(r13, 80) GLOAD(r14, 88) GLOAD(r15, 96) GLOAD(rax, GRAX)

__asm__(".text\n"
	".globl rt_far_entry\n"
	".type rt_far_entry, @function\n"
	"rt_far_entry:\n\t"
	"movb $1, rt_in_callout(%rip)\n\t"
	GSAVE(rsp, GRSP)
	"movq rt_far_stack(%rip), %rsp\n\t"
	"pushfq\n\t"
	"popq rt_far_uc+" G(GEFL) "(%rip)\n\t"
	/* the ABI's flags for C: DF, AC, TF, NT clear (the guest's are in the frame) */
	"pushq $0x202\n\t"
	"popfq\n\t"
	SAVE_GPRS
	"movq %gs:" G(BT_FAR_RAX) ", %rax\n\t"
	GSAVE(rax, GRAX)
	"movl %gs:" G(BT_FAR_SITE) ", %eax\n\t"
	"incq %rax\n\t" /* as if an int3 at the site had trapped */
	GSAVE(rax, GRIP)
	"xorl %eax, %eax\n\t"
	"movw %ss, %ax\n\t"
	"shlq $48, %rax\n\t"
	"orq $0x23, %rax\n\t"
	GSAVE(rax, GCSGSFS)
	"movq $3, rt_far_uc+" G(GTRAPNO) "(%rip)\n\t"
	"movq $0, rt_far_uc+" G(GERR) "(%rip)\n\t"
	"movq rt_host_fsbase(%rip), %rax\n\t"
	"wrfsbase %rax\n\t"
	/*
	 * The guest's extended state: the runtime's C code and libraries use those
	 * registers. Ring 3 runs natively and sees the host's CPUID, so a guest
	 * process may hold AVX state that an interrupt handled here must not
	 * clobber. With rt_far_fx the runtime and its libraries touch only x87
	 * and SSE (main.c, tcrun.c): FXSAVE keeps those, and the AVX state stays
	 * in the registers. Otherwise XSAVEOPT keeps it all.
	 */
	"cmpb $0, rt_far_fx(%rip)\n\t"
	"je 1f\n\t"
	"fxsave64 rt_far_xsave(%rip)\n\t"
	"jmp 2f\n"
	"1:\n\t"
	"movl $-1, %eax\n\t"
	"movl $-1, %edx\n\t"
	"xsaveopt64 rt_far_xsave(%rip)\n"
	"2:\n\t"
	"call rt_far_callout\n"
	"rt_far_resume:\n\t"
	"cmpb $0, rt_far_fx(%rip)\n\t"
	"je 3f\n\t"
	"fxrstor64 rt_far_xsave(%rip)\n\t"
	"jmp 4f\n"
	"3:\n\t"
	"movl $-1, %eax\n\t"
	"movl $-1, %edx\n\t"
	"xrstor64 rt_far_xsave(%rip)\n"
	"4:\n\t"
	"movw rt_sel_out+0(%rip), %ax\n\t"
	"movw %ax, %ds\n\t"
	"movw rt_sel_out+2(%rip), %ax\n\t"
	"movw %ax, %es\n\t"
	"movw rt_sel_out+4(%rip), %ax\n\t"
	"movw %ax, %fs\n\t"
	"movw rt_sel_out+6(%rip), %ax\n\t"
	"movw %ax, %gs\n\t"
	GLOAD(rax, GCSGSFS)
	"shrq $48, %rax\n\t"
	"pushq %rax\n\t"			/* SS */
	"pushq rt_far_uc+" G(GRSP) "(%rip)\n\t"	/* RSP */
	"pushq rt_far_uc+" G(GEFL) "(%rip)\n\t"	/* RFLAGS */
	GLOAD(rax, GCSGSFS)
	"movzwl %ax, %eax\n\t"
	"pushq %rax\n\t"			/* CS */
	"pushq rt_far_uc+" G(GRIP) "(%rip)\n\t"	/* RIP */
	LOAD_GPRS
	"movb $0, rt_in_callout(%rip)\n"
	".globl rt_far_check\n"
	"rt_far_check:\n\t"
	"cmpb $0, rt_kick_deferred(%rip)\n\t"
	"jne rt_far_again\n"
	".globl rt_far_iret\n"
	"rt_far_iret:\n\t"
	"iretq\n"
	".globl rt_far_again\n"
	"rt_far_again:\n\t" /* a kick came during the callout: take it at the resume point */
	"movb $1, rt_in_callout(%rip)\n\t"
	GSAVE(rax, GRAX)
	SAVE_GPRS
	"popq rt_far_uc+" G(GRIP) "(%rip)\n\t"
	"popq %rbx\n\t"				/* CS */
	"popq rt_far_uc+" G(GEFL) "(%rip)\n\t"
	"popq rt_far_uc+" G(GRSP) "(%rip)\n\t"
	"popq %rax\n\t"				/* SS */
	"shlq $48, %rax\n\t"
	"orq %rbx, %rax\n\t"
	GSAVE(rax, GCSGSFS)
	"pushq $0x202\n\t"
	"popfq\n\t"
	"movq rt_host_fsbase(%rip), %rax\n\t"
	"wrfsbase %rax\n\t"
	"cmpb $0, rt_far_fx(%rip)\n\t"
	"je 5f\n\t"
	"fxsave64 rt_far_xsave(%rip)\n\t"
	"jmp 6f\n"
	"5:\n\t"
	"movl $-1, %eax\n\t"
	"movl $-1, %edx\n\t"
	"xsaveopt64 rt_far_xsave(%rip)\n"
	"6:\n\t"
	"call rt_far_kick\n\t"
	"jmp rt_far_resume\n"
	".size rt_far_entry, .-rt_far_entry\n");

int rt_snprintf(char *buf, unsigned len, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	return n;
}

static void futex(uint32_t *addr, int op, uint32_t val)
{
	rt_syscall(SYS_futex, (uint64_t)addr, (uint64_t)op, val, 0, 0);
}

#define SPIN_TSC 800 /* a short spin (~0.3 us), then FUTEX_WAIT: see bt.c SPIN_NS */

void rt_exit_wait(uint32_t kind)
{
	struct bt_shared *sh = rt.sh;
	uint64_t t0 = rt_rdtsc();

	if (rt.uc)
		vcpu_snapshot();
	tcrun_stats();
	sh->exit.kind = kind;
	rt.st->exits++;
	__atomic_store_n(&sh->turn, BT_TURN_PARENT, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&sh->parent_sleeping, __ATOMIC_SEQ_CST))
		futex(&sh->turn, FUTEX_WAKE, 1);
	while (!sh->one_cpu && __atomic_load_n(&sh->turn, __ATOMIC_ACQUIRE) != BT_TURN_CHILD &&
	       rt_rdtsc() - t0 < SPIN_TSC)
		__builtin_ia32_pause();
	if (__atomic_load_n(&sh->turn, __ATOMIC_ACQUIRE) != BT_TURN_CHILD) {
		__atomic_store_n(&sh->child_sleeping, 1, __ATOMIC_SEQ_CST);
		while (__atomic_load_n(&sh->turn, __ATOMIC_SEQ_CST) != BT_TURN_CHILD)
			futex(&sh->turn, FUTEX_WAIT, BT_TURN_PARENT);
		__atomic_store_n(&sh->child_sleeping, 0, __ATOMIC_RELAXED);
	}
	rt.st->tsc_wait += rt_rdtsc() - t0;
	vcpu_resumed();
}

void rt_fatal(uint32_t kind, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(rt.sh->msg, BT_MSG_SIZE, fmt, ap);
	va_end(ap);
	memset(&rt.sh->exit, 0, sizeof(rt.sh->exit));
	rt_exit_wait(kind);
	for (;;)
		rt_syscall(SYS_exit_group, 1, 0, 0, 0, 0);
}

/* The first entry into the guest: the boot state the monitor left in the vCPU. */
static void first_entry(void)
{
	greg_t *g = rt.uc->uc_mcontext.gregs;
	struct bt_vcpu *c = rt.cpu;

	for (int i = 0; i < NGREG; i++)
		if (i != REG_CSGSFS && i != REG_CR2 && i != REG_TRAPNO && i != REG_ERR &&
		    i != REG_OLDMASK)
			g[i] = 0;
	for (int r = 0; r < 8; r++)
		set_gr(r, c->regs[r]);
	set_eip(c->eip);
	g[REG_EFL] = FL_IF | 2;
	vcpu_set_eflags(c->eflags, ~0u);
	sigemptyset(&rt.uc->uc_sigmask);
	rt.started = true;
}

/*
 * Two children (docs/bt.md): the one whose privilege level the vCPU is not at
 * hands it to the other through the shared page — registers, the extended
 * state, and what the receiver's shadow must forget — and sleeps until it
 * comes back. The receiver continues in the handler it gave the vCPU away in.
 */
static void wait_owner(void)
{
	struct bt_shared *sh = rt.sh;
	unsigned me = rt.role;
	uint64_t t0 = rt_rdtsc();

	while (!sh->one_cpu && __atomic_load_n(&sh->owner, __ATOMIC_ACQUIRE) != me &&
	       rt_rdtsc() - t0 < 2000)
		__builtin_ia32_pause();
	if (__atomic_load_n(&sh->owner, __ATOMIC_ACQUIRE) == me)
		return;
	__atomic_store_n(&sh->owner_sleeping[me], 1, __ATOMIC_SEQ_CST);
	while (__atomic_load_n(&sh->owner, __ATOMIC_SEQ_CST) != me)
		rt_syscall(SYS_futex, (uint64_t)&sh->owner, FUTEX_WAIT, me ^ 1, 0, 0);
	__atomic_store_n(&sh->owner_sleeping[me], 0, __ATOMIC_RELAXED);
}

/*
 * In a far callout with rt_far_fx the save area holds the guest's x87/SSE
 * state and the registers hold the rest (AVX, AVX-512): both ways, the
 * components past SSE move between the registers and the area here.
 */
static bool far_fx_context(void)
{
	return rt_far_fx && rt.fp == rt_far_xsave;
}

/* The extended state between this context's save area and the shared page. */
static void xstate_out(void)
{
	uint32_t n = rt.fp_size < BT_XSTATE_MAX ? rt.fp_size : BT_XSTATE_MAX;

	if (far_fx_context()) {
		__asm__ volatile("xsave64 %0" : "+m"(rt_far_xsave) : "a"(~3u), "d"(~0u));
		rt_far_xsave[512] |= 3; /* XSTATE_BV: the x87 and SSE state FXSAVE put there */
	}
	memcpy(rt.sh->xstate, rt.fp, n);
	rt.sh->xstate_size = n;
}

static void xstate_in(void)
{
	uint32_t n = rt.sh->xstate_size < rt.fp_size ? rt.sh->xstate_size : rt.fp_size;

	/* bytes 464-511 of the legacy area are the signal frame's own format marks: keep them */
	memcpy(rt.fp, rt.sh->xstate, n < 464 ? n : 464);
	if (n > 512)
		memcpy(rt.fp + 512, rt.sh->xstate + 512, n - 512);
	if (far_fx_context() && n > 512)
		__asm__ volatile("xrstor64 %0" : : "m"(rt_far_xsave), "a"(~3u), "d"(~0u));
}

static void take_vcpu(void)
{
	struct bt_shared *sh = rt.sh;

	for (int r = 0; r < 8; r++)
		set_gr(r, rt.cpu->regs[r]);
	set_eip(rt.cpu->eip);
	vcpu_set_eflags(rt.cpu->eflags, ~0u);
	xstate_in();
	rt.tf_window = false;
	seg_reload_all();
	if (rt.role == BT_U) {
		uint32_t seq = __atomic_load_n(&sh->u_flush_seq, __ATOMIC_ACQUIRE);
		uint32_t rseq = __atomic_load_n(&sh->u_reval_seq, __ATOMIC_ACQUIRE);

		if (seq != rt.u_flush_seen) {
			rt.u_flush_seen = seq;
			rt.u_reval_seen = rseq;
			mmu_flush(false);
		} else if (rseq != rt.u_reval_seen) {
			/* K loaded CR3 (or INVLPGed many pages): keep what the tables still grant */
			rt.u_reval_seen = rseq;
			mmu_revalidate(false);
		} else {
			for (uint32_t i = 0; i < sh->u_ninvlpg && i < BT_INVLPG_MAX; i++)
				mmu_invlpg(sh->u_invlpg[i]);
		}
		sh->u_ninvlpg = 0;
		mmu_fault_returned(); /* K handled the #PF U reflected: the retry need not fault */
	}
	tcrun_took_vcpu();
}

static uint64_t switch_wait; /* TSC this child spent waiting for the vCPU to come back */

static void give_vcpu(void)
{
	struct bt_shared *sh = rt.sh;
	unsigned other = rt.role ^ 1;
	uint64_t t0;

	vcpu_snapshot();
	xstate_out();
	rt.st->child_switches++;
	__atomic_store_n(&sh->owner, other, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&sh->owner_sleeping[other], __ATOMIC_SEQ_CST))
		rt_syscall(SYS_futex, (uint64_t)&sh->owner, FUTEX_WAKE, 1, 0, 0);
	t0 = rt_rdtsc();
	wait_owner();
	switch_wait += rt_rdtsc() - t0; /* the other child's time: counted there */
	take_vcpu();
}

/* The child that should run the vCPU at its present CPL. */
static unsigned owner_for_cpl(void)
{
	return rt.cpu->cpl == 3 ? BT_U : BT_K;
}

/* U's first signal: wait for ring 3, which K hands over. */
static void first_entry_u(void)
{
	greg_t *g = rt.uc->uc_mcontext.gregs;

	for (int i = 0; i < NGREG; i++)
		if (i != REG_CSGSFS && i != REG_CR2 && i != REG_TRAPNO && i != REG_ERR &&
		    i != REG_OLDMASK)
			g[i] = 0;
	sigemptyset(&rt.uc->uc_sigmask);
	rt.started = true;
	__atomic_store_n(&rt.sh->u_ready, 1, __ATOMIC_SEQ_CST);
	rt_syscall(SYS_futex, (uint64_t)&rt.sh->u_ready, FUTEX_WAKE, 1, 0, 0);
	wait_owner();
	take_vcpu();
}

/* The extended state of a signal context: XSAVE after the FXSAVE area if the kernel says so. */
static void signal_fp(ucontext_t *uc)
{
	uint8_t *fp = (uint8_t *)uc->uc_mcontext.fpregs;
	uint32_t magic, size;

	rt.fp = fp;
	rt.fp_size = 512;
	if (!fp)
		return;
	memcpy(&magic, fp + 464, 4);
	memcpy(&size, fp + 480, 4);
	if (magic == 0x46505853u && size >= 512 && size <= BT_XSTATE_MAX) /* FP_XSTATE_MAGIC1 */
		rt.fp_size = size;
}

static _Noreturn void escape(int sig, siginfo_t *si)
{
	greg_t *g = rt.uc->uc_mcontext.gregs;
	unsigned cs = (uint16_t)g[REG_CSGSFS];

	if (sig == SIGSYS)
		rt_fatal(BT_EXIT_ESCAPE,
			 "bt: the guest tried to escape its sandbox: blocked host system call %d "
			 "from %s code at %#llx; VM stopped",
			 si->si_syscall, cs == 0x33 ? "64-bit" : "guest",
			 (unsigned long long)g[REG_RIP]);
	rt_fatal(BT_EXIT_ESCAPE,
		 "bt: the guest tried to escape its sandbox: it runs 64-bit code (CS %#x) at %#llx; "
		 "VM stopped",
		 cs, (unsigned long long)g[REG_RIP]);
}

static void debug_trap(siginfo_t *si)
{
	greg_t *g = rt.uc->uc_mcontext.gregs;
	uint8_t b = 0;
	struct bt_fault f;

	if (rt.tf_window) {
		/* our single step after STI: the interrupt window is open now */
		rt.tf_window = false;
		g[REG_EFL] = (g[REG_EFL] & ~(greg_t)FL_TF) | (rt.cpu->eflags & FL_TF);
		return;
	}
	vmem_read(seg_lin(BT_CS, g_eip()), &b, 1, rt.cpu->cpl == 3 ? ACC_U : 0, &f);
	if (b == 0xf1 && si->si_code != TRAP_TRACE)
		set_eip(g_eip() + 1); /* ICEBP: the trap comes back with EIP after it */
	rt.cpu->dr[6] |= 0x4000; /* BS */
	vcpu_raise(EXC_DB, false, 0);
}

static void dispatch(int sig, siginfo_t *si, bool from_tc)
{
	greg_t *g = rt.uc->uc_mcontext.gregs;
	unsigned trapno = (unsigned)g[REG_TRAPNO];
	uint32_t err = (uint32_t)g[REG_ERR];
	uint16_t cs = (uint16_t)g[REG_CSGSFS];
	struct bt_fault f = { .vec = -1 };
	uint64_t pa;
	int r;

	if (sig == SIGSYS && si->si_arch != AUDIT_ARCH_I386)
		escape(sig, si);
	if (sig == SIGSYS && cs == 0x23) {
		/* a compat SYSCALL saves no CS/SS: the kernel's frame says 0x23/0x2b */
		g[REG_CSGSFS] = (greg_t)((uint64_t)rt.real[BT_CS] | (uint64_t)rt.real[BT_SS] << 48);
		cs = rt.real[BT_CS];
	}
	if (cs == 0x33 || (!(cs & 4) && cs != 0x23))
		escape(sig, si);
	/* translated code loads no segment register natively: only direct code can */
	int sync = from_tc ? 0 : seg_sync_from_real();
	if (sync < 0)
		return;
	if (sync > 0 && (sig == SIGSEGV || sig == SIGBUS))
		return; /* the fault may be the host descriptor's: run it again with the guest's */
	switch (sig) {
	case SIGSEGV:
		switch (trapno) {
		case 13:
			rt.st->trap[BT_TRAP_GP]++;
			emu_gp(err);
			return;
		case 14:
			rt.st->trap[BT_TRAP_PF]++;
			r = mmu_fault((uint32_t)g[REG_CR2], err, &f, &pa);
			if (r < 0)
				vcpu_exception(&f);
			else if (r == 1)
				emu_mem_fault(pa);
			return;
		case EXC_TS:
		case EXC_NP:
		case EXC_SS:
			rt.st->trap[BT_TRAP_OTHER]++;
			vcpu_raise((int)trapno, true, err);
			return;
		case EXC_OF: /* INTO, INT 4: a trap, EIP after the instruction */
			rt.st->trap[BT_TRAP_OTHER]++;
			vcpu_interrupt(EXC_OF, true);
			return;
		case EXC_BR:
			rt.st->trap[BT_TRAP_OTHER]++;
			vcpu_raise(EXC_BR, false, 0);
			return;
		}
		break;
	case SIGBUS:
		if (trapno == EXC_TS || trapno == EXC_NP || trapno == EXC_SS) {
			/* Linux raises SIGBUS for #NP and #SS (a stack access past SS's limit) */
			rt.st->trap[BT_TRAP_OTHER]++;
			vcpu_raise((int)trapno, true, err);
			return;
		}
		if (trapno == EXC_AC) {
			rt.st->trap[BT_TRAP_OTHER]++;
			if (rt.cpu->cpl == 3 && (rt.cpu->cr0 & CR0_AM)) {
				vcpu_raise(EXC_AC, true, 0);
			} else { /* the guest's AC is virtual: no alignment checks here */
				rt.cpu->eflags |= g[REG_EFL] & FL_AC;
				g[REG_EFL] &= ~(greg_t)FL_AC;
			}
			return;
		}
		break;
	case SIGILL:
		rt.st->trap[BT_TRAP_UD]++;
		emu_ud();
		return;
	case SIGFPE:
		rt.st->trap[BT_TRAP_DE]++;
		if (trapno == EXC_DE || trapno == EXC_MF || trapno == EXC_XM) {
			vcpu_raise((int)trapno, false, 0);
			return;
		}
		break;
	case SIGTRAP:
		if (trapno == EXC_BP) {
			rt.st->trap[BT_TRAP_BP]++;
			vcpu_interrupt(EXC_BP, true);
			return;
		}
		if (trapno == EXC_DB) {
			rt.st->trap[BT_TRAP_DB]++;
			debug_trap(si);
			return;
		}
		break;
	case SIGSYS:
		rt.st->trap[BT_TRAP_SYSCALL]++;
		emu_syscall((int)si->si_arch, si->si_syscall);
		return;
	case BT_SIGKICK:
		rt.st->trap[BT_TRAP_KICK]++;
		__atomic_store_n(&rt.sh->kick_pending, 0, __ATOMIC_SEQ_CST);
		rt.cpu->irq_pending = 1;
		return;
	}
	rt_fatal(BT_EXIT_FAULT, "bt: unexpected signal %d (trap %u, error %#x) at guest EIP %#x", sig,
		 trapno, err, g_eip());
}

static void handle(int sig, siginfo_t *si, ucontext_t *uc)
{
	uint64_t t0 = rt_rdtsc(), w0, t1, s0 = switch_wait;

	rt.uc = uc;
	if (uc != &rt_far_uc)
		signal_fp(uc);
	rt.sh->in_runtime = 1;
	w0 = rt.st->tsc_wait;
	if (!rt.started) {
		if (sig != SIGTRAP || !rt.armed)
			rt_fatal(BT_EXIT_FAULT, "bt: signal %d in the runtime's set-up", sig);
		if (rt.role == BT_U)
			first_entry_u();
		else
			first_entry();
	} else {
		bool from_tc = tcrun_in_tc((uint32_t)uc->uc_mcontext.gregs[REG_RIP]);

		rt.st->tsc_guest += t0 - rt.tsc_mark;
		if (!from_tc || !tcrun_entry(sig, si))
			dispatch(sig, si, from_tc);
	}
	if (!tcrun_resuming())
		vcpu_check_irq();
	while (rt.split && owner_for_cpl() != rt.role)
		give_vcpu();
	seg_apply();
	tcrun_resume();
	t1 = rt_rdtsc();
	rt.st->tsc_runtime += (t1 - t0) - (rt.st->tsc_wait - w0) - (switch_wait - s0);
	rt.tsc_mark = t1;
	rt.sh->in_runtime = 0;
}

/*
 * Every signal. Non-zero: it interrupted the runtime's own far-callout code
 * (not guest code): a kick is deferred to the end of the callout, anything
 * else there is a runtime bug.
 */
int rt_signal(int sig, siginfo_t *si, ucontext_t *uc)
{
	greg_t *g = uc->uc_mcontext.gregs;
	uint64_t rip = (uint64_t)g[REG_RIP];
	/* from the check to the first instruction of the slow path, rt_in_callout is 0 */
	bool window = rip >= (uint64_t)rt_far_check && rip <= (uint64_t)rt_far_again;

	/*
	 * The trampoline, rt_far_entry and what it calls, until the IRETQ. Only K
	 * makes far callouts: in U, 64-bit code is always the guest's, whatever a
	 * guest that got there wrote into U's memory (rt_ro is read-only).
	 */
	if ((uint16_t)g[REG_CSGSFS] == 0x33 && rt_ro.role != BT_U &&
	    (rt_in_callout || window || tcrun_is_trampoline(rip))) {
		if (sig == BT_SIGKICK) {
			rt_kick_deferred = 1;
			if (window)
				g[REG_RIP] = (greg_t)rt_far_check;
			return 1;
		}
		if (sig == SIGTRAP && g[REG_TRAPNO] == EXC_DB) {
			g[REG_EFL] &= ~(greg_t)FL_TF; /* a step that went into a callout */
			return 1;
		}
		rt.uc = uc;
		rt_fatal(BT_EXIT_FAULT,
			 "bt: runtime bug: signal %d (trap %llu, address %#llx) at %#llx during a "
			 "callout",
			 sig, (unsigned long long)g[REG_TRAPNO], (unsigned long long)g[REG_CR2],
			 (unsigned long long)rip);
	}
	handle(sig, si, uc);
	return 0;
}

/* rt_far_entry: a callout from translated code, without a signal. */
void rt_far_callout(void)
{
	rt.fp = rt_far_xsave;
	rt.fp_size = rt_xsave_size;
	handle(SIGTRAP, NULL, &rt_far_uc);
}

/* rt_far_entry: a kick deferred during a callout, taken where the guest resumes. */
void rt_far_kick(void)
{
	rt_kick_deferred = 0;
	rt.fp = rt_far_xsave;
	rt.fp_size = rt_xsave_size;
	handle(BT_SIGKICK, NULL, &rt_far_uc);
}
