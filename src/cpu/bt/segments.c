/*
 * Guest segments: descriptors read from the guest's GDT/LDT, the checks of a
 * segment-register load, and their mirrors in the child's LDT. The guest runs
 * at host CPL 3, so every mirror is a DPL-3 LDT descriptor with the guest's
 * base and type and a limit truncated below BT_TOP. Intel SDM vol. 3 ch. 3
 * (§3.4.5 descriptors), ch. 5 (§5.5-5.8 privilege checks); vol. 2 MOV, POP.
 */
#include <asm/ldt.h>
#include <string.h>
#include <sys/syscall.h>

#include "runtime.h"

/*
 * Real LDT slots, two per guest descriptor: guest GDT entry i is mirrored in
 * slot 2i for CPL 0-2 and in slot 2i + 1 for CPL 3, guest LDT entry i in slots
 * BT_LDT_SLOTS + 2i and + 2i + 1. A real selector is slot << 3 | TI | RPL 3.
 * The CPL-0 mirror ends below BT_TOP (the runtime's region is visible while
 * the guest runs at CPL 0); the CPL-3 mirror is the guest's descriptor as is,
 * because at CPL 3 the top region is PROT_NONE and a wrapping offset (i386
 * glibc's %gs:-0x38) must reach linear base - 0x38 as on a real CPU. Slot 0
 * (a null selector never needs one) is the translator's state segment.
 */
#define BT_LDT_SLOTS 4096
#define BT_SLOTS 8192

static uint64_t slot_desc[BT_SLOTS];  /* the descriptor we wrote into each slot */
static uint16_t slot_sel[BT_SLOTS];   /* the guest selector (with its RPL) it mirrors */
uint16_t rt_sel_out[4]; /* DS ES FS GS, loaded by rt_entry's tail */

static unsigned slot_of(uint16_t sel, bool cpl3)
{
	unsigned i = sel >> 3;

	return (sel & 4) ? BT_LDT_SLOTS + 2 * (i % (BT_LDT_SLOTS / 2)) + cpl3 : 2 * (i % 2048) + cpl3;
}

static uint16_t real_sel(unsigned slot)
{
	return (uint16_t)(slot << 3 | 7);
}

int seg_read_desc(uint16_t sel, uint64_t *desc, struct bt_fault *f)
{
	struct bt_vcpu *c = rt.cpu;
	uint32_t base, limit, off = sel & ~7u;

	if (sel & 4) {
		if (!c->ldtr.sel)
			return FAULT(f, EXC_GP, sel & ~3u);
		base = c->ldtr.base;
		limit = c->ldtr.limit;
	} else {
		base = c->gdt_base;
		limit = c->gdt_limit;
	}
	if (off + 7 > limit)
		return FAULT(f, EXC_GP, sel & ~3u);
	/* descriptor-table reads are supervisor accesses whatever the CPL */
	return vmem_read(base + off, desc, 8, 0, f);
}

void seg_from_desc(struct bt_seg *s, uint16_t sel, uint64_t d)
{
	uint32_t limit = (uint32_t)(d & 0xffff) | (uint32_t)((d >> 32) & 0xf0000);

	s->sel = sel;
	s->base = (uint32_t)((d >> 16) & 0xffffff) | (uint32_t)((d >> 32) & 0xff000000);
	s->attr = (uint16_t)(((d >> 40) & 0xff) | (((d >> 52) & 0xf) << 12));
	s->limit = (s->attr & BT_SEG_G) ? limit << 12 | 0xfff : limit;
}

/* The 8 bytes seg_from_desc would turn into *s. */
uint64_t seg_to_desc(const struct bt_seg *s)
{
	uint32_t limit = (s->attr & BT_SEG_G) ? s->limit >> 12 : s->limit;

	return (uint64_t)(limit & 0xffff) | (uint64_t)(s->base & 0xffffff) << 16 |
	       (uint64_t)(s->attr & 0xff) << 40 | (uint64_t)((limit >> 16) & 0xf) << 48 |
	       (uint64_t)((s->attr >> 12) & 0xf) << 52 | (uint64_t)(s->base >> 24) << 56;
}

