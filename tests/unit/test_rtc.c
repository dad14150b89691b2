/*
 * The MC146818 RTC/CMOS (src/dev/rtc.c) through its ports: the host's UTC in
 * BCD and binary, 12 and 24 hours, UIP, setting the clock, CMOS RAM, the three
 * interrupts, and garbage. Takes about three seconds of waiting for seconds.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/vm.h"
#include "fake_vm.h"
#include "tap.h"

int rtc_init(struct vm *vm);

static uint8_t cmos_read(uint8_t idx)
{
	outb(0x70, idx);
	return inb(0x71);
}

static void cmos_write(uint8_t idx, uint8_t v)
{
	outb(0x70, idx);
	outb(0x71, v);
}

static int bcd(uint8_t v)
{
	return (v >> 4) * 10 + (v & 0xf);
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts))
		;
}

/* Read the clock as Linux's mc146818_get_time() does: wait for !UIP, read, check. */
static time_t read_clock(bool binary)
{
	struct tm tm = { 0 };
	int (*dec)(uint8_t) = bcd;
	uint8_t sec;

	for (int tries = 0; tries < 1000; tries++) {
		while (cmos_read(0x0a) & 0x80)
			;
		sec = cmos_read(0x00);
		tm.tm_min = binary ? cmos_read(0x02) : dec(cmos_read(0x02));
		tm.tm_hour = binary ? cmos_read(0x04) : dec(cmos_read(0x04));
		tm.tm_mday = binary ? cmos_read(0x07) : dec(cmos_read(0x07));
		tm.tm_mon = (binary ? cmos_read(0x08) : dec(cmos_read(0x08))) - 1;
		tm.tm_year = (binary ? cmos_read(0x09) + 100 * cmos_read(0x32)
				     : dec(cmos_read(0x09)) + 100 * dec(cmos_read(0x32))) -
			     1900;
		if (cmos_read(0x00) != sec)
			continue;
		tm.tm_sec = binary ? sec : dec(sec);
		return timegm(&tm);
	}
	return 0;
}

static void test_time(void)
{
	time_t now = time(NULL), t;
	struct tm tm;
	uint8_t h;

	is_int(cmos_read(0x0a), 0x26, "register A: 0x26");
	is_int(cmos_read(0x0b), 0x02, "register B: 24 hours, BCD");
	is_int(cmos_read(0x0d), 0x80, "register D: VRT");
	t = read_clock(false);
	ok(t >= now && t <= time(NULL) + 1, "BCD time is the host's UTC (%lld vs %lld)",
	   (long long)t, (long long)now);
	cmos_write(0x0b, 0x06);
	t = read_clock(true);
	ok(t >= now && t <= time(NULL) + 1, "binary time too");
	gmtime_r(&t, &tm);
	is_int(cmos_read(0x06), tm.tm_wday + 1, "day of week, Sunday = 1");
	cmos_write(0x0b, 0x04); /* binary, 12 hours */
	h = cmos_read(0x04);
	now = time(NULL);
	gmtime_r(&now, &tm);
	if (tm.tm_min == 59 && tm.tm_sec == 59) /* an hour boundary: read again */
		h = cmos_read(0x04);
	is_int(h & 0x7f, tm.tm_hour % 12 ? tm.tm_hour % 12 : 12, "12-hour: hour 1-12");
	is_int(h & 0x80, tm.tm_hour >= 12 ? 0x80 : 0, "12-hour: PM bit");
	cmos_write(0x0b, 0x02);
}

/*
 * UIP is up for the last 244 us of each second. On a loaded host this
 * process may sleep through a window or two, so it looks for up to 6 s, and
 * an attempt counts only if it saw UIP, the seconds and UIP again in a row
 * (so "before" is the old second) and then UIP clear within 0.5 s.
 */
static void test_uip(void)
{
	uint64_t t0 = clock_ns(), t1;
	uint8_t before = 0, after = 0;
	bool seen = false, cleared = false;

	while (!cleared && clock_ns() - t0 < 6000000000ull) {
		if (!(cmos_read(0x0a) & 0x80))
			continue;
		before = cmos_read(0x00);
		if (!(cmos_read(0x0a) & 0x80))
			continue;
		seen = true;
		t1 = clock_ns();
		while ((cmos_read(0x0a) & 0x80) && clock_ns() - t1 < 500000000ull)
			;
		after = cmos_read(0x00);
		cleared = clock_ns() - t1 < 500000000ull;
	}
	ok(seen, "UIP is set at some point (looked for up to 6 s)");
	ok(cleared && bcd(after) == (bcd(before) + 1) % 60,
	   "UIP clears as the second changes (%02x -> %02x)", before, after);
}

