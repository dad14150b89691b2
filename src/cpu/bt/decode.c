/*
 * The bt engine's instruction classifier: which 32-bit x86 instructions a guest kernel may run
 * unchanged in host ring 3, and which are control flow or sensitive. Intel SDM vol. 3A §2.8
 * (system instructions), §5.9 (privileged instructions), vol. 2 (per instruction); HOST-FACTS
 * records what each sensitive one does in ring 3 on our hosts.
 */
#include <errno.h>
#include <stdbool.h>

#include "decode.h"

#define END BT_INSN_ENDS_BLOCK
#define INL BT_INSN_INLINE
#define INL0 BT_INSN_INLINE_CPL0

/*
 * Sensitive instructions by mnemonic. Everything not listed (and not a branch, nor caught by
 * the operand rules in classify()) is ident. Forms that depend on operands — MOV and PUSH/POP
 * of segment and control registers, far JMP/CALL/RET, %gs and %cs memory operands — are
 * decided in classify().
 */
static const struct {
	ZydisMnemonic mn;
	enum bt_action action;
	unsigned flags;
} sensitive[] = {
	/* EFLAGS.IF and IOPL (§2.3): POPF and CLI do not trap in ring 3, they lose IF silently. */
	{ ZYDIS_MNEMONIC_CLI, BT_ACT_CLI, INL0 },
	{ ZYDIS_MNEMONIC_STI, BT_ACT_STI, INL0 | BT_INSN_SHADOW },
	{ ZYDIS_MNEMONIC_PUSHF, BT_ACT_PUSHF, INL },
	{ ZYDIS_MNEMONIC_PUSHFD, BT_ACT_PUSHF, INL },
	{ ZYDIS_MNEMONIC_POPF, BT_ACT_POPF, 0 },
	{ ZYDIS_MNEMONIC_POPFD, BT_ACT_POPF, INL0 },
	{ ZYDIS_MNEMONIC_STAC, BT_ACT_AC, 0 },
	{ ZYDIS_MNEMONIC_CLAC, BT_ACT_AC, 0 },

	/* Segment loads (§3.4.3): the real selectors are LDT mirrors of the guest's. */
	{ ZYDIS_MNEMONIC_LDS, BT_ACT_SREG_LOAD, 0 },
	{ ZYDIS_MNEMONIC_LES, BT_ACT_SREG_LOAD, 0 },
	{ ZYDIS_MNEMONIC_LFS, BT_ACT_SREG_LOAD, 0 },
	{ ZYDIS_MNEMONIC_LGS, BT_ACT_SREG_LOAD, 0 },
	{ ZYDIS_MNEMONIC_LSS, BT_ACT_SREG_LOAD, END | BT_INSN_SHADOW },

	/* System-register reads that ring 3 answers with the host's values (UMIP emulation). */
	{ ZYDIS_MNEMONIC_SGDT, BT_ACT_SYS_READ, 0 },
	{ ZYDIS_MNEMONIC_SIDT, BT_ACT_SYS_READ, 0 },
	{ ZYDIS_MNEMONIC_SLDT, BT_ACT_SYS_READ, 0 },
	{ ZYDIS_MNEMONIC_STR, BT_ACT_SYS_READ, 0 },
	{ ZYDIS_MNEMONIC_SMSW, BT_ACT_SYS_READ, 0 },
	{ ZYDIS_MNEMONIC_LGDT, BT_ACT_SYS_LOAD, 0 },
	{ ZYDIS_MNEMONIC_LIDT, BT_ACT_SYS_LOAD, 0 },
	{ ZYDIS_MNEMONIC_LLDT, BT_ACT_SYS_LOAD, 0 },
	{ ZYDIS_MNEMONIC_LTR, BT_ACT_SYS_LOAD, 0 },
	{ ZYDIS_MNEMONIC_LMSW, BT_ACT_SYS_LOAD, END }, /* may set CR0.PE */
	{ ZYDIS_MNEMONIC_LAR, BT_ACT_SEG_INFO, 0 },
	{ ZYDIS_MNEMONIC_LSL, BT_ACT_SEG_INFO, 0 },
	{ ZYDIS_MNEMONIC_VERR, BT_ACT_SEG_INFO, 0 },
	{ ZYDIS_MNEMONIC_VERW, BT_ACT_SEG_INFO, 0 },
	{ ZYDIS_MNEMONIC_CPUID, BT_ACT_CPUID, 0 },

	/* I/O (§19): IOPL 0 in the host, so these trap, but the runtime wants them anyway. */
	{ ZYDIS_MNEMONIC_IN, BT_ACT_IO, 0 },
	{ ZYDIS_MNEMONIC_OUT, BT_ACT_IO, 0 },
	{ ZYDIS_MNEMONIC_INSB, BT_ACT_IO, 0 },
	{ ZYDIS_MNEMONIC_INSW, BT_ACT_IO, 0 },
	{ ZYDIS_MNEMONIC_INSD, BT_ACT_IO, 0 },
	{ ZYDIS_MNEMONIC_OUTSB, BT_ACT_IO, 0 },
	{ ZYDIS_MNEMONIC_OUTSW, BT_ACT_IO, 0 },
	{ ZYDIS_MNEMONIC_OUTSD, BT_ACT_IO, 0 },
	{ ZYDIS_MNEMONIC_HLT, BT_ACT_HLT, 0 },

	/* Interrupts and returns from them (§6): INT 0x80 would be a host system call. */
	{ ZYDIS_MNEMONIC_INT, BT_ACT_INT, END },
	{ ZYDIS_MNEMONIC_INT3, BT_ACT_INT, END },
	{ ZYDIS_MNEMONIC_INTO, BT_ACT_INT, END },
	{ ZYDIS_MNEMONIC_INT1, BT_ACT_INT, END },
	{ ZYDIS_MNEMONIC_IRET, BT_ACT_IRET, END },
	{ ZYDIS_MNEMONIC_IRETD, BT_ACT_IRET, END },
	{ ZYDIS_MNEMONIC_SYSENTER, BT_ACT_SYSENTER, END },
	{ ZYDIS_MNEMONIC_SYSEXIT, BT_ACT_SYSENTER, END },
	{ ZYDIS_MNEMONIC_SYSCALL, BT_ACT_SYSENTER, END }, /* a real host syscall in compat mode */
	{ ZYDIS_MNEMONIC_SYSRET, BT_ACT_SYSENTER, END },

	/* Control, debug and model-specific registers, TLB and caches. */
	{ ZYDIS_MNEMONIC_CLTS, BT_ACT_CR, 0 },
	{ ZYDIS_MNEMONIC_RDMSR, BT_ACT_MSR, 0 },
	{ ZYDIS_MNEMONIC_WRMSR, BT_ACT_MSR, 0 },
	{ ZYDIS_MNEMONIC_RDPMC, BT_ACT_MSR, 0 },
	{ ZYDIS_MNEMONIC_INVLPG, BT_ACT_TLB, END }, /* may remap the code being run */
	{ ZYDIS_MNEMONIC_INVPCID, BT_ACT_TLB, END },
	{ ZYDIS_MNEMONIC_WBINVD, BT_ACT_CACHE, 0 },
	{ ZYDIS_MNEMONIC_INVD, BT_ACT_CACHE, 0 },
	{ ZYDIS_MNEMONIC_XGETBV, BT_ACT_XCR, 0 },
	{ ZYDIS_MNEMONIC_XSETBV, BT_ACT_XCR, 0 },
	{ ZYDIS_MNEMONIC_RDTSCP, BT_ACT_TSC_AUX, 0 },
	{ ZYDIS_MNEMONIC_RDPID, BT_ACT_TSC_AUX, 0 },
	{ ZYDIS_MNEMONIC_MONITOR, BT_ACT_MWAIT, 0 },
	{ ZYDIS_MNEMONIC_MWAIT, BT_ACT_MWAIT, 0 },
	{ ZYDIS_MNEMONIC_MONITORX, BT_ACT_MWAIT, 0 },
	{ ZYDIS_MNEMONIC_MWAITX, BT_ACT_MWAIT, 0 },
	{ ZYDIS_MNEMONIC_VMCALL, BT_ACT_VMCALL, 0 },
	{ ZYDIS_MNEMONIC_VMMCALL, BT_ACT_VMCALL, 0 },

	/* #UD for the guest: explicit, or features the virtual CPU does not have. */
	{ ZYDIS_MNEMONIC_UD0, BT_ACT_UD, END },
	{ ZYDIS_MNEMONIC_UD1, BT_ACT_UD, END },
	{ ZYDIS_MNEMONIC_UD2, BT_ACT_UD, END },
	{ ZYDIS_MNEMONIC_RSM, BT_ACT_UD, END },
	{ ZYDIS_MNEMONIC_GETSEC, BT_ACT_UD, END },
	{ ZYDIS_MNEMONIC_VMRUN, BT_ACT_UD, END },
	{ ZYDIS_MNEMONIC_RDPKRU, BT_ACT_UD, END },
	{ ZYDIS_MNEMONIC_WRPKRU, BT_ACT_UD, END },
	{ ZYDIS_MNEMONIC_RDPRU, BT_ACT_UD, END },
	{ ZYDIS_MNEMONIC_CLZERO, BT_ACT_UD, END },
};

