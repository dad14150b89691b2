/*
 * The ring-3 program. The linker script places this file's code at
 * USER_BASE and its data right after; every task gets its own copy of the
 * data pages. It may call nothing in the kernel: it asks by INT 0x80.
 * What it checks is what a CPU does for CPL 3 (Intel SDM vol. 3 ch. 5-6).
 */
#include <stdint.h>
#include "x86.h"
#include "user.h"

/* One per address space: each task writes its id here and must read it back. */
static volatile uint32_t private_word;

static uint32_t sys(uint32_t nr, uint32_t a, uint32_t b)
{
	asm volatile("int $0x80" : "+a"(nr) : "b"(a), "c"(b) : "memory");
	return nr;
}

static void report(uint32_t key, uint32_t value)
{
	sys(SYS_REPORT, key, value);
}

/*
 * Arm probe `slot` with label 1 as the resume address, then run `insn`;
 * the kernel records the exception it raises. EDX carries one operand.
 */
#define UPROBE(slot, insn, edx)                                                                    \
	do {                                                                                       \
		uint32_t a_ = SYS_PROBE, d_ = (edx);                                               \
		asm volatile("movl $1f, %%ecx\n\t"                                                 \
			     "int $0x80\n\t" insn "\n"                                             \
			     "1:"                                                                  \
			     : "+a"(a_), "+d"(d_)                                                  \
			     : "b"(slot)                                                           \
			     : "ecx", "edi", "memory", "cc");                                      \
	} while (0)

/*
 * Code in one of its own data pages: run once (translated, under bt), then
 * the kernel makes the page supervisor-only and reloads CR3. The next call
 * must fault on the fetch (#PF, U=1 P=1), not run what was translated.
 */
static uint8_t code_page[4096] __attribute__((aligned(4096)));

static void stale_code_probe(void)
{
	static const uint8_t ret42[] = { 0xb8, 0x2a, 0, 0, 0, 0xc3 }; /* mov $42, %eax; ret */
	uint32_t (*fn)(void) = (uint32_t(*)(void))(uintptr_t)code_page;

	for (unsigned i = 0; i < sizeof(ret42); i++)
		code_page[i] = ret42[i];
	report(R_CODE_PAGE, (uint32_t)(uintptr_t)code_page);
	report(R_CODE_RAN, fn());
	sys(SYS_PAGE_USER, (uint32_t)(uintptr_t)code_page, 0);
	/* EDI keeps ESP: a faulting call has pushed its return address */
	UPROBE(P_CALL_SUPER, "movl %%esp, %%edi; call *%%edx; 1: movl %%edi, %%esp",
	       (uint32_t)(uintptr_t)code_page);
	sys(SYS_PAGE_USER, (uint32_t)(uintptr_t)code_page, 1);
}

