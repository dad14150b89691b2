/*
 * Guest ring-0 code runs translated (VMware's BT, Adams & Agesen 2006): the
 * translator (translate.h) copies it block by block into the translation
 * cache in the top region, with the sensitive instructions replaced by inline
 * code on the state page (%gs) or by int3 callouts into this runtime. Here:
 * the top region, the callbacks the translator needs, what a signal from
 * translated code means, and where the guest resumes. Guest ring-3 code runs
 * directly. docs/bt.md.
 *
 *   BT_TOP           state page (%gs base): vif, vflags, irq_pending, sel[6], scratch
 *   BT_TOP + 4 KiB   the far-callout trampoline (64-bit code), read/execute
 *   BT_TOP + 8 KiB   translation cache (the inline lookup table first), read/execute
 */
#include <asm/ldt.h>
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "runtime.h"

#define TRAMP (BT_TOP + 4096u)
#define TC_GUEST (BT_TOP + 8192u)
#define TC_SIZE (BT_TOP_SIZE - 8192u)
#define TC_CS 0x23	/* the host's flat 32-bit code segment: the TC lies past every guest limit */
#define STATE_SEL 0x07	/* LDT slot 0 (a guest's null selector never uses it) */
#define ST_VIF 0
#define ST_VFLAGS 4
#define ST_PENDING 8
#define ST_SEL 16
#define ST_SCRATCH 64
#define ST_SITE 96
#define ST_FAR 100
#define ST_FASTSEG 128 /* BT_NSREG * BT_FASTSEG_SIZE */
#define NPAGES (BT_TOP >> 12)

bool rt_translate;
bool rt_translate_user; /* guest ring 3 runs translated too, in this (the only) child */
bool rt_callout_int3; /* callouts by int3 (SIGTRAP) instead of the far jump */
static uint8_t far_stack[256 << 10] __attribute__((aligned(64)));

static struct {
	uint8_t *state;	    /* the state page through the runtime's writable alias */
	uint32_t resume_tc; /* resume here, the guest state untouched */
	uint32_t hint_eip, hint_tc, hint_gen; /* an EMULATE callout's fall-through */
	bool stepping;	    /* TF: step to an exact site, then deliver an interrupt */
	bool direct_step;   /* one instruction runs directly (tcrun_step_direct) */
	uint32_t direct_eip;
	/*
	 * Linear pages with translations, and the guest-physical page each was
	 * fetched from (+ 1; TP_LOCAL: through a non-global PTE). Translations are
	 * keyed by linear address: when the guest's mappings may have changed
	 * (CR3 load, a global flush) the pages are walked again and only those that
	 * now map elsewhere lose their translations.
	 */
	uint32_t tpage[NPAGES];
	uint32_t tlist[65536];
	unsigned ntlist;
} tr;

static volatile uint32_t *st32(unsigned off)
{
	return (volatile uint32_t *)(tr.state + off);
}

#define TRAMP_LEN 21

/* Is rip in the far-callout trampoline (the first instructions of a callout)? */
bool tcrun_is_trampoline(uint64_t rip)
{
	return rt.tc && rip - TRAMP < TRAMP_LEN;
}

bool tcrun_in_tc(uint32_t rip)
{
	return rt.tc && rip - TC_GUEST < TC_SIZE;
}

static struct bt_mode cur_mode(void)
{
	const struct bt_vcpu *c = rt.cpu;

	return (struct bt_mode){
		.cs_base = c->seg[BT_CS].base,
		.flags = (c->cpl & BT_MODE_CPL) | ((c->seg[BT_CS].attr & BT_SEG_DB) ? BT_MODE_CS32 : 0) |
			 ((c->seg[BT_SS].attr & BT_SEG_DB) ? BT_MODE_SS32 : 0),
	};
}