static uint8_t action_of[ZYDIS_MNEMONIC_MAX_VALUE + 1];
static uint8_t flags_of[ZYDIS_MNEMONIC_MAX_VALUE + 1];
static bool table_ready;

static const char *const action_names[BT_ACT__COUNT] = {
	[BT_ACT_NONE] = "none",		  [BT_ACT_CLI] = "cli",
	[BT_ACT_STI] = "sti",		  [BT_ACT_PUSHF] = "pushf",
	[BT_ACT_POPF] = "popf",		  [BT_ACT_SREG_READ] = "sreg-read",
	[BT_ACT_SREG_LOAD] = "sreg-load", [BT_ACT_SEG_ACCESS] = "gs/cs-access",
	[BT_ACT_SYS_READ] = "sys-read",	  [BT_ACT_SYS_LOAD] = "sys-load",
	[BT_ACT_SEG_INFO] = "seg-info",	  [BT_ACT_CPUID] = "cpuid",
	[BT_ACT_IO] = "io",		  [BT_ACT_HLT] = "hlt",
	[BT_ACT_INT] = "int",		  [BT_ACT_IRET] = "iret",
	[BT_ACT_FAR_BRANCH] = "far-branch", [BT_ACT_CR] = "cr",
	[BT_ACT_DR] = "dr",		  [BT_ACT_MSR] = "msr",
	[BT_ACT_TLB] = "tlb",		  [BT_ACT_CACHE] = "cache",
	[BT_ACT_SYSENTER] = "sysenter",	  [BT_ACT_AC] = "stac/clac",
	[BT_ACT_XCR] = "xcr",		  [BT_ACT_TSC_AUX] = "tsc-aux",
	[BT_ACT_MWAIT] = "mwait",	  [BT_ACT_VMCALL] = "vmcall",
	[BT_ACT_UD] = "ud",		  [BT_ACT_PRIV] = "privileged",
};

