/*
 * The kvm engine's CPUID table (src/cpu/kvm/cpuid.c) built from a synthetic
 * KVM_GET_SUPPORTED_CPUID answer: APIC IDs, topology for N CPUs, the
 * hypervisor bit, KVM's signature and the paravirtual features offered.
 * Needs no /dev/kvm.
 */
#include <asm/kvm_para.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/kvm/kvm.h"
#include "pv/abi.h"
#include "tap.h"

static struct kvm_cpuid2 *supported(void)
{
	struct kvm_cpuid2 *s = calloc(1, sizeof(*s) + 16 * sizeof(s->entries[0]));
	struct kvm_cpuid_entry2 *e = s->entries;

	e[0] = (struct kvm_cpuid_entry2){ .function = 0, .eax = 0xd };
	e[1] = (struct kvm_cpuid_entry2){ .function = 1, .eax = 0x663, .ebx = 0x00ff0800,
					  .ecx = 0x1, .edx = 0x178bfbff };
	/* leaf 4: an L1d (type 1, level 1) and an L3 (type 3, level 3) */
	e[2] = (struct kvm_cpuid_entry2){ .function = 4, .index = 0, .eax = 0x121 };
	e[3] = (struct kvm_cpuid_entry2){ .function = 4, .index = 3, .eax = 0x163 };
	e[4] = (struct kvm_cpuid_entry2){ .function = 0xb, .index = 0, .ebx = 99, .edx = 77 };
	e[5] = (struct kvm_cpuid_entry2){ .function = 0x1f, .index = 0, .ebx = 99 };
	e[6] = (struct kvm_cpuid_entry2){ .function = KVM_CPUID_SIGNATURE, .eax = 0x40000001 };
	e[7] = (struct kvm_cpuid_entry2){ .function = KVM_CPUID_FEATURES,
					  .eax = (1u << KVM_FEATURE_CLOCKSOURCE2) |
						 (1u << KVM_FEATURE_CLOCKSOURCE_STABLE_BIT) |
						 (1u << KVM_FEATURE_MIGRATION_CONTROL) |
						 (1u << KVM_FEATURE_HC_MAP_GPA_RANGE) };
	e[8] = (struct kvm_cpuid_entry2){ .function = 0x80000001, .ecx = 1u << 22 };
	e[9] = (struct kvm_cpuid_entry2){ .function = 0x80000008, .eax = 0x3030, .ecx = 0x7007 };
	s->nent = 10;
	return s;
}

static const struct kvm_cpuid_entry2 *find(const struct kvm_cpuid2 *c, uint32_t fn, uint32_t index)
{
	for (uint32_t i = 0; i < c->nent; i++)
		if (c->entries[i].function == fn && c->entries[i].index == index)
			return &c->entries[i];
	return NULL;
}

static int count(const struct kvm_cpuid2 *c, uint32_t fn)
{
	int n = 0;

	for (uint32_t i = 0; i < c->nent; i++)
		n += c->entries[i].function == fn;
	return n;
}

