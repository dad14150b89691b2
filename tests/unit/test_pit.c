/*
 * The 8254 PIT and port 0x61 (src/dev/pit.c) through their port handlers.
 * Time is real: every check on elapsed time is a lower bound (a sleep lasts
 * at least as long as asked), or an upper bound scaled by the measured time,
 * so a loaded machine cannot make a test fail.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/vm.h"
#include "dev/pit.h"
#include "fake_vm.h"
#include "tap.h"

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts))
		;
}

static uint16_t read_lohi(uint16_t port)
{
	uint8_t lo = inb(port);

	return (uint16_t)(lo | inb(port) << 8);
}

static int rises(void)
{
	return __atomic_load_n(&irq_rises[0], __ATOMIC_RELAXED);
}

/*
 * A one-shot due after 10 ms: wait until it has fired (up to 2 s: a loaded
 * host may run the PIT's timer thread late), then 30 ms more, so that a
 * second, wrong edge would be seen too.
 */
static int rises_after_one_shot(int want)
{
	uint64_t t0 = clock_ns();

	while (rises() < want && clock_ns() - t0 < 2000000000ull)
		sleep_ms(1);
	sleep_ms(30);
	return rises();
}

/* Counter 2 in mode 0, the way Linux's pit_calibrate_tsc() uses it. */
static void test_ch2_mode0(void)
{
	uint16_t v1, v2;

	outb(0x61, (uint8_t)((inb(0x61) & ~0x02) | 0x01));
	outb(0x43, 0xb0);
	outb(0x42, 0xff);
	outb(0x42, 0xff);
	v1 = read_lohi(0x42);
	ok(v1 > 0xf000, "mode 0 count 0xffff starts near the top (%#x)", v1);
	ok(!(inb(0x61) & 0x20), "OUT2 low while counting");
	sleep_ms(20);
	v2 = read_lohi(0x42);
	ok(v2 <= 0xffff - 23863, "after 20 ms at least 23863 CLKs counted (%#x)", v2);
	sleep_ms(40);
	ok(inb(0x61) & 0x20, "OUT2 high after terminal count (54.9 ms)");
	v2 = read_lohi(0x42);
	ok(true, "the counter wraps on after terminal count (%#x)", v2);

	/* Latch: the value holds while the counter runs on. */
	outb(0x43, 0xb0);
	outb(0x42, 0xff);
	outb(0x42, 0xff);
	outb(0x43, 0x80); /* latch counter 2 */
	sleep_ms(10);
	outb(0x43, 0x80); /* a second latch before the read is ignored */
	v1 = read_lohi(0x42);
	v2 = read_lohi(0x42);
	ok(v1 > 0xf000, "latched value is from the latch time (%#x)", v1);
	ok(v1 - v2 >= 11931, "the live value ran on (%#x -> %#x)", v1, v2);

	/* GATE low suspends mode 0. */
	outb(0x61, 0x00);
	outb(0x43, 0xb0);
	outb(0x42, 0x34);
	outb(0x42, 0x82);
	sleep_ms(5);
	is_int(read_lohi(0x42), 0x8234, "mode 0 with GATE low does not count");
	outb(0x61, 0x01);
	sleep_ms(5);
	ok(read_lohi(0x42) <= 0x8234 - 5965, "GATE high resumes it");
}

static void test_status(void)
{
	uint8_t st;

	outb(0x43, 0xb0); /* counter 2, LSB then MSB, mode 0, binary */
	outb(0x43, 0xe8); /* read-back: status of counter 2 */
	is_int(inb(0x42), 0x70, "status: OUT low, null count, RW=3, mode 0");
	outb(0x42, 0x00);
	outb(0x42, 0x10);
	outb(0x43, 0xe8);
	is_int(inb(0x42), 0x30, "status after the count: null count clear");
	outb(0x43, 0xc8); /* read-back: count and status of counter 2 */
	st = inb(0x42);
	is_int(st & 0x3f, 0x30, "both latched: status comes first");
	ok(read_lohi(0x42) <= 0x1000, "then the count");
	outb(0x43, 0x97); /* counter 2, LSB only, mode 3, BCD */
	outb(0x43, 0xe8);
	is_int(inb(0x42), 0x40 | 0x80 | 0x17, "status: mode 3 BCD, OUT high");
	outb(0x42, 0x00); /* 0 in BCD is 10000 */
	outb(0x43, 0xa6); /* counter 2, MSB only, mode 3 */
	outb(0x42, 0x00);
	outb(0x43, 0xe8);
	is_int(inb(0x42) & 0x3f, 0x26, "status: MSB only, mode 3");
	outb(0x43, 0xbc); /* mode 6 is mode 2 */
	outb(0x43, 0xe8);
	is_int(inb(0x42) & 0x0e, 0x0c, "mode bits read back as written (X10)");
}