const char *bt_action_name(enum bt_action action)
{
	return (unsigned)action < BT_ACT__COUNT && action_names[action] ? action_names[action]
									 : "?";
}

static void table_init(void)
{
	for (size_t i = 0; i < sizeof(sensitive) / sizeof(sensitive[0]); i++) {
		action_of[sensitive[i].mn] = sensitive[i].action;
		flags_of[sensitive[i].mn] = sensitive[i].flags;
	}
	table_ready = true;
}

static void sensitive_as(struct bt_insn *in, enum bt_action action, unsigned flags)
{
	in->cls = BT_CLASS_SENSITIVE;
	in->action = action;
	in->flags |= flags;
}

/* Near branches: which kind, and the target of the direct ones. */
static void classify_branch(struct bt_insn *in, uint32_t eip)
{
	const ZydisDecodedInstruction *zi = &in->zi;
	bool direct = zi->attributes & ZYDIS_ATTRIB_IS_RELATIVE;

	in->cls = BT_CLASS_BRANCH;
	switch (zi->mnemonic) {
	case ZYDIS_MNEMONIC_JMP:
		in->branch = direct ? BT_BR_JMP : BT_BR_JMP_IND;
		break;
	case ZYDIS_MNEMONIC_CALL:
		in->branch = direct ? BT_BR_CALL : BT_BR_CALL_IND;
		break;
	case ZYDIS_MNEMONIC_RET:
		in->branch = BT_BR_RET;
		break;
	case ZYDIS_MNEMONIC_JCXZ:
	case ZYDIS_MNEMONIC_JECXZ:
	case ZYDIS_MNEMONIC_LOOP:
	case ZYDIS_MNEMONIC_LOOPE:
	case ZYDIS_MNEMONIC_LOOPNE:
		in->branch = BT_BR_LOOP;
		break;
	default:
		in->branch = BT_BR_JCC;
		break;
	}
	if (direct) {
		/* SDM JMP: with a 16-bit operand size, EIP is truncated to 16 bits. */
		uint32_t t = eip + zi->length + (uint32_t)zi->raw.imm[0].value.s;
		in->target = zi->operand_width == 16 ? (t & 0xffff) : t;
	}
}

