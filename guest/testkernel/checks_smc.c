/*
 * Checks that code is also data: the kernel reads its own instruction
 * bytes, rewrites an instruction through its own address and through a
 * second virtual mapping, and stores into the very next instruction.
 * Intel SDM vol. 3 §11.6 (self-modifying and cross-modifying code).
 */
#include "kernel.h"

uint32_t smc_target(void);
uint32_t smc_inline(void);

static const uint8_t target_bytes[6] = {0xb8, 0x11, 0x11,
					0x11, 0x11, 0xc3}; /* mov $imm, %eax; ret */

void checks_smc(void)
{
	uint8_t *code = (uint8_t *)smc_target;
	uint32_t got;

	tap_ok(memcmp(code, target_bytes, sizeof(target_bytes)) == 0,
	       "reading own code: smc_target is b8 11 11 11 11 c3");

	/* Run it a few times first, so a translator has cached it. */
	for (int i = 0; i < 3; i++)
		got = smc_target();
	tap_eq(got, 0x11111111, "smc_target returns its immediate 0x11111111");

	*(volatile uint32_t *)(code + 1) = 0x22222222;
	got = smc_target();
	tap_eq(got, 0x22222222, "code patched through its own address runs the new bytes");

	/* The same physical page, seen at a second virtual address. */
	uint32_t page = (uint32_t)code & PTE_FRAME;
	uint32_t alias = WIN_VA(WIN_SMC);
	pte_write(pte_of(alias), page | PTE_P | PTE_W);
	invlpg(alias);
	*(volatile uint32_t *)(alias + ((uint32_t)code - page) + 1) = 0x33333333;
	got = smc_target();
	tap_eq(got, 0x33333333, "code patched through a second virtual mapping runs the new bytes");

	got = smc_inline();
	tap_eq(got, 0x44444444, "a store into the next instruction takes effect at once");
}
