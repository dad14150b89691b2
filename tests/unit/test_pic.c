/*
 * The 8259A pair and ELCR (src/dev/pic.c) through their port handlers and the
 * bt engine's interface: Linux's init sequence, priorities, EOI flavours,
 * edge and level, poll, special mask, spurious IRQ 7, and garbage on every port.
 */
#include <pthread.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

#include "core/vm.h"
#include "dev/pic.h"
#include "fake_vm.h"
#include "tap.h"

static int notified;

static void on_intr(void *opaque)
{
	__atomic_add_fetch((int *)opaque, 1, __ATOMIC_RELAXED);
}

/* Linux's init_8259A(): vectors 0x30/0x38, cascade on IR2, 8086 mode. */
static void linux_init(uint8_t icw4)
{
	outb(0x21, 0xff);
	outb(0xa1, 0xff);
	outb(0x20, 0x11);
	outb(0x21, 0x30);
	outb(0x21, 0x04);
	outb(0x21, icw4);
	outb(0xa0, 0x11);
	outb(0xa1, 0x38);
	outb(0xa1, 0x02);
	outb(0xa1, icw4);
	outb(0x21, 0x00);
	outb(0xa1, 0x00);
}

static unsigned elcr_at_reset;

static void fresh(void)
{
	if (vm.pic)
		pic_destroy(&vm);
	memset(&vm, 0, sizeof(vm));
	vm.engine = &fake_engine;
	vm.pio.name = "pio";
	pic_init(&vm);
	/* the tests below start from an all-edge ELCR; test_level checks the reset value */
	elcr_at_reset = (unsigned)(inb(0x4d0) | inb(0x4d1) << 8);
	outb(0x4d0, 0);
	outb(0x4d1, 0);
	notified = 0;
	pic_set_notify(vm.pic, on_intr, &notified);
}

static uint8_t read_isr(uint16_t cmd)
{
	outb(cmd, 0x0b);
	return inb(cmd);
}

static uint8_t read_irr(uint16_t cmd)
{
	outb(cmd, 0x0a);
	return inb(cmd);
}

static void test_basics(void)
{
	fresh();
	is_int(inb(0x21), 0xff, "power-on: master IMR all masked");
	is_int(inb(0xa1), 0xff, "power-on: slave IMR all masked");
	pic_set_irq(vm.pic, 0, 1);
	ok(!pic_intr(vm.pic), "a masked request does not raise INTR");
	is_int(read_irr(0x20), 0x01, "but IRR latches it");
	linux_init(0x01);
	is_int(read_irr(0x20), 0x00, "ICW1 resets the edge-sense latch");
	pic_set_irq(vm.pic, 0, 0);
	pic_set_irq(vm.pic, 0, 1);
	ok(pic_intr(vm.pic), "a rising edge on IRQ 0 raises INTR");
	is_int(notified, 1, "notify ran once");
	is_int(pic_ack(vm.pic), 0x30, "INTA gives vector 0x30");
	ok(!pic_intr(vm.pic), "INTR falls after INTA");
	is_int(read_isr(0x20), 0x01, "ISR bit 0 set");
	is_int(read_irr(0x20), 0x00, "IRR bit 0 cleared (edge)");
	pic_set_irq(vm.pic, 1, 1);
	ok(!pic_intr(vm.pic), "IRQ 1 waits while IRQ 0 is in service");
	outb(0x20, 0x20); /* non-specific EOI */
	is_int(read_isr(0x20), 0x00, "non-specific EOI clears ISR");
	ok(pic_intr(vm.pic), "IRQ 1 is delivered after the EOI");
	is_int(notified, 2, "notify ran again");
	is_int(pic_ack(vm.pic), 0x31, "vector 0x31");
	pic_set_irq(vm.pic, 0, 0);
	pic_set_irq(vm.pic, 0, 1);
	ok(pic_intr(vm.pic), "IRQ 0 nests over IRQ 1 in service");
	is_int(pic_ack(vm.pic), 0x30, "vector 0x30 nested");
	is_int(read_isr(0x20), 0x03, "both in service");
	outb(0x20, 0x20);
	is_int(read_isr(0x20), 0x02, "non-specific EOI clears the highest (IRQ 0)");
	outb(0x20, 0x61);
	is_int(read_isr(0x20), 0x00, "specific EOI for IRQ 1");
	is_int(pic_ack(vm.pic), 0x37, "INTA with nothing pending: spurious IRQ 7");
	is_int(read_isr(0x20), 0x00, "spurious IRQ 7 sets no ISR bit");
	outb(0x21, 0x5a);
	is_int(inb(0x21), 0x5a, "OCW1 reads back");
	outb(0x21, 0x00);
}

