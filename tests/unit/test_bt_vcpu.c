/*
 * The bt engine's virtual CPU on a synthetic guest (paging off): interrupt and
 * exception delivery through the guest IDT with the TSS stack switch, IRET
 * back to ring 3, gate DPL checks, double faults, segment-register loads,
 * far CALL/RET, and the sensitive instructions emulated for translator
 * callouts (decoded by Zydis from guest memory): LSL, LAR, VERR, VERW, SGDT,
 * SIDT, STR, SMSW, CPUID; the virtual CPUID and MSRs. Intel SDM vol. 3 ch. 5-7.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cpu/bt/runtime.h"
#include "tap.h"

#define RAM_SIZE (4u << 20)
#define GDT 0x3000u
#define IDT 0x4000u
#define TSS 0x5000u
#define KSTACK 0x9000u
#define USTACK 0x8000u
#define UCODE 0x400000u
#define KCODE 0x100000u

static struct bt_shared sh;
static ucontext_t uc;

static uint64_t desc(uint32_t base, uint32_t limit, uint8_t access, uint8_t flags)
{
	return (limit & 0xffffull) | (uint64_t)(base & 0xffffff) << 16 | (uint64_t)access << 40 |
	       (uint64_t)((limit >> 16) & 0xf) << 48 | (uint64_t)flags << 52 |
	       (uint64_t)(base >> 24) << 56;
}

static uint64_t gate(uint16_t sel, uint32_t off, uint8_t attr)
{
	return (off & 0xffff) | (uint64_t)sel << 16 | (uint64_t)attr << 40 |
	       (uint64_t)(off >> 16) << 48;
}

static uint64_t *q(uint32_t pa)
{
	return (uint64_t *)(rt.ram + pa);
}

static uint32_t *d32(uint32_t pa)
{
	return (uint32_t *)(rt.ram + pa);
}

static void load(int sreg, uint16_t sel)
{
	struct bt_seg s;

	seg_from_desc(&s, sel, *q(GDT + (sel & ~7u)));
	seg_set(sreg, &s);
}

/* Back in ring 3 at UCODE with IF=1, on the user stack. */
static void user_mode(void)
{
	rt.cpu->cpl = 3;
	load(BT_CS, 0x1b);
	load(BT_SS, 0x23);
	load(BT_DS, 0x23);
	set_eip(UCODE);
	set_gr(BT_ESP, USTACK);
	uc.uc_mcontext.gregs[REG_EFL] = 0x202;
	rt.cpu->eflags = 0x202;
}

static void kernel_mode(void)
{
	rt.cpu->cpl = 0;
	load(BT_CS, 0x08);
	load(BT_SS, 0x10);
	set_eip(KCODE);
	set_gr(BT_ESP, KSTACK - 0x100);
	rt.cpu->eflags = 0x2;
}

static void setup(void)
{
	int fd = memfd_create("test-bt-vcpu", 0);

	if (fd < 0 || ftruncate(fd, RAM_SIZE))
		exit(1);
	rt.sh = &sh;
	rt.cpu = &sh.vcpu;
	rt.st = &sh.stats;
	rt.memfd = fd;
	rt.ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	rt.ram_size = RAM_SIZE;
	rt.uc = &uc;
	rt.cpu->cr0 = CR0_PE | CR0_ET;
	emu_init();

	*q(GDT + 0x08) = desc(0, 0xfffff, 0x9b, 0xc);	  /* kernel code */
	*q(GDT + 0x10) = desc(0, 0xfffff, 0x93, 0xc);	  /* kernel data */
	*q(GDT + 0x18) = desc(0, 0xfffff, 0xfb, 0xc);	  /* user code */
	*q(GDT + 0x20) = desc(0, 0xfffff, 0xf3, 0xc);	  /* user data */
	*q(GDT + 0x28) = desc(TSS, 0x67, 0x89, 0);	  /* TSS */
	*q(GDT + 0x30) = desc(0, 0xffff, 0x13, 0x4);	  /* data, DPL 0, not present */
	*q(GDT + 0x38) = desc(0x1000, 0x12345, 0x93, 0x4); /* byte-granular limit */
	*q(GDT + 0x40) = desc(0, 0xfffff, 0x99, 0xc);	  /* execute-only code */
	rt.cpu->gdt_base = GDT;
	rt.cpu->gdt_limit = 0x47;
	for (int v = 0; v < 32; v++)
		*q(IDT + v * 8) = gate(0x08, 0x1000 + v * 0x10, 0x8e);
	*q(IDT + 0x80 * 8) = gate(0x08, 0x2000, 0xee); /* DPL 3 */
	*q(IDT + 0x81 * 8) = gate(0x08, 0x2100, 0x8e); /* DPL 0 */
	rt.cpu->idt_base = IDT;
	rt.cpu->idt_limit = 0x81 * 8 + 7;
	d32(TSS)[1] = KSTACK; /* ESP0 */
	d32(TSS)[2] = 0x10;   /* SS0 */
	seg_from_desc(&rt.cpu->tr, 0x28, *q(GDT + 0x28) | (2ull << 40)); /* busy */
	seg_init();
}

