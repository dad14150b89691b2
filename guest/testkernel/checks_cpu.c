/*
 * Checks that the CPU state a kernel can observe is the state it set up:
 * the multiboot hand-off, descriptor-table registers, selectors, far
 * transfers, LAR/LSL/VERR/VERW, IF as PUSHF sees it, CPUID and the TSC.
 * Intel SDM vol. 3 ch. 2-3 and 5 (§5.10: pointer validation instructions).
 */
#include "kernel.h"
#include "multiboot.h"

void checks_boot(const struct boot_info *bi)
{
	tap_eq(bi->magic, MB_BOOT_MAGIC, "multiboot: EAX held 0x2badb002 at entry");
	/* The memory map uses RAM up to the end of the CRC buffer (33 MiB). */
	int mem_ok = (bi->flags & MB_INFO_MEM) && bi->mem_upper_kb >= (MEM_USED - 0x100000) / 1024;
	if (!tap_ok(mem_ok, "multiboot: memory info reports at least 33 MiB"))
		kprintf("#   flags 0x%x mem_upper %u KiB\n", bi->flags, bi->mem_upper_kb);
}

#ifndef TK_PV
static void check_tables(void)
{
	struct dtr d;

	sgdt(&d);
	if (!tap_ok(d.base == gdt_loaded.base && d.limit == gdt_loaded.limit,
		    "sgdt returns the GDT base and limit the kernel loaded"))
		kprintf("#   expected %08x/%x, got %08x/%x\n", gdt_loaded.base, gdt_loaded.limit,
			d.base, d.limit);
	sidt(&d);
	if (!tap_ok(d.base == idt_loaded.base && d.limit == idt_loaded.limit,
		    "sidt returns the IDT base and limit the kernel loaded"))
		kprintf("#   expected %08x/%x, got %08x/%x\n", idt_loaded.base, idt_loaded.limit,
			d.base, d.limit);
	tap_eq(sldt(), SEL_LDT, "sldt returns the kernel's LDT selector 0x30");
	tap_eq(str(), SEL_TSS, "str returns the kernel's TSS selector 0x28");
	/* ET is hardwired to 1; MP, EM, TS, NE are clear because we cleared them. */
	tap_eq(smsw(), CR0_PE | CR0_ET, "smsw returns the kernel's CR0 low bits (PE|ET = 0x11)");
	tap_eq(read_cr0(), CR0_PE | CR0_ET | CR0_WP | CR0_PG, "cr0 reads back PE|ET|WP|PG");
	tap_eq(read_cr4(), CR4_PSE, "cr4 reads back PSE only");
	tap_eq(read_cs(), SEL_KCODE, "cs reads 0x08 in the kernel (RPL 0)");
	tap_eq(read_ss(), SEL_KDATA, "ss reads 0x10 in the kernel (RPL 0)");
}
#endif

/* Called far with CS = KCODE2: report CS, return far. */
asm(".text\n"
    "far_callee:\n\t"
    "movw %cs, %ax\n\t"
    "movzwl %ax, %eax\n\t"
    "lret\n");

static void check_far_transfers(void)
{
	uint32_t cs;

	asm volatile("ljmp %1, $1f\n"
		     "1:\tmovw %%cs, %w0\n\t"
		     "movzwl %w0, %0\n\t"
		     "ljmp %2, $2f\n"
		     "2:"
		     : "=r"(cs)
		     : "i"(SEL_KCODE2), "i"(SEL_KCODE)
		     : "memory");
	if (!tap_ok(cs == SEL_KCODE2 && read_cs() == SEL_KCODE,
		    "ljmp to code segment 0x38 and back reloads CS"))
		kprintf("#   cs in 0x38: 0x%x, after: 0x%x\n", cs, read_cs());

	asm volatile("lcall %1, $far_callee" : "=a"(cs) : "i"(SEL_KCODE2) : "memory");
	if (!tap_ok(cs == SEL_KCODE2 && read_cs() == SEL_KCODE,
		    "lcall into segment 0x38 and lret back to 0x08"))
		kprintf("#   cs in callee: 0x%x, after: 0x%x\n", cs, read_cs());
}

static void check_descriptor_queries(void)
{
	int ok;
	uint32_t v;

	v = lsl(SEL_ODD, &ok);
	tap_eq(ok ? v : 0xdead, ODD_LIMIT,
	       "lsl of GDT data segment 0x40 returns its limit 0x12345");
#ifndef TK_PV
	v = lsl(SEL_LDT_DATA, &ok);
	tap_eq(ok ? v : 0xdead, LDT_LIMIT, "lsl of LDT data segment 0x04 returns its limit 0xabcd");
#endif
	v = lsl(SEL_KDATA, &ok);
	tap_eq(ok ? v : 0xdead, 0xffffffff, "lsl of the flat data segment returns 0xffffffff");
	/* LAR returns the descriptor's second dword masked with 0x00f0ff00. */
	v = lar(SEL_ODD, &ok);
	tap_eq(ok ? v : 0xdead, 0x00409300,
	       "lar of segment 0x40 returns its access rights 0x00409300");
	v = lar(SEL_UCODE, &ok);
	tap_eq(ok ? v : 0xdead, 0x00c0fb00, "lar of user code 0x1b returns 0x00c0fb00");
	lsl(GDT_ENTRIES * 8, &ok);
	tap_ok(!ok, "lsl of a selector past the GDT limit fails (ZF=0)");
	tap_ok(verr(SEL_KCODE), "verr: kernel code segment is readable");
	tap_ok(!verw(SEL_RODATA), "verw: read-only data segment 0x48 is not writable");
	tap_ok(verw(SEL_KDATA), "verw: kernel data segment is writable");
}

