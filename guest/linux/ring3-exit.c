/*
 * ring3-exit [STATUS]: end the VM with STATUS (default 0) by writing it to
 * ring3's debug-exit port 0xf4 (a 32-bit OUT). No libc: raw system calls, so
 * one source builds for the amd64 and i386 guests alike. If the port does
 * nothing (another monitor), fall back to powering off.
 */
#if defined(__x86_64__)
#define SYS_IOPL 172
#define SYS_REBOOT 169
#define SYS_EXIT 60
static long sys3(long n, long a, long b, long c)
{
	long r;

	__asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
	return r;
}
#else
#define SYS_IOPL 110
#define SYS_REBOOT 88
#define SYS_EXIT 1
static long sys3(long n, long a, long b, long c)
{
	long r;

	__asm__ volatile("int $0x80" : "=a"(r) : "a"(n), "b"(a), "c"(b), "d"(c) : "memory");
	return r;
}
#endif

#define DEBUG_EXIT_PORT 0xf4
#define LINUX_REBOOT_MAGIC1 0xfee1dead
#define LINUX_REBOOT_MAGIC2 672274793
#define LINUX_REBOOT_CMD_POWER_OFF 0x4321fedc

void ring3_exit_main(long *sp);

void ring3_exit_main(long *sp)
{
	long argc = sp[0];
	char **argv = (char **)(sp + 1);
	unsigned status = 0;

	if (argc > 1)
		for (const char *p = argv[1]; *p >= '0' && *p <= '9'; p++)
			status = status * 10 + (unsigned)(*p - '0');
	if (sys3(SYS_IOPL, 3, 0, 0) == 0)
		__asm__ volatile("outl %0, %w1" : : "a"(status), "Nd"(DEBUG_EXIT_PORT));
	sys3(SYS_REBOOT, (long)LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2,
	     (long)LINUX_REBOOT_CMD_POWER_OFF);
	sys3(SYS_EXIT, (long)status, 0, 0);
	for (;;)
		;
}

#if defined(__x86_64__)
__asm__(".globl _start\n_start:\n\tmov %rsp, %rdi\n\tand $-16, %rsp\n\tcall ring3_exit_main\n");
#else
__asm__(".globl _start\n_start:\n\tmov %esp, %eax\n\tand $-16, %esp\n\tsub $12, %esp\n\tpush %eax\n"
	"\tcall ring3_exit_main\n");
#endif
