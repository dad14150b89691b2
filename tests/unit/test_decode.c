/*
 * Unit tests of the bt classifier (src/cpu/bt/decode.c): every instruction form a 32-bit
 * kernel and gcc/clang emit, with prefixes and 16-bit operands, is ident, a branch of the right
 * kind or sensitive with the right action; invalid and truncated bytes are refused. The
 * expectations follow the Intel SDM vol. 2 and HOST-FACTS.md (what ring 3 does here).
 */
#include <elf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cpu/bt/decode.h"
#include "tap.h"

#define K32 (BT_MODE_CS32 | BT_MODE_SS32)

enum { ID, BR, SE, BAD, MORE, LONG };

struct dcase {
	const char *hex;	/* instruction bytes */
	int what;		/* ID, BR (branch), SE (sensitive), BAD (-EILSEQ), MORE (-EAGAIN),
				   LONG (-E2BIG) */
	int detail;		/* branch kind or action */
	unsigned flags;		/* BT_INSN_* that must be set */
	const char *name;
};

static const struct dcase cases[] = {
	/* Ordinary code: ident, whatever the prefixes. */
	{ "01 d8", ID, 0, 0, "add %ebx,%eax" },
	{ "66 01 d8", ID, 0, BT_INSN_OSIZE16, "add %bx,%ax (66)" },
	{ "8b 44 24 04", ID, 0, 0, "mov 4(%esp),%eax" },
	{ "64 a1 10 00 00 00", ID, 0, 0, "mov %fs:0x10,%eax (Linux per-CPU)" },
	{ "64 8b 0d 00 00 00 00", ID, 0, 0, "mov %fs:0,%ecx" },
	{ "36 8b 00", ID, 0, 0, "mov %ss:(%eax),%eax" },
	{ "26 89 07", ID, 0, 0, "mov %eax,%es:(%edi)" },
	{ "f0 0f b1 0a", ID, 0, 0, "lock cmpxchg %ecx,(%edx)" },
	{ "f0 ff 00", ID, 0, 0, "lock incl (%eax)" },
	{ "f3 a5", ID, 0, 0, "rep movsl" },
	{ "f3 ab", ID, 0, 0, "rep stosl" },
	{ "66 f3 a5", ID, 0, BT_INSN_OSIZE16, "rep movsw" },
	{ "f3 a6", ID, 0, 0, "repe cmpsb" },
	{ "67 8b 07", ID, 0, BT_INSN_ASIZE16, "mov (%bx),%eax (67)" },
	{ "8d 04 24", ID, 0, 0, "lea (%esp),%eax" },
	{ "65 8d 00", ID, 0, 0, "lea %gs:(%eax),%eax: no access" },
	{ "0f 31", ID, 0, 0, "rdtsc" },
	{ "0f a3 c8", ID, 0, 0, "bt %ecx,%eax" },
	{ "0f c8", ID, 0, 0, "bswap %eax" },
	{ "60", ID, 0, 0, "pushal" },
	{ "61", ID, 0, 0, "popal" },
	{ "c8 10 00 00", ID, 0, 0, "enter" },
	{ "c9", ID, 0, 0, "leave" },
	{ "6a 01", ID, 0, 0, "push $1" },
	{ "66 6a 01", ID, 0, BT_INSN_OSIZE16, "pushw $1" },
	{ "50", ID, 0, 0, "push %eax" },
	{ "8f 00", ID, 0, 0, "pop (%eax)" },
	{ "f3 90", ID, 0, 0, "pause" },
	{ "0f 1f 44 00 00", ID, 0, 0, "nopl 0(%eax,%eax)" },
	{ "66 0f 1f 44 00 00", ID, 0, 0, "nopw" },
	{ "f3 0f 1e fb", ID, 0, 0, "endbr32" },
	{ "0f ae f0", ID, 0, 0, "mfence" },
	{ "0f ae 00", ID, 0, 0, "fxsave (%eax)" },
	{ "0f ae 08", ID, 0, 0, "fxrstor (%eax)" },
	{ "dd 30", ID, 0, 0, "fnsave" },
	{ "9b", ID, 0, 0, "fwait" },
	{ "0f 6f 00", ID, 0, 0, "movq (%eax),%mm0" },
	{ "66 0f 6f 00", ID, 0, 0, "movdqa (%eax),%xmm0" },
	{ "c5 f9 6f 00", ID, 0, 0, "vmovdqa (%eax),%xmm0" },
	{ "0f c7 f0", ID, 0, 0, "rdrand %eax" },
	{ "62 00", ID, 0, 0, "bound" },
	{ "d6", ID, 0, 0, "salc" },
	{ "63 c8", ID, 0, 0, "arpl: plain selector arithmetic" },
	{ "f7 f1", ID, 0, 0, "div %ecx (faults map back)" },
	{ "0f 0d 08", ID, 0, 0, "prefetchw" },

	/* Near branches. */
	{ "eb fe", BR, BT_BR_JMP, 0, "jmp rel8" },
	{ "e9 00 00 00 00", BR, BT_BR_JMP, 0, "jmp rel32" },
	{ "66 e9 00 00", BR, BT_BR_JMP, BT_INSN_OSIZE16, "jmpw rel16" },
	{ "74 02", BR, BT_BR_JCC, 0, "je rel8" },
	{ "2e 74 02", BR, BT_BR_JCC, 0, "je rel8, not-taken hint" },
	{ "3e 0f 85 00 01 00 00", BR, BT_BR_JCC, 0, "jne rel32, taken hint" },
	{ "0f 8f 00 00 00 00", BR, BT_BR_JCC, 0, "jg rel32" },
	{ "e3 10", BR, BT_BR_LOOP, 0, "jecxz" },
	{ "67 e3 10", BR, BT_BR_LOOP, BT_INSN_ASIZE16, "jcxz" },
	{ "e2 f0", BR, BT_BR_LOOP, 0, "loop" },
	{ "e1 f0", BR, BT_BR_LOOP, 0, "loope" },
	{ "e0 f0", BR, BT_BR_LOOP, 0, "loopne" },
	{ "e8 00 00 00 00", BR, BT_BR_CALL, 0, "call rel32" },
	{ "66 e8 00 00", BR, BT_BR_CALL, BT_INSN_OSIZE16, "callw rel16" },
	{ "ff d0", BR, BT_BR_CALL_IND, 0, "call *%eax" },
	{ "ff 14 85 00 10 00 00", BR, BT_BR_CALL_IND, 0, "call *table(,%eax,4)" },
	{ "ff 54 24 04", BR, BT_BR_CALL_IND, 0, "call *4(%esp)" },
	{ "ff e0", BR, BT_BR_JMP_IND, 0, "jmp *%eax" },
	{ "3e ff e0", BR, BT_BR_JMP_IND, 0, "notrack jmp *%eax" },
	{ "ff 24 85 00 10 00 00", BR, BT_BR_JMP_IND, 0, "jmp *table(,%eax,4)" },
	{ "66 ff e0", BR, BT_BR_JMP_IND, BT_INSN_OSIZE16, "jmp *%ax" },
	{ "c3", BR, BT_BR_RET, 0, "ret" },
	{ "f3 c3", BR, BT_BR_RET, 0, "rep ret" },
	{ "f2 c3", BR, BT_BR_RET, 0, "bnd ret" },
	{ "c2 08 00", BR, BT_BR_RET, 0, "ret $8" },
	{ "66 c3", BR, BT_BR_RET, BT_INSN_OSIZE16, "retw" },

	/* EFLAGS.IF: inline. */
	{ "fa", SE, BT_ACT_CLI, BT_INSN_INLINE_CPL0, "cli" },
	{ "fb", SE, BT_ACT_STI, BT_INSN_INLINE_CPL0 | BT_INSN_SHADOW, "sti" },
	{ "9c", SE, BT_ACT_PUSHF, BT_INSN_INLINE, "pushfl" },
	{ "66 9c", SE, BT_ACT_PUSHF, BT_INSN_INLINE | BT_INSN_OSIZE16, "pushfw" },
	{ "9d", SE, BT_ACT_POPF, BT_INSN_INLINE_CPL0, "popfl" },
	{ "66 9d", SE, BT_ACT_POPF, BT_INSN_OSIZE16, "popfw" },
	{ "0f 01 cb", SE, BT_ACT_AC, 0, "stac" },
	{ "0f 01 ca", SE, BT_ACT_AC, 0, "clac" },

	/* Segment registers: reads inline, loads emulated, %gs and %cs accesses emulated. */
	{ "8c c8", SE, BT_ACT_SREG_READ, BT_INSN_INLINE, "mov %cs,%eax" },
	{ "66 8c c8", SE, BT_ACT_SREG_READ, BT_INSN_INLINE | BT_INSN_OSIZE16, "mov %cs,%ax" },
	{ "8c d0", SE, BT_ACT_SREG_READ, BT_INSN_INLINE, "mov %ss,%eax" },
	{ "8c 08", SE, BT_ACT_SREG_READ, BT_INSN_INLINE, "mov %cs,(%eax)" },
	{ "8c 6c 24 04", SE, BT_ACT_SREG_READ, BT_INSN_INLINE, "mov %gs,4(%esp)" },
	{ "8c e8", SE, BT_ACT_SREG_READ, BT_INSN_INLINE, "mov %gs,%eax" },
	{ "0e", SE, BT_ACT_SREG_READ, BT_INSN_INLINE, "push %cs" },
	{ "16", SE, BT_ACT_SREG_READ, BT_INSN_INLINE, "push %ss" },
	{ "1e", SE, BT_ACT_SREG_READ, BT_INSN_INLINE, "push %ds" },
	{ "06", SE, BT_ACT_SREG_READ, BT_INSN_INLINE, "push %es" },
	{ "0f a0", SE, BT_ACT_SREG_READ, BT_INSN_INLINE, "push %fs" },
	{ "0f a8", SE, BT_ACT_SREG_READ, BT_INSN_INLINE, "push %gs" },
	{ "66 0e", SE, BT_ACT_SREG_READ, BT_INSN_INLINE | BT_INSN_OSIZE16, "pushw %cs" },
	{ "8e d8", SE, BT_ACT_SREG_LOAD, 0, "mov %eax,%ds" },
	{ "8e e0", SE, BT_ACT_SREG_LOAD, 0, "mov %eax,%fs" },
	{ "8e e8", SE, BT_ACT_SREG_LOAD, 0, "mov %eax,%gs" },
	{ "8e d0", SE, BT_ACT_SREG_LOAD, BT_INSN_ENDS_BLOCK | BT_INSN_SHADOW, "mov %eax,%ss" },
	{ "8e 18", SE, BT_ACT_SREG_LOAD, 0, "mov (%eax),%ds" },
	{ "1f", SE, BT_ACT_SREG_LOAD, 0, "pop %ds" },
	{ "07", SE, BT_ACT_SREG_LOAD, 0, "pop %es" },
	{ "0f a1", SE, BT_ACT_SREG_LOAD, 0, "pop %fs" },
	{ "0f a9", SE, BT_ACT_SREG_LOAD, 0, "pop %gs" },
	{ "17", SE, BT_ACT_SREG_LOAD, BT_INSN_ENDS_BLOCK | BT_INSN_SHADOW, "pop %ss" },
	{ "c5 00", SE, BT_ACT_SREG_LOAD, 0, "lds" },
	{ "c4 00", SE, BT_ACT_SREG_LOAD, 0, "les" },
	{ "0f b4 00", SE, BT_ACT_SREG_LOAD, 0, "lfs" },
	{ "0f b5 00", SE, BT_ACT_SREG_LOAD, 0, "lgs" },
	{ "0f b2 00", SE, BT_ACT_SREG_LOAD, BT_INSN_ENDS_BLOCK, "lss" },
	{ "65 8b 00", SE, BT_ACT_SEG_ACCESS, 0, "mov %gs:(%eax),%eax" },
	{ "65 a1 14 00 00 00", SE, BT_ACT_SEG_ACCESS, 0, "mov %gs:0x14,%eax (canary)" },
	{ "65 89 00", SE, BT_ACT_SEG_ACCESS, 0, "mov %eax,%gs:(%eax)" },
	{ "2e 8b 00", SE, BT_ACT_SEG_ACCESS, 0, "mov %cs:(%eax),%eax" },
	{ "65 a4", SE, BT_ACT_SEG_ACCESS, 0, "movsb %gs:(%esi)" },
	{ "65 d7", SE, BT_ACT_SEG_ACCESS, 0, "xlat %gs:" },
	{ "65 ff 10", SE, BT_ACT_SEG_ACCESS, BT_INSN_ENDS_BLOCK, "call *%gs:(%eax)" },
	{ "2e ff 24 85 00 00 00 00", SE, BT_ACT_SEG_ACCESS, BT_INSN_ENDS_BLOCK, "jmp *%cs:t(,%eax,4)" },

	/* System registers ring 3 reads silently (UMIP emulation), and their loads. */
	{ "0f 01 00", SE, BT_ACT_SYS_READ, 0, "sgdt" },
	{ "0f 01 08", SE, BT_ACT_SYS_READ, 0, "sidt" },
	{ "0f 00 c0", SE, BT_ACT_SYS_READ, 0, "sldt %eax" },
	{ "0f 00 00", SE, BT_ACT_SYS_READ, 0, "sldt (%eax)" },
	{ "0f 00 c8", SE, BT_ACT_SYS_READ, 0, "str %eax" },
	{ "0f 01 e0", SE, BT_ACT_SYS_READ, 0, "smsw %eax" },
	{ "0f 01 20", SE, BT_ACT_SYS_READ, 0, "smsw (%eax)" },
	{ "0f 01 10", SE, BT_ACT_SYS_LOAD, 0, "lgdt" },
	{ "66 0f 01 10", SE, BT_ACT_SYS_LOAD, 0, "lgdtw" },
	{ "0f 01 18", SE, BT_ACT_SYS_LOAD, 0, "lidt" },
	{ "0f 00 d0", SE, BT_ACT_SYS_LOAD, 0, "lldt" },
	{ "0f 00 d8", SE, BT_ACT_SYS_LOAD, 0, "ltr" },
	{ "0f 01 f0", SE, BT_ACT_SYS_LOAD, BT_INSN_ENDS_BLOCK, "lmsw" },
	{ "0f 02 c0", SE, BT_ACT_SEG_INFO, 0, "lar" },
	{ "0f 03 c0", SE, BT_ACT_SEG_INFO, 0, "lsl" },
	{ "0f 00 e0", SE, BT_ACT_SEG_INFO, 0, "verr" },
	{ "0f 00 e8", SE, BT_ACT_SEG_INFO, 0, "verw" },
	{ "0f a2", SE, BT_ACT_CPUID, 0, "cpuid" },

	/* I/O, HLT. */
	{ "e4 60", SE, BT_ACT_IO, 0, "in $0x60,%al" },
	{ "e5 40", SE, BT_ACT_IO, 0, "in $0x40,%eax" },
	{ "ec", SE, BT_ACT_IO, 0, "in %dx,%al" },
	{ "66 ed", SE, BT_ACT_IO, 0, "in %dx,%ax" },
	{ "e6 80", SE, BT_ACT_IO, 0, "out %al,$0x80" },
	{ "ee", SE, BT_ACT_IO, 0, "out %al,%dx" },
	{ "ef", SE, BT_ACT_IO, 0, "out %eax,%dx" },
	{ "6c", SE, BT_ACT_IO, 0, "insb" },
	{ "f3 6d", SE, BT_ACT_IO, 0, "rep insl" },
	{ "f3 6e", SE, BT_ACT_IO, 0, "rep outsb" },
	{ "66 f3 6f", SE, BT_ACT_IO, 0, "rep outsw" },
	{ "f4", SE, BT_ACT_HLT, 0, "hlt" },

	/* Interrupts, far transfers, fast system calls: all end the block. */
	{ "cd 80", SE, BT_ACT_INT, BT_INSN_ENDS_BLOCK, "int $0x80 (never the host's)" },
	{ "cc", SE, BT_ACT_INT, BT_INSN_ENDS_BLOCK, "int3" },
	{ "ce", SE, BT_ACT_INT, BT_INSN_ENDS_BLOCK, "into" },
	{ "f1", SE, BT_ACT_INT, BT_INSN_ENDS_BLOCK, "int1 (icebp)" },
	{ "cf", SE, BT_ACT_IRET, BT_INSN_ENDS_BLOCK, "iretl" },
	{ "66 cf", SE, BT_ACT_IRET, BT_INSN_ENDS_BLOCK, "iretw" },
	{ "ea 00 00 00 00 08 00", SE, BT_ACT_FAR_BRANCH, BT_INSN_ENDS_BLOCK, "ljmp $8,$0" },
	{ "ff 28", SE, BT_ACT_FAR_BRANCH, BT_INSN_ENDS_BLOCK, "ljmp *(%eax)" },
	{ "9a 00 00 00 00 08 00", SE, BT_ACT_FAR_BRANCH, BT_INSN_ENDS_BLOCK, "lcall $8,$0" },
	{ "ff 18", SE, BT_ACT_FAR_BRANCH, BT_INSN_ENDS_BLOCK, "lcall *(%eax)" },
	{ "cb", SE, BT_ACT_FAR_BRANCH, BT_INSN_ENDS_BLOCK, "lret" },
	{ "ca 04 00", SE, BT_ACT_FAR_BRANCH, BT_INSN_ENDS_BLOCK, "lret $4" },
	{ "0f 34", SE, BT_ACT_SYSENTER, BT_INSN_ENDS_BLOCK, "sysenter" },
	{ "0f 35", SE, BT_ACT_SYSENTER, BT_INSN_ENDS_BLOCK, "sysexit" },
	{ "0f 05", SE, BT_ACT_SYSENTER, BT_INSN_ENDS_BLOCK, "syscall (a host syscall!)" },
	{ "0f 07", SE, BT_ACT_SYSENTER, BT_INSN_ENDS_BLOCK, "sysret" },

	/* Control, debug, model-specific registers; TLB, caches. */
	{ "0f 20 c0", SE, BT_ACT_CR, 0, "mov %cr0,%eax" },
	{ "0f 20 d0", SE, BT_ACT_CR, 0, "mov %cr2,%eax" },
	{ "0f 22 c0", SE, BT_ACT_CR, BT_INSN_ENDS_BLOCK, "mov %eax,%cr0" },
	{ "0f 22 d8", SE, BT_ACT_CR, BT_INSN_ENDS_BLOCK, "mov %eax,%cr3" },
	{ "0f 22 e0", SE, BT_ACT_CR, BT_INSN_ENDS_BLOCK, "mov %eax,%cr4" },
	{ "0f 06", SE, BT_ACT_CR, 0, "clts" },
	{ "0f 21 f8", SE, BT_ACT_DR, 0, "mov %dr7,%eax" },
	{ "0f 23 c0", SE, BT_ACT_DR, 0, "mov %eax,%dr0" },
	{ "0f 30", SE, BT_ACT_MSR, 0, "wrmsr" },
	{ "0f 32", SE, BT_ACT_MSR, 0, "rdmsr" },
	{ "0f 33", SE, BT_ACT_MSR, 0, "rdpmc" },
	{ "0f 01 38", SE, BT_ACT_TLB, BT_INSN_ENDS_BLOCK, "invlpg (%eax)" },
	{ "66 0f 38 82 00", SE, BT_ACT_TLB, BT_INSN_ENDS_BLOCK, "invpcid" },
	{ "0f 09", SE, BT_ACT_CACHE, 0, "wbinvd" },
	{ "f3 0f 09", SE, BT_ACT_CACHE, 0, "wbnoinvd" },
	{ "0f 08", SE, BT_ACT_CACHE, 0, "invd" },
	{ "0f 01 d0", SE, BT_ACT_XCR, 0, "xgetbv" },
	{ "0f 01 d1", SE, BT_ACT_XCR, 0, "xsetbv" },
	{ "0f 01 f9", SE, BT_ACT_TSC_AUX, 0, "rdtscp" },
	{ "f3 0f c7 f8", SE, BT_ACT_TSC_AUX, 0, "rdpid" },
	{ "0f 01 c8", SE, BT_ACT_MWAIT, 0, "monitor" },
	{ "0f 01 c9", SE, BT_ACT_MWAIT, 0, "mwait" },
	{ "0f 01 c1", SE, BT_ACT_VMCALL, 0, "vmcall" },
	{ "0f 01 d9", SE, BT_ACT_VMCALL, 0, "vmmcall" },
	{ "0f 0b", SE, BT_ACT_UD, BT_INSN_ENDS_BLOCK, "ud2 (Linux BUG())" },
	{ "0f b9 00", SE, BT_ACT_UD, BT_INSN_ENDS_BLOCK, "ud1" },
	{ "0f ff 00", SE, BT_ACT_UD, BT_INSN_ENDS_BLOCK, "ud0" },
	{ "0f aa", SE, BT_ACT_UD, BT_INSN_ENDS_BLOCK, "rsm" },
	{ "0f 01 d8", SE, BT_ACT_UD, BT_INSN_ENDS_BLOCK, "vmrun" },
	{ "0f c7 28", SE, BT_ACT_PRIV, BT_INSN_ENDS_BLOCK, "xsaves (IS_PRIVILEGED)" },
	{ "0f 01 c5", SE, BT_ACT_PRIV, BT_INSN_ENDS_BLOCK, "pconfig (IS_PRIVILEGED)" },

	/* Not instructions here: #UD for the guest, or more bytes needed. */
	{ "0f 01 f8", BAD, 0, 0, "swapgs: 64-bit only" },
	{ "0f 05 00", SE, BT_ACT_SYSENTER, 0, "syscall followed by junk" },
	{ "f0 90", BAD, 0, 0, "lock nop" },
	{ "f0 e9 00 00 00 00", BAD, 0, 0, "lock jmp" },
	{ "f0 fa", BAD, 0, 0, "lock cli" },
	{ "0f ff", MORE, 0, 0, "ud0 without its ModRM" },
	{ "0f 00 30", BAD, 0, 0, "0f 00 /6: reserved" },
	{ "c4 e2 79", MORE, 0, 0, "truncated VEX" },
	{ "e8 00 00", MORE, 0, 0, "truncated call" },
	{ "66", MORE, 0, 0, "a lone prefix" },
	{ "", MORE, 0, 0, "nothing" },
	{ "66 66 66 66 66 66 66 66 66 66 66 66 66 66 90", ID, 0, 0, "15 bytes: the limit" },
	{ "66 66 66 66 66 66 66 66 66 66 66 66 66 66 66 90", LONG, 0, 0, "16 bytes: too long" },
	{ "66 66 66 66 66 66 66 66 66 66 66 66 66 66 66", LONG, 0, 0, "15 prefixes, no opcode" },
	{ "66 66 66 66 66 66 66 66 66 66 66 66 66 66", MORE, 0, 0, "14 prefixes: need more" },
};

