/*
 * The binary translator of the bt engine: guest 32-bit kernel code, basic block by basic block,
 * into a translation cache (TC) that runs in host ring 3, compatibility mode. This header is
 * the whole interface between the runtime (sandbox child, vCPU) and the translator.
 * Intel SDM vol. 3A ch. 2-3 (system state, segments), vol. 2 (instruction semantics).
 */
#ifndef RING3_CPU_BT_TRANSLATE_H
#define RING3_CPU_BT_TRANSLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The translation-relevant mode. Translations are keyed by (EIP, mode): the same bytes at the
 * same EIP translate differently with another default operand size, stack size or CPL.
 * Guest ring-0 code normally runs in BT_MODE_KERNEL32.
 */
#define BT_MODE_CPL 0x3u	 /* the guest's CPL (inline CLI/STI/POPF only at CPL 0) */
#define BT_MODE_CS32 (1u << 2) /* CS.D: 32-bit default operand and address size */
#define BT_MODE_SS32 (1u << 3) /* SS.B: 32-bit stack pointer (ESP, not SP) */

struct bt_mode {
	uint32_t cs_base; /* linear = cs_base + EIP; lookups are by EIP */
	uint32_t flags;	  /* BT_MODE_* */
};

#define BT_MODE_KERNEL32 ((struct bt_mode){ .cs_base = 0, .flags = BT_MODE_CS32 | BT_MODE_SS32 })

/* Guest general registers, numbered as in ModRM (Intel SDM vol. 2 §2.1.5). */
enum bt_reg { BT_EAX, BT_ECX, BT_EDX, BT_EBX, BT_ESP, BT_EBP, BT_ESI, BT_EDI };

/*
 * The scratch area translated code owns (state.scratch, BT_SCRATCH_SIZE bytes). Inline sequences
 * spill guest registers to slot BT_SCRATCH_REG(r); a site's `restore` mask says which guest
 * registers are held there at that point. BT_SCRATCH_TARGET holds the guest target EIP at a
 * BT_SITE_INDIRECT callout.
 */
#define BT_SCRATCH_REG(r) (4 * (r)) /* r = BT_EAX .. BT_EBX */
#define BT_SCRATCH_JUMP 16	    /* TC address an inline lookup jumps to (internal) */
#define BT_SCRATCH_TARGET 20	    /* guest EIP of a missed indirect branch */
#define BT_SCRATCH_SIZE 32

/* The guest's virtual IF as translated code stores it: 0 or EFLAGS.IF. */
#define BT_VIF 0x200u

/*
 * Offsets, relative to the base of the %gs segment translated ring-0 code runs with, of the
 * runtime's state that inline sequences read and write. All 32-bit words, 4-byte aligned.
 */
struct bt_state_layout {
	uint32_t vif;	      /* 0 or BT_VIF: the guest's EFLAGS.IF (CLI, STI, POPF write it) */
	uint32_t vflags;      /* the guest's EFLAGS.IOPL and .AC bits, every other bit 0 */
	uint32_t irq_pending; /* BT_VIF while an interrupt waits for IF=1, else 0; translated
				 code calls out when vif + irq_pending == 2 * BT_VIF */
	uint32_t sel;	      /* u32 sel[6]: guest-visible selectors ES CS SS DS FS GS,
				 zero-extended (MOV from Sreg, PUSH Sreg read them) */
	uint32_t scratch;     /* BT_SCRATCH_SIZE bytes */
	uint32_t callout_site; /* BT_CALLOUT_FARJMP: the site's TC address is stored here */
	uint32_t callout_far;  /* BT_CALLOUT_FARJMP: m16:32 far pointer to the runtime's entry */
	uint32_t fastseg;      /* u32 [6][4] by segment register: a reload that changes nothing
				  (BT_FASTSEG_*; the runtime keeps them, segments.c) */
};

/*
 * A data-segment load of the selector already loaded, whose descriptor in the GDT still holds
 * exactly what was loaded, changes nothing a CPU would change (the accessed bit is set
 * already): translated code at CPL 0 skips the callout for it. Linux's i386 entry and exit
 * code reloads DS and ES with the same selector on every kernel entry and exit.
 */
#define BT_FASTSEG_NEGSEL 0 /* -selector; 0x80000000 when no reload is skipped */
#define BT_FASTSEG_LA 4	    /* linear address of its 8-byte descriptor */
#define BT_FASTSEG_NEGLO 8  /* -(descriptor bits 31:0) */
#define BT_FASTSEG_NEGHI 12 /* -(descriptor bits 63:32) */
#define BT_FASTSEG_SIZE 16

/*
 * How translated code enters the runtime. INT3: SIGTRAP with RIP after the int3, the site is
 * RIP - 1. FARJMP: `movl $site, %gs:callout_site; ljmp *%gs:callout_far` into 64-bit runtime
 * code. Either way the side table (tc_site_lookup) is keyed by the site's first byte.
 */
