/*
 * The bt engine's instruction classifier: Zydis decodes, our own table says what each 32-bit
 * x86 instruction means for a guest kernel running in host ring 3 — copy it (ident), translate
 * it as control flow, or handle it as sensitive (which action). Zydis's IS_PRIVILEGED misses
 * the instructions that do not trap in ring 3 (Robin & Irvine 2000; Intel SDM vol. 3A §2.8,
 * vol. 2 per instruction).
 */
#ifndef RING3_CPU_BT_DECODE_H
#define RING3_CPU_BT_DECODE_H

#include <stddef.h>
#include <stdint.h>

#include <Zydis/Zydis.h>

#include "translate.h"

enum bt_class {
	BT_CLASS_IDENT,	    /* runs unchanged, native */
	BT_CLASS_BRANCH,    /* near control transfer: translated (branch says which) */
	BT_CLASS_SENSITIVE, /* inline sequence or callout (action says which) */
};

enum bt_branch {
	BT_BR_NONE,
	BT_BR_JMP,	/* JMP rel8/rel16/rel32 */
	BT_BR_JCC,	/* Jcc rel8/rel16/rel32 */
	BT_BR_LOOP,	/* JCXZ, JECXZ, LOOP, LOOPE, LOOPNE: rel8 only, use (E)CX */
	BT_BR_CALL,	/* CALL rel16/rel32 */
	BT_BR_JMP_IND,	/* JMP r/m */
	BT_BR_CALL_IND, /* CALL r/m */
	BT_BR_RET,	/* RET, RET imm16 (near) */
};

/* enum bt_action is in translate.h: the runtime dispatches callouts on it. */

#define BT_INSN_ENDS_BLOCK (1u << 0) /* may change mode, CPL, paging or EIP: end the block */
#define BT_INSN_INLINE (1u << 1)     /* the translator may inline it at any CPL */
#define BT_INSN_INLINE_CPL0 (1u << 2) /* ... only at CPL 0 (IOPL-dependent otherwise) */
#define BT_INSN_SHADOW (1u << 3)      /* the next instruction is in an interrupt shadow */
#define BT_INSN_OSIZE16 (1u << 4)     /* 16-bit operand size */
#define BT_INSN_ASIZE16 (1u << 5)     /* 16-bit address size */

struct bt_insn {
	enum bt_class cls;
	enum bt_branch branch;
	enum bt_action action;
	unsigned flags;		/* BT_INSN_* */
	unsigned len;
	uint32_t target;	/* direct branches: the target EIP (wrapped to 16 bits if
				   the operand size is 16) */
	ZydisDecodedInstruction zi;
	unsigned nops;		/* operands decoded in ops[]: all with BT_DECODE_OPERANDS, else
				   only when classifying needs them (MOV, PUSH, POP, %gs/%cs) */
	ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
};

#define BT_DECODE_OPERANDS (1u << 31) /* mode bit for bt_decode: always decode operands */

/*
 * Decode and classify the instruction at buf (len bytes available) found at guest EIP eip, in
 * mode (BT_MODE_* flags; BT_MODE_CS32 picks 32- or 16-bit code). Returns 0, -EAGAIN when the
 * bytes stop inside an instruction shorter than 15 bytes (fetch more), -E2BIG when it would be
 * longer than 15 bytes (#GP(0)), or -EILSEQ when the bytes are no valid instruction in this
 * mode (#UD). Never reads past len.
 */
int bt_decode(const void *buf, size_t len, uint32_t eip, uint32_t mode, struct bt_insn *insn);

const char *bt_action_name(enum bt_action action);

#endif