static void test_slave(void)
{
	fresh();
	linux_init(0x01);
	pic_set_irq(vm.pic, 12, 1);
	ok(pic_intr(vm.pic), "IRQ 12 raises INTR through the cascade");
	is_int(read_irr(0x20) & 0x04, 0x04, "master IRR bit 2 follows the slave");
	is_int(pic_ack(vm.pic), 0x3c, "vector 0x3c");
	is_int(read_isr(0x20), 0x04, "master ISR bit 2");
	is_int(read_isr(0xa0), 0x10, "slave ISR bit 4");
	pic_set_irq(vm.pic, 8, 1);
	ok(!pic_intr(vm.pic), "IRQ 8 waits for the master's EOI (not fully nested)");
	outb(0xa0, 0x20);
	outb(0x20, 0x20);
	ok(pic_intr(vm.pic), "IRQ 8 after both EOIs");
	is_int(pic_ack(vm.pic), 0x38, "vector 0x38");
	outb(0xa0, 0x20);
	outb(0x20, 0x20);
	pic_set_irq(vm.pic, 9, 1);
	outb(0xa1, 0x02);
	ok(!pic_intr(vm.pic), "masking the slave's IRQ 9 drops the cascade");
	outb(0xa1, 0x00);
	pic_set_irq(vm.pic, 11, 1);
	is_int(pic_ack(vm.pic), 0x39, "slave priority: IRQ 9 before 11");
	outb(0xa0, 0x20);
	outb(0x20, 0x20);
	is_int(pic_ack(vm.pic), 0x3b, "then IRQ 11 (not lost behind the cascade)");
	outb(0xa0, 0x20);
	outb(0x20, 0x20);
	outb(0x21, 0x04);
	pic_set_irq(vm.pic, 14, 1);
	ok(!pic_intr(vm.pic), "masking the master's IR2 holds off the slave");
	outb(0x21, 0x00);
	ok(pic_intr(vm.pic), "unmasking delivers it");
	is_int(pic_ack(vm.pic), 0x3e, "vector 0x3e");
}

static void test_level(void)
{
	fresh();
	linux_init(0x01);
	is_int(elcr_at_reset, 0x0200, "ELCR at reset: the SCI (IRQ 9) level, as firmware leaves it");
	outb(0x4d0, 0xff);
	outb(0x4d1, 0xff);
	is_int(inb(0x4d0), 0xf8, "ELCR: IRQ 0-2 cannot be level");
	is_int(inb(0x4d1), 0xde, "ELCR: IRQ 8 and 13 cannot be level");
	outb(0x4d0, 0x00);
	outb(0x4d1, 0x04); /* IRQ 10 level */
	pic_set_irq(vm.pic, 10, 1);
	is_int(pic_ack(vm.pic), 0x3a, "level IRQ 10");
	outb(0xa0, 0x20);
	outb(0x20, 0x20);
	ok(pic_intr(vm.pic), "a level line still high interrupts again after EOI");
	pic_set_irq(vm.pic, 10, 0);
	ok(!pic_intr(vm.pic), "dropping the level line withdraws the request");
	is_int(pic_ack(vm.pic), 0x37, "INTA after the request vanished: spurious IRQ 7");
	pic_set_irq(vm.pic, 3, 1);
	is_int(pic_ack(vm.pic), 0x33, "edge IRQ 3");
	outb(0x20, 0x20);
	ok(!pic_intr(vm.pic), "an edge line held high does not interrupt again");
	pic_set_irq(vm.pic, 4, 1);
	pic_set_irq(vm.pic, 4, 0);
	ok(pic_intr(vm.pic), "a short pulse is latched");
	is_int(pic_ack(vm.pic), 0x34, "vector 0x34");
	outb(0x20, 0x20);
	pic_set_irq(vm.pic, 3, 0);
	outb(0x20, 0x19); /* ICW1 with LTIM */
	outb(0x21, 0x30);
	outb(0x21, 0x04);
	outb(0x21, 0x01);
	pic_set_irq(vm.pic, 5, 1);
	pic_set_irq(vm.pic, 5, 0);
	ok(!pic_intr(vm.pic), "LTIM: a pulse is not latched");
	ok(!(read_irr(0x20) & 0x20), "LTIM: IRR follows the line");
}

