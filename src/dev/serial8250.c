/*
 * A 16550A UART at 0x3f8, IRQ 4: the guest's console.
 * Follows the TI/National PC16550D datasheet: registers by offset, DLAB in
 * LCR bit 7 banks the divisor latch over RBR/THR and IER. Transmission is
 * instant (the THR is always empty again by the next access); received bytes
 * wait in a FIFO deeper than the chip's, which no driver can tell apart.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "../core/console.h"
#include "../core/vm.h"
#include "dev.h"
#include "serial8250.h"

#define UART_BASE 0x3f8
#define UART_IRQ 4

/* Register offsets (read / write) */
#define UART_RBR 0 /* receive buffer (DLAB=0, read) */
#define UART_THR 0 /* transmit holding (DLAB=0, write) */
#define UART_IER 1 /* interrupt enable */
#define UART_IIR 2 /* interrupt identification (read) */
#define UART_FCR 2 /* FIFO control (write) */
#define UART_LCR 3 /* line control; bit 7 is DLAB */
#define UART_MCR 4 /* modem control */
#define UART_LSR 5 /* line status */
#define UART_MSR 6 /* modem status */
#define UART_SCR 7 /* scratch */

#define IER_ERDAI 0x01 /* received data available */
#define IER_ETBEI 0x02 /* transmitter holding register empty */
#define IER_ELSI 0x04  /* receiver line status */
#define IER_EDSSI 0x08 /* modem status */

#define IIR_NONE 0x01
#define IIR_MSI 0x00
#define IIR_THRI 0x02
#define IIR_RDI 0x04
#define IIR_FIFO 0xc0 /* FIFOs enabled */

#define LCR_DLAB 0x80
#define MCR_DTR 0x01
#define MCR_RTS 0x02
#define MCR_OUT1 0x04
#define MCR_OUT2 0x08 /* on a PC, gates the IRQ line */
#define MCR_LOOP 0x10
#define LSR_DR 0x01
#define LSR_THRE 0x20
#define LSR_TEMT 0x40
#define MSR_CTS 0x10
#define MSR_DSR 0x20
#define MSR_RI 0x40
#define MSR_DCD 0x80

#define RX_SIZE 4096

struct serial8250 {
	struct vm *vm;
	pthread_mutex_t lock;
	uint8_t ier, lcr, mcr, scr, fcr, dll, dlm, msr;
	bool thr_ipending; /* the THRE interrupt, until IIR is read or THR written */
	int irq_level;
	uint8_t rx[RX_SIZE];
	size_t rx_head, rx_count;
	uint8_t tx[256];
	size_t tx_count;
};

static uint8_t serial8250_iir(struct serial8250 *s)
{
	if ((s->ier & IER_ERDAI) && s->rx_count)
		return IIR_RDI;
	if ((s->ier & IER_ETBEI) && s->thr_ipending)
		return IIR_THRI;
	return IIR_NONE;
}

/* Called with the lock held. The line is gated by OUT2, as on every PC. */
static void serial8250_update_irq(struct serial8250 *s)
{
	int level = serial8250_iir(s) != IIR_NONE && (s->mcr & MCR_OUT2);

	if (level != s->irq_level) {
		s->irq_level = level;
		irq_set(s->vm, UART_IRQ, level);
	}
}

static void serial8250_rx_push(struct serial8250 *s, uint8_t c)
{
	if (s->rx_count == RX_SIZE)
		return; /* overrun: the byte is lost, as on the chip */
	s->rx[(s->rx_head + s->rx_count) % RX_SIZE] = c;
	s->rx_count++;
}

size_t serial8250_receive(struct serial8250 *s, const char *buf, size_t len)
{
	size_t n = 0;

	pthread_mutex_lock(&s->lock);
	if (!(s->mcr & MCR_LOOP)) {
		while (n < len && s->rx_count < RX_SIZE)
			serial8250_rx_push(s, (uint8_t)buf[n++]);
		serial8250_update_irq(s);
	}
	pthread_mutex_unlock(&s->lock);
	return n;
}

static void serial8250_flush_tx(struct serial8250 *s)
{
	if (s->tx_count) {
		console_write(s->vm, s->tx, s->tx_count);
		s->tx_count = 0;
	}
}