bool tcrun_active(void)
{
	struct bt_mode m = cur_mode();

	return rt.tc && (rt.cpu->cpl == 0 || rt_translate_user) && (m.flags & BT_MODE_CS32) &&
	       (m.flags & BT_MODE_SS32);
}

#define TP_LOCAL 0x80000000u
#define TP_USER 0x40000000u /* some of it was translated at CPL 3 */
#define TP_FLAGS (TP_LOCAL | TP_USER)

static void forget_all(void)
{
	for (unsigned i = 0; i < tr.ntlist; i++)
		tr.tpage[tr.tlist[i]] = 0;
	tr.ntlist = 0;
}

static void record(uint32_t lpg, uint32_t ppg, bool global, bool user)
{
	uint32_t v = (ppg + 1) | (global ? 0 : TP_LOCAL) | (user ? TP_USER : 0);

	if (lpg >= NPAGES)
		return;
	if ((tr.tpage[lpg] & ~TP_FLAGS) == ppg + 1)
		v |= tr.tpage[lpg] & TP_USER; /* once translated for ring 3, checked as such */
	if (tr.tpage[lpg] == v)
		return;
	if (!tr.tpage[lpg]) {
		if (tr.ntlist == sizeof(tr.tlist) / sizeof(tr.tlist[0])) {
			tc_flush(rt.tc); /* too many to track: start over */
			forget_all();
		}
		tr.tlist[tr.ntlist++] = lpg;
	}
	tr.tpage[lpg] = v;
}

/* Walk the recorded pages again; drop the translations of those that moved. */
static void revalidate(bool only_local)
{
	unsigned kept = 0;

	for (unsigned i = 0; i < tr.ntlist; i++) {
		uint32_t lpg = tr.tlist[i], v = tr.tpage[lpg];
		uint64_t pa;

		if (only_local && !(v & TP_LOCAL)) {
			tr.tlist[kept++] = lpg;
			continue;
		}
		bool user;

		/* the same frame, and still ring 3's if ring 3 ran code from it */
		if (!mmu_peek(lpg << 12, &pa, &user) && (uint32_t)(pa >> 12) + 1 == (v & ~TP_FLAGS) &&
		    (user || !(v & TP_USER))) {
			tr.tlist[kept++] = lpg;
			continue;
		}
		rt.st->tc_invalidated += tc_invalidate_linear(rt.tc, lpg << 12);
		tr.tpage[lpg] = 0;
	}
	tr.ntlist = kept;
	tr.hint_tc = 0;
}

/* The translator reads guest code through the guest's CS limit and paging. */
static int fetch(void *ctx, uint32_t la, void *buf, uint32_t len, uint64_t *gpa)
{
	const struct bt_vcpu *c = rt.cpu;
	uint32_t eip = la - c->seg[BT_CS].base;
	struct bt_fault f;
	uint64_t pa;
	bool global;
	void *p;

	(void)ctx;
	if (la >= BT_TOP || eip > c->seg[BT_CS].limit || len - 1 > c->seg[BT_CS].limit - eip)
		return -EFAULT;
	if (mmu_fetch(la, c->cpl == 3 ? ACC_U : 0, &pa, &global, &f))
		return -EFAULT;
	p = mmu_phys(pa, len);
	if (!p)
		return -EFAULT;
	memcpy(buf, p, len);
	*gpa = pa;
	record(la >> 12, (uint32_t)(pa >> 12), global || !(c->cr0 & CR0_PG), c->cpl == 3);
	return 0;
}

static void code_page(void *ctx, uint64_t gpa)
{
	(void)ctx;
	mmu_code_page(gpa);
}

