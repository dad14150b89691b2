/*
 * The i8042 and port 0x92 (src/dev/i8042.c): the sequence Linux's i8042,
 * atkbd and psmouse drivers probe with, interrupts, resets, and garbage.
 */
#include <stdlib.h>
#include <string.h>

#include "core/vm.h"
#include "fake_vm.h"
#include "tap.h"

int i8042_init(struct vm *vm);

static void fresh(void)
{
	memset(&vm, 0, sizeof(vm));
	memset(irq_level, 0, sizeof(irq_level));
	memset(irq_rises, 0, sizeof(irq_rises));
	vm.engine = &fake_engine;
	vm.pio.name = "pio";
	i8042_init(&vm);
}

/* Like Linux's i8042_command(): write, then read n reply bytes. */
static int command(uint8_t cmd, int param, uint8_t *reply, int n)
{
	outb(0x64, cmd);
	if (param >= 0)
		outb(0x60, (uint8_t)param);
	for (int i = 0; i < n; i++) {
		if (!(inb(0x64) & 0x01))
			return -1;
		reply[i] = inb(0x60);
	}
	return 0;
}

static bool expect(const uint8_t *want, int n, bool aux)
{
	for (int i = 0; i < n; i++) {
		uint8_t st = inb(0x64);

		if (!(st & 0x01) || !!(st & 0x20) != aux || inb(0x60) != want[i])
			return false;
	}
	return !(inb(0x64) & 0x01);
}

static void test_linux_probe(void)
{
	uint8_t r[4] = { 0 }, ctr;

	fresh();
	is_int(inb(0x64) & 0x03, 0, "status: buffers empty");
	ok(command(0xaa, -1, r, 1) == 0 && r[0] == 0x55, "self-test -> 0x55");
	ok(command(0x20, -1, r, 1) == 0, "read command byte");
	ctr = r[0];
	ok(ctr & 0x40, "XLATE is on (%#x)", ctr);
	command(0x60, 0x74, r, 0);
	ok(command(0x20, -1, r, 1) == 0 && r[0] == 0x74, "write command byte reads back");
	ok(inb(0x64) & 0x04, "SYS flag follows the command byte");
	is_int(inb(0x64) & 0x08, 0x08, "status: last write was a command");
	ok(command(0xab, -1, r, 1) == 0 && r[0] == 0x00, "keyboard interface test -> 0x00");
	ok(command(0xa9, -1, r, 1) == 0 && r[0] == 0x00, "AUX interface test -> 0x00");
	ok(command(0xd3, 0x5a, r, 1) == 0 && r[0] == 0x5a, "AUX loop returns the byte");
	command(0xa7, -1, r, 0);
	command(0x20, -1, r, 1);
	ok(r[0] & 0x20, "0xa7 sets AUXDIS");
	command(0xa8, -1, r, 0);
	command(0x20, -1, r, 1);
	ok(!(r[0] & 0x20), "0xa8 clears AUXDIS");
	command(0xad, -1, r, 0);
	command(0x20, -1, r, 1);
	ok(r[0] & 0x10, "0xad sets KBDDIS");
	command(0xae, -1, r, 0);
	command(0x20, -1, r, 1);
	ok(!(r[0] & 0x10), "0xae clears KBDDIS");

	/* The AUX IRQ test: AUXINT on, loop 0xa5, expect IRQ 12. */
	command(0x60, 0x47, r, 0);
	irq_rises[12] = 0;
	command(0xd3, 0xa5, r, 0);
	is_int(irq_rises[12], 1, "AUX loop with AUXINT raises IRQ 12");
	is_int(inb(0x64) & 0x21, 0x21, "status: OBF and AUXDATA");
	is_int(inb(0x60), 0xa5, "the looped byte");
	is_int(irq_level[12], 0, "IRQ 12 drops with OBF");
	irq_rises[1] = 0;
	command(0xd2, 0x99, r, 0);
	is_int(irq_rises[1], 1, "keyboard loop raises IRQ 1");
	is_int(inb(0x60), 0x99, "the keyboard-looped byte");
	command(0x60, 0x44, r, 0);
	command(0xd2, 0x98, r, 0);
	is_int(irq_rises[1], 1, "no IRQ 1 with KBDINT off");
	is_int(inb(0x60), 0x98, "the byte is still there");

	/* atkbd */
	outb(0x60, 0xf2);
	ok(expect((const uint8_t[]){ 0xfa, 0xab, 0x41 }, 3, false), "keyboard ID, translated");
	command(0x60, 0x07, r, 0);
	outb(0x60, 0xf2);
	ok(expect((const uint8_t[]){ 0xfa, 0xab, 0x83 }, 3, false), "keyboard ID, raw");
	outb(0x60, 0xff);
	ok(expect((const uint8_t[]){ 0xfa, 0xaa }, 2, false), "keyboard reset: ACK, BAT");
	outb(0x60, 0xed);
	outb(0x60, 0x07);
	ok(expect((const uint8_t[]){ 0xfa, 0xfa }, 2, false), "set LEDs");
	outb(0x60, 0xf0);
	outb(0x60, 0x00);
	ok(expect((const uint8_t[]){ 0xfa, 0xfa, 0x02 }, 3, false), "get scan code set");
	outb(0x60, 0xee);
	ok(expect((const uint8_t[]){ 0xee }, 1, false), "echo");
	outb(0x60, 0x12);
	ok(expect((const uint8_t[]){ 0xfe }, 1, false), "an unknown keyboard command: resend");
	irq_rises[1] = 0;
	outb(0x60, 0xf4);
	outb(0x60, 0xf4);
	outb(0x60, 0xf4);
	is_int(irq_rises[1], 1, "three queued bytes: one edge so far");
	inb(0x60);
	inb(0x60);
	is_int(irq_rises[1], 3, "each read that leaves a byte makes a new edge");
	inb(0x60);
	is_int(irq_level[1], 0, "and the line rests low when empty");
	is_int(inb(0x60), 0xfa, "reading an empty buffer repeats the last byte");

	/* psmouse */
	command(0xd4, 0xff, r, 0);
	ok(expect((const uint8_t[]){ 0xfa, 0xaa, 0x00 }, 3, true), "mouse reset: ACK, BAT, ID");
	command(0xd4, 0xf2, r, 0);
	ok(expect((const uint8_t[]){ 0xfa, 0x00 }, 2, true), "mouse ID 0");
	command(0xd4, 0xf3, r, 0);
	command(0xd4, 200, r, 0);
	ok(expect((const uint8_t[]){ 0xfa, 0xfa }, 2, true), "set sample rate");
	command(0xd4, 0xe9, r, 0);
	ok(expect((const uint8_t[]){ 0xfa, 0x00, 0x02, 0x64 }, 4, true), "status request");
	command(0xd4, 0x01, r, 0);
	ok(expect((const uint8_t[]){ 0xfe }, 1, true), "an unknown mouse command: resend");
}

