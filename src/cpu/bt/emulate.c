/*
 * Trap-and-emulate: a guest instruction that faulted in host ring 3 (#GP for
 * privileged and selector-loading instructions, #UD, seccomp's SIGSYS for
 * INT 0x80, host #PF on memory that is not RAM) is decoded with Zydis and
 * done here, against the virtual CPU. Intel SDM vol. 2 (each instruction's
 * "Operation"), vol. 3 ch. 2 (system registers), ch. 5 (protection).
 */
#include <linux/audit.h>
#include <string.h>

#include "emulate.h"
#include "runtime.h"

static ZydisDecoder dec32, dec16;

void emu_init(void)
{
	ZydisDecoderInit(&dec32, ZYDIS_MACHINE_MODE_LEGACY_32, ZYDIS_STACK_WIDTH_32);
	ZydisDecoderInit(&dec16, ZYDIS_MACHINE_MODE_LEGACY_16, ZYDIS_STACK_WIDTH_16);
}

unsigned emu_cpl_acc(void)
{
	return rt.cpu->cpl == 3 ? ACC_U : 0;
}

/* Up to 15 bytes at CS:EIP; fewer if the second page faults (the decoder may not need it). */
int emu_fetch(uint8_t *buf, uint32_t *len, struct bt_fault *f)
{
	uint32_t la = seg_lin(BT_CS, g_eip()), first = 4096 - (la & 0xfff);
	struct bt_fault f2;

	if (first >= 15)
		first = 15;
	if (vmem_read(la, buf, first, emu_cpl_acc(), f))
		return -1;
	*len = first;
	if (first < 15 && !vmem_read(la + first, buf + first, 15 - first, emu_cpl_acc(), &f2))
		*len = 15;
	return 0;
}

/*
 * Decoded instructions by linear address: a Linux kernel entry and exit run
 * the same few emulated instructions (segment loads, IRET, MOV CR3) over and
 * over, and a full Zydis decode is a share of each callout worth saving
 * (HOST-FACTS.md: Zydis decodes 6.6-9.0 M instructions/s). An entry is
 * used only if the bytes fetched now are the bytes it was decoded from, in
 * the same mode — the decode depends on nothing else — so a guest that
 * rewrites or remaps its code gets the new instruction.
 */
#define DCACHE_SIZE 256u
static struct {
	uint32_t la;
	uint8_t mode; /* 0: empty; 16 or 32 */
	uint8_t len;
	uint8_t bytes[15];
	struct insn d;
} dcache[DCACHE_SIZE];

int emu_decode(struct insn *d, struct bt_fault *f)
{
	uint8_t buf[15];
	uint32_t len;
	bool is32 = rt.cpu->seg[BT_CS].attr & BT_SEG_DB;
	const ZydisDecoder *dec = is32 ? &dec32 : &dec16;
	uint32_t la = seg_lin(BT_CS, g_eip());
	typeof(&dcache[0]) e = &dcache[(la ^ (la >> 9)) % DCACHE_SIZE];

	if (emu_fetch(buf, &len, f))
		return -1;
	if (e->mode == (is32 ? 32 : 16) && e->la == la && e->len <= len &&
	    !memcmp(e->bytes, buf, e->len)) {
		*d = e->d;
		rt.st->decode_hits++;
		return 0;
	}
	if (ZYAN_FAILED(ZydisDecoderDecodeFull(dec, buf, len, &d->i, d->op))) {
		if (len < 15) /* the rest of the instruction is on a page that faults */
			return vmem_read(la + len, buf, 1, emu_cpl_acc(), f);
		f->vec = EXC_UD;
		f->has_err = false;
		return -1;
	}
	e->la = la;
	e->mode = is32 ? 32 : 16;
	e->len = d->i.length;
	memcpy(e->bytes, buf, d->i.length);
	e->d = *d;
	return 0;
}

/* General registers by Zydis name: index, size in bytes, bit shift (AH..BH). */
static int gpr(ZydisRegister r, unsigned *size, unsigned *shift)
{
	*shift = 0;
	if (r >= ZYDIS_REGISTER_EAX && r <= ZYDIS_REGISTER_EDI) {
		*size = 4;
		return r - ZYDIS_REGISTER_EAX;
	}
	if (r >= ZYDIS_REGISTER_AX && r <= ZYDIS_REGISTER_DI) {
		*size = 2;
		return r - ZYDIS_REGISTER_AX;
	}
	if (r >= ZYDIS_REGISTER_AL && r <= ZYDIS_REGISTER_BH) {
		*size = 1;
		if (r >= ZYDIS_REGISTER_AH) {
			*shift = 8;
			return r - ZYDIS_REGISTER_AH;
		}
		return r - ZYDIS_REGISTER_AL;
	}
	return -1;
}

uint32_t emu_reg_read(ZydisRegister r)
{
	unsigned size, shift;
	int i = gpr(r, &size, &shift);

	if (i < 0)
		return 0;
	return (gr(i) >> shift) & (size == 4 ? 0xffffffffu : (1u << (size * 8)) - 1);
}

