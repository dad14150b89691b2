/*
 * The virtual CPU: virtual EFLAGS.IF/IOPL and CPL, exception and interrupt
 * delivery through the guest's IDT (with the stack switch from the TSS),
 * IRET, far JMP/CALL/RET, the interrupt window and HLT. Intel SDM vol. 3
 * ch. 6 (§6.12 delivery, §6.15 exception classes, Table 6-5 double faults),
 * ch. 7 (the TSS), ch. 5 (§5.8 control transfers); vol. 2 IRET, CALL, RET.
 */
#include <string.h>

#include "runtime.h"

enum ev_kind { EV_EXC, EV_SOFT, EV_EXT };

/* Bits the guest's arithmetic and POPF keep in the real EFLAGS. */
#define FL_REAL (0xcd5u | FL_TF | FL_NT | FL_RF | FL_ID)

static int pending_vector = -1; /* acknowledged at the PIC, not yet delivered */
static uint32_t shadow_eip;

uint32_t vcpu_eflags(void)
{
	uint32_t real = (uint32_t)rt.uc->uc_mcontext.gregs[REG_EFL];
	uint32_t v = (real & FL_REAL) | (rt.cpu->eflags & ~FL_REAL) | 2;

	if (rt.tf_window)
		v = (v & ~FL_TF) | (rt.cpu->eflags & FL_TF);
	return v;
}

void vcpu_set_eflags(uint32_t v, uint32_t mask)
{
	greg_t *g = rt.uc->uc_mcontext.gregs;
	uint32_t nv = (vcpu_eflags() & ~mask) | (v & mask);

	nv = (nv & 0x3f7fd5u) | 2;
	rt.cpu->eflags = nv;
	g[REG_EFL] = (greg_t)((g[REG_EFL] & ~(greg_t)FL_REAL) | (nv & FL_REAL) | FL_IF);
	if (rt.tf_window)
		g[REG_EFL] |= FL_TF;
}

void vcpu_set_cpl(unsigned cpl)
{
	unsigned old = rt.cpu->cpl;

	rt.cpu->cpl = cpl;
	if (old != cpl) {
		rt.st->ring_switches++;
		mmu_cpl_changed(old);
		if ((old == 3) != (cpl == 3))
			seg_cpl_changed();
	}
}

static uint32_t sp_mask(void)
{
	return (rt.cpu->seg[BT_SS].attr & BT_SEG_DB) ? 0xffffffffu : 0xffffu;
}

static unsigned data_acc(void)
{
	return rt.cpu->cpl == 3 ? ACC_U : 0;
}

int vcpu_push(uint32_t v, int size, struct bt_fault *f)
{
	uint32_t esp = (gr(BT_ESP) - (uint32_t)size) & sp_mask();

	if (!seg_check(BT_SS, esp, (uint32_t)size, true, f) ||
	    vmem_write(seg_lin(BT_SS, esp), &v, (uint32_t)size, data_acc(), f))
		return -1;
	set_gr(BT_ESP, (gr(BT_ESP) & ~sp_mask()) | esp);
	return 0;
}

/* Read n stack slots of size bytes at ESP + skip, without popping. */
static int stack_peek(uint32_t *out, unsigned n, int size, uint32_t skip, struct bt_fault *f)
{
	uint32_t esp = (gr(BT_ESP) + skip) & sp_mask();

	for (unsigned i = 0; i < n; i++) {
		uint32_t v = 0, off = (esp + i * (uint32_t)size) & sp_mask();

		if (!seg_check(BT_SS, off, (uint32_t)size, false, f) ||
		    vmem_read(seg_lin(BT_SS, off), &v, (uint32_t)size, data_acc(), f))
			return -1;
		out[i] = v;
	}
	return 0;
}

static void add_esp(uint32_t n)
{
	uint32_t m = sp_mask();

	set_gr(BT_ESP, (gr(BT_ESP) & ~m) | ((gr(BT_ESP) + n) & m));
}