int tcrun_init(void)
{
	struct user_desc u = { .entry_number = STATE_SEL >> 3, .base_addr = BT_TOP,
		.limit = (BT_TOP_SIZE >> 12) - 1, .seg_32bit = 1, .limit_in_pages = 1 };
	void *top, *alias;
	int err;

	if (!rt_translate)
		return 0;
	if (!rt_callout_int3) {
		/* far callouts save the guest's extended state with XSAVEOPT: it must fit */
		uint32_t a, b, c, d, opt;

		__asm__ volatile("cpuid" : "=a"(opt), "=b"(b), "=c"(c), "=d"(d) : "a"(0xd), "c"(1));
		__asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0xd), "c"(0));
		if (b > RT_XSAVE_MAX || !(__builtin_cpu_supports("xsave")) || !(opt & 1))
			rt_callout_int3 = true; /* no XSAVEOPT: callouts by signal, which save it all */
		rt_xsave_size = b;
		memset(rt_far_xsave, 0, sizeof(rt_far_xsave));
		__asm__ volatile("xsave64 %0" : "+m"(rt_far_xsave) : "a"(-1), "d"(-1));
		/* a far callout keeps only x87/SSE if nothing it runs touches the rest (xstate.c) */
		rt_far_fx = xstate_libc_spares_avx();
		rt.st->far_fx = rt_far_fx;
	}
	top = mmap((void *)(uintptr_t)BT_TOP, BT_TOP_SIZE, PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	if (top == MAP_FAILED)
		return -errno;
	/* a second mapping of the same pages, where the runtime writes the TC */
	alias = mremap(top, 0, BT_TOP_SIZE, MREMAP_MAYMOVE);
	if (alias == MAP_FAILED)
		return -errno;
	tr.state = alias;
	/* the trampoline: mov %rax, %gs:BT_FAR_RAX; movabs $rt_far_entry, %rax; jmp *%rax */
	uint8_t *t = tr.state + 4096;
	uint64_t entry = (uint64_t)(uintptr_t)rt_far_entry;
	const uint8_t tramp[] = { 0x65, 0x48, 0x89, 0x04, 0x25, BT_FAR_RAX, 0, 0, 0, 0x48, 0xb8 };
	memcpy(t, tramp, sizeof(tramp));
	memcpy(t + sizeof(tramp), &entry, 8);
	t[sizeof(tramp) + 8] = 0xff;
	t[sizeof(tramp) + 9] = 0xe0;
	*st32(ST_FAR) = TRAMP;
	*(volatile uint16_t *)(tr.state + ST_FAR + 4) = 0x33;
	rt_far_stack = (uint64_t)(uintptr_t)(far_stack + sizeof(far_stack));
	if (mprotect((void *)(uintptr_t)BT_TOP, BT_TOP_SIZE, PROT_READ | PROT_WRITE | PROT_EXEC))
		return -errno;
	struct bt_config cfg = {
		.tc_mem = (uint8_t *)alias + 8192,
		.tc_guest = TC_GUEST,
		.tc_size = TC_SIZE,
		.gs_base = BT_TOP,
		.state = { .vif = ST_VIF, .vflags = ST_VFLAGS, .irq_pending = ST_PENDING,
			   .sel = ST_SEL, .scratch = ST_SCRATCH, .callout_site = ST_SITE,
			   .callout_far = ST_FAR, .fastseg = ST_FASTSEG },
		.callout = rt_callout_int3 ? BT_CALLOUT_INT3 : BT_CALLOUT_FARJMP,
		.fetch = fetch,
		.code_page = code_page,
	};
	err = tc_init(&rt.tc, &cfg);
	if (err)
		return err;
	if (syscall(SYS_modify_ldt, 1, &u, sizeof(u)))
		return -errno;
	return 0;
}

/*
 * Hidden while the guest runs at CPL 3: a user process that loads a host
 * flat selector natively must not reach the state page or the TC. One
 * mprotect per ring switch: the whole region is RWX while visible (only the
 * runtime and translated code touch it; guest instructions with %gs operands
 * are emulated, and every guest segment ends below it).
 */
static void top_set(bool visible)
{
	static bool hidden;

	if (hidden == !visible)
		return;
	hidden = !visible;
	rt_syscall(SYS_mprotect, BT_TOP, BT_TOP_SIZE,
		   visible ? PROT_READ | PROT_WRITE | PROT_EXEC : PROT_NONE, 0, 0);
}