void emu_reg_write(ZydisRegister r, uint32_t v)
{
	unsigned size, shift;
	int i = gpr(r, &size, &shift);
	uint32_t mask;

	if (i < 0)
		return;
	mask = (size == 4 ? 0xffffffffu : (1u << (size * 8)) - 1) << shift;
	set_gr(i, (gr(i) & ~mask) | ((v << shift) & mask));
}

int emu_sreg_of(ZydisRegister r)
{
	return r >= ZYDIS_REGISTER_ES && r <= ZYDIS_REGISTER_GS ? (int)(r - ZYDIS_REGISTER_ES) : -1;
}

uint32_t emu_ea(const struct insn *d, const ZydisDecodedOperand *o)
{
	uint32_t a = (uint32_t)o->mem.disp.value;

	if (o->mem.base != ZYDIS_REGISTER_NONE)
		a += emu_reg_read(o->mem.base);
	if (o->mem.index != ZYDIS_REGISTER_NONE)
		a += emu_reg_read(o->mem.index) * o->mem.scale;
	return d->i.address_width == 16 ? a & 0xffff : a;
}

/* One access to guest-physical memory that is not RAM: the monitor's devices answer. */
static void mmio(uint64_t pa, uint8_t *b, uint32_t n, bool write)
{
	struct bt_exit *e = &rt.sh->exit;

	rt.st->insn[BT_I_MEM]++;
	if (n != 1 && n != 2 && n != 4 && n != 8) {
		for (uint32_t i = 0; i < n; i++)
			mmio(pa + i, b + i, 1, write);
		return;
	}
	memset(e, 0, sizeof(*e));
	e->gpa = pa;
	e->size = n;
	e->is_write = write;
	if (write)
		memcpy(&e->data, b, n);
	e->irq_window = 0;
	rt_exit_wait(BT_EXIT_MMIO);
	if (!write)
		memcpy(b, (const void *)&rt.sh->resume.data, n);
}

/* A guest memory operand: segment checks with the guest's own limits, paging, RAM or MMIO. */
int emu_mem_rw(int sreg, uint32_t off, void *buf, uint32_t len, bool write, struct bt_fault *f)
{
	uint32_t la = seg_lin(sreg, off);
	unsigned acc = emu_cpl_acc() | (write ? ACC_W : 0);
	uint8_t *b = buf;

	if (!seg_check(sreg, off, len, write, f))
		return -1;
	while (len) {
		uint32_t n = 4096 - (la & 0xfff);
		uint64_t pa;
		void *p;

		if (n > len)
			n = len;
		if (mmu_translate(la, acc, &pa, f))
			return -1;
		p = mmu_phys(pa, n);
		if (p && write)
			mmu_note_write(pa);
		if (p && write)
			memcpy(p, b, n);
		else if (p)
			memcpy(b, p, n);
		else
			mmio(pa, b, n, write);
		la += n;
		b += n;
		len -= n;
	}
	return 0;
}

int emu_op_read(const struct insn *d, int i, uint32_t *v, struct bt_fault *f)
{
	const ZydisDecodedOperand *o = &d->op[i];

	*v = 0;
	switch (o->type) {
	case ZYDIS_OPERAND_TYPE_REGISTER:
		*v = emu_sreg_of(o->reg.value) >= 0 ? rt.cpu->seg[emu_sreg_of(o->reg.value)].sel
						: emu_reg_read(o->reg.value);
		return 0;
	case ZYDIS_OPERAND_TYPE_IMMEDIATE:
		*v = (uint32_t)o->imm.value.u;
		return 0;
	case ZYDIS_OPERAND_TYPE_MEMORY:
		return emu_mem_rw(emu_sreg_of(o->mem.segment), emu_ea(d, o), v, o->size / 8, false, f);
	default:
		return FAULT(f, EXC_UD, 0);
	}
}

int emu_op_write(const struct insn *d, int i, uint32_t v, struct bt_fault *f)
{
	const ZydisDecodedOperand *o = &d->op[i];

	if (o->type == ZYDIS_OPERAND_TYPE_REGISTER) {
		emu_reg_write(o->reg.value, v);
		return 0;
	}
	if (o->type == ZYDIS_OPERAND_TYPE_MEMORY)
		return emu_mem_rw(emu_sreg_of(o->mem.segment), emu_ea(d, o), &v, o->size / 8, true, f);
	return FAULT(f, EXC_UD, 0);
}

void emu_next(const struct insn *d)
{
	uint32_t eip = g_eip() + d->i.length;

	set_eip((rt.cpu->seg[BT_CS].attr & BT_SEG_DB) ? eip : eip & 0xffff);
}

/* Port I/O through the monitor: count elements of size bytes in iobuf. */
static void io_exit(uint16_t port, unsigned size, uint32_t count, bool write)
{
	struct bt_exit *e = &rt.sh->exit;

	memset(e, 0, sizeof(*e));
	e->port = port;
	e->size = size;
	e->count = count;
	e->is_write = write;
	e->irq_window = 0;
	rt_exit_wait(BT_EXIT_IO);
}

