/*
 * The translator: one guest basic block of 32-bit kernel code into TC code that runs in host
 * ring 3 (compatibility mode) with %gs on the runtime's state. Ident instructions are copied;
 * branches are chained or looked up inline; CLI/STI/PUSHF/POPF and segment-register reads
 * are inline sequences on the virtual CPU; the rest calls out. Intel SDM vol. 2 (encodings,
 * §2.1), vol. 3A §6.8.3 (interrupt shadows); VMware's BT (Adams & Agesen, ASPLOS 2006).
 */
#include <errno.h>
#include <string.h>
#include <x86intrin.h>

#include "decode.h"
#include "tcache.h"

#define PAGE_SIZE 4096u
#define FETCH_CHUNK 256u
#define R(r) (1u << (r))

/* One block being translated. */
struct xl {
	struct tcache *tc;
	struct tc_block *b;
	struct bt_mode mode;
	bool primary;	     /* the inline indirect-branch table may be used */
	uint8_t *code;	     /* host view of the block's first TC byte */
	uint32_t pos;	     /* TC bytes emitted */
	/* Guest bytes from the block's first EIP: have of them, page_end of them in page 1. */
	uint32_t la0, have, page_end;
	int fetch_err;
	uint32_t fetch_err_la;
	/* The instruction being translated. */
	uint32_t eip;
	const struct bt_insn *in;
	uint8_t shadow;
	/* Where each exit was made, for its stub's mark. */
	uint16_t exit_goff[4];
	uint8_t exit_len[4];
};

/* --- emitting ------------------------------------------------------------------------------ */

static void e8(struct xl *x, uint8_t v)
{
	x->code[x->pos++] = v;
}

static void e16(struct xl *x, uint16_t v)
{
	memcpy(x->code + x->pos, &v, 2);
	x->pos += 2;
}

static void e32(struct xl *x, uint32_t v)
{
	memcpy(x->code + x->pos, &v, 4);
	x->pos += 4;
}

static void ebytes(struct xl *x, const void *p, unsigned n)
{
	memcpy(x->code + x->pos, p, n);
	x->pos += n;
}

static uint32_t here(const struct xl *x)
{
	return x->b->tc + x->pos;
}

static uint32_t scratch(const struct xl *x, unsigned slot)
{
	return x->tc->cfg.state.scratch + slot;
}

/* mov %reg, %gs:off — 65 89 /r with ModRM mod 00 rm 101: disp32 (SDM vol. 2 table 2-2) */
static void gs_store(struct xl *x, unsigned reg, uint32_t off)
{
	e8(x, 0x65), e8(x, 0x89), e8(x, (uint8_t)(reg << 3 | 5)), e32(x, off);
}

/* mov %gs:off, %reg */
static void gs_load(struct xl *x, unsigned reg, uint32_t off)
{
	e8(x, 0x65), e8(x, 0x8b), e8(x, (uint8_t)(reg << 3 | 5)), e32(x, off);
}

/* movl $imm, %gs:off */
static void gs_store_imm(struct xl *x, uint32_t off, uint32_t imm)
{
	e8(x, 0x65), e8(x, 0xc7), e8(x, 0x05), e32(x, off), e32(x, imm);
}

static void spill(struct xl *x, unsigned reg)
{
	gs_store(x, reg, scratch(x, BT_SCRATCH_REG(reg)));
}

static void fill(struct xl *x, unsigned reg)
{
	gs_load(x, reg, scratch(x, BT_SCRATCH_REG(reg)));
}

/* A short forward branch: returns where its rel8 is, for land(). */
static uint32_t jump8(struct xl *x, uint8_t opcode)
{
	e8(x, opcode), e8(x, 0);
	return x->pos - 1;
}

static void land(struct xl *x, uint32_t rel8_at)
{
	/* every rel8 the translator emits spans fixed sequences below 128 bytes (tests check) */
	x->code[rel8_at] = (uint8_t)(x->pos - (rel8_at + 1));
}

/* --- the side table ------------------------------------------------------------------------ */

static void mark(struct xl *x, enum bt_site_kind kind, uint8_t restore, uint8_t flags)
{
	struct tc_block *b = x->b;
	struct tc_mark *m = &b->marks[b->nmarks];

	if (b->nmarks && b->marks[b->nmarks - 1].tc_off == x->pos)
		m--; /* an empty run: the new mark replaces it */
	else
		b->nmarks++;
	*m = (struct tc_mark){
		.tc_off = (uint16_t)x->pos,
		.guest_off = (uint16_t)(x->eip - b->eip),
		.len = (uint8_t)(x->in ? x->in->len : 0),
		.kind = (uint8_t)kind,
		.action = (uint8_t)(x->in ? x->in->action : BT_ACT_NONE),
		.restore = restore,
		.flags = (uint8_t)(flags | x->shadow),
		.exit = 0xff,
		.resume_off = TC_NO_RESUME,
	};
}

static struct tc_mark *last_mark(struct xl *x)
{
	return &x->b->marks[x->b->nmarks - 1];
}

