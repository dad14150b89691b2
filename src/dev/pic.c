/*
 * The PC's two cascaded Intel 8259A interrupt controllers (master 0x20, slave
 * 0xa0 on the master's IR2) and the PIIX ELCR at 0x4d0-0x4d1 (edge/level per
 * IRQ). Follows the 8259A datasheet (Intel 231468): ICW1-4, OCW1-3, rotation,
 * poll, special mask, automatic EOI. Only the bt engine uses it.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "../core/log.h"
#include "../core/vm.h"
#include "dev.h"
#include "pic.h"

#define PIC_MASTER_BASE 0x20
#define PIC_SLAVE_BASE 0xa0
#define ELCR_BASE 0x4d0
#define PIC_CASCADE 2 /* the master's input wired to the slave's INT */

/* Command port (A0=0) writes: bit 4 marks ICW1; else bit 3 picks OCW3 over OCW2. */
#define ICW1_IC4 0x01  /* ICW4 will follow */
#define ICW1_SNGL 0x02 /* single 8259A: no ICW3 */
#define ICW1_ADI 0x04  /* call address interval (MCS-80/85 only) */
#define ICW1_LTIM 0x08 /* all inputs level-triggered */
#define ICW1_INIT 0x10
#define OCW3_SEL 0x08

#define ICW4_UPM 0x01  /* 8086/88 mode (else MCS-80/85, which we do not model) */
#define ICW4_AEOI 0x02 /* automatic end of interrupt */
#define ICW4_SFNM 0x10 /* special fully nested mode */

/* OCW2 bits 7-5 (R, SL, EOI) select the command; bits 2-0 the level. */
#define OCW2_ROTATE_AEOI_CLEAR 0
#define OCW2_EOI 1
#define OCW2_NOP 2
#define OCW2_SPECIFIC_EOI 3
#define OCW2_ROTATE_AEOI_SET 4
#define OCW2_ROTATE_EOI 5
#define OCW2_SET_PRIORITY 6
#define OCW2_ROTATE_SPECIFIC_EOI 7

#define OCW3_RIS 0x01  /* read ISR (else IRR) ... */
#define OCW3_RR 0x02   /* ... when this is set */
#define OCW3_P 0x04    /* poll: the next read is an INTA */
#define OCW3_SMM 0x20  /* special mask mode on (else off) ... */
#define OCW3_ESMM 0x40 /* ... when this is set */

#define POLL_INT 0x80 /* poll word: an interrupt was pending; bits 2-0 its level */

/* Which ELCR bits exist: IRQ 0, 1, 2, 8 and 13 are always edge-triggered. */
#define ELCR_MASTER_MASK 0xf8
#define ELCR_SLAVE_MASK 0xde

enum pic_init_step { INIT_DONE, INIT_ICW2, INIT_ICW3, INIT_ICW4 };

struct pic_chip {
	uint8_t irr, isr, imr;
	uint8_t lines;	      /* the IR inputs' levels as last driven */
	uint8_t elcr, elcr_mask;
	uint8_t priority_add; /* the IR level that has the highest priority */
	uint8_t vector_base;  /* ICW2 T7-T3 */
	uint8_t icw1, icw3, icw4;
	enum pic_init_step init;
	bool read_isr, poll, special_mask, rotate_aeoi;
};

struct pic {
	struct vm *vm;
	pthread_mutex_t lock;
	struct pic_chip chip[2]; /* master, slave */
	atomic_bool intr;
	void (*notify)(void *opaque);
	void *notify_opaque;
	uint64_t spurious;
};

static uint8_t chip_level_mask(const struct pic_chip *c)
{
	return c->elcr | ((c->icw1 & ICW1_LTIM) ? 0xff : 0);
}

/* A level-triggered request is the line itself. */
static void chip_sync_level(struct pic_chip *c)
{
	uint8_t lvl = chip_level_mask(c);

	c->irr = (uint8_t)((c->irr & ~lvl) | (c->lines & lvl));
}

static void chip_set_line(struct pic_chip *c, unsigned irq, int level)
{
	uint8_t bit = (uint8_t)(1u << irq);

	if (level && !(c->lines & bit))
		c->irr |= bit; /* the edge-sense latch; a level input resyncs below */
	if (level)
		c->lines |= bit;
	else
		c->lines &= (uint8_t)~bit;
	chip_sync_level(c);
}