static int emu_in_out(const struct insn *d, bool in, struct bt_fault *f)
{
	const ZydisDecodedOperand *port_op = &d->op[in ? 1 : 0], *val_op = &d->op[in ? 0 : 1];
	unsigned size = val_op->size / 8;
	uint16_t port = port_op->type == ZYDIS_OPERAND_TYPE_IMMEDIATE ? (uint16_t)port_op->imm.value.u
								       : (uint16_t)gr(BT_EDX);
	uint32_t v = 0;

	if (vcpu_io_allowed(port, size, f))
		return -1;
	rt.st->insn[in ? BT_I_IN : BT_I_OUT]++;
	if (!in) {
		v = emu_reg_read(val_op->reg.value);
		memcpy(rt.sh->iobuf, &v, size);
	}
	io_exit(port, size, 1, !in);
	if (in) {
		memcpy(&v, rt.sh->iobuf, size);
		emu_reg_write(val_op->reg.value, v);
	}
	emu_next(d);
	return 0;
}

/* INS/OUTS, with REP: in chunks through iobuf; ECX/ESI/EDI always say how far we got. */
static int emu_string_io(const struct insn *d, bool in, unsigned size, struct bt_fault *f)
{
	bool rep = d->i.attributes & (ZYDIS_ATTRIB_HAS_REP | ZYDIS_ATTRIB_HAS_REPE |
				      ZYDIS_ATTRIB_HAS_REPNE);
	bool a32 = d->i.address_width == 32;
	uint32_t amask = a32 ? 0xffffffffu : 0xffffu, done_total = 0;
	uint16_t port = (uint16_t)gr(BT_EDX);
	int sreg = in ? BT_ES : BT_DS, idx = in ? BT_EDI : BT_ESI;
	int32_t step = (vcpu_eflags() & FL_DF) ? -(int32_t)size : (int32_t)size;

	if (!in && (d->i.attributes & ZYDIS_ATTRIB_HAS_SEGMENT))
		for (int i = 0; i < d->i.operand_count; i++)
			if (d->op[i].type == ZYDIS_OPERAND_TYPE_MEMORY)
				sreg = emu_sreg_of(d->op[i].mem.segment);
	if (vcpu_io_allowed(port, size, f))
		return -1;
	rt.st->insn[in ? BT_I_INS : BT_I_OUTS]++;
	for (;;) {
		uint32_t count = rep ? gr(BT_ECX) & amask : 1, n = 0, addr = gr(idx) & amask;
		uint32_t max = BT_IOBUF_SIZE / size;
		struct bt_fault f2 = { .vec = -1 };

		if (!count || done_total >= 65536)
			break;
		if (count > max)
			count = max;
		/* gather (OUTS) or probe (INS) every element before the port is touched */
		for (; n < count; n++) {
			uint32_t off = (addr + (uint32_t)step * n) & amask;
			uint64_t pa;

			if (!seg_check(sreg, off, size, in, &f2) ||
			    mmu_translate(seg_lin(sreg, off), emu_cpl_acc() | (in ? ACC_W : 0), &pa, &f2))
				break;
			if (!in && emu_mem_rw(sreg, off, rt.sh->iobuf + n * size, size, false, &f2))
				break;
		}
		if (n) {
			io_exit(port, size, n, !in);
			for (uint32_t i = 0; in && i < n; i++)
				emu_mem_rw(sreg, (addr + (uint32_t)step * i) & amask, rt.sh->iobuf + i * size,
				       size, true, &f2);
			set_gr(idx, (gr(idx) & ~amask) | ((addr + (uint32_t)step * n) & amask));
			if (rep)
				set_gr(BT_ECX, (gr(BT_ECX) & ~amask) | ((gr(BT_ECX) - n) & amask));
			done_total += n;
		}
		if (f2.vec >= 0) {
			*f = f2;
			return -1;
		}
		if (!rep)
			break;
	}
	if (!rep || !(gr(BT_ECX) & amask))
		emu_next(d); /* else EIP stays: the next trap continues (interrupts can come in between) */
	return 0;
}

int emu_sel_operand(const struct insn *d, int i, uint16_t *sel, struct bt_fault *f)
{
	uint32_t v;
	const ZydisDecodedOperand *o = &d->op[i];

	if (o->type == ZYDIS_OPERAND_TYPE_MEMORY)
		return emu_mem_rw(emu_sreg_of(o->mem.segment), emu_ea(d, o), sel, 2, false, f);
	if (emu_op_read(d, i, &v, f))
		return -1;
	*sel = (uint16_t)v;
	return 0;
}

/* LLDT, LTR (SDM vol. 2): a system descriptor from the GDT. */
static int load_system(bool tr, uint16_t sel, struct bt_fault *f)
{
	struct bt_seg s;
	uint64_t d;
	unsigned type;

	if (!(sel & ~3u)) {
		if (tr)
			return FAULT(f, EXC_GP, 0);
		memset(&rt.cpu->ldtr, 0, sizeof(rt.cpu->ldtr));
		return 0;
	}
	if (sel & 4)
		return FAULT(f, EXC_GP, sel & ~3u);
	if (seg_read_desc(sel, &d, f))
		return -1;
	seg_from_desc(&s, sel, d);
	type = BT_SEG_TYPE(s.attr);
	if ((s.attr & BT_SEG_S) || (tr ? (type != 1 && type != 9) : type != 2))
		return FAULT(f, EXC_GP, sel & ~3u);
	if (!(s.attr & BT_SEG_P))
		return FAULT(f, EXC_NP, sel & ~3u);
	if (tr) {
		uint8_t access = (uint8_t)(d >> 40) | 2; /* busy */

		if (vmem_write(rt.cpu->gdt_base + (sel & ~7u) + 5, &access, 1, 0, f))
			return -1;
		s.attr |= 2;
		rt.cpu->tr = s;
	} else {
		rt.cpu->ldtr = s;
	}
	return 0;
}