enum bt_callout_style { BT_CALLOUT_INT3, BT_CALLOUT_FARJMP };

struct bt_config {
	/* The TC: this process writes it at tc_mem; translated code sees it at tc_guest, inside
	 * the reserved top region of the guest's 4 GiB. It also holds the inline lookup table. */
	void *tc_mem;
	uint32_t tc_guest;
	uint32_t tc_size; /* multiple of 4 KiB, at least 1 MiB */
	/* Linear base of the %gs segment translated code runs with. It must be <= tc_guest and
	 * the segment (writable data, 32-bit) must reach tc_guest + tc_size - 1. */
	uint32_t gs_base;
	struct bt_state_layout state;
	enum bt_callout_style callout;
	/*
	 * Read len guest code bytes at linear address la; [la, la + len) never crosses a 4 KiB
	 * page. Return 0 and the guest-physical address of la in *gpa, or -errno when the fetch
	 * faults (not mapped, not executable, past the CS limit — which keeps the guest out of
	 * the top region): the translator then reports -EFAULT with that la. Runs on the
	 * translation path: no malloc, no blocking.
	 */
	int (*fetch)(void *ctx, uint32_t la, void *buf, uint32_t len, uint64_t *gpa);
	/* Called when a guest-physical page gets its first translation: write-protect it. It must
	 * not call back into the translator. */
	void (*code_page)(void *ctx, uint64_t gpa_page);
	void *ctx;
	unsigned max_block_insns; /* 0: the default (64) */
};

struct tcache;

/* Set up the translator (allocates its metadata; call before seccomp). 0 or -errno. */
int tc_init(struct tcache **tc, const struct bt_config *cfg);
void tc_destroy(struct tcache *tc);

/* The TC address of the translation of (eip, mode), or 0. */
uint32_t tc_lookup(struct tcache *tc, uint32_t eip, struct bt_mode mode);

/*
 * Translate (or look up) the block at eip: 0 with its TC address in *tc_addr, or
 * -EFAULT: the fetch of the first instruction faulted at linear address *fault_la;
 * -EILSEQ: the first instruction is undecodable (raise #UD at eip);
 * -E2BIG: the first instruction is longer than 15 bytes (raise #GP(0) at eip);
 * -EOPNOTSUPP: mode without BT_MODE_CS32 and BT_MODE_SS32 (16-bit code is not translated).
 * Flushes the whole TC when it is full (tc_stats()->generation changes: any TC address the
 * caller held is then void). No malloc: safe in the sandbox's signal handlers.
 */
int bt_translate(struct tcache *tc, uint32_t eip, struct bt_mode mode, uint32_t *tc_addr,
		 uint32_t *fault_la);

/* What a callout site wants, or what a TC address stands for. */
enum bt_site_kind {
	BT_SITE_IDENT,	    /* inside a guest instruction copied unchanged */
	BT_SITE_INLINE,	    /* inside an inline sequence (branch, CLI/STI/PUSHF/POPF, Sreg read) */
	BT_SITE_EMULATE,    /* callout: emulate the instruction at eip (action says which);
			       exact, except POPF with AC or TF set: its arithmetic flags are
			       clobbered, which the POPF overwrites anyway */
	BT_SITE_CHAIN,	    /* callout: direct branch to target_eip not yet chained: bt_chain() */
	BT_SITE_INDIRECT,   /* callout: indirect branch missed the inline table; the guest
			       target EIP is at scratch + BT_SCRATCH_TARGET */
	BT_SITE_IRQ_WINDOW, /* callout: IF is set and an interrupt is pending: deliver it with
			       return EIP state_eip, or resume at resume_tc */
};

