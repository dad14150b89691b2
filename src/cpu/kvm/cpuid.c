/*
 * The kvm engine: each vCPU's CPUID table. KVM_GET_SUPPORTED_CPUID (api.rst
 * §4.46) says what KVM can virtualize; ring3 then describes its own machine:
 * APIC IDs and topology for N CPUs (Intel SDM vol. 2 CPUID leaves 1, 4, 0xB;
 * AMD APM vol. 3 leaf 0x80000008), the hypervisor bit, and KVM's paravirtual
 * leaves (Documentation/virt/kvm/x86/cpuid.rst) so the guest uses kvmclock.
 */
#include <asm/kvm_para.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "../../pv/abi.h"
#include "kvm.h"

#define CPUID_1_ECX_TSC_DEADLINE (1u << 24)
#define CPUID_1_ECX_HYPERVISOR (1u << 31)
#define CPUID_1_EDX_HTT (1u << 28)
#define CPUID_80000001_ECX_TOPOEXT (1u << 22)
#define CPUID_MAX_ENTRIES 4096

/* The paravirtual features ring3 offers: all handled inside KVM, none needs the monitor. */
#define KVM_FEATURES_OFFERED                                                                       \
	((1u << KVM_FEATURE_CLOCKSOURCE) | (1u << KVM_FEATURE_NOP_IO_DELAY) |                     \
	 (1u << KVM_FEATURE_CLOCKSOURCE2) | (1u << KVM_FEATURE_ASYNC_PF) |                        \
	 (1u << KVM_FEATURE_STEAL_TIME) | (1u << KVM_FEATURE_PV_EOI) |                            \
	 (1u << KVM_FEATURE_PV_UNHALT) | (1u << KVM_FEATURE_PV_TLB_FLUSH) |                       \
	 (1u << KVM_FEATURE_ASYNC_PF_VMEXIT) | (1u << KVM_FEATURE_PV_SEND_IPI) |                  \
	 (1u << KVM_FEATURE_POLL_CONTROL) | (1u << KVM_FEATURE_PV_SCHED_YIELD) |                  \
	 (1u << KVM_FEATURE_ASYNC_PF_INT) | (1u << KVM_FEATURE_CLOCKSOURCE_STABLE_BIT))

int kvm_cpuid_fetch(struct kvmvm *kv)
{
	for (unsigned n = 128; n <= CPUID_MAX_ENTRIES; n *= 2) {
		struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(c->entries[0]));

		if (!c)
			return -ENOMEM;
		c->nent = n;
		if (ioctl(kv->kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0) {
			kv->cpuid = c;
			return 0;
		}
		free(c);
		if (errno != E2BIG)
			return -errno;
	}
	return -E2BIG;
}

/* Bits needed to number n things: ceil(log2(n)). */
static unsigned order(unsigned n)
{
	unsigned b = 0;

	while ((1u << b) < n)
		b++;
	return b;
}

static struct kvm_cpuid_entry2 *add(struct kvm_cpuid2 *c, uint32_t fn, uint32_t index)
{
	struct kvm_cpuid_entry2 *e = &c->entries[c->nent++];

	memset(e, 0, sizeof(*e));
	e->function = fn;
	e->index = index;
	return e;
}

static void topology_leaf(struct kvm_cpuid2 *c, int id, int nr)
{
	/* Leaf 0xB: level 0 = SMT (one thread per core), 1 = core (nr cores), 2 = invalid. */
	for (uint32_t level = 0; level < 3; level++) {
		struct kvm_cpuid_entry2 *e = add(c, 0xb, level);

		e->flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
		e->edx = (uint32_t)id;
		e->ecx = level;
		if (level == 0) {
			e->eax = 0;
			e->ebx = 1;
			e->ecx |= 1u << 8;
		} else if (level == 1) {
			e->eax = order((unsigned)nr);
			e->ebx = (uint32_t)nr;
			e->ecx |= 2u << 8;
		}
	}
}

struct kvm_cpuid2 *kvm_cpuid_build(const struct kvm_cpuid2 *s, bool tsc_deadline, int id, int nr)
{
	uint32_t kvm_features = 0;
	struct kvm_cpuid2 *c;

