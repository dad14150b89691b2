/*
 * Unit tests of the bt translator and translation cache, run for real: guest code in 32-bit
 * compatibility mode, natively and translated, must leave the same registers, flags and memory
 * (differential, Blink-style); plus block boundaries, chaining, return addresses, inline
 * CLI/STI/PUSHF/POPF, segment-register reads, callouts, fault mapping, invalidation and flush.
 * Intel SDM vol. 2 for the semantics; tests/unit/bt_harness.h for the machinery.
 */
#include <stdlib.h>
#include <time.h>
#include <x86intrin.h>

#include "bt_harness.h"
#include "cpu/bt/decode.h"
#include "cpu/bt/tcache.h"
#include "tap.h"

/* Guest programs: 32-bit, position-independent, data at %ebp, stack at %esp, end with HLT. */
#define GUEST(name) extern const uint8_t name[], name##_end[]
GUEST(g_arith);
GUEST(g_calls);
GUEST(g_misc);
GUEST(g_flags);
GUEST(g_cli_sti);
GUEST(g_sreg);
GUEST(g_cpuid);
GUEST(g_fault);
GUEST(g_fault_call);
GUEST(g_loop);
GUEST(g_smc);
GUEST(g_bench_cli);
GUEST(g_bench_pushf);
GUEST(g_bench_nop);
GUEST(g_bench_native_pushf);
GUEST(g_popf_if);
GUEST(g_sti_shadow);
GUEST(g_sti_hlt);
GUEST(g_sti_jmp);