/*
 * With translated ring 3 (rt_translate_user) the region stays visible: ring-3
 * code runs from the TC, loads no selector natively (segment loads are
 * callouts) and its segments are truncated below the top like ring 0's.
 * Only ring-3 code the translator refuses (16-bit) runs directly, with the
 * region hidden (tcrun_resume).
 */
void tcrun_top_visible(bool visible)
{
	if (!rt.tc || rt.split || rt_translate_user) /* split: U never maps the top region */
		return;
	top_set(visible);
}

/*
 * The guest continues natively, not from the TC. With translated ring 3 the
 * top region is hidden while it runs at CPL 3, and so are a pv guest's kernel
 * pages above its USER_LIMIT (mmu_user_direct): its segment limits hold only
 * translated code, which loads no segment register natively.
 */
static void run_direct(void)
{
	if (!rt_translate_user)
		return;
	top_set(rt.cpu->cpl != 3);
	if (rt.cpu->cpl == 3)
		mmu_user_direct();
}

/* What inline code may have changed: the virtual IF, IOPL and AC. */
static void sync_from_state(void)
{
	struct bt_vcpu *c = rt.cpu;

	c->eflags = (c->eflags & ~(FL_IF | FL_IOPL | FL_AC)) | (*st32(ST_VIF) & FL_IF) |
		    (*st32(ST_VFLAGS) & (FL_IOPL | FL_AC));
	pv_bt_sync_from(); /* a pv guest's IF is its shared page's irq_mask */
}

static void sync_to_state(void)
{
	const struct bt_vcpu *c = rt.cpu;

	*st32(ST_VIF) = c->eflags & FL_IF;
	*st32(ST_VFLAGS) = c->eflags & (FL_IOPL | FL_AC);
	*st32(ST_PENDING) = vcpu_irq_waiting() ? BT_VIF : 0;
	pv_bt_sync_to();
	for (int s = 0; s < BT_NSREG; s++) {
		uint32_t key[4];

		*st32(ST_SEL + 4 * s) = c->seg[s].sel;
		seg_fast_key(s, key);
		for (int i = 0; i < 4; i++)
			*st32(ST_FASTSEG + BT_FASTSEG_SIZE * (unsigned)s + 4 * (unsigned)i) = key[i];
	}
}

/* The guest state at an exact site: spilled registers back, EIP where the state stands. */
static void convert(const struct bt_site *s)
{
	static const int reg[4] = { BT_EAX, BT_ECX, BT_EDX, BT_EBX };

	for (int r = 0; r < 4; r++)
		if (s->restore & (1u << r))
			set_gr(reg[r], *st32(ST_SCRATCH + BT_SCRATCH_REG(r)));
	set_eip(s->state_eip);
	rt.uc->uc_mcontext.gregs[REG_CSGSFS] =
		(greg_t)((uint64_t)rt.real[BT_CS] | (uint64_t)rt.real[BT_SS] << 48);
}

static void need_exact(const struct bt_site *s, int sig)
{
	if (!(s->flags & BT_SITE_EXACT) || s->kind == BT_SITE_INDIRECT)
		rt_fatal(BT_EXIT_FAULT,
			 "bt: signal %d inside translated code for guest EIP %#x where the guest "
			 "state is not exact",
			 sig, s->eip);
	convert(s);
}

/* A translation that failed: the guest gets the fault its fetch would have raised. */
static void translate_fault(int err, uint32_t fault_la)
{
	struct bt_fault f = { .vec = -1 };
	uint64_t pa;

	if (err == -EFAULT && mmu_translate(fault_la, rt.cpu->cpl == 3 ? ACC_U : 0, &pa, &f)) {
		vcpu_exception(&f);
		return;
	}
	if (err == -EILSEQ)
		vcpu_raise(EXC_UD, false, 0);
	else
		vcpu_raise(EXC_GP, true, 0);
}