/* MOV to CR3 (and the pv ABI's SET_CR3): non-global translations go (SDM vol. 3 §4.10.4.1). */
void emu_load_cr3(uint32_t v)
{
	rt.cpu->cr3 = v;
	rt.st->cr3_loads++;
	tcrun_cr3_loaded();
	if (rt.cpu->cr0 & CR0_PG)
		mmu_cr3_loaded();
}

static int write_cr(unsigned n, uint32_t v, struct bt_fault *f)
{
	struct bt_vcpu *c = rt.cpu;
	uint32_t old0 = c->cr0, old4 = c->cr4;
	const uint32_t cr4_ok = CR4_TSD | CR4_DE | CR4_PSE | CR4_PGE | CR4_PCE | CR4_OSFXSR |
				CR4_OSXMMEXCPT;

	switch (n) {
	case 0:
		if ((v & CR0_PG && !(v & CR0_PE)) || (v & CR0_NW && !(v & CR0_CD)))
			return FAULT(f, EXC_GP, 0);
		if (!(v & CR0_PE))
			rt_fatal(BT_EXIT_FAULT, "bt: the guest left protected mode (CR0.PE=0); real "
						"mode is not supported");
		c->cr0 = (v & (CR0_PE | CR0_MP | CR0_EM | CR0_TS | CR0_NE | CR0_WP | CR0_AM |
			       CR0_NW | CR0_CD | CR0_PG)) | CR0_ET;
		mmu_cr_changed(old0, old4);
		return 0;
	case 2:
		c->cr2 = v;
		return 0;
	case 3:
		emu_load_cr3(v);
		return 0;
	case 4:
		if (v & ~cr4_ok)
			return FAULT(f, EXC_GP, 0); /* PAE, VME, MCE, ... are not offered by CPUID */
		c->cr4 = v;
		if ((old4 ^ v) & CR4_PGE)
			rt.st->pge_toggles++;
		mmu_cr_changed(old0, old4);
		return 0;
	}
	f->vec = EXC_UD;
	f->has_err = false;
	return -1;
}

static int read_cr(unsigned n, uint32_t *v, struct bt_fault *f)
{
	struct bt_vcpu *c = rt.cpu;

	switch (n) {
	case 0: *v = c->cr0; return 0;
	case 2: *v = c->cr2; return 0;
	case 3: *v = c->cr3; return 0;
	case 4: *v = c->cr4; return 0;
	}
	f->vec = EXC_UD;
	f->has_err = false;
	return -1;
}

static int dr_index(unsigned n, struct bt_fault *f)
{
	if ((n == 4 || n == 5) && (rt.cpu->cr4 & CR4_DE)) {
		f->vec = EXC_UD;
		f->has_err = false;
		return -1;
	}
	return n == 4 ? 6 : n == 5 ? 7 : (int)n;
}

/* MOV to or from CRn, DRn, or a segment register. */
static int emu_mov(const struct insn *d, struct bt_fault *f)
{
	ZydisRegister r0 = d->op[0].type == ZYDIS_OPERAND_TYPE_REGISTER ? d->op[0].reg.value : 0;
	ZydisRegister r1 = d->op[1].type == ZYDIS_OPERAND_TYPE_REGISTER ? d->op[1].reg.value : 0;
	bool cpl0 = rt.cpu->cpl == 0;
	uint32_t v;
	int n;

	if (emu_sreg_of(r0) >= 0) { /* MOV Sreg, r/m16 */
		uint16_t sel;

		if (r0 == ZYDIS_REGISTER_CS)
			return FAULT(f, EXC_UD, 0);
		if (emu_sel_operand(d, 1, &sel, f) || seg_load(emu_sreg_of(r0), sel, f))
			return -1;
		rt.st->insn[BT_I_SREG]++;
		emu_next(d);
		return 0;
	}
	if (r0 >= ZYDIS_REGISTER_CR0 && r0 <= ZYDIS_REGISTER_CR15) {
		if (!cpl0)
			return FAULT(f, EXC_GP, 0);
		rt.st->insn[BT_I_MOVCR]++;
		if (write_cr(r0 - ZYDIS_REGISTER_CR0, emu_reg_read(r1), f))
			return -1;
		emu_next(d);
		return 0;
	}
	if (r1 >= ZYDIS_REGISTER_CR0 && r1 <= ZYDIS_REGISTER_CR15) {
		if (!cpl0)
			return FAULT(f, EXC_GP, 0);
		rt.st->insn[BT_I_MOVCR]++;
		if (read_cr(r1 - ZYDIS_REGISTER_CR0, &v, f))
			return -1;
		emu_reg_write(r0, v);
		emu_next(d);
		return 0;
	}
	if (r0 >= ZYDIS_REGISTER_DR0 && r0 <= ZYDIS_REGISTER_DR7) {
		if (!cpl0)
			return FAULT(f, EXC_GP, 0);
		if ((n = dr_index(r0 - ZYDIS_REGISTER_DR0, f)) < 0)
			return -1;
		rt.st->insn[BT_I_MOVDR]++;
		v = emu_reg_read(r1);
		rt.cpu->dr[n] = n == 6 ? (v & 0xf00f) | 0xffff0ff0u : n == 7 ? (v & ~0xd000u) | 0x400 : v;
		emu_next(d);
		return 0;
	}
	if (r1 >= ZYDIS_REGISTER_DR0 && r1 <= ZYDIS_REGISTER_DR7) {
		if (!cpl0)
			return FAULT(f, EXC_GP, 0);
		if ((n = dr_index(r1 - ZYDIS_REGISTER_DR0, f)) < 0)
			return -1;
		rt.st->insn[BT_I_MOVDR]++;
		emu_reg_write(r0, rt.cpu->dr[n]);
		emu_next(d);
		return 0;
	}
	return 1; /* an ordinary MOV: see emu_memory */
}