/* 0 is the highest priority, 8 means none; rotation moves level priority_add to 0. */
static int chip_priority(const struct pic_chip *c, uint8_t mask)
{
	for (int p = 0; p < 8; p++)
		if (mask & (1u << ((p + c->priority_add) & 7)))
			return p;
	return 8;
}

/* The IR level this chip would interrupt for now, or -1. */
static int chip_pending(const struct pic_chip *c, bool master)
{
	uint8_t in_service = c->isr;
	int p = chip_priority(c, c->irr & ~c->imr);

	if (p == 8)
		return -1;
	/* Special mask mode: a masked in-service level no longer holds off lower ones. */
	if (c->special_mask)
		in_service &= (uint8_t)~c->imr;
	/* Special fully nested mode: the slave may interrupt its own in-service level. */
	if (master && (c->icw4 & ICW4_SFNM))
		in_service &= (uint8_t)~(1u << PIC_CASCADE);
	if (p < chip_priority(c, in_service))
		return (p + c->priority_add) & 7;
	return -1;
}

/* The INTA (or poll) side of a request: IRR to ISR, unless auto-EOI. */
static void chip_ack(struct pic_chip *c, int irq)
{
	uint8_t bit = (uint8_t)(1u << irq);

	if (!(chip_level_mask(c) & bit))
		c->irr &= (uint8_t)~bit;
	if (c->icw4 & ICW4_AEOI) {
		if (c->rotate_aeoi)
			c->priority_add = (uint8_t)((irq + 1) & 7);
	} else {
		c->isr |= bit;
	}
}

/*
 * Recompute the cascade and INTR; called with the lock held. The slave's INT
 * reaches the master's IR2 as a level (not through its edge latch) so that a
 * slave request still pending after an INTA can never be lost.
 * Returns true when INTR has just risen.
 */
static void pic_cascade(struct pic *pic)
{
	struct pic_chip *m = &pic->chip[0];

	if (chip_pending(&pic->chip[1], false) >= 0)
		m->irr |= 1u << PIC_CASCADE;
	else
		m->irr &= (uint8_t)~(1u << PIC_CASCADE);
}

static bool pic_update(struct pic *pic)
{
	bool intr, was;

	pic_cascade(pic);
	intr = chip_pending(&pic->chip[0], true) >= 0;
	was = atomic_exchange(&pic->intr, intr);
	return intr && !was;
}

/* Drop the lock, then tell the engine INTR rose. */
static void pic_unlock_notify(struct pic *pic, bool rising)
{
	void (*fn)(void *) = pic->notify;
	void *opaque = pic->notify_opaque;

	pthread_mutex_unlock(&pic->lock);
	if (rising && fn)
		fn(opaque);
}

static void chip_icw1(struct pic_chip *c, uint8_t v)
{
	c->icw1 = v;
	c->init = INIT_ICW2;
	/* The datasheet's list: edge sense reset, IMR cleared, IR7 lowest
	 * priority, special mask off, status read set to IRR; ICW4 zero unless
	 * IC4. ISR is cleared too: nothing can be in service on a fresh chip. */
	c->irr = 0;
	c->imr = 0;
	c->isr = 0;
	c->priority_add = 0;
	c->special_mask = false;
	c->read_isr = false;
	c->poll = false;
	c->rotate_aeoi = false;
	if (!(v & ICW1_IC4))
		c->icw4 = 0;
	chip_sync_level(c);
}

static void chip_ocw2(struct pic_chip *c, uint8_t v)
{
	int irq = v & 7, p;

	switch (v >> 5) {
	case OCW2_ROTATE_AEOI_CLEAR:
		c->rotate_aeoi = false;
		break;
	case OCW2_ROTATE_AEOI_SET:
		c->rotate_aeoi = true;
		break;
	case OCW2_EOI:
	case OCW2_ROTATE_EOI:
		/* Non-specific: the highest-priority level in service. */
		p = chip_priority(c, c->isr);
		if (p == 8)
			break;
		irq = (p + c->priority_add) & 7;
		c->isr &= (uint8_t)~(1u << irq);
		if ((v >> 5) == OCW2_ROTATE_EOI)
			c->priority_add = (uint8_t)((irq + 1) & 7);
		break;
	case OCW2_SPECIFIC_EOI:
		c->isr &= (uint8_t)~(1u << irq);
		break;
	case OCW2_ROTATE_SPECIFIC_EOI:
		c->isr &= (uint8_t)~(1u << irq);
		c->priority_add = (uint8_t)((irq + 1) & 7);
		break;
	case OCW2_SET_PRIORITY: /* level v&7 becomes the lowest */
		c->priority_add = (uint8_t)((irq + 1) & 7);
		break;
	case OCW2_NOP:
		break;
	}
}

