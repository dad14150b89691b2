/*
 * The Intel 8254 programmable interval timer at 0x40-0x43 (1.193182 MHz) and
 * System Control Port B at 0x61, which gates counter 2 and shows its OUT.
 * Follows the 8254 datasheet (Intel 231164): modes 0-5, the control word,
 * counter latch and read-back commands, the status byte.
 */

/*
 * Counters are not ticked: a counter's value and OUT are computed from
 * clock_ns() when read. Counter 0 drives IRQ 0; a timerfd on the I/O thread
 * fires at its next OUT edge, computed from the programmed start so that
 * periodic modes do not drift. Edges closer than PIT_MIN_DELAY_NS together
 * are coalesced into one interrupt (counted in `coalesced`).
 *
 * Simplifications: a count is loaded at once (not on the next CLK); a new
 * count written in modes 2 and 3 restarts the period instead of waiting for
 * its end, as QEMU does. Lock order: pit, then pic (through irq_set()).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "../core/evloop.h"
#include "../core/log.h"
#include "../core/vm.h"
#include "dev.h"
#include "pit.h"

#define PIT_BASE 0x40 /* counters 0-2 at 0x40-0x42, control word at 0x43 */
#define PIT_CONTROL 3
#define PORT_B 0x61
#define PIT_HZ 1193182ull
#define PIT_IRQ 0
#define PIT_MIN_DELAY_NS 50000ull /* no timer fires sooner than this after the last */

/* Control word (write to 0x43): SC1-SC0, RW1-RW0, M2-M0, BCD. */
#define CW_SC(v) ((v) >> 6)
#define CW_RW(v) (((v) >> 4) & 3)
#define CW_MODE(v) (((v) >> 1) & 7)
#define CW_BCD 0x01
#define SC_READBACK 3
#define RW_LATCH 0 /* counter latch command */
#define RW_LSB 1
#define RW_MSB 2
#define RW_LOHI 3 /* least significant byte first, then most */

/* Read-back command: 11, !COUNT, !STATUS, CNT2, CNT1, CNT0, 0. */
#define RB_NOT_COUNT 0x20
#define RB_NOT_STATUS 0x10
#define RB_CNT(i) (2u << (i))

/* Status byte: OUTPUT, NULL COUNT, then the control word's RW, M and BCD bits. */
#define ST_OUTPUT 0x80
#define ST_NULL_COUNT 0x40

/* System Control Port B: bits 0-3 read back, 4-5 are status. */
#define PORTB_GATE2 0x01   /* counter 2's GATE */
#define PORTB_SPKR 0x02	   /* speaker data enable (no speaker here) */
#define PORTB_WRITABLE 0x0f
#define PORTB_REFRESH 0x10 /* refresh request: toggles on every read here */
#define PORTB_OUT2 0x20	   /* counter 2's OUT */

struct pit_channel {
	uint8_t cw;	   /* the control word's low six bits, for the status byte */
	uint8_t mode, rw;
	bool bcd;
	uint32_t count;	   /* the count register: 1..65536 (1..10000 in BCD) */
	bool armed;	   /* a count was loaded since the control word */
	bool running;	   /* counting: gate permits (modes 0, 2-4) or triggered (1, 5) */
	bool gate;
	uint64_t start_ns; /* when counting last (re)started ... */
	uint64_t base_ticks; /* ... and the CLKs counted before that (gate pauses) */
	bool null_count;
	bool latched, latch_hi, status_latched, read_hi, write_hi;
	uint16_t latch;
	uint8_t status, write_lsb;
	uint64_t edges;	   /* counter 0, modes 2 and 3: periods already signalled */
	bool fired;	   /* counter 0, modes 0, 1, 4, 5: terminal count signalled */
};

struct pit {
	struct vm *vm;
	pthread_mutex_t lock;
	struct pit_channel ch[3];
	int tfd;
	uint8_t portb;
	bool refresh;
	int irq_level;
	uint64_t coalesced; /* counter-0 periods folded into another's interrupt */
};

static uint64_t ns_to_ticks(uint64_t ns)
{
	return (uint64_t)((unsigned __int128)ns * PIT_HZ / 1000000000ull);
}

/* The first nanosecond at which ticks CLKs have passed. */
static uint64_t ticks_to_ns(uint64_t ticks)
{
	return (uint64_t)(((unsigned __int128)ticks * 1000000000ull + PIT_HZ - 1) / PIT_HZ);
}

static uint32_t ch_modulus(const struct pit_channel *c)
{
	return c->bcd ? 10000 : 65536;
}

