/*
 * The 8259A pair's interface to the bt engine (see pic.c). Under the kvm
 * engine the PIC is KVM's and none of this exists.
 */
#ifndef RING3_DEV_PIC_H
#define RING3_DEV_PIC_H

#include <stdbool.h>

struct vm;
struct pic;

int pic_init(struct vm *vm); /* sets vm->pic, registers ports 0x20, 0xa0, 0x4d0 */
/* Drive input line irq (0-15) to level; thread-safe. IRQ 2 is the cascade and is ignored. */
void pic_set_irq(struct pic *pic, unsigned irq, int level);
bool pic_intr(struct pic *pic); /* is the master's INTR output asserted? */
/* An INTA cycle: the vector to deliver (the spurious IRQ 7 or 15 vector if none). */
int pic_ack(struct pic *pic);
/* fn runs (from any thread, without the PIC lock held) when INTR goes from low to high. */
void pic_set_notify(struct pic *pic, void (*fn)(void *opaque), void *opaque);
void pic_destroy(struct vm *vm);

#endif
