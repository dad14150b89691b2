/*
 * A hostile multiboot guest for ring3's bt engine: each mode (the first word
 * of the command line) tries one way out of the sandbox — host system calls
 * through INT 0x80, SYSCALL and SYSENTER, a far jump into 64-bit mode,
 * writes into the top of the address space where the monitor lives, wild
 * port I/O — and reports on COM1 what the CPU did instead. With a second
 * word "user" the attack runs in ring 3 (which the bt engine runs directly,
 * untranslated); else in ring 0. Contained attacks end with status 0 through
 * port 0xf4; a successful jump into 64-bit mode never ends by itself.
 */
#include <stdint.h>

#define COM1 0x3f8
#define DEBUG_EXIT 0xf4

struct regs {
	uint32_t gs, fs, es, ds;
	uint32_t edi, esi, ebp, esp, ebx, edx, ecx, eax;
	uint32_t vector;
	uint32_t eip, cs, eflags;
	uint32_t user_esp, user_ss; /* only from ring 3 */
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

#define SYS_DONE 1 /* INT 0x80 from ring 3 with EAX = 1: the attack is over, EBX = status */

static int garbage_trap(struct regs *r);

void trap(struct regs *r)
{
	if ((r->cs & 3) == 3 && garbage_trap(r))
		return;
	seen_vector = r->vector;
	seen_eip = r->eip;
	seen_err = err_code;
	if (r->vector == 0x80) {
		if ((r->cs & 3) == 3 && r->eax == SYS_DONE)
			finish(r->ebx);
		return; /* back to the instruction after INT 0x80 */
	}
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

/* Our own GDT: ring-0 and ring-3 flat segments and a TSS, nothing at index 6 (0x33). */
static uint64_t gdt[6];
static struct {
	uint32_t link, esp0, ss0, pad[22];
	uint16_t trap, iomap;
} __attribute__((packed)) tss;
static uint8_t kstack[8192] __attribute__((aligned(16)));
static uint8_t ustack[8192] __attribute__((aligned(16)));

static uint64_t desc(uint32_t base, uint32_t limit, uint8_t access, uint8_t flags)
{
	return (limit & 0xffffull) | (uint64_t)(base & 0xffffff) << 16 | (uint64_t)access << 40 |
	       (uint64_t)((limit >> 16) & 0xf) << 48 | (uint64_t)flags << 52 |
	       (uint64_t)(base >> 24) << 56;
}

static void gdt_init(void)
{
	struct {
		uint16_t limit;
		uint32_t base;
	} __attribute__((packed)) d = { sizeof(gdt) - 1, (uint32_t)gdt };

	gdt[1] = desc(0, 0xfffff, 0x9b, 0xc);
	gdt[2] = desc(0, 0xfffff, 0x93, 0xc);
	gdt[3] = desc(0, 0xfffff, 0xfb, 0xc);
	gdt[4] = desc(0, 0xfffff, 0xf3, 0xc);
	gdt[5] = desc((uint32_t)&tss, sizeof(tss) - 1, 0x89, 0);
	tss.ss0 = 0x10;
	tss.esp0 = (uint32_t)(kstack + sizeof(kstack));
	tss.iomap = sizeof(tss);
	__asm__ volatile("lgdt %0\n\t"
			 "ljmp $0x08, $1f\n"
			 "1:\tmovw $0x10, %%ax\n\t"
			 "movw %%ax, %%ds\n\tmovw %%ax, %%es\n\tmovw %%ax, %%ss\n\t"
			 "movw %%ax, %%fs\n\tmovw %%ax, %%gs\n\t"
			 "movw $0x28, %%ax\n\tltr %%ax"
			 :
			 : "m"(d)
			 : "eax", "memory");
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
		idt[v].attr = v == 0x80 ? 0xee : 0x8e; /* ring 3 may INT 0x80 */
	}
	__asm__ volatile("lidt %0" : : "m"(d));
}

/* Run fn in ring 3 with IOPL 3 (it may talk to the UART); it ends with SYS_DONE. */
static __attribute__((noreturn)) void enter_user(uint32_t (*fn)(void))
{
	__asm__ volatile("pushl $0x23\n\t"
			 "pushl %1\n\t"
			 "pushl $0x3002\n\t" /* IOPL 3, IF 0: no device interrupts */
			 "pushl $0x1b\n\t"
			 "pushl %0\n\t"
			 "movw $0x23, %%ax\n\t"
			 "movw %%ax, %%ds\n\tmovw %%ax, %%es\n\t"
			 "iret"
			 :
			 : "r"(fn), "r"(ustack + sizeof(ustack))
			 : "eax", "memory");
	__builtin_unreachable();
}

static void memset_(void *d, int c, unsigned n)
{
	uint8_t *p = d;

	for (unsigned i = 0; i < n; i++)
		p[i] = (uint8_t)c;
}

static int memcmp_(const void *a, const void *b, unsigned n)
{
	const uint8_t *x = a, *y = b;

	for (unsigned i = 0; i < n; i++)
		if (x[i] != y[i])
			return 1;
	return 0;
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
static uint32_t att_int80(void)
{
	uint32_t eax = 252;

	seen_vector = 0xffffffff;
	__asm__ volatile("int $0x80" : "+a"(eax) : "b"(42) : "memory");
	return check(seen_vector == 0x80 && eax == 252,
		     "int 0x80 (exit_group(42) for a host) reached the guest's vector 0x80");
}

/* SYSENTER: #UD on this CPU (CPUID does not offer it). */
static uint32_t att_sysenter(void)
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

/*
 * SYSCALL with exit_group(42) in the registers: translated ring-0 code sees
 * the #UD this CPU raises; executed natively (ring 3) the host kernel is
 * asked, seccomp refuses, and the VM must stop.
 */
static uint32_t att_syscall(void)
{
	seen_vector = 0xffffffff;
	__asm__ volatile("movl $1f, resume_at\n\t"
			 "movl $252, %%eax\n\t"
			 "movl $42, %%ebx\n\t"
			 "syscall\n"
			 "1:"
			 :
			 :
			 : "eax", "ebx", "ecx", "edx", "memory");
	return check(seen_vector == 6, "syscall raised #UD in the guest");
}

/*
 * A far jump to selector 0x33, the host's 64-bit code segment. Our GDT has no
 * entry 6, so a CPU raises #GP(0x30); if it lands in 64-bit code instead, the
 * code there tries the host.
 */
static uint32_t far64(char *target)
{
	struct {
		uint32_t off;
		uint16_t sel;
	} __attribute__((packed)) p = { (uint32_t)target, 0x33 };

	puts_("hostile: far jump to selector 0x33\n");
	seen_vector = 0xffffffff;
	__asm__ volatile("movl $1f, resume_at\n\t"
			 "ljmp *%0\n"
			 "1:"
			 :
			 : "m"(p)
			 : "memory");
	return check(seen_vector == 13 && (seen_err & ~3u) == 0x30,
		     "ljmp to selector 0x33 raised the guest's #GP(0x30)");
}

static uint32_t att_far64_exit(void) { return far64(code64_exit); }
static uint32_t att_far64_write(void) { return far64(code64_write); }
static uint32_t att_far64_creat(void) { return far64(code64_creat); }
static uint32_t att_far64_poke(void) { return far64(code64_poke); }
static uint32_t att_far64_loop(void) { return far64(code64_loop); }

/* Writes at the top of the 4 GiB, where the monitor's runtime lives: the guest sees its own bus. */
static uint32_t att_wrtop(void)
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

	/* 0x2b is the host's flat data segment; in our GDT it is the TSS: #GP(0x28) */
	seen_vector = 0xffffffff;
	__asm__ volatile("movl $1f, resume_at\n\t"
			 "movw %%ds, %%dx\n\t"
			 "movw $0x2b, %%ax\n\t"
			 "movw %%ax, %%ds\n\t"
			 "movl $0xdeadbeef, 0xffc00000\n"
			 "1:\tmovw %%dx, %%ds"
			 :
			 :
			 : "eax", "edx", "memory");
	fails += check(seen_vector == 13 && (seen_err & ~3u) == 0x28,
		       "loading the host's selector 0x2b raised the guest's #GP(0x28)");
	return fails;
}

/* Every port but the debug exit, and long string I/O. */
static uint32_t att_ports(void)
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

/*
 * Not an attack: the guest's SSE registers must survive everything the
 * monitor does in between (INT 0x80 into the kernel and IRET back, both of
 * which the bt engine handles in its runtime).
 */
static uint32_t att_sse(void)
{
	static const uint32_t pat[4] __attribute__((aligned(16))) = { 0x01234567, 0x89abcdef,
								       0xdeadbeef, 0x5a5aa5a5 };
	uint32_t out[4] __attribute__((aligned(16)));
	uint32_t bad = 0;

	__asm__ volatile("movups %0, %%xmm0\n\tmovups %0, %%xmm7" : : "m"(pat));
	for (int i = 0; i < 200; i++) {
		uint32_t eax = 252;

		__asm__ volatile("int $0x80" : "+a"(eax) : "b"(0) : "memory");
	}
	__asm__ volatile("movups %%xmm7, %0" : "=m"(out));
	bad |= memcmp_(out, pat, 16);
	__asm__ volatile("movups %%xmm0, %0" : "=m"(out));
	bad |= memcmp_(out, pat, 16);
	return check(!bad, "xmm0 and xmm7 kept their values across 200 INT 0x80 round trips");
}

/*
 * Garbage: random bytes run in ring 3, chunk after chunk, with paging on (the
 * kernel's pages supervisor-only) and the 8254 ticking so that a chunk that
 * loops is cut off. Whatever a chunk raises ends it. The bytes never contain
 * SYSCALL (0f 05) or a direct far transfer to 0x33: those would stop the VM,
 * which bt-hostile.sh tests on its own.
 */
#define G_USER 0x00400000u  /* 4 MiB user page */
#define G_CHUNK 64u
#define G_CHUNKS 3000u
static uint32_t pd[1024] __attribute__((aligned(4096)));
static uint32_t g_seed = 0x12345678, g_chunk, g_ticks, g_chunk_ticks, g_vectors[257];
static volatile uint32_t g_done;

static uint32_t rnd(void)
{
	g_seed ^= g_seed << 13;
	g_seed ^= g_seed >> 17;
	g_seed ^= g_seed << 5;
	return g_seed;
}

static int g_bad(const uint8_t *b, unsigned n)
{
	for (unsigned i = 0; i + 1 < n; i++)
		if (b[i] == 0x0f && (b[i + 1] == 0x05 || b[i + 1] == 0x07))
			return 1; /* SYSCALL, SYSRET */
	for (unsigned i = 0; i + 6 < n; i++)
		if ((b[i] == 0xea || b[i] == 0x9a) && (b[i + 5] & 0xfc) == 0x30 && b[i + 6] == 0)
			return 1; /* ljmp/lcall $0x30-0x33 */
	return 0;
}

/* The next chunk, in the frame the trap will return through. */
static void g_next(struct regs *r)
{
	uint8_t *code = (uint8_t *)(G_USER + (g_chunk % 256) * 256);

	if (++g_chunk >= G_CHUNKS) {
		g_done = 1;
		r->eip = (uint32_t)code; /* unused: trap() ends the run below */
		return;
	}
	do {
		for (unsigned i = 0; i < G_CHUNK; i++)
			code[i] = (uint8_t)rnd();
	} while (g_bad(code, G_CHUNK));
	r->eip = (uint32_t)code;
	r->cs = 0x1b;
	r->eflags = 0x202;
	r->user_esp = G_USER + 0x3ff000 - (rnd() & 0xff0);
	r->user_ss = 0x23;
	r->ds = r->es = r->fs = r->gs = 0x23;
	r->eax = rnd(), r->ebx = rnd(), r->ecx = rnd(), r->edx = rnd();
	r->esi = G_USER + (rnd() & 0x3ffff0), r->edi = G_USER + (rnd() & 0x3ffff0);
	r->ebp = r->user_esp;
	g_chunk_ticks = g_ticks;
}

static int g_active;

static int garbage_trap(struct regs *r)
{
	if (!g_active)
		return 0;
	g_vectors[r->vector < 256 ? r->vector : 256]++;
	if (r->vector == 0x20) { /* the 8254 */
		g_ticks++;
		outb(0x20, 0x20);
		if (g_ticks - g_chunk_ticks < 2)
			return 1;
	}
	g_next(r);
	if (g_done) {
		g_active = 0;
		puts_("ok: ");
		puthex(G_CHUNKS);
		puts_(" chunks of random bytes ran in ring 3; vectors #GP ");
		puthex(g_vectors[13]);
		puts_(" #PF ");
		puthex(g_vectors[14]);
		puts_(" #UD ");
		puthex(g_vectors[6]);
		puts_(" timer ");
		puthex(g_vectors[0x20]);
		puts_("\n");
		finish(0);
	}
	return 1;
}

static uint32_t att_garbage(void)
{
	struct regs r;

	/* paging: 0-4 MiB kernel (supervisor), 4-8 MiB user, 4 MiB pages */
	pd[0] = 0x00000000u | 0x83;
	pd[1] = G_USER | 0x87;
	__asm__ volatile("movl %%cr4, %%eax\n\torl $0x10, %%eax\n\tmovl %%eax, %%cr4\n\t"
			 "movl %0, %%cr3\n\t"
			 "movl %%cr0, %%eax\n\torl $0x80000000, %%eax\n\tmovl %%eax, %%cr0"
			 :
			 : "r"(pd)
			 : "eax", "memory");
	/* the 8259 at 0x20, only IRQ 0; the 8254 at 100 Hz */
	static const uint8_t icw[][2] = { { 0x20, 0x11 }, { 0x21, 0x20 }, { 0x21, 0x04 },
					  { 0x21, 0x01 }, { 0xa0, 0x11 }, { 0xa1, 0x28 },
					  { 0xa1, 0x02 }, { 0xa1, 0x01 }, { 0x21, 0xfe },
					  { 0xa1, 0xff }, { 0x43, 0x34 }, { 0x40, 0x9c },
					  { 0x40, 0x2e } };
	for (unsigned i = 0; i < sizeof(icw) / sizeof(icw[0]); i++)
		outb(icw[i][0], icw[i][1]);
	for (int v = 0; v < 256; v++)
		idt[v].attr = (v == 0x80 || v == 3 || v == 4) ? 0xee : 0x8e;
	g_active = 1;
	g_chunk = 0;
	memset_(&r, 0, sizeof(r));
	g_next(&r);
	/* enter the first chunk as trap_common's IRET would */
	__asm__ volatile("pushl $0x23\n\tpushl %1\n\tpushl $0x202\n\tpushl $0x1b\n\tpushl %0\n\t"
			 "movw $0x23, %%ax\n\tmovw %%ax, %%ds\n\tmovw %%ax, %%es\n\t"
			 "movw %%ax, %%fs\n\tmovw %%ax, %%gs\n\tiret"
			 :
			 : "r"(r.eip), "r"(r.user_esp)
			 : "eax", "memory");
	return check(0, "garbage came back");
}

static uint32_t att_hello(void)
{
	puts_("hello\n");
	return 0;
}

/* The attack in ring 3: report its status to the kernel, which ends the run. */
static uint32_t (*user_attack)(void);
static uint32_t user_main(void)
{
	uint32_t status = user_attack();

	__asm__ volatile("int $0x80" : : "a"(SYS_DONE), "b"(status) : "memory");
	return check(0, "the kernel ended the run");
}

static const struct {
	const char *name;
	uint32_t (*fn)(void);
} attacks[] = {
	{ "hello", att_hello },		  { "int80", att_int80 },
	{ "sysenter", att_sysenter },	  { "syscall", att_syscall },
	{ "far64-exit", att_far64_exit }, { "far64-write", att_far64_write },
	{ "far64-creat", att_far64_creat }, { "far64-poke", att_far64_poke },
	{ "far64-loop", att_far64_loop }, { "wrtop", att_wrtop },
	{ "ports", att_ports },	  { "sse", att_sse },
	{ "garbage", att_garbage },
};

void hostile_main(uint32_t magic, const uint32_t *mbi)
{
	const char *cmd = (magic == 0x2badb002 && (mbi[0] & 4)) ? (const char *)mbi[4] : "";
	const char *arg = cmd;

	gdt_init();
	idt_init();
	/* CR4.OSFXSR: SSE instructions may run (the sse mode uses them) */
	__asm__ volatile("movl %%cr4, %%eax\n\torl $0x200, %%eax\n\tmovl %%eax, %%cr4" : : : "eax");
	puts_("hostile: mode '");
	puts_(cmd);
	puts_("'\n");
	while (*arg && *arg != ' ')
		arg++;
	while (*arg == ' ')
		arg++;
	for (const char *p = arg; *p >= '0' && *p <= '9'; p++) /* a seed for garbage */
		g_seed = g_seed * 10 + (uint32_t)(*p - '0');
	for (unsigned i = 0; i < sizeof(attacks) / sizeof(attacks[0]); i++) {
		if (!streq_word(cmd, attacks[i].name))
			continue;
		if (streq_word(arg, "user")) {
			user_attack = attacks[i].fn;
			enter_user(user_main);
		}
		finish(attacks[i].fn());
	}
	puts_("hostile: unknown mode\n");
	finish(2);
}