static void test_ch2_periodic(void)
{
	bool hi = false, lo = false;
	uint64_t t0 = clock_ns();

	outb(0x61, 0x01);
	outb(0x43, 0xb6); /* counter 2, mode 3 */
	outb(0x42, 0x00);
	outb(0x42, 0x00); /* 65536: 18.2 Hz square wave */
	while (clock_ns() - t0 < 2000000000ull && !(hi && lo)) { /* 27 ms each; slow hosts sleep long */
		if (inb(0x61) & 0x20)
			hi = true;
		else
			lo = true;
		sleep_ms(1);
	}
	ok(hi && lo, "mode 3: OUT2 is a square wave");
	outb(0x61, 0x00);
	ok(inb(0x61) & 0x20, "mode 3: GATE low forces OUT2 high");

	outb(0x61, 0x01);
	outb(0x43, 0xb4); /* counter 2, mode 2 */
	outb(0x42, 0x00);
	outb(0x42, 0x00);
	sleep_ms(1);
	ok(read_lohi(0x42) > 0xe000, "mode 2 counts down from the top");
	ok(inb(0x61) & 0x20, "mode 2: OUT2 high while counting");
	outb(0x43, 0xb2); /* mode 1: waits for a GATE trigger */
	outb(0x42, 0x10);
	outb(0x42, 0x00);
	ok(inb(0x61) & 0x20, "mode 1: OUT2 high before the trigger");
	outb(0x61, 0x00);
	outb(0x61, 0x01);
	outb(0x43, 0xe8);
	is_int(inb(0x42) & 0x40, 0, "mode 1: a GATE edge loads the count (null count clear)");
	sleep_ms(1);
	ok(inb(0x61) & 0x20, "mode 1: OUT2 high again after 16 CLKs");
}

static void test_portb(void)
{
	uint8_t a = inb(0x61), b = inb(0x61);

	ok((a ^ b) & 0x10, "port 0x61 bit 4 toggles on every read");
	outb(0x61, 0xff);
	is_int(inb(0x61) & 0x0f, 0x0f, "bits 0-3 read back");
	is_int(inb(0x61) & 0xc0, 0x00, "bits 6-7 (NMI status) read 0");
	outb(0x61, 0x00);
}

/* Counter 0's interrupt needs the I/O thread. */
static void test_irq0(void)
{
	uint64_t t0, t1;
	int n;

	irq_rises[0] = 0;
	outb(0x43, 0x34); /* counter 0, mode 2 */
	outb(0x40, 0x9c);
	outb(0x40, 0x2e); /* 11932: 100 Hz */
	t0 = clock_ns();
	sleep_ms(105);
	n = rises();
	t1 = clock_ns();
	ok(n >= 5, "mode 2 at 100 Hz: %d interrupts in 105 ms", n);
	ok(n <= (int)((t1 - t0) / 10000000ull) + 1, "and not more than the rate allows");
	ok(!__atomic_load_n(&irq_level[0], __ATOMIC_RELAXED), "periodic IRQ 0 rests low");

	outb(0x43, 0x34);
	outb(0x40, 0x01);
	outb(0x40, 0x00); /* count 1: 1.19 MHz, far too fast */
	irq_rises[0] = 0;
	t0 = clock_ns();
	sleep_ms(100);
	n = rises();
	t1 = clock_ns();
	ok(n >= 1, "count 1: interrupts still come (%d)", n);
	ok(n <= (int)((t1 - t0) / 50000ull) + 2, "count 1: coalesced to at most one per 50 us");

	outb(0x43, 0x30); /* mode 0, one shot after 10 ms */
	ok(!__atomic_load_n(&irq_level[0], __ATOMIC_RELAXED), "mode 0 control word: IRQ 0 low");
	irq_rises[0] = 0;
	outb(0x40, 0x9c);
	outb(0x40, 0x2e);
	is_int(rises_after_one_shot(1), 1, "mode 0: one rising edge at terminal count");
	ok(__atomic_load_n(&irq_level[0], __ATOMIC_RELAXED), "mode 0: IRQ 0 stays high");
	outb(0x40, 0x9c);
	ok(!__atomic_load_n(&irq_level[0], __ATOMIC_RELAXED), "mode 0: writing a count lowers it");
	outb(0x40, 0x2e);
	is_int(rises_after_one_shot(2), 2, "mode 0: and a new count fires again");

	outb(0x43, 0x38); /* mode 4 strobe */
	irq_rises[0] = 0;
	outb(0x40, 0x9c);
	outb(0x40, 0x2e);
	is_int(rises_after_one_shot(1), 1, "mode 4: one strobe");
	outb(0x43, 0x32); /* mode 1: GATE 0 is tied high, never triggered */
	irq_rises[0] = 0;
	outb(0x40, 0x10);
	outb(0x40, 0x00);
	sleep_ms(5);
	is_int(rises(), 0, "mode 1 on counter 0: no trigger, no interrupt");
	outb(0x43, 0x36); /* mode 3, count 0 = 65536: 18.2 Hz */
	outb(0x40, 0x00);
	outb(0x40, 0x00);
	irq_rises[0] = 0;
	sleep_ms(120);
	ok(rises() >= 1, "count 0 is 65536: 18.2 Hz (%d in 120 ms)", rises());
	{
		int other = 0;

		for (int g = 1; g < 24; g++)
			other += irq_rises[g];
		is_int(other, 0, "only IRQ 0 was ever raised");
	}
}