static void test_set(void)
{
	cmos_write(0x0b, 0x82); /* SET */
	cmos_write(0x32, 0x19);
	cmos_write(0x09, 0x99);
	cmos_write(0x08, 0x12);
	cmos_write(0x07, 0x31);
	cmos_write(0x04, 0x23);
	cmos_write(0x02, 0x59);
	cmos_write(0x00, 0x59);
	is_int(cmos_read(0x00), 0x59, "SET: seconds hold what was written");
	ok(!(cmos_read(0x0a) & 0x80), "SET: no UIP");
	cmos_write(0x0b, 0x02);
	sleep_ms(1100);
	is_int(cmos_read(0x00), 0x00, "rolled over: seconds 00");
	is_int(cmos_read(0x04), 0x00, "hour 00");
	is_int(cmos_read(0x07), 0x01, "day 1");
	is_int(cmos_read(0x08), 0x01, "January");
	is_int(cmos_read(0x09), 0x00, "year 00");
	is_int(cmos_read(0x32), 0x20, "century 20");
	is_int(cmos_read(0x06), 0x07, "1 January 2000 was a Saturday");
	cmos_write(0x0b, 0x06); /* binary */
	cmos_write(0x09, 24);
	cmos_write(0x08, 2);
	cmos_write(0x07, 29);
	is_int(cmos_read(0x07), 29, "binary write: 29 February 2024");
	cmos_write(0x0b, 0x02);
}

static void test_ram(void)
{
	bool fine = true;

	for (int i = 0x0e; i < 0x80; i++)
		if (i != 0x32)
			cmos_write((uint8_t)i, (uint8_t)(i * 7));
	for (int i = 0x0e; i < 0x80; i++)
		if (i != 0x32 && cmos_read((uint8_t)i) != (uint8_t)(i * 7))
			fine = false;
	ok(fine, "CMOS RAM 0x0e-0x7f reads back");
	outb(0x70, 0x80 | 0x10); /* NMI mask bit set */
	is_int(inb(0x71), 0x70, "index bit 7 (NMI mask) is ignored");
	is_int(inb(0x70), 0xff, "the index register is write-only");
	cmos_write(0x0d, 0x00);
	is_int(cmos_read(0x0d), 0x80, "register D is read-only");
	cmos_write(0x0a, 0xff);
	is_int(cmos_read(0x0a) & 0x7f, 0x7f, "register A bits 0-6 are writable");
	cmos_write(0x0a, 0x26);
}

static void test_irq(void)
{
	uint64_t t0;
	int n = 0;

	cmos_read(0x0c);
	sleep_ms(1100);
	ok(cmos_read(0x0c) & 0x10, "UF is set by an update even without UIE");
	is_int(irq_rises[8], 0, "no IRQ 8 without an enable");

	cmos_write(0x0b, 0x42); /* PIE at 1024 Hz */
	t0 = clock_ns();
	while (clock_ns() - t0 < 100000000ull) {
		if (__atomic_load_n(&irq_level[8], __ATOMIC_RELAXED) && (cmos_read(0x0c) & 0xc0))
			n++;
		sleep_ms(1);
	}
	ok(n >= 10, "periodic interrupt: %d serviced in 100 ms", n);
	cmos_write(0x0b, 0x02);
	cmos_read(0x0c);
	ok(!__atomic_load_n(&irq_level[8], __ATOMIC_RELAXED), "reading C drops IRQ 8");

	irq_rises[8] = 0;
	cmos_write(0x01, 0xc0);
	cmos_write(0x03, 0xc0);
	cmos_write(0x05, 0xc0); /* alarm every second */
	cmos_write(0x0b, 0x32); /* AIE and UIE */
	sleep_ms(1100);
	ok(irq_rises[8] >= 1, "update and alarm interrupts come");
	is_int(cmos_read(0x0c) & 0xb0, 0xb0, "IRQF, AF and UF");
	cmos_write(0x0b, 0x02);
}

static void test_hostile(void)
{
	uint8_t buf[8];
	bool fine = true;

	for (unsigned p = 0x70; p <= 0x71; p++)
		for (unsigned size = 1; size <= 4; size *= 2) {
			memset(buf, 0x5a, sizeof(buf));
			bus_access(&vm.pio, p, buf, size, false);
			for (unsigned i = 2 - (p - 0x70); i < size; i++)
				fine &= buf[i] == 0xff;
		}
	ok(fine, "wide reads past 0x71 read 0xff");
	srand(4);
	for (int i = 0; i < 20000; i++) {
		memset(buf, rand(), sizeof(buf));
		bus_access(&vm.pio, 0x70 + (unsigned)(rand() % 2), buf, 1u << (rand() % 3),
			   rand() & 1);
	}
	for (int i = 0; i < 0x80; i++)
		cmos_write((uint8_t)i, 0xff);
	cmos_write(0x0b, 0x02);
	ok(cmos_read(0x0d) == 0x80, "random accesses and 0xff in every register survived");
	ok(bcd(cmos_read(0x00)) < 60 && bcd(cmos_read(0x08)) <= 12, "the clock stays in range");
}

int main(void)
{
	memset(&vm, 0, sizeof(vm));
	vm.engine = &fake_engine;
	vm.pio.name = "pio";
	if (evloop_init(&vm.loop) || rtc_init(&vm)) {
		skip_all("cannot create the event loop or the RTC");
		return 0;
	}
	evloop_start(&vm.loop);
	test_time();
	test_uip();
	test_ram();
	test_set();
	test_irq();
	test_hostile();
	evloop_stop(&vm.loop);
	return done_testing();
}
