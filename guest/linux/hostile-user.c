/*
 * hostile-user MODE: a Linux user process (i386, no libc) that executes one
 * instruction a process may not, picked by MODE's first letter, then exits 0
 * if it survived (or, for 'f', hands the kernel a bad pointer). tests/guest/bt-linux-hostile.sh runs it in the i386 guest
 * under bt: the guest kernel must see the fault a CPU raises in ring 3 and
 * kill the process with the signal Linux gives (Intel SDM vol. 3 §6.15;
 * Linux arch/x86/kernel/traps.c), and the VM must carry on.
 */
void _start(void);

__attribute__((naked, noreturn)) void _start(void)
{
	__asm__ volatile(
		"mov 8(%esp), %eax\n\t" /* argv[1] */
		"test %eax, %eax; jz 9f\n\t"
		"movzbl (%eax), %eax\n\t"
		"cmp $'c', %al; jne 1f; cli\n"                          /* #GP: IOPL 0 */
		"1: cmp $'h', %al; jne 1f; hlt\n"                       /* #GP: CPL 3 */
		"1: cmp $'o', %al; jne 1f; outb %al, $0x80\n"           /* #GP: no I/O bitmap */
		"1: cmp $'i', %al; jne 1f; inb $0x71, %al\n"            /* #GP */
		"1: cmp $'r', %al; jne 1f; mov %cr3, %eax\n"            /* #GP */
		"1: cmp $'w', %al; jne 1f; xor %eax, %eax; mov %eax, %cr0\n" /* #GP */
		"1: cmp $'m', %al; jne 1f; xor %ecx, %ecx; rdmsr\n"     /* #GP */
		"1: cmp $'g', %al; jne 1f; lgdt (%esp)\n"               /* #GP */
		"1: cmp $'v', %al; jne 1f; invlpg (%esp)\n"             /* #GP */
		"1: cmp $'n', %al; jne 1f; int $0x81\n"                 /* #GP: gate DPL 0 */
		"1: cmp $'p', %al; jne 1f; movl $0xc0000000, %eax; movl (%eax), %eax\n" /* #PF: kernel page */
		"1: cmp $'z', %al; jne 1f; xor %eax, %eax; movl (%eax), %eax\n" /* #PF: page 0 */
		/* write(1, 0x1000, 4): the kernel's copy from user space faults on an
		 * unmapped page and its exception table turns that into -EFAULT;
		 * the process exits with 14 */
		"1: cmp $'f', %al; jne 1f; mov $4, %eax; mov $1, %ebx; mov $0x1000, %ecx\n\t"
		"mov $4, %edx; int $0x80; neg %eax; mov %eax, %ebx; mov $1, %eax; int $0x80\n"
		"1: cmp $'u', %al; jne 1f; ud2\n"                       /* #UD */
		"1: cmp $'3', %al; jne 1f; int3\n"                      /* #BP: SIGTRAP */
		"1: cmp $'t', %al; jne 1f; ljmp $0x80, $0\n"            /* #GP: Linux's TSS, DPL 0 */
		"1: cmp $'s', %al; jne 1f; syscall\n"                   /* not in this CPUID */
		"1: cmp $'j', %al; jne 1f; ljmp $0x33, $0\n"            /* GDT entry 6, TLS */
		"1:\n"
		"9: mov $1, %eax; xor %ebx, %ebx; int $0x80\n"          /* exit(0) */
		"hlt");
}