/* The callout: a site the runtime finds by its first byte (translate.h). Returns its mark. */
static struct tc_mark *callout(struct xl *x, enum bt_site_kind kind, uint8_t flags)
{
	const struct bt_state_layout *st = &x->tc->cfg.state;
	struct tc_mark *m;

	mark(x, kind, 0, flags);
	m = last_mark(x);
	if (x->tc->cfg.callout == BT_CALLOUT_FARJMP) {
		gs_store_imm(x, st->callout_site, here(x));
		e8(x, 0x65), e8(x, 0xff), e8(x, 0x2d), e32(x, st->callout_far); /* ljmp *m16:32 */
	} else {
		e8(x, 0xcc);
	}
	return m;
}

/* A direct exit: a rel32 to the exit's stub, patched later when chained. */
static unsigned new_exit(struct xl *x, uint32_t target)
{
	struct tc_block *b = x->b;
	unsigned i = b->nexits++;

	b->exits[i] = (struct tc_exit){ .target = target, .patch = here(x) - 4, .from = b };
	x->exit_goff[i] = (uint16_t)(x->eip - b->eip);
	x->exit_len[i] = (uint8_t)(x->in ? x->in->len : 0);
	return i;
}

static unsigned jmp_exit(struct xl *x, uint32_t target)
{
	e8(x, 0xe9), e32(x, 0);
	return new_exit(x, target);
}

/* Stubs go after the block's code: each is a BT_SITE_CHAIN callout. */
static void emit_stubs(struct xl *x)
{
	struct tc_block *b = x->b;
	uint32_t save_eip = x->eip;
	const struct bt_insn *save_in = x->in;

	x->in = NULL;
	x->shadow = 0;
	for (unsigned i = 0; i < b->nexits; i++) {
		struct tc_exit *e = &b->exits[i];
		uint32_t rel;

		e->stub = here(x);
		rel = e->stub - (e->patch + 4);
		memcpy(x->code + (e->patch - b->tc), &rel, 4);
		struct tc_mark *m;

		x->eip = b->eip + x->exit_goff[i];
		m = callout(x, BT_SITE_CHAIN, BT_SITE_EXACT | TC_MARK_AT_TARGET);
		m->len = x->exit_len[i];
		m->exit = (uint8_t)i;
	}
	x->eip = save_eip;
	x->in = save_in;
}

/* --- guest bytes --------------------------------------------------------------------------- */

/* Make guest bytes [0, upto) of the block available, not past the first page. */
static void fetch_upto(struct xl *x, uint32_t upto)
{
	struct tc_block *b = x->b;

	if (upto > x->page_end)
		upto = x->page_end;
	while (x->have < upto && !x->fetch_err) {
		uint32_t n = x->page_end - x->have;
		uint64_t gpa;
		int r;

		if (n > FETCH_CHUNK)
			n = FETCH_CHUNK;
		r = x->tc->cfg.fetch(x->tc->cfg.ctx, x->la0 + x->have, x->tc->fetch_buf + x->have,
				     n, &gpa);
		if (r < 0) {
			x->fetch_err = r;
			x->fetch_err_la = x->la0 + x->have;
			break;
		}
		if (x->have == 0) {
			b->phys[0].page = gpa & ~(uint64_t)(PAGE_SIZE - 1);
			b->lin[0].page = x->la0 & ~(PAGE_SIZE - 1);
			b->npages = 1;
		}
		x->have += n;
	}
}

/* The first bytes of the second page, for an instruction that crosses into it. */
static int fetch_next_page(struct xl *x)
{
	struct tc_block *b = x->b;
	uint32_t la = x->la0 + x->page_end;
	uint64_t gpa;
	int r;

	if (x->have > x->page_end)
		return 0;
	r = x->tc->cfg.fetch(x->tc->cfg.ctx, la, x->tc->fetch_buf + x->have, 16, &gpa);
	if (r < 0) {
		x->fetch_err_la = la;
		return r;
	}
	b->phys[1].page = gpa & ~(uint64_t)(PAGE_SIZE - 1);
	b->lin[1].page = la;
	x->have += 16;
	return 0;
}

/* Decode the instruction at block offset off: 0, -EFAULT (*fault_la), -EILSEQ or -E2BIG. */
static int fetch_decode(struct xl *x, uint32_t off, struct bt_insn *in, uint32_t *fault_la)
{
	int r;

	fetch_upto(x, off + ZYDIS_MAX_INSTRUCTION_LENGTH);
	if (off >= x->have) {
		*fault_la = x->fetch_err_la;
		return -EFAULT;
	}
	r = bt_decode(x->tc->fetch_buf + off, x->have - off, x->b->eip + off, x->mode.flags, in);
	if (r == -EAGAIN && !x->fetch_err && x->have == x->page_end) {
		if (fetch_next_page(x) < 0) {
			*fault_la = x->fetch_err_la;
			return -EFAULT;
		}
		r = bt_decode(x->tc->fetch_buf + off, x->have - off, x->b->eip + off,
			      x->mode.flags, in);
	}
	if (r == -EAGAIN) {
		*fault_la = x->fetch_err ? x->fetch_err_la : x->la0 + x->have;
		return -EFAULT;
	}
	if (r == 0 && off + in->len > x->page_end)
		x->b->npages = 2;
	return r;
}