/*
 * An instruction with a memory operand that could not run natively: past a
 * limit we truncated below BT_TOP, on page 0 we may not map, or on MMIO.
 * 0 done, -1 with a guest fault, 1 not an instruction we emulate.
 */
static int emu_memory(const struct insn *d, struct bt_fault *f)
{
	uint32_t v;

	switch (d->i.mnemonic) {
	case ZYDIS_MNEMONIC_MOV:
		if (emu_op_read(d, 1, &v, f) || emu_op_write(d, 0, v, f))
			return -1;
		break;
	case ZYDIS_MNEMONIC_MOVZX:
	case ZYDIS_MNEMONIC_MOVSX:
		if (emu_op_read(d, 1, &v, f))
			return -1;
		if (d->i.mnemonic == ZYDIS_MNEMONIC_MOVSX)
			v = d->op[1].size == 8 ? (uint32_t)(int32_t)(int8_t)v
					       : (uint32_t)(int32_t)(int16_t)v;
		if (emu_op_write(d, 0, v, f))
			return -1;
		break;
	default:
		return 1;
	}
	rt.st->insn[BT_I_MEM]++;
	emu_next(d);
	return 0;
}

static int emu_far(const struct insn *d, struct bt_fault *f)
{
	int opsize = d->i.operand_width / 8;
	const ZydisDecodedOperand *o = &d->op[0];
	uint16_t sel;
	uint32_t off, ret = g_eip() + d->i.length;

	rt.st->insn[BT_I_FAR]++;
	if (d->i.mnemonic == ZYDIS_MNEMONIC_RET) {
		uint32_t imm = o->type == ZYDIS_OPERAND_TYPE_IMMEDIATE ? (uint32_t)o->imm.value.u : 0;
		return vcpu_far_ret(opsize, imm, f);
	}
	if (o->type == ZYDIS_OPERAND_TYPE_POINTER) {
		sel = o->ptr.segment;
		off = o->ptr.offset;
	} else if (o->type == ZYDIS_OPERAND_TYPE_MEMORY) {
		uint32_t a = emu_ea(d, o);
		int s = emu_sreg_of(o->mem.segment);

		off = 0;
		if (emu_mem_rw(s, a, &off, (uint32_t)opsize, false, f) ||
		    emu_mem_rw(s, a + (uint32_t)opsize, &sel, 2, false, f))
			return -1;
	} else {
		return FAULT(f, EXC_UD, 0);
	}
	if (d->i.mnemonic == ZYDIS_MNEMONIC_JMP)
		return vcpu_far_jmp(sel, off, opsize, f);
	return vcpu_far_call(sel, off, opsize == 2 ? ret & 0xffff : ret, opsize, f);
}

/* POP Sreg; LDS/LES/LFS/LGS/LSS. */
static int emu_sreg_load(const struct insn *d, struct bt_fault *f)
{
	int opsize = d->i.operand_width / 8;
	uint16_t sel;
	uint32_t off = 0;

	rt.st->insn[BT_I_SREG]++;
	if (d->i.mnemonic == ZYDIS_MNEMONIC_POP) {
		int s = emu_sreg_of(d->op[0].reg.value);
		uint32_t esp = gr(BT_ESP), m = (rt.cpu->seg[BT_SS].attr & BT_SEG_DB) ? ~0u : 0xffff;
		uint32_t v = 0;

		if (emu_mem_rw(BT_SS, esp & m, &v, (uint32_t)opsize, false, f) ||
		    seg_load(s, (uint16_t)v, f))
			return -1;
		set_gr(BT_ESP, (esp & ~m) | ((esp + (uint32_t)opsize) & m));
		emu_next(d);
		return 0;
	}
	static const struct { ZydisMnemonic m; int sreg; } lxs[] = {
		{ ZYDIS_MNEMONIC_LDS, BT_DS }, { ZYDIS_MNEMONIC_LES, BT_ES },
		{ ZYDIS_MNEMONIC_LFS, BT_FS }, { ZYDIS_MNEMONIC_LGS, BT_GS },
		{ ZYDIS_MNEMONIC_LSS, BT_SS },
	};
	for (unsigned i = 0; i < sizeof(lxs) / sizeof(lxs[0]); i++) {
		if (lxs[i].m != d->i.mnemonic)
			continue;
		const ZydisDecodedOperand *o = &d->op[1];
		uint32_t a = emu_ea(d, o);
		int s = emu_sreg_of(o->mem.segment);

		if (emu_mem_rw(s, a, &off, (uint32_t)opsize, false, f) ||
		    emu_mem_rw(s, a + (uint32_t)opsize, &sel, 2, false, f) || seg_load(lxs[i].sreg, sel, f))
			return -1;
		emu_reg_write(d->op[0].reg.value, off);
		emu_next(d);
		return 0;
	}
	return 1;
}

