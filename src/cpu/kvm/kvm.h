/*
 * The kvm engine's private state, shared by its files: kvm.c (the VM),
 * vcpu.c (vCPUs and KVM_RUN exits) and cpuid.c (the CPUID table).
 * Follows the Linux KVM API (Documentation/virt/kvm/api.rst, API version 12).
 */
#ifndef RING3_CPU_KVM_KVM_H
#define RING3_CPU_KVM_KVM_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct vm;
struct vcpu;
struct vcpu_exit;
struct cpu_boot_state;

/* Addresses KVM needs inside the PCI hole, where ring3 puts nothing (as QEMU does). */
#define KVM_TSS_ADDR 0xfffbd000ul	   /* 3 pages, for real-mode emulation on VMX */
#define KVM_IDENTITY_MAP_ADDR 0xfeffc000ul /* 1 page, for unpaged guests on VMX with EPT */

struct kvmvm {
	int kvm_fd, vm_fd;
	int run_size;		  /* KVM_GET_VCPU_MMAP_SIZE */
	bool tsc_deadline;	  /* KVM_CAP_TSC_DEADLINE_TIMER */
	struct kvm_cpuid2 *cpuid; /* KVM_GET_SUPPORTED_CPUID, fetched once */
	atomic_uint_fast64_t irq_lines, kicks;
};

struct kvmcpu {
	int fd;
	struct kvm_run *run;
	pthread_t thread;
	atomic_bool thread_known; /* set by the vCPU thread before its first KVM_RUN */
	bool mmio_read;		  /* the last exit was an MMIO read KVM waits to complete */
	uint8_t mmio_len;
	const struct vcpu_exit *mmio_exit;
	uint64_t eintr;
	const struct vcpu_exit *hcall_exit; /* a pv call waits for its result in EAX (pv.c) */
	uint32_t pv_page, pv_page_la;	    /* the guest's pv shared page: physical, linear */
	bool pv_tr;			    /* TR is the engine's TSS in that page */
	uint32_t pv_ss0, pv_esp0;	    /* STACK_SWITCH's, for a TSS in a new page */
};

int kvm_cpuid_fetch(struct kvmvm *kv);
/* The table vCPU id of nr gets: supported, adjusted (pure; for unit tests too). */
struct kvm_cpuid2 *kvm_cpuid_build(const struct kvm_cpuid2 *supported, bool tsc_deadline, int id,
				   int nr);
int kvm_cpuid_set(struct kvmvm *kv, int vcpu_fd, int id, int nr_vcpus);

int kvm_vcpu_init(struct vcpu *vcpu, const struct cpu_boot_state *boot);
int kvm_vcpu_run(struct vcpu *vcpu, struct vcpu_exit *exit);
void kvm_vcpu_kick(struct vcpu *vcpu);
void kvm_vcpu_destroy(struct vcpu *vcpu);
int kvm_signal_init(void);

/* pv.c: the pv hypercall ABI's PORT method (docs/pv.md) */
bool kvm_pv_exit(struct kvmcpu *kc, struct vcpu_exit *exit);
/* Is this KVM_EXIT_IO a call (PV_PORT, 4-byte OUT, CPL 0)? Pure, for unit tests too. */
bool kvm_pv_is_call(const struct kvm_run *run, const struct kvm_sregs *s);
int kvm_pv_complete(struct kvmcpu *kc);
int64_t kvm_pv_cpu(void *vcpu, uint32_t nr, const uint32_t arg[5]);

#endif
