/*
 * The virtual CPU's identity: CPUID (the host's honest vendor, family, model
 * and brand, with only the features the bt engine virtualizes, the hypervisor
 * bit and a "ring3bt" signature leaf) and the small MSR table. Intel SDM
 * vol. 2 CPUID; vol. 4 (MSRs); AMD APM vol. 3 appendix E.
 */
#include <cpuid.h>

#include "runtime.h"

/* CPUID.1:EDX, the features a 32-bit non-PAE CPU without APIC, MTRR, PAT, MCA or SEP has. */
#define L1_EDX_KEEP                                                                                \
	((1u << 0) /* FPU */ | (1u << 2) /* DE */ | (1u << 3) /* PSE */ | (1u << 4) /* TSC */ |    \
	 (1u << 5) /* MSR */ | (1u << 8) /* CX8 */ | (1u << 13) /* PGE */ | (1u << 15) /* CMOV */ | \
	 (1u << 19) /* CLFSH */ | (1u << 23) /* MMX */ | (1u << 24) /* FXSR */ |                   \
	 (1u << 25) /* SSE */ | (1u << 26) /* SSE2 */)
/* CPUID.1:ECX: user-level instruction sets that run natively; no XSAVE/AVX (no XSETBV), no VMX. */
#define L1_ECX_KEEP                                                                                \
	((1u << 0) /* SSE3 */ | (1u << 1) /* PCLMULQDQ */ | (1u << 9) /* SSSE3 */ |               \
	 (1u << 13) /* CX16 */ | (1u << 19) /* SSE4.1 */ | (1u << 20) /* SSE4.2 */ |               \
	 (1u << 22) /* MOVBE */ | (1u << 23) /* POPCNT */ | (1u << 25) /* AES */ |                 \
	 (1u << 30) /* RDRAND */)
#define L1_ECX_HYPERVISOR (1u << 31)
/*
 * CPUID.80000001: no LM, NX, SYSCALL, RDTSCP, 1 GiB pages, SVM. Its EDX repeats
 * leaf 1's bits 0-17 and 23-24, but bits 19, 25 and 26 mean MP, FFXSR and
 * Page1GB there, not CLFSH, SSE and SSE2 (AMD APM vol. 3 appendix E.4.2), so
 * the bits are listed again rather than taken from L1_EDX_KEEP.
 */
#define E1_EDX_KEEP                                                                                \
	((1u << 0) /* FPU */ | (1u << 2) /* DE */ | (1u << 3) /* PSE */ | (1u << 4) /* TSC */ |    \
	 (1u << 5) /* MSR */ | (1u << 8) /* CX8 */ | (1u << 13) /* PGE */ | (1u << 15) /* CMOV */ | \
	 (1u << 22) /* MMXEXT */ | (1u << 23) /* MMX */ | (1u << 24) /* FXSR */ |                  \
	 (1u << 30) /* 3DNOWEXT */ | (1u << 31) /* 3DNOW */)
#define E1_ECX_KEEP                                                                                \
	((1u << 0) /* LAHF */ | (1u << 5) /* LZCNT */ | (1u << 6) /* SSE4A */ |                   \
	 (1u << 8) /* PREFETCHW */)