static uint64_t ch_elapsed(const struct pit_channel *c, uint64_t now)
{
	uint64_t run = c->running && now > c->start_ns ? now - c->start_ns : 0;

	return c->base_ticks + ns_to_ticks(run);
}

/* The counting element's value (not yet BCD-coded) and OUT at time now. */
static uint32_t ch_eval(const struct pit_channel *c, uint64_t now, bool *out)
{
	uint64_t n = c->count, m = ch_modulus(c), d, p, half;
	uint32_t down;

	if (!c->armed || ((c->mode == 1 || c->mode == 5) && !c->running)) {
		*out = c->mode != 0; /* the control word's initial OUT */
		return c->count % (uint32_t)m;
	}
	d = ch_elapsed(c, now);
	down = (uint32_t)((n + m - d % m) % m); /* one-shot modes count down and wrap */
	switch (c->mode) {
	case 0: /* OUT rises at terminal count (mode 1: after the triggered one-shot) */
	case 1:
		*out = d >= n;
		return down;
	case 2: /* OUT low while the count is 1, then reload */
		p = d % n;
		*out = !c->running || n < 2 || p != n - 1;
		return (uint32_t)(n - p);
	case 3: /* square wave: high for ceil(n/2), low for floor(n/2), counting by 2 */
		p = d % n;
		half = (n + 1) / 2;
		*out = !c->running || p < half;
		return (uint32_t)((p < half ? n - 2 * p : n - 2 * (p - half)) & ~1ull);
	default: /* 4 and 5: OUT low for one CLK at terminal count */
		*out = d != n;
		return down;
	}
}

static uint16_t to_bcd(uint32_t v)
{
	v %= 10000;
	return (uint16_t)((v / 1000) << 12 | (v / 100 % 10) << 8 | (v / 10 % 10) << 4 | v % 10);
}

/* Nibbles above 9 are not BCD; take them as 9 rather than trust them. */
static uint32_t from_bcd(uint16_t v)
{
	uint32_t r = 0;

	for (int shift = 12; shift >= 0; shift -= 4) {
		uint32_t digit = (v >> shift) & 0xf;

		r = r * 10 + (digit > 9 ? 9 : digit);
	}
	return r;
}

static uint16_t ch_read_value(const struct pit_channel *c, uint64_t now, bool *out)
{
	uint32_t v = ch_eval(c, now, out);

	return c->bcd ? to_bcd(v) : (uint16_t)v;
}

/* IRQ 0 follows counter 0's OUT edges; the PIC latches the rising one. */
static void pit_irq_line(struct pit *pit, int level)
{
	if (level != pit->irq_level)
		irq_set(pit->vm, PIT_IRQ, level);
	pit->irq_level = level;
}

static void pit_irq_pulse(struct pit *pit)
{
	pit_irq_line(pit, 0);
	pit_irq_line(pit, 1);
	pit_irq_line(pit, 0);
}

/*
 * Signal the counter-0 edges that are due and arm the timer for the next
 * one; called with the lock held after every change to counter 0 and from
 * the timer.
 */
static void pit_ch0_sync(struct pit *pit, uint64_t now)
{
	struct pit_channel *c = &pit->ch[0];
	uint64_t next = 0, n = c->count, d, k, at, delay;

	if (c->armed && c->running) {
		d = ch_elapsed(c, now);
		if (c->mode == 2 || c->mode == 3) {
			k = d / n; /* OUT rises at the start of every period */
			if (k > c->edges) {
				pit->coalesced += k - c->edges - 1;
				c->edges = k;
				pit_irq_pulse(pit);
			}
			next = (k + 1) * n;
		} else if (d < n) {
			next = n;
		} else if (!c->fired) {
			c->fired = true;
			if (c->mode <= 1)
				pit_irq_line(pit, 1); /* OUT stays high after terminal count */
			else
				pit_irq_pulse(pit);   /* the strobe of modes 4 and 5 */
		}
	}
	if (!next) {
		timerfd_arm_ns(pit->tfd, 0, 0);
		return;
	}
	at = c->start_ns + ticks_to_ns(next - c->base_ticks);
	delay = at > now ? at - now : 0;
	timerfd_arm_ns(pit->tfd, delay < PIT_MIN_DELAY_NS ? PIT_MIN_DELAY_NS : delay, 0);
}

static void pit_timer(void *opaque, uint32_t events)
{
	struct pit *pit = opaque;
	uint64_t expirations;

	if (read(pit->tfd, &expirations, sizeof(expirations)) < 0 && errno != EAGAIN)
		log_guest("pit: timerfd read: %s", strerror(errno));
	pthread_mutex_lock(&pit->lock);
	pit_ch0_sync(pit, clock_ns());
	pthread_mutex_unlock(&pit->lock);
}