/* The code segment a far transfer or gate names: checks common to all (SDM §5.8). */
static int code_desc(uint16_t sel, struct bt_seg *s, uint32_t ext, struct bt_fault *f)
{
	uint64_t d;

	if (!(sel & ~3u))
		return FAULT(f, EXC_GP, ext);
	if (seg_read_desc(sel, &d, f)) {
		if (f->vec == EXC_GP)
			f->err |= ext;
		return -1;
	}
	seg_from_desc(s, sel, d);
	if (!(s->attr & BT_SEG_S) || !(BT_SEG_TYPE(s->attr) & 8))
		return FAULT(f, EXC_GP, (sel & ~3u) | ext);
	seg_set_accessed(sel, d);
	s->attr |= 1;
	return 0;
}

static int stack_desc(uint16_t sel, unsigned dpl, struct bt_seg *s, int vec, uint32_t ext,
		      struct bt_fault *f)
{
	uint64_t d;

	if (!(sel & ~3u))
		return FAULT(f, vec, ext);
	if (seg_read_desc(sel, &d, f))
		return FAULT(f, vec, (sel & ~3u) | ext);
	seg_from_desc(s, sel, d);
	if ((sel & 3) != dpl || !(s->attr & BT_SEG_S) || (BT_SEG_TYPE(s->attr) & 0xa) != 0x2 ||
	    BT_SEG_DPL(s->attr) != dpl)
		return FAULT(f, vec, (sel & ~3u) | ext);
	if (!(s->attr & BT_SEG_P))
		return FAULT(f, EXC_SS, (sel & ~3u) | ext);
	seg_set_accessed(sel, d);
	s->attr |= 1;
	return 0;
}

/* The ring-dpl stack from the current 32-bit TSS (SDM vol. 3 §7.2.1). */
static int tss_stack(unsigned dpl, uint16_t *ss, uint32_t *esp, uint32_t ext, struct bt_fault *f)
{
	const struct bt_seg *tr = &rt.cpu->tr;
	uint32_t off = 4 + dpl * 8, v[2];

	if (pv_bt_stack(dpl, ss, esp)) /* a pv guest's STACK_SWITCH (pv.c) */
		return 0;
	if (!tr->sel || BT_SEG_TYPE(tr->attr) != 0xb)
		return FAULT(f, EXC_TS, (tr->sel & ~3u) | ext); /* no busy 32-bit TSS */
	if (off + 5 > tr->limit)
		return FAULT(f, EXC_TS, (tr->sel & ~3u) | ext);
	if (vmem_read(tr->base + off, v, 8, 0, f))
		return -1;
	*esp = v[0];
	*ss = (uint16_t)v[1];
	return 0;
}