static void test_delivery(void)
{
	struct bt_fault f;
	uint32_t *frame;

	user_mode();
	set_eip(UCODE + 2);
	vcpu_interrupt(0x80, true);
	frame = d32(KSTACK - 20);
	ok(rt.cpu->cpl == 0 && rt.cpu->seg[BT_CS].sel == 0x08 && g_eip() == 0x2000,
	   "INT 0x80 from ring 3 enters its DPL-3 gate's handler in ring 0");
	ok(rt.cpu->seg[BT_SS].sel == 0x10 && gr(BT_ESP) == KSTACK - 20,
	   "on the TSS's SS0:ESP0 stack");
	ok(frame[0] == UCODE + 2 && frame[1] == 0x1b && (frame[2] & FL_IF) && frame[3] == USTACK &&
		   frame[4] == 0x23,
	   "frame: EIP, CS, EFLAGS, ESP, SS of ring 3");
	ok(!(vcpu_eflags() & FL_IF), "an interrupt gate clears IF");

	f.vec = -1;
	ok(vcpu_iret(4, &f) == 0 && rt.cpu->cpl == 3 && g_eip() == UCODE + 2 &&
		   rt.cpu->seg[BT_SS].sel == 0x23 && gr(BT_ESP) == USTACK && (vcpu_eflags() & FL_IF),
	   "IRET returns to ring 3 with its stack and IF");

	user_mode();
	vcpu_interrupt(0x81, true);
	ok(g_eip() == 0x1000 + 13 * 0x10 && *d32(KSTACK - 24) == 0x81 * 8 + 2,
	   "INT to a DPL-0 gate from ring 3: #GP with error code 0x40a");

	kernel_mode();
	vcpu_interrupt(0x90, true);
	ok(g_eip() == 0x1000 + 13 * 0x10 && *d32(KSTACK - 0x100 - 16) == 0x90 * 8 + 2,
	   "INT past the IDT limit: #GP(0x482) on the same stack (no ring change)");

	kernel_mode();
	*q(IDT + 13 * 8) &= ~(1ull << 47); /* #GP's gate not present */
	vcpu_raise(EXC_GP, true, 0);
	ok(g_eip() == 0x1000 + 8 * 0x10, "a #GP whose gate is not present: #NP, then #DF");
	*q(IDT + 13 * 8) |= 1ull << 47;
}

