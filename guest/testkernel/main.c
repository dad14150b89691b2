/*
 * The test kernel's boot order, in straight-line calls. It checks that the
 * machine behaves as Intel SDM vol. 3 says a PC does, printing TAP on COM1,
 * or with bench=... on the multiboot command line runs benchmarks instead.
 * Either way it ends by writing its failure count to port 0xf4.
 */
#include "kernel.h"
#include "multiboot.h"

static struct boot_info boot_info;

/* Copy what we need out of the loader's info before we change the memory map. */
static void save_boot_info(uint32_t magic, const struct multiboot_info *mbi)
{
	boot_info.magic = magic;
	if (magic != MB_BOOT_MAGIC)
		return;
	boot_info.flags = mbi->flags;
	boot_info.mem_lower_kb = mbi->mem_lower;
	boot_info.mem_upper_kb = mbi->mem_upper;
	if (mbi->flags & MB_INFO_CMDLINE) {
		const char *s = (const char *)mbi->cmdline;
		size_t i;
		for (i = 0; s[i] && i < sizeof(boot_info.cmdline) - 1; i++)
			boot_info.cmdline[i] = s[i];
		boot_info.cmdline[i] = 0;
	}
}

void kmain(uint32_t magic, const struct multiboot_info *mbi);

void kmain(uint32_t magic, const struct multiboot_info *mbi)
{
	save_boot_info(magic, mbi);
	serial_init();			  /* COM1, polled: from here on we can talk */
	kputs("\n# ring3 test kernel\n"); /* \n: a BIOS may leave a line open */
#ifdef TK_PV
	if (pv_init()) /* CPUID 0x40000100 and the shared page, before any other call */
		tap_bail("no ring3 hypercall ABI: the pv build runs only under ring3");
	kputs("# paravirtual build: privileged operations are ring3 hypercalls\n");
#endif
	gdt_init();			  /* our GDT, LDT and TSS; reload every segment register */
	idt_init();			  /* gates for exceptions, IRQs, int 0x80 and 0x81 */
	pic_init();			  /* 8259s remapped to 0x20/0x28, all lines masked */
	pit_init(HZ);			  /* 8254 channel 0 at HZ, IRQ 0 unmasked */
	paging_init();			  /* PSE, our page directory, CR0.PG and CR0.WP */
	task_init();			  /* the boot thread becomes task 0, the idle task */
	sti();				  /* the timer starts ticking */
	tsc_calibrate();		  /* TSC rate against 8254 channel 2 */

#ifdef TK_PV
	/* pvfuzz=N[:seed]: random calls first; then every check must still pass */
	if (pv_fuzz_wanted(boot_info.cmdline) && pv_fuzz(boot_info.cmdline))
		debug_exit(0x7e);
#endif
	if (bench_wanted(boot_info.cmdline))
		debug_exit(bench_run(boot_info.cmdline));

	checks_boot(&boot_info); /* the multiboot hand-off */
	checks_cpu();		 /* descriptor tables, selectors, flags, CPUID, TSC */
	checks_trap();		 /* exceptions in ring 0, timer, HLT, POPF and IF */
	checks_dev();		 /* 16550, 8259, 8254 */
	checks_mem();		 /* page faults, WP, demand paging, TLB, A/D bits */
	checks_smc();		 /* self-modifying code */
	checks_user();		 /* ring 3 tasks: syscalls, protection, preemption */
	tap_plan();
	debug_exit(tap_failures());
}