/* Deliver one event through the IDT; 0, or -1 with the fault that delivery raised. */
static int deliver(unsigned vec, enum ev_kind kind, bool has_err, uint32_t err, struct bt_fault *f)
{
	struct bt_vcpu *c = rt.cpu;
	uint32_t ext = kind == EV_SOFT ? 0 : 1, idt_err = vec * 8 + 2 + ext;
	uint64_t gate;
	unsigned type, dpl, new_cpl;
	uint16_t sel;
	uint32_t off, frame[6], n = 0, esp, flags = vcpu_eflags();
	struct bt_seg cs, ss;
	bool outer;

	if (vec * 8 + 7 > c->idt_limit)
		return FAULT(f, EXC_GP, idt_err);
	if (vmem_read(c->idt_base + vec * 8, &gate, 8, 0, f))
		return -1;
	type = (gate >> 40) & 0x1f;
	dpl = (gate >> 45) & 3;
	if (type != 0xe && type != 0xf && type != 0x5 && type != 0x6 && type != 0x7)
		return FAULT(f, EXC_GP, idt_err);
	if (kind == EV_SOFT && dpl < c->cpl)
		return FAULT(f, EXC_GP, idt_err);
	if (!(gate >> 47 & 1))
		return FAULT(f, EXC_NP, idt_err);
	if (type == 0x5)
		rt_fatal(BT_EXIT_FAULT, "bt: vector %u is a task gate; task switches are not supported",
			 vec);
	if (type != 0xe && type != 0xf)
		rt_fatal(BT_EXIT_FAULT, "bt: vector %u is a 16-bit gate; not supported", vec);
	sel = (uint16_t)(gate >> 16);
	off = (uint32_t)(gate & 0xffff) | (uint32_t)((gate >> 32) & 0xffff0000u);
	if (code_desc(sel, &cs, ext, f))
		return -1;
	if (BT_SEG_DPL(cs.attr) > c->cpl)
		return FAULT(f, EXC_GP, (sel & ~3u) | ext);
	if (!(cs.attr & BT_SEG_P))
		return FAULT(f, EXC_NP, (sel & ~3u) | ext);
	new_cpl = (BT_SEG_TYPE(cs.attr) & 4) ? c->cpl : BT_SEG_DPL(cs.attr);
	outer = new_cpl < c->cpl;
	if (off > cs.limit)
		return FAULT(f, EXC_GP, ext);

	/* the frame, lowest address first: [err] EIP CS EFLAGS [ESP SS] */
	if (has_err)
		frame[n++] = err;
	frame[n++] = g_eip();
	frame[n++] = c->seg[BT_CS].sel;
	frame[n++] = flags;
	if (outer) {
		uint16_t ss_sel;
		uint32_t lin;

		frame[n++] = gr(BT_ESP);
		frame[n++] = c->seg[BT_SS].sel;
		if (tss_stack(new_cpl, &ss_sel, &esp, ext, f) ||
		    stack_desc(ss_sel, new_cpl, &ss, EXC_TS, ext, f))
			return -1;
		if (!(ss.attr & BT_SEG_DB))
			esp &= 0xffff;
		esp -= n * 4;
		lin = ss.base + esp;
		if (vmem_write(lin, frame, n * 4, new_cpl == 3 ? ACC_U : 0, f))
			return -1;
		seg_set(BT_SS, &ss);
		set_gr(BT_ESP, esp);
	} else {
		esp = (gr(BT_ESP) - n * 4) & sp_mask();
		if (!seg_check(BT_SS, esp, n * 4, true, f) ||
		    vmem_write(seg_lin(BT_SS, esp), frame, n * 4, data_acc(), f))
			return -1;
		set_gr(BT_ESP, (gr(BT_ESP) & ~sp_mask()) | esp);
	}
	cs.sel = (uint16_t)((sel & ~3u) | new_cpl);
	seg_set(BT_CS, &cs);
	vcpu_set_cpl(new_cpl);
	set_eip(off);
	vcpu_set_eflags(0, FL_TF | FL_NT | FL_RF | FL_VM | (type == 0xe ? FL_IF : 0));
	c->intr_shadow = 0;
	return 0;
}

/* Exception classes for double faults (SDM vol. 3 Table 6-4, 6-5). */
static int exc_class(int vec)
{
	if (vec == EXC_PF)
		return 2;
	if (vec == EXC_DE || (vec >= EXC_TS && vec <= EXC_GP))
		return 1;
	return 0;
}

static void raise_event(int vec, enum ev_kind kind, bool has_err, uint32_t err, uint32_t cr2)
{
	struct bt_fault f;
	int first = vec;

	for (int depth = 0; depth < 4; depth++) {
		if (vec == EXC_PF) {
			rt.cpu->cr2 = cr2;
			mmu_pf_delivered(cr2, g_eip()); /* the EIP the handler's IRET returns to */
		}
		if (kind == EV_EXC && vec < 32)
			rt.st->exc[vec]++;
		f.vec = -1;
		if (deliver((unsigned)vec, kind, has_err, err, &f) == 0)
			return;
		if (vec == EXC_DF && kind == EV_EXC)
			break;
		int c1 = kind == EV_EXC ? exc_class(vec) : 0, c2 = exc_class(f.vec);
		if ((c1 == 1 && c2 == 1) || (c1 == 2 && c2 != 0)) {
			vec = EXC_DF;
			err = 0;
			has_err = true;
		} else {
			vec = f.vec;
			err = f.err;
			has_err = f.has_err;
			cr2 = f.cr2;
		}
		kind = EV_EXC;
	}
	vcpu_snapshot();
	rt_snprintf(rt.sh->msg, BT_MSG_SIZE,
		    "bt: triple fault: vector %d at EIP %#x CPL %u, then %d (error %#x, CR2 %#x); "
		    "IDT %#x, CR0 %#x CR3 %#x CR4 %#x",
		    first, g_eip(), rt.cpu->cpl, f.vec, f.err, f.cr2, rt.cpu->idt_base, rt.cpu->cr0,
		    rt.cpu->cr3, rt.cpu->cr4);
	rt_exit_wait(BT_EXIT_SHUTDOWN);
	rt_fatal(BT_EXIT_SHUTDOWN, "bt: triple fault");
}