static void test_segments(void)
{
	struct bt_fault f = { .vec = -1 };

	kernel_mode();
	ok(seg_load(BT_DS, 0x30, &f) < 0 && f.vec == EXC_NP && f.err == 0x30,
	   "loading a not-present data segment: #NP(0x30)");
	ok(seg_load(BT_SS, 0x23, &f) < 0 && f.vec == EXC_GP && f.err == 0x20,
	   "SS with RPL 3 at CPL 0: #GP(0x20)");
	ok(seg_load(BT_DS, 0x4b, &f) < 0 && f.vec == EXC_GP, "past the GDT limit: #GP");
	ok(seg_load(BT_DS, 0, &f) == 0 && rt.cpu->seg[BT_DS].sel == 0 && rt.real[BT_DS] == 0,
	   "DS may be null");
	ok(seg_load(BT_SS, 0, &f) < 0 && f.vec == EXC_GP, "SS may not");
	ok(seg_load(BT_DS, 0x38, &f) == 0 && rt.cpu->seg[BT_DS].limit == 0x12345 &&
		   rt.cpu->seg[BT_DS].base == 0x1000 && (rt.real[BT_DS] & 7) == 7,
	   "a loaded segment keeps its descriptor, and runs with an LDT mirror (RPL 3)");
	ok(*q(GDT + 0x38) >> 40 & 1, "the load set the accessed bit in the guest's GDT");

	/* the key translated code compares a reload with (translate.h BT_FASTSEG_*) */
	uint32_t key[4];
	uint64_t d = *q(GDT + 0x38);

	seg_fast_key(BT_DS, key);
	ok(key[0] == -(uint32_t)0x38 && key[1] == GDT + 0x38 && key[2] == -(uint32_t)d &&
		   key[3] == -(uint32_t)(d >> 32),
	   "a loaded DS: its reload is skipped while the GDT holds the descriptor loaded");
	*q(GDT + 0x38) &= ~(1ull << 40);
	seg_fast_key(BT_DS, key);
	ok(key[3] != -(uint32_t)(*q(GDT + 0x38) >> 32),
	   "... not once the guest cleared the accessed bit (a load must set it)");
	*q(GDT + 0x38) |= 1ull << 40;
	seg_fast_key(BT_SS, key);
	ok(key[0] == 0x80000000u, "SS never (its load shadows interrupts)");
	rt.cpu->seg[BT_ES] = rt.cpu->seg[BT_DS];
	rt.cpu->seg[BT_ES].attr |= BT_SEG_G; /* limit 0x12345 cannot come from G=1 */
	seg_fast_key(BT_ES, key);
	ok(key[0] == 0x80000000u, "nor a register no descriptor load could have given");
	rt.cpu->seg[BT_ES] = rt.cpu->seg[BT_DS];
	rt.cpu->seg[BT_ES].attr &= (uint16_t)~1u;
	seg_fast_key(BT_ES, key);
	ok(key[0] == 0x80000000u, "nor one whose load would write the accessed bit");
	ok(seg_load(BT_FS, 0, &f) == 0, "FS null");
	seg_fast_key(BT_FS, key);
	ok(key[0] == 0x80000000u, "nor a null selector");
	user_mode();
	ok(seg_load(BT_DS, 0x10, &f) < 0 && f.vec == EXC_GP && f.err == 0x10,
	   "ring 3 loading a DPL-0 data segment: #GP(0x10)");
	ok(seg_load(BT_ES, 0x1b, &f) == 0, "ring 3 may load its readable code segment into ES");

	kernel_mode();
	set_gr(BT_ESP, KSTACK - 0x100);
	ok(vcpu_far_call(0x08, 0x5000, KCODE + 7, 4, &f) == 0 && g_eip() == 0x5000 &&
		   *d32(KSTACK - 0x108) == KCODE + 7 && *d32(KSTACK - 0x104) == 0x08,
	   "far CALL pushes CS and the return EIP");
	ok(vcpu_far_ret(4, 0, &f) == 0 && g_eip() == KCODE + 7 && gr(BT_ESP) == KSTACK - 0x100,
	   "far RET returns");
	ok(vcpu_far_jmp(0x1b, 0x1000, 4, &f) < 0 && f.vec == EXC_GP && f.err == 0x18,
	   "far JMP from ring 0 to a DPL-3 code segment: #GP(0x18)");
}

/* Put instruction bytes at EIP and emulate them as a translator callout would. */
static void run_insn(const uint8_t *bytes, size_t n)
{
	memcpy(rt.ram + KCODE, bytes, n);
	set_eip(KCODE);
	emu_insn();
}

