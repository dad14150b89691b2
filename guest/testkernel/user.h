/*
 * The contract between the kernel and its ring-3 program (user.c):
 * system call numbers for INT 0x80, the task modes, and the keys under
 * which a task reports what it saw. Registers: EAX = number, EBX/ECX/EDX
 * = arguments, EAX = result (the Linux i386 convention).
 */
#ifndef TK_USER_H
#define TK_USER_H

#include <stdint.h>

enum sys_nr {
	SYS_EXIT = 1,	/* end this task */
	SYS_NOP = 2,	/* return 0: the system-call benchmark */
	SYS_ADD = 3,	/* return EBX + ECX */
	SYS_REPORT = 4, /* report[EBX] = ECX */
	SYS_PROBE = 5,	/* arm probe slot EBX, resume at ECX after an exception */
	SYS_SLICES = 6, /* how many timer slices this task has been given */
	SYS_PAGE_USER = 7, /* page EBX of this task: user if ECX, else supervisor-only; CR3 reloaded */
};

enum user_mode {
	UM_CHECKS = 1, /* task A: every ring-3 check */
	UM_SPIN = 2,   /* task B: only the address-space and preemption checks */
	UM_BENCH_SYSCALL = 3,
};

enum user_report {
	R_CS,
	R_SS,
	R_ADD,
	R_EFLAGS,
	R_GDT_BASE,
	R_GDT_LIMIT,
	R_IDT_BASE,
	R_IDT_LIMIT,
	R_PRIVATE, /* its private variable after several preemptions */
	R_SPUN,	   /* 1 if it saw >= USER_MIN_SLICES slices while spinning */
	R_CYCLES_LO,
	R_CYCLES_HI,
	R_DONE,
	R_KHIGH_SEEN, /* the pv build: EDX after a ring-3 load of kernel data */
	R_TF_KHIGH_SEEN, /* ... and after one stepped (TF) behind a MOV SS */
	R_CODE_PAGE,	 /* where its code-in-data page is */
	R_CODE_RAN,	 /* what that code returned while the page was its own */
	NR_REPORTS
};

enum user_probe {
	P_CLI,
	P_HLT,
	P_IN,
	P_OUT,
	P_INT81,
	P_INT3,
	P_READ_KERNEL,
	P_WRITE_KERNEL,
	P_WRITE_CODE,
	P_READ_GUARD,
	P_LJMP_TSS, /* a far jump to the kernel's TSS (DPL 0): #GP(0x28), never a task switch */
	P_CALL_SUPER, /* a call into code it ran, once its page is supervisor-only */
	/* the pv build: kernel data above USER_LIMIT (kernel.h), through each kind of access */
	P_READ_KHIGH,
	P_WRITE_KHIGH,
	P_ADD_KHIGH,
	P_STOS_KHIGH,
	P_SEGHI_KHIGH,	 /* through a ring-3 segment based above USER_LIMIT */
	P_EXPDOWN_KHIGH, /* through a ring-3 expand-down segment that starts there */
	P_TF_KHIGH,	 /* stepped (TF): MOV SS of selector 0x2b, then a load through SS */
	P_CODEHI_KHIGH,	 /* through a ring-3 readable code segment based above USER_LIMIT */
	P_PASTLIM_KHIGH, /* an ADD through the segment based there, past its limit */
	NR_PROBES
};

/* A task's address space: PDE 1 (4-8 MiB) is its own, the rest the kernel's. */
#define USER_BASE 0x00400000u	   /* code (shared, read-only), then private data */
#define USER_STACK_TOP 0x00800000u /* one private stack page below this */
#define USER_GUARD 0x007fe000u	   /* never mapped */
#define USER_KERNEL_VA 0x00100000u /* a supervisor page the probes poke at */
extern volatile uint32_t khigh_secret; /* kernel data the pv build's probes poke at */
/*
 * The pv build's two ring-3 data segments that reach the kernel above
 * USER_LIMIT: one based at khigh_secret, one expand-down from the limit up.
 * Ring 3 must fault through both (plain numbers: user.c puts them in asm).
 */
#define SEL_UHIGH 0x53	  /* GDT entry 10, RPL 3 */
#define SEL_UEXPDOWN 0x5b /* GDT entry 11, RPL 3 */
#define SEL_UCODEHIGH 0x63 /* GDT entry 12, RPL 3: readable code based at khigh_secret */
#define XSTR(x) STR_(x)
#define STR_(x) #x
#define KHIGH_SECRET 0x5ec12e75u

#define USER_MIN_SLICES 3
#define USER_SPIN_LIMIT 20000000u /* give up if the timer never preempts */

/* Where task_spawn() starts the program: user_main(id, mode, arg). */
void user_main(uint32_t id, uint32_t mode, uint32_t arg) __attribute__((noreturn));

#endif