static void serial8250_write(struct serial8250 *s, unsigned off, uint8_t v)
{
	if ((s->lcr & LCR_DLAB) && off <= 1) {
		if (off == 0)
			s->dll = v;
		else
			s->dlm = v;
		return;
	}
	switch (off) {
	case UART_THR:
		if (s->mcr & MCR_LOOP) {
			serial8250_rx_push(s, v);
		} else {
			s->tx[s->tx_count++] = v;
			/* Batch output until a line ends: one write() per line, not per byte. */
			if (v == '\n' || s->tx_count == sizeof(s->tx))
				serial8250_flush_tx(s);
		}
		s->thr_ipending = true;
		break;
	case UART_IER:
		/* Enabling ETBEI with an empty THR raises THRE at once (16550D §8.6). */
		if ((v & IER_ETBEI) && !(s->ier & IER_ETBEI))
			s->thr_ipending = true;
		s->ier = v & 0x0f;
		break;
	case UART_FCR:
		if (v & 0x02) /* clear the receive FIFO */
			s->rx_count = 0;
		s->fcr = v;
		break;
	case UART_LCR:
		s->lcr = v;
		break;
	case UART_MCR:
		s->mcr = v & 0x1f;
		break;
	case UART_SCR:
		s->scr = v;
		break;
	default: /* LSR and MSR are read-only */
		break;
	}
}

static uint8_t serial8250_read(struct serial8250 *s, unsigned off)
{
	uint8_t v;

	if ((s->lcr & LCR_DLAB) && off <= 1)
		return off == 0 ? s->dll : s->dlm;
	switch (off) {
	case UART_RBR:
		if (!s->rx_count)
			return 0;
		v = s->rx[s->rx_head];
		s->rx_head = (s->rx_head + 1) % RX_SIZE;
		s->rx_count--;
		if (!s->rx_count && !(s->mcr & MCR_LOOP))
			console_rx_kick(s->vm);
		return v;
	case UART_IER:
		return s->ier;
	case UART_IIR:
		v = serial8250_iir(s);
		if (v == IIR_THRI)
			s->thr_ipending = false;
		return v | ((s->fcr & 1) ? IIR_FIFO : 0);
	case UART_LCR:
		return s->lcr;
	case UART_MCR:
		return s->mcr;
	case UART_LSR:
		/* The chip flushes output on a read of LSR; so do we, for prompts. */
		serial8250_flush_tx(s);
		return LSR_THRE | LSR_TEMT | (s->rx_count ? LSR_DR : 0);
	case UART_MSR:
		if (s->mcr & MCR_LOOP) /* loopback wires RTS→CTS, DTR→DSR, OUT1→RI, OUT2→DCD */
			return (uint8_t)(((s->mcr & MCR_RTS) ? MSR_CTS : 0) |
					 ((s->mcr & MCR_DTR) ? MSR_DSR : 0) |
					 ((s->mcr & MCR_OUT1) ? MSR_RI : 0) |
					 ((s->mcr & MCR_OUT2) ? MSR_DCD : 0));
		return MSR_DCD | MSR_DSR | MSR_CTS;
	case UART_SCR:
		return s->scr;
	}
	return 0xff;
}

static void serial8250_io(void *opaque, uint64_t off, uint8_t *data, unsigned size, bool is_write)
{
	struct serial8250 *s = opaque;

	pthread_mutex_lock(&s->lock);
	/* A wider access touches consecutive registers, one byte each. */
	for (unsigned i = 0; i < size && off + i < 8; i++) {
		if (is_write)
			serial8250_write(s, (unsigned)off + i, data[i]);
		else
			data[i] = serial8250_read(s, (unsigned)off + i);
	}
	/* Output not ending in a newline (a shell prompt) goes out at once. */
	if (is_write && s->tx_count && !(s->ier & IER_ETBEI))
		serial8250_flush_tx(s);
	serial8250_update_irq(s);
	pthread_mutex_unlock(&s->lock);
}

int serial8250_init(struct vm *vm)
{
	struct serial8250 *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	s->vm = vm;
	pthread_mutex_init(&s->lock, NULL);
	s->thr_ipending = false;
	vm->uart = s;
	return bus_register(&vm->pio, UART_BASE, 8, serial8250_io, s, "serial8250");
}

void serial8250_destroy(struct vm *vm)
{
	struct serial8250 *s = vm->uart;

	if (!s)
		return;
	serial8250_flush_tx(s);
	free(s);
	vm->uart = NULL;
}