/*
 * The translator's skipped reload (translate.h, BT_FASTSEG_*): for data segment register
 * sreg, the selector and descriptor bytes for which a load at CPL 0 would give exactly what
 * the register holds now and write nothing. Translated code compares the GDT's bytes at
 * load time; here only the register's own contents are checked, so nothing is read.
 */
void seg_fast_key(int sreg, uint32_t key[4])
{
	const struct bt_vcpu *c = rt.cpu;
	const struct bt_seg *s = &c->seg[sreg];
	unsigned rpl = s->sel & 3, type = BT_SEG_TYPE(s->attr);
	uint32_t off = s->sel & ~7u, la = c->gdt_base + off;
	struct bt_seg back;
	uint64_t d;

	key[BT_FASTSEG_NEGSEL / 4] = 0x80000000u; /* matches no selector */
	if (sreg == BT_CS || sreg == BT_SS || !off || (s->sel & 4) || off + 7 > c->gdt_limit ||
	    la > BT_TOP - 8)
		return;
	/* seg_load's checks at CPL 0; the accessed bit set, so the load writes nothing */
	if (!(s->attr & BT_SEG_S) || (type & 0xa) == 0x8 || !(s->attr & BT_SEG_P) ||
	    !(type & 1) || ((!(type & 8) || !(type & 4)) && rpl > BT_SEG_DPL(s->attr)))
		return;
	d = seg_to_desc(s);
	seg_from_desc(&back, s->sel, d);
	if (back.base != s->base || back.limit != s->limit || back.attr != s->attr)
		return; /* not what a load of d would give (a boot-time register, say) */
	key[BT_FASTSEG_NEGSEL / 4] = -(uint32_t)s->sel;
	key[BT_FASTSEG_LA / 4] = la;
	key[BT_FASTSEG_NEGLO / 4] = -(uint32_t)d;
	key[BT_FASTSEG_NEGHI / 4] = -(uint32_t)(d >> 32);
}

/* Set the accessed bit in the guest's descriptor, as the CPU does on a load. */
int seg_set_accessed(uint16_t sel, uint64_t desc)
{
	struct bt_fault f;
	struct bt_vcpu *c = rt.cpu;
	uint32_t base = (sel & 4) ? c->ldtr.base : c->gdt_base;
	uint8_t access = (uint8_t)(desc >> 40);

	if (access & 1)
		return 0;
	access |= 1;
	return vmem_write(base + (sel & ~7u) + 5, &access, 1, 0, &f);
}

/*
 * The DPL-3 descriptor that stands for guest segment s in the child, with
 * its limit truncated below top (BT_TOP, or a pv guest's USER_LIMIT for
 * translated ring 3) if truncate.
 */
static struct user_desc mirror_desc(unsigned slot, const struct bt_seg *s, bool truncate,
				    uint32_t top)
{
	struct user_desc u;
	unsigned type = BT_SEG_TYPE(s->attr);
	uint32_t limit = s->limit;

	memset(&u, 0, sizeof(u));
	u.entry_number = slot;
	u.base_addr = s->base;
	u.seg_32bit = !!(s->attr & BT_SEG_DB);
	if (type & 8) {
		u.contents = MODIFY_LDT_CONTENTS_CODE; /* conforming is not allowed: CPL is ours */
		u.read_exec_only = !(type & 2);
	} else {
		u.contents = (type & 4) ? MODIFY_LDT_CONTENTS_STACK : MODIFY_LDT_CONTENTS_DATA;
		u.read_exec_only = !(type & 2);
	}
	/*
	 * Keep [base, base + limit] below BT_TOP: the runtime owns the top. An
	 * expand-down segment's valid offsets run up to 4 GiB and cannot be
	 * truncated this way (docs/bt.md: not yet transparent). Above a pv
	 * guest's USER_LIMIT the kernel's pages are not hidden, so ring 3 gets
	 * an expand-down segment with no valid offset at all (limit 4 GiB - 1,
	 * SDM vol. 3 §5.3) for one of those, and for a data segment based at or
	 * above the limit, whose one-byte truncation below would leave its first
	 * byte reachable: every access through it traps and is emulated.
	 */
	if (!(type & 8) && ((type & 4) || s->base >= top) && truncate && top != BT_TOP) {
		u.contents = MODIFY_LDT_CONTENTS_STACK;
		u.seg_32bit = 1;
		u.limit = 0xfffff;
		u.limit_in_pages = 1;
		return u;
	}
	if ((!(type & 8) && (type & 4)) || !truncate) {
		u.limit = (s->attr & BT_SEG_G) ? limit >> 12 : limit;
		u.limit_in_pages = !!(s->attr & BT_SEG_G);
		return u;
	}
	if (s->base >= top)
		limit = 0; /* one byte: every access but the first traps and is emulated */
	else if (limit > top - 1 - s->base)
		limit = top - 1 - s->base;
	if (limit > 0xfffff) {
		u.limit = ((limit + 1) >> 12) - 1; /* round down: never reach past limit */
		u.limit_in_pages = 1;
	} else {
		u.limit = limit;
	}
	return u;
}