static void step(bool on)
{
	greg_t *g = rt.uc->uc_mcontext.gregs;

	tr.stepping = on;
	g[REG_EFL] = on ? g[REG_EFL] | FL_TF : g[REG_EFL] & ~(greg_t)FL_TF;
}

static bool callout(const struct bt_site *s, uint32_t at)
{
	const struct bt_stats *ts = tc_stats(rt.tc);
	uint32_t tc_addr, fla;
	uint64_t gen, dropped;
	int r;

	rt.st->callout[s->kind & 7]++;
	switch (s->kind) {
	case BT_SITE_CHAIN:
		r = bt_chain(rt.tc, at, cur_mode(), &tc_addr, &fla);
		if (!r) {
			tr.resume_tc = tc_addr;
			return true;
		}
		convert(s);
		translate_fault(r, fla);
		return true;
	case BT_SITE_INDIRECT: {
		/*
		 * REQUEST(bt-translate): bt_translate() of an existing BT_MODE_KERNEL32
		 * block should refresh its inline-lookup-table entry. Booting Linux
		 * and 200 fork/execs make 1.7 M of these callouts: 80 k blocks share
		 * 64 Ki entries, and a block whose entry a colliding block took stays
		 * a miss for good (a 2-way table would help too).
		 */
		uint32_t target = *st32(ST_SCRATCH + BT_SCRATCH_TARGET);
		struct bt_site at_target = *s;

		at_target.state_eip = target;
		convert(&at_target);
		tc_addr = tc_lookup(rt.tc, target, cur_mode());
		r = tc_addr ? 0 : bt_translate(rt.tc, target, cur_mode(), &tc_addr, &fla);
		if (!r) {
			tr.resume_tc = tc_addr;
			return true;
		}
		translate_fault(r, fla);
		return true;
	}
	case BT_SITE_IRQ_WINDOW:
		convert(s);
		return true;
	case BT_SITE_EMULATE:
		rt.st->callout_action[s->action & 31]++;
		convert(s);
		gen = ts->generation;
		dropped = ts->invalidated;
		emu_insn();
		if (g_eip() == s->next_eip && s->resume_tc && ts->generation == gen &&
		    ts->invalidated == dropped && tcrun_active()) {
			tr.hint_eip = s->next_eip;
			tr.hint_tc = s->resume_tc;
			tr.hint_gen = (uint32_t)gen;
		}
		return true;
	default:
		rt_fatal(BT_EXIT_FAULT, "bt: an int3 in translated code at %#x that is no callout", at);
	}
}

/*
 * A signal while translated code ran. true: handled, the caller only
 * finishes (resume). false: the guest state is exact now and the signal is
 * to be handled as if guest code had raised it natively (dispatch).
 */
