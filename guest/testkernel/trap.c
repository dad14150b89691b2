/*
 * Where every interrupt and exception lands (from isr.S): IRQs go to their
 * device, INT 0x80 to the system calls, an expected exception to its probe,
 * a page fault maybe to demand paging; anything else ends the run.
 * Intel SDM vol. 3 ch. 6 (interrupt and exception handling).
 */
#include "kernel.h"

struct probe kprobe;
uint32_t kprobe_at;
volatile uint32_t vec_test_count;

/* KPROBE_BEGIN in kernel.h writes these offsets by number. */
_Static_assert(offsetof(struct probe, armed) == 0, "probe layout");
_Static_assert(offsetof(struct probe, resume) == 4, "probe layout");
_Static_assert(offsetof(struct probe, vector) == 8, "probe layout");

static const char *const exception_names[32] = {
    "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "CSO", "#TS",
    "#NP", "#SS", "#GP", "#PF", "res", "#MF", "#AC", "#MC", "#XM", "#VE", "#CP",
};

/* If a probe is armed, record the exception in it and resume past the instruction. */
int probe_catch(struct probe *p, struct trapframe *tf, uint32_t cr2)
{
	if (!p->armed)
		return 0;
	p->armed = 0;
	p->vector = tf->vector;
	p->err = tf->err;
	p->eip = tf->eip;
	p->cr2 = cr2;
	tf->eip = p->resume;
	tf->eflags &= ~0x100u; /* TF: a probe that stepped stops stepping where it resumes */
	return 1;
}

static void irq(struct trapframe *tf, int n)
{
	switch (n) {
	case IRQ_TIMER:
		pit_intr();
		pic_eoi(n); /* before task_tick(): it may switch away for a while */
		task_tick(tf);
		break;
	case IRQ_SERIAL:
		serial_intr();
		pic_eoi(n);
		break;
	default:
		/* A masked line cannot fire; 7 and 15 may be spurious (no EOI then). */
		if (pic_in_service(n))
			pic_eoi(n);
		break;
	}
}

static void unexpected(struct trapframe *tf, uint32_t cr2)
{
	const char *name = tf->vector < 32 && exception_names[tf->vector]
			       ? exception_names[tf->vector]
			       : "interrupt";

	kprintf("# unexpected %s (vector %u) err 0x%x at %04x:%08x eflags %08x cr2 %08x\n", name,
		tf->vector, tf->err, tf->cs, tf->eip, tf->eflags, cr2);
	tap_bail("unexpected exception");
}

static unsigned user_steps;

void trap(struct trapframe *tf)
{
	uint32_t v = tf->vector;
	uint32_t cr2 = v == 14 ? read_cr2() : 0;

	if (v >= VEC_IRQ0 && v < VEC_IRQ0 + 16) {
		irq(tf, (int)(v - VEC_IRQ0));
		return;
	}
	if (v == VEC_SYSCALL) {
		syscall(tf);
		return;
	}
	if (v == VEC_TEST) {
		vec_test_count++;
		return;
	}
	if ((tf->cs & 3) == 3) {
		/* ring 3's own single steps (the pv build's TF probe): a few, then TF is cleared */
		if (v == 1 && (tf->eflags & 0x100u)) {
			if (++user_steps > 64)
				tf->eflags &= ~0x100u;
			return;
		}
		if (task_user_fault(tf, cr2))
			return;
	} else {
		if (probe_catch(&kprobe, tf, cr2))
			return;
		if (v == 14 && paging_fault(tf, cr2))
			return;
	}
	unexpected(tf, cr2);
}