/* --- operands ------------------------------------------------------------------------------ */

/* The guest's prefixes that still apply to a rewritten ModRM operand: segment overrides
 * (never %cs or %gs here, decode.c sends those to the runtime) and the address size. */
static void operand_prefixes(struct xl *x)
{
	const ZydisDecodedInstruction *zi = &x->in->zi;

	for (unsigned i = 0; i < zi->raw.prefix_count; i++) {
		uint8_t p = zi->raw.prefixes[i].value;
		if (p == 0x26 || p == 0x36 || p == 0x3e || p == 0x64 || p == 0x67)
			e8(x, p);
	}
}

/* The guest's ModRM operand (ModRM, SIB, displacement) with reg as the ModRM reg field. */
static void operand_modrm(struct xl *x, const uint8_t *guest, unsigned reg)
{
	const ZydisDecodedInstruction *zi = &x->in->zi;
	unsigned at = zi->raw.modrm.offset;
	unsigned end = zi->raw.imm[0].size ? zi->raw.imm[0].offset : zi->length;

	e8(x, (uint8_t)((guest[at] & 0xc7) | reg << 3));
	ebytes(x, guest + at + 1, end - at - 1);
}

/* A register among EAX..EBX that the memory operand does not use. */
static unsigned free_reg(const struct bt_insn *in)
{
	unsigned used = 0;

	for (unsigned i = 0; i < in->nops; i++) {
		const ZydisDecodedOperand *op = &in->ops[i];
		if (op->type != ZYDIS_OPERAND_TYPE_MEMORY)
			continue;
		if (op->mem.base != ZYDIS_REGISTER_NONE)
			used |= R(ZydisRegisterGetId(op->mem.base));
		if (op->mem.index != ZYDIS_REGISTER_NONE)
			used |= R(ZydisRegisterGetId(op->mem.index));
	}
	for (unsigned r = BT_EAX; r <= BT_EBX; r++)
		if (!(used & R(r)))
			return r;
	return BT_EBX; /* unreachable: an operand uses at most two registers */
}

/* --- control flow -------------------------------------------------------------------------- */

/*
 * The inline indirect-branch lookup (tcache.h). On entry: ECX and EDX spilled, EDX = guest
 * target. Flags are never touched: MOVZWL, MOV, LEA, JECXZ. `call` pushes the guest return
 * address and `ret_pop` drops the return address once the target is known, so that until the
 * last instruction a fault or interrupt can restart the guest instruction.
 */
/* The indirect branch's effect on the stack, done last: CALL pushes the guest's return EIP,
 * RET drops ret_pop bytes (its return address and imm16). */
static void branch_commit(struct xl *x, bool call, uint32_t ret_pop)
{
	uint32_t ret = x->eip + x->in->len;

	if (call && (x->in->flags & BT_INSN_OSIZE16))
		e8(x, 0x66), e8(x, 0x68), e16(x, (uint16_t)ret); /* pushw $ret */
	else if (call)
		e8(x, 0x68), e32(x, ret);			  /* push $ret */
	if (ret_pop)
		ebytes(x, "\x8d\xa4\x24", 3), e32(x, ret_pop);  /* lea n(%esp), %esp */
}

/* Probe inline-table entry (target & 0xffff) + way: jecxz to a hit, returned for land(). */
static uint32_t ibl_probe(struct xl *x, uint32_t way)
{
	ebytes(x, "\x0f\xb7\xca", 3);			/* movzwl %dx, %ecx */
	ebytes(x, "\x65\x8b\x0c\xcd", 4);		/* mov %gs:ibl+8*way(,%ecx,8), %ecx */
	e32(x, x->tc->ibl_gs + 8 * way);
	ebytes(x, "\x8d\x0c\x11", 3);			/* lea (%ecx,%edx), %ecx */
	return jump8(x, 0xe3);				/* jecxz hit */
}

/* A hit in entry (target & 0xffff) + way: jump to its TC address. */
static void ibl_hit(struct xl *x, uint32_t way, bool call, uint32_t ret_pop)
{
	mark(x, BT_SITE_INLINE, R(BT_ECX) | R(BT_EDX), BT_SITE_EXACT);
	ebytes(x, "\x0f\xb7\xca", 3);			/* movzwl %dx, %ecx */
	ebytes(x, "\x65\x8b\x0c\xcd", 4);		/* mov %gs:ibl+8*way+4(,%ecx,8), %ecx */
	e32(x, x->tc->ibl_gs + 8 * way + 4);
	gs_store(x, BT_ECX, scratch(x, BT_SCRATCH_JUMP));
	fill(x, BT_ECX);
	fill(x, BT_EDX);
	branch_commit(x, call, ret_pop);
	if (call || ret_pop)
		mark(x, BT_SITE_INLINE, 0, 0); /* the branch is half done: step to the target */
	e8(x, 0x65), e8(x, 0xff), e8(x, 0x25);		/* jmp *%gs:jump */
	e32(x, scratch(x, BT_SCRATCH_JUMP));
}