#ifndef TK_PV
static void check_flags(void)
{
	cli();
	uint32_t off = read_eflags();
	sti();
	uint32_t on = read_eflags();
	tap_ok(!(off & FL_IF), "pushf after cli shows IF=0");
	tap_ok(on & FL_IF, "pushf after sti shows IF=1");
	tap_eq(on & FL_IOPL, 0, "pushf shows IOPL=0");
}
#endif

static int printable(const char *s, int n)
{
	for (int i = 0; i < n; i++)
		if (s[i] < 0x20 || s[i] > 0x7e)
			return 0;
	return 1;
}

static void check_cpuid_tsc(void)
{
	uint32_t r[4];
	char vendor[13];

	cpuid(0, r);
	memcpy(vendor, &r[1], 4); /* EBX, EDX, ECX spell it */
	memcpy(vendor + 4, &r[3], 4);
	memcpy(vendor + 8, &r[2], 4);
	vendor[12] = 0;
	tap_ok(r[0] >= 1, "cpuid leaf 0: highest leaf >= 1");
	tap_ok(printable(vendor, 12), "cpuid leaf 0: vendor string is printable");
	kprintf("# cpuid vendor \"%s\"\n", printable(vendor, 12) ? vendor : "?");
	cpuid(1, r);
	tap_eq(r[3] & 0x18, 0x18, "cpuid leaf 1: EDX reports PSE and TSC");

	uint64_t t0 = rdtsc();
	for (volatile int i = 0; i < 1000; i++)
		;
	uint64_t t1 = rdtsc();
	tap_ok(t1 > t0, "rdtsc advances");
}

/*
 * A data-segment load reads its descriptor again even when the selector is the
 * one already loaded (SDM vol. 3 §3.4.3, vol. 2 MOV): a descriptor rewritten in
 * place takes effect at the next load, by MOV or by POP, and a load sets a
 * cleared accessed bit. (The bt engine skips reloads that change nothing.)
 */
#ifndef TK_PV
static void check_segment_reload(void)
{
	static volatile uint32_t z = 0x12121212, a = 0xaaaa5555, b = 0x5555aaaa;
	static uint32_t v[3], w[4];
	volatile uint32_t *slot = gdt_odd_slot();
	uint64_t d0 = gdt_odd_desc((uint32_t)&z, 1), d1 = gdt_odd_desc((uint32_t)&a, 1),
		 d2 = gdt_odd_desc((uint32_t)&b, 0);
	uint32_t tmp, sel = SEL_ODD;

	w[0] = (uint32_t)d1, w[1] = (uint32_t)(d1 >> 32);
	w[2] = (uint32_t)d2, w[3] = (uint32_t)(d2 >> 32);
	slot[0] = (uint32_t)d0;
	slot[1] = (uint32_t)(d0 >> 32);
	/* ES is not the compiler's until it holds SEL_KDATA again: one block */
	asm volatile("mov %w[sel], %%es\n\t"
		     "mov %%es:0, %[t]; mov %[t], %[v0]\n\t"
		     "mov %[w0], %[t]; mov %[t], (%[slot])\n\t"
		     "mov %[w1], %[t]; mov %[t], 4(%[slot])\n\t"
		     "mov %w[sel], %%es\n\t"
		     "mov %%es:0, %[t]; mov %[t], %[v1]\n\t"
		     "mov %[w2], %[t]; mov %[t], (%[slot])\n\t"
		     "mov %[w3], %[t]; mov %[t], 4(%[slot])\n\t"
		     "push %[sel]; pop %%es\n\t"
		     "mov %%es:0, %[t]; mov %[t], %[v2]\n\t"
		     "push %[kdata]; pop %%es"
		     : [t] "=&r"(tmp), [v0] "=m"(v[0]), [v1] "=m"(v[1]), [v2] "=m"(v[2])
		     : [sel] "r"(sel), [slot] "r"(slot), [w0] "m"(w[0]), [w1] "m"(w[1]),
		       [w2] "m"(w[2]), [w3] "m"(w[3]), [kdata] "i"(SEL_KDATA)
		     : "memory");
	int accessed = (slot[1] >> 8) & 1;

	slot[0] = (uint32_t)gdt_odd_desc(0, 1);
	slot[1] = (uint32_t)(gdt_odd_desc(0, 1) >> 32);
	if (!tap_ok(v[0] == z && v[1] == a,
		    "a reload of the loaded ES by MOV reads its rewritten descriptor"))
		kprintf("#   read 0x%x then 0x%x\n", v[0], v[1]);
	tap_ok(v[2] == b, "... and by POP");
	tap_ok(accessed, "... and sets the accessed bit the guest cleared");
}
#endif

/*
 * The pv build loads no LDT, reads no CR0/CR4 and keeps IF in the shared
 * page: its transparency checks are the checks of the ABI's answers (pv.c).
 */
void checks_cpu(void)
{
#ifdef TK_PV
	pv_checks();
#else
	check_tables();
#endif
	check_far_transfers();
	check_descriptor_queries();
#ifndef TK_PV
	check_flags();
	check_segment_reload();
#endif
	check_cpuid_tsc();
}
