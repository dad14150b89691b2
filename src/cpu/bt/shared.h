/*
 * The page(s) the monitor and the sandbox child share: the exit record the
 * child hands the monitor, the reply, the futex words of the hand-off, the
 * virtual CPU's state and the runtime's counters. The monitor trusts nothing
 * in here: it copies a record once, then validates every field (docs/bt.md).
 */
#ifndef RING3_CPU_BT_SHARED_H
#define RING3_CPU_BT_SHARED_H

#include <stdint.h>

#include "../../pv/abi.h"

/*
 * The guest's 4 GiB as the child lays it out: guest-virtual addresses below
 * BT_TOP are shadow mappings of guest RAM; [BT_TOP, 4 GiB) is the runtime's
 * (the translation cache and what translated code touches). Every guest
 * segment limit is truncated below BT_TOP; the rare guest access above it is
 * emulated against the guest's own mapping.
 */
#define BT_TOP 0xFFC00000u
#define BT_TOP_SIZE (4u << 20)

/* Who runs: the child (guest code or runtime) or the monitor (an exit is posted). */
#define BT_TURN_CHILD 1u
#define BT_TURN_PARENT 2u

enum bt_exit_kind {
	BT_EXIT_NONE,
	BT_EXIT_READY,	  /* the child is set up; resume to run the first instruction */
	BT_EXIT_IO,	  /* port I/O: port, size, count, is_write; data in iobuf */
	BT_EXIT_MMIO,	  /* an access to guest-physical memory that is not RAM */
	BT_EXIT_HLT,	  /* HLT; irq_window says whether an interrupt can wake it */
	BT_EXIT_INTA,	  /* IF=1 and an interrupt was signalled: give me the vector */
	BT_EXIT_SHUTDOWN, /* triple fault */
	BT_EXIT_FAULT,	  /* the runtime cannot go on: msg */
	BT_EXIT_ESCAPE,	  /* the guest tried to leave its sandbox: msg */
	BT_EXIT_HYPERCALL, /* a pv call the child cannot serve: hc_nr, hc_arg (pv.c) */
	BT_EXIT__COUNT,
};

struct bt_exit {
	uint32_t kind;
	uint32_t irq_window; /* the vCPU can accept an interrupt when it resumes */
	uint32_t port;
	uint32_t size;
	uint32_t count;
	uint32_t is_write;
	uint64_t gpa; /* MMIO */
	uint64_t data; /* MMIO write data */
	uint32_t hc_nr;	/* HYPERCALL: EAX and EBX, ECX, ESI, EDI, EBP */
	uint32_t hc_arg[5];
};

struct bt_resume {
	uint64_t data;	/* MMIO read data */
	int32_t vector; /* >= 0: deliver this external interrupt (already acknowledged) */
	uint32_t irq;	/* the PIC's INTR is (still) asserted */
	int64_t hc_ret; /* HYPERCALL: the result for EAX */
};

/* The pv ABI's state (pv.c), here because both children (K and U) need it. */
struct bt_pv {
	uint32_t armed;	      /* the guest read CPUID 0x40000101: INT 0x82 at CPL 0 is a call */
	uint32_t page;	      /* the shared page's guest-physical address, or 0 */
	uint32_t stack_set;   /* STACK_SWITCH was called: ss0:esp0 replace the TSS's */
	uint32_t ss0, esp0;
	uint32_t user_limit;  /* USER_LIMIT: from here up ring 3 reaches nothing; 0: not declared */
	uint64_t calls[PV_NR_CALLS + 1]; /* served in the child, by number; last: no such call */
};

#define BT_IOBUF_SIZE 4096u
#define BT_MSG_SIZE 160u

/* A segment register as the guest sees it: selector and descriptor cache. */
struct bt_seg {
	uint32_t base, limit; /* limit in bytes, scaled by G */
	uint16_t sel;
	uint16_t attr; /* BT_SEG_* below: the descriptor's type, S, DPL, P, AVL, L, D/B, G */
};

/* attr layout (as VMX access rights): type 0-3, S 4, DPL 5-6, P 7, AVL 12, L 13, DB 14, G 15 */
#define BT_SEG_TYPE(a) ((a) & 0xf)
#define BT_SEG_S 0x10
#define BT_SEG_DPL(a) (((a) >> 5) & 3)
#define BT_SEG_P 0x80
#define BT_SEG_DB 0x4000
#define BT_SEG_G 0x8000
#define BT_SEG_UNUSABLE 0x10000u /* never in attr (16 bits): sel == 0 says "null" */