static void ibl(struct xl *x, bool call, uint32_t ret_pop)
{
	uint32_t hit0 = 0, hit1 = 0;

	if (x->primary) {
		hit0 = ibl_probe(x, 0);	/* the target's home entry */
		hit1 = ibl_probe(x, 1);	/* or the next one (tcache.h) */
	}
	/* Miss: the runtime translates the target (BT_SITE_INDIRECT). */
	gs_store(x, BT_EDX, scratch(x, BT_SCRATCH_TARGET));
	fill(x, BT_ECX);
	fill(x, BT_EDX);
	branch_commit(x, call, ret_pop);
	callout(x, BT_SITE_INDIRECT, BT_SITE_EXACT);
	if (!x->primary)
		return;
	land(x, hit0);
	ibl_hit(x, 0, call, ret_pop);
	land(x, hit1);
	ibl_hit(x, 1, call, ret_pop);
}

static void xl_indirect(struct xl *x, const uint8_t *guest)
{
	const struct bt_insn *in = x->in;
	bool o16 = in->flags & BT_INSN_OSIZE16;

	mark(x, BT_SITE_INLINE, 0, BT_SITE_EXACT);
	spill(x, BT_ECX);
	spill(x, BT_EDX);
	mark(x, BT_SITE_INLINE, R(BT_ECX) | R(BT_EDX), BT_SITE_EXACT);
	if (in->branch == BT_BR_RET) {
		uint32_t imm = in->zi.raw.imm[0].size ? (uint32_t)in->zi.raw.imm[0].value.u : 0;
		if (o16)
			ebytes(x, "\x0f\xb7\x14\x24", 4); /* movzwl (%esp), %edx */
		else
			ebytes(x, "\x8b\x14\x24", 3);	  /* mov (%esp), %edx */
		ibl(x, false, (o16 ? 2 : 4) + imm);
		return;
	}
	/* JMP/CALL r/m: the target into EDX through the guest's own operand. */
	operand_prefixes(x);
	if (o16)
		e8(x, 0x0f), e8(x, 0xb7); /* movzwl r/m16, %edx */
	else
		e8(x, 0x8b);		  /* mov r/m32, %edx */
	operand_modrm(x, guest, BT_EDX);
	ibl(x, in->branch == BT_BR_CALL_IND, 0);
}

/* Direct branches end the block with one or two exits (stubs until chained). */
static void xl_direct(struct xl *x)
{
	const struct bt_insn *in = x->in;
	uint32_t next = x->eip + in->len;
	unsigned i;

	mark(x, BT_SITE_INLINE, 0, BT_SITE_EXACT);
	switch (in->branch) {
	case BT_BR_CALL:
		if (in->flags & BT_INSN_OSIZE16)
			e8(x, 0x66), e8(x, 0x68), e16(x, (uint16_t)next);
		else
			e8(x, 0x68), e32(x, next);
		mark(x, BT_SITE_INLINE, 0, BT_SITE_EXACT | TC_MARK_AT_TARGET);
		i = jmp_exit(x, in->target);
		last_mark(x)->exit = (uint8_t)i;
		break;
	case BT_BR_JMP:
		jmp_exit(x, in->target);
		break;
	case BT_BR_JCC:
		e8(x, 0x0f), e8(x, 0x80 | (in->zi.opcode & 0xf)), e32(x, 0); /* jcc rel32 */
		new_exit(x, in->target);
		mark(x, BT_SITE_INLINE, 0, BT_SITE_EXACT | TC_MARK_AT_TARGET);
		i = jmp_exit(x, next);
		last_mark(x)->exit = (uint8_t)i;
		break;
	case BT_BR_LOOP:
		/* LOOPcc/JECXZ have rel8 only: branch over the fall-through jmp to the taken one.
		 * The address size picks CX or ECX; our targets are already computed. */
		if (in->flags & BT_INSN_ASIZE16)
			e8(x, 0x67);
		e8(x, in->zi.opcode), e8(x, 5);
		mark(x, BT_SITE_INLINE, 0, BT_SITE_EXACT | TC_MARK_AT_TARGET);
		i = jmp_exit(x, next);
		last_mark(x)->exit = (uint8_t)i;
		mark(x, BT_SITE_INLINE, 0, BT_SITE_EXACT | TC_MARK_AT_TARGET);
		i = jmp_exit(x, in->target);
		last_mark(x)->exit = (uint8_t)i;
		break;
	default:
		break;
	}
}

/* --- sensitive instructions inline ------------------------------------------------------------ */

/* After STI (IF is known set): if an interrupt is pending (irq_pending == BT_VIF), call out. */
static void irq_check(struct xl *x)
{
	const struct bt_state_layout *st = &x->tc->cfg.state;
	struct tc_mark *m;
	uint32_t deliver, done;

	mark(x, BT_SITE_INLINE, 0, BT_SITE_EXACT | TC_MARK_AT_NEXT);
	spill(x, BT_ECX);
	mark(x, BT_SITE_INLINE, R(BT_ECX), BT_SITE_EXACT | TC_MARK_AT_NEXT);
	gs_load(x, BT_ECX, st->irq_pending);
	ebytes(x, "\x8d\x89", 2), e32(x, -BT_VIF); /* lea -0x200(%ecx), %ecx */
	deliver = jump8(x, 0xe3);		    /* jecxz deliver */
	fill(x, BT_ECX);
	done = jump8(x, 0xeb);
	land(x, deliver);
	fill(x, BT_ECX);
	m = callout(x, BT_SITE_IRQ_WINDOW, BT_SITE_EXACT | TC_MARK_AT_NEXT);
	land(x, done);
	m->resume_off = (uint16_t)x->pos;
}

