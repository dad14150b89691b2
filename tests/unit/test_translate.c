/*
 * Unit tests of the bt translator and translation cache, run for real: guest code in 32-bit
 * compatibility mode, natively and translated, must leave the same registers, flags and memory
 * (differential, Blink-style); plus block boundaries, chaining, return addresses, inline
 * CLI/STI/PUSHF/POPF, segment-register reads, callouts, fault mapping, invalidation and flush.
 * Intel SDM vol. 2 for the semantics; tests/unit/bt_harness.h for the machinery.
 */
#include <elf.h>
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
GUEST(g_smc_same);
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

    /* Self-modifying code: patch the immediate of an instruction, then run it again. The
     * patched code is on a page of its own (a writer on the page it writes is the runtime's
     * business: it must step the write with the page unprotected). */
    "	.balign 4096\n"
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

    /* A block that patches an instruction further down its own block and page. */
    "	.balign 4096\n"
    "g_smc_same:\n"
    "	call 1f\n"
    "1:	pop %ebx\n"
    "	movl $42, (3f - 1b)(%ebx)\n"
    "	.byte 0xb8\n"					/* mov $imm32, %eax */
    "3:	.long 7\n"
    "	mov %eax, 0(%ebp)\n	hlt\n"
    "g_smc_same_end:\n"

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

/* Copy a program to the start of guest memory, dropping what was translated there, as the
 * runtime's write protection would; returns its EIP. */