/* The system instructions of CPL 0 (and CLI/STI, IOPL-sensitive). 1: not one of them. */
static int emu_system(const struct insn *d, struct bt_fault *f)
{
	struct bt_vcpu *c = rt.cpu;
	bool cpl0 = c->cpl == 0;
	unsigned iopl = (vcpu_eflags() & FL_IOPL) >> 12;
	uint32_t v;
	uint64_t msr;
	uint16_t sel;
	int r;

	switch (d->i.mnemonic) {
	case ZYDIS_MNEMONIC_CLI:
	case ZYDIS_MNEMONIC_STI: {
		bool sti = d->i.mnemonic == ZYDIS_MNEMONIC_STI, was = vcpu_eflags() & FL_IF;

		if (c->cpl > iopl)
			return FAULT(f, EXC_GP, 0);
		rt.st->insn[sti ? BT_I_STI : BT_I_CLI]++;
		vcpu_set_eflags(sti ? FL_IF : 0, FL_IF);
		emu_next(d);
		if (sti && !was)
			vcpu_shadow();
		return 0;
	}
	case ZYDIS_MNEMONIC_IN:
	case ZYDIS_MNEMONIC_OUT:
		return emu_in_out(d, d->i.mnemonic == ZYDIS_MNEMONIC_IN, f);
	case ZYDIS_MNEMONIC_INSB: return emu_string_io(d, true, 1, f);
	case ZYDIS_MNEMONIC_INSW: return emu_string_io(d, true, 2, f);
	case ZYDIS_MNEMONIC_INSD: return emu_string_io(d, true, 4, f);
	case ZYDIS_MNEMONIC_OUTSB: return emu_string_io(d, false, 1, f);
	case ZYDIS_MNEMONIC_OUTSW: return emu_string_io(d, false, 2, f);
	case ZYDIS_MNEMONIC_OUTSD: return emu_string_io(d, false, 4, f);
	case ZYDIS_MNEMONIC_IRET:
	case ZYDIS_MNEMONIC_IRETD:
		rt.st->insn[BT_I_IRET]++;
		r = vcpu_iret(d->i.mnemonic == ZYDIS_MNEMONIC_IRET ? 2 : 4, f);
		if (!r)
			mmu_fault_returned(); /* at the CPL the IRET went to (U: after the hand-over) */
		return r;
	case ZYDIS_MNEMONIC_INT:
		rt.st->insn[BT_I_INT]++;
		emu_next(d);
		if ((uint8_t)d->op[0].imm.value.u == PV_INT_VECTOR && pv_bt_call())
			return 0; /* a hypercall (pv.c) */
		vcpu_interrupt((uint8_t)d->op[0].imm.value.u, true);
		return 0;
	case ZYDIS_MNEMONIC_INT3:
		rt.st->insn[BT_I_INT]++;
		emu_next(d);
		vcpu_interrupt(EXC_BP, true);
		return 0;
	case ZYDIS_MNEMONIC_INTO:
		rt.st->insn[BT_I_INT]++;
		emu_next(d);
		if (vcpu_eflags() & 0x800)
			vcpu_interrupt(EXC_OF, true);
		return 0;
	case ZYDIS_MNEMONIC_INT1: /* ICEBP: a #DB trap without the gate's DPL check */
		rt.st->insn[BT_I_INT]++;
		emu_next(d);
		vcpu_raise(EXC_DB, false, 0);
		return 0;
	default:
		break;
	}
	if (d->i.mnemonic == ZYDIS_MNEMONIC_MOV)
		return emu_mov(d, f);
	if (d->i.meta.branch_type == ZYDIS_BRANCH_TYPE_FAR &&
	    (d->i.mnemonic == ZYDIS_MNEMONIC_JMP || d->i.mnemonic == ZYDIS_MNEMONIC_CALL ||
	     d->i.mnemonic == ZYDIS_MNEMONIC_RET))
		return emu_far(d, f);
	if ((d->i.mnemonic == ZYDIS_MNEMONIC_POP && emu_sreg_of(d->op[0].reg.value) >= 0) ||
	    d->i.mnemonic == ZYDIS_MNEMONIC_LDS || d->i.mnemonic == ZYDIS_MNEMONIC_LES ||
	    d->i.mnemonic == ZYDIS_MNEMONIC_LFS || d->i.mnemonic == ZYDIS_MNEMONIC_LGS ||
	    d->i.mnemonic == ZYDIS_MNEMONIC_LSS)
		return emu_sreg_load(d, f);

	switch (d->i.mnemonic) {
	case ZYDIS_MNEMONIC_HLT:
	case ZYDIS_MNEMONIC_LGDT:
	case ZYDIS_MNEMONIC_LIDT:
	case ZYDIS_MNEMONIC_LLDT:
	case ZYDIS_MNEMONIC_LTR:
	case ZYDIS_MNEMONIC_CLTS:
	case ZYDIS_MNEMONIC_LMSW:
	case ZYDIS_MNEMONIC_INVLPG:
	case ZYDIS_MNEMONIC_RDMSR:
	case ZYDIS_MNEMONIC_WRMSR:
	case ZYDIS_MNEMONIC_WBINVD:
	case ZYDIS_MNEMONIC_INVD:
		if (!cpl0)
			return FAULT(f, EXC_GP, 0);
		break;
	case ZYDIS_MNEMONIC_RDPMC:
		if (!cpl0 && !(c->cr4 & CR4_PCE))
			return FAULT(f, EXC_GP, 0);
		rt.st->insn[BT_I_OTHER]++;
		set_gr(BT_EAX, 0); /* no performance counters are virtualized */
		set_gr(BT_EDX, 0);
		emu_next(d);
		return 0;
	default:
		return 1;
	}
	switch (d->i.mnemonic) {
	case ZYDIS_MNEMONIC_HLT:
		rt.st->insn[BT_I_HLT]++;
		emu_next(d);
		vcpu_halt();
		return 0;
	case ZYDIS_MNEMONIC_LGDT:
	case ZYDIS_MNEMONIC_LIDT: {
		const ZydisDecodedOperand *o = &d->op[0];
		bool gdt = d->i.mnemonic == ZYDIS_MNEMONIC_LGDT;
		uint16_t limit;
		uint32_t base;

		if (o->type != ZYDIS_OPERAND_TYPE_MEMORY)
			return FAULT(f, EXC_UD, 0);
		if (emu_mem_rw(emu_sreg_of(o->mem.segment), emu_ea(d, o), &limit, 2, false, f) ||
		    emu_mem_rw(emu_sreg_of(o->mem.segment), emu_ea(d, o) + 2, &base, 4, false, f))
			return -1;
		if (d->i.operand_width == 16)
			base &= 0xffffff;
		rt.st->insn[gdt ? BT_I_LGDT : BT_I_LIDT]++;
		if (gdt) {
			c->gdt_base = base;
			c->gdt_limit = limit;
		} else {
			c->idt_base = base;
			c->idt_limit = limit;
		}
		break;
	}
	case ZYDIS_MNEMONIC_LLDT:
	case ZYDIS_MNEMONIC_LTR: {
		bool tr = d->i.mnemonic == ZYDIS_MNEMONIC_LTR;

		rt.st->insn[tr ? BT_I_LTR : BT_I_LLDT]++;
		if (emu_sel_operand(d, 0, &sel, f) || load_system(tr, sel, f))
			return -1;
		break;
	}
	case ZYDIS_MNEMONIC_CLTS:
		rt.st->insn[BT_I_CLTS]++;
		c->cr0 &= ~CR0_TS;
		break;
	case ZYDIS_MNEMONIC_LMSW:
		rt.st->insn[BT_I_LMSW]++;
		if (emu_op_read(d, 0, &v, f))
			return -1;
		/* PE can be set but not cleared; MP, EM, TS are loaded */
		if (write_cr(0, (c->cr0 & ~0xeu) | (v & 0xf) | (c->cr0 & CR0_PE), f))
			return -1;
		break;
	case ZYDIS_MNEMONIC_INVLPG:
		rt.st->insn[BT_I_INVLPG]++;
		mmu_invlpg(seg_lin(emu_sreg_of(d->op[0].mem.segment), emu_ea(d, &d->op[0])));
		break;
	case ZYDIS_MNEMONIC_RDMSR:
		rt.st->insn[BT_I_RDMSR]++;
		if (emu_rdmsr(gr(BT_ECX), &msr))
			return FAULT(f, EXC_GP, 0);
		set_gr(BT_EAX, (uint32_t)msr);
		set_gr(BT_EDX, (uint32_t)(msr >> 32));
		break;
	case ZYDIS_MNEMONIC_WRMSR:
		rt.st->insn[BT_I_WRMSR]++;
		if (emu_wrmsr(gr(BT_ECX), (uint64_t)gr(BT_EDX) << 32 | gr(BT_EAX)))
			return FAULT(f, EXC_GP, 0);
		break;
	default: /* WBINVD, INVD: the guest's caches are the host's, coherent */
		rt.st->insn[BT_I_WBINVD]++;
		break;
	}
	emu_next(d);
	return 0;
}

