/*
 * The runtime: everything that runs inside the sandbox child once the guest
 * has started — signal handlers (runtime.c), the virtual CPU (vcpu.c),
 * trap-and-emulate (emulate.c), segment mirroring (segments.c) and shadow
 * paging (mmu.c). Single-threaded, no malloc, no stdio, no glibc TLS: it
 * runs in signal handlers of a process whose only company is the guest.
 */
#ifndef RING3_CPU_BT_RUNTIME_H
#define RING3_CPU_BT_RUNTIME_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/ucontext.h>

#include "shared.h"
#include "translate.h"

#define BT_SIGKICK SIGUSR2 /* the monitor's "look at your interrupts" signal */

/* Guest EFLAGS bits (Intel SDM vol. 1 §3.4.3) */
#define FL_CF 0x1u
#define FL_TF 0x100u
#define FL_IF 0x200u
#define FL_DF 0x400u
#define FL_IOPL 0x3000u
#define FL_NT 0x4000u
#define FL_RF 0x10000u
#define FL_VM 0x20000u
#define FL_AC 0x40000u
#define FL_VIF 0x80000u
#define FL_VIP 0x100000u
#define FL_ID 0x200000u
/* Kept in the virtual CPU: the real ones are fixed in host ring 3 (IF=1, IOPL=0). */
#define FL_VIRTUAL (FL_IF | FL_IOPL | FL_VM | FL_VIF | FL_VIP)

/* CR0 and CR4 bits (SDM vol. 3 §2.5) */
#define CR0_PE 0x1u
#define CR0_MP 0x2u
#define CR0_EM 0x4u
#define CR0_TS 0x8u
#define CR0_ET 0x10u
#define CR0_NE 0x20u
#define CR0_WP 0x10000u
#define CR0_AM 0x40000u
#define CR0_NW 0x20000000u
#define CR0_CD 0x40000000u
#define CR0_PG 0x80000000u
#define CR4_VME 0x1u
#define CR4_PVI 0x2u
#define CR4_TSD 0x4u
#define CR4_DE 0x8u
#define CR4_PSE 0x10u
#define CR4_PAE 0x20u
#define CR4_MCE 0x40u
#define CR4_PGE 0x80u
#define CR4_PCE 0x100u
#define CR4_OSFXSR 0x200u
#define CR4_OSXMMEXCPT 0x400u

/* Exception vectors (SDM vol. 3 §6.3.1) */
enum {
	EXC_DE = 0, EXC_DB = 1, EXC_NMI = 2, EXC_BP = 3, EXC_OF = 4, EXC_BR = 5, EXC_UD = 6,
	EXC_NM = 7, EXC_DF = 8, EXC_TS = 10, EXC_NP = 11, EXC_SS = 12, EXC_GP = 13, EXC_PF = 14,
	EXC_MF = 16, EXC_AC = 17, EXC_MC = 18, EXC_XM = 19,
};

/* A fault the runtime found while emulating: raise it in the guest. */
struct bt_fault {
	int vec; /* -1: none */
	uint32_t err;
	bool has_err;
	uint32_t cr2;
};

static inline int fault_set(struct bt_fault *f, int vec, uint32_t err)
{
	f->vec = vec;
	f->err = err;
	f->has_err = vec != 6; /* #UD has no error code */
	return -1;
}
#define FAULT(f, v, e) fault_set((f), (v), (e))

/* Page-fault error code bits and access kinds for guest memory walks (SDM vol. 3 §4.7) */
#define PFERR_P 0x1u
#define PFERR_W 0x2u
#define PFERR_U 0x4u
#define PFERR_I 0x10u
#define ACC_W PFERR_W
#define ACC_U PFERR_U
#define ACC_X PFERR_I

struct tcache;

struct rt {
	struct bt_shared *sh;
	struct bt_vcpu *cpu;	/* &sh->vcpu */
	struct bt_counters *st; /* &sh->stats */
	uint8_t *ram;		/* guest RAM: the monitor's mapping, inherited by fork() */
	uint64_t ram_size;	/* bytes of RAM at guest-physical 0 (all below 3 GiB) */
	int memfd;
	uint64_t host_fsbase;	/* glibc's FS base, restored on every handler entry */
	ucontext_t *uc;		/* the interrupted guest context of the current handler */
	uint16_t real[BT_NSREG]; /* the real selectors the guest runs with */
	bool started;
	bool armed;		/* the set-up is done: the next int3 is the first entry */
	bool tf_window;		/* we set TF to open an interrupt window after one instruction */
	bool page0;		/* guest page 0 can be mapped (CAP_SYS_RAWIO) */
	uint64_t tsc_mark;
	struct tcache *tc;
	unsigned role;		/* BT_K or BT_U (shared.h) */
	bool split;		/* two children: K runs CPL 0-2, U runs CPL 3 */
	uint8_t *fp;		/* the current context's extended state (XSAVE format) */
	uint32_t fp_size;
	uint32_t u_flush_seen;	/* U: the last u_flush_seq applied */
	uint32_t u_reval_seen;	/* U: the last u_reval_seq applied */
};