static void test_sensitive(void)
{
	static const uint8_t lsl[] = { 0x0f, 0x03, 0xc1 };	   /* lsl %ecx, %eax */
	static const uint8_t lar[] = { 0x0f, 0x02, 0xc1 };	   /* lar %ecx, %eax */
	static const uint8_t verr[] = { 0x0f, 0x00, 0xe1 };	   /* verr %cx */
	static const uint8_t verw[] = { 0x0f, 0x00, 0xe9 };	   /* verw %cx */
	static const uint8_t sgdt[] = { 0x0f, 0x01, 0x05, 0, 0x70, 0, 0 }; /* sgdt 0x7000 */
	static const uint8_t sidt[] = { 0x0f, 0x01, 0x0d, 6, 0x70, 0, 0 }; /* sidt 0x7006 */
	static const uint8_t str[] = { 0x0f, 0x00, 0xc8 };	   /* str %eax */
	static const uint8_t smsw[] = { 0x0f, 0x01, 0xe0 };	   /* smsw %eax */
	static const uint8_t cpuid[] = { 0x0f, 0xa2 };

	kernel_mode();
	load(BT_DS, 0x10);
	set_gr(BT_ECX, 0x38);
	run_insn(lsl, sizeof(lsl));
	ok(gr(BT_EAX) == 0x12345 && (vcpu_eflags() & 0x40) && g_eip() == KCODE + 3,
	   "LSL: the guest's byte-granular limit, ZF=1, EIP after");
	uint64_t hits = rt.st->decode_hits;
	set_gr(BT_EAX, 0);
	run_insn(lsl, sizeof(lsl));
	ok(rt.st->decode_hits == hits + 1 && gr(BT_EAX) == 0x12345,
	   "the same bytes at the same EIP again: decoded once, the same result");
	set_gr(BT_ECX, 0x18);
	run_insn(lar, sizeof(lar));
	is_int(gr(BT_EAX), 0x00c0fb00,
	       "LAR: the guest's access rights (other bytes at the same EIP: decoded anew)");
	set_gr(BT_ECX, 0x48);
	set_gr(BT_EAX, 0x1234);
	run_insn(lsl, sizeof(lsl));
	ok(!(vcpu_eflags() & 0x40) && gr(BT_EAX) == 0x1234, "LSL past the GDT: ZF=0, no fault");
	set_gr(BT_ECX, 0x40);
	run_insn(verr, sizeof(verr));
	ok(!(vcpu_eflags() & 0x40), "VERR of execute-only code: ZF=0");
	set_gr(BT_ECX, 0x10);
	run_insn(verw, sizeof(verw));
	ok(vcpu_eflags() & 0x40, "VERW of writable data: ZF=1");
	run_insn(sgdt, sizeof(sgdt));
	ok(*(uint16_t *)(rt.ram + 0x7000) == 0x47 && *(uint32_t *)(rt.ram + 0x7002) == GDT,
	   "SGDT stores the guest's GDTR");
	run_insn(sidt, sizeof(sidt));
	ok(*(uint16_t *)(rt.ram + 0x7006) == rt.cpu->idt_limit &&
		   *(uint32_t *)(rt.ram + 0x7008) == IDT,
	   "SIDT stores the guest's IDTR");
	run_insn(str, sizeof(str));
	is_int(gr(BT_EAX), 0x28, "STR: the guest's TR");
	run_insn(smsw, sizeof(smsw));
	is_int(gr(BT_EAX), CR0_PE | CR0_ET, "SMSW: the guest's CR0");
	set_gr(BT_EAX, 0x40000000);
	run_insn(cpuid, sizeof(cpuid));
	ok(gr(BT_EBX) == 0x676e6972 && gr(BT_ECX) == 0x00746233, "CPUID 0x40000000: \"ring3bt\"");
}

