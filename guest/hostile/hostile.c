/*
 * A hostile multiboot guest for ring3's bt engine: each mode (the first word
 * of the command line) tries one way out of the sandbox — host system calls
 * through INT 0x80, SYSCALL and SYSENTER, a far jump into 64-bit mode,
 * writes into the top of the address space where the monitor lives, wild
 * port I/O — and reports on COM1 what the CPU did instead. Modes that are
 * contained end with status 0 through port 0xf4; the 64-bit ones never end.
 */
#include <stdint.h>

#define COM1 0x3f8
#define DEBUG_EXIT 0xf4

struct regs {
	uint32_t edi, esi, ebp, esp, ebx, edx, ecx, eax;
	uint32_t vector;
	uint32_t eip, cs, eflags;
};

extern const uint32_t vec_table[256];
extern uint32_t err_code;
void hostile_main(uint32_t magic, const uint32_t *mbi);
void trap(struct regs *r);
extern char code64_exit[], code64_write[], code64_loop[], code64_poke[], code64_creat[];

static struct {
	uint16_t lo, sel;
	uint8_t zero, attr;
	uint16_t hi;
} __attribute__((packed)) idt[256];

static volatile uint32_t seen_vector = 0xffffffff, seen_eip, seen_err, resume_at;

static inline void outb(uint16_t port, uint8_t v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint8_t inb(uint16_t port)
{
	uint8_t v;
	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static void putc_(char c)
{
	for (int i = 0; i < 100000 && !(inb(COM1 + 5) & 0x20); i++)
		;
	outb(COM1, (uint8_t)c);
}

static void puts_(const char *s)
{
	while (*s)
		putc_(*s++);
}

static void puthex(uint32_t v)
{
	puts_("0x");
	for (int i = 28; i >= 0; i -= 4)
		putc_("0123456789abcdef"[(v >> i) & 15]);
}

static __attribute__((noreturn)) void finish(uint32_t status)
{
	for (;;)
		outb(DEBUG_EXIT, (uint8_t)status);
}

void trap(struct regs *r)
{
	seen_vector = r->vector;
	seen_eip = r->eip;
	seen_err = err_code;
	if (r->vector == 0x80)
		return; /* a "system call": back to the instruction after INT 0x80 */
	if (resume_at) {
		r->eip = resume_at;
		resume_at = 0;
		return;
	}
	puts_("hostile: unexpected exception ");
	puthex(r->vector);
	puts_(" at ");
	puthex(r->eip);
	puts_("\n");
	finish(99);
}

static void idt_init(void)
{
	struct {
		uint16_t limit;
		uint32_t base;
	} __attribute__((packed)) d = { sizeof(idt) - 1, (uint32_t)idt };

	for (int v = 0; v < 256; v++) {
		idt[v].lo = vec_table[v] & 0xffff;
		idt[v].hi = vec_table[v] >> 16;
		idt[v].sel = 0x08;
		idt[v].attr = 0x8e;
	}
	__asm__ volatile("lidt %0" : : "m"(d));
}

static int streq_word(const char *s, const char *w)
{
	while (*w && *s == *w)
		s++, w++;
	return !*w && (*s == 0 || *s == ' ');
}

static int check(int ok, const char *what)
{
	puts_(ok ? "ok: " : "FAIL: ");
	puts_(what);
	puts_("\n");
	return ok ? 0 : 1;
}

/* INT 0x80 with Linux's exit_group(42) in the registers: the guest's vector 0x80 must see it. */
static uint32_t mode_int80(void)
{
	uint32_t eax = 252, after;

	resume_at = 0; /* vector 0x80 returns to the next instruction by itself */
	seen_vector = 0xffffffff;
	__asm__ volatile("int $0x80" : "+a"(eax) : "b"(42) : "memory");
	after = seen_vector;
	return check(after == 0x80 && eax == 252,
		     "int 0x80 (exit_group(42) for a host) reached the guest's vector 0x80");
}

/* SYSENTER: #UD for this CPU (CPUID does not offer it; the host CPU faults it in compat mode). */
static uint32_t mode_sysenter(void)
{
	seen_vector = 0xffffffff;
	__asm__ volatile("movl $1f, resume_at\n\t"
			 "sysenter\n"
			 "1:"
			 :
			 :
			 : "eax", "ecx", "edx", "memory");
	return check(seen_vector == 6, "sysenter raised #UD in the guest");
}

/* SYSCALL in compatibility mode with exit_group(42): the host must not run it. */
static uint32_t mode_syscall(void)
{
	__asm__ volatile("movl $252, %%eax\n\t"
			 "movl $42, %%ebx\n\t"
			 "syscall"
			 :
			 :
			 : "eax", "ebx", "ecx", "edx", "memory");
	return check(0, "syscall came back");
}

/* Writes at the top of the 4 GiB, where the monitor's runtime lives: the guest sees its own bus. */
static uint32_t mode_wrtop(void)
{
	volatile uint32_t *top = (volatile uint32_t *)0xffc00000u, *last = (volatile uint32_t *)0xfffff000u;
	uint32_t fails = 0, a, b;

	*top = 0xdeadbeef;
	*last = 0xdeadbeef;
	a = *top;
	b = *last;
	fails += check(a == 0xffffffff && b == 0xffffffff,
		       "writes to 0xffc00000 and 0xfffff000 reached the guest's (empty) bus");
	if (a != 0xffffffff || b != 0xffffffff) {
		puthex(a);
		puts_(" ");
		puthex(b);
		puts_("\n");
	}

	/* 0x2b is the host's flat data segment; our GDT has no entry 5: #GP(0x28) */
	seen_vector = 0xffffffff;
	__asm__ volatile("movl $1f, resume_at\n\t"
			 "movw $0x2b, %%ax\n\t"
			 "movw %%ax, %%ds\n\t"
			 "movl $0xdeadbeef, 0xffc00000\n"
			 "1:\tmovw $0x10, %%ax\n\t"
			 "movw %%ax, %%ds"
			 :
			 :
			 : "eax", "memory");
	fails += check(seen_vector == 13 && (seen_err & ~3u) == 0x28,
		       "loading the host's selector 0x2b raised the guest's #GP(0x28)");
	return fails;
}

/* Every port but the debug exit, and long string I/O. */
static uint32_t mode_ports(void)
{
	static uint8_t buf[65536];

	for (uint32_t p = 0; p < 0x10000; p++) {
		if (p >= DEBUG_EXIT && p < DEBUG_EXIT + 4)
			continue;
		(void)inb((uint16_t)p);
		outb((uint16_t)p, 0);
	}
	__asm__ volatile("cld; rep outsb" : : "S"(buf), "c"(sizeof(buf)), "d"(0x80) : "memory");
	__asm__ volatile("cld; rep insb" : : "D"(buf), "c"(sizeof(buf)), "d"(0x3f8) : "memory");
	/* into memory that is not RAM: the top of the 4 GiB */
	__asm__ volatile("cld; rep insb" : : "D"(0xfffff000u), "c"(4096), "d"(0x80) : "memory");
	return check(1, "every port and 64 KiB of string I/O later, the guest still runs");
}

static __attribute__((noreturn)) void far64(char *target)
{
	struct {
		uint32_t off;
		uint16_t sel;
	} __attribute__((packed)) p = { (uint32_t)target, 0x33 };

	puts_("hostile: far jump to 64-bit mode\n");
	__asm__ volatile("ljmp *%0" : : "m"(p));
	__builtin_unreachable();
}

void hostile_main(uint32_t magic, const uint32_t *mbi)
{
	const char *cmd = (magic == 0x2badb002 && (mbi[0] & 4)) ? (const char *)mbi[4] : "";

	idt_init();
	puts_("hostile: mode '");
	puts_(cmd);
	puts_("'\n");
	if (streq_word(cmd, "hello")) {
		puts_("hello\n");
		finish(0);
	}
	if (streq_word(cmd, "int80"))
		finish(mode_int80());
	if (streq_word(cmd, "syscall"))
		finish(mode_syscall());
	if (streq_word(cmd, "sysenter"))
		finish(mode_sysenter());
	if (streq_word(cmd, "wrtop"))
		finish(mode_wrtop());
	if (streq_word(cmd, "ports"))
		finish(mode_ports());
	if (streq_word(cmd, "far64-exit"))
		far64(code64_exit);
	if (streq_word(cmd, "far64-write"))
		far64(code64_write);
	if (streq_word(cmd, "far64-loop"))
		far64(code64_loop);
	if (streq_word(cmd, "far64-poke"))
		far64(code64_poke);
	if (streq_word(cmd, "far64-creat"))
		far64(code64_creat);
	puts_("hostile: unknown mode\n");
	finish(2);
}
