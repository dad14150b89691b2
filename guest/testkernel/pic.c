/*
 * The two cascaded 8259A interrupt controllers of the PC. We remap them
 * from the BIOS vectors (0x08, 0x70) to 0x20-0x2f, clear of the CPU's
 * exceptions. Intel 8259A datasheet (ICW1-4, OCW1-3).
 */
#include "kernel.h"

#define PIC1_CMD 0x20
#define PIC1_DATA 0x21 /* reads and writes the IMR (OCW1) */
#define PIC2_CMD 0xa0
#define PIC2_DATA 0xa1

#define ICW1_INIT 0x11	   /* edge triggered, cascade, ICW4 follows */
#define ICW4_8086 0x01	   /* 8086 mode, normal (not automatic) EOI */
#define OCW2_EOI 0x20	   /* non-specific end of interrupt */
#define OCW3_READ_IRR 0x0a /* next read of the command port returns the IRR */
#define OCW3_READ_ISR 0x0b /* ... the ISR */

static uint16_t imr = 0xffff; /* bit n set: IRQ n masked */

static void write_imr(void)
{
	outb(PIC1_DATA, imr & 0xff);
	outb(PIC2_DATA, imr >> 8);
}

void pic_init(void)
{
	outb(PIC1_CMD, ICW1_INIT);
	outb(PIC2_CMD, ICW1_INIT);
	outb(PIC1_DATA, VEC_IRQ0); /* ICW2: vector base */
	outb(PIC2_DATA, VEC_IRQ0 + 8);
	outb(PIC1_DATA, 1 << 2); /* ICW3: slave on IRQ 2 */
	outb(PIC2_DATA, 2);	 /* ICW3: slave id 2 */
	outb(PIC1_DATA, ICW4_8086);
	outb(PIC2_DATA, ICW4_8086);
	imr = 0xffff & ~(1u << 2); /* everything masked but the cascade */
	write_imr();
}

void pic_unmask(int irq)
{
	imr &= ~(1u << irq);
	write_imr();
}

void pic_mask(int irq)
{
	imr |= 1u << irq;
	write_imr();
}

void pic_eoi(int irq)
{
	if (irq >= 8)
		outb(PIC2_CMD, OCW2_EOI);
	outb(PIC1_CMD, OCW2_EOI);
}

/* The IRR holds requests the PIC has latched but not yet delivered. */
uint8_t pic_read_irr(void)
{
	outb(PIC1_CMD, OCW3_READ_IRR);
	return inb(PIC1_CMD);
}

uint8_t pic_read_imr(void)
{
	return inb(PIC1_DATA);
}

/* A spurious IRQ 7/15 has no ISR bit set and must not be acknowledged. */
int pic_in_service(int irq)
{
	uint16_t port = irq >= 8 ? PIC2_CMD : PIC1_CMD;
	outb(port, OCW3_READ_ISR);
	int in = (inb(port) >> (irq & 7)) & 1;
	outb(port, OCW3_READ_IRR); /* leave the read register at the IRR */
	return in;
}