static size_t parse_hex(const char *s, uint8_t *out)
{
	size_t n = 0;

	while (*s) {
		if (*s == ' ') {
			s++;
			continue;
		}
		out[n++] = (uint8_t)strtoul((char[]){ s[0], s[1], 0 }, NULL, 16);
		s += 2;
	}
	return n;
}

static void table_cases(void)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct dcase *c = &cases[i];
		uint8_t b[32];
		size_t n = parse_hex(c->hex, b);
		struct bt_insn in;
		int r = bt_decode(b, n, 0x1000, K32, &in);
		bool good;

		switch (c->what) {
		case BAD:
			good = r == -EILSEQ;
			break;
		case MORE:
			good = r == -EAGAIN;
			break;
		case LONG:
			good = r == -E2BIG;
			break;
		case ID:
			good = r == 0 && in.cls == BT_CLASS_IDENT && in.len == n;
			break;
		case BR:
			good = r == 0 && in.cls == BT_CLASS_BRANCH && in.branch == (enum bt_branch)c->detail &&
			       in.len == n;
			break;
		default:
			good = r == 0 && in.cls == BT_CLASS_SENSITIVE &&
			       in.action == (enum bt_action)c->detail;
			break;
		}
		if (good && r == 0)
			good = (in.flags & c->flags) == c->flags;
		if (!ok(good, "%s [%s]", c->name, c->hex))
			printf("#   r=%d cls=%d branch=%d action=%s flags=%#x len=%u\n", r, in.cls,
			       in.branch, bt_action_name(in.action), in.flags, in.len);
	}
}