void vcpu_exception(const struct bt_fault *f)
{
	raise_event(f->vec, EV_EXC, f->has_err, f->err, f->cr2);
}

void vcpu_raise(int vec, bool has_err, uint32_t err)
{
	raise_event(vec, EV_EXC, has_err, err, 0);
}

void vcpu_interrupt(unsigned vec, bool soft)
{
	if (soft)
		rt.st->soft_ints++;
	raise_event((int)vec, soft ? EV_SOFT : EV_EXC, false, 0, 0);
}

void vcpu_ext_interrupt(unsigned vec)
{
	rt.st->irqs++;
	raise_event((int)vec, EV_EXT, false, 0, 0);
}

/* Data segment registers the new (outer) CPL may not use become null (SDM vol. 2 IRET, RET). */
static void null_outer_segments(void)
{
	static const int regs[] = { BT_ES, BT_DS, BT_FS, BT_GS };

	for (unsigned i = 0; i < 4; i++) {
		const struct bt_seg *s = &rt.cpu->seg[regs[i]];
		unsigned type = BT_SEG_TYPE(s->attr);

		if ((s->sel & ~3u) && (!(type & 8) || !(type & 4)) &&
		    BT_SEG_DPL(s->attr) < rt.cpu->cpl)
			seg_set_null(regs[i]);
	}
}

/* The checks of a return to CS (IRET, far RET): rpl >= CPL, and DPL rules. */
static int return_cs(uint16_t sel, struct bt_seg *cs, struct bt_fault *f)
{
	unsigned rpl = sel & 3, dpl;

	if (code_desc(sel, cs, 0, f))
		return -1;
	dpl = BT_SEG_DPL(cs->attr);
	if (rpl < rt.cpu->cpl)
		return FAULT(f, EXC_GP, sel & ~3u);
	if ((BT_SEG_TYPE(cs->attr) & 4) ? dpl > rpl : dpl != rpl)
		return FAULT(f, EXC_GP, sel & ~3u);
	if (!(cs->attr & BT_SEG_P))
		return FAULT(f, EXC_NP, sel & ~3u);
	return 0;
}

int vcpu_iret(int opsize, struct bt_fault *f)
{
	struct bt_vcpu *c = rt.cpu;
	uint32_t v[5], mask;
	struct bt_seg cs, ss;
	unsigned cpl = c->cpl, rpl;

	if (vcpu_eflags() & FL_NT) {
		/* a task return to the TSS in the back link (SDM vol. 2 IRET, TASK-RETURN) */
		uint16_t link = 0;
		uint64_t d;
		struct bt_fault f2;

		if (!c->tr.sel || vmem_read(c->tr.base, &link, 2, 0, f))
			return c->tr.sel ? -1 : FAULT(f, EXC_TS, 0);
		if ((link & 4) || seg_read_desc(link, &d, &f2) || (d >> 44 & 1) ||
		    ((d >> 40) & 0xf) != 0xb)
			return FAULT(f, EXC_TS, link & ~3u);
		rt_fatal(BT_EXIT_FAULT, "bt: IRET with NT=1 to task %#x: task switches are not supported",
			 link);
	}
	if (stack_peek(v, 3, opsize, 0, f))
		return -1;
	if (opsize == 4 && (v[2] & FL_VM) && cpl == 0)
		rt_fatal(BT_EXIT_FAULT, "bt: IRET to virtual-8086 mode is not supported");
	if (!(v[1] & 0xfffc))
		return FAULT(f, EXC_GP, 0);
	if (return_cs((uint16_t)v[1], &cs, f))
		return -1;
	rpl = v[1] & 3;
	if (rpl > cpl && stack_peek(v + 3, 2, opsize, (uint32_t)(3 * opsize), f))
		return -1;
	if (rpl > cpl && stack_desc((uint16_t)v[4], rpl, &ss, EXC_GP, 0, f))
		return -1;
	if (v[0] > cs.limit)
		return FAULT(f, EXC_GP, 0);

	/* EFLAGS: IOPL only at CPL 0, IF only at CPL <= IOPL (SDM vol. 2 IRET) */
	mask = FL_REAL | FL_AC;
	if (cpl <= ((vcpu_eflags() & FL_IOPL) >> 12))
		mask |= FL_IF;
	if (cpl == 0)
		mask |= FL_IOPL | FL_VIF | FL_VIP;
	if (opsize == 2)
		mask &= 0xffff;
	vcpu_set_eflags(v[2], mask);
	cs.sel = (uint16_t)v[1];
	seg_set(BT_CS, &cs);
	set_eip(v[0]);
	if (rpl > cpl) {
		ss.sel = (uint16_t)v[4];
		seg_set(BT_SS, &ss);
		set_gr(BT_ESP, opsize == 2 ? (gr(BT_ESP) & ~0xffffu) | (v[3] & 0xffff) : v[3]);
		vcpu_set_cpl(rpl);
		null_outer_segments();
	} else {
		add_esp((uint32_t)(3 * opsize));
	}
	return 0;
}