/*
 * A pv guest's translated ring 3 runs with its segments cut at the guest's
 * USER_LIMIT (segments.c), so an access from there up that emu_memory does
 * not emulate (ADD to memory, a string instruction...) arrives as #GP. On
 * the guest's CPU it is a #PF: every page there is supervisor-only
 * (docs/pv.md). The walk gives it, with CR2 at the first byte at or above the
 * limit and the error code's P as the guest's tables say. 1: no operand
 * reaches the limit, the #GP is the guest's own.
 */
static int emu_user_limit(const struct insn *d, struct bt_fault *f)
{
	uint32_t ul = rt.sh->pv.user_limit;
	uint64_t pa;

	if (!ul || rt.cpu->cpl != 3 || !(rt.cpu->cr0 & CR0_PG))
		return 1;
	for (unsigned i = 0; i < d->i.operand_count; i++) {
		const ZydisDecodedOperand *o = &d->op[i];
		int sreg;
		uint32_t ea, la, last, len = o->size >= 8 ? o->size / 8 : 1;
		bool write = o->actions & ZYDIS_OPERAND_ACTION_MASK_WRITE;
		struct bt_fault sf;

		if (o->type != ZYDIS_OPERAND_TYPE_MEMORY || o->mem.type != ZYDIS_MEMOP_TYPE_MEM)
			continue;
		sreg = emu_sreg_of(o->mem.segment);
		ea = emu_ea(d, o);
		la = seg_lin(sreg, ea);
		last = la + len - 1;
		if (la < ul && last < ul && last >= la)
			continue;
		/*
		 * Segmentation comes before paging (SDM vol. 3 §3.4.5, ch. 5): past
		 * the guest's own limit, through a null or read-only segment, the
		 * #GP is the guest's, wherever the linear address lies.
		 */
		if (!seg_check(sreg, ea, len, write, &sf))
			return 1;
		if (mmu_translate(la < ul ? ul : la, ACC_U | (write ? ACC_W : 0), &pa, f))
			return -1;
	}
	return 1;
}