/* What a slot holds, as one comparable word (never 0: 0 marks a slot never written). */
static uint64_t key_of(const struct user_desc *u)
{
	uint32_t lo = u->limit << 8 | u->seg_32bit | u->contents << 1 | u->read_exec_only << 3 |
		      u->limit_in_pages << 4 | 0x80;

	return (uint64_t)u->base_addr << 32 | lo;
}

/* Make rt.real[sreg] a real selector whose descriptor mirrors cpu->seg[sreg]. */
static void mirror(int sreg)
{
	const struct bt_seg *s = &rt.cpu->seg[sreg];
	unsigned slot;
	struct user_desc u;
	uint64_t raw;

	if (!(s->sel & ~3u) && sreg != BT_CS && sreg != BT_SS) {
		rt.real[sreg] = 0;
		return;
	}
	/*
	 * Translated ring 3 shares the top region with ring 0: truncated like
	 * it, and for a pv guest that declared USER_LIMIT below the limit, in
	 * the CPL-3 slot (docs/pv.md).
	 */
	bool cpl3 = rt.cpu->cpl == 3, direct3 = cpl3 && !rt_translate_user;
	uint32_t top = cpl3 && !direct3 && rt.sh->pv.user_limit ? rt.sh->pv.user_limit : BT_TOP;

	/*
	 * A code segment based at or above the limit, loaded into a data
	 * register: its slot also serves CS, so it cannot be the emptied data
	 * segment, and cut to one byte that byte would be a kernel page's. The
	 * register holds the null selector instead: every access through it
	 * raises #GP and is emulated with the guest's descriptor (emu_gp).
	 */
	if (top != BT_TOP && sreg != BT_CS && (BT_SEG_TYPE(s->attr) & 8) && s->base >= top) {
		rt.real[sreg] = 0;
		return;
	}
	slot = slot_of(s->sel, direct3 || top != BT_TOP);
	u = mirror_desc(slot, s, !direct3, top);
	raw = key_of(&u);
	if (slot_desc[slot] != raw) {
		if ((long)rt_syscall(SYS_modify_ldt, 1, (uint64_t)&u, sizeof(u), 0, 0) != 0)
			rt_fatal(BT_EXIT_FAULT, "bt: modify_ldt failed for guest selector %#x",
				 s->sel);
		slot_desc[slot] = raw;
		rt.st->ldt_writes++;
	}
	slot_sel[slot] = s->sel;
	rt.real[sreg] = real_sel(slot);
}

void seg_set(int sreg, const struct bt_seg *s)
{
	rt.cpu->seg[sreg] = *s;
	mirror(sreg);
}

void seg_set_null(int sreg)
{
	memset(&rt.cpu->seg[sreg], 0, sizeof(rt.cpu->seg[sreg]));
	rt.real[sreg] = 0;
}