/* The target of a far JMP/CALL to a code segment (call gates are not supported). */
static int far_target(uint16_t sel, uint32_t eip, struct bt_seg *cs, struct bt_fault *f)
{
	unsigned cpl = rt.cpu->cpl, dpl;
	uint64_t d;

	if (!(sel & ~3u))
		return FAULT(f, EXC_GP, 0);
	if (seg_read_desc(sel, &d, f))
		return -1;
	seg_from_desc(cs, sel, d);
	if (!(cs->attr & BT_SEG_S)) {
		unsigned type = BT_SEG_TYPE(cs->attr);

		dpl = BT_SEG_DPL(cs->attr);
		/*
		 * Only a call gate, task gate or available TSS that the CPL and RPL
		 * may use is a transfer this CPU does not model (the VM stops). A CPU
		 * refuses anything else with #GP(selector) (SDM vol. 3 §5.8.4, §7.3):
		 * an LDT, an interrupt gate, a busy TSS, or one more privileged than
		 * CPL or RPL — which any user process reaches with the guest's TSS
		 * selector, and which must not stop its VM.
		 */
		if ((type != 1 && type != 4 && type != 5 && type != 9 && type != 0xc) || dpl < cpl ||
		    dpl < (sel & 3u))
			return FAULT(f, EXC_GP, sel & ~3u);
		rt_fatal(BT_EXIT_FAULT,
			 "bt: far transfer through system descriptor %#x (call gate or task) is not "
			 "supported",
			 sel);
	}
	if (!(BT_SEG_TYPE(cs->attr) & 8))
		return FAULT(f, EXC_GP, sel & ~3u);
	dpl = BT_SEG_DPL(cs->attr);
	if ((BT_SEG_TYPE(cs->attr) & 4) ? dpl > cpl : ((sel & 3) > cpl || dpl != cpl))
		return FAULT(f, EXC_GP, sel & ~3u);
	if (!(cs->attr & BT_SEG_P))
		return FAULT(f, EXC_NP, sel & ~3u);
	if (eip > cs->limit)
		return FAULT(f, EXC_GP, 0);
	seg_set_accessed(sel, d);
	cs->attr |= 1;
	cs->sel = (uint16_t)((sel & ~3u) | cpl);
	return 0;
}

int vcpu_far_jmp(uint16_t sel, uint32_t eip, int opsize, struct bt_fault *f)
{
	struct bt_seg cs;

	if (opsize == 2)
		eip &= 0xffff;
	if (far_target(sel, eip, &cs, f))
		return -1;
	seg_set(BT_CS, &cs);
	set_eip(eip);
	return 0;
}

int vcpu_far_call(uint16_t sel, uint32_t eip, uint32_t ret_eip, int opsize, struct bt_fault *f)
{
	struct bt_seg cs;
	uint32_t esp = gr(BT_ESP);

	if (opsize == 2)
		eip &= 0xffff;
	if (far_target(sel, eip, &cs, f))
		return -1;
	if (vcpu_push(rt.cpu->seg[BT_CS].sel, opsize, f) || vcpu_push(ret_eip, opsize, f)) {
		set_gr(BT_ESP, esp);
		return -1;
	}
	seg_set(BT_CS, &cs);
	set_eip(eip);
	return 0;
}

