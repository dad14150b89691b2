/*
 * Thin wrappers around the x86 instructions the test kernel uses, and the
 * architectural bit names (CR0, CR4, EFLAGS, page-table entries).
 * Names follow Intel SDM vol. 3 ch. 2 (system registers) and ch. 4 (paging).
 */
#ifndef TK_X86_H
#define TK_X86_H

#include <stdint.h>

/* Control registers (SDM vol. 3 §2.5). */
#define CR0_PE 0x00000001u  /* protected mode */
#define CR0_ET 0x00000010u  /* extension type: hardwired 1 since the 486 */
#define CR0_WP 0x00010000u  /* ring 0 honours read-only pages */
#define CR0_PG 0x80000000u  /* paging */
#define CR4_PSE 0x00000010u /* 4 MiB pages in non-PAE paging */

/* EFLAGS (SDM vol. 1 §3.4.3, vol. 3 §2.3). */
#define FL_CF 0x00000001u
#define FL_RESERVED1 0x00000002u /* bit 1 always reads 1 */
#define FL_ZF 0x00000040u
#define FL_IF 0x00000200u
#define FL_IOPL 0x00003000u

/* Page directory and page table entries, non-PAE (SDM vol. 3 §4.3). */
#define PTE_P 0x001u  /* present */
#define PTE_W 0x002u  /* writable */
#define PTE_U 0x004u  /* user may access */
#define PTE_A 0x020u  /* accessed: set by the CPU on any access */
#define PTE_D 0x040u  /* dirty: set by the CPU on a write */
#define PTE_PS 0x080u /* in a PDE: this entry maps a 4 MiB page */
#define PTE_FRAME 0xfffff000u
#define PAGE_SIZE 4096u
#define BIGPAGE_SIZE (4u << 20)
#define PDX(va) ((uint32_t)(va) >> 22)
#define PTX(va) (((uint32_t)(va) >> 12) & 0x3ff)

/* Page-fault error code bits (SDM vol. 3 §4.7). */
#define PF_P 0x1u /* 0: not present, 1: protection violation */
#define PF_W 0x2u /* the access was a write */
#define PF_U 0x4u /* the access came from ring 3 */

static inline uint8_t inb(uint16_t port)
{
	uint8_t v;
	asm volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static inline void outb(uint16_t port, uint8_t v)
{
	asm volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline void outl(uint16_t port, uint32_t v)
{
	asm volatile("outl %0, %1" : : "a"(v), "Nd"(port));
}

#ifndef TK_PV /* the paravirtual build calls ring3 instead: pv.h */
static inline void cli(void)
{
	asm volatile("cli" ::: "memory");
}

static inline void sti(void)
{
	asm volatile("sti" ::: "memory");
}

/* STI's one-instruction shadow makes "sti; hlt" atomic: no lost wake-up. */
static inline void sti_hlt(void)
{
	asm volatile("sti; hlt" ::: "memory");
}

#endif

static inline uint32_t read_eflags(void)
{
	uint32_t f;
	asm volatile("pushfl; popl %0" : "=r"(f)::"memory");
	return f;
}

static inline void write_eflags(uint32_t f)
{
	asm volatile("pushl %0; popfl" : : "r"(f) : "memory", "cc");
}

#ifndef TK_PV
static inline uint32_t read_cr0(void)
{
	uint32_t v;
	asm volatile("movl %%cr0, %0" : "=r"(v));
	return v;
}

static inline void write_cr0(uint32_t v)
{
	asm volatile("movl %0, %%cr0" : : "r"(v) : "memory");
}

static inline uint32_t read_cr2(void)
{
	uint32_t v;
	asm volatile("movl %%cr2, %0" : "=r"(v));
	return v;
}

static inline uint32_t read_cr3(void)
{
	uint32_t v;
	asm volatile("movl %%cr3, %0" : "=r"(v));
	return v;
}

/* Writing CR3 flushes every (non-global) TLB entry. */
static inline void write_cr3(uint32_t v)
{
	asm volatile("movl %0, %%cr3" : : "r"(v) : "memory");
}

static inline uint32_t read_cr4(void)
{
	uint32_t v;
	asm volatile("movl %%cr4, %0" : "=r"(v));
	return v;
}

static inline void write_cr4(uint32_t v)
{
	asm volatile("movl %0, %%cr4" : : "r"(v) : "memory");
}

static inline void invlpg(uint32_t va)
{
	asm volatile("invlpg (%0)" : : "r"(va) : "memory");
}

/* A store to a live page table (the pv build asks ring3: MMU_UPDATE). */
static inline void pte_write(uint32_t *e, uint32_t v)
{
	*(volatile uint32_t *)e = v;
}
#define pde_write pte_write

/* Retarget the PTE e that maps va, and flush va's translation (the pv build: one UPDATE_VA). */
static inline void pte_write_flush(uint32_t va, uint32_t *e, uint32_t v)
{
	pte_write(e, v);
	invlpg(va);
}

#endif

static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;
	asm volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}

static inline void cpuid(uint32_t leaf, uint32_t r[4])
{
	asm volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(0));
}

static inline uint16_t read_cs(void)
{
	uint16_t v;
	asm volatile("movw %%cs, %0" : "=r"(v));
	return v;
}

static inline uint16_t read_ss(void)
{
	uint16_t v;
	asm volatile("movw %%ss, %0" : "=r"(v));
	return v;
}

/* The operand of LGDT/LIDT and the result of SGDT/SIDT (SDM vol. 3 §2.4). */
struct dtr {
	uint16_t limit;
	uint32_t base;
} __attribute__((packed));

static inline void sgdt(struct dtr *d)
{
	asm volatile("sgdt %0" : "=m"(*d));
}

static inline void sidt(struct dtr *d)
{
	asm volatile("sidt %0" : "=m"(*d));
}

static inline uint16_t sldt(void)
{
	uint16_t v;
	asm volatile("sldt %0" : "=r"(v));
	return v;
}

static inline uint16_t str(void)
{
	uint16_t v;
	asm volatile("str %0" : "=r"(v));
	return v;
}

static inline uint16_t smsw(void)
{
	uint16_t v;
	asm volatile("smsw %0" : "=r"(v));
	return v;
}

/*
 * LAR, LSL, VERR and VERW look a selector up in the GDT/LDT and report
 * through ZF whether it was valid for the question; *ok gets ZF.
 */
static inline uint32_t lar(uint32_t sel, int *ok)
{
	uint32_t v = 0;
	uint8_t z;
	asm volatile("larl %2, %0; setz %1" : "+r"(v), "=q"(z) : "rm"(sel) : "cc");
	*ok = z;
	return v;
}

static inline uint32_t lsl(uint32_t sel, int *ok)
{
	uint32_t v = 0;
	uint8_t z;
	asm volatile("lsll %2, %0; setz %1" : "+r"(v), "=q"(z) : "rm"(sel) : "cc");
	*ok = z;
	return v;
}

static inline int verr(uint16_t sel)
{
	uint8_t z;
	asm volatile("verr %1; setz %0" : "=q"(z) : "rm"(sel) : "cc");
	return z;
}

static inline int verw(uint16_t sel)
{
	uint8_t z;
	asm volatile("verw %1; setz %0" : "=q"(z) : "rm"(sel) : "cc");
	return z;
}

#ifdef TK_PV
#include "pv.h"
#endif

#endif