static void ch_restart(struct pit_channel *c, uint64_t now)
{
	c->base_ticks = 0;
	c->start_ns = now;
	c->edges = 0;
	c->fired = false;
}

static void ch_load(struct pit_channel *c, uint16_t raw, uint64_t now)
{
	uint32_t n = c->bcd ? from_bcd(raw) : raw;

	c->count = n ? n : ch_modulus(c); /* 0 is the largest count */
	c->armed = true;
	if (c->mode == 1 || c->mode == 5) {
		/* Loaded into the counting element only by a GATE trigger. */
		c->null_count = !c->running;
		c->fired = false;
		return;
	}
	c->null_count = false;
	ch_restart(c, now);
	c->running = c->gate;
}

static void ch_set_gate(struct pit_channel *c, bool gate, uint64_t now)
{
	if (gate == c->gate)
		return;
	c->gate = gate;
	if (!c->armed)
		return;
	switch (c->mode) {
	case 0:
	case 4: /* GATE low suspends counting */
		if (!gate) {
			c->base_ticks = ch_elapsed(c, now);
			c->running = false;
		} else {
			c->start_ns = now;
			c->running = true;
		}
		break;
	case 2:
	case 3: /* GATE low stops (OUT high); a rising GATE reloads */
		if (gate)
			ch_restart(c, now);
		else
			c->base_ticks = ch_elapsed(c, now);
		c->running = gate;
		break;
	default: /* 1 and 5: a rising GATE triggers */
		if (gate) {
			ch_restart(c, now);
			c->running = true;
			c->null_count = false;
		}
		break;
	}
}

static void ch_latch(struct pit_channel *c, uint64_t now)
{
	bool out;

	if (c->latched) /* a second latch before the read is ignored */
		return;
	c->latch = ch_read_value(c, now, &out);
	c->latched = true;
	c->latch_hi = false;
}

static void ch_latch_status(struct pit_channel *c, uint64_t now)
{
	bool out;

	if (c->status_latched)
		return;
	ch_eval(c, now, &out);
	c->status = (uint8_t)((out ? ST_OUTPUT : 0) | (c->null_count ? ST_NULL_COUNT : 0) | c->cw);
	c->status_latched = true;
}

static void pit_control(struct pit *pit, uint8_t v, uint64_t now)
{
	struct pit_channel *c;

	if (CW_SC(v) == SC_READBACK) {
		for (int i = 0; i < 3; i++) {
			if (!(v & RB_CNT(i)))
				continue;
			if (!(v & RB_NOT_COUNT))
				ch_latch(&pit->ch[i], now);
			if (!(v & RB_NOT_STATUS))
				ch_latch_status(&pit->ch[i], now);
		}
		return;
	}
	c = &pit->ch[CW_SC(v)];
	if (CW_RW(v) == RW_LATCH) {
		ch_latch(c, now);
		return;
	}
	/* A control word resets the counter's logic; OUT takes the mode's initial level. */
	c->cw = v & 0x3f;
	c->rw = CW_RW(v);
	c->mode = CW_MODE(v) >= 6 ? CW_MODE(v) - 4 : CW_MODE(v); /* modes 2, 3 are X10, X11 */
	c->bcd = v & CW_BCD;
	c->armed = false;
	c->running = false;
	c->null_count = true;
	c->latched = c->status_latched = false;
	c->read_hi = c->write_hi = false;
	ch_restart(c, now);
}

static uint8_t ch_read(struct pit_channel *c, uint64_t now)
{
	uint16_t v;
	bool out, hi;

	if (c->status_latched) {
		c->status_latched = false;
		return c->status;
	}
	if (c->latched) {
		v = c->latch;
		if (c->rw == RW_LOHI && !c->latch_hi) {
			c->latch_hi = true;
			return (uint8_t)v;
		}
		c->latched = false;
		return c->rw == RW_LSB ? (uint8_t)v : (uint8_t)(v >> 8);
	}
	v = ch_read_value(c, now, &out);
	hi = c->rw == RW_MSB;
	if (c->rw == RW_LOHI) {
		hi = c->read_hi;
		c->read_hi = !c->read_hi;
	}
	return hi ? (uint8_t)(v >> 8) : (uint8_t)v;
}