/* Memory operands through %gs (the runtime's segment in translated code) or %cs (the TC's flat
 * code segment, not the guest's). LEA computes an address only. */
static bool uses_gs_or_cs(const struct bt_insn *in)
{
	for (unsigned i = 0; i < in->nops; i++) {
		const ZydisDecodedOperand *op = &in->ops[i];
		if (op->type != ZYDIS_OPERAND_TYPE_MEMORY || op->mem.type == ZYDIS_MEMOP_TYPE_AGEN)
			continue;
		if (op->mem.segment == ZYDIS_REGISTER_GS || op->mem.segment == ZYDIS_REGISTER_CS)
			return true;
	}
	return false;
}

static bool is_sreg(ZydisRegister r)
{
	return r >= ZYDIS_REGISTER_ES && r <= ZYDIS_REGISTER_GS;
}

/* MOV, PUSH and POP are ident unless a segment, control or debug register is involved. */
static void classify_operands(struct bt_insn *in)
{
	const ZydisDecodedOperand *dst = &in->ops[0], *src = &in->ops[1];
	ZydisMnemonic mn = in->zi.mnemonic;
	bool reg_dst = in->nops > 0 && dst->type == ZYDIS_OPERAND_TYPE_REGISTER;
	bool reg_src = in->nops > 1 && in->zi.operand_count_visible > 1 &&
		       src->type == ZYDIS_OPERAND_TYPE_REGISTER;

	if (mn == ZYDIS_MNEMONIC_MOV && reg_dst && is_sreg(dst->reg.value)) {
		bool ss = dst->reg.value == ZYDIS_REGISTER_SS;
		sensitive_as(in, BT_ACT_SREG_LOAD, ss ? END | BT_INSN_SHADOW : 0);
	} else if (mn == ZYDIS_MNEMONIC_MOV && reg_src && is_sreg(src->reg.value)) {
		sensitive_as(in, BT_ACT_SREG_READ, INL);
	} else if (mn == ZYDIS_MNEMONIC_PUSH && reg_dst && is_sreg(dst->reg.value)) {
		sensitive_as(in, BT_ACT_SREG_READ, INL);
	} else if (mn == ZYDIS_MNEMONIC_POP && reg_dst && is_sreg(dst->reg.value)) {
		bool ss = dst->reg.value == ZYDIS_REGISTER_SS;
		sensitive_as(in, BT_ACT_SREG_LOAD, ss ? END | BT_INSN_SHADOW : 0);
	} else if (mn == ZYDIS_MNEMONIC_MOV && (reg_dst || reg_src)) {
		ZydisRegisterClass cd = ZydisRegisterGetClass(dst->reg.value);
		ZydisRegisterClass cs = reg_src ? ZydisRegisterGetClass(src->reg.value)
						: ZYDIS_REGCLASS_INVALID;
		if (reg_dst && cd == ZYDIS_REGCLASS_CONTROL)
			sensitive_as(in, BT_ACT_CR, END); /* CR0.PE/PG, CR3, CR4 change the mode */
		else if (cs == ZYDIS_REGCLASS_CONTROL)
			sensitive_as(in, BT_ACT_CR, 0);
		else if ((reg_dst && cd == ZYDIS_REGCLASS_DEBUG) || cs == ZYDIS_REGCLASS_DEBUG)
			sensitive_as(in, BT_ACT_DR, 0);
	}
}