static void privileged_probes(void)
{
	/* IOPL is 0 and the TSS has no I/O bitmap: all four are #GP(0). */
	UPROBE(P_CLI, "cli", 0);
	UPROBE(P_HLT, "hlt", 0);
	UPROBE(P_IN, "inb $0x21, %%al", 0);
	UPROBE(P_OUT, "outb %%al, $0x80", 0);
	/* Gate 0x81 has DPL 0: #GP with error code 0x81*8+2 (IDT, external=0). */
	UPROBE(P_INT81, "int $0x81", 0);
	/* Gate 3 has DPL 3: a real #BP, EIP after the INT3. */
	UPROBE(P_INT3, "int3", 0);
	/* Kernel pages are supervisor-only. */
	UPROBE(P_READ_KERNEL, "movl (%%edx), %%edx", USER_KERNEL_VA);
	UPROBE(P_WRITE_KERNEL, "movl %%edx, (%%edx)", USER_KERNEL_VA);
	/* Our own code page is mapped read-only. */
	UPROBE(P_WRITE_CODE, "movl %%edx, (%%edx)", (uint32_t)(uintptr_t)&user_main);
	UPROBE(P_READ_GUARD, "movl (%%edx), %%edx", USER_GUARD);
	UPROBE(P_LJMP_TSS, "ljmp $0x28, $0", 0); /* the kernel's TSS (kernel.h SEL_TSS) */
	stale_code_probe();
#ifdef TK_PV
	/*
	 * The kernel above USER_LIMIT is not hidden from ring 3 by ring3 at each
	 * ring switch: the split keeps it out. A load, a store, a read-modify-write
	 * and a string store must each fault, and the secret stay unseen and whole.
	 */
	uint32_t ka = SYS_PROBE, kd = (uint32_t)(uintptr_t)&khigh_secret;
	asm volatile("movl $1f, %%ecx\n\tint $0x80\n\tmovl (%%edx), %%edx\n1:"
		     : "+a"(ka), "+d"(kd)
		     : "b"(P_READ_KHIGH)
		     : "ecx", "memory", "cc");
	report(R_KHIGH_SEEN, kd); /* what the load left in EDX: the address, never the secret */
	UPROBE(P_WRITE_KHIGH, "movl %%edx, (%%edx)", (uint32_t)(uintptr_t)&khigh_secret);
	UPROBE(P_ADD_KHIGH, "addl %%edx, (%%edx)", (uint32_t)(uintptr_t)&khigh_secret);
	UPROBE(P_STOS_KHIGH, "movl %%edx, %%edi; stosl", (uint32_t)(uintptr_t)&khigh_secret);
	/* segments the kernel gave ring 3 that cover its data: the pages still say no */
	UPROBE(P_SEGHI_KHIGH, "movw $" XSTR(SEL_UHIGH) ", %%di; movw %%di, %%fs; movb %%fs:0, %%dl",
	       0);
	UPROBE(P_EXPDOWN_KHIGH,
	       "movw $" XSTR(SEL_UEXPDOWN) ", %%di; movw %%di, %%fs; movl %%fs:(%%edx), %%edx",
	       (uint32_t)(uintptr_t)&khigh_secret);
	/* past that segment's 4 KiB limit: segmentation faults first, #GP(0) */
	UPROBE(P_PASTLIM_KHIGH,
	       "movw $" XSTR(SEL_UHIGH) ", %%di; movw %%di, %%fs; addl %%edx, %%fs:0x1000", 0);
	UPROBE(P_CODEHI_KHIGH,
	       "movw $" XSTR(SEL_UCODEHIGH) ", %%di; movw %%di, %%fs; movb %%fs:0, %%dl", 0);
	asm volatile("movw %w0, %%fs" : : "r"(0) : "memory");
	/*
	 * Stepped with TF, ring 3 loads SS with 0x2b — in this GDT the TSS, so a
	 * CPU raises #GP(0x28) at the MOV; in the host's GDT a flat data segment
	 * that a CPU running us natively may load without a trap — and, before
	 * the step trap that MOV SS defers by one instruction, loads the kernel
	 * data through SS. The load must never see the data.
	 */
	ka = SYS_PROBE;
	kd = (uint32_t)(uintptr_t)&khigh_secret;
	asm volatile("movl $1f, %%ecx\n\tint $0x80\n\t"
		     "pushfl\n\torl $0x100, (%%esp)\n\tpopfl\n\t"
		     "movw $0x2b, %%di\n\tmovw %%di, %%ss\n\tmovl %%ss:(%%edx), %%edx\n1:"
		     : "+a"(ka), "+d"(kd)
		     : "b"(P_TF_KHIGH)
		     : "ecx", "edi", "memory", "cc");
	report(R_TF_KHIGH_SEEN, kd);
#endif
}

static void transparency_reports(void)
{
	struct dtr d;

	report(R_CS, read_cs());
	report(R_SS, read_ss());
	report(R_EFLAGS, read_eflags());
	/* CR4.UMIP is off, so SGDT/SIDT work in ring 3 and show the kernel's tables. */
	asm volatile("sgdt %0" : "=m"(d));
	report(R_GDT_BASE, d.base);
	report(R_GDT_LIMIT, d.limit);
	asm volatile("sidt %0" : "=m"(d));
	report(R_IDT_BASE, d.base);
	report(R_IDT_LIMIT, d.limit);
	report(R_ADD, sys(SYS_ADD, 40, 2));
}

/*
 * Never yield: only the timer can take the CPU away. Meanwhile the other
 * task writes its own id at the same virtual address.
 */
static void spin_with_private_word(uint32_t id)
{
	uint32_t n = 0;

	private_word = id;
	while (sys(SYS_SLICES, 0, 0) < USER_MIN_SLICES && n < USER_SPIN_LIMIT)
		n++;
	report(R_SPUN, sys(SYS_SLICES, 0, 0) >= USER_MIN_SLICES);
	report(R_PRIVATE, private_word);
}

static void bench_syscall(uint32_t iters)
{
	uint64_t t0 = rdtsc();
	for (uint32_t i = 0; i < iters; i++)
		sys(SYS_NOP, 0, 0);
	uint64_t dt = rdtsc() - t0;
	report(R_CYCLES_LO, (uint32_t)dt);
	report(R_CYCLES_HI, (uint32_t)(dt >> 32));
}

void user_main(uint32_t id, uint32_t mode, uint32_t arg)
{
	switch (mode) {
	case UM_CHECKS:
		transparency_reports();
		privileged_probes();
		spin_with_private_word(id);
		break;
	case UM_SPIN:
		spin_with_private_word(id);
		break;
	case UM_BENCH_SYSCALL:
		bench_syscall(arg);
		break;
	}
	report(R_DONE, 1);
	sys(SYS_EXIT, 0, 0);
	for (;;)
		;
}