static void ch_write(struct pit_channel *c, uint8_t v, uint64_t now)
{
	switch (c->rw) {
	case RW_LSB:
		ch_load(c, v, now);
		break;
	case RW_MSB:
		ch_load(c, (uint16_t)(v << 8), now);
		break;
	default:
		if (!c->write_hi) {
			c->write_lsb = v;
			c->write_hi = true;
			if (c->mode == 0) /* mode 0: the first byte stops counting, OUT low */
				c->armed = false;
		} else {
			c->write_hi = false;
			ch_load(c, (uint16_t)(c->write_lsb | v << 8), now);
		}
		break;
	}
}

static void pit_io(void *opaque, uint64_t off, uint8_t *data, unsigned size, bool is_write)
{
	struct pit *pit = opaque;
	uint64_t now = clock_ns();
	bool ch0 = false, out;

	pthread_mutex_lock(&pit->lock);
	for (unsigned i = 0; i < size; i++) {
		uint64_t port = off + i;

		if (port > PIT_CONTROL) {
			if (!is_write)
				data[i] = 0xff;
		} else if (port == PIT_CONTROL) {
			if (is_write) {
				pit_control(pit, data[i], now);
				ch0 |= CW_SC(data[i]) == 0 && CW_RW(data[i]) != RW_LATCH;
			} else {
				data[i] = 0xff; /* the control word register is write-only */
			}
		} else if (is_write) {
			ch_write(&pit->ch[port], data[i], now);
			ch0 |= port == 0;
		} else {
			data[i] = ch_read(&pit->ch[port], now);
		}
	}
	if (ch0) {
		/* A control word or count can only lower OUT; outside modes 0 and 1
		 * IRQ 0 is a pulse per edge, so the line rests low anyway. */
		ch_eval(&pit->ch[0], now, &out);
		if (!out || pit->ch[0].mode > 1)
			pit_irq_line(pit, 0);
		pit_ch0_sync(pit, now);
	}
	pthread_mutex_unlock(&pit->lock);
}

static void portb_io(void *opaque, uint64_t off, uint8_t *data, unsigned size, bool is_write)
{
	struct pit *pit = opaque;
	uint64_t now = clock_ns();
	bool out2;

	pthread_mutex_lock(&pit->lock);
	if (is_write) {
		pit->portb = data[0] & PORTB_WRITABLE;
		ch_set_gate(&pit->ch[2], pit->portb & PORTB_GATE2, now);
	} else {
		ch_eval(&pit->ch[2], now, &out2);
		pit->refresh = !pit->refresh;
		data[0] = (uint8_t)(pit->portb | (pit->refresh ? PORTB_REFRESH : 0) |
				    (out2 ? PORTB_OUT2 : 0));
		memset(data + 1, 0xff, size - 1); /* 0x62-0x64 are not ours */
	}
	pthread_mutex_unlock(&pit->lock);
}

/* As a PC BIOS leaves it: counters in mode 3 with count 65536 (18.2 Hz on
 * IRQ 0), counter 1 the DRAM refresh, counter 2 gated off. */
static void pit_reset(struct pit *pit, uint64_t now)
{
	for (int i = 0; i < 3; i++) {
		struct pit_channel *c = &pit->ch[i];

		pit_control(pit, (uint8_t)(i << 6 | RW_LOHI << 4 | 3 << 1), now);
		c->gate = i != 2;
		ch_load(c, i == 1 ? 18 : 0, now);
	}
}

int pit_init(struct vm *vm)
{
	struct pit *pit = calloc(1, sizeof(*pit));
	int err;

	if (!pit)
		return -ENOMEM;
	pit->vm = vm;
	pthread_mutex_init(&pit->lock, NULL);
	pit->tfd = evloop_add_timer(&vm->loop, pit_timer, pit);
	if (pit->tfd < 0) {
		err = pit->tfd;
		free(pit);
		return err;
	}
	/* From here the bus may point at pit: it stays until pit_destroy(). */
	vm->pit = pit;
	pthread_mutex_lock(&pit->lock);
	pit_reset(pit, clock_ns());
	pit_ch0_sync(pit, clock_ns());
	pthread_mutex_unlock(&pit->lock);
	err = bus_register(&vm->pio, PIT_BASE, 4, pit_io, pit, "pit");
	if (!err)
		err = bus_register(&vm->pio, PORT_B, 1, portb_io, pit, "port-b");
	return err;
}

void pit_destroy(struct vm *vm)
{
	struct pit *pit = vm->pit;

	if (!pit)
		return;
	timerfd_arm_ns(pit->tfd, 0, 0);
	evloop_del(&vm->loop, pit->tfd);
	close(pit->tfd);
	pthread_mutex_destroy(&pit->lock);
	free(pit);
	vm->pit = NULL;
}