/*
 * PUSHF: the real flags (IF always 1 in ring 3, IOPL 0, AC kept 0) corrected by the virtual
 * ones, flags untouched: image = real - IF + vif + vflags (SDM vol. 2 PUSHF).
 */
static void xl_pushf(struct xl *x)
{
	const struct bt_state_layout *st = &x->tc->cfg.state;
	bool o16 = x->in->flags & BT_INSN_OSIZE16;

	mark(x, BT_SITE_INLINE, 0, BT_SITE_EXACT);
	if (o16)
		e8(x, 0x66);
	e8(x, 0x9c);
	mark(x, BT_SITE_INLINE, 0, 0);
	spill(x, BT_EAX);
	spill(x, BT_ECX);
	mark(x, BT_SITE_INLINE, R(BT_EAX) | R(BT_ECX), 0);
	ebytes(x, "\x8b\x04\x24", 3);			/* mov (%esp), %eax */
	gs_load(x, BT_ECX, st->vif);
	ebytes(x, "\x8d\x84\x08", 3), e32(x, -BT_VIF);	/* lea -0x200(%eax,%ecx), %eax */
	gs_load(x, BT_ECX, st->vflags);
	ebytes(x, "\x8d\x04\x08", 3);			/* lea (%eax,%ecx), %eax */
	if (o16)
		e8(x, 0x66);
	ebytes(x, "\x89\x04\x24", 3);			/* mov %eax, (%esp) */
	mark(x, BT_SITE_INLINE, R(BT_EAX) | R(BT_ECX), BT_SITE_EXACT | TC_MARK_AT_NEXT);
	fill(x, BT_EAX);
	fill(x, BT_ECX);
	mark(x, BT_SITE_INLINE, 0, BT_SITE_EXACT | TC_MARK_AT_NEXT);
}

/*
 * POPFD at CPL 0: IF goes to the virtual IF, IOPL to vflags, and the rest to the real flags by
 * a real POPF of the guest's own stack slot (ring 3 ignores IF and IOPL). A value with AC or
 * TF set calls out: AC would turn on ring-3 alignment checks, TF would step translated code.
 */
static void xl_popf(struct xl *x)
{
	const struct bt_state_layout *st = &x->tc->cfg.state;
	const uint8_t spilled = R(BT_EAX) | R(BT_ECX);
	struct tc_mark *irq, *emul;
	uint32_t slow, deliver, done, rel;

	mark(x, BT_SITE_INLINE, 0, BT_SITE_EXACT);
	spill(x, BT_EAX);
	spill(x, BT_ECX);
	mark(x, BT_SITE_INLINE, spilled, BT_SITE_EXACT);
	ebytes(x, "\x8b\x04\x24", 3);		/* mov (%esp), %eax: may fault */
	mark(x, BT_SITE_INLINE, spilled, 0);	/* flags clobbered from here */
	e8(x, 0xa9), e32(x, 0x40100);		/* test $(AC|TF), %eax */
	e8(x, 0x0f), e8(x, 0x85), e32(x, 0);	/* jnz slow */
	slow = x->pos - 4;
	ebytes(x, "\x89\xc1", 2);		/* mov %eax, %ecx */
	ebytes(x, "\x81\xe1", 2), e32(x, 0x200); /* and $IF, %ecx */
	gs_store(x, BT_ECX, st->vif);
	e8(x, 0x25), e32(x, 0x3000);		/* and $IOPL, %eax */
	gs_store(x, BT_EAX, st->vflags);
	e8(x, 0x9d);				/* popf: reads what we just read */
	mark(x, BT_SITE_INLINE, spilled, BT_SITE_EXACT | TC_MARK_AT_NEXT);
	gs_load(x, BT_EAX, st->vif);
	gs_load(x, BT_ECX, st->irq_pending);
	ebytes(x, "\x8d\x8c\x08", 3), e32(x, -2 * BT_VIF); /* lea -0x400(%eax,%ecx), %ecx */
	fill(x, BT_EAX);
	deliver = jump8(x, 0xe3);		/* jecxz deliver */
	fill(x, BT_ECX);
	done = jump8(x, 0xeb);
	land(x, deliver);
	fill(x, BT_ECX);
	irq = callout(x, BT_SITE_IRQ_WINDOW, BT_SITE_EXACT | TC_MARK_AT_NEXT);
	rel = x->pos - (slow + 4);
	memcpy(x->code + slow, &rel, 4);
	mark(x, BT_SITE_INLINE, spilled, 0);
	fill(x, BT_EAX);
	fill(x, BT_ECX);
	/* The arithmetic flags are clobbered here, but the POPF overwrites them all. */
	emul = callout(x, BT_SITE_EMULATE, 0);
	land(x, done);
	irq->resume_off = emul->resume_off = (uint16_t)x->pos;
	mark(x, BT_SITE_INLINE, 0, BT_SITE_EXACT | TC_MARK_AT_NEXT);
}