asm(".pushsection .rodata.bt_guest, \"a\"\n"
    ".code32\n"

    /* Arithmetic, flags, loops (a chained backward jcc). */
    "g_arith:\n"
    "	mov $100, %ecx\n	xor %eax, %eax\n	mov $1, %ebx\n"
    "1:	add %ecx, %eax\n	imul $3, %ebx, %edx\n	xor %edx, %ebx\n	rol $5, %ebx\n"
    "	dec %ecx\n	jnz 1b\n"
    "	mov %eax, 0(%ebp)\n	mov %ebx, 4(%ebp)\n"
    "	mov $12345678, %eax\n	xor %edx, %edx\n	mov $97, %ecx\n	div %ecx\n"
    "	cmp $3, %edx\n	setb %cl\n	cmovae %edx, %esi\n"
    "	bsf %eax, %edi\n	bswap %edi\n	lea 0x10(%eax,%ebx,4), %ebx\n"
    "	stc\n	adc $0, %ebx\n	sbb %edx, %edx\n	neg %eax\n"
    "	hlt\n"
    "g_arith_end:\n"

    /* Calls: recursion, indirect calls through a register and memory, a jump table,
     * ret $imm. Return addresses are read back from the stack. */
    "g_calls:\n"
    "	mov $10, %eax\n	call 8f\n	mov %eax, 0(%ebp)\n"
    "	call 1f\n"
    "1:	pop %ebx\n"
    "	lea (8f - 1b)(%ebx), %esi\n"
    "	mov $7, %eax\n	call *%esi\n	mov %eax, 4(%ebp)\n"
    "	mov %esi, 8(%ebp)\n	mov $6, %eax\n	call *8(%ebp)\n	mov %eax, 12(%ebp)\n"
    "	lea (3f - 1b)(%ebx), %eax\n	mov %eax, 16(%ebp)\n"
    "	lea (4f - 1b)(%ebx), %eax\n	mov %eax, 20(%ebp)\n"
    "	lea (5f - 1b)(%ebx), %eax\n	mov %eax, 24(%ebp)\n"
    "	xor %edi, %edi\n	xor %ecx, %ecx\n"
    "2:	jmp *16(%ebp,%ecx,4)\n"
    "3:	add $1, %edi\n	jmp 6f\n"
    "4:	add $10, %edi\n	jmp 6f\n"
    "5:	add $100, %edi\n"
    "6:	inc %ecx\n	cmp $3, %ecx\n	jb 2b\n"
    "	push $0x1234\n	call 9f\n	mov %eax, 28(%ebp)\n"
    "	call 7f\n	mov %eax, 32(%ebp)\n"
    "	hlt\n"
    "7:	mov (%esp), %eax\n	ret\n"			/* returns its own return address */
    "8:	cmp $2, %eax\n	jb 10f\n	push %eax\n	dec %eax\n	call 8b\n"
    "	mov %eax, %edx\n	pop %eax\n	push %edx\n	sub $2, %eax\n	call 8b\n"
    "	pop %edx\n	add %edx, %eax\n"
    "10:	ret\n"
    "9:	mov 4(%esp), %eax\n	ret $4\n"
    "g_calls_end:\n"

    /* Strings, stack instructions, LOOP/JECXZ, PUSHF image, 16-bit operands. */
    "g_misc:\n"
    "	cld\n	lea 64(%ebp), %edi\n	mov $0x11223344, %eax\n	mov $8, %ecx\n	rep stosl\n"
    "	lea 64(%ebp), %esi\n	lea 128(%ebp), %edi\n	mov $32, %ecx\n	rep movsb\n"
    "	std\n	lea 159(%ebp), %esi\n	lodsb\n	cld\n"
    "	pushal\n	xor %eax, %eax\n	popal\n"
    "	push %ebp\n	enter $16, $0\n	movl $5, -4(%ebp)\n	mov -4(%ebp), %edx\n	leave\n"
    "	pop %ebp\n"
    "	lock xadd %edx, 0(%ebp)\n"
    "	mov $5, %ecx\n	xor %eax, %eax\n"
    "1:	inc %eax\n	loop 1b\n"
    "	mov $3, %ecx\n"
    "2:	inc %eax\n	jecxz 3f\n	dec %ecx\n	jmp 2b\n"
    "3:	mov $4, %ecx\n	xor %ebx, %ebx\n"
    "4:	inc %ebx\n	cmp $2, %ebx\n	loopne 4b\n"
    "	pushfl\n	pop %esi\n	pushfw\n	pop %di\n"
    "	pushw $0x55\n	popw %dx\n	mov $0x1234, %ax\n	add %ax, %dx\n"
    "	movsbl %dl, %ecx\n	xchg %cl, %ch\n"
    "	hlt\n"
    "g_misc_end:\n"

    /* POPF/PUSHF round trips of the arithmetic flags (IF stays set). */
    "g_flags:\n"
    "	push $0x8d5 | 0x202\n	popfl\n	pushfl\n	pop %eax\n"
    "	push $0x202\n	popfl\n	pushfl\n	pop %ebx\n"
    "	xor %ecx, %ecx\n	sub $1, %ecx\n	pushfl\n	pop %edx\n"
    "	push $0x283\n	popfl\n	setc %cl\n	sets %ch\n"
    "	hlt\n"
    "g_flags_end:\n"

    /* CLI/STI and what PUSHF sees; POPF restoring IF and setting IOPL and AC. */
    "g_cli_sti:\n"
    "	cli\n	pushfl\n	pop %eax\n"
    "	sti\n	pushfl\n	pop %ebx\n"
    "	push %eax\n	popfl\n	pushfl\n	pop %ecx\n"	/* IF clear again */
    "	push $0x43202\n	popfl\n	pushfl\n	pop %edx\n"	/* IOPL 3, AC, IF */
    "	mov 1(%ebp), %esi\n"				/* misaligned: no #AC */
    "	push $0x202\n	popfl\n"
    "	hlt\n"
    "g_cli_sti_end:\n"

    /* Segment-register reads: all forms. */
    "g_sreg:\n"
    "	mov %cs, %eax\n	mov %ss, %bx\n	mov %ds, 0(%ebp)\n	mov %cs, 4(%ebp,%eax,1)\n"
    "	push %cs\n	pop %ecx\n	pushw %ss\n	popw %dx\n	push %gs\n	pop %esi\n"
    "	mov %fs, %edi\n	mov %es, (%eax,%ebp)\n"
    "	hlt\n"
    "g_sreg_end:\n"

    /* A callout in the middle of a block. */
    "g_cpuid:\n"
    "	mov $0, %eax\n	cpuid\n	add $1, %eax\n	mov %ebx, %esi\n	hlt\n"
    "g_cpuid_end:\n"

    /* Faults inside a block and inside an indirect call. */
    "g_fault:\n"
    "	mov $1, %eax\n	mov $2, %ebx\n	mov 0x100, %ecx\n	mov $3, %edx\n	hlt\n"
    "g_fault_end:\n"
    "g_fault_call:\n"
    "	mov $0x11, %ecx\n	mov $0x22, %edx\n	call *0x100\n	hlt\n"
    "g_fault_call_end:\n"

    /* A hot loop: one block chained to itself. */
    "g_loop:\n"
    "	mov $100000, %ecx\n"
    "1:	add %ecx, %eax\n	dec %ecx\n	jnz 1b\n	hlt\n"
    "g_loop_end:\n"

    /* Self-modifying code: patch the immediate of an instruction, then run it again. */
    "g_smc:\n"
    "	call 1f\n"
    "1:	pop %ebx\n"
    "	call 2f\n	mov %eax, 0(%ebp)\n"
    "	movl $42, (3f - 1b)(%ebx)\n"
    "	call 2f\n	mov %eax, 4(%ebp)\n	hlt\n"
    "	.balign 4096\n"					/* 2f on its own page */
    "2:	.byte 0xb8\n"					/* mov $imm32, %eax */
    "3:	.long 7\n"
    "	ret\n"
    "g_smc_end:\n"

    /* Cost loops: CLI/STI, PUSHF/POPF inline, a NOP loop and native PUSHF/POPF. */
    "g_bench_cli:\n"
    "	mov $1000000, %ecx\n"
    "1:	cli\n	sti\n	cli\n	sti\n	cli\n	sti\n	cli\n	sti\n	dec %ecx\n	jnz 1b\n	hlt\n"
    "g_bench_cli_end:\n"
    "g_bench_pushf:\n"
    "	mov $1000000, %ecx\n"
    "1:	pushfl\n	popfl\n	pushfl\n	popfl\n	pushfl\n	popfl\n	pushfl\n	popfl\n"
    "	dec %ecx\n	jnz 1b\n	hlt\n"
    "g_bench_pushf_end:\n"
    "g_bench_nop:\n"
    "	mov $1000000, %ecx\n"
    "1:	nop\n	nop\n	nop\n	nop\n	nop\n	nop\n	nop\n	nop\n	dec %ecx\n	jnz 1b\n	hlt\n"
    "g_bench_nop_end:\n"
    "g_bench_native_pushf:\n"
    "	mov $1000000, %ecx\n"
    "1:	pushfl\n	popfl\n	pushfl\n	popfl\n	pushfl\n	popfl\n	pushfl\n	popfl\n"
    "	dec %ecx\n	jnz 1b\n	hlt\n"
    "g_bench_native_pushf_end:\n"

    /* Interrupt windows: POPF setting IF, STI's shadow, STI;HLT, STI before a branch. */
    "g_popf_if:\n"
    "	cli\n	push $0x202\n	popfl\n	mov $1, %eax\n	hlt\n"
    "g_popf_if_end:\n"
    "g_sti_shadow:\n"
    "	cli\n	sti\n	mov $1, %eax\n	mov $2, %ebx\n	hlt\n"
    "g_sti_shadow_end:\n"
    "g_sti_hlt:\n"
    "	cli\n	sti\n	hlt\n"
    "g_sti_hlt_end:\n"
    "g_sti_jmp:\n"
    "	cli\n	sti\n	jmp 1f\n"
    "1:	hlt\n"
    "g_sti_jmp_end:\n"

    ".code64\n"
    ".popsection\n");