/* What a BT_SITE_EMULATE instruction does, from the decoder table (decode.h). */
enum bt_action {
	BT_ACT_NONE,
	BT_ACT_CLI,	   /* CLI, STI: inline at CPL 0, else emulated (IOPL check) */
	BT_ACT_STI,
	BT_ACT_PUSHF,	   /* PUSHF/PUSHFD: inline */
	BT_ACT_POPF,	   /* POPF/POPFD: inline at CPL 0 (32-bit) unless AC or TF is set */
	BT_ACT_SREG_READ,  /* MOV r/m, Sreg; PUSH Sreg: inline from state.sel */
	BT_ACT_SREG_LOAD,  /* MOV Sreg, r/m; POP Sreg; LDS/LES/LFS/LGS/LSS */
	BT_ACT_SEG_ACCESS, /* a memory operand through %gs or %cs: emulate the access */
	BT_ACT_SYS_READ,   /* SGDT, SIDT, SLDT, STR, SMSW */
	BT_ACT_SYS_LOAD,   /* LGDT, LIDT, LLDT, LTR, LMSW */
	BT_ACT_SEG_INFO,   /* LAR, LSL, VERR, VERW */
	BT_ACT_CPUID,
	BT_ACT_IO,	   /* IN, OUT, INS, OUTS (with REP) */
	BT_ACT_HLT,
	BT_ACT_INT,	   /* INT n, INT3, INTO, INT1 (ICEBP) */
	BT_ACT_IRET,
	BT_ACT_FAR_BRANCH, /* far JMP, CALL, RET */
	BT_ACT_CR,	   /* MOV to/from CRn, CLTS */
	BT_ACT_DR,	   /* MOV to/from DRn */
	BT_ACT_MSR,	   /* RDMSR, WRMSR, RDPMC */
	BT_ACT_TLB,	   /* INVLPG, INVPCID */
	BT_ACT_CACHE,	   /* WBINVD, INVD, WBNOINVD */
	BT_ACT_SYSENTER,   /* SYSENTER, SYSEXIT, SYSCALL, SYSRET */
	BT_ACT_AC,	   /* STAC, CLAC */
	BT_ACT_XCR,	   /* XGETBV, XSETBV */
	BT_ACT_TSC_AUX,	   /* RDTSCP, RDPID (would show the host's TSC_AUX) */
	BT_ACT_MWAIT,	   /* MONITOR, MWAIT */
	BT_ACT_VMCALL,	   /* VMCALL, VMMCALL (the pv hypercall ABI may use them) */
	BT_ACT_UD,	   /* UD0, UD1, UD2 and instructions invalid here: raise #UD */
	BT_ACT_PRIV,	   /* any other CPL-0 instruction (Zydis IS_PRIVILEGED) */
	BT_ACT__COUNT,
};

#define BT_SITE_EXACT (1u << 0)	 /* after `restore`, the guest state is exact at state_eip */
#define BT_SITE_SHADOW (1u << 1) /* the instruction is in STI's interrupt shadow */
#define BT_SITE_STALE (1u << 2)	 /* the block was invalidated: do not resume inside it */

struct bt_site {
	enum bt_site_kind kind;
	enum bt_action action; /* BT_SITE_EMULATE and inline sites */
	uint32_t eip;	       /* the guest instruction this TC address belongs to */
	uint32_t len;	       /* its length in bytes */
	uint32_t next_eip;     /* eip + len (the fall-through) */
	uint32_t target_eip;   /* BT_SITE_CHAIN: the branch target */
	uint32_t state_eip;    /* with BT_SITE_EXACT: the guest EIP the state stands at */
	uint32_t resume_tc;    /* callouts: where to continue after emulating the instruction
				  when it falls through to next_eip; 0 = look up next_eip */
	uint8_t restore;       /* 1 << BT_EAX ...: reload these from their scratch slots first */
	uint8_t flags;	       /* BT_SITE_* */
};

/*
 * Map any TC address inside a translated block back to the guest (for callouts: the site's
 * first byte, i.e. RIP - 1 after an int3). 0 or -ENOENT. Valid until the next tc_flush().
 */
int tc_site_lookup(struct tcache *tc, uint32_t tc_addr, struct bt_site *site);

/*
 * A BT_SITE_CHAIN callout at site_tc: translate the target (in the mode of the branch's own
 * block: `mode` is not needed and ignored), patch the branch to jump straight there from now
 * on, and return its TC address. Same results as bt_translate; -ENOENT for a bad site_tc.
 */
int bt_chain(struct tcache *tc, uint32_t site_tc, struct bt_mode mode, uint32_t *tc_addr,
	     uint32_t *fault_la);

/* Drop every block whose guest bytes touch this guest-physical page, unchaining jumps into
 * them. Returns how many were dropped. */
unsigned tc_invalidate_page(struct tcache *tc, uint64_t gpa);
/* Same, by guest-linear page (INVLPG, or a CR3 load that remaps code). */
unsigned tc_invalidate_linear(struct tcache *tc, uint32_t la);
/* Drop everything. */
void tc_flush(struct tcache *tc);

struct bt_stats {
	uint64_t blocks;	 /* blocks translated */
	uint64_t insns;		 /* guest instructions translated */
	uint64_t guest_bytes;	 /* guest code bytes translated */
	uint64_t tc_bytes;	 /* TC bytes emitted */
	uint64_t callout_sites;	 /* BT_SITE_EMULATE sites emitted */
	uint64_t by_action[BT_ACT__COUNT]; /* sensitive instructions translated, by action */
	uint64_t lookups, lookup_hits;
	uint64_t chains;	 /* branches patched to a block */
	uint64_t unchains;	 /* branches patched back to their stub on invalidation */
	uint64_t invalidated;	 /* blocks dropped */
	uint64_t flushes;
	uint64_t fetch_faults, undecodable;
	uint64_t translate_tsc;	 /* TSC cycles spent translating */
	uint32_t generation;	 /* bumped by every flush */
	uint32_t tc_used, tc_free; /* code bytes */
};

const struct bt_stats *tc_stats(struct tcache *tc);

#endif