/* MOV/POP/LDS... to a data segment register or SS, protected mode (SDM vol. 2 MOV). */
int seg_load(int sreg, uint16_t sel, struct bt_fault *f)
{
	unsigned cpl = rt.cpu->cpl, rpl = sel & 3, dpl, type;
	uint64_t d;
	struct bt_seg s;

	if (!(sel & ~3u)) {
		if (sreg == BT_SS)
			return FAULT(f, EXC_GP, 0);
		seg_set_null(sreg);
		rt.cpu->seg[sreg].sel = sel;
		return 0;
	}
	if (seg_read_desc(sel, &d, f))
		return -1;
	seg_from_desc(&s, sel, d);
	dpl = BT_SEG_DPL(s.attr);
	type = BT_SEG_TYPE(s.attr);
	if (sreg == BT_SS) {
		if (rpl != cpl || !(s.attr & BT_SEG_S) || (type & 0xa) != 0x2 || dpl != cpl)
			return FAULT(f, EXC_GP, sel & ~3u);
		if (!(s.attr & BT_SEG_P))
			return FAULT(f, EXC_SS, sel & ~3u);
	} else {
		if (!(s.attr & BT_SEG_S) || (type & 0xa) == 0x8)
			return FAULT(f, EXC_GP, sel & ~3u);
		/* data, or non-conforming code: DPL >= max(CPL, RPL) */
		if ((!(type & 8) || !(type & 4)) && (rpl > dpl || cpl > dpl))
			return FAULT(f, EXC_GP, sel & ~3u);
		if (!(s.attr & BT_SEG_P))
			return FAULT(f, EXC_NP, sel & ~3u);
	}
	seg_set_accessed(sel, d);
	s.attr |= 1;
	seg_set(sreg, &s);
	return 0;
}

/* A limit check for the runtime's own accesses through a segment (stack pushes, string I/O). */
bool seg_check(int sreg, uint32_t off, uint32_t len, bool write, struct bt_fault *f)
{
	const struct bt_seg *s = &rt.cpu->seg[sreg];
	unsigned type = BT_SEG_TYPE(s->attr);
	int vec = sreg == BT_SS ? EXC_SS : EXC_GP;

	if (!(s->sel & ~3u) && sreg != BT_CS && sreg != BT_SS) {
		FAULT(f, EXC_GP, 0);
		return false;
	}
	if (write && ((type & 8) || !(type & 2))) {
		FAULT(f, vec, 0);
		return false;
	}
	if (!(type & 8) && (type & 4)) { /* expand-down: valid offsets (limit, top] */
		uint32_t top = (s->attr & BT_SEG_DB) ? 0xffffffffu : 0xffffu;
		if (off <= s->limit || off > top || len - 1 > top - off) {
			FAULT(f, vec, 0);
			return false;
		}
		return true;
	}
	if (off > s->limit || len - 1 > s->limit - off) {
		FAULT(f, vec, 0);
		return false;
	}
	return true;
}

static uint16_t read_sreg(int sreg)
{
	uint16_t v = 0;

	switch (sreg) {
	case BT_DS: __asm__ volatile("movw %%ds, %0" : "=r"(v)); break;
	case BT_ES: __asm__ volatile("movw %%es, %0" : "=r"(v)); break;
	case BT_FS: __asm__ volatile("movw %%fs, %0" : "=r"(v)); break;
	case BT_GS: __asm__ volatile("movw %%gs, %0" : "=r"(v)); break;
	case BT_CS: v = (uint16_t)rt.uc->uc_mcontext.gregs[REG_CSGSFS]; break;
	case BT_SS: v = (uint16_t)(rt.uc->uc_mcontext.gregs[REG_CSGSFS] >> 48); break;
	}
	return v;
}

