/*
 * The sensitive instructions that do not trap in host ring 3 (Robin & Irvine
 * 2000): SGDT, SIDT, SLDT, STR, SMSW, LAR, LSL, VERR, VERW, PUSHF/POPF (where
 * the translator does not inline them), CPUID, and the instructions this
 * virtual CPU does not have (#UD). The translator calls out for them in
 * guest ring-0 code; here they read the virtual CPU. Intel SDM vol. 2 (each
 * instruction), vol. 3 §5.10 (pointer validation).
 */
#include <string.h>

#include "emulate.h"

#define FL_ZF 0x40u

/* Store a selector or a CR0 image: 16 bits to memory, zero-extended to a 32-bit register. */
static int store_word(const struct insn *d, uint32_t v, struct bt_fault *f)
{
	const ZydisDecodedOperand *o = &d->op[0];

	if (o->type == ZYDIS_OPERAND_TYPE_MEMORY)
		return emu_mem_rw(emu_sreg_of(o->mem.segment), emu_ea(d, o), &v, 2, true, f);
	return emu_op_write(d, 0, v, f);
}

static int store_table(const struct insn *d, uint32_t base, uint16_t limit, struct bt_fault *f)
{
	const ZydisDecodedOperand *o = &d->op[0];
	uint8_t b[6];
	int s = emu_sreg_of(o->mem.segment);

	if (o->type != ZYDIS_OPERAND_TYPE_MEMORY)
		return FAULT(f, EXC_UD, 0);
	if (d->i.operand_width == 16)
		base &= 0xffffff;
	memcpy(b, &limit, 2);
	memcpy(b + 2, &base, 4);
	return emu_mem_rw(s, emu_ea(d, o), b, 6, true, f);
}

enum seg_query { Q_LAR, Q_LSL, Q_VERR, Q_VERW };

/*
 * LAR, LSL, VERR, VERW: ZF=1 and *out when the descriptor passes, ZF=0 when
 * not (never a fault for a bad selector). SDM vol. 2, each instruction.
 */
static int seg_query(enum seg_query q, uint16_t sel, uint32_t *out, bool *zf, struct bt_fault *f)
{
	struct bt_seg s;
	uint64_t desc;
	unsigned type, dpl, cpl = rt.cpu->cpl;
	struct bt_fault ignore;

	*zf = false;
	if (!(sel & ~3u))
		return 0;
	if (seg_read_desc(sel, &desc, &ignore)) {
		if (ignore.vec == EXC_PF) { /* the table itself is not mapped: a real fault */
			*f = ignore;
			return -1;
		}
		return 0;
	}
	seg_from_desc(&s, sel, desc);
	type = BT_SEG_TYPE(s.attr);
	dpl = BT_SEG_DPL(s.attr);
	if (s.attr & BT_SEG_S) {
		bool conforming_code = (type & 0xc) == 0xc;

		if (!conforming_code && (dpl < cpl || dpl < (sel & 3u)))
			return 0;
		if (q == Q_VERR && (type & 0xa) == 0x8) /* execute-only code */
			return 0;
		if (q == Q_VERW && ((type & 8) || !(type & 2)))
			return 0;
	} else {
		static const uint16_t lar_ok = 1u << 1 | 1u << 2 | 1u << 3 | 1u << 4 | 1u << 5 |
					       1u << 9 | 1u << 0xb | 1u << 0xc;
		static const uint16_t lsl_ok = 1u << 1 | 1u << 2 | 1u << 3 | 1u << 9 | 1u << 0xb;

		if (q == Q_VERR || q == Q_VERW || !((q == Q_LAR ? lar_ok : lsl_ok) >> type & 1))
			return 0;
		if (dpl < cpl || dpl < (sel & 3u))
			return 0;
	}
	*zf = true;
	*out = q == Q_LAR ? (uint32_t)(desc >> 32) & 0x00f0ff00u : s.limit;
	return 0;
}

static int emu_seg_query(const struct insn *d, enum seg_query q, struct bt_fault *f)
{
	int src = (q == Q_LAR || q == Q_LSL) ? 1 : 0;
	uint16_t sel;
	uint32_t v = 0;
	bool zf;

	if (emu_sel_operand(d, src, &sel, f) || seg_query(q, sel, &v, &zf, f))
		return -1;
	if (zf && src)
		emu_reg_write(d->op[0].reg.value, d->i.operand_width == 16 ? v & 0xffff : v);
	vcpu_set_eflags(zf ? FL_ZF : 0, FL_ZF);
	emu_next(d);
	return 0;
}

static int emu_pushf(const struct insn *d, struct bt_fault *f)
{
	int size = d->i.operand_width / 8;

	if (vcpu_push(vcpu_eflags() & ~(FL_VM | FL_RF), size, f))
		return -1;
	emu_next(d);
	return 0;
}

