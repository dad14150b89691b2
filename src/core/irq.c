/*
 * Device interrupt lines. A device raises a GSI; the engine decides where it
 * goes: the kvm engine into the in-kernel PIC and IOAPIC, the bt engine into
 * ring3's own 8259 model. No device knows which.
 */
#include "vm.h"

void irq_set(struct vm *vm, unsigned gsi, int level)
{
	if (gsi >= 24)
		return;
	if (level)
		__atomic_add_fetch(&vm->irq_count[gsi], 1, __ATOMIC_RELAXED);
	vm->engine->irq_line(vm, gsi, level);
}

/* An edge: ISA devices on the 8259 are edge-triggered. */
void irq_pulse(struct vm *vm, unsigned gsi)
{
	irq_set(vm, gsi, 1);
	irq_set(vm, gsi, 0);
}