/* Which instructions classify() must see the operands of; the rest skip operand decoding,
 * half of Zydis's time. */
static bool needs_operands(const ZydisDecodedInstruction *zi)
{
	switch (zi->mnemonic) {
	case ZYDIS_MNEMONIC_MOV:
	case ZYDIS_MNEMONIC_PUSH:
	case ZYDIS_MNEMONIC_POP:
		return true;
	default:
		return zi->attributes & (ZYDIS_ATTRIB_HAS_SEGMENT_GS | ZYDIS_ATTRIB_HAS_SEGMENT_CS);
	}
}

int bt_decode(const void *buf, size_t len, uint32_t eip, uint32_t mode, struct bt_insn *in)
{
	ZydisDecoder dec;
	ZydisDecoderContext ctx;
	ZyanStatus st;
	bool cs32 = mode & BT_MODE_CS32;

	if (!table_ready)
		table_init();
	in->cls = BT_CLASS_IDENT;
	in->branch = BT_BR_NONE;
	in->action = BT_ACT_NONE;
	in->flags = 0;
	in->target = 0;
	ZydisDecoderInit(&dec, cs32 ? ZYDIS_MACHINE_MODE_LEGACY_32 : ZYDIS_MACHINE_MODE_LEGACY_16,
			 (mode & BT_MODE_SS32) ? ZYDIS_STACK_WIDTH_32 : ZYDIS_STACK_WIDTH_16);
	if (len > ZYDIS_MAX_INSTRUCTION_LENGTH)
		len = ZYDIS_MAX_INSTRUCTION_LENGTH;
	st = ZydisDecoderDecodeInstruction(&dec, &ctx, buf, len, &in->zi);
	if (st == ZYDIS_STATUS_NO_MORE_DATA && len < ZYDIS_MAX_INSTRUCTION_LENGTH)
		return -EAGAIN;
	if (st == ZYDIS_STATUS_NO_MORE_DATA || st == ZYDIS_STATUS_INSTRUCTION_TOO_LONG)
		return -E2BIG; /* SDM vol. 2 §2.3.11: more than 15 bytes is #GP(0) */
	if (!ZYAN_SUCCESS(st))
		return -EILSEQ;
	in->nops = 0;
	if ((mode & BT_DECODE_OPERANDS) || needs_operands(&in->zi)) {
		if (!ZYAN_SUCCESS(ZydisDecoderDecodeOperands(&dec, &ctx, &in->zi, in->ops,
							     in->zi.operand_count)))
			return -EILSEQ;
		in->nops = in->zi.operand_count;
	}

	in->len = in->zi.length;
	if (in->zi.operand_width == 16)
		in->flags |= BT_INSN_OSIZE16;
	if (in->zi.address_width == 16)
		in->flags |= BT_INSN_ASIZE16;

	/* Table first: INT, IRET, SYSENTER... are branches to Zydis, sensitive to us. */
	if (action_of[in->zi.mnemonic]) {
		sensitive_as(in, action_of[in->zi.mnemonic], flags_of[in->zi.mnemonic]);
		return 0;
	}
	if (in->zi.meta.branch_type == ZYDIS_BRANCH_TYPE_FAR) {
		sensitive_as(in, BT_ACT_FAR_BRANCH, END);
		return 0;
	}
	classify_operands(in);
	if (in->cls == BT_CLASS_SENSITIVE)
		return 0;
	if (uses_gs_or_cs(in)) {
		/* An indirect branch through %gs/%cs leaves the block from the runtime. */
		bool branch = in->zi.meta.branch_type != ZYDIS_BRANCH_TYPE_NONE;
		sensitive_as(in, BT_ACT_SEG_ACCESS, branch ? END : 0);
		return 0;
	}
	if (in->zi.meta.branch_type != ZYDIS_BRANCH_TYPE_NONE) {
		classify_branch(in, eip);
		return 0;
	}
	if (in->zi.attributes & ZYDIS_ATTRIB_IS_PRIVILEGED) {
		sensitive_as(in, BT_ACT_PRIV, END);
		return 0;
	}
	in->cls = BT_CLASS_IDENT;
	return 0;
}