static uint32_t load(const uint8_t *start, const uint8_t *end)
{
	memcpy((void *)(uintptr_t)BTH_GUEST, start, (size_t)(end - start));
	for (uint32_t p = 0; p < (uint32_t)(end - start); p += 4096)
		tc_invalidate_page(tc, BTH_GPA(BTH_GUEST + p));
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

	load(start, end); /* the native run may have changed its own code */
	tc_flush(tc);
	bth_reset_state();
	fill_memory();
	bth.write_protect = true;
	r = bth_run_tc(tc, &in);
	bth.write_protect = false;
	bth_unprotect();
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


static uint32_t data32(unsigned off)
{
	return *(volatile uint32_t *)(uintptr_t)(BTH_DATA + off);
}

/* The guest EIP just after the first instruction at or after eip that satisfies pred. */
static uint32_t eip_after(uint32_t eip, bool (*pred)(const struct bt_insn *))
{
	struct bt_insn in;

	while (bt_decode((void *)(uintptr_t)eip, 16, eip, BT_MODE_CS32 | BT_MODE_SS32, &in) == 0) {
		eip += in.len;
		if (pred(&in))
			return eip;
	}
	return 0;
}

static bool is_branch(const struct bt_insn *in)
{
	return in->cls == BT_CLASS_BRANCH;
}

static bool is_popf(const struct bt_insn *in)
{
	return in->action == BT_ACT_POPF;
}

static bool is_sti(const struct bt_insn *in)
{
	return in->action == BT_ACT_STI;
}

static bool any(const struct bt_insn *in)
{
	return true;
}

/* A hot loop runs chained: a handful of CHAIN callouts for 100,000 iterations. */
static void chaining(void)
{
	struct cpu32 in = bth_cpu(LOAD(g_loop));
	uint64_t chains;

	tc_flush(tc);
	bth_reset_state();
	in.eax = 0;
	bth_run_tc(tc, &in);
	is_int(bth.out.eax, 100000ull * 100001 / 2 % (1ull << 32), "loop: right sum");
	ok(bth.n_chain <= 3, "loop: %u CHAIN callouts for 100000 iterations", bth.n_chain);
	chains = tc_stats(tc)->chains;
	ok(chains >= 1, "loop: %llu branches chained", (unsigned long long)chains);
	bth_reset_state();
	bth_run_tc(tc, &in);
	is_int(bth.n_chain, 0, "loop again: no callout but the HLT");
}

/* call pushes the guest's return EIP; ret and indirect calls find their targets inline. */
static void return_addresses(void)
{
	struct cpu32 in = bth_cpu(LOAD(g_calls));
	uint32_t after_call_7f;

	tc_flush(tc);
	bth_reset_state();
	bth_run_tc(tc, &in);
	/* "call 7f; mov %eax, 32(%ebp)": 7f returns the address it was called from. */
	after_call_7f = BTH_GUEST + (uint32_t)(g_calls_end - g_calls) - 0;
	(void)after_call_7f;
	is_int(data32(0), 55, "fib(10) through recursive calls");
	is_int(data32(4), 13, "fib(7) through call *%%esi");
	is_int(data32(12), 8, "fib(6) through call *8(%%ebp)");
	is_int(bth.out.edi, 111, "jump table through jmp *16(%%ebp,%%ecx,4)");
	is_int(data32(28), 0x1234, "ret $4 took its argument");
	ok(data32(32) > BTH_GUEST && data32(32) < BTH_GUEST + (uint32_t)(g_calls_end - g_calls),
	   "the return address on the stack is a guest EIP (%#x)", data32(32));
	ok(bth.n_indirect >= 1 && bth.n_indirect <= 12,
	   "%u indirect-branch misses: the rest hit the inline table", bth.n_indirect);
	bth_reset_state();
	bth_run_tc(tc, &in);
	is_int(bth.n_indirect + bth.n_chain, 0, "second run: every branch inline or chained");
}

/*
 * Three call targets with the same low 16 bits (one inline-table home entry): a loop that
 * calls A and B in turn finds both inline (home and next entry); C, called once first, took
 * the home entry and must not keep the hot targets out. Raw bytes: EAX, EBX, EDX count.
 */
static void put(uint32_t la, const char *bytes, size_t n)
{
	memcpy((void *)(uintptr_t)la, bytes, n);
	tc_invalidate_page(tc, BTH_GPA(la));
}

static void ibl_collisions(void)
{
	const uint32_t a = BTH_GUEST + 0x20000, b = BTH_GUEST + 0x30000, c = BTH_GUEST + 0x50000;
	/* mov $c,%ebp; call *%ebp; mov $a,%esi; mov $b,%edi; mov $100,%ecx;
	   1: call *%esi; call *%edi; dec %ecx; jnz 1b; hlt */
	char main_code[] = "\xbd\x00\x00\x05\x10\xff\xd5\xbe\x00\x00\x02\x10"
			   "\xbf\x00\x00\x03\x10\xb9\x64\x00\x00\x00"
			   "\xff\xd6\xff\xd7\x49\x75\xf9\xf4";
	struct cpu32 in = bth_cpu(BTH_GUEST);
	unsigned misses;

	tc_flush(tc);
	put(BTH_GUEST, main_code, sizeof(main_code) - 1);
	put(a, "\x40\xc3", 2); /* inc %eax; ret */
	put(b, "\x43\xc3", 2); /* inc %ebx; ret */
	put(c, "\x42\xc3", 2); /* inc %edx; ret */
	bth_reset_state();
	in.eax = in.ebx = in.edx = 0;
	bth_run_tc(tc, &in);
	ok(bth.out.eax == 100 && bth.out.ebx == 100 && bth.out.edx == 1,
	   "colliding call targets: A, B, C ran 100, 100, 1 times (%u %u %u)", bth.out.eax,
	   bth.out.ebx, bth.out.edx);
	misses = bth.n_indirect;
	ok(misses <= 8, "first run: %u indirect misses (each target and return once at most)",
	   misses);
	bth_reset_state();
	in.eip = BTH_GUEST + 7; /* the loop alone, without C */
	bth_run_tc(tc, &in);
	ok(bth.out.eax == 100 && bth.out.ebx == 100, "the loop again: A and B ran 100 times each");
	is_int(bth.n_indirect, 0, "... and both hot targets sharing a home entry hit inline");
}

static int emulate_cpuid(ucontext_t *uc, const struct bt_site *site)
{
	greg_t *g = uc->uc_mcontext.gregs;

	if (site->action != BT_ACT_CPUID)
		return 0;
	g[REG_RAX] = 0x41;
	g[REG_RBX] = 0x52696e67; /* "gniR" */
	g[REG_RCX] = g[REG_RDX] = 0;
	return 1;
}

/* A callout in mid-block: the runtime emulates and resumes in the same block. */
static void callouts(void)
{
	struct cpu32 in = bth_cpu(LOAD(g_cpuid));
	struct bt_site site;
	uint64_t blocks0;

	tc_flush(tc);
	blocks0 = tc_stats(tc)->blocks;
	bth_reset_state();
	bth.on_emulate = emulate_cpuid;
	bth_run_tc(tc, &in);
	bth.on_emulate = NULL;
	ok(bth.out.eax == 0x42 && bth.out.esi == 0x52696e67,
	   "cpuid: the runtime's answer, and the rest of the block ran");
	is_int(bth.n_emulate, 2, "cpuid and hlt called out");
	ok(tc_site_lookup(tc, tc_lookup(tc, BTH_GUEST, BT_MODE_KERNEL32), &site) == 0 &&
		   site.kind == BT_SITE_IDENT && site.eip == BTH_GUEST && (site.flags & BT_SITE_EXACT),
	   "the block's first TC byte maps to its first guest instruction");
	is_int(tc_stats(tc)->blocks - blocks0, 1, "cpuid and hlt did not end the block");
}

/* Faults inside translated code map back to the guest instruction, state exact. */
static void faults(void)
{
	struct cpu32 in = bth_cpu(LOAD(g_fault));
	uint32_t ecx, edx;

	tc_flush(tc);
	bth_reset_state();
	bth_run_tc(tc, &in);
	ok(bth.stop.sig == SIGSEGV && bth.stop.site_ok && bth.stop.site.eip == BTH_GUEST + 10 &&
		   (bth.stop.site.flags & BT_SITE_EXACT) && bth.stop.site.kind == BT_SITE_IDENT,
	   "a fault in mid-block maps to the faulting guest instruction");
	ok(bth.out.eax == 1 && bth.out.ebx == 2, "the instructions before it ran");

	in = bth_cpu(LOAD(g_fault_call));
	bth_reset_state();
	bth_run_tc(tc, &in);
	ecx = (bth.stop.site.restore & (1u << BT_ECX)) ? *bth_state(ST_SCRATCH + 4) : bth.out.ecx;
	edx = (bth.stop.site.restore & (1u << BT_EDX)) ? *bth_state(ST_SCRATCH + 8) : bth.out.edx;
	ok(bth.stop.sig == SIGSEGV && bth.stop.site_ok && bth.stop.site.eip == BTH_GUEST + 10 &&
		   (bth.stop.site.flags & BT_SITE_EXACT),
	   "a fault in an indirect call's operand maps to the call");
	ok(ecx == 0x11 && edx == 0x22 && bth.out.esp == BTH_STACK,
	   "after restoring the spilled registers the state is the call's (ecx %#x edx %#x)", ecx,
	   edx);
}

/* The runtime's POPF, for the values the inline one leaves to it (AC or TF set). */
static int emulate_popf(ucontext_t *uc, const struct bt_site *site)
{
	greg_t *g = uc->uc_mcontext.gregs;
	uint32_t v;

	if (site->action != BT_ACT_POPF)
		return 0;
	bth_restore(uc, site->restore);
	v = *(uint32_t *)(uintptr_t)(uint32_t)g[REG_RSP];
	g[REG_RSP] += 4;
	*bth_state(ST_VIF) = v & BT_VIF;
	*bth_state(ST_VFLAGS) = v & 0x43000;
	g[REG_EFL] = (g[REG_EFL] & ~0x244dd5L) | (v & 0x204cd5); /* never TF or AC for real */
	return 1;
}

/* CLI, STI, PUSHF and POPF inline: the virtual IF, IOPL and AC, not the host's. */
static void flags_inline(void)
{
	struct cpu32 in = bth_cpu(LOAD(g_cli_sti));
	uint64_t cli0 = tc_stats(tc)->by_action[BT_ACT_CLI];
	uint64_t popf0 = tc_stats(tc)->by_action[BT_ACT_POPF];

	tc_flush(tc);
	bth_reset_state();
	bth.on_emulate = emulate_popf;
	bth_run_tc(tc, &in);
	bth.on_emulate = NULL;
	ok(bth.stop.site_ok && bth.stop.site.action == BT_ACT_HLT, "cli/sti: ran to the HLT");
	is_int(bth.out.eax & 0x200, 0, "pushf after cli: IF clear");
	is_int(bth.out.ebx & 0x200, 0x200, "pushf after sti: IF set");
	is_int(bth.out.ecx & 0x200, 0, "popf restored IF clear");
	is_int(bth.out.edx & 0x43200, 0x43200,
	       "popf set IOPL 3, AC and IF (AC through the runtime); pushf shows them");
	is_int(bth.out.eflags & 0x40000, 0, "the host's AC stayed clear (no #AC on the way)");
	ok(*bth_state(ST_VIF) == BT_VIF && *bth_state(ST_VFLAGS) == 0,
	   "virtual IF set, IOPL and AC clear after the last popf");
	is_int(bth.n_emulate, 2, "no callout but the HLT and the POPF setting AC");
	is_int(bth.n_irq, 0, "nothing pending: no interrupt window");
	ok(tc_stats(tc)->by_action[BT_ACT_CLI] - cli0 == 1 &&
		   tc_stats(tc)->by_action[BT_ACT_POPF] - popf0 == 3,
	   "stats count sensitive instructions by action");
}

/* Interrupt windows: POPF and STI call out when IF becomes set with an interrupt pending. */
static void irq_windows(void)
{
	struct cpu32 in;
	uint32_t eip;

	in = bth_cpu(eip = LOAD(g_popf_if));
	tc_flush(tc);
	bth_reset_state();
	*bth_state(ST_PENDING) = BT_VIF;
	bth_run_tc(tc, &in);
	ok(bth.n_irq == 1 && bth.irq_eip[0] == eip_after(eip, is_popf),
	   "popf setting IF: the interrupt comes right after the popf");
	is_int(bth.out.eax, 1, "and the guest resumes after it");

	in = bth_cpu(eip = LOAD(g_sti_shadow));
	tc_flush(tc);
	bth_reset_state();
	*bth_state(ST_PENDING) = BT_VIF;
	bth_run_tc(tc, &in);
	uint32_t after_sti = eip_after(eip, is_sti);
	ok(bth.n_irq == 1 && bth.irq_eip[0] == eip_after(after_sti, any),
	   "sti: the interrupt comes after the next instruction (shadow)");
	{
		uint32_t a = tc_lookup(tc, eip, BT_MODE_KERNEL32);
		struct tc_block *b = tc_block_at(tc, a);
		bool shadow = false, other = false;
		for (uint32_t t = b->tc; t < b->tc + b->tc_len; t++) {
			struct bt_site s;
			if (tc_site_lookup(tc, t, &s) || s.kind != BT_SITE_IDENT)
				continue;
			if (s.eip == after_sti)
				shadow |= s.flags & BT_SITE_SHADOW;
			else
				other |= s.flags & BT_SITE_SHADOW;
		}
		ok(shadow && !other, "only the instruction after sti is marked in its shadow");
	}

	in = bth_cpu(eip = LOAD(g_sti_hlt));
	tc_flush(tc);
	bth_reset_state();
	*bth_state(ST_PENDING) = BT_VIF;
	bth_run_tc(tc, &in);
	ok(bth.n_irq == 0 && bth.stop.site.action == BT_ACT_HLT,
	   "sti; hlt: no window before the HLT (the runtime wakes it)");

	in = bth_cpu(eip = LOAD(g_sti_jmp));
	tc_flush(tc);
	bth_reset_state();
	*bth_state(ST_PENDING) = BT_VIF;
	bth_run_tc(tc, &in);
	ok(bth.n_irq == 1 && bth.irq_eip[0] == eip_after(eip, is_sti),
	   "sti; jmp: the window is before the branch");

	in = bth_cpu(LOAD(g_cli_sti));
	tc_flush(tc);
	bth_reset_state();
	*bth_state(ST_PENDING) = BT_VIF;
	bth_run_tc(tc, &in);
	ok(bth.n_irq == 1, "pending during cli; one window when sti opens it (%u)", bth.n_irq);
}

/* Segment-register reads give the guest's selectors, not the host's mirrors. */
static void sreg_reads(void)
{
	struct cpu32 in = bth_cpu(LOAD(g_sreg));

	tc_flush(tc);
	bth_reset_state();
	*bth_state(ST_SEL + 0) = 0x18;	/* ES */
	*bth_state(ST_SEL + 4) = 0x10;	/* CS */
	*bth_state(ST_SEL + 8) = 0x28;	/* SS */
	*bth_state(ST_SEL + 12) = 0x18; /* DS */
	*bth_state(ST_SEL + 16) = 0xd8; /* FS */
	*bth_state(ST_SEL + 20) = 0x33; /* GS */
	fill_memory();
	bth_run_tc(tc, &in);
	is_int(bth.out.eax, 0x10, "mov %%cs,%%eax");
	is_int(bth.out.ebx & 0xffff, 0x28, "mov %%ss,%%bx");
	is_int(data32(0), 0x5a5a0018, "mov %%ds,(mem) stores 16 bits");
	is_int(*(volatile uint16_t *)(uintptr_t)(BTH_DATA + 4 + 0x10), 0x10,
	       "mov %%cs,4(%%ebp,%%eax) with %%eax in the address");
	is_int(bth.out.ecx, 0x10, "push %%cs");
	is_int(bth.out.edx & 0xffff, 0x28, "pushw %%ss");
	is_int(bth.out.esi, 0x33, "push %%gs");
	is_int(bth.out.edi, 0xd8, "mov %%fs,%%edi");
	is_int(*(volatile uint16_t *)(uintptr_t)(BTH_DATA + 0x10), 0x18, "mov %%es,(%%eax,%%ebp)");
}

/* Blocks end at branches, page boundaries and the length limit; instructions that cross a
 * page make a two-page block. */
static void block_boundaries(void)
{
	uint8_t *g = (uint8_t *)(uintptr_t)BTH_GUEST;
	uint32_t a, fl, eip;
	struct tc_block *b;
	int r;

	tc_flush(tc);
	LOAD(g_arith);
	bt_translate(tc, BTH_GUEST, BT_MODE_KERNEL32, &a, &fl);
	b = tc_block_at(tc, a);
	is_int(BTH_GUEST + b->guest_len, eip_after(BTH_GUEST, is_branch),
	       "a block ends at its first branch");
	ok(b->nexits == 2, "a jcc block has two exits");

	memset(g, 0x90, 3 * 4096);
	eip = BTH_GUEST + 4096 - 6;
	bt_translate(tc, eip, BT_MODE_KERNEL32, &a, &fl);
	b = tc_block_at(tc, a);
	ok(b->guest_len == 6 && b->npages == 1 && b->exits[0].target == BTH_GUEST + 4096,
	   "a block ends at the page boundary, and falls through to the next page");

	eip = BTH_GUEST + 2 * 4096 - 3;
	memcpy(g + 2 * 4096 - 3, "\x90\xb8\x01\x02\x03\x04", 6); /* nop; mov $imm32 crosses */
	bt_translate(tc, eip, BT_MODE_KERNEL32, &a, &fl);
	b = tc_block_at(tc, a);
	ok(b->guest_len == 6 && b->npages == 2 && b->phys[1].page == BTH_GPA(BTH_GUEST + 2 * 4096),
	   "an instruction crossing the page joins both pages to the block");
	is_int(tc_invalidate_page(tc, BTH_GPA(BTH_GUEST + 2 * 4096)), 1,
	       "writing the second page drops it");

	bt_translate(tc, BTH_GUEST + 4096, BT_MODE_KERNEL32, &a, &fl);
	b = tc_block_at(tc, a);
	is_int(b->guest_len, TC_BLOCK_INSNS, "a long run of nops ends at the length limit");

	/* Fetch faults: at the first instruction, and an instruction crossing into a hole. */
	bth.unmapped[3] = 1;
	r = bt_translate(tc, BTH_GUEST + 3 * 4096, BT_MODE_KERNEL32, &a, &fl);
	ok(r == -EFAULT && fl == BTH_GUEST + 3 * 4096, "fetch fault at the block start");
	memcpy(g + 3 * 4096 - 4, "\x90\xb8\x01\x02", 4);
	r = bt_translate(tc, BTH_GUEST + 3 * 4096 - 4, BT_MODE_KERNEL32, &a, &fl);
	b = tc_block_at(tc, a);
	ok(r == 0 && b->guest_len == 1 && b->npages == 1,
	   "an instruction running into a hole ends the block before it");
	r = bt_translate(tc, BTH_GUEST + 3 * 4096 - 3, BT_MODE_KERNEL32, &a, &fl);
	ok(r == -EFAULT && fl == BTH_GUEST + 3 * 4096,
	   "translating it alone faults at the hole (%#x)", fl);
	bth.unmapped[3] = 0;

	/* Undecodable and overlong instructions. */
	tc_flush(tc);
	memcpy(g, "\x90\x90\x0f\x01\xf8", 5); /* nop; nop; swapgs */
	r = bt_translate(tc, BTH_GUEST, BT_MODE_KERNEL32, &a, &fl);
	b = tc_block_at(tc, a);
	ok(r == 0 && b->guest_len == 2, "the block stops before an undecodable instruction");
	r = bt_translate(tc, BTH_GUEST + 2, BT_MODE_KERNEL32, &a, &fl);
	is_int(r, -EILSEQ, "which alone is -EILSEQ (#UD)");
	tc_flush(tc);
	memset(g, 0x66, 15);
	g[15] = 0x90;
	is_int(bt_translate(tc, BTH_GUEST, BT_MODE_KERNEL32, &a, &fl), -E2BIG,
	       "a 16-byte instruction is -E2BIG (#GP)");
	is_int(bt_translate(tc, BTH_GUEST, (struct bt_mode){ 0, BT_MODE_CS32 }, &a, &fl),
	       -EOPNOTSUPP, "16-bit stacks are not translated");
	ok(bth.code_pages >= 3, "the runtime heard of each new code page (%u)", bth.code_pages);
}

/* Self-modifying code: the runtime's write fault drops the stale translation. */
static void self_modifying(void)
{
	struct cpu32 in;
	uint64_t dropped;

	differential("smc", g_smc, g_smc_end);

	in = bth_cpu(LOAD(g_smc));
	tc_flush(tc);
	bth_reset_state();
	fill_memory();
	dropped = tc_stats(tc)->invalidated;
	bth.write_protect = true;
	bth.wp_faults = bth.wp_dropped = 0;
	bth_run_tc(tc, &in);
	bth.write_protect = false;
	bth_unprotect();
	ok(bth.stop.site_ok && bth.stop.site.action == BT_ACT_HLT, "smc: ran to the HLT");
	ok(data32(0) == 7 && data32(4) == 42, "the patched code ran, not its stale translation");
	ok(bth.wp_faults == 1 && bth.wp_dropped >= 1 && tc_stats(tc)->invalidated > dropped,
	   "one write fault dropped %u block(s)", bth.wp_dropped);
	ok(tc_stats(tc)->unchains >= 1, "the call into the dropped block was unchained");

	/* The writer in the block it writes: step the write, then a fresh translation. */
	differential("smc in its own block", g_smc_same, g_smc_same_end);
	ok(bth.smc_steps_done >= 1 && data32(0) == 42,
	   "the write was stepped out of its stale block (%u)", bth.smc_steps_done);
}

static void invalidation(void)
{
	uint32_t a, a2, fl;
	struct bt_site s;

	tc_flush(tc);
	LOAD(g_loop);
	bt_translate(tc, BTH_GUEST, BT_MODE_KERNEL32, &a, &fl);
	ok(tc_lookup(tc, BTH_GUEST, BT_MODE_KERNEL32) == a, "tc_lookup finds the block");
	is_int(tc_invalidate_page(tc, BTH_GPA(BTH_GUEST + 8)), 1, "invalidate its page");
	is_int(tc_lookup(tc, BTH_GUEST, BT_MODE_KERNEL32), 0, "then it is gone");
	ok(tc_site_lookup(tc, a, &s) == 0 && (s.flags & BT_SITE_STALE),
	   "and its TC addresses say stale");
	is_int(tc_invalidate_page(tc, BTH_GPA(BTH_GUEST + 8)), 0, "invalidating again drops none");
	bt_translate(tc, BTH_GUEST, BT_MODE_KERNEL32, &a2, &fl);
	ok(a2 != a, "a new translation goes elsewhere");
	is_int(tc_invalidate_linear(tc, BTH_GUEST + 0xfff), 1, "invalidate by linear page");
	ok(tc_lookup(tc, BTH_GUEST, (struct bt_mode){ 0, BT_MODE_CS32 | BT_MODE_SS32 | 1 }) == 0,
	   "another CPL is another translation");
}

/*
 * Single-step both runs: every state the translated run is exact at (after reloading the
 * registers its inline sequences spilled) must be a state the native run went through, in
 * order, registers and flags alike. This checks the side table the runtime will deliver
 * interrupts and faults by, at every host instruction of the translation.
 */
static void trace_check(const char *name, const uint8_t *start, const uint8_t *end)
{
	static struct cpu32 trace[1 << 16];
	struct cpu32 in = bth_cpu(load(start, end));

	in.eflags |= 0x100; /* TF */
	bth.trace_buf = trace;
	bth.trace_max = sizeof(trace) / sizeof(trace[0]);
	bth.trace_len = bth.trace_pos = bth.trace_checked = bth.trace_bad = 0;
	bth.trace_inexact = 0;
	fill_memory();
	trace[0] = in;
	bth.trace_len = 1;
	bth.trace = 1;
	bth_run_native(&in);
	load(start, end);
	tc_flush(tc);
	bth_reset_state();
	fill_memory();
	bth.trace = 2;
	bth_run_tc(tc, &in);
	bth.trace = 0;
	if (!ok(bth.trace_len > 10 && bth.trace_len < bth.trace_max && bth.trace_bad == 0 &&
			bth.stop.site.action == BT_ACT_HLT,
		"%s: %u native steps; %u exact translated states all on the native path (%u "
		"inexact)",
		name, bth.trace_len, bth.trace_checked, bth.trace_inexact)) {
		struct cpu32 *c = &bth.trace_first_bad, *w = &bth.trace_want;
		printf("#   %u bad; first at eip %#x: %08x %08x %08x %08x esp %08x fl %03x\n"
		       "#   native near  eip %#x: %08x %08x %08x %08x esp %08x fl %03x\n",
		       bth.trace_bad, c->eip, c->eax, c->ecx, c->edx, c->ebx, c->esp,
		       c->eflags & 0xcd5, w->eip, w->eax, w->ecx, w->edx, w->ebx, w->esp,
		       w->eflags & 0xcd5);
	}
}

/* Far-jump callouts: the same side table, the site address in the state area. */
static void farjmp_callouts(void)
{
	struct bt_config cfg = bth_config(BTH_TC2, BTH_TC2_SIZE);
	struct tcache *ftc;
	struct cpu32 in = bth_cpu(LOAD(g_calls));
	uint8_t *stub = (uint8_t *)(uintptr_t)(BTH_TC2 + BTH_TC2_SIZE - 16);

	cfg.callout = BT_CALLOUT_FARJMP;
	if (!ok(tc_init(&ftc, &cfg) == 0, "tc_init with far-jump callouts"))
		return;
	stub[0] = 0xcc; /* the runtime's 64-bit entry: here just a trap */
	bth.far_stub = (uint32_t)(uintptr_t)stub;
	*bth_state(ST_FAR) = bth.far_stub;
	*(volatile uint16_t *)(uintptr_t)(BTH_STATE + ST_FAR + 4) = 0x33;
	bth_reset_state();
	fill_memory();
	bth_run_tc(ftc, &in);
	ok(bth.stop.site_ok && bth.stop.site.action == BT_ACT_HLT && data32(0) == 55 &&
		   bth.out.edi == 111,
	   "g_calls runs with far-jump callouts (%u chains, %u misses)", bth.n_chain,
	   bth.n_indirect);
	bth.far_stub = 0;
	tc_destroy(ftc);
}

/* A small TC fills up and flushes; translation goes on. */
static void flush_when_full(void)
{
	struct bt_config cfg = bth_config(BTH_TC2, BTH_TC2_SIZE);
	struct tcache *small;
	uint32_t a, fl, bad = 0;
	struct timespec t0, t1;

	if (!ok(tc_init(&small, &cfg) == 0, "tc_init, 1 MiB"))
		return;
	memset((void *)(uintptr_t)BTH_GUEST, 0x90, 16 * 4096);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (uint32_t eip = BTH_GUEST; eip < BTH_GUEST + 16 * 4096; eip += 3)
		bad += bt_translate(small, eip, BT_MODE_KERNEL32, &a, &fl) != 0;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	const struct bt_stats *st = tc_stats(small);
	ok(bad == 0 && st->flushes >= 1 && st->generation == st->flushes,
	   "%llu blocks through a 1 MiB TC: %llu flushes", (unsigned long long)st->blocks,
	   (unsigned long long)st->flushes);
	double s = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("# diagnostic: translating nop blocks: %.1f M guest instructions/s, %.0f ns a block\n",
	       st->insns / s / 1e6, s * 1e9 / st->blocks);

	struct cpu32 in = bth_cpu(LOAD(g_arith));
	bth_reset_state();
	bth_run_tc(small, &in);
	ok(bth.stop.site_ok && bth.stop.site.action == BT_ACT_HLT, "code still runs after flushes");
	tc_destroy(small);
}

/* Garbage: translating at every offset of random bytes never crashes or runs away. */
static void hostile_bytes(void)
{
	uint8_t *g = (uint8_t *)(uintptr_t)BTH_GUEST;
	unsigned seed = 1, counts[4] = { 0 }, other = 0;
	uint32_t a, fl;

	tc_flush(tc);
	for (unsigned i = 0; i < 4 * 4096; i++)
		g[i] = (uint8_t)((seed = seed * 1103515245 + 12345) >> 16);
	bth.unmapped[4] = 1; /* the bytes run into a hole */
	for (uint32_t off = 0; off < 4 * 4096; off++) {
		int r = bt_translate(tc, BTH_GUEST + off, BT_MODE_KERNEL32, &a, &fl);
		if (r == 0)
			counts[0]++;
		else if (r == -EFAULT && fl >= BTH_GUEST + 4 * 4096)
			counts[1]++;
		else if (r == -EILSEQ)
			counts[2]++;
		else if (r == -E2BIG)
			counts[3]++;
		else
			other++;
	}
	bth.unmapped[4] = 0;
	ok(other == 0, "16384 random entry points: %u translated, %u fetch faults, %u #UD, %u #GP",
	   counts[0], counts[1], counts[2], counts[3]);
}

/* Translation speed on real 32-bit code, when this host has it: a block after every branch
 * of 256 KiB of i386 libc, as a linear sweep finds them. */
static void speed_real_code(void)
{
	static uint32_t entry[0x40000 / 2];
	FILE *f = fopen("/usr/lib32/libc.so.6", "rb");
	uint8_t *g = (uint8_t *)(uintptr_t)BTH_GUEST;
	struct bt_stats st0 = *tc_stats(tc);
	struct timespec t0, t1;
	uint32_t a, fl, n_entry = 0;
	size_t n;

	if (!f) {
		printf("# diagnostic: no /usr/lib32/libc.so.6: real-code translation speed skipped\n");
		return;
	}
	fseek(f, 0x40000, SEEK_SET); /* mostly .text */
	n = fread(g, 1, 0x40000, f);
	fclose(f);
	for (uint32_t eip = BTH_GUEST, end = BTH_GUEST + (uint32_t)n; eip < end;) {
		struct bt_insn in;
		if (bt_decode(g + (eip - BTH_GUEST), end - eip, eip, BT_MODE_CS32 | BT_MODE_SS32,
			      &in)) {
			eip++;
			continue;
		}
		eip += in.len;
		if (in.cls == BT_CLASS_BRANCH)
			entry[n_entry++] = eip;
	}
	tc_flush(tc);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (uint32_t i = 0; i < n_entry; i++)
		bt_translate(tc, entry[i], BT_MODE_KERNEL32, &a, &fl);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double s = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	const struct bt_stats *st = tc_stats(tc);
	uint64_t insns = st->insns - st0.insns, blocks = st->blocks - st0.blocks;
	printf("# diagnostic: translating i386 libc: %.1f M guest instructions/s, %.2f us a block "
	       "of %.1f instructions; %.2f TC bytes per guest byte\n",
	       insns / s / 1e6, s * 1e6 / blocks, (double)insns / blocks,
	       (double)(st->tc_bytes - st0.tc_bytes) / (st->guest_bytes - st0.guest_bytes));
	ok(blocks > 1000, "translated %llu blocks of real code", (unsigned long long)blocks);
}

/* The test kernel's text, fetched straight from its ELF file. */
struct elf_text {
	const uint8_t *img;
	const Elf32_Shdr *sh;
	unsigned nsh;
	size_t size;
};

static int elf_fetch(void *ctx, uint32_t la, void *buf, uint32_t len, uint64_t *gpa)
{
	const struct elf_text *e = ctx;

	for (unsigned i = 0; i < e->nsh; i++) {
		const Elf32_Shdr *s = &e->sh[i];
		if (!(s->sh_flags & SHF_EXECINSTR) || la < s->sh_addr ||
		    (uint64_t)la + len > (uint64_t)s->sh_addr + s->sh_size ||
		    s->sh_offset + s->sh_size > e->size)
			continue;
		memcpy(buf, e->img + s->sh_offset + (la - s->sh_addr), len);
		*gpa = la;
		return 0;
	}
	return -EFAULT;
}

/* Translate every function of the test kernel: the translator handles all gcc emits there. */
static void translate_kernel(const char *path)
{
	static uint8_t img[1 << 20];
	struct bt_config cfg = bth_config(BTH_TC2, BTH_TC2_SIZE);
	struct elf_text e = { .img = img };
	unsigned funcs = 0, bad = 0;
	struct tcache *ktc;
	FILE *f = fopen(path, "rb");

	if (!f) {
		printf("ok %d - %s: not built # SKIP\n", ++tap_n, path);
		return;
	}
	e.size = fread(img, 1, sizeof(img), f);
	fclose(f);
	const Elf32_Ehdr *eh = (const void *)img;
	if (e.size < sizeof(*eh) || eh->e_ident[EI_CLASS] != ELFCLASS32 ||
	    eh->e_shoff + (size_t)eh->e_shnum * sizeof(Elf32_Shdr) > e.size) {
		ok(false, "%s: a 32-bit ELF", path);
		return;
	}
	e.sh = (const void *)(img + eh->e_shoff);
	e.nsh = eh->e_shnum;
	cfg.fetch = elf_fetch;
	cfg.ctx = &e;
	cfg.code_page = NULL;
	if (tc_init(&ktc, &cfg))
		return;
	for (unsigned i = 0; i < e.nsh; i++) {
		if (e.sh[i].sh_type != SHT_SYMTAB || e.sh[i].sh_offset + e.sh[i].sh_size > e.size)
			continue;
		const Elf32_Sym *sym = (const void *)(img + e.sh[i].sh_offset);
		for (unsigned k = 0; k < e.sh[i].sh_size / sizeof(*sym); k++) {
			uint32_t a, fl;
			if (ELF32_ST_TYPE(sym[k].st_info) != STT_FUNC)
				continue;
			funcs++;
			if (bt_translate(ktc, sym[k].st_value, BT_MODE_KERNEL32, &a, &fl)) {
				if (!bad++)
					printf("#   %#x does not translate\n", sym[k].st_value);
			}
		}
	}
	const struct bt_stats *st = tc_stats(ktc);
	ok(funcs > 10 && bad == 0, "%s: every function's first block translates (%u)", path, funcs);
	printf("# diagnostic: %s: %llu blocks, %llu instructions, %llu callout sites, %llu TC bytes "
	       "for %llu guest bytes\n",
	       path, (unsigned long long)st->blocks, (unsigned long long)st->insns,
	       (unsigned long long)st->callout_sites, (unsigned long long)st->tc_bytes,
	       (unsigned long long)st->guest_bytes);
	tc_destroy(ktc);
}

static double run_seconds(struct tcache *t, uint32_t eip, bool native)
{
	struct cpu32 in = bth_cpu(eip);
	struct timespec t0, t1;

	bth_reset_state();
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (native)
		bth_run_native(&in);
	else
		bth_run_tc(t, &in);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
}

/* What inline CLI/STI/PUSHF/POPF cost, against NOPs and the host's own PUSHF/POPF. */
static void costs(void)
{
	double nop, cli, pushf_xl, pushf_native, best[4] = { 1e9, 1e9, 1e9, 1e9 };

	for (int rep = 0; rep < 3; rep++) {
		tc_flush(tc);
		double v[4] = {
			run_seconds(tc, LOAD(g_bench_nop), false),
			run_seconds(tc, LOAD(g_bench_cli), false),
			run_seconds(tc, LOAD(g_bench_pushf), false),
			run_seconds(tc, LOAD(g_bench_native_pushf), true),
		};
		for (int i = 0; i < 4; i++)
			best[i] = v[i] < best[i] ? v[i] : best[i];
	}
	nop = best[0], cli = best[1], pushf_xl = best[2], pushf_native = best[3];
	/* 8 M instructions each; the NOP loop is the loop overhead. */
	printf("# diagnostic: loop of 8 nops: %.2f ns per instruction (translated)\n", nop / 8e6 * 1e9);
	printf("# diagnostic: inline CLI/STI: %.2f ns each (nop-loop corrected %.2f)\n",
	       cli / 8e6 * 1e9, (cli - nop) / 8e6 * 1e9);
	printf("# diagnostic: inline PUSHF/POPF: %.2f ns each; native PUSHF/POPF in ring 3: %.2f ns "
	       "(a trap would be ~2500 ns)\n",
	       pushf_xl / 8e6 * 1e9, pushf_native / 8e6 * 1e9);
	ok(nop > 0 && cli > 0 && pushf_xl > 0 && pushf_native > 0, "cost loops ran");
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
	chaining();
	return_addresses();
	ibl_collisions();
	callouts();
	faults();
	flags_inline();
	irq_windows();
	sreg_reads();
	block_boundaries();
	invalidation();
	self_modifying();
	trace_check("arith", g_arith, g_arith_end);
	trace_check("calls", g_calls, g_calls_end);
	trace_check("misc", g_misc, g_misc_end);
	trace_check("sreg", g_sreg, g_sreg_end);
	trace_check("flags", g_flags, g_flags_end);
	farjmp_callouts();
	flush_when_full();
	hostile_bytes();
	speed_real_code();
	translate_kernel("build/guest/testkernel.elf");
	costs();
	tc_destroy(tc);
	return done_testing();
}