static void chip_write(struct pic_chip *c, unsigned a0, uint8_t v)
{
	if (a0 == 0) {
		if (v & ICW1_INIT) {
			chip_icw1(c, v);
		} else if (v & OCW3_SEL) {
			if (v & OCW3_P)
				c->poll = true;
			if (v & OCW3_RR)
				c->read_isr = v & OCW3_RIS;
			if (v & OCW3_ESMM)
				c->special_mask = v & OCW3_SMM;
		} else {
			chip_ocw2(c, v);
		}
		return;
	}
	switch (c->init) {
	case INIT_ICW2:
		c->vector_base = v & 0xf8; /* 8086 mode: T7-T3; the low three bits are the IR */
		if (!(c->icw1 & ICW1_SNGL))
			c->init = INIT_ICW3;
		else
			c->init = (c->icw1 & ICW1_IC4) ? INIT_ICW4 : INIT_DONE;
		break;
	case INIT_ICW3: /* cascade wiring: fixed on a PC, so only remembered */
		c->icw3 = v;
		c->init = (c->icw1 & ICW1_IC4) ? INIT_ICW4 : INIT_DONE;
		break;
	case INIT_ICW4:
		c->icw4 = v;
		c->init = INIT_DONE;
		if (!(v & ICW4_UPM))
			log_guest("pic: MCS-80/85 mode requested; staying in 8086 mode");
		break;
	case INIT_DONE: /* OCW1 */
		c->imr = v;
		break;
	}
}

static uint8_t chip_read(struct pic_chip *c, unsigned a0, bool master)
{
	if (c->poll) {
		int irq = chip_pending(c, master);

		c->poll = false;
		if (irq < 0)
			return 0;
		chip_ack(c, irq);
		return (uint8_t)(POLL_INT | irq);
	}
	if (a0)
		return c->imr;
	return c->read_isr ? c->isr : c->irr;
}

/* A wider access reaches consecutive ports, one byte each, as on the ISA bus. */
static void pic_chip_io(struct pic *pic, int idx, uint64_t off, uint8_t *data, unsigned size,
			bool is_write)
{
	bool rising;

	pthread_mutex_lock(&pic->lock);
	for (unsigned i = 0; i < size; i++) {
		uint64_t port = off + i;

		if (port >= 2) {
			if (!is_write)
				data[i] = 0xff;
		} else if (is_write) {
			chip_write(&pic->chip[idx], (unsigned)port, data[i]);
		} else {
			/* The master's IRR bit 2 must be current before it is read. */
			pic_cascade(pic);
			data[i] = chip_read(&pic->chip[idx], (unsigned)port, idx == 0);
		}
	}
	rising = pic_update(pic);
	pic_unlock_notify(pic, rising);
}

static void pic_master_io(void *opaque, uint64_t off, uint8_t *data, unsigned size, bool is_write)
{
	pic_chip_io(opaque, 0, off, data, size, is_write);
}

static void pic_slave_io(void *opaque, uint64_t off, uint8_t *data, unsigned size, bool is_write)
{
	pic_chip_io(opaque, 1, off, data, size, is_write);
}

static void elcr_io(void *opaque, uint64_t off, uint8_t *data, unsigned size, bool is_write)
{
	struct pic *pic = opaque;
	bool rising;

	pthread_mutex_lock(&pic->lock);
	for (unsigned i = 0; i < size; i++) {
		struct pic_chip *c = off + i < 2 ? &pic->chip[off + i] : NULL;

		if (!c) {
			if (!is_write)
				data[i] = 0xff;
		} else if (is_write) {
			c->elcr = data[i] & c->elcr_mask;
			chip_sync_level(c);
		} else {
			data[i] = c->elcr;
		}
	}
	rising = pic_update(pic);
	pic_unlock_notify(pic, rising);
}