enum bt_sreg { BT_ES, BT_CS, BT_SS, BT_DS, BT_FS, BT_GS, BT_NSREG };

/* The virtual CPU. The child owns it; the monitor reads it for messages and --stats. */
struct bt_vcpu {
	uint32_t regs[8]; /* EAX ECX EDX EBX ESP EBP ESI EDI, at the last exit */
	uint32_t eip;
	uint32_t eflags; /* the guest-visible EFLAGS (IF and IOPL virtual) */
	uint32_t cpl;
	uint32_t cr0, cr2, cr3, cr4;
	uint32_t dr[8];
	uint32_t gdt_base, idt_base;
	uint16_t gdt_limit, idt_limit;
	struct bt_seg seg[BT_NSREG];
	struct bt_seg ldtr, tr;
	uint64_t tsc_offset;
	uint64_t apic_base, misc_enable, pat, nb_cfg;
	uint32_t sysenter_cs, sysenter_esp, sysenter_eip;
	uint32_t halted;
	uint32_t irq_pending; /* an interrupt was signalled while IF was 0 */
	uint32_t intr_shadow; /* the next instruction is in STI's shadow */
};

/* Why the child's runtime ran: one counter per host signal cause. */
enum bt_trap {
	BT_TRAP_GP,	 /* #GP: privileged instruction, selector load, limit */
	BT_TRAP_PF,	 /* #PF: shadow fill or guest page fault */
	BT_TRAP_UD,	 /* #UD (SIGILL) */
	BT_TRAP_BP,	 /* INT3 (guest's, or a translator callout) */
	BT_TRAP_DB,	 /* #DB: single step, ICEBP */
	BT_TRAP_DE,	 /* #DE, #MF, #XM (SIGFPE) */
	BT_TRAP_OTHER,	 /* #NP, #SS, #TS, #AC, #OF, #BR */
	BT_TRAP_SYSCALL, /* SIGSYS: the guest's int 0x80 / syscall */
	BT_TRAP_KICK,	 /* the monitor's kick (interrupt, watchdog) */
	BT_TRAP__COUNT,
};

/* Instructions emulated (trap-and-emulate), for --stats. */
enum bt_insn {
	BT_I_CLI, BT_I_STI, BT_I_HLT, BT_I_IN, BT_I_OUT, BT_I_INS, BT_I_OUTS,
	BT_I_LGDT, BT_I_LIDT, BT_I_LLDT, BT_I_LTR, BT_I_MOVCR, BT_I_MOVDR, BT_I_CLTS, BT_I_LMSW,
	BT_I_INVLPG, BT_I_RDMSR, BT_I_WRMSR, BT_I_WBINVD, BT_I_SREG, BT_I_IRET, BT_I_FAR,
	BT_I_INT, BT_I_CPUID, BT_I_SYSCALL, BT_I_MEM, BT_I_OTHER,
	BT_I__COUNT,
};

