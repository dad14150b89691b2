/*
 * Code that the checks rewrite while the kernel runs (checks_smc.c). A CPU
 * notices stores to code it is about to execute (Intel SDM vol. 3 §11.6,
 * self-modifying code); a binary translator must notice them too.
 */
	.section .smc, "awx"

	.globl smc_target
smc_target:			/* uint32_t smc_target(void): returns its immediate */
	movl $0x11111111, %eax
	ret

	.globl smc_inline
smc_inline:			/* stores into the next instruction's immediate, then runs it */
	movl $0x44444444, smc_inline_insn + 1
smc_inline_insn:
	movl $0x11111111, %eax
	ret

	.section .note.GNU-stack, "", @progbits
