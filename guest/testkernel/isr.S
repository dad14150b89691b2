/*
 * Interrupt entry and exit, and the kernel-stack switch between tasks.
 * Each vector's stub makes the stack uniform (a dummy error code where the
 * CPU pushes none), saves the registers as struct trapframe and calls trap().
 * Intel SDM vol. 3 ch. 6 (§6.12: exception and interrupt handling, §6.13: error codes).
 */
#define SEL_KDATA 0x10

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
	movw $SEL_KDATA, %ax	/* from ring 3, DS/ES hold user selectors */
	movw %ax, %ds
	movw %ax, %es
	pushl %esp		/* trap(struct trapframe *) */
	call trap
	addl $4, %esp

	/* A new task's first "return" from swtch() lands here too. */
	.globl trapret
trapret:
	popal
	popl %gs
	popl %fs
	popl %es
	popl %ds
	addl $8, %esp		/* vector and error code */
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
