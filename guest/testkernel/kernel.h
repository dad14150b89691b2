/*
 * The test kernel's shared definitions: segment selectors, the memory map,
 * the trap frame, and one prototype block per source file (as xv6's defs.h).
 */
#ifndef TK_KERNEL_H
#define TK_KERNEL_H

#include <stddef.h>
#include <stdint.h>
#include "x86.h"
#include "user.h"

/*
 * GDT selectors (gdt.c builds the table). RPL is in bits 0-1, TI (LDT) in bit 2.
 * KCODE2 is a second flat ring-0 code segment, only for far jumps and calls.
 * ODD is a ring-0 data segment with a byte-granular limit no host would use,
 * RODATA a read-only one: LSL/LAR/VERR/VERW must answer from *our* table.
 */
#define SEL_KCODE 0x08
#define SEL_KDATA 0x10
#define SEL_UCODE 0x1b /* 0x18 | RPL 3 */
#define SEL_UDATA 0x23 /* 0x20 | RPL 3 */
#define SEL_TSS 0x28
#define SEL_LDT 0x30
#define SEL_KCODE2 0x38
#define SEL_ODD 0x40
#define SEL_RODATA 0x48
#ifdef TK_PV
#define GDT_ENTRIES 13 /* and SEL_UHIGH, SEL_UEXPDOWN, SEL_UCODEHIGH: user.h */
#else
#define GDT_ENTRIES 10
#endif
#define SEL_LDT_DATA 0x04 /* LDT entry 0, TI=1, RPL 0 */
#define ODD_LIMIT 0x12345u
#define LDT_LIMIT 0xabcdu

/* Interrupt vectors. */
#define VEC_IRQ0 0x20	 /* the master 8259 is remapped here, the slave to 0x28 */
#define VEC_SYSCALL 0x80 /* DPL 3: user tasks' system calls */
#define VEC_TEST 0x81	 /* DPL 0: ring 0 may INT to it, ring 3 gets #GP */
#define IRQ_TIMER 0
#define IRQ_SERIAL 4

/*
 * Physical memory map (64 MiB guest; see README.md for the picture).
 * Virtual = physical for everything the kernel owns.
 */
#ifdef TK_PV
/*
 * The pv build lives above its user image (kernel.ld): from 8 MiB up all is
 * the kernel's, which it declares once (USER_LIMIT, docs/pv.md).
 */
#define KERNEL_BASE 0x00c00000u
#define USER_LIMIT_VA 0x00800000u
#define POOL_END 0x00c00000u
#else
#define KERNEL_BASE 0x00100000u /* the multiboot loader puts us at 1 MiB */
#define POOL_END 0x01000000u
#endif
/* USER_BASE, USER_STACK_TOP, USER_GUARD: see user.h */
#define POOL_BASE 0x00800000u /* page frames handed out by frame_alloc() */
#define SIEVE_BASE 0x01000000u /* 16 MiB, 4 MiB pages */
#define SIEVE_SIZE 0x01000000u
#define CRC_BASE 0x02000000u /* 1 MiB */
#define CRC_SIZE 0x00100000u
#define MEM_USED 0x02100000u	 /* RAM the kernel needs */
#define MEM_END 0x04000000u	 /* identity-mapped (4 MiB pages) up to here */
#define WINDOW_BASE 0x80000000u	 /* one page table of test pages, see paging.c */
#define ALIAS4M_BASE 0xc0000000u /* a 4 MiB page aliasing SIEVE_BASE */
#define UNMAPPED_VA 0x90000123u	 /* no page table behind it */

/* Slots in the test window (WINDOW_BASE + slot * 4 KiB). */
#define WIN_DEMAND 0 /* 0..63: demand-paged on first touch */
#define WIN_NDEMAND 64
#define WIN_RO 64	/* present, read-only */
#define WIN_AD 65	/* accessed/dirty bit test */
#define WIN_REMAP 66	/* PTE retargeted, then INVLPG */
#define WIN_SMC 67	/* alias of the page holding smc_target */
#define WIN_CR3 68	/* unmapped then CR3 reloaded */
#define WIN_GUARD 69	/* never present */
#define WIN_BENCH_PG 70 /* invlpg benchmark */
#define WIN_BENCH_PF 71 /* page-fault benchmark */
#define WIN_VA(slot) (WINDOW_BASE + (uint32_t)(slot)*PAGE_SIZE)

#define HZ 100 /* timer interrupts per second */

/* What isr.S pushes, lowest address first. esp/ss exist only from ring 3. */
struct trapframe {
	uint32_t edi, esi, ebp, esp_pusha, ebx, edx, ecx, eax; /* PUSHA */
	uint32_t gs, fs, es, ds;
	uint32_t vector, err; /* err is 0 where the CPU pushes none */
	uint32_t eip, cs, eflags;
	uint32_t esp, ss;
};