static void test_modes(void)
{
	fresh();
	linux_init(0x03); /* auto-EOI */
	pic_set_irq(vm.pic, 6, 1);
	is_int(pic_ack(vm.pic), 0x36, "auto-EOI: vector");
	is_int(read_isr(0x20), 0x00, "auto-EOI: no ISR bit");

	fresh();
	linux_init(0x01);
	outb(0x20, 0xc3); /* IR3 lowest, so IR4 highest */
	pic_set_irq(vm.pic, 1, 1);
	pic_set_irq(vm.pic, 5, 1);
	is_int(pic_ack(vm.pic), 0x35, "set priority: IR5 beats IR1");
	outb(0x20, 0xa0); /* rotate on non-specific EOI: IR5 becomes lowest */
	is_int(read_isr(0x20), 0x00, "rotating EOI cleared ISR");
	pic_set_irq(vm.pic, 5, 0);
	pic_set_irq(vm.pic, 5, 1);
	is_int(pic_ack(vm.pic), 0x31, "after rotation IR1 beats IR5");
	outb(0x20, 0xe1); /* rotate on specific EOI 1 */
	is_int(pic_ack(vm.pic), 0x35, "then IR5");
	outb(0x20, 0x65);

	/* Poll mode */
	pic_set_irq(vm.pic, 7, 1);
	outb(0x20, 0x0c);
	is_int(inb(0x20), 0x87, "poll: interrupt at level 7");
	is_int(read_isr(0x20), 0x80, "poll acts as an INTA");
	outb(0x20, 0x0c);
	is_int(inb(0x20), 0x00, "poll with nothing pending: 0");
	outb(0x20, 0x67);

	/* Special mask mode: level 3 in service, mask it, and level 5 may come in. */
	pic_set_irq(vm.pic, 3, 1);
	is_int(pic_ack(vm.pic), 0x33, "IRQ 3 in service");
	pic_set_irq(vm.pic, 6, 0);
	pic_set_irq(vm.pic, 6, 1);
	ok(!pic_intr(vm.pic), "IRQ 6 waits behind IRQ 3");
	outb(0x20, 0x68);
	outb(0x21, 0x08);
	ok(pic_intr(vm.pic), "special mask mode lets IRQ 6 in");
	is_int(pic_ack(vm.pic), 0x36, "vector 0x36 under special mask");
	outb(0x20, 0x48);
	outb(0x21, 0x00);
}

/* The test kernel interleaves the two chips' ICWs: each has its own sequence. */
static void test_interleaved(void)
{
	fresh();
	outb(0x20, 0x11);
	outb(0xa0, 0x11);
	outb(0x21, 0x20);
	outb(0xa1, 0x28);
	outb(0x21, 0x04);
	outb(0xa1, 0x02);
	outb(0x21, 0x01);
	outb(0xa1, 0x01);
	outb(0x21, 0xfa);
	outb(0xa1, 0xff);
	is_int(inb(0x21), 0xfa, "interleaved init: master IMR");
	pic_set_irq(vm.pic, 0, 1);
	is_int(pic_ack(vm.pic), 0x20, "interleaved init: master vector base 0x20");
	outb(0xa1, 0xfe);
	pic_set_irq(vm.pic, 8, 1);
	outb(0x20, 0x20);
	is_int(pic_ack(vm.pic), 0x28, "interleaved init: slave vector base 0x28");
}