int main(void)
{
	struct kvm_cpuid2 *s = supported();
	struct kvm_cpuid2 *c = kvm_cpuid_build(s, true, 3, 4);
	const struct kvm_cpuid_entry2 *e;
	char sig[13] = { 0 };

	ok(c != NULL, "a table for vCPU 3 of 4");
	e = find(c, 0, 0);
	ok(e && e->eax >= 0xb, "the highest basic leaf reaches 0xB");
	e = find(c, 1, 0);
	ok(e != NULL, "leaf 1 is there");
	if (e) {
		is_int(e->ebx >> 24, 3, "leaf 1: initial APIC ID is the vCPU index");
		is_int((e->ebx >> 16) & 0xff, 4, "leaf 1: 4 logical processors per package");
		is_int(e->ebx & 0xffff, 0x0800, "leaf 1: the low half of EBX is KVM's");
		ok(e->ecx & (1u << 31), "leaf 1: the hypervisor bit");
		ok(e->ecx & (1u << 24), "leaf 1: TSC-deadline where the in-kernel LAPIC has it");
		ok(e->ecx & 1, "leaf 1: KVM's own bits kept (SSE3)");
		ok(e->edx & (1u << 28), "leaf 1: HTT with more than one CPU");
	}
	e = find(c, 4, 0);
	ok(e && (e->eax >> 26) == 3 && ((e->eax >> 14) & 0xfff) == 0 && (e->eax & 0x3fff) == 0x121,
	   "leaf 4 L1d: 4 cores per package, not shared");
	e = find(c, 4, 3);
	ok(e && (e->eax >> 26) == 3 && ((e->eax >> 14) & 0xfff) == 3, "leaf 4 L3: shared by 4");
	is_int(count(c, 0x1f), 0, "KVM's leaf 0x1F (host topology) is dropped");
	is_int(count(c, 0xb), 3, "leaf 0xB: SMT, core and the invalid level");
	e = find(c, 0xb, 0);
	ok(e && e->ebx == 1 && ((e->ecx >> 8) & 0xff) == 1 && e->edx == 3 &&
	   (e->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX),
	   "leaf 0xB level 0: one thread per core, x2APIC ID 3");
	e = find(c, 0xb, 1);
	ok(e && e->eax == 2 && e->ebx == 4 && ((e->ecx >> 8) & 0xff) == 2 && e->edx == 3,
	   "leaf 0xB level 1: 4 cores, APIC ID shift 2");
	e = find(c, 0xb, 2);
	ok(e && ((e->ecx >> 8) & 0xff) == 0, "leaf 0xB level 2 is invalid");
	e = find(c, 0x80000001, 0);
	ok(e && !(e->ecx & (1u << 22)), "TOPOEXT is cleared");
	e = find(c, 0x80000008, 0);
	ok(e && (e->ecx & 0xff) == 3 && ((e->ecx >> 12) & 0xf) == 2 && e->eax == 0x3030,
	   "leaf 0x80000008: 4 cores, 2 APIC ID bits, address sizes kept");
	is_int(count(c, KVM_CPUID_SIGNATURE), 1, "one KVM signature leaf");
	e = find(c, KVM_CPUID_SIGNATURE, 0);
	if (e) {
		memcpy(sig, &e->ebx, 4);
		memcpy(sig + 4, &e->ecx, 4);
		memcpy(sig + 8, &e->edx, 4);
	}
	ok(e && !strcmp(sig, "KVMKVMKVM") && e->eax == KVM_CPUID_FEATURES,
	   "0x40000000: \"KVMKVMKVM\", highest leaf 0x40000001");
	e = find(c, KVM_CPUID_FEATURES, 0);
	ok(e && (e->eax & (1u << KVM_FEATURE_CLOCKSOURCE2)) &&
	   (e->eax & (1u << KVM_FEATURE_CLOCKSOURCE_STABLE_BIT)),
	   "0x40000001: kvmclock and its stable bit offered");
	ok(e && !(e->eax & (1u << KVM_FEATURE_MIGRATION_CONTROL)) &&
	   !(e->eax & (1u << KVM_FEATURE_HC_MAP_GPA_RANGE)),
	   "0x40000001: features needing the monitor are not offered");
	e = find(c, PV_CPUID_BASE, 0);
	if (e) {
		memcpy(sig, &e->ebx, 4);
		memcpy(sig + 4, &e->ecx, 4);
		memcpy(sig + 8, &e->edx, 4);
	}
	ok(e && !strncmp(sig, "ring3pvring3", 12) && e->eax == PV_CPUID_INFO,
	   "0x40000100: ring3's pv signature, highest leaf 0x40000101");
	e = find(c, PV_CPUID_INFO, 0);
	ok(e && e->eax == PV_VERSION && e->ebx == PV_METHOD_PORT && e->ecx == PV_PORT &&
	   !(e->edx & PV_FEAT_SHARED_IF),
	   "0x40000101: ABI version (PV_VERSION) by the PORT method at 0x5230, no shared-page IF under kvm");
	free(c);

	c = kvm_cpuid_build(s, false, 0, 1);
	e = c ? find(c, 1, 0) : NULL;
	ok(e && !(e->edx & (1u << 28)) && !(e->ecx & (1u << 24)) && (e->ebx >> 24) == 0,
	   "one CPU: no HTT, no TSC-deadline without the capability, APIC ID 0");
	e = c ? find(c, 0xb, 1) : NULL;
	ok(e && e->eax == 0 && e->ebx == 1, "one CPU: leaf 0xB level 1 says 1 core, shift 0");
	free(c);

	c = kvm_cpuid_build(s, false, 31, 32);
	e = c ? find(c, 0xb, 1) : NULL;
	ok(e && e->eax == 5 && e->ebx == 32 && e->edx == 31, "32 CPUs: shift 5, x2APIC ID 31");
	free(c);
	free(s);
	return done_testing();
}
