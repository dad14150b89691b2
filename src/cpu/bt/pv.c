/*
 * The pv hypercall ABI under the bt engine (docs/pv.md). A paravirtual guest
 * kernel runs translated like any other, and its `int $0x82` at CPL 0 reaches
 * the runtime as the INT n callout (or, untranslated, as #GP(0x412)) with
 * nothing to decode but the vector. The child serves every CPU-state call
 * itself, against the virtual CPU and the shadow MMU, with no exit; only the
 * calls that need devices (console, timer, shutdown, yield) go to the
 * monitor as a HYPERCALL exit. The interrupt flag lives in the guest's
 * shared page: the runtime reads it on every entry and writes it on every
 * return, so disabling and enabling interrupts costs the guest one store.
 *
 * The ABI is armed when the guest kernel (CPL 0) reads CPUID 0x40000101
 * (a ring-3 process may read it too, but arms nothing): until then
 * `int $0x82` is an ordinary software interrupt, so an unmodified guest
 * that uses vector 0x82 sees a PC.
 */
#include <string.h>

#include "../../pv/pv.h"
#include "runtime.h"

static volatile uint32_t *shared_word(unsigned off)
{
	return (volatile uint32_t *)(rt.ram + rt.sh->pv.page + off);
}

static void set_paging(void)
{
	struct bt_vcpu *c = rt.cpu;
	uint32_t old0 = c->cr0, old4 = c->cr4;

	/* the ABI's one paging mode: two levels, 4 KiB and 4 MiB pages, WP (docs/pv.md) */
	if ((c->cr0 & (CR0_PG | CR0_WP)) == (CR0_PG | CR0_WP) && (c->cr4 & CR4_PSE))
		return;
	c->cr4 |= CR4_PSE;
	c->cr0 |= CR0_PG | CR0_WP;
	mmu_cr_changed(old0, old4);
}

static int64_t cpu_call(void *opaque, uint32_t nr, const uint32_t a[5])
{
	struct bt_vcpu *c = rt.cpu;
	struct bt_pv *pv = &rt.sh->pv;

	(void)opaque;
	switch (nr) {
	case PV_SHARED_PAGE:
		pv->page = a[0];
		if (pv->page) {
			*shared_word(PV_SH_VERSION) = PV_VERSION;
			pv_bt_sync_to();
		}
		return 0;
	case PV_HALT: /* STI; HLT: the interrupt is delivered when the handler returns */
		vcpu_set_eflags(FL_IF, FL_IF);
		vcpu_halt();
		return 0;
	case PV_SET_IDT:
		c->idt_base = a[0];
		c->idt_limit = (uint16_t)a[1];
		return 0;
	case PV_SET_GDT:
		c->gdt_base = a[0];
		c->gdt_limit = (uint16_t)a[1];
		return 0;
	case PV_STACK_SWITCH:
		pv->ss0 = a[0];
		pv->esp0 = a[1];
		pv->stack_set = 1;
		return 0;
	case PV_SET_CR3: /* as MOV CR3 (emulate.c), then paging on if it was not */
		emu_load_cr3(a[0]);
		set_paging();
		if (pv->page)
			*shared_word(PV_SH_CR3) = a[0];
		return 0;
	case PV_TLB_FLUSH:
		if (a[0] == PV_FLUSH_ALL) {
			/* global translations too: as a CR4.PGE toggle (SDM vol. 3 §4.10.4.1) */
			rt.st->pge_toggles++;
			mmu_flush_global();
		} else {
			mmu_invlpg(a[0]); /* which maps a changed page again at once */
		}
		return 0;
	case PV_USER_LIMIT: {
		uint32_t ul = a[0] == PV_USER_LIMIT_NONE ? 0 : a[0];

		/*
		 * From now on translated ring 3 runs with its segments cut at the
		 * limit (segments.c), and kernel-only pages from there up stay
		 * visible at CPL 3 (mmu.c): no mprotect at ring switches for them.
		 * Declared once in practice; a change drops the whole shadow, so
		 * that nothing mapped under the old limit stays unhidden.
		 */
		if (ul != pv->user_limit) {
			pv->user_limit = ul;
			mmu_flush(false);
		}
		return 0;
	}
	case PV_IRQ_ENABLE:
		vcpu_set_eflags(FL_IF, FL_IF);
		return 0;
	case PV_IRQ_DISABLE:
		vcpu_set_eflags(0, FL_IF);
		return 0;
	default:
		return -PV_ENOSYS;
	}
}