static void test_a20_reset(void)
{
	uint8_t r[1];

	fresh();
	ok(command(0xd0, -1, r, 1) == 0 && (r[0] & 0x03) == 0x03, "output port: A20 on, reset high");
	command(0xdd, -1, r, 0);
	command(0xd0, -1, r, 1);
	is_int(r[0] & 0x02, 0, "0xdd: A20 off");
	command(0xd1, 0xdf, r, 0);
	command(0xd0, -1, r, 1);
	is_int(r[0] & 0x02, 0x02, "0xd1 0xdf: A20 on");
	ok(!atomic_load(&vm.stopping), "no reset so far");
	is_int(inb(0x92) & 0x03, 0x02, "port 0x92: A20 on");
	outb(0x92, 0x00);
	is_int(inb(0x92) & 0x02, 0, "port 0x92: A20 off");
	ok(!atomic_load(&vm.stopping), "port 0x92 A20 is no reset");
	outb(0x64, 0xff);
	ok(!atomic_load(&vm.stopping), "0xff pulses nothing");
	outb(0x64, 0xfe);
	ok(atomic_load(&vm.stopping), "0xfe resets");
	is_int(vm.exit_status, 0, "with status 0");
	ok(strstr(vm.exit_reason, "i8042") != NULL, "reason: %s", vm.exit_reason);

	fresh();
	outb(0x92, 0x03);
	ok(atomic_load(&vm.stopping) && strstr(vm.exit_reason, "0x92"), "port 0x92 bit 0 resets");
	fresh();
	command(0xd1, 0x02, r, 0);
	ok(atomic_load(&vm.stopping), "writing the output port with reset low resets");
	fresh();
	outb(0x64, 0xf0);
	ok(atomic_load(&vm.stopping), "0xf0 pulses reset too");
}

static void test_hostile(void)
{
	static const uint16_t ports[] = { 0x60, 0x64, 0x92 };
	uint8_t buf[8];
	bool fine = true;

	fresh();
	for (unsigned p = 0; p < 3; p++)
		for (unsigned size = 1; size <= 4; size *= 2) {
			memset(buf, 0x5a, sizeof(buf));
			bus_access(&vm.pio, ports[p], buf, size, false);
			for (unsigned i = 1; i < size; i++)
				fine &= buf[i] == 0xff;
			memset(buf, 0x00, sizeof(buf));
			bus_access(&vm.pio, ports[p], buf, size, true);
		}
	ok(fine, "every port and size: bytes past the register read 0xff");
	for (int i = 0; i < 100; i++)
		outb(0x60, 0xff);
	int n = 0;

	while ((inb(0x64) & 1) && n < 1000) {
		inb(0x60);
		n++;
	}
	ok(n > 0 && n <= 32, "a guest that never reads: the buffer stays bounded (%d)", n);
	command(0xc7, -1, buf, 0);
	ok(!(inb(0x64) & 1), "an unknown command is ignored");
	command(0x7f, 0x11, buf, 0);
	ok(command(0x3f, -1, buf, 1) == 0 && buf[0] == 0x11, "controller RAM byte 31");
	srand(3);
	for (int i = 0; i < 100000; i++) {
		uint8_t v = (uint8_t)rand();

		if (v >= 0xf0 || v == 0xd1)
			v = 0x00; /* keep the reset out of the fuzz: it only stops the VM */
		memset(buf, v, sizeof(buf));
		bus_access(&vm.pio, ports[rand() % 2], buf, 1u << (rand() % 3), rand() & 1);
	}
	ok(true, "100000 random accesses survived");
}

int main(void)
{
	test_linux_probe();
	test_a20_reset();
	test_hostile();
	return done_testing();
}