bool tcrun_entry(int sig, siginfo_t *si)
{
	greg_t *g = rt.uc->uc_mcontext.gregs;
	uint32_t rip = (uint32_t)g[REG_RIP], trapno = (uint32_t)g[REG_TRAPNO];
	bool int3 = sig == SIGTRAP && trapno == EXC_BP;
	uint32_t at = int3 ? rip - 1 : rip;
	struct bt_site s;
	struct bt_fault f = { .vec = -1 };
	uint64_t pa;
	int r;

	(void)si;
	tr.resume_tc = 0;
	sync_from_state();
	if (tc_site_lookup(rt.tc, at, &s))
		rt_fatal(BT_EXIT_FAULT, "bt: signal %d at TC address %#x, which no translation holds",
			 sig, at);
	if (int3) {
		rt.st->trap[BT_TRAP_BP]++;
		if (tr.stepping)
			step(false); /* a callout is an exact site too */
		return callout(&s, at);
	}
	if (sig == SIGTRAP && trapno == EXC_DB && tr.stepping) {
		rt.st->trap[BT_TRAP_DB]++;
		if (!(s.flags & BT_SITE_EXACT) || s.kind == BT_SITE_INDIRECT) {
			tr.resume_tc = rip; /* step on */
			return true;
		}
		step(false);
		convert(&s);
		return true;
	}
	if (sig == BT_SIGKICK) {
		rt.st->trap[BT_TRAP_KICK]++;
		__atomic_store_n(&rt.sh->kick_pending, 0, __ATOMIC_SEQ_CST);
		rt.cpu->irq_pending = 1;
		if (!(rt.cpu->eflags & FL_IF)) {
			*st32(ST_PENDING) = BT_VIF; /* the next STI or POPF calls out */
			pv_bt_irq_held();	    /* ... or a pv guest's IRQ_ENABLE */
			tr.resume_tc = rip;
			return true;
		}
		if ((s.flags & BT_SITE_EXACT) && s.kind != BT_SITE_INDIRECT &&
		    !(s.flags & BT_SITE_STALE)) {
			convert(&s);
			return true;
		}
		step(true);
		tr.resume_tc = rip;
		return true;
	}
	if (sig == SIGSEGV && trapno == EXC_PF) {
		rt.st->trap[BT_TRAP_PF]++;
		r = mmu_fault((uint32_t)g[REG_CR2], (uint32_t)g[REG_ERR], &f, &pa);
		if (r == 0 || r == 2) {
			/* a shadow fill (or a write that dropped translations): run it again */
			if (r == 2 && tc_site_lookup(rt.tc, at, &s) == 0 && (s.flags & BT_SITE_STALE))
				step(true); /* out of the writer's stale block at the next exact site */
			tr.resume_tc = rip;
			return true;
		}
		need_exact(&s, sig);
		if (r < 0)
			vcpu_exception(&f);
		else
			emu_mem_fault(pa);
		return true;
	}
	need_exact(&s, sig);
	return false;
}

/* K has the vCPU back from U: its old resume points are void; drop what ring 3 wrote. */
void tcrun_took_vcpu(void)
{
	struct bt_shared *sh = rt.sh;

	tr.resume_tc = 0;
	tr.hint_tc = 0;
	tr.stepping = false;
	if (!rt.tc)
		return;
	if (sh->k_ncode > BT_INVLPG_MAX) {
		tc_flush(rt.tc);
		forget_all();
	} else {
		for (uint32_t i = 0; i < sh->k_ncode; i++)
			rt.st->tc_invalidated += tc_invalidate_page(rt.tc, (uint64_t)sh->k_code[i] << 12);
	}
	sh->k_ncode = 0;
}

/*
 * A callout for an instruction the runtime does not emulate — one that is
 * sensitive only for its %gs or %cs memory operand (ADC %gs:..., a string
 * operation with a %cs source): run that one instruction directly, from guest
 * memory with the guest's own mirrors in every segment register, and come
 * back at the single-step trap (rt.tf_window, as after STI) to continue
 * translated. Two signals; such instructions are rare in kernels.
 */
bool tcrun_step_direct(void)
{
	if (!rt.tc || !tcrun_active())
		return false;
	tr.direct_step = true;
	tr.direct_eip = g_eip();
	rt.tf_window = true;
	rt.uc->uc_mcontext.gregs[REG_EFL] |= FL_TF;
	return true;
}

/* The handler resumes translated code where it stopped: no guest-visible state changed. */
bool tcrun_resuming(void)
{
	return tr.resume_tc != 0;
}

