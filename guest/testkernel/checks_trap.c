/*
 * Checks of exception and interrupt delivery in ring 0: which vector, which
 * error code, which EIP is pushed; that POPF really changes IF; that the
 * timer ticks and HLT waits for it. Intel SDM vol. 3 ch. 6
 * (§6.5 faults vs traps, §6.8 enabling and disabling interrupts, §6.15).
 */
#include "kernel.h"

static void check_exceptions(void)
{
	asm volatile(KPROBE_BEGIN "int3" KPROBE_END ::: "memory");
	if (!tap_ok(kprobe.vector == 3 && kprobe.eip == kprobe.resume,
		    "int3 raises #BP with EIP after the int3"))
		kprintf("#   vector %u eip %08x, int3 ends at %08x\n", kprobe.vector, kprobe.eip,
			kprobe.resume);

	uint32_t a = 1, d = 0, zero = 0;
	asm volatile(KPROBE_BEGIN "divl %2" KPROBE_END
		     : "+a"(a), "+d"(d)
		     : "r"(zero)
		     : "memory", "cc");
	if (!tap_ok(kprobe.vector == 0 && kprobe.eip == kprobe_at,
		    "divide by zero raises #DE with EIP at the div"))
		kprintf("#   vector %u eip %08x, div at %08x\n", kprobe.vector, kprobe.eip,
			kprobe_at);

	asm volatile(KPROBE_BEGIN "ud2" KPROBE_END ::: "memory");
	tap_ok(kprobe.vector == 6 && kprobe.eip == kprobe_at, "ud2 raises #UD with EIP at the ud2");

	/* The IDT entry 0x90 is not present: #GP, error code = vector*8 + 2 (IDT bit). */
	asm volatile(KPROBE_BEGIN "int $0x90" KPROBE_END ::: "memory");
	tap_probe(&kprobe, 13, 0x90 * 8 + 2, "int $0x90 to a not-present gate raises #GP(0x482)");

	uint32_t before = vec_test_count;
	asm volatile("int $0x81" ::: "memory");
	tap_eq(vec_test_count - before, 1,
	       "int $0x81 (DPL-0 gate) from ring 0 reaches its handler");
}

/* Spin with IF=0 until the PIC has latched a timer request (or ~3 ticks pass). */
static int wait_irr_timer(void)
{
	uint64_t limit = tsc_khz ? (uint64_t)tsc_khz * 3000 / HZ : 0;
	uint64_t t0 = rdtsc();

	for (uint32_t i = 0; i < 10000000u; i++) {
		if (pic_read_irr() & (1u << IRQ_TIMER))
			return 1;
		if (limit && rdtsc() - t0 > limit)
			return 0;
	}
	return 0;
}

static void check_timer(void)
{
	uint32_t t0 = ticks;
	int ok = timer_wait_ticks(5) == 0;
	if (!tap_ok(ok && ticks - t0 >= 5, "8254 timer IRQ 0 arrives at vector 0x20 (5 ticks)")) {
		tap_bail("the timer does not tick: the remaining checks need it");
	}

	t0 = ticks;
	sti_hlt();
	tap_ok(ticks != t0, "hlt sleeps until the next timer interrupt");

#ifdef TK_PV
	/* irq_mask = 1: a timer request waits in the IRR, and ring3 says so in irq_pending */
	cli();
	t0 = ticks;
	int pending = wait_irr_timer();
	uint32_t t_held = ticks, flagged = pv_shared[PV_SH_IRQ_PENDING / 4];
	sti(); /* irq_pending is set: IRQ_ENABLE delivers it */
	asm volatile("nop; nop" ::: "memory");
	uint32_t t_after = ticks;
	if (!tap_ok(pending && t_held == t0,
		    "pv: irq_mask=1 holds a pending timer IRQ (in the IRR, no tick)"))
		kprintf("#   irr pending %d, ticks moved by %u\n", pending, t_held - t0);
	if (pv_features & PV_FEAT_SHARED_IF)
		tap_eq(flagged, 1, "pv: ... and the shared page's irq_pending says so");
	else /* kvm: IRQ_DISABLE cleared the real IF; there is no irq_pending to check */
		tap_ok(1, "pv: ... # SKIP no shared-page IF under this engine");
	tap_eq(t_after - t0, 1, "pv: irq_mask=0 and IRQ_ENABLE let the pending timer IRQ in at once");
#else
	/* POPF, not CLI, clears IF; then a timer request must wait in the IRR. */
	uint32_t fl = read_eflags();
	write_eflags(fl & ~FL_IF);
	t0 = ticks;
	int pending = wait_irr_timer();
	uint32_t t_held = ticks;
	write_eflags(fl | FL_IF);
	asm volatile("nop; nop" ::: "memory"); /* the IRQ is taken before these */
	uint32_t t_after = ticks;
	if (!tap_ok(pending && t_held == t0,
		    "popf IF=0 holds a pending timer IRQ (in the IRR, no tick)"))
		kprintf("#   irr pending %d, ticks moved by %u\n", pending, t_held - t0);
	tap_eq(t_after - t0, 1, "popf IF=1 lets the pending timer IRQ in at once");
#endif
}

void checks_trap(void)
{
	check_exceptions();
	check_timer();
}