static struct tcache *tc;

/* Copy a program to the start of guest memory; returns its EIP. */
static uint32_t load(const uint8_t *start, const uint8_t *end)
{
	memcpy((void *)(uintptr_t)BTH_GUEST, start, (size_t)(end - start));
	return BTH_GUEST;
}
#define LOAD(name) load(name, name##_end)

static void fill_memory(void)
{
	memset((void *)(uintptr_t)BTH_DATA, 0x5a, 0x1000);
	memset((void *)(uintptr_t)(BTH_STACK - 0x1000), 0xa5, 0x1000);
}

static uint8_t native_data[0x1000], native_stack[0x1000];

/* Run a program natively and translated; the same registers, flags and memory. */
static void differential(const char *name, const uint8_t *start, const uint8_t *end)
{
	struct cpu32 in, native, xl;
	uint32_t eip = load(start, end);
	int r;

	in = bth_cpu(eip);
	fill_memory();
	bth_run_native(&in);
	native = bth.out;
	uint32_t native_stop = bth.stop.eip;
	int native_sig = bth.stop.sig;
	memcpy(native_data, (void *)(uintptr_t)BTH_DATA, sizeof(native_data));
	memcpy(native_stack, (void *)(uintptr_t)(BTH_STACK - 0x1000), sizeof(native_stack));

	tc_flush(tc);
	bth_reset_state();
	fill_memory();
	r = bth_run_tc(tc, &in);
	xl = bth.out;
	if (!ok(r == 0 && native_sig == SIGSEGV && bth.stop.sig == SIGTRAP &&
			bth.stop.site_ok && bth.stop.site.action == BT_ACT_HLT &&
			bth.stop.eip == native_stop,
		"%s: native and translated both stop at the HLT", name))
		printf("#   r=%d native sig %d at %#x, translated sig %d at %#x (site %d kind %d)\n", r,
		       native_sig, native_stop, bth.stop.sig, bth.stop.eip, bth.stop.site_ok,
		       bth.stop.site.kind);
	bool regs = native.eax == xl.eax && native.ecx == xl.ecx && native.edx == xl.edx &&
		    native.ebx == xl.ebx && native.esp == xl.esp && native.ebp == xl.ebp &&
		    native.esi == xl.esi && native.edi == xl.edi;
	if (!ok(regs, "%s: same registers", name))
		printf("#   native %08x %08x %08x %08x %08x %08x %08x %08x\n"
		       "#   xlated %08x %08x %08x %08x %08x %08x %08x %08x\n",
		       native.eax, native.ecx, native.edx, native.ebx, native.esp, native.ebp,
		       native.esi, native.edi, xl.eax, xl.ecx, xl.edx, xl.ebx, xl.esp, xl.ebp,
		       xl.esi, xl.edi);
	is_int(xl.eflags & BTH_ARITH_FLAGS, native.eflags & BTH_ARITH_FLAGS,
	       "%s: same arithmetic flags", name);
	ok(memcmp(native_data, (void *)(uintptr_t)BTH_DATA, sizeof(native_data)) == 0 &&
		   memcmp(native_stack, (void *)(uintptr_t)(BTH_STACK - 0x1000),
			  sizeof(native_stack)) == 0,
	   "%s: same data and stack memory", name);
}

int main(void)
{
	struct bt_config cfg;
	int r;

	r = bth_init();
	if (r) {
		printf("1..0 # SKIP cannot map guest memory below 4 GiB or modify_ldt: %s\n",
		       strerror(-r));
		return 0;
	}
	cfg = bth_config(BTH_TC, BTH_TC_SIZE);
	r = tc_init(&tc, &cfg);
	if (!ok(r == 0, "tc_init"))
		return done_testing();
	differential("arith", g_arith, g_arith_end);
	differential("calls", g_calls, g_calls_end);
	differential("misc", g_misc, g_misc_end);
	differential("flags", g_flags, g_flags_end);
	differential("sreg", g_sreg, g_sreg_end);
	tc_destroy(tc);
	return done_testing();
}