static void test_hostile(void)
{
	static const uint16_t ports[] = { 0x40, 0x41, 0x42, 0x43, 0x61 };
	uint8_t buf[8];
	bool fine = true;

	for (unsigned p = 0; p < sizeof(ports) / sizeof(ports[0]); p++)
		for (unsigned size = 1; size <= 4; size *= 2) {
			memset(buf, 0x5a, sizeof(buf));
			bus_access(&vm.pio, ports[p], buf, size, false);
			if (ports[p] == 0x43 && buf[0] != 0xff)
				fine = false;
			if (ports[p] == 0x61 && size > 1 && buf[1] != 0xff)
				fine = false;
			memset(buf, 0xff, sizeof(buf));
			bus_access(&vm.pio, ports[p], buf, size, true);
		}
	ok(fine, "0x43 reads 0xff; wide reads past the device read 0xff");
	outb(0x43, 0x14); /* counter 0, LSB, mode 2, binary */
	outb(0x40, 0x00);
	is_int(inb(0x40) <= 0xff, 1, "LSB-only count 0 is 65536");
	outb(0x43, 0x35); /* BCD */
	outb(0x40, 0xff);
	outb(0x40, 0xff); /* not BCD: taken as 9999 */
	ok(true, "invalid BCD count accepted");
	outb(0x43, 0x35);
	outb(0x40, 0x00);
	outb(0x40, 0x00);
	ok((read_lohi(0x40) & 0xf000) <= 0x9000, "BCD count 0 (10000) reads as BCD digits");
	srand(2);
	for (int i = 0; i < 200000; i++) {
		uint8_t v = (uint8_t)rand();
		unsigned size = 1u << (rand() % 3);

		memset(buf, v, sizeof(buf));
		bus_access(&vm.pio, ports[rand() % 5], buf, size, rand() & 1);
	}
	ok(true, "200000 random accesses survived");
	outb(0x43, 0x34);
	outb(0x40, 0x02);
	outb(0x40, 0x00);
	sleep_ms(20);
	ok(true, "the I/O thread is not spinning on count 2");
}

int main(void)
{
	memset(&vm, 0, sizeof(vm));
	vm.engine = &fake_engine;
	vm.pio.name = "pio";
	if (evloop_init(&vm.loop) || pit_init(&vm)) {
		skip_all("cannot create the event loop or the PIT");
		return 0;
	}
	test_ch2_mode0();
	test_status();
	test_ch2_periodic();
	test_portb();
	evloop_start(&vm.loop);
	test_irq0();
	test_hostile();
	evloop_stop(&vm.loop);
	pit_destroy(&vm);
	ok(vm.pit == NULL, "pit_destroy");
	evloop_destroy(&vm.loop);
	return done_testing();
}
