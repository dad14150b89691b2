/*
 * A VM with nothing but buses, for device unit tests: a fake engine whose
 * irq_line records each GSI's level and rising edges, and port accessors
 * that go through the real bus dispatch.
 */
#ifndef RING3_TESTS_FAKE_VM_H
#define RING3_TESTS_FAKE_VM_H

#include "core/bus.h"
#include "core/vm.h"

static struct vm vm;
static int irq_level[24], irq_rises[24];

static void fake_irq_line(struct vm *v, unsigned gsi, int level)
{
	(void)v;
	if (gsi >= 24)
		return;
	if (level && !__atomic_load_n(&irq_level[gsi], __ATOMIC_RELAXED))
		__atomic_add_fetch(&irq_rises[gsi], 1, __ATOMIC_RELAXED);
	__atomic_store_n(&irq_level[gsi], level, __ATOMIC_RELAXED);
}

static const struct cpu_engine fake_engine = { .name = "fake", .irq_line = fake_irq_line };

__attribute__((unused)) static void outb(uint16_t port, uint8_t v)
{
	bus_access(&vm.pio, port, &v, 1, true);
}

__attribute__((unused)) static uint8_t inb(uint16_t port)
{
	uint8_t v = 0;

	bus_access(&vm.pio, port, &v, 1, false);
	return v;
}

#endif
