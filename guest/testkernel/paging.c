/*
 * Two-level 32-bit paging without PAE: the kernel's page directory (4 KiB
 * pages for the first 4 MiB, 4 MiB PSE pages above), a window of test
 * pages, demand paging, and a bump allocator for page frames.
 * Intel SDM vol. 3 ch. 4 (§4.3 32-bit paging, §4.7 page-fault exceptions).
 */
#include "kernel.h"

uint32_t kernel_pd[1024] __attribute__((aligned(4096)));
static uint32_t pt_low[1024] __attribute__((aligned(4096)));	/* 0 - 4 MiB */
static uint32_t pt_window[1024] __attribute__((aligned(4096))); /* WINDOW_BASE */
static uint32_t next_frame = POOL_BASE;
uint32_t demand_faults;

/* Frames are never freed: a test run needs a few dozen. */
uint32_t frame_alloc(void)
{
	if (next_frame >= POOL_END)
		tap_bail("out of page frames");
	uint32_t f = next_frame;
	next_frame += PAGE_SIZE;
	memset((void *)f, 0, PAGE_SIZE);
	return f;
}

void paging_init(void)
{
	/* Page 0 stays unmapped so a null pointer faults. */
	for (uint32_t i = 1; i < 1024; i++)
		pt_low[i] = i * PAGE_SIZE | PTE_P | PTE_W;
	kernel_pd[0] = (uint32_t)pt_low | PTE_P | PTE_W;

	/* 4 MiB up to the end of RAM: one PSE entry each, supervisor only. */
	for (uint32_t i = 1; i < PDX(MEM_END); i++)
		kernel_pd[i] = i * BIGPAGE_SIZE | PTE_P | PTE_W | PTE_PS;

	/* The test window: only the read-only page is present from the start. */
	kernel_pd[PDX(WINDOW_BASE)] = (uint32_t)pt_window | PTE_P | PTE_W;
	pt_window[WIN_RO] = frame_alloc() | PTE_P;

	/* A second 4 MiB mapping of the sieve buffer, with A and D clear. */
	kernel_pd[PDX(ALIAS4M_BASE)] = SIEVE_BASE | PTE_P | PTE_W | PTE_PS;

#ifdef TK_PV
	/* the ABI's one paging mode (PSE, WP) starts with the first SET_CR3 */
	if (pv_call(PV_SET_CR3, (uint32_t)kernel_pd, 0))
		tap_bail("pv: SET_CR3 refused");
	/*
	 * Everything from 8 MiB up is the kernel's (kernel.h): say so once, and
	 * ring3 needs to hide nothing there at ring switches (docs/pv.md).
	 */
	if ((pv_features & PV_FEAT_USER_LIMIT) && pv_call1(PV_USER_LIMIT, USER_LIMIT_VA))
		tap_bail("pv: USER_LIMIT refused");
#else
	write_cr4(CR4_PSE); /* and nothing else: multiboot leaves CR4 undefined */
	write_cr3((uint32_t)kernel_pd);
	/* WP: ring 0 too faults on writes to read-only pages (as Linux runs). */
	write_cr0(CR0_PE | CR0_ET | CR0_WP | CR0_PG);
#endif
}

uint32_t *pde_of(uint32_t va)
{
	return &kernel_pd[PDX(va)];
}

/* The kernel page-table entry for va, or NULL if a 4 MiB page or nothing maps it. */
uint32_t *pte_of(uint32_t va)
{
	uint32_t pde = kernel_pd[PDX(va)];

	if (!(pde & PTE_P) || (pde & PTE_PS))
		return 0;
	return &((uint32_t *)(pde & PTE_FRAME))[PTX(va)];
}

/* A task's directory shares every kernel entry except the user image's. */
uint32_t *pd_new_user(void)
{
	uint32_t *pd = (uint32_t *)frame_alloc();

	for (int i = 0; i < 1024; i++)
		if (i != (int)PDX(USER_BASE))
			pd[i] = kernel_pd[i];
	return pd;
}

/*
 * Demand paging for the window's demand slots: a PTE that is not present
 * but still names a frame gets it back (so the page-fault benchmark does
 * not eat memory); an empty one gets a fresh zeroed frame. No INVLPG is
 * needed: the CPU never caches a not-present translation (SDM §4.10.2.3).
 */
int paging_fault(struct trapframe *tf, uint32_t cr2)
{
	uint32_t slot = (cr2 - WINDOW_BASE) / PAGE_SIZE;

	if (tf->err & PF_P || cr2 < WINDOW_BASE)
		return 0;
	if (slot >= WIN_NDEMAND && slot != WIN_BENCH_PF)
		return 0;
	uint32_t *pte = &pt_window[slot];
	if (*pte & PTE_FRAME)
		pte_write(pte, *pte | PTE_P);
	else
		pte_write(pte, frame_alloc() | PTE_P | PTE_W);
	demand_faults++;
	return 1;
}
