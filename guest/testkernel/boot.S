/*
 * Entry from a multiboot v1 loader: 32-bit protected mode, paging off,
 * flat segments of the loader's choosing, EAX = 0x2BADB002, EBX = info.
 * We clear .bss, take our own stack and call kmain(magic, info) in C.
 * Multiboot Specification 0.6.96, §3.1 (header) and §3.2 (machine state).
 */
#include "multiboot.h"

	.section .multiboot, "a"
	.align 4
	.long MB_HEADER_MAGIC
	.long MB_HEADER_FLAGS
	.long -(MB_HEADER_MAGIC + MB_HEADER_FLAGS)	/* checksum: the three sum to 0 */

	.text
	.globl _start
_start:
	cli
	cld
	movl %eax, %esi			/* keep magic and info across the clear */
	movl %ebx, %edx
	movl $__bss_start, %edi		/* the loader should zero .bss; do not count on it */
	movl $__bss_end, %ecx
	subl %edi, %ecx
	xorl %eax, %eax
	rep stosb
	movl $boot_stack_top, %esp
	xorl %ebp, %ebp			/* end of the frame-pointer chain */
	pushl %edx
	pushl %esi
	call kmain
	/* kmain never returns; fall through to a halt just in case */

	.globl halt_forever
halt_forever:
	cli
	hlt
	jmp halt_forever

	.bss
	.align 16
boot_stack:
	.space 16384
boot_stack_top:

	.section .note.GNU-stack, "", @progbits
