/*
 * The 16550 UART at COM1 (0x3f8): polled output for the console, a
 * transmit driven by THR-empty interrupts (IRQ 4), and loopback and
 * scratch-register probes. TI/National PC16550D datasheet, register map §8.
 */
#include "kernel.h"

#define COM1 0x3f8
#define THR 0 /* write: transmit holding register */
#define RBR 0 /* read: receive buffer */
#define DLL 0 /* with LCR.DLAB: divisor latch */
#define IER 1
#define DLM 1
#define IIR 2 /* read: interrupt identification */
#define FCR 2 /* write: FIFO control */
#define LCR 3
#define MCR 4
#define LSR 5
#define SCR 7 /* scratch: eight bits of plain storage */

#define IER_RDI 0x01  /* interrupt when a byte was received */
#define IER_THRI 0x02 /* interrupt when THR is empty */
#define IIR_NO_INT 0x01
#define IIR_ID 0x0e
#define IIR_THRI 0x02
#define LCR_8N1 0x03
#define LCR_DLAB 0x80
#define MCR_DTR 0x01
#define MCR_RTS 0x02
#define MCR_OUT2 0x08 /* on a PC, gates the UART's interrupt line to the PIC */
#define MCR_LOOP 0x10 /* transmitter wired to receiver inside the chip */
#define LSR_DR 0x01   /* data ready */
#define LSR_THRE 0x20 /* THR can accept another character */
#define LSR_TEMT 0x40 /* THR and shift register both empty */

static const char *volatile tx_next; /* the interrupt-driven transmit's cursor */
static volatile int tx_irqs;

void serial_init(void)
{
	outb(COM1 + IER, 0);
	outb(COM1 + LCR, LCR_DLAB);
	outb(COM1 + DLL, 1); /* 115200 baud */
	outb(COM1 + DLM, 0);
	outb(COM1 + LCR, LCR_8N1);
	outb(COM1 + FCR, 0xc7); /* enable and clear FIFOs, 14-byte trigger */
	outb(COM1 + MCR, MCR_DTR | MCR_RTS | MCR_OUT2);
}

/* Wait (bounded: a broken UART must not hang the kernel) for an LSR bit. */
static int wait_lsr(uint8_t bit)
{
	for (int i = 0; i < 100000; i++)
		if (inb(COM1 + LSR) & bit)
			return 1;
	return 0;
}

int serial_thr_empty(void)
{
	return (inb(COM1 + LSR) & LSR_THRE) != 0;
}

void serial_putc(char c)
{
	if (c == '\n')
		serial_putc('\r');
	wait_lsr(LSR_THRE);
	outb(COM1 + THR, (uint8_t)c);
}

/*
 * THRE interrupt: the UART raises it when THR empties, and reading IIR (or
 * writing THR) clears it. Feed one byte per interrupt; at the end, turn the
 * interrupt source off.
 */
void serial_intr(void)
{
	uint8_t iir = inb(COM1 + IIR);

	if (iir & IIR_NO_INT)
		return;
	tx_irqs++;
	if ((iir & IIR_ID) != IIR_THRI)
		return;
	if (tx_next && *tx_next) {
		outb(COM1 + THR, (uint8_t)*tx_next++);
	} else {
		tx_next = 0;
		outb(COM1 + IER, 0);
	}
}

/*
 * Send buf by interrupts only; sleep in HLT meanwhile (the timer bounds
 * the wait). Returns the number of IRQ 4s taken, or -1 if it did not finish.
 */
int serial_irq_transmit(const char *buf)
{
	uint32_t give_up = ticks + HZ;

	wait_lsr(LSR_TEMT);
	tx_irqs = 0;
	tx_next = buf;
	pic_unmask(IRQ_SERIAL);
	outb(COM1 + IER, IER_THRI); /* THR is empty now, so this interrupts at once */
	while (tx_next && ticks < give_up)
		sti_hlt();
	outb(COM1 + IER, 0);
	pic_mask(IRQ_SERIAL);
	return tx_next ? -1 : tx_irqs;
}

/* In loopback mode a byte written to THR comes back in RBR. */
int serial_loopback(uint8_t byte)
{
	int got = -1;

	wait_lsr(LSR_TEMT);
	for (int i = 0; i < 64 && (inb(COM1 + LSR) & LSR_DR); i++)
		inb(COM1 + RBR); /* drain anything pending */
	outb(COM1 + MCR, MCR_LOOP | MCR_DTR | MCR_RTS);
	outb(COM1 + THR, byte);
	if (wait_lsr(LSR_DR))
		got = inb(COM1 + RBR);
	outb(COM1 + MCR, MCR_DTR | MCR_RTS | MCR_OUT2);
	return got;
}

int serial_scratch(uint8_t byte)
{
	outb(COM1 + SCR, byte);
	return inb(COM1 + SCR);
}