/* Direct branch targets, and their 16-bit wrap (SDM JMP: EIP ← tempEIP AND 0000FFFFH). */
static void targets(void)
{
	struct bt_insn in;

	bt_decode("\xe8\xfb\xff\xff\xff", 5, 0x1000, K32, &in);
	is_int(in.target, 0x1000, "call -5 targets itself");
	bt_decode("\x74\x10", 2, 0xc1000000, K32, &in);
	is_int(in.target, 0xc1000012, "je +0x10 from a kernel address");
	bt_decode("\x0f\x84\x00\x00\x00\x80", 6, 0x80000000, K32, &in);
	is_int(in.target, 0x6, "jcc rel32 wraps at 4 GiB");
	bt_decode("\x66\xe9\x00\x10", 4, 0x12345, K32, &in);
	is_int(in.target, (0x12345 + 4 + 0x1000) & 0xffff, "jmpw wraps EIP to 16 bits");
	bt_decode("\xe2\xfe", 2, 0x2000, K32, &in);
	is_int(in.target, 0x2000, "loop to itself");
}

/* 16-bit code segments: the same bytes mean other instructions. */
static void code16(void)
{
	struct bt_insn in;

	ok(bt_decode("\xb8\x34\x12", 3, 0, BT_MODE_SS32, &in) == 0 && in.len == 3 &&
		   (in.flags & BT_INSN_OSIZE16),
	   "16-bit code: mov $0x1234,%%ax is 3 bytes");
	ok(bt_decode("\x66\x9c", 2, 0, 0, &in) == 0 && in.action == BT_ACT_PUSHF &&
		   !(in.flags & BT_INSN_OSIZE16),
	   "16-bit code: 66 9c is pushfd");
	ok(bt_decode("\x8c\xc8", 2, 0, 0, &in) == 0 && in.action == BT_ACT_SREG_READ,
	   "16-bit code: mov %%cs,%%ax is sensitive");
}