/* MOV Sreg to a register or memory, PUSH Sreg: the guest's selector from state.sel. */
static void xl_sreg_read(struct xl *x, const uint8_t *guest)
{
	const struct bt_insn *in = x->in;
	uint32_t sel = x->tc->cfg.state.sel;
	bool o16 = in->flags & BT_INSN_OSIZE16;

	mark(x, BT_SITE_INLINE, 0, BT_SITE_EXACT);
	if (in->zi.mnemonic == ZYDIS_MNEMONIC_PUSH) {
		unsigned s = in->ops[0].reg.value - ZYDIS_REGISTER_ES;
		if (o16)
			e8(x, 0x66);
		e8(x, 0x65), e8(x, 0xff), e8(x, 0x35), e32(x, sel + 4 * s); /* push %gs:sel[s] */
	} else if (in->ops[0].type == ZYDIS_OPERAND_TYPE_REGISTER) {
		unsigned s = in->ops[1].reg.value - ZYDIS_REGISTER_ES;
		if (o16)
			e8(x, 0x66);
		gs_load(x, (unsigned)ZydisRegisterGetId(in->ops[0].reg.value), sel + 4 * s);
	} else {
		/* Memory: always a 16-bit store (SDM vol. 2 MOV), through a free register. */
		unsigned s = in->ops[1].reg.value - ZYDIS_REGISTER_ES;
		unsigned r = free_reg(in);
		spill(x, r);
		mark(x, BT_SITE_INLINE, (uint8_t)R(r), BT_SITE_EXACT);
		gs_load(x, r, sel + 4 * s);
		e8(x, 0x66);
		operand_prefixes(x);
		e8(x, 0x89);
		operand_modrm(x, guest, r);
		mark(x, BT_SITE_INLINE, (uint8_t)R(r), BT_SITE_EXACT | TC_MARK_AT_NEXT);
		fill(x, r);
	}
	mark(x, BT_SITE_INLINE, 0, BT_SITE_EXACT | TC_MARK_AT_NEXT);
}

static void xl_callout(struct xl *x);

/*
 * MOV r16/r32 to DS/ES/FS/GS, and POP of them, at CPL 0: skipped inline when the selector is
 * the one loaded and its GDT descriptor still holds what was loaded (translate.h
 * BT_FASTSEG_*), else the emulate callout. The compares use LEA and JECXZ, which leave the
 * guest's flags alone. The selector and descriptor reads may fault like the load's own would:
 * the site is exact at the instruction, with EAX, ECX and EDX in scratch.
 */
static bool xl_sreg_load(struct xl *x)
{
	const struct bt_insn *in = x->in;
	const uint8_t spilled = R(BT_EAX) | R(BT_ECX) | R(BT_EDX);
	bool pop = in->zi.mnemonic == ZYDIS_MNEMONIC_POP;
	ZydisRegister sreg = in->ops[0].reg.value;
	uint32_t key = x->tc->cfg.state.fastseg + BT_FASTSEG_SIZE * (sreg - ZYDIS_REGISTER_ES);
	uint32_t miss[3], done;

	if ((x->mode.flags & BT_MODE_CPL) ||
	    (sreg != ZYDIS_REGISTER_DS && sreg != ZYDIS_REGISTER_ES && sreg != ZYDIS_REGISTER_FS &&
	     sreg != ZYDIS_REGISTER_GS) ||
	    (in->flags & BT_INSN_ASIZE16) || (!pop && in->ops[1].type != ZYDIS_OPERAND_TYPE_REGISTER))
		return false;
	mark(x, BT_SITE_INLINE, 0, BT_SITE_EXACT);
	spill(x, BT_EAX);
	spill(x, BT_ECX);
	spill(x, BT_EDX);
	mark(x, BT_SITE_INLINE, spilled, BT_SITE_EXACT);
	if (pop && (in->flags & BT_INSN_OSIZE16))
		ebytes(x, "\x0f\xb7\x04\x24", 4); /* movzwl (%esp), %eax: may fault */
	else if (pop)
		ebytes(x, "\x8b\x04\x24", 3);	   /* mov (%esp), %eax: reads the 4 bytes the POP
						      reads; upper bits that are not 0 miss */
	else
		e8(x, 0x0f), e8(x, 0xb7),	   /* movzwl %r16, %eax */
			e8(x, (uint8_t)(0xc0 | ZydisRegisterGetId(in->ops[1].reg.value)));
	gs_load(x, BT_ECX, key + BT_FASTSEG_NEGSEL);
	ebytes(x, "\x8d\x0c\x08", 3);	   /* lea (%eax,%ecx), %ecx */
	ebytes(x, "\xe3\x02", 2);		   /* jecxz +2 */
	miss[0] = jump8(x, 0xeb);
	gs_load(x, BT_ECX, key + BT_FASTSEG_LA);
	ebytes(x, "\x2e\x8b\x01", 3);	   /* mov %cs:(%ecx), %eax: may fault */
	ebytes(x, "\x2e\x8b\x49\x04", 4);	   /* mov %cs:4(%ecx), %ecx */
	gs_load(x, BT_EDX, key + BT_FASTSEG_NEGHI);
	ebytes(x, "\x8d\x0c\x11", 3);	   /* lea (%ecx,%edx), %ecx */
	ebytes(x, "\xe3\x02", 2);
	miss[1] = jump8(x, 0xeb);
	gs_load(x, BT_ECX, key + BT_FASTSEG_NEGLO);
	ebytes(x, "\x8d\x0c\x08", 3);	   /* lea (%eax,%ecx), %ecx */
	ebytes(x, "\xe3\x02", 2);
	miss[2] = jump8(x, 0xeb);
	fill(x, BT_EAX);
	fill(x, BT_ECX);
	fill(x, BT_EDX);
	mark(x, BT_SITE_INLINE, 0, BT_SITE_EXACT);
	if (pop)
		ebytes(x, (in->flags & BT_INSN_OSIZE16) ? "\x8d\x64\x24\x02" : "\x8d\x64\x24\x04",
		       4);			   /* lea 2 or 4(%esp), %esp */
	done = jump8(x, 0xeb);
	for (int i = 0; i < 3; i++)
		land(x, miss[i]);
	mark(x, BT_SITE_INLINE, spilled, BT_SITE_EXACT);
	fill(x, BT_EAX);
	fill(x, BT_ECX);
	fill(x, BT_EDX);
	xl_callout(x);
	land(x, done);
	mark(x, BT_SITE_INLINE, 0, BT_SITE_EXACT | TC_MARK_AT_NEXT);
	return true;
}