void emu_cpuid(uint32_t leaf, uint32_t sub, uint32_t out[4])
{
	uint32_t a = 0, b = 0, c = 0, d = 0, max_basic, max_ext;

	__cpuid_count(0, 0, max_basic, b, c, d);
	__cpuid_count(0x80000000, 0, max_ext, b, c, d);
	if (max_basic > 1)
		max_basic = 1;
	if (max_ext > 0x80000021)
		max_ext = 0x80000021;
	out[0] = out[1] = out[2] = out[3] = 0;
	if (pv_bt_cpuid(leaf, out)) /* the pv ABI's leaves (pv.c) */
		return;
	if (leaf == 0x40000000) {
		out[0] = 0x40000000;
		out[1] = 0x676e6972; /* "ring" */
		out[2] = 0x00746233; /* "3bt"  */
		return;
	}
	if ((leaf <= max_basic) || (leaf >= 0x80000000 && leaf <= max_ext))
		__cpuid_count(leaf, sub, a, b, c, d);
	else
		return;
	switch (leaf) {
	case 0:
		a = max_basic;
		break;
	case 1:
		/* one logical processor, APIC ID 0, CLFLUSH line size kept */
		b &= 0x0000ffffu;
		b |= 1u << 16;
		c = (c & L1_ECX_KEEP) | L1_ECX_HYPERVISOR;
		d &= L1_EDX_KEEP;
		break;
	case 0x80000000:
		a = max_ext;
		break;
	case 0x80000001:
		c &= E1_ECX_KEEP;
		d &= E1_EDX_KEEP;
		break;
	case 0x80000002:
	case 0x80000003:
	case 0x80000004: /* the brand string, as the host's */
	case 0x80000005:
	case 0x80000006: /* cache geometry */
		break;
	case 0x80000008:
		a = 0x2020; /* 32 physical and 32 linear address bits */
		b = c = d = 0;
		break;
	case 0x80000021:
		/*
		 * Only SRSO_NO: a guest kernel in host ring 3 has no return-stack
		 * mitigation to apply (and a 686 kernel has none built in), so it
		 * need not warn that it lacks one.
		 */
		a = 1u << 29;
		b = c = d = 0;
		break;
	default:
		a = b = c = d = 0;
		break;
	}
	out[0] = a;
	out[1] = b;
	out[2] = c;
	out[3] = d;
}

#define MSR_TSC 0x10
#define MSR_PLATFORM_ID 0x17
#define MSR_APIC_BASE 0x1b
#define MSR_BIOS_SIGN_ID 0x8b
#define MSR_SYSENTER_CS 0x174
#define MSR_SYSENTER_ESP 0x175
#define MSR_SYSENTER_EIP 0x176
#define MSR_MISC_ENABLE 0x1a0
#define MSR_PAT 0x277
#define MSR_EFER 0xc0000080u
#define MSR_AMD64_NB_CFG 0xc001001fu /* Linux's amd_bus code reads it on AMD CPUs */

/* RDMSR: 0 and *v, or -1 for an MSR this CPU does not have (#GP). */
int emu_rdmsr(uint32_t idx, uint64_t *v)
{
	struct bt_vcpu *c = rt.cpu;

	switch (idx) {
	case MSR_TSC: *v = rt_rdtsc() + c->tsc_offset; return 0;
	case MSR_PLATFORM_ID: case MSR_BIOS_SIGN_ID: case MSR_EFER: *v = 0; return 0;
	case MSR_APIC_BASE: *v = c->apic_base; return 0;
	case MSR_SYSENTER_CS: *v = c->sysenter_cs; return 0;
	case MSR_SYSENTER_ESP: *v = c->sysenter_esp; return 0;
	case MSR_SYSENTER_EIP: *v = c->sysenter_eip; return 0;
	case MSR_MISC_ENABLE: *v = c->misc_enable; return 0;
	case MSR_PAT: *v = c->pat; return 0;
	case MSR_AMD64_NB_CFG: *v = c->nb_cfg; return 0;
	}
	return -1;
}

int emu_wrmsr(uint32_t idx, uint64_t v)
{
	struct bt_vcpu *c = rt.cpu;

	switch (idx) {
	case MSR_TSC:
		/* RDTSC runs natively and cannot see an offset: keep the TSC the host's */
		return 0;
	case MSR_BIOS_SIGN_ID: return 0;
	case MSR_EFER: return v ? -1 : 0; /* no SCE, LME, NXE on this CPU */
	case MSR_APIC_BASE: c->apic_base = v; return 0;
	case MSR_SYSENTER_CS: c->sysenter_cs = (uint32_t)v; return 0;
	case MSR_SYSENTER_ESP: c->sysenter_esp = (uint32_t)v; return 0;
	case MSR_SYSENTER_EIP: c->sysenter_eip = (uint32_t)v; return 0;
	case MSR_MISC_ENABLE: c->misc_enable = v; return 0;
	case MSR_PAT: c->pat = v; return 0;
	case MSR_AMD64_NB_CFG: c->nb_cfg = v; return 0; /* no northbridge: only remembered */
	}
	return -1;
}