struct bt_counters {
	uint64_t trap[BT_TRAP__COUNT];
	uint64_t insn[BT_I__COUNT];
	uint64_t exc[32];	  /* exceptions reflected to the guest, by vector */
	uint64_t irqs;		  /* external interrupts delivered */
	uint64_t soft_ints;	  /* INT n / int 0x80 delivered */
	uint64_t shadow_faults;	  /* #PF the shadow MMU resolved (mapped a page) */
	uint64_t shadow_flushes;  /* whole-shadow flushes (CR3 loads, CR0/CR4 changes) */
	uint64_t shadow_faults_u; /* ... of them in U (ring 3's shadow) */
	uint64_t cr3_loads, pge_toggles; /* what made K flush: CR3 loads, CR4.PGE changes */
	uint64_t invlpg;
	uint64_t far_fx;	  /* 1: far callouts keep only x87/SSE (runtime.c rt_far_fx) */
	uint64_t smc_writes;	  /* guest writes that hit a page with translated code */
	uint64_t us_hides, us_shows; /* kernel-only page runs hidden at CPL 3, shown again */
	uint64_t us_preshows;	  /* ... shown again at kernel entry, before a fault */
	uint64_t prefills;	  /* pages mapped before the guest touched them (mmu.c) */
	uint64_t revals, reval_kept; /* CR3 loads that revalidated the shadow; pages kept */
	uint64_t decode_hits;	  /* emulated instructions found decoded already */
	uint64_t child_switches;  /* hand-overs between the K and U children */
	uint64_t callout[8];	  /* callouts from translated code, by enum bt_site_kind */
	uint64_t callout_action[32]; /* BT_SITE_EMULATE callouts, by enum bt_action */
	uint64_t tc_invalidated;  /* translated blocks dropped (writes, INVLPG, CR3) */
	uint64_t tc_blocks, tc_insns, tc_lookups, tc_lookup_hits, tc_chains, tc_flushes;
	uint64_t tc_used, tc_translate_tsc;
	uint64_t ring_switches;	  /* CPL 0 <-> 3 transitions */
	uint64_t seg_repairs;	  /* host selectors the guest loaded natively, repaired */
	uint64_t ldt_writes;	  /* modify_ldt calls */
	uint64_t exits;		  /* exits posted to the monitor */
	uint64_t tsc_guest;	  /* TSC cycles in guest code */
	uint64_t tsc_runtime;	  /* TSC cycles in the child's runtime (signal handlers) */
	uint64_t tsc_wait;	  /* TSC cycles waiting for the monitor */
};

/*
 * Two sandbox children share the vCPU (docs/bt.md, "Two address spaces"):
 * K runs the guest at CPL 0-2 (its shadow maps everything), U at CPL 3 (its
 * shadow maps only what ring 3 may reach). `owner` says which one holds it.
 */
#define BT_K 0u
#define BT_U 1u
#define BT_INVLPG_MAX 32u
#define BT_XSTATE_MAX (16u << 10)

struct bt_shared {
	_Alignas(64) uint32_t turn;	  /* BT_TURN_*: the hand-off futex */
	uint32_t parent_sleeping;	  /* the monitor is (about to be) in FUTEX_WAIT */
	uint32_t child_sleeping;
	uint32_t owner;			  /* BT_K or BT_U: the child that runs the vCPU (futex) */
	uint32_t owner_sleeping[2];	  /* that child waits in FUTEX_WAIT on owner */
	uint32_t u_ready;		  /* U is set up and waits for the vCPU (futex) */
	_Alignas(64) uint32_t alive;	  /* K's TID | FUTEX_WAITERS: a robust futex */
	_Alignas(64) uint32_t alive_u;	  /* U's, likewise (0 without U) */
	_Alignas(64) uint32_t split;	  /* set by the monitor: two children, K and U */
	/* K → U: what U's shadow must forget before ring 3 runs again */
	uint32_t u_flush_seq;		  /* bumped: flush everything */
	uint32_t u_reval_seq;		  /* bumped: revalidate every mapping (CR3 load) */
	uint32_t u_ninvlpg;
	uint32_t u_invlpg[BT_INVLPG_MAX];
	/* U → K: guest-physical pages with translations that ring 3 wrote */
	uint32_t k_ncode;
	uint32_t k_code[BT_INVLPG_MAX];
	/* the vCPU's extended (FPU/SSE/AVX) state in transit, XSAVE standard format */
	uint32_t xstate_size;
	_Alignas(64) uint8_t xstate[BT_XSTATE_MAX];
	_Alignas(64) struct bt_exit exit; /* child -> monitor */
	struct bt_resume resume;	  /* monitor -> child */
	uint32_t kick_pending;		  /* the monitor sent a kick the child has not seen */
	uint32_t in_runtime;		  /* the child is in its runtime, not in guest code */
	uint32_t translate;		  /* set by the monitor: run ring 0 translated */
	uint32_t translate_user;	  /* ... and ring 3 too (--bt-user=translate) */
	uint32_t callout_int3;		  /* ... with int3 callouts (else far jumps) */
	uint32_t one_cpu;		  /* set by the monitor: K, U and its vCPU thread share one
					     host CPU (place.c: pinned, or the only one allowed), so
					     waiting by spinning only delays the one we wait for */
	char msg[BT_MSG_SIZE];		  /* FAULT, ESCAPE: one line, NUL-terminated */
	struct bt_pv pv;
	_Alignas(64) struct bt_vcpu vcpu;
	struct bt_counters stats;
	_Alignas(4096) uint8_t iobuf[BT_IOBUF_SIZE];
};

#endif