void pic_set_irq(struct pic *pic, unsigned irq, int level)
{
	bool rising;

	if (irq >= 16 || irq == PIC_CASCADE)
		return;
	pthread_mutex_lock(&pic->lock);
	chip_set_line(&pic->chip[irq >> 3], irq & 7, level);
	rising = pic_update(pic);
	pic_unlock_notify(pic, rising);
}

bool pic_intr(struct pic *pic)
{
	return atomic_load(&pic->intr);
}

int pic_ack(struct pic *pic)
{
	struct pic_chip *m = &pic->chip[0], *s = &pic->chip[1];
	int irq, vector;
	bool rising;

	pthread_mutex_lock(&pic->lock);
	pic_cascade(pic);
	irq = chip_pending(m, true);
	if (irq < 0) {
		/* INTR fell before the INTA: the master answers with IR7. */
		vector = m->vector_base | 7;
		pic->spurious++;
	} else {
		chip_ack(m, irq);
		if (irq == PIC_CASCADE) {
			int irq2 = chip_pending(s, false);

			if (irq2 < 0) {
				vector = s->vector_base | 7; /* spurious IRQ 15 */
				pic->spurious++;
			} else {
				chip_ack(s, irq2);
				vector = s->vector_base | irq2;
			}
		} else {
			vector = m->vector_base | irq;
		}
	}
	rising = pic_update(pic);
	pic_unlock_notify(pic, rising);
	return vector;
}

void pic_set_notify(struct pic *pic, void (*fn)(void *opaque), void *opaque)
{
	pthread_mutex_lock(&pic->lock);
	pic->notify = fn;
	pic->notify_opaque = opaque;
	pthread_mutex_unlock(&pic->lock);
}

/*
 * Power-on state as a PC BIOS leaves it: vectors 0x08 and 0x70, every line
 * masked, and the ACPI SCI level-triggered in the ELCR (an SCI is "sharable,
 * level, active low", ACPI 6.4 §5.2.9 SCI_INT). Linux without an IOAPIC
 * rewrites the ELCR to the SCI's bit alone and warns when it differs.
 */
static void pic_reset(struct pic *pic)
{
	static const uint8_t base[2] = { 0x08, 0x70 }, elcr_mask[2] = { ELCR_MASTER_MASK,
									 ELCR_SLAVE_MASK };

	for (int i = 0; i < 2; i++) {
		struct pic_chip *c = &pic->chip[i];

		memset(c, 0, sizeof(*c));
		c->icw1 = ICW1_INIT | ICW1_IC4;
		c->icw3 = i ? PIC_CASCADE : 1u << PIC_CASCADE;
		c->icw4 = ICW4_UPM;
		c->vector_base = base[i];
		c->elcr_mask = elcr_mask[i];
		c->imr = 0xff;
	}
	pic->chip[ACPI_SCI_IRQ / 8].elcr = 1u << (ACPI_SCI_IRQ % 8);
}

int pic_init(struct vm *vm)
{
	struct pic *pic = calloc(1, sizeof(*pic));
	int err;

	if (!pic)
		return -ENOMEM;
	pic->vm = vm;
	pthread_mutex_init(&pic->lock, NULL);
	pic_reset(pic);
	/* Set before registering: the bus cannot unregister, so a half-registered
	 * PIC must stay reachable until pic_destroy(). */
	vm->pic = pic;
	err = bus_register(&vm->pio, PIC_MASTER_BASE, 2, pic_master_io, pic, "pic-master");
	if (!err)
		err = bus_register(&vm->pio, PIC_SLAVE_BASE, 2, pic_slave_io, pic, "pic-slave");
	if (!err)
		err = bus_register(&vm->pio, ELCR_BASE, 2, elcr_io, pic, "elcr");
	return err;
}

void pic_destroy(struct vm *vm)
{
	struct pic *pic = vm->pic;

	if (!pic)
		return;
	pthread_mutex_destroy(&pic->lock);
	free(pic);
	vm->pic = NULL;
}