static void written(void *opaque, uint64_t gpa)
{
	(void)opaque;
	mmu_note_write(gpa);
}

/* A call only the monitor can serve: post it, and the monitor's pv_hypercall answers. */
static int64_t forward(uint32_t nr, const uint32_t a[5])
{
	struct bt_exit *e = &rt.sh->exit;

	memset(e, 0, sizeof(*e));
	e->hc_nr = nr;
	memcpy(e->hc_arg, a, sizeof(e->hc_arg));
	rt.sh->resume.hc_ret = -PV_ENOSYS;
	rt_exit_wait(BT_EXIT_HYPERCALL);
	return rt.sh->resume.hc_ret;
}

bool pv_bt_call(void)
{
	struct bt_pv *pv = &rt.sh->pv;
	uint32_t a[5] = { gr(BT_EBX), gr(BT_ECX), gr(BT_ESI), gr(BT_EDI), gr(BT_EBP) };
	struct pv_env env = {
		.ram = rt.ram,
		.ram_size = rt.ram_size,
		.cr3 = rt.cpu->cr3,
		.user_limit = pv->user_limit,
		.cpu = cpu_call,
		.written = written,
		.counts = pv->calls,
	};
	int64_t r;

	/* a call from user mode is the guest's own INT 0x82 (its gate's DPL decides) */
	if (!pv->armed || rt.cpu->cpl != 0)
		return false;
	r = pv_dispatch(&env, gr(BT_EAX), a);
	if (r == PV_FORWARD)
		r = forward(gr(BT_EAX), a);
	set_gr(BT_EAX, (uint32_t)r);
	/* the dispatcher may have moved the interrupt flag: show it in the shared page */
	pv_bt_sync_to();
	return true;
}

bool pv_bt_cpuid(uint32_t leaf, uint32_t out[4])
{
	if (leaf == PV_CPUID_BASE) {
		out[0] = PV_CPUID_INFO;
		out[1] = PV_SIG_EBX;
		out[2] = PV_SIG_ECX;
		out[3] = PV_SIG_EDX;
		return true;
	}
	if (leaf == PV_CPUID_INFO) {
		if (rt.cpu->cpl == 0)
			rt.sh->pv.armed = 1;
		out[0] = PV_VERSION;
		out[1] = PV_METHOD_INT82;
		out[2] = 0; /* no port method under bt */
		out[3] = PV_FEAT_SHARED_IF | PV_FEAT_MMU_BATCH | PV_FEAT_TIMER | PV_FEAT_CR2 |
			 PV_FEAT_USER_LIMIT;
		return true;
	}
	return false;
}

/* The stack of a ring 3 -> 0 event: STACK_SWITCH's, instead of a TSS the guest cannot load. */
bool pv_bt_stack(unsigned dpl, uint16_t *ss, uint32_t *esp)
{
	const struct bt_pv *pv = &rt.sh->pv;

	if (!pv->stack_set || dpl != 0)
		return false;
	*ss = (uint16_t)pv->ss0;
	*esp = pv->esp0;
	return true;
}

void pv_bt_sync_from(void)
{
	if (!rt.sh->pv.page || rt.cpu->cpl != 0)
		return;
	if (*shared_word(PV_SH_IRQ_MASK))
		rt.cpu->eflags &= ~FL_IF;
	else
		rt.cpu->eflags |= FL_IF;
}

void pv_bt_sync_to(void)
{
	bool on;

	if (!rt.sh->pv.page)
		return;
	on = rt.cpu->eflags & FL_IF;
	*shared_word(PV_SH_IRQ_MASK) = !on;
	*shared_word(PV_SH_IRQ_PENDING) = !on && vcpu_irq_waiting();
	*shared_word(PV_SH_CR2) = rt.cpu->cr2; /* a #PF handler cannot MOV from CR2 */
}

void pv_bt_irq_held(void)
{
	if (rt.sh->pv.page)
		*shared_word(PV_SH_IRQ_PENDING) = 1;
}
