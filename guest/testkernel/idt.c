/*
 * The IDT: interrupt gates for the 32 exceptions, the 16 PIC IRQs, the
 * system-call vector 0x80 (DPL 3) and a test vector 0x81 (DPL 0).
 * Intel SDM vol. 3 ch. 6 (§6.10 IDT, §6.11 gate descriptors).
 */
#include "kernel.h"

struct gate_desc {
	uint16_t off_lo;
	uint16_t sel;
	uint8_t zero;
	uint8_t type_attr; /* P | DPL(2) | 0 | type: 0xe = 32-bit interrupt gate */
	uint16_t off_hi;
} __attribute__((packed));

#define GATE_INTR_DPL0 0x8e
#define GATE_INTR_DPL3 0xee

extern const uint32_t vector_table[48];
extern char vector128[], vector129[];

static struct gate_desc idt[256] __attribute__((aligned(8)));
struct dtr idt_loaded;

/*
 * Interrupt gates (not trap gates) clear IF on entry, so no handler is
 * ever interrupted and the scheduler needs no locks.
 */
static void set_gate(int vec, uint32_t entry, uint8_t type_attr)
{
	idt[vec].off_lo = entry & 0xffff;
	idt[vec].sel = SEL_KCODE;
	idt[vec].zero = 0;
	idt[vec].type_attr = type_attr;
	idt[vec].off_hi = entry >> 16;
}

void idt_init(void)
{
	for (int v = 0; v < 48; v++)
		set_gate(v, vector_table[v], GATE_INTR_DPL0);
	/* INT3 and INTO from ring 3 must reach their handlers, not #GP. */
	set_gate(3, vector_table[3], GATE_INTR_DPL3);
	set_gate(4, vector_table[4], GATE_INTR_DPL3);
	set_gate(VEC_SYSCALL, (uint32_t)vector128, GATE_INTR_DPL3);
	set_gate(VEC_TEST, (uint32_t)vector129, GATE_INTR_DPL0);
	/* All other entries stay zero (not present): INT to them gives #GP. */

	idt_loaded.limit = sizeof(idt) - 1;
	idt_loaded.base = (uint32_t)idt;
#ifdef TK_PV
	if (pv_call(PV_SET_IDT, idt_loaded.base, idt_loaded.limit))
		tap_bail("pv: SET_IDT refused");
#else
	asm volatile("lidt %0" : : "m"(idt_loaded));
#endif
}