extern struct rt rt;
/* What a guest that reaches 64-bit mode must not rewrite: read-only after set-up. */
struct rt_ro {
	unsigned role; /* BT_K or BT_U */
	uint8_t pad[4096 - sizeof(unsigned)];
};
extern struct rt_ro rt_ro;
extern uint16_t rt_sel_out[4]; /* DS ES FS GS for rt_entry's tail (segments.c) */

/* Guest registers in the interrupted context, numbered as in ModRM. */
extern const int rt_greg[8];
static inline uint32_t gr(int r)
{
	return (uint32_t)rt.uc->uc_mcontext.gregs[rt_greg[r]];
}
static inline void set_gr(int r, uint32_t v)
{
	rt.uc->uc_mcontext.gregs[rt_greg[r]] = v;
}
static inline uint32_t g_eip(void)
{
	return (uint32_t)rt.uc->uc_mcontext.gregs[REG_RIP];
}
static inline void set_eip(uint32_t v)
{
	rt.uc->uc_mcontext.gregs[REG_RIP] = v;
}

/* runtime.c: the world switch and the hand-off to the monitor */
uint64_t rt_syscall6(uint64_t nr, uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4,
		     uint64_t a5, uint64_t a6);
#define rt_syscall(nr, a1, a2, a3, a4, a5) rt_syscall6((nr), (a1), (a2), (a3), (a4), (a5), 0)
int rt_signal(int sig, siginfo_t *si, ucontext_t *uc);
void rt_far_callout(void);
extern uint32_t rt_xsave_size; /* XSAVE size of the enabled features (CPUID 0xd) */
extern uint8_t rt_far_fx;      /* far callouts FXSAVE only x87/SSE (runtime.c) */
bool xstate_libc_spares_avx(void); /* xstate.c */
void rt_far_kick(void);
extern uint64_t rt_far_stack;
#define RT_XSAVE_MAX (16u << 10)
extern uint8_t rt_far_xsave[RT_XSAVE_MAX];
extern char rt_far_entry[];
/* State-page offsets the far-callout trampoline uses (beside translate.h's layout). */
#define BT_FAR_SITE 96
#define BT_FAR_RAX 112
/* Post an exit (sh->exit filled by the caller) and wait for the monitor's reply. */
void rt_exit_wait(uint32_t kind);
/* Give up: post FAULT (or ESCAPE) with a message and end the child. */
_Noreturn void rt_fatal(uint32_t kind, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int rt_snprintf(char *buf, unsigned len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static inline uint64_t rt_rdtsc(void)
{
	uint32_t lo, hi;

	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return (uint64_t)hi << 32 | lo;
}

/* vcpu.c: the virtual CPU */
uint32_t vcpu_eflags(void);
void vcpu_set_eflags(uint32_t v, uint32_t mask);
void vcpu_set_cpl(unsigned cpl);
/* Raise an exception at the current EIP (faults) or after it (traps: EIP already moved). */
void vcpu_exception(const struct bt_fault *f);
void vcpu_raise(int vec, bool has_err, uint32_t err);
/* INT n (soft, gate DPL checked), an external interrupt (ext). */
void vcpu_interrupt(unsigned vec, bool soft);
void vcpu_ext_interrupt(unsigned vec);
/* Protected-mode IRET, far JMP/CALL/RET (SDM vol. 2 IRET, JMP, CALL, RET). */
int vcpu_iret(int opsize, struct bt_fault *f);
int vcpu_far_jmp(uint16_t sel, uint32_t eip, int opsize, struct bt_fault *f);
int vcpu_far_call(uint16_t sel, uint32_t eip, uint32_t ret_eip, int opsize, struct bt_fault *f);
int vcpu_far_ret(int opsize, uint32_t pop_bytes, struct bt_fault *f);
int vcpu_push(uint32_t v, int size, struct bt_fault *f);
void vcpu_halt(void);
/* If IF=1 and no shadow, and an interrupt is pending: ask the monitor, deliver. */
void vcpu_check_irq(void);
/* Apply a resume record: IN data is the caller's; a vector is delivered here. */
void vcpu_resumed(void);
int vcpu_io_allowed(uint16_t port, unsigned size, struct bt_fault *f);
void vcpu_snapshot(void);
bool vcpu_irq_waiting(void); /* an interrupt waits for IF=1 */
void vcpu_shadow(void); /* STI just set IF: the next instruction runs before any interrupt */

/* segments.c: descriptors and their mirrors in the child's LDT */
int seg_read_desc(uint16_t sel, uint64_t *desc, struct bt_fault *f);
void seg_from_desc(struct bt_seg *s, uint16_t sel, uint64_t desc);
uint64_t seg_to_desc(const struct bt_seg *s);
void seg_fast_key(int sreg, uint32_t key[4]);
int seg_load(int sreg, uint16_t sel, struct bt_fault *f);
void seg_set(int sreg, const struct bt_seg *s);
void seg_set_null(int sreg);
int seg_set_accessed(uint16_t sel, uint64_t desc);
int seg_sync_from_real(void);
void seg_apply(void);
int seg_init(void);
void seg_cpl_changed(void);
void seg_reload_all(void); /* mirrors for every register (after a hand-over) */
/* linear address of sreg:off (no limit check) */
static inline uint32_t seg_lin(int sreg, uint32_t off)
{
	return rt.cpu->seg[sreg].base + off;
}
bool seg_check(int sreg, uint32_t off, uint32_t len, bool write, struct bt_fault *f);

/* mmu.c: guest page walks and shadow paging */
int mmu_init(void);
int mmu_translate(uint32_t la, unsigned acc, uint64_t *pa, struct bt_fault *f);
int vmem_read(uint32_t la, void *buf, uint32_t len, unsigned acc, struct bt_fault *f);
int vmem_write(uint32_t la, const void *buf, uint32_t len, unsigned acc, struct bt_fault *f);
void *mmu_phys(uint64_t pa, uint32_t len);
/* A host #PF at la in guest code: 0 = handled (retry), else a guest fault in *f or MMIO. */
int mmu_fault(uint32_t la, uint32_t host_err, struct bt_fault *f, uint64_t *mmio_pa);
void mmu_flush(bool keep_global);
void mmu_cr3_loaded(void); /* revalidate the shadow against the new tables */
void mmu_revalidate(bool keep_global);
void mmu_invlpg(uint32_t la);
void mmu_fault_returned(void); /* the guest returned (IRET, hand-over): prefill its last #PF */
void mmu_pf_delivered(uint32_t cr2, uint32_t eip); /* a #PF goes to the guest, for EIP */
void mmu_cr_changed(uint32_t old_cr0, uint32_t old_cr4);
void mmu_flush_global(void); /* every translation, global too: a CR4.PGE toggle */
void mmu_cpl_changed(unsigned old_cpl);
void mmu_user_direct(void); /* ring 3 runs natively in the one child: hide above USER_LIMIT too */
int mmu_fetch(uint32_t la, unsigned acc, uint64_t *pa, bool *global, struct bt_fault *f);
/* the mapping, no checks, no A/D: 0 or -1; *user (if not NULL): ring 3 may use it */
int mmu_peek(uint32_t la, uint64_t *pa, bool *user);
bool mmu_is_code(uint64_t pa);
void mmu_note_write(uint64_t pa);
void mmu_code_page(uint64_t gpa);

/* tcrun.c: running guest ring-0 code translated */
int tcrun_init(void);
bool tcrun_active(void);	       /* the guest resumes in the translation cache */
bool tcrun_in_tc(uint32_t rip);
bool tcrun_entry(int sig, siginfo_t *si); /* a signal from translated code; true: handled */
void tcrun_resume(void);	       /* at the end of a handler: where the guest continues */
bool tcrun_step_direct(void);  /* run the callout's instruction directly, once */
bool tcrun_resuming(void);	       /* ... in the TC where it stopped, state untouched */
void tcrun_stats(void);
void tcrun_took_vcpu(void); /* K got the vCPU back: forget resume points, drop what U wrote */
void tcrun_code_written(uint64_t gpa_page);
void tcrun_top_visible(bool visible);
void tcrun_paging_changed(bool all);   /* CR0.PG, CR4.PSE (all) or CR4.PGE changed */
void tcrun_cr3_loaded(void);
void tcrun_invlpg(uint32_t la);
bool tcrun_is_trampoline(uint64_t rip);
extern bool rt_translate; /* run guest ring 0 translated (else trap-and-emulate only) */
extern bool rt_translate_user; /* ... and ring 3 too (one child; --bt-user=translate) */
extern bool rt_callout_int3;

/* pv.c: the pv hypercall ABI served in the child (docs/pv.md) */
bool pv_bt_call(void);		/* INT 0x82 at EIP-2: true if it was a call (served) */
bool pv_bt_cpuid(uint32_t leaf, uint32_t out[4]);
bool pv_bt_stack(unsigned dpl, uint16_t *ss, uint32_t *esp);
void pv_bt_sync_from(void);	/* the shared page's irq_mask -> the virtual IF */
void pv_bt_sync_to(void);	/* the virtual IF and a waiting interrupt -> the shared page */
void pv_bt_irq_held(void);	/* an interrupt waits for irq_mask = 0 */

/* emulate.c: trap-and-emulate */
void emu_gp(uint32_t err);
void emu_ud(void);
void emu_syscall(int arch, int nr);
void emu_init(void);
int emu_rdmsr(uint32_t idx, uint64_t *v);
int emu_wrmsr(uint32_t idx, uint64_t v);
void emu_mem_fault(uint64_t mmio_pa);
void emu_insn(void);
int emu_fetch(uint8_t *buf, uint32_t *len, struct bt_fault *f);
void emu_cpuid(uint32_t leaf, uint32_t sub, uint32_t out[4]);
void emu_load_cr3(uint32_t v); /* MOV CR3, and the pv ABI's SET_CR3 */

#endif
