/*
 * Interrupt entry and exit, and the kernel-stack switch between tasks.
 * Each vector's stub makes the stack uniform (a dummy error code where the
 * CPU pushes none), saves the registers as struct trapframe and calls trap().
 * Intel SDM vol. 3 ch. 6 (§6.12: exception and interrupt handling, §6.13: error codes).
 */
#define SEL_KDATA 0x10
#define SEL_UDATA 0x23

/*
 * The pv build's flat model (docs/pv.md): the kernel's DS, ES, FS and GS hold
 * ring 3's flat data selector, as Linux's i386 kernel runs on __USER_DS, so
 * an entry from ring 3 finds them right already, and a segment register is
 * loaded only when it differs — a load costs a runtime callout under bt.
 * The comparison reads the selector (MOV from Sreg is not a callout); equal
 * selectors of the one GDT the kernel never rewrites name the same segment.
 */
	.macro load_if_differs sreg, sel
	movw %\sreg, %ax
	cmpw \sel, %ax
	je 1f
	movw \sel, %ax
	movw %ax, %\sreg
1:
	.endm

	.altmacro
	/* The CPU pushes an error code for #DF, #TS, #NP, #SS, #GP, #PF, #AC, #CP, #VC, #SX. */
	.macro vector n
	.globl vector\n
vector\n:
	.if (\n == 8) || (\n >= 10 && \n <= 14) || (\n == 17) || (\n == 21) || (\n == 29) || (\n == 30)
	.else
	pushl $0
	.endif
	pushl $\n
	jmp alltraps
	.endm

	.macro vector_ref n
	.long vector\n
	.endm

	.text
	/* Exceptions 0-31 and the sixteen 8259 IRQs at 0x20-0x2f. */
	.set i, 0
	.rept 48
	vector %i
	.set i, i + 1
	.endr
	vector 128	/* 0x80: system call */
	vector 129	/* 0x81: test vector */

alltraps:
	pushl %ds
	pushl %es
	pushl %fs
	pushl %gs
	pushal
#ifdef TK_PV
	load_if_differs ds, $SEL_UDATA	/* ring 3 may have loaded anything */
	load_if_differs es, $SEL_UDATA
#else
	movw $SEL_KDATA, %ax	/* from ring 3, DS/ES hold user selectors */
	movw %ax, %ds
	movw %ax, %es
#endif
	pushl %esp		/* trap(struct trapframe *) */
	call trap
	addl $4, %esp

	/* A new task's first "return" from swtch() lands here too. */
	.globl trapret
trapret:
#ifdef TK_PV
	/* struct trapframe: PUSHA's 32 bytes, then GS, FS, ES, DS */
	load_if_differs gs, 32(%esp)
	load_if_differs fs, 36(%esp)
	load_if_differs es, 40(%esp)
	load_if_differs ds, 44(%esp)
	popal
	addl $24, %esp		/* GS, FS, ES, DS, vector and error code */
#else
	popal
	popl %gs
	popl %fs
	popl %es
	popl %ds
	addl $8, %esp		/* vector and error code */
#endif
	iret

/*
 * void swtch(uint32_t *save_esp, uint32_t new_esp)
 * Save the callee-saved registers on this kernel stack, park its ESP in
 * *save_esp, and resume the other stack where it parked itself.
 */
	.globl swtch
swtch:
	movl 4(%esp), %eax
	movl 8(%esp), %edx
	pushl %ebp
	pushl %ebx
	pushl %esi
	pushl %edi
	movl %esp, (%eax)
	movl %edx, %esp
	popl %edi
	popl %esi
	popl %ebx
	popl %ebp
	ret

	.section .rodata
	.globl vector_table
vector_table:		/* vector_table[n] = entry of vector n, n < 48 */
	.set i, 0
	.rept 48
	vector_ref %i
	.set i, i + 1
	.endr

	.section .note.GNU-stack, "", @progbits