/* Host #GP (SIGSEGV, trap 13) in guest code. */
void emu_gp(uint32_t err)
{
	struct insn d;
	struct bt_fault f = { .vec = -1 };
	int r;

	if (emu_decode(&d, &f)) {
		vcpu_exception(&f);
		return;
	}
	r = emu_system(&d, &f);
	if (r == 1)
		r = emu_memory(&d, &f);
	if (r == 1)
		r = emu_user_limit(&d, &f);
	if (r == 1) {
		/* not ours to emulate: the guest's own #GP (a limit, a null segment, ...) */
		rt.st->exc[EXC_GP]++;
		FAULT(&f, EXC_GP, err & 0xfffc);
		r = -1;
	}
	if (r < 0)
		vcpu_exception(&f);
}

/* A callout from translated code: emulate the guest instruction at EIP, whatever it is. */
void emu_insn(void)
{
	struct insn d;
	struct bt_fault f = { .vec = -1 };
	int r;

	if (emu_decode(&d, &f)) {
		vcpu_exception(&f);
		return;
	}
	r = emu_system(&d, &f);
	if (r == 1)
		r = emu_sensitive(&d, &f);
	if (r == 1)
		r = emu_memory(&d, &f);
	if (r == 1 && tcrun_step_direct()) {
		rt.st->insn[BT_I_OTHER]++;
		return;
	}
	if (r == 1) {
		char name[32];

		rt_snprintf(name, sizeof(name), "%s", ZydisMnemonicGetString(d.i.mnemonic));
		rt_fatal(BT_EXIT_FAULT, "bt: the runtime cannot emulate %s at %#x (a translator callout)",
			 name, g_eip());
	}
	if (r < 0)
		vcpu_exception(&f);
}

/* A host #PF on guest-physical memory that is not RAM (MMIO), or page 0 we could not map. */
void emu_mem_fault(uint64_t pa)
{
	struct insn d;
	struct bt_fault f = { .vec = -1 };
	int r;

	(void)pa;
	if (emu_decode(&d, &f)) {
		vcpu_exception(&f);
		return;
	}
	r = emu_memory(&d, &f);
	if (r == 1) {
		char name[32];

		rt_snprintf(name, sizeof(name), "%s", ZydisMnemonicGetString(d.i.mnemonic));
		rt_fatal(BT_EXIT_FAULT,
			 "bt: %s at %#x accesses guest-physical %#llx (MMIO or unmappable); only "
			 "MOV, MOVZX and MOVSX are emulated there",
			 name, g_eip(), (unsigned long long)pa);
	}
	if (r < 0)
		vcpu_exception(&f);
}

/* SIGILL: #UD in guest code. */
void emu_ud(void)
{
	rt.st->exc[EXC_UD]++;
	vcpu_raise(EXC_UD, false, 0);
}

/*
 * SIGSYS from seccomp: the guest made a 32-bit system call. It never reaches
 * the host. INT 0x80 becomes the guest's vector 0x80. A compatibility-mode
 * SYSCALL cannot be resumed: Linux treats it as its vDSO's fast system call
 * and replaces EIP with its int80 landing pad and ECX with EBP, so the guest's
 * return address is gone. This CPU does not offer SYSCALL (CPUID), so only a
 * broken or hostile guest gets here: the VM stops.
 */
void emu_syscall(int arch, int nr)
{
	uint8_t b[2] = { 0, 0 };
	struct bt_fault f;
	uint32_t eip = g_eip();

	rt.st->insn[BT_I_SYSCALL]++;
	if (arch == (int)AUDIT_ARCH_I386)
		vmem_read(seg_lin(BT_CS, eip - 2), b, 2, emu_cpl_acc(), &f);
	if (b[0] == 0xcd && b[1] == 0x80) {
		vcpu_interrupt(0x80, true);
		return;
	}
	rt_fatal(BT_EXIT_ESCAPE,
		 "bt: the guest tried to escape its sandbox: a host system call (%d) by SYSCALL "
		 "or SYSENTER, which this CPU does not offer; VM stopped",
		 nr);
}
