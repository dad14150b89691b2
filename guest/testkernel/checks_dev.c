/*
 * Checks of the PC devices the kernel drives: the 16550 UART (registers,
 * loopback, THR-empty interrupts on IRQ 4), the 8259 mask register and the
 * 8254 counter latch, and the TSC rate measured against the 8254.
 * PC16550D datasheet; Intel 8259A and 8254 datasheets.
 */
#include "kernel.h"

void checks_dev(void)
{
	tap_ok(serial_thr_empty(), "16550 LSR shows THR empty when idle");
	tap_eq(serial_scratch(0xa5), 0xa5, "16550 scratch register keeps a byte");
	tap_eq((uint32_t)serial_loopback(0x5a), 0x5a,
	       "16550 loopback: a byte sent on THR arrives in RBR");
	int irqs = serial_irq_transmit("# this line was sent by THR-empty interrupts (IRQ 4)\n");
	if (!tap_ok(irqs >= 1, "16550 THR-empty interrupts (IRQ 4) sent a whole line"))
		kprintf("#   result %d\n", irqs);

	/* Only the timer (IRQ 0) and the cascade (IRQ 2) are unmasked now. */
	tap_eq(pic_read_imr(), 0xfa, "8259 IMR reads back the kernel's mask 0xfa");

	uint16_t a = pit_read_ch0(), b = a;
	for (int i = 0; i < 10000 && b == a; i++)
		b = pit_read_ch0();
	tap_ok(a != b, "8254 channel 0 latched count changes");

	tap_ok(tsc_khz > 1000, "TSC rate measured against the 8254 is above 1 MHz");
	kprintf("# tsc %u.%03u MHz (%s)\n", tsc_khz / 1000, tsc_khz % 1000, tsc_source);
}
