/*
 * The hostile guest's entry, exception stubs and its one piece of 64-bit
 * code. Multiboot v1 (§3.1): 32-bit protected mode, paging off, flat
 * segments; everything here runs in ring 0.
 */
	.section .multiboot, "a"
	.align 4
	.long 0x1badb002
	.long 0x00000003
	.long -(0x1badb002 + 0x00000003)

	.text
	.code32
	.globl _start
_start:
	cli
	movl $stack_top, %esp
	pushl %ebx			/* multiboot info */
	pushl %eax			/* magic */
	call hostile_main
1:	hlt
	jmp 1b

/*
 * Every vector lands in trap_common with its number; hostile.c's trap()
 * decides where to resume (it returns the EIP to continue at). Vectors with
 * an error code have it popped first.
 */
	.macro vec n
	.globl vec\n
vec\n:
	.if (\n == 8) || (\n >= 10 && \n <= 14) || (\n == 17)
	popl %ss:err_code		/* DS may be anything ring 3 left */
	.else
	movl $0, %ss:err_code
	.endif
	pushl $\n
	jmp trap_common
	.endm

	.altmacro
	.set i, 0
	.rept 256
	vec %i
	.set i, i + 1
	.endr

trap_common:
	pushal
	pushl %ds
	pushl %es
	pushl %fs
	pushl %gs
	movw $0x10, %ax			/* ring 3 may have left anything in DS and ES */
	movw %ax, %ds
	movw %ax, %es
	pushl %esp			/* struct regs * */
	call trap
	addl $4, %esp
	popl %gs
	popl %fs
	popl %es
	popl %ds
	popal
	addl $4, %esp			/* vector */
	iret

	.section .rodata
	.globl vec_table
vec_table:
	.macro vref n
	.long vec\n
	.endm
	.set i, 0
	.rept 256
	vref %i
	.set i, i + 1
	.endr

/*
 * 64-bit code, reached by `ljmp $0x33, $code64_*` from compatibility mode
 * under ring3's bt engine (0x33 is the host's 64-bit code segment). What it
 * tries must be blocked by the sandbox.
 */
	.text
	.code64
	.globl code64_exit
code64_exit:			/* exit_group(42) */
	movl $231, %eax
	movl $42, %edi
	syscall
	jmp code64_exit
	.globl code64_write
code64_write:			/* write(2, ...) then exit_group(43) */
	movl $1, %eax
	movl $2, %edi
	leaq msg64(%rip), %rsi
	movl $12, %edx
	syscall
	movl $231, %eax
	movl $43, %edi
	syscall
	jmp code64_write
	.globl code64_loop
code64_loop:
	pause
	jmp code64_loop
	.globl code64_poke
code64_poke:			/* scribble over 64-bit memory above 4 GiB */
	movabsq $0x00007f0000000000, %rax
1:	movq $-1, (%rax)
	addq $0x1000, %rax
	jmp 1b
	.globl code64_creat
code64_creat:			/* open(CANARY, O_WRONLY | O_CREAT, 0644) then exit_group(44) */
	movl $2, %eax
	leaq canary64(%rip), %rdi
	movl $0x41, %esi
	movl $0644, %edx
	syscall
	movl $231, %eax
	movl $44, %edi
	syscall
	jmp code64_creat
msg64:	.ascii "PWNED-64bit\n"
canary64:
	.asciz "/tmp/ring3-hostile-canary"
	.code32

	.bss
	.align 16
	.globl err_code
err_code:
	.long 0
stack:
	.space 16384
stack_top:

	.section .note.GNU-stack, "", @progbits
