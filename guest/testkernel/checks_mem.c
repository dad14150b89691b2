/*
 * Checks of paging as the kernel uses it: page-fault error codes and CR2,
 * CR0.WP, demand paging, INVLPG and CR3 reloads after PTE changes, and the
 * accessed/dirty bits the CPU sets in 4 KiB PTEs and 4 MiB PDEs.
 * Intel SDM vol. 3 ch. 4 (§4.7 fault error codes, §4.8 A/D bits, §4.10 TLBs).
 */
#include "kernel.h"

static uint32_t probe_read(uint32_t va)
{
	uint32_t v = 0;
	asm volatile(KPROBE_BEGIN "movl (%1), %0" KPROBE_END : "+r"(v) : "r"(va) : "memory");
	return v;
}

static void probe_write(uint32_t va, uint32_t v)
{
	asm volatile(KPROBE_BEGIN "movl %1, (%0)" KPROBE_END : : "r"(va), "r"(v) : "memory");
}

static volatile uint32_t *word(uint32_t va)
{
	return (volatile uint32_t *)va;
}

static void check_fault_codes(void)
{
	probe_read(UNMAPPED_VA);
	tap_pf(&kprobe, 0, UNMAPPED_VA, "read with no page table: #PF err 0x0, CR2 = address");

	uint32_t guard = WIN_VA(WIN_GUARD) + 8;
	probe_write(guard, 1);
	tap_pf(&kprobe, PF_W, guard, "write to a not-present PTE: #PF err 0x2, CR2 = address");

	uint32_t ro = WIN_VA(WIN_RO) + 0x10;
	probe_write(ro, 0x1234);
	tap_pf(&kprobe, PF_P | PF_W, ro,
	       "ring-0 write to a read-only page with CR0.WP=1: #PF err 0x3");

#ifndef TK_PV /* pv: one paging mode, WP always on */
	write_cr0(read_cr0() & ~CR0_WP);
	probe_write(ro, 0x5678);
	uint32_t vector = kprobe.vector, got = *word(ro);
	write_cr0(read_cr0() | CR0_WP);
	if (!tap_ok(vector == PROBE_NONE && got == 0x5678,
		    "ring-0 write to a read-only page with CR0.WP=0 succeeds"))
		kprintf("#   vector %u, read back 0x%x\n", vector, got);
#endif
}

static void check_demand_paging(void)
{
	uint32_t before = demand_faults;
	int same = 1;

	for (uint32_t i = 0; i < 8; i++)
		*word(WIN_VA(WIN_DEMAND + i) + 4 * i) = 0x1000 + i;
	for (uint32_t i = 0; i < 8; i++)
		same &= *word(WIN_VA(WIN_DEMAND + i) + 4 * i) == 0x1000 + i;
	if (!tap_ok(same && demand_faults - before == 8,
		    "demand paging: 8 first touches fault once each and then hold data"))
		kprintf("#   faults %u, data intact %d\n", demand_faults - before, same);
}

static void check_tlb(void)
{
	uint32_t va = WIN_VA(WIN_REMAP);
	uint32_t *pte = pte_of(va);
	uint32_t f1 = frame_alloc(), f2 = frame_alloc();

	*word(f1) = 0x11111111;
	*word(f2) = 0x22222222;
	pte_write(pte, f1 | PTE_P | PTE_W);
	invlpg(va);
	uint32_t first = *word(va); /* now the TLB holds va -> f1 */
	pte_write(pte, f2 | PTE_P | PTE_W);
	invlpg(va);
	uint32_t second = *word(va);
	if (!tap_ok(first == 0x11111111 && second == 0x22222222,
		    "PTE retargeted then INVLPG: the new frame is seen"))
		kprintf("#   read 0x%x then 0x%x\n", first, second);

	va = WIN_VA(WIN_CR3);
	pte = pte_of(va);
	pte_write(pte, f1 | PTE_P | PTE_W);
	invlpg(va);
	(void)*word(va);
	pte_write(pte, 0);
	write_cr3(read_cr3());
	probe_read(va);
	tap_pf(&kprobe, 0, va, "PTE cleared then CR3 reloaded: the access faults");
}

static void check_accessed_dirty(void)
{
	uint32_t va = WIN_VA(WIN_AD);
	uint32_t *pte = pte_of(va);

	pte_write(pte, frame_alloc() | PTE_P | PTE_W); /* A and D clear */
	invlpg(va);
	(void)*word(va);
	tap_eq(*pte & (PTE_A | PTE_D), PTE_A, "4 KiB page: a read sets A in the PTE, not D");
	*word(va) = 1;
	tap_eq(*pte & (PTE_A | PTE_D), PTE_A | PTE_D, "4 KiB page: a write sets D in the PTE");

	uint32_t *pde = pde_of(ALIAS4M_BASE);
	pde_write(pde, *pde & ~(PTE_A | PTE_D));
	write_cr3(read_cr3());
	(void)*word(ALIAS4M_BASE + 0x1234);
	tap_eq(*pde & (PTE_A | PTE_D), PTE_A, "4 MiB page: a read sets A in the PDE, not D");
	*word(ALIAS4M_BASE + 0x200000) = 0xcafe1234;
	tap_eq(*pde & (PTE_A | PTE_D), PTE_A | PTE_D, "4 MiB page: a write sets D in the PDE");
	tap_eq(*word(SIEVE_BASE + 0x200000), 0xcafe1234,
	       "4 MiB page at 0xc0000000 maps physical 0x01000000");
}

void checks_mem(void)
{
	check_fault_codes();
	check_demand_paging();
	check_tlb();
	check_accessed_dirty();
}