/* Callouts that end the block but may fall through get a chainable exit to resume at. */
static bool falls_through(enum bt_action a, const struct bt_insn *in)
{
	switch (a) {
	case BT_ACT_INT:
	case BT_ACT_IRET:
	case BT_ACT_FAR_BRANCH:
	case BT_ACT_SYSENTER:
	case BT_ACT_UD:
		return false;
	case BT_ACT_SEG_ACCESS:
		return in->zi.meta.branch_type == ZYDIS_BRANCH_TYPE_NONE;
	default:
		return true;
	}
}

static void xl_callout(struct xl *x)
{
	const struct bt_insn *in = x->in;
	struct tc_mark *m = callout(x, BT_SITE_EMULATE, BT_SITE_EXACT);

	if (!(in->flags & BT_INSN_ENDS_BLOCK)) {
		m->resume_off = (uint16_t)x->pos;
	} else if (falls_through(in->action, in)) {
		m->resume_off = (uint16_t)x->pos;
		mark(x, BT_SITE_INLINE, 0, BT_SITE_EXACT | TC_MARK_AT_TARGET);
		last_mark(x)->exit = (uint8_t)jmp_exit(x, x->eip + in->len);
	}
	x->tc->stats.callout_sites++;
}

/* Inline where the mode allows it (CPL 0 for IF), else a callout. Returns true if inlined. */
static bool xl_sensitive(struct xl *x, const uint8_t *guest)
{
	const struct bt_insn *in = x->in;
	bool cpl0 = (x->mode.flags & BT_MODE_CPL) == 0;

	x->tc->stats.by_action[in->action]++;
	switch (in->action) {
	case BT_ACT_CLI:
	case BT_ACT_STI:
		if (!cpl0)
			break;
		mark(x, BT_SITE_INLINE, 0, BT_SITE_EXACT);
		gs_store_imm(x, x->tc->cfg.state.vif, in->action == BT_ACT_STI ? BT_VIF : 0);
		mark(x, BT_SITE_INLINE, 0, BT_SITE_EXACT | TC_MARK_AT_NEXT);
		return true;
	case BT_ACT_PUSHF:
		xl_pushf(x);
		return true;
	case BT_ACT_POPF:
		if (!cpl0 || (in->flags & BT_INSN_OSIZE16))
			break;
		xl_popf(x);
		return true;
	case BT_ACT_SREG_READ:
		xl_sreg_read(x, guest);
		return true;
	case BT_ACT_SREG_LOAD:
		if (xl_sreg_load(x))
			return true;
		break;
	default:
		break;
	}
	xl_callout(x);
	return false;
}

static void xl_ident(struct xl *x, const uint8_t *guest)
{
	mark(x, BT_SITE_IDENT, 0, BT_SITE_EXACT);
	ebytes(x, guest, x->in->len);
}

/* --- blocks -------------------------------------------------------------------------------- */

static void fall_through_exit(struct xl *x, uint32_t next)
{
	x->eip = next;
	x->in = NULL;
	mark(x, BT_SITE_INLINE, 0, BT_SITE_EXACT);
	jmp_exit(x, next);
}

/*
 * STI's interrupt shadow (SDM vol. 3A §6.8.3): an interrupt made deliverable by STI is taken
 * after the next instruction. So the pending check goes after that instruction, or right after
 * the STI when a branch or the block end follows (the interrupt then returns to the branch). A
 * callout needs none (the runtime checks after emulating), nor CLI, STI and POPF inline (IF
 * is clear again, or they check themselves).
 */