/* POPF: what may change depends on CPL and IOPL (SDM vol. 2 POPF, Table 4-15). */
static int emu_popf(const struct insn *d, struct bt_fault *f)
{
	int size = d->i.operand_width / 8;
	uint32_t esp = gr(BT_ESP), m = (rt.cpu->seg[BT_SS].attr & BT_SEG_DB) ? ~0u : 0xffffu;
	uint32_t v = 0, mask = 0x3f7fd5u & ~(FL_VM | FL_VIF | FL_VIP | FL_IOPL | FL_IF | FL_RF);
	unsigned cpl = rt.cpu->cpl, iopl = (vcpu_eflags() & FL_IOPL) >> 12;

	if (emu_mem_rw(BT_SS, esp & m, &v, (uint32_t)size, false, f))
		return -1;
	if (cpl == 0)
		mask |= FL_IOPL;
	if (cpl <= iopl)
		mask |= FL_IF;
	if (size == 2)
		mask &= 0xffff;
	vcpu_set_eflags(v, mask | FL_RF);
	set_gr(BT_ESP, (esp & ~m) | ((esp + (uint32_t)size) & m));
	emu_next(d);
	return 0;
}

int emu_sensitive(const struct insn *d, struct bt_fault *f)
{
	struct bt_vcpu *c = rt.cpu;
	uint32_t out[4];

	switch (d->i.mnemonic) {
	case ZYDIS_MNEMONIC_SGDT:
		if (store_table(d, c->gdt_base, c->gdt_limit, f))
			return -1;
		break;
	case ZYDIS_MNEMONIC_SIDT:
		if (store_table(d, c->idt_base, c->idt_limit, f))
			return -1;
		break;
	case ZYDIS_MNEMONIC_SLDT:
		if (store_word(d, c->ldtr.sel, f))
			return -1;
		break;
	case ZYDIS_MNEMONIC_STR:
		if (store_word(d, c->tr.sel, f))
			return -1;
		break;
	case ZYDIS_MNEMONIC_SMSW:
		if (store_word(d, d->op[0].type == ZYDIS_OPERAND_TYPE_MEMORY ? c->cr0 & 0xffff : c->cr0,
			       f))
			return -1;
		break;
	case ZYDIS_MNEMONIC_LAR: return emu_seg_query(d, Q_LAR, f);
	case ZYDIS_MNEMONIC_LSL: return emu_seg_query(d, Q_LSL, f);
	case ZYDIS_MNEMONIC_VERR: return emu_seg_query(d, Q_VERR, f);
	case ZYDIS_MNEMONIC_VERW: return emu_seg_query(d, Q_VERW, f);
	case ZYDIS_MNEMONIC_PUSHF:
	case ZYDIS_MNEMONIC_PUSHFD:
		return emu_pushf(d, f);
	case ZYDIS_MNEMONIC_POPF:
	case ZYDIS_MNEMONIC_POPFD:
		return emu_popf(d, f);
	case ZYDIS_MNEMONIC_CPUID:
		rt.st->insn[BT_I_CPUID]++;
		emu_cpuid(gr(BT_EAX), gr(BT_ECX), out);
		set_gr(BT_EAX, out[0]);
		set_gr(BT_EBX, out[1]);
		set_gr(BT_ECX, out[2]);
		set_gr(BT_EDX, out[3]);
		break;
	case ZYDIS_MNEMONIC_RDTSC: {
		uint64_t t;

		if ((c->cr4 & CR4_TSD) && c->cpl)
			return FAULT(f, EXC_GP, 0);
		t = rt_rdtsc();
		set_gr(BT_EAX, (uint32_t)t);
		set_gr(BT_EDX, (uint32_t)(t >> 32));
		break;
	}
	/* Not offered by this CPU's CPUID: #UD as on a CPU without them. */
	case ZYDIS_MNEMONIC_RDTSCP: case ZYDIS_MNEMONIC_RDPID:
	case ZYDIS_MNEMONIC_XGETBV: case ZYDIS_MNEMONIC_XSETBV:
	case ZYDIS_MNEMONIC_STAC: case ZYDIS_MNEMONIC_CLAC:
	case ZYDIS_MNEMONIC_MONITOR: case ZYDIS_MNEMONIC_MWAIT:
	case ZYDIS_MNEMONIC_MONITORX: case ZYDIS_MNEMONIC_MWAITX:
	case ZYDIS_MNEMONIC_VMCALL: case ZYDIS_MNEMONIC_VMMCALL:
	case ZYDIS_MNEMONIC_SYSENTER: case ZYDIS_MNEMONIC_SYSEXIT:
	case ZYDIS_MNEMONIC_SYSCALL: case ZYDIS_MNEMONIC_SYSRET:
	case ZYDIS_MNEMONIC_SWAPGS: case ZYDIS_MNEMONIC_INVPCID:
	case ZYDIS_MNEMONIC_UD0: case ZYDIS_MNEMONIC_UD1: case ZYDIS_MNEMONIC_UD2:
		rt.st->insn[BT_I_OTHER]++;
		return FAULT(f, EXC_UD, 0);
	default:
		return 1;
	}
	emu_next(d);
	return 0;
}