/* Hostile bytes: every prefix of every buffer decodes or is refused, never read past len. */
static void hostile(void)
{
	uint8_t buf[64];
	unsigned seed = 12345, bad = 0, n_ok = 0, n_more = 0, n_ill = 0;

	for (int i = 0; i < 200000; i++) {
		struct bt_insn in;
		size_t len = (seed = seed * 1103515245 + 12345) % 17;
		for (size_t j = 0; j < len; j++)
			buf[j] = (uint8_t)((seed = seed * 1103515245 + 12345) >> 16);
		int r = bt_decode(buf, len, seed, K32, &in);
		if (r == 0)
			n_ok++, bad += in.len > len || in.len == 0;
		else if (r == -EAGAIN)
			n_more++, bad += len >= 15;
		else if (r == -EILSEQ || r == -E2BIG)
			n_ill++;
		else
			bad++;
	}
	ok(bad == 0, "200000 random buffers: %u decoded, %u need more, %u invalid, none wrong",
	   n_ok, n_more, n_ill);
}

/*
 * Every function of the test kernel (and of its ring-3 program) decodes, instruction by
 * instruction from its symbol to its end: the classifier knows all gcc emits for it.
 */
static void kernel_sweep(const char *path)
{
	static uint8_t img[1 << 20];
	unsigned long counts[BT_ACT__COUNT] = { 0 }, n = 0, funcs = 0, bad = 0, branches = 0;
	FILE *f = fopen(path, "rb");
	size_t size;

	if (!f) {
		printf("ok %d - %s: not built # SKIP\n", ++tap_n, path);
		return;
	}
	size = fread(img, 1, sizeof(img), f);
	fclose(f);
	const Elf32_Ehdr *eh = (const void *)img;
	if (size < sizeof(*eh) || memcmp(eh->e_ident, ELFMAG, SELFMAG) ||
	    eh->e_ident[EI_CLASS] != ELFCLASS32 || eh->e_shoff + (size_t)eh->e_shnum * sizeof(Elf32_Shdr) > size) {
		ok(false, "%s: a 32-bit ELF", path);
		return;
	}
	const Elf32_Shdr *sh = (const void *)(img + eh->e_shoff);
	for (unsigned i = 0; i < eh->e_shnum; i++) {
		if (sh[i].sh_type != SHT_SYMTAB || sh[i].sh_offset + sh[i].sh_size > size)
			continue;
		const Elf32_Sym *sym = (const void *)(img + sh[i].sh_offset);
		for (unsigned k = 0; k < sh[i].sh_size / sizeof(*sym); k++) {
			const Elf32_Shdr *sec = &sh[sym[k].st_shndx < eh->e_shnum ? sym[k].st_shndx : 0];
			uint32_t off, end;
			if (ELF32_ST_TYPE(sym[k].st_info) != STT_FUNC || !sym[k].st_size ||
			    !(sec->sh_flags & SHF_EXECINSTR))
				continue;
			off = sec->sh_offset + (sym[k].st_value - sec->sh_addr);
			end = off + sym[k].st_size;
			if (end > size)
				continue;
			funcs++;
			while (off < end) {
				struct bt_insn in;
				uint32_t eip = sym[k].st_value + (off - (end - sym[k].st_size));
				if (bt_decode(img + off, end - off, eip, K32, &in)) {
					if (!bad++)
						printf("#   undecodable at %#x\n", eip);
					break;
				}
				n++;
				counts[in.action]++;
				branches += in.cls == BT_CLASS_BRANCH;
				off += in.len;
			}
		}
	}
	ok(funcs > 10 && bad == 0, "%s: %lu functions, %lu instructions, all decoded", path, funcs, n);
	printf("# diagnostic: %s: %lu branches; sensitive:", path, branches);
	for (int a = 1; a < BT_ACT__COUNT; a++)
		if (counts[a])
			printf(" %s %lu", bt_action_name(a), counts[a]);
	printf("\n");
}