/*
 * A probe catches one expected exception: the code arms it with the address
 * to resume at, runs the instruction, and the handler records what the CPU
 * reported instead of treating the exception as fatal.
 */
struct probe {
	uint32_t armed;
	uint32_t resume; /* EIP to continue at */
	uint32_t vector; /* PROBE_NONE if nothing was raised */
	uint32_t err;
	uint32_t eip; /* EIP the CPU pushed */
	uint32_t cr2;
};
#define PROBE_NONE 0xffffffffu

/*
 * Run one instruction under the kernel probe (ring 0):
 *	asm volatile(KPROBE_BEGIN "divl %2" KPROBE_END : outputs : inputs : "memory");
 * Label 2 is the probed instruction, label 1 where the handler resumes.
 * The offsets are those of struct probe (checked in trap.c).
 */
extern struct probe kprobe;
extern uint32_t kprobe_at;
#define KPROBE_BEGIN                                                                               \
	"movl $1f, kprobe+4\n\t"                                                                   \
	"movl $2f, kprobe_at\n\t"                                                                  \
	"movl $-1, kprobe+8\n\t"                                                                   \
	"movl $1, kprobe\n"                                                                        \
	"2:\t"
#define KPROBE_END "\n1:\tmovl $0, kprobe\n"

/* boot.S */
void halt_forever(void) __attribute__((noreturn));

/* print.c */
void kprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void kputs(const char *s);
void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);

/* serial.c */
void serial_init(void);
void serial_putc(char c);
int serial_irq_transmit(const char *buf); /* returns THRE interrupts taken */
void serial_intr(void);
int serial_loopback(uint8_t byte);
int serial_scratch(uint8_t byte);
int serial_thr_empty(void);

/* gdt.c */
void gdt_init(void);
volatile uint32_t *gdt_odd_slot(void);
uint64_t gdt_odd_desc(uint32_t base, int accessed);
void gdt_set_esp0(uint32_t esp0);
extern struct dtr gdt_loaded, idt_loaded;

/* idt.c */
void idt_init(void);

/* trap.c */
void trap(struct trapframe *tf);
int probe_catch(struct probe *p, struct trapframe *tf, uint32_t cr2);
extern volatile uint32_t vec_test_count;

/* pic.c */
void pic_init(void);
void pic_unmask(int irq);
void pic_mask(int irq);
void pic_eoi(int irq);
int pic_in_service(int irq);
uint8_t pic_read_irr(void);
uint8_t pic_read_imr(void);

/* pit.c */
void pit_init(uint32_t hz);
uint16_t pit_read_ch0(void);
void pit_intr(void);
extern volatile uint32_t ticks;
int timer_wait_ticks(uint32_t n);
void tsc_calibrate(void);
extern uint32_t tsc_khz;
extern const char *tsc_source;

/* paging.c */
void paging_init(void);
uint32_t frame_alloc(void);
uint32_t *pte_of(uint32_t va);
uint32_t *pde_of(uint32_t va);
uint32_t *pd_new_user(void);
int paging_fault(struct trapframe *tf, uint32_t cr2);
extern uint32_t kernel_pd[1024];
extern uint32_t demand_faults;

/* task.c */
struct task;
void task_init(void);
struct task *task_spawn(uint32_t mode, uint32_t arg);
void task_run_all(void);
void task_tick(struct trapframe *tf);
void task_exit(void) __attribute__((noreturn));
int task_user_fault(struct trapframe *tf, uint32_t cr2);
uint32_t task_switches(void);

/* syscall.c */
void syscall(struct trapframe *tf);

/* tap.c */
int tap_ok(int cond, const char *desc);
int tap_eq(uint32_t got, uint32_t want, const char *desc);
int tap_probe(const struct probe *p, uint32_t vector, uint32_t err, const char *desc);
int tap_pf(const struct probe *p, uint32_t err, uint32_t cr2, const char *desc);
void tap_plan(void);
uint32_t tap_failures(void);
void tap_bail(const char *why) __attribute__((noreturn));
void debug_exit(uint32_t code) __attribute__((noreturn));

/* checks_*.c: each prints its TAP lines. */
struct boot_info;
void checks_boot(const struct boot_info *bi);
void checks_cpu(void);
void checks_trap(void);
void checks_dev(void);
void checks_mem(void);
void checks_smc(void);
void checks_user(void);

/* bench.c */
int bench_wanted(const char *cmdline);
uint32_t bench_run(const char *cmdline);

/* What main.c saves from the multiboot loader before touching memory. */
struct boot_info {
	uint32_t magic;
	uint32_t flags;
	uint32_t mem_lower_kb, mem_upper_kb;
	char cmdline[256];
};

#endif