/* A segment register the guest loaded without a trap: make the guest's view follow. */
static bool late_load(int sreg, uint16_t real)
{
	struct bt_fault f = { .vec = -1 };
	uint16_t sel = real;
	uint64_t d;
	struct bt_seg s;

	rt.st->seg_repairs++;
	if ((real & 4) && slot_desc[real >> 3])
		sel = slot_sel[real >> 3]; /* a mirror selector the guest saved and reloaded */
	if (sreg == BT_CS) {
		/* 0x33 is the host's 64-bit code segment: the guest left compatibility mode. */
		if (!(real & 4) && real != 0x23)
			rt_fatal(BT_EXIT_ESCAPE,
				 "bt: the guest escaped its sandbox: it loaded the host's code "
				 "segment %#x (%s mode); VM stopped",
				 real, real == 0x33 ? "64-bit" : "unknown");
		if (seg_read_desc(sel, &d, &f))
			goto fault;
		seg_from_desc(&s, sel, d);
		if (!(s.attr & BT_SEG_S) || !(BT_SEG_TYPE(s.attr) & 8) || !(s.attr & BT_SEG_P)) {
			FAULT(&f, EXC_GP, sel & ~3u);
			goto fault;
		}
		if (!(real & 4)) {
			/*
			 * A far JMP/CALL (or RET) to a host selector: the CPU checked the
			 * host's descriptor, not the guest's. Such a transfer never makes
			 * the guest more privileged (SDM vol. 3 §5.8.1-5.8.2): into a
			 * non-conforming segment of a lower DPL it is #GP, into a
			 * conforming one it keeps the CPL; otherwise the host's CPL 3
			 * forced the DPL on it, as before.
			 */
			unsigned dpl = BT_SEG_DPL(s.attr);
			bool conforming = BT_SEG_TYPE(s.attr) & 4;

			if (!conforming && dpl < rt.cpu->cpl) {
				FAULT(&f, EXC_GP, sel & ~3u);
				goto fault;
			}
			if (!conforming)
				vcpu_set_cpl(dpl);
		}
		s.sel = (uint16_t)((sel & ~3u) | rt.cpu->cpl);
		seg_set(BT_CS, &s);
		return true;
	}
	if (!seg_load(sreg, sel, &f))
		return true;
fault:
	/* the load would have faulted: the best we can do is raise it now */
	vcpu_exception(&f);
	return false;
}

/*
 * At every trap: did the guest load a segment register natively (a selector
 * that happens to name a DPL-3 host descriptor, or a mirror selector it had
 * saved)? Then update the guest's view as if the load had trapped. 1 when a
 * host descriptor was replaced (a fault may have come from it: retry), -1
 * when the replayed load raised a guest fault, else 0.
 */
int seg_sync_from_real(void)
{
	int changed = 0;

	/* CS first: it sets the CPL the data-segment checks use */
	for (int i = 0; i < BT_NSREG; i++) {
		int sreg = i == 0 ? BT_CS : i == BT_CS ? BT_ES : i;
		uint16_t real = read_sreg(sreg);

		if (real == rt.real[sreg])
			continue;
		if (!(real & ~3u) && sreg != BT_CS && sreg != BT_SS) {
			seg_set_null(sreg);
			rt.cpu->seg[sreg].sel = real;
			continue;
		}
		if (!late_load(sreg, real))
			return -1;
		/* a host descriptor (flat, or i386 glibc's %gs = 0x33) may be why this faulted */
		changed = !(real & 4);
	}
	return changed;
}

/* At the end of a handler: the guest resumes with its mirrors loaded. */
void seg_apply(void)
{
	greg_t *g = rt.uc->uc_mcontext.gregs;

	g[REG_CSGSFS] = (greg_t)((uint64_t)rt.real[BT_CS] | (uint64_t)rt.real[BT_SS] << 48);
	rt_sel_out[0] = rt.real[BT_DS];
	rt_sel_out[1] = rt.real[BT_ES];
	rt_sel_out[2] = rt.real[BT_FS];
	rt_sel_out[3] = rt.real[BT_GS];
}

/* The CPL moved between 3 and 0-2: every register takes the other bank's mirror. */
void seg_cpl_changed(void)
{
	for (int s = 0; s < BT_NSREG; s++)
		mirror(s); /* a null data selector stays null */
}

void seg_reload_all(void)
{
	for (int s = 0; s < BT_NSREG; s++)
		mirror(s);
}

int seg_init(void)
{
	memset(slot_desc, 0, sizeof(slot_desc));
	for (int s = 0; s < BT_NSREG; s++)
		mirror(s);
	return 0;
}