static void speed(void)
{
	/* A mix of kernel-like code, decoded over and over. */
	static const uint8_t code[] = {
		0x55, 0x89, 0xe5, 0x57, 0x56, 0x53, 0x83, 0xec, 0x1c, 0x8b, 0x45, 0x08, 0x64,
		0xa1, 0x10, 0x00, 0x00, 0x00, 0x85, 0xc0, 0x74, 0x10, 0x8b, 0x14, 0x85, 0x00,
		0x10, 0x00, 0xc1, 0xf0, 0x0f, 0xb1, 0x0a, 0x9c, 0xfa, 0xe8, 0x00, 0x00, 0x00,
		0x00, 0x9d, 0x83, 0xc4, 0x1c, 0x5b, 0x5e, 0x5f, 0x5d, 0xc3,
	};
	struct timespec t0, t1;
	unsigned long n = 0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int rep = 0; rep < 20000; rep++)
		for (size_t off = 0; off < sizeof(code);) {
			struct bt_insn in;
			if (bt_decode(code + off, sizeof(code) - off, 0xc1000000, K32, &in))
				break;
			off += in.len;
			n++;
		}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double s = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("# diagnostic: bt_decode classifies %.1f M instructions/s\n", n / s / 1e6);
}

int main(void)
{
	table_cases();
	targets();
	code16();
	hostile();
	ok(strcmp(bt_action_name(BT_ACT_CPUID), "cpuid") == 0 &&
		   strcmp(bt_action_name((enum bt_action)999), "?") == 0,
	   "action names");
	kernel_sweep("build/guest/testkernel.elf");
	speed();
	return done_testing();
}
