/*
 * The instruction emulator's inside, shared by emulate.c (privileged and
 * trapping instructions, memory operands) and sensitive.c (the sensitive
 * instructions that do not trap, emulated when the translator calls out).
 */
#ifndef RING3_CPU_BT_EMULATE_H
#define RING3_CPU_BT_EMULATE_H

#include <Zydis/Zydis.h>

#include "runtime.h"

struct insn {
	ZydisDecodedInstruction i;
	ZydisDecodedOperand op[ZYDIS_MAX_OPERAND_COUNT];
};

unsigned emu_cpl_acc(void);
int emu_decode(struct insn *d, struct bt_fault *f);
uint32_t emu_reg_read(ZydisRegister r);
void emu_reg_write(ZydisRegister r, uint32_t v);
int emu_sreg_of(ZydisRegister r);
uint32_t emu_ea(const struct insn *d, const ZydisDecodedOperand *o);
int emu_mem_rw(int sreg, uint32_t off, void *buf, uint32_t len, bool write, struct bt_fault *f);
int emu_op_read(const struct insn *d, int i, uint32_t *v, struct bt_fault *f);
int emu_op_write(const struct insn *d, int i, uint32_t v, struct bt_fault *f);
int emu_sel_operand(const struct insn *d, int i, uint16_t *sel, struct bt_fault *f);
void emu_next(const struct insn *d);

/* 0 done, -1 with a guest fault in *f, 1 not one of this file's instructions. */
int emu_sensitive(const struct insn *d, struct bt_fault *f);

#endif
