/*
 * The ring3 hypercall ABI, version 1.1 (docs/pv.md): numbers only, no host
 * types, so that the monitor and paravirtual guests (guest/testkernel, built
 * with -DTK_PV) compile against the same definitions. Once a call is in a
 * released version its number and meaning never change.
 */
#ifndef RING3_PV_ABI_H
#define RING3_PV_ABI_H

/* Discovery: CPUID leaves in the hypervisor range (as KVM's 0x40000000, Xen's 0x40000000+). */
#define PV_CPUID_BASE 0x40000100u /* EAX: highest leaf; EBX ECX EDX: the signature */
#define PV_CPUID_INFO 0x40000101u /* EAX: version; EBX: methods; ECX: port; EDX: features */
#define PV_SIG_EBX 0x676e6972u	  /* "ring" */
#define PV_SIG_ECX 0x72767033u	  /* "3pvr" */
#define PV_SIG_EDX 0x33676e69u	  /* "ing3" */

#define PV_VERSION_MAJOR 1u
#define PV_VERSION_MINOR 1u
#define PV_VERSION ((PV_VERSION_MAJOR << 16) | PV_VERSION_MINOR)

/* How to call (PV_CPUID_INFO EBX): each engine serves the one it catches cheapest. */
#define PV_METHOD_PORT (1u << 0)  /* mov $PV_PORT, %dx; outl %eax, (%dx) */
#define PV_METHOD_INT82 (1u << 1) /* int $0x82 */
#define PV_PORT 0x5230u
#define PV_INT_VECTOR 0x82u

/* Features (PV_CPUID_INFO EDX). */
#define PV_FEAT_SHARED_IF (1u << 0) /* the shared page's irq_mask is the interrupt flag */
#define PV_FEAT_MMU_BATCH (1u << 1) /* MMU_UPDATE takes batches */
#define PV_FEAT_TIMER (1u << 2)	    /* SET_TIMER raises ISA IRQ PV_TIMER_IRQ */
#define PV_FEAT_CR2 (1u << 3)	    /* the shared page's cr2 is CR2 (else: read CR2) */
#define PV_FEAT_MMU_RESTORE (1u << 4) /* after MMU_UPDATE the guest stores each entry again */
#define PV_FEAT_USER_LIMIT (1u << 5)  /* 1.1: USER_LIMIT makes the engine cheaper at ring switches */

/* Errors: the negated Linux errno of the same meaning, in EAX (int: -PV_EINVAL is -22). */
#define PV_EPERM 1    /* not allowed: a mapping of memory that is not the guest's */
#define PV_EFAULT 14  /* a guest-physical address in the arguments is not guest RAM */
#define PV_EINVAL 22  /* a bad argument */
#define PV_ENOSYS 38  /* no such call, or one this engine does not serve */

/* Calls: EAX in; arguments in EBX, ECX, ESI, EDI, EBP; the result in EAX. */
enum pv_call {
	PV_VERSION_CALL = 0, /* -> PV_VERSION */
	PV_CONSOLE_WRITE = 1, /* gpa, len (<= PV_CONSOLE_MAX) -> len */
	PV_SHUTDOWN = 2,      /* status: does not return */
	PV_SHARED_PAGE = 3,   /* gpa (page-aligned RAM) or 0 to unregister, linear address -> 0 */
	PV_HALT = 4,	      /* sets IF, waits for an interrupt (STI; HLT) -> 0 */
	PV_YIELD = 5,	      /* -> 0 */
	PV_SET_TIMER = 6,     /* ns (low, high) from now, 0 cancels -> 0; then IRQ PV_TIMER_IRQ */
	PV_SET_IDT = 7,	      /* linear base, limit (<= 0x7ff) -> 0 */
	PV_SET_GDT = 8,	      /* linear base, limit (<= 0xffff) -> 0 */
	PV_STACK_SWITCH = 9,  /* ss0, esp0: the stack of a ring 3 -> 0 entry -> 0 */
	PV_SET_CR3 = 10,      /* gpa of a page directory (page-aligned RAM) -> 0 */
	PV_MMU_UPDATE = 11,   /* gpa of struct pv_mmu_req[count], count (<= PV_MMU_MAX) -> done */
	PV_TLB_FLUSH = 12,    /* linear address, or PV_FLUSH_ALL -> 0 */
	PV_IRQ_ENABLE = 13,   /* IF = 1, and what became deliverable is delivered -> 0 */
	PV_IRQ_DISABLE = 14,  /* IF = 0 (only where the shared page's irq_mask is not) -> 0 */
	/* 1.1 */
	PV_USER_LIMIT = 15,   /* X: from linear X up all is supervisor-only -> 0 */
	PV_UPDATE_VA = 16,    /* linear page, new PTE, flags (PV_UVA_*) -> 0: the PTE, checked, and its flush */
	PV_NR_CALLS
};

#define PV_CONSOLE_MAX 4096u
#define PV_MMU_MAX 512u
#define PV_FLUSH_ALL 0xffffffffu
#define PV_TIMER_IRQ 5u
/* USER_LIMIT's X: 4 MiB-aligned, PV_USER_LIMIT_MIN..PV_USER_LIMIT_NONE (the default: no split) */
#define PV_USER_LIMIT_MIN 0x00400000u
#define PV_USER_LIMIT_NONE 0xffc00000u
#define PV_PDE_U 0x4u /* a PDE's U/S bit: MMU_UPDATE refuses it from USER_LIMIT up */
#define PV_UVA_INVLPG 1u /* UPDATE_VA's flags: flush this page's translation too */

/*
 * One MMU_UPDATE request: write val at guest-physical ptr. The low two bits
 * of ptr say what the entry is (entries are 4-byte aligned, so they are free,
 * as in Xen's mmu_update): a page-table entry (4 KiB page) or a
 * page-directory entry (a page table, or a 4 MiB page with PS).
 */
struct pv_mmu_req {
	unsigned int ptr;
	unsigned int val;
};
#define PV_MMU_PTE 0u
#define PV_MMU_PDE 1u
/* The top 4 MiB of every address space are the monitor's (docs/pv.md): PDE 1023 is refused. */
#define PV_PDE_MONITOR 1023u

/* The shared page (SHARED_PAGE): 32-bit little-endian words at these offsets. */
#define PV_SH_IRQ_MASK 0    /* guest: 1 = interrupts disabled (virtual IF = 0) */
#define PV_SH_IRQ_PENDING 4 /* ring3: 1 = an interrupt waits for irq_mask = 0 */
#define PV_SH_VERSION 8	    /* ring3: PV_VERSION */
#define PV_SH_CR2 12	    /* ring3: CR2, the address of the last page fault (PV_FEAT_CR2) */
#define PV_SH_CR3 16	    /* ring3: the page directory SET_CR3 last loaded */
#define PV_SH_ENGINE 256    /* bytes 256-511 are ring3's (the kvm engine keeps the TSS there) */

#endif