static bool check_after(const struct bt_insn *in, bool inlined)
{
	if (in->cls == BT_CLASS_IDENT)
		return true;
	if (in->cls != BT_CLASS_SENSITIVE || !inlined)
		return false;
	return in->action != BT_ACT_CLI && in->action != BT_ACT_STI && in->action != BT_ACT_POPF;
}

static int translate_block(struct tcache *tc, struct tc_block *b, uint32_t *fault_la)
{
	struct xl x = { .tc = tc, .b = b, .mode = b->mode, .primary = tc_mode_primary(b->mode) };
	struct bt_insn insns[2]; /* this one and the one before (x.in until the next starts) */
	uint32_t off = 0;
	bool after_sti = false;

	x.code = tc_host(tc, b->tc);
	x.la0 = b->mode.cs_base + b->eip;
	x.page_end = PAGE_SIZE - (x.la0 & (PAGE_SIZE - 1));
	for (unsigned n = 0;; n++) {
		struct bt_insn *in = &insns[n & 1];
		bool inlined = false, last = false;
		int r;

		/* End at the limits, and before the first instruction of the next page. */
		if (n == tc->max_insns || off >= x.page_end || x.pos > TC_BLOCK_CODE - TC_INSN_CODE ||
		    b->nmarks > TC_BLOCK_MARKS - TC_INSN_MARKS)
			r = 1;
		else
			r = fetch_decode(&x, off, in, fault_la);
		if (r != 0 && n == 0) {
			if (r == -EFAULT)
				tc->stats.fetch_faults++;
			else
				tc->stats.undecodable++;
			return r;
		}
		if (after_sti && (r != 0 || in->cls == BT_CLASS_BRANCH)) {
			irq_check(&x);
			after_sti = false;
		}
		if (r != 0) {
			/* The rest (or a fault, or #UD) is for the next block to meet. */
			fall_through_exit(&x, b->eip + off);
			break;
		}
		x.eip = b->eip + off;
		x.in = in;
		x.shadow = after_sti ? BT_SITE_SHADOW : 0;
		switch (in->cls) {
		case BT_CLASS_IDENT:
			xl_ident(&x, tc->fetch_buf + off);
			break;
		case BT_CLASS_BRANCH:
			if (in->branch >= BT_BR_JMP_IND)
				xl_indirect(&x, tc->fetch_buf + off);
			else
				xl_direct(&x);
			last = true;
			break;
		case BT_CLASS_SENSITIVE:
			inlined = xl_sensitive(&x, tc->fetch_buf + off);
			last = in->flags & BT_INSN_ENDS_BLOCK;
			break;
		}
		x.shadow = 0;
		if (after_sti && check_after(in, inlined))
			irq_check(&x);
		after_sti = inlined && in->action == BT_ACT_STI;
		tc->stats.insns++;
		off += in->len;
		if (last)
			break;
	}
	x.in = NULL;
	emit_stubs(&x);
	b->guest_len = off;
	b->tc_len = x.pos;
	return 0;
}

int bt_translate(struct tcache *tc, uint32_t eip, struct bt_mode mode, uint32_t *tc_addr,
		 uint32_t *fault_la)
{
	struct tc_block *b;
	uint64_t t0;
	int r;

	b = tc_find(tc, eip, mode);
	if (b) {
		tc_ibl_set(tc, b); /* an indirect branch missed it: it is hot now */
		*tc_addr = b->tc;
		return 0;
	}
	if ((mode.flags & (BT_MODE_CS32 | BT_MODE_SS32)) != (BT_MODE_CS32 | BT_MODE_SS32))
		return -EOPNOTSUPP;
	t0 = __rdtsc();
	tc_reserve(tc);
	b = &tc->blocks[tc->nblocks];
	*b = (struct tc_block){
		.eip = eip,
		.mode = mode,
		.tc = tc->code_guest + tc->code_used,
		.marks = &tc->marks[tc->nmarks],
		.exits = &tc->exits[tc->nexits],
	};
	r = translate_block(tc, b, fault_la);
	if (r == 0) {
		tc->nmarks += b->nmarks;
		tc->nexits += b->nexits;
		tc_commit(tc, b);
		tc->stats.blocks++;
		tc->stats.guest_bytes += b->guest_len;
		tc->stats.tc_bytes += b->tc_len;
		*tc_addr = b->tc;
	}
	tc->stats.translate_tsc += __rdtsc() - t0;
	return r;
}

int bt_chain(struct tcache *tc, uint32_t site_tc, struct bt_mode mode, uint32_t *tc_addr,
	     uint32_t *fault_la)
{
	struct tc_block *from = tc_block_at(tc, site_tc);
	uint32_t gen = tc->stats.generation, target;
	struct tc_exit *e = NULL;
	int r;

	if (!from)
		return -ENOENT;
	for (unsigned i = 0; i < from->nexits; i++)
		if (from->exits[i].stub == site_tc)
			e = &from->exits[i];
	if (!e)
		return -ENOENT;
	target = e->target;
	/* A direct branch stays in its block's mode. */
	r = bt_translate(tc, target, from->mode, tc_addr, fault_la);
	if (r == 0 && tc->stats.generation == gen)
		tc_chain(tc, e, tc_block_at(tc, *tc_addr));
	return r;
}
