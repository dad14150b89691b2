/*
 * The paravirtual build (-DTK_PV, build/guest/testkernel-pv.elf): the
 * privileged and sensitive operations of x86.h become calls of ring3's
 * hypercall ABI (docs/pv.md, numbers in src/pv/abi.h). The interrupt flag is
 * the shared page's irq_mask: one store, no exit, where ring3 offers it.
 */
#ifndef TK_PV_H
#define TK_PV_H

#include <stdint.h>
#include "../../src/pv/abi.h"

extern volatile uint32_t pv_shared[1024]; /* the shared page */
extern uint32_t pv_methods, pv_features, pv_version;

/*
 * One call: EAX = nr, EBX ECX ESI EDI = a0..a3; the result comes back in EAX,
 * EDX is clobbered. Each site is 6 bytes, `int $0x82` and 4 NOPs, listed in
 * section .pv_sites; where ring3 offers only the PORT method (kvm), pv_init
 * rewrites every site to `mov $0x5230, %dx; out %eax, (%dx); nop` before the
 * first call, as Linux patches its paravirt sites. So a call reads no memory
 * to pick its method: after a CR3 load or a TLB flush that costs a fault.
 */
#define PV_SITE                             \
	"1:\tint $0x82\n\t"                 \
	".byte 0x90, 0x90, 0x90, 0x90\n\t"  \
	".pushsection .pv_sites, \"a\"\n\t" \
	".long 1b\n\t"                      \
	".popsection"

static inline int32_t pv_call4(uint32_t nr, uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3)
{
	int32_t r;
	uint32_t edx;

	asm volatile(PV_SITE
		     : "=a"(r), "=d"(edx)
		     : "a"(nr), "b"(a0), "c"(a1), "S"(a2), "D"(a3)
		     : "memory");
	return r;
}

/* One argument: ECX, ESI, EDI stay the compiler's (a call preserves what it does not use). */
static inline int32_t pv_call1(uint32_t nr, uint32_t a0)
{
	int32_t r;
	uint32_t edx;

	asm volatile(PV_SITE
		     : "=a"(r), "=d"(edx)
		     : "a"(nr), "b"(a0)
		     : "memory");
	return r;
}

/* Two arguments: ESI and EDI stay the compiler's. */
static inline int32_t pv_call(uint32_t nr, uint32_t a0, uint32_t a1)
{
	int32_t r;
	uint32_t edx;

	asm volatile(PV_SITE
		     : "=a"(r), "=d"(edx)
		     : "a"(nr), "b"(a0), "c"(a1)
		     : "memory");
	return r;
}

static inline void cli(void)
{
	if (pv_features & PV_FEAT_SHARED_IF) {
		pv_shared[PV_SH_IRQ_MASK / 4] = 1;
		asm volatile("" ::: "memory");
	} else {
		pv_call(PV_IRQ_DISABLE, 0, 0);
	}
}

/* irq_mask = 0; ring3 could not deliver what came meanwhile: ask for it. */
static inline void sti(void)
{
	if (pv_features & PV_FEAT_SHARED_IF) {
		asm volatile("" ::: "memory");
		pv_shared[PV_SH_IRQ_MASK / 4] = 0;
		asm volatile("" ::: "memory");
		if (pv_shared[PV_SH_IRQ_PENDING / 4])
			pv_call(PV_IRQ_ENABLE, 0, 0);
	} else {
		pv_call(PV_IRQ_ENABLE, 0, 0);
	}
}

/* HALT is STI; HLT in one call: no wake-up can be lost between them. */
static inline void sti_hlt(void)
{
	pv_call(PV_HALT, 0, 0);
}

static inline int irqs_enabled(void)
{
	/* without the shared page's IF (kvm), IRQ_ENABLE/DISABLE moved the real one */
	return (pv_features & PV_FEAT_SHARED_IF) ? !pv_shared[PV_SH_IRQ_MASK / 4]
						 : !!(read_eflags() & FL_IF);
}

static inline uint32_t read_cr2(void)
{
	uint32_t v;

	if (pv_features & PV_FEAT_CR2)
		return pv_shared[PV_SH_CR2 / 4];
	asm volatile("movl %%cr2, %0" : "=r"(v));
	return v;
}

/* ring3 keeps the last SET_CR3 in the shared page: the guest stores nothing */
static inline uint32_t read_cr3(void)
{
	return pv_shared[PV_SH_CR3 / 4];
}

static inline void write_cr3(uint32_t v)
{
	pv_call1(PV_SET_CR3, v);
}

static inline void invlpg(uint32_t va)
{
	pv_call1(PV_TLB_FLUSH, va);
}

/* A store to a live page table: one MMU_UPDATE (the kernel is identity-mapped: va = pa). */
int32_t pv_mmu_set(uint32_t *entry, uint32_t val, int is_pde);
/* MMU_RESTORE (kvm): once ring3 accepted it, the same store again, so KVM's shadow sees it. */
static inline void pte_write(uint32_t *e, uint32_t v)
{
	if (pv_mmu_set(e, v, 0) == 1 && (pv_features & PV_FEAT_MMU_RESTORE))
		*(volatile uint32_t *)e = v;
}
static inline void pde_write(uint32_t *e, uint32_t v)
{
	if (pv_mmu_set(e, v, 1) == 1 && (pv_features & PV_FEAT_MMU_RESTORE))
		*(volatile uint32_t *)e = v;
}

/*
 * Retarget the PTE e that maps va and flush va's translation: one UPDATE_VA
 * (1.1, Xen's update_va_mapping) instead of MMU_UPDATE and TLB_FLUSH. Under
 * MMU_RESTORE (kvm) the guest's own store must come before the flush, so
 * there it stays two calls and a store.
 */
static inline void pte_write_flush(uint32_t va, uint32_t *e, uint32_t v)
{
	if (pv_version >= PV_VERSION && !(pv_features & PV_FEAT_MMU_RESTORE)) {
		pv_call4(PV_UPDATE_VA, va, v, PV_UVA_INVLPG, 0);
		return;
	}
	pte_write(e, v);
	invlpg(va);
}

/* pv.c */
int pv_init(void); /* discovery and the shared page: 0, or -1 without ring3's ABI */
int32_t pv_mmu_batch(const struct pv_mmu_req *req, uint32_t n);
void pv_checks(void);	  /* the ABI's answers and error paths, as TAP */
uint32_t pv_fuzz(const char *cmdline); /* pvfuzz=N[:seed]: random calls from ring 0 */
int pv_fuzz_wanted(const char *cmdline);

#endif