	/* the supported entries, plus room for leaf 0xB (3), the two KVM leaves and the two pv ones */
	c = calloc(1, sizeof(*c) + (s->nent + 8) * sizeof(c->entries[0]));
	if (!c)
		return NULL;
	for (uint32_t i = 0; i < s->nent; i++) {
		const struct kvm_cpuid_entry2 *e = &s->entries[i];

		if (e->function == KVM_CPUID_FEATURES)
			kvm_features = e->eax;
		/* ring3 writes these itself below */
		if (e->function == 0xb || e->function == 0x1f ||
		    (e->function >= KVM_CPUID_SIGNATURE && e->function < PV_CPUID_BASE + 0x100))
			continue;
		c->entries[c->nent++] = *e;
	}
	for (uint32_t i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];

		switch (e->function) {
		case 0:
			if (e->eax < 0xb)
				e->eax = 0xb; /* so that leaf 0xB is reachable */
			break;
		case 1:
			/* EBX: initial APIC ID [31:24], logical processors per package [23:16] */
			e->ebx = (e->ebx & 0xffff) | (uint32_t)id << 24 |
				 (uint32_t)(nr > 255 ? 255 : nr) << 16;
			e->ecx |= CPUID_1_ECX_HYPERVISOR;
			if (tsc_deadline)
				e->ecx |= CPUID_1_ECX_TSC_DEADLINE; /* the in-kernel LAPIC emulates it */
			if (nr > 1)
				e->edx |= CPUID_1_EDX_HTT;
			else
				e->edx &= ~CPUID_1_EDX_HTT;
			break;
		case 4:
			/* EAX[31:26]: cores per package - 1; [25:14]: threads sharing the cache - 1 */
			if (e->eax & 0x1f) {
				uint32_t level = (e->eax >> 5) & 7;
				uint32_t sharing = level >= 3 ? (uint32_t)nr - 1 : 0;

				e->eax = (e->eax & 0x3fff) | ((uint32_t)(nr - 1) & 0x3f) << 26 |
					 (sharing & 0xfff) << 14;
			}
			break;
		case 0x80000001:
			/* no leaf 0x8000001E topology to keep consistent */
			e->ecx &= ~CPUID_80000001_ECX_TOPOEXT;
			break;
		case 0x80000008:
			/* ECX: APIC ID bits for cores [15:12], cores per package - 1 [7:0] */
			e->ecx = (e->ecx & ~0xf0ffu) | order((unsigned)nr) << 12 |
				 ((uint32_t)(nr - 1) & 0xff);
			break;
		default:
			break;
		}
	}
	topology_leaf(c, id, nr);
	{
		struct kvm_cpuid_entry2 *sig = add(c, KVM_CPUID_SIGNATURE, 0);
		struct kvm_cpuid_entry2 *feat = add(c, KVM_CPUID_FEATURES, 0);

		sig->eax = KVM_CPUID_FEATURES; /* the highest paravirtual leaf */
		memcpy(&sig->ebx, "KVMK", 4);
		memcpy(&sig->ecx, "VMKV", 4);
		memcpy(&sig->edx, "M\0\0\0", 4);
		feat->eax = kvm_features & KVM_FEATURES_OFFERED;
	}
	{
		/* ring3's own hypercall ABI beside KVM's (docs/pv.md, "Discovery") */
		struct kvm_cpuid_entry2 *base = add(c, PV_CPUID_BASE, 0);
		struct kvm_cpuid_entry2 *info = add(c, PV_CPUID_INFO, 0);

		base->eax = PV_CPUID_INFO;
		base->ebx = PV_SIG_EBX;
		base->ecx = PV_SIG_ECX;
		base->edx = PV_SIG_EDX;
		info->eax = PV_VERSION;
		info->ebx = PV_METHOD_PORT;
		info->ecx = PV_PORT;
		/*
		 * No shared IF: a store cannot exit. MMU_RESTORE: KVM on shadow page
		 * tables (no NPT/EPT) follows a guest page table only through the
		 * guest's own stores, never ring3's writes from user space (pv.c).
		 */
		info->edx = PV_FEAT_MMU_BATCH | PV_FEAT_TIMER | PV_FEAT_MMU_RESTORE | PV_FEAT_USER_LIMIT;
	}
	return c;
}

int kvm_cpuid_set(struct kvmvm *kv, int vcpu_fd, int id, int nr)
{
	struct kvm_cpuid2 *c = kvm_cpuid_build(kv->cpuid, kv->tsc_deadline, id, nr);
	int err = 0;

	if (!c)
		return -ENOMEM;
	if (ioctl(vcpu_fd, KVM_SET_CPUID2, c) < 0)
		err = -errno;
	free(c);
	return err;
}