/* At the end of every handler: resume in the TC (ring 0) or directly (ring 3). */
void tcrun_resume(void)
{
	greg_t *g = rt.uc->uc_mcontext.gregs;
	uint32_t tc_addr = tr.resume_tc, fla;

	tr.resume_tc = 0;
	if (tr.direct_step) {
		if (rt.tf_window && g_eip() == tr.direct_eip)
			return; /* the step has not run yet (a shadow fill, a kick): again */
		tr.direct_step = false; /* done, or the guest took a fault or interrupt first */
		if (rt.tf_window) {
			rt.tf_window = false;
			g[REG_EFL] = (g[REG_EFL] & ~(greg_t)FL_TF) | (rt.cpu->eflags & FL_TF);
		}
	}
	/*
	 * The guest's own TF (a debugger stepping it): every instruction traps
	 * anyway, so it runs directly, one #DB per guest instruction as on a CPU,
	 * instead of one per translated instruction.
	 */
	bool guest_tf = (g[REG_EFL] & FL_TF) && !tr.stepping && !rt.tf_window;
	if (!tcrun_active() || (guest_tf && !tc_addr)) {
		run_direct();
		return;
	}
	for (int tries = 0; !tc_addr && tries < 8; tries++) {
		uint32_t eip = g_eip();
		int r;

		if (tr.hint_tc && tr.hint_eip == eip &&
		    tr.hint_gen == (uint32_t)tc_stats(rt.tc)->generation) {
			tc_addr = tr.hint_tc;
			break;
		}
		tc_addr = tc_lookup(rt.tc, eip, cur_mode()); /* counts the TC's hits for --stats */
		r = tc_addr ? 0 : bt_translate(rt.tc, eip, cur_mode(), &tc_addr, &fla);
		if (r == -EOPNOTSUPP) { /* not translatable here: run it directly */
			run_direct();
			return;
		}
		if (r) {
			tc_addr = 0;
			translate_fault(r, fla);
			if (!tcrun_active()) {
				run_direct();
				seg_apply();
				return;
			}
		}
	}
	tr.hint_tc = 0;
	if (!tc_addr)
		rt_fatal(BT_EXIT_FAULT, "bt: no translation for guest EIP %#x after repeated faults",
			 g_eip());
	if (rt_translate_user)
		top_set(true);
	seg_apply();
	sync_to_state();
	g[REG_RIP] = tc_addr;
	g[REG_CSGSFS] = (greg_t)((uint64_t)TC_CS | (uint64_t)rt.real[BT_SS] << 48);
	rt_sel_out[3] = STATE_SEL;
}

void tcrun_code_written(uint64_t gpa_page)
{
	if (rt.tc)
		rt.st->tc_invalidated += tc_invalidate_page(rt.tc, gpa_page);
}

/*
 * Paging changed. CR0.PG or CR4.PSE: every linear address may mean something
 * else, start over. CR4.PGE toggled (Linux flushes global TLB entries that
 * way): walk every translated page again.
 */
void tcrun_paging_changed(bool all)
{
	if (!rt.tc)
		return;
	if (!all) {
		revalidate(false);
		return;
	}
	tc_flush(rt.tc);
	forget_all();
	tr.hint_tc = 0;
}

/* A new address space: global pages keep their meaning (SDM vol. 3 §4.10.4.1). */
void tcrun_cr3_loaded(void)
{
	if (rt.tc)
		revalidate(true);
}

void tcrun_invlpg(uint32_t la)
{
	if (!rt.tc)
		return;
	rt.st->tc_invalidated += tc_invalidate_linear(rt.tc, la);
	tr.hint_tc = 0;
}

/* For --stats: the translator's counters, copied where the monitor can read them. */
void tcrun_stats(void)
{
	const struct bt_stats *ts;

	if (!rt.tc)
		return;
	ts = tc_stats(rt.tc);
	rt.st->tc_blocks = ts->blocks;
	rt.st->tc_insns = ts->insns;
	rt.st->tc_lookups = ts->lookups;
	rt.st->tc_lookup_hits = ts->lookup_hits;
	rt.st->tc_chains = ts->chains;
	rt.st->tc_flushes = ts->flushes;
	rt.st->tc_used = ts->tc_used;
	rt.st->tc_translate_tsc = ts->translate_tsc;
}
