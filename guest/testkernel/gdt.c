/*
 * Segmentation and the TSS: our own GDT (ring-0 and ring-3 flat segments,
 * a few odd ones for LSL/LAR/VERR/VERW), an LDT with one entry, and the TSS
 * that gives the CPU ESP0/SS0 on a ring 3 -> 0 transition.
 * Intel SDM vol. 3 ch. 3 (segments), ch. 7 (task management).
 */
#include "kernel.h"

/* A segment descriptor, as the CPU reads it (SDM vol. 3 §3.4.5). */
struct seg_desc {
	uint16_t limit_lo;
	uint16_t base_lo;
	uint8_t base_mid;
	uint8_t access;		/* P | DPL(2) | S | type(4) */
	uint8_t flags_limit_hi; /* G | D/B | L | AVL | limit 19:16 */
	uint8_t base_hi;
} __attribute__((packed));

/* Access bytes. The accessed bit (type bit 0) is preset so the CPU never writes it. */
#define ACC_CODE0 0x9b	 /* present, DPL 0, code, execute/read, accessed */
#define ACC_DATA0 0x93	 /* present, DPL 0, data, read/write, accessed */
#define ACC_RODATA0 0x91 /* present, DPL 0, data, read-only, accessed */
#define ACC_CODE3 0xfb	 /* DPL 3 */
#define ACC_DATA3 0xf3
#define ACC_DATA3_DOWN 0xf7 /* DPL 3, data, expand-down, read/write, accessed */
#define ACC_TSS 0x89   /* present, DPL 0, system, 32-bit TSS (available) */
#define ACC_LDT 0x82   /* present, DPL 0, system, LDT */
#define FL_4K_32 0xc   /* G=1 (limit in 4 KiB units), D=1 (32-bit) */
#define FL_BYTE_32 0x4 /* G=0 (limit in bytes), D=1 */

/* The 32-bit TSS (SDM vol. 3 §7.2.1). We use only ESP0/SS0 and the I/O map base. */
struct tss {
	uint32_t link;
	uint32_t esp0, ss0, esp1, ss1, esp2, ss2;
	uint32_t cr3, eip, eflags, eax, ecx, edx, ebx, esp, ebp, esi, edi;
	uint32_t es, cs, ss, ds, fs, gs, ldt;
	uint16_t trap, iomap_base;
} __attribute__((packed));

static struct seg_desc gdt[GDT_ENTRIES] __attribute__((aligned(8)));
static struct seg_desc ldt[1] __attribute__((aligned(8)));
static struct tss tss __attribute__((aligned(16)));
struct dtr gdt_loaded;

static struct seg_desc seg(uint32_t base, uint32_t limit, uint8_t access, uint8_t flags)
{
	struct seg_desc d = {
	    .limit_lo = limit & 0xffff,
	    .base_lo = base & 0xffff,
	    .base_mid = (base >> 16) & 0xff,
	    .access = access,
	    .flags_limit_hi = (uint8_t)((flags << 4) | ((limit >> 16) & 0xf)),
	    .base_hi = base >> 24,
	};
	return d;
}

/*
 * SEL_ODD's descriptor slot and what it would hold with another base (and the
 * accessed bit clear if !accessed): checks_cpu.c rewrites it in place.
 */
volatile uint32_t *gdt_odd_slot(void)
{
	return (volatile uint32_t *)&gdt[SEL_ODD >> 3];
}

uint64_t gdt_odd_desc(uint32_t base, int accessed)
{
	struct seg_desc d = seg(base, ODD_LIMIT, accessed ? ACC_DATA0 : ACC_DATA0 & ~1, FL_BYTE_32);
	uint64_t v;

	__builtin_memcpy(&v, &d, 8);
	return v;
}

