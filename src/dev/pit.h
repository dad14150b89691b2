/*
 * The 8254 PIT's interface (see pit.c). Under the kvm engine the PIT is KVM's
 * and none of this exists.
 */
#ifndef RING3_DEV_PIT_H
#define RING3_DEV_PIT_H

struct vm;
struct pit;

int pit_init(struct vm *vm); /* sets vm->pit, registers 0x40-0x43 and 0x61, adds its timer */
/* Disarm and close the timer, free the PIT; call after the I/O thread has stopped. */
void pit_destroy(struct vm *vm);

#endif