int vcpu_far_ret(int opsize, uint32_t pop_bytes, struct bt_fault *f)
{
	uint32_t v[4];
	struct bt_seg cs, ss;
	unsigned cpl = rt.cpu->cpl, rpl;

	if (stack_peek(v, 2, opsize, 0, f))
		return -1;
	if (!(v[1] & 0xfffc))
		return FAULT(f, EXC_GP, 0);
	if (return_cs((uint16_t)v[1], &cs, f))
		return -1;
	rpl = v[1] & 3;
	if (rpl > cpl &&
	    (stack_peek(v + 2, 2, opsize, (uint32_t)(2 * opsize) + pop_bytes, f) ||
	     stack_desc((uint16_t)v[3], rpl, &ss, EXC_GP, 0, f)))
		return -1;
	if (v[0] > cs.limit)
		return FAULT(f, EXC_GP, 0);
	seg_set(BT_CS, &cs);
	set_eip(v[0]);
	if (rpl > cpl) {
		seg_set(BT_SS, &ss);
		set_gr(BT_ESP, v[2]);
		add_esp(pop_bytes);
		vcpu_set_cpl(rpl);
		null_outer_segments();
	} else {
		add_esp((uint32_t)(2 * opsize) + pop_bytes);
	}
	return 0;
}

/* I/O permission: CPL <= IOPL, else the TSS bitmap (SDM vol. 1 §19.5). */
int vcpu_io_allowed(uint16_t port, unsigned size, struct bt_fault *f)
{
	const struct bt_seg *tr = &rt.cpu->tr;
	uint16_t base, bits;
	uint32_t byte;

	if (rt.cpu->cpl <= ((vcpu_eflags() & FL_IOPL) >> 12))
		return 0;
	if (!tr->sel || BT_SEG_TYPE(tr->attr) != 0xb || tr->limit < 0x67)
		return FAULT(f, EXC_GP, 0);
	if (vmem_read(tr->base + 0x66, &base, 2, 0, f))
		return -1;
	byte = (uint32_t)base + port / 8;
	if (byte + 1 > tr->limit)
		return FAULT(f, EXC_GP, 0);
	if (vmem_read(tr->base + byte, &bits, 2, 0, f))
		return -1;
	if ((bits >> (port % 8)) & ((1u << size) - 1))
		return FAULT(f, EXC_GP, 0);
	return 0;
}

void vcpu_snapshot(void)
{
	for (int r = 0; r < 8; r++)
		rt.cpu->regs[r] = gr(r);
	rt.cpu->eip = g_eip();
	rt.cpu->eflags = vcpu_eflags();
}

static void post_simple(uint32_t kind, uint32_t window)
{
	memset(&rt.sh->exit, 0, sizeof(rt.sh->exit));
	rt.sh->exit.irq_window = window;
	rt_exit_wait(kind);
}

void vcpu_halt(void)
{
	rt.cpu->halted = 1;
	post_simple(BT_EXIT_HLT, !!(vcpu_eflags() & FL_IF));
	rt.cpu->halted = 0;
}

/* After the monitor's reply: what it knows about the PIC. */
void vcpu_resumed(void)
{
	int32_t v = rt.sh->resume.vector;

	rt.cpu->irq_pending = rt.sh->resume.irq != 0;
	if (v >= 0 && v < 256)
		pending_vector = v;
}

bool vcpu_irq_waiting(void)
{
	return pending_vector >= 0 || rt.cpu->irq_pending;
}

void vcpu_shadow(void)
{
	rt.cpu->intr_shadow = 1;
	shadow_eip = g_eip();
}

/* At the end of every handler: an interrupt the guest can take now is delivered. */
void vcpu_check_irq(void)
{
	struct bt_vcpu *c = rt.cpu;

	if (c->intr_shadow && g_eip() != shadow_eip)
		c->intr_shadow = 0;
	for (int round = 0; round < 4; round++) {
		if (!(vcpu_eflags() & FL_IF))
			return;
		if (c->intr_shadow) {
			if (pending_vector >= 0 || c->irq_pending) {
				/* one instruction, then a #DB brings us back to deliver it */
				rt.tf_window = true;
				rt.uc->uc_mcontext.gregs[REG_EFL] |= FL_TF;
			}
			return;
		}
		if (pending_vector >= 0) {
			int v = pending_vector;

			pending_vector = -1;
			vcpu_ext_interrupt((unsigned)v);
			continue;
		}
		if (!c->irq_pending)
			return;
		c->irq_pending = 0;
		post_simple(BT_EXIT_INTA, 1);
		if (pending_vector < 0)
			return;
	}
}