void gdt_init(void)
{
	gdt[SEL_KCODE >> 3] = seg(0, 0xfffff, ACC_CODE0, FL_4K_32);
	gdt[SEL_KDATA >> 3] = seg(0, 0xfffff, ACC_DATA0, FL_4K_32);
	gdt[SEL_UCODE >> 3] = seg(0, 0xfffff, ACC_CODE3, FL_4K_32);
	gdt[SEL_UDATA >> 3] = seg(0, 0xfffff, ACC_DATA3, FL_4K_32);
	gdt[SEL_TSS >> 3] = seg((uint32_t)&tss, sizeof(tss) - 1, ACC_TSS, 0);
	gdt[SEL_LDT >> 3] = seg((uint32_t)ldt, sizeof(ldt) - 1, ACC_LDT, 0);
	gdt[SEL_KCODE2 >> 3] = seg(0, 0xfffff, ACC_CODE0, FL_4K_32);
	gdt[SEL_ODD >> 3] = seg(0, ODD_LIMIT, ACC_DATA0, FL_BYTE_32);
	gdt[SEL_RODATA >> 3] = seg(0, 0xfffff, ACC_RODATA0, FL_4K_32);
	ldt[0] = seg(0, LDT_LIMIT, ACC_DATA0, FL_BYTE_32);
#ifdef TK_PV
	/* valid offsets: 0-4095 from the kernel's data; USER_LIMIT to 4 GiB - 1 (B=1) */
	gdt[SEL_UHIGH >> 3] = seg((uint32_t)&khigh_secret, 0xfff, ACC_DATA3, FL_BYTE_32);
	gdt[SEL_UEXPDOWN >> 3] = seg(0, (USER_LIMIT_VA >> 12) - 1, ACC_DATA3_DOWN, FL_4K_32);
	gdt[SEL_UCODEHIGH >> 3] = seg((uint32_t)&khigh_secret, 0xfff, ACC_CODE3, FL_BYTE_32);
#endif

	/*
	 * An I/O map base at or past the TSS limit means "no bitmap": with
	 * IOPL 0 every IN/OUT from ring 3 raises #GP(0) (SDM vol. 1 §19.5.2).
	 */
	tss.ss0 = SEL_KDATA;
	tss.iomap_base = sizeof(tss);

	gdt_loaded.limit = sizeof(gdt) - 1;
	gdt_loaded.base = (uint32_t)gdt;
#ifdef TK_PV
	if (pv_call(PV_SET_GDT, gdt_loaded.base, gdt_loaded.limit))
		tap_bail("pv: SET_GDT refused");
#else
	asm volatile("lgdt %0" : : "m"(gdt_loaded));
#endif

	/* Reload every segment register; CS only changes through a far transfer. */
	asm volatile("ljmp %0, $1f\n1:\n\t"
		     "movw %w1, %%ds\n\t"
		     "movw %w1, %%es\n\t"
		     "movw %w1, %%fs\n\t"
		     "movw %w1, %%gs\n\t"
		     "movw %w1, %%ss"
		     :
		     : "i"(SEL_KCODE), "r"(SEL_KDATA)
		     : "memory");

#ifdef TK_PV
	/* the flat model (isr.S): DS, ES, FS, GS on ring 3's flat data selector; SS stays ring 0's */
	asm volatile("movw %w0, %%ds\n\tmovw %w0, %%es\n\tmovw %w0, %%fs\n\tmovw %w0, %%gs"
		     :
		     : "r"(SEL_UDATA)
		     : "memory");
#endif
#ifndef TK_PV /* pv: no LDT, and STACK_SWITCH stands for the TSS */
	asm volatile("lldt %w0" : : "r"(SEL_LDT));
	asm volatile("ltr %w0" : : "r"(SEL_TSS)); /* marks the TSS descriptor busy */
#endif
}

/* The stack the CPU switches to on an interrupt or INT 0x80 from ring 3. */
void gdt_set_esp0(uint32_t esp0)
{
	tss.esp0 = esp0;
#ifdef TK_PV
	pv_call(PV_STACK_SWITCH, SEL_KDATA, esp0);
#endif
}