static void test_cpuid_msr(void)
{
	uint32_t r[4], h[4];
	uint64_t v, t0;

	emu_cpuid(0, 0, r);
	__asm__ volatile("cpuid" : "=a"(h[0]), "=b"(h[1]), "=c"(h[2]), "=d"(h[3]) : "a"(0), "c"(0));
	ok(r[1] == h[1] && r[2] == h[2] && r[3] == h[3] && r[0] == 1,
	   "CPUID 0: the host's vendor, highest basic leaf 1");
	emu_cpuid(1, 0, r);
	ok((r[2] >> 31 & 1) && (r[3] & (1u << 3)) && (r[3] & (1u << 4)) && (r[3] & (1u << 13)),
	   "CPUID 1: hypervisor bit, PSE, TSC, PGE");
	ok(!(r[3] & (1u << 6 | 1u << 9 | 1u << 11 | 1u << 12 | 1u << 16)) && !(r[2] & (1u << 5)) &&
		   !(r[2] & (1u << 26)),
	   "CPUID 1: no PAE, APIC, SEP, MTRR, PAT, VMX, XSAVE");
	emu_cpuid(0x80000001, 0, r);
	ok(!(r[3] & (1u << 29 | 1u << 20 | 1u << 11)) && !(r[2] & (1u << 2)),
	   "CPUID 0x80000001: no LM, NX, SYSCALL, SVM");
	ok(!(r[3] & (1u << 27 | 1u << 26 | 1u << 25 | 1u << 6)),
	   "CPUID 0x80000001: no RDTSCP, 1 GiB pages, FFXSR or PAE (bits that differ from leaf 1)");
	emu_cpuid(0x80000008, 0, r);
	is_int(r[0], 0x2020, "CPUID 0x80000008: 32-bit physical and linear addresses");

	ok(emu_rdmsr(0x10, &t0) == 0 && emu_rdmsr(0x10, &v) == 0 && v >= t0, "RDMSR TSC advances");
	ok(emu_wrmsr(0x174, 0x60) == 0 && emu_rdmsr(0x174, &v) == 0 && v == 0x60,
	   "SYSENTER_CS is stored");
	ok(emu_rdmsr(0x12345, &v) < 0, "an unknown MSR: #GP");
	ok(emu_wrmsr(0xc0000080, 1) < 0 && emu_wrmsr(0xc0000080, 0) == 0,
	   "EFER: only 0 (no SCE, LME, NXE)");
}

/* The pv ABI: armed only by the kernel; SET_CR3 and TLB_FLUSH are MOV CR3 and a PGE toggle. */
static void test_pv(void)
{
	uint32_t r[4];
	uint64_t loads = rt.st->cr3_loads, toggles = rt.st->pge_toggles;

	rt.cpu->cpl = 3;
	emu_cpuid(PV_CPUID_INFO, 0, r);
	ok(!sh.pv.armed, "pv: CPUID 0x40000101 from ring 3 does not arm the ABI");
	rt.cpu->cpl = 0;
	emu_cpuid(PV_CPUID_INFO, 0, r);
	ok(sh.pv.armed && r[0] == PV_VERSION, "pv: ... from ring 0 it does");
	set_gr(BT_EAX, PV_SET_CR3);
	set_gr(BT_EBX, 0x6000);
	ok(pv_bt_call() && gr(BT_EAX) == 0 && rt.cpu->cr3 == 0x6000 && (rt.cpu->cr0 & CR0_PG),
	   "pv: SET_CR3 loads CR3 and turns paging on");
	is_int(rt.st->cr3_loads, loads + 1, "pv: ... and counts as a CR3 load (--stats)");
	set_gr(BT_EAX, PV_TLB_FLUSH);
	set_gr(BT_EBX, PV_FLUSH_ALL);
	ok(pv_bt_call() && gr(BT_EAX) == 0 && rt.st->pge_toggles == toggles + 1,
	   "pv: TLB_FLUSH of everything takes the CR4.PGE-toggle path");
	set_gr(BT_EAX, PV_SET_CR3);
	set_gr(BT_EBX, 0x6001);
	ok(pv_bt_call() && gr(BT_EAX) == (uint32_t)-PV_EINVAL && rt.st->cr3_loads == loads + 1,
	   "pv: a refused SET_CR3 loads nothing");
}

int main(void)
{
	setup();
	test_delivery();
	test_segments();
	test_sensitive();
	test_cpuid_msr();
	test_pv(); /* last: it turns paging on */
	return done_testing();
}