static void test_hostile(void)
{
	static const uint16_t ports[] = { 0x20, 0x21, 0xa0, 0xa1, 0x4d0, 0x4d1 };
	uint8_t buf[8];
	bool fine = true;

	fresh();
	outb(0x21, 0x12); /* ICW2 before any ICW1: just OCW1 */
	is_int(inb(0x21), 0x12, "data before ICW1 is OCW1");
	outb(0x20, 0x13); /* single, IC4 */
	outb(0x21, 0x47);
	outb(0x21, 0x01); /* ICW4: no ICW3 in single mode */
	outb(0x21, 0xab);
	is_int(inb(0x21), 0xab, "single mode skips ICW3");
	outb(0x20, 0x10); /* no IC4 */
	outb(0x20, 0x0a); /* an OCW3 in the middle of init */
	outb(0x21, 0x50);
	outb(0x21, 0x04);
	outb(0x21, 0x3c);
	is_int(inb(0x21), 0x3c, "init without IC4 ends after ICW3");
	outb(0x21, 0);
	pic_set_irq(vm.pic, 1, 1);
	is_int(pic_ack(vm.pic), 0x51, "ICW2's low bits are ignored");
	pic_set_irq(vm.pic, 16, 1);
	pic_set_irq(vm.pic, 2, 1);
	pic_set_irq(vm.pic, 0xffffffffu, 1);
	ok(true, "irq 16, 2 and ~0 are ignored");

	for (unsigned p = 0; p < sizeof(ports) / sizeof(ports[0]); p++)
		for (unsigned size = 1; size <= 4; size *= 2) {
			memset(buf, 0x5a, sizeof(buf));
			bus_access(&vm.pio, ports[p], buf, size, false);
			if ((ports[p] & 1) && size > 1 && buf[1] != 0xff)
				fine = false;
			memset(buf, 0xff, sizeof(buf));
			bus_access(&vm.pio, ports[p], buf, size, true);
		}
	ok(fine, "wide reads past a chip's two ports read 0xff");
	srand(1);
	for (int i = 0; i < 200000; i++) {
		uint8_t v = (uint8_t)rand();
		unsigned size = 1u << (rand() % 3);

		memset(buf, v, sizeof(buf));
		bus_access(&vm.pio, ports[rand() % 6], buf, size, rand() & 1);
		if (!(i % 7))
			pic_set_irq(vm.pic, (unsigned)rand() % 20, rand() & 1);
		if (!(i % 5) && pic_intr(vm.pic))
			pic_ack(vm.pic);
	}
	ok(true, "200000 random accesses, line changes and INTAs survived");
	fresh();
	linux_init(0x01);
	for (int i = 0; i < 16; i++)
		pic_set_irq(vm.pic, (unsigned)i, 1);
	for (int i = 0; i < 32 && pic_intr(vm.pic); i++) {
		pic_ack(vm.pic);
		outb(0xa0, 0x20);
		outb(0x20, 0x20);
	}
	ok(!pic_intr(vm.pic), "every edge request is served exactly once");
}

static int hammer_go, hammer_stop;

/* Toggles IRQ 4 until told to stop: however the two threads are scheduled. */
static void *hammer(void *arg)
{
	__atomic_store_n(&hammer_go, 1, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&hammer_stop, __ATOMIC_ACQUIRE)) {
		pic_set_irq(vm.pic, 4, 1);
		pic_set_irq(vm.pic, 4, 0);
	}
	return arg;
}

static void test_threads(void)
{
	struct timespec t0, t;
	pthread_t th;
	int acks = 0;

	fresh();
	linux_init(0x03);
	pthread_create(&th, NULL, hammer, NULL);
	while (!__atomic_load_n(&hammer_go, __ATOMIC_ACQUIRE))
		;
	/* Until 100 INTAs were served or 10 s went by (a loaded machine). */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		if (pic_intr(vm.pic) && pic_ack(vm.pic) == 0x34)
			acks++;
		clock_gettime(CLOCK_MONOTONIC, &t);
	} while (acks < 100 && t.tv_sec - t0.tv_sec < 10);
	__atomic_store_n(&hammer_stop, 1, __ATOMIC_RELEASE);
	pthread_join(th, NULL);
	ok(acks > 0 && notified > 0, "two threads: %d INTAs, %d notifications", acks, notified);
}

int main(void)
{
	test_basics();
	test_slave();
	test_level();
	test_modes();
	test_interleaved();
	test_hostile();
	test_threads();
	pic_destroy(&vm);
	return done_testing();
}
