/*
 * The kvm engine: vCPUs. Creates them in the state a loader asked for
 * (struct cpu_boot_state; api.rst §4: KVM_SET_SREGS, KVM_SET_REGS, KVM_SET_MSRS,
 * KVM_SET_LAPIC, KVM_SET_MP_STATE), runs them, and turns each KVM_RUN exit
 * (api.rst §5, struct kvm_run) into a struct vcpu_exit.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../../core/vm.h"
#include "kvm.h"

/* MSRs (Intel SDM vol. 4 ch. 2; AMD APM vol. 2 app. A) */
#define MSR_IA32_TSC 0x10
#define MSR_IA32_SYSENTER_CS 0x174
#define MSR_IA32_SYSENTER_ESP 0x175
#define MSR_IA32_SYSENTER_EIP 0x176
#define MSR_IA32_MISC_ENABLE 0x1a0
#define MISC_ENABLE_FAST_STRING (1ull << 0)
#define MSR_MTRR_DEF_TYPE 0x2ff
#define MTRR_DEF_TYPE_E (1ull << 11)
#define MTRR_TYPE_WB 6
#define MSR_STAR 0xc0000081
#define MSR_LSTAR 0xc0000082
#define MSR_CSTAR 0xc0000083
#define MSR_SYSCALL_MASK 0xc0000084
#define MSR_KERNEL_GS_BASE 0xc0000102

/* Local APIC registers in struct kvm_lapic_state (Intel SDM vol. 3 §11.5.1) */
#define APIC_LVT0 0x350
#define APIC_LVT1 0x360
#define APIC_DM_NMI 0x400
#define APIC_DM_EXTINT 0x700

static void kvm_sig_nop(int sig)
{
	(void)sig; /* only there so that KVM_RUN returns EINTR */
}

int kvm_signal_init(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = kvm_sig_nop; /* no SA_RESTART: KVM_RUN must return */
	sigemptyset(&sa.sa_mask);
	return sigaction(SIGUSR1, &sa, NULL) < 0 ? -errno : 0;
}

/*
 * A clean machine: SYSCALL/SYSENTER targets zero, every vCPU's TSC written
 * at once (KVM then keeps them in sync), fast strings on, and the MTRRs
 * enabled with write-back as default type, as firmware leaves them — Linux
 * turns PAT off when MTRRs are disabled.
 */
static int kvm_set_msrs(int fd)
{
	static const struct {
		uint32_t index;
		uint64_t data;
	} init[] = {
		{ MSR_IA32_SYSENTER_CS, 0 },  { MSR_IA32_SYSENTER_ESP, 0 },
		{ MSR_IA32_SYSENTER_EIP, 0 }, { MSR_STAR, 0 },
		{ MSR_LSTAR, 0 },	      { MSR_CSTAR, 0 },
		{ MSR_SYSCALL_MASK, 0 },      { MSR_KERNEL_GS_BASE, 0 },
		{ MSR_IA32_TSC, 0 },	      { MSR_IA32_MISC_ENABLE, MISC_ENABLE_FAST_STRING },
		{ MSR_MTRR_DEF_TYPE, MTRR_DEF_TYPE_E | MTRR_TYPE_WB },
	};
	const unsigned n = sizeof(init) / sizeof(init[0]);
	struct kvm_msrs *m = calloc(1, sizeof(*m) + n * sizeof(m->entries[0]));
	int r;

	if (!m)
		return -ENOMEM;
	m->nmsrs = n;
	for (unsigned i = 0; i < n; i++) {
		m->entries[i].index = init[i].index;
		m->entries[i].data = init[i].data;
	}
	r = ioctl(fd, KVM_SET_MSRS, m);
	free(m);
	if (r < 0)
		return -errno;
	return r == (int)n ? 0 : -EINVAL; /* r is how many were set */
}

/*
 * LINT0 as ExtINT on the BSP (virtual-wire mode: the 8259's INTR reaches the
 * CPU, which a multiboot kernel using only the PIC relies on) and LINT1 as
 * NMI on every CPU, as PC firmware leaves them.
 */
static int kvm_set_lapic(int fd, bool bsp)
{
	struct kvm_lapic_state l;
	uint32_t v;

	if (ioctl(fd, KVM_GET_LAPIC, &l) < 0)
		return -errno;
	v = bsp ? APIC_DM_EXTINT : APIC_DM_EXTINT | (1u << 16); /* bit 16: masked */
	memcpy(&l.regs[APIC_LVT0], &v, 4);
	v = APIC_DM_NMI;
	memcpy(&l.regs[APIC_LVT1], &v, 4);
	return ioctl(fd, KVM_SET_LAPIC, &l) < 0 ? -errno : 0;
}

static void seg_to_kvm(const struct cpu_seg *s, struct kvm_segment *k)
{
	memset(k, 0, sizeof(*k));
	k->base = s->base;
	k->limit = s->limit;
	k->selector = s->sel;
	k->type = s->type;
	k->present = s->present;
	k->dpl = s->dpl;
	k->db = s->db;
	k->s = s->s;
	k->l = s->l;
	k->g = s->g;
}

/* The boot processor starts where the loader said (boot.rst or multiboot §3.2). */
static int kvm_set_boot_state(int fd, const struct cpu_boot_state *b)
{
	struct kvm_sregs sr;
	struct kvm_regs regs;

	if (ioctl(fd, KVM_GET_SREGS, &sr) < 0)
		return -errno;
	seg_to_kvm(&b->cs, &sr.cs);
	seg_to_kvm(&b->ds, &sr.ds);
	sr.es = sr.fs = sr.gs = sr.ss = sr.ds;
	sr.gdt.base = b->gdt_base;
	sr.gdt.limit = b->gdt_limit;
	/* An empty IDT: the kernel loads its own before it enables interrupts. */
	sr.idt.base = 0;
	sr.idt.limit = 0;
	sr.cr0 = b->cr0;
	sr.cr3 = b->cr3;
	sr.cr4 = b->cr4;
	sr.efer = b->efer;
	/* TR and LDTR keep KVM's reset values: a usable busy TSS and an LDT, valid in both modes. */
	if (ioctl(fd, KVM_SET_SREGS, &sr) < 0)
		return -errno;

	memset(&regs, 0, sizeof(regs));
	regs.rip = b->rip;
	regs.rsp = b->rsp;
	regs.rax = b->rax;
	regs.rbx = b->rbx;
	regs.rsi = b->rsi;
	regs.rdi = b->rdi;
	regs.rbp = b->rbp;
	regs.rflags = 0x2; /* bit 1 is always set; IF clear */
	return ioctl(fd, KVM_SET_REGS, &regs) < 0 ? -errno : 0;
}

int kvm_vcpu_init(struct vcpu *vcpu, const struct cpu_boot_state *boot)
{
	struct kvmvm *kv = vcpu->vm->engine_data;
	struct kvmcpu *kc;
	int err;

	kc = calloc(1, sizeof(*kc));
	if (!kc)
		return -ENOMEM;
	kc->fd = ioctl(kv->vm_fd, KVM_CREATE_VCPU, (unsigned long)vcpu->id);
	if (kc->fd < 0) {
		err = -errno;
		goto err_free;
	}
	kc->run = mmap(NULL, (size_t)kv->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, kc->fd, 0);
	if (kc->run == MAP_FAILED) {
		err = -errno;
		goto err_close;
	}
	/* CPUID first: KVM checks EFER.LME and CR4 bits against it. */
	err = kvm_cpuid_set(kv, kc->fd, vcpu->id, vcpu->vm->nr_vcpus);
	if (err)
		goto err_unmap;
	err = kvm_set_msrs(kc->fd);
	if (err)
		goto err_unmap;
	err = kvm_set_lapic(kc->fd, vcpu->id == 0);
	if (err)
		goto err_unmap;
	if (vcpu->id == 0) {
		err = kvm_set_boot_state(kc->fd, boot);
	} else {
		/* Application processors wait for INIT and SIPI from the BSP. */
		struct kvm_mp_state mp = { .mp_state = KVM_MP_STATE_UNINITIALIZED };

		if (ioctl(kc->fd, KVM_SET_MP_STATE, &mp) < 0)
			err = -errno;
	}
	if (err)
		goto err_unmap;
	vcpu->engine_data = kc;
	return 0;

err_unmap:
	munmap(kc->run, (size_t)kv->run_size);
err_close:
	close(kc->fd);
err_free:
	free(kc);
	return err;
}

void kvm_vcpu_destroy(struct vcpu *vcpu)
{
	struct kvmcpu *kc = vcpu->engine_data;
	struct kvmvm *kv = vcpu->vm->engine_data;

	if (!kc)
		return;
	if (kv)
		munmap(kc->run, (size_t)kv->run_size);
	close(kc->fd);
	free(kc);
	vcpu->engine_data = NULL;
}

/*
 * Make KVM_RUN return: immediate_exit covers a vCPU about to enter (KVM
 * checks it on entry), the signal one already inside. The run loop checks
 * vm->stopping after every return, so a kick is never lost.
 */
void kvm_vcpu_kick(struct vcpu *vcpu)
{
	struct kvmcpu *kc = vcpu->engine_data;
	struct kvmvm *kv = vcpu->vm->engine_data;

	if (!kc)
		return;
	atomic_fetch_add_explicit(&kv->kicks, 1, memory_order_relaxed);
	__atomic_store_n(&kc->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	if (atomic_load(&kc->thread_known))
		pthread_kill(kc->thread, SIGUSR1);
}

static void fault(struct vcpu_exit *exit, int fd, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* A FAULT exit: the reason, and where the guest was. */
static void fault(struct vcpu_exit *exit, int fd, const char *fmt, ...)
{
	struct kvm_regs regs;
	va_list ap;
	int n;

	exit->reason = VCPU_EXIT_FAULT;
	va_start(ap, fmt);
	n = vsnprintf(exit->fault.msg, sizeof(exit->fault.msg), fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n < sizeof(exit->fault.msg) && ioctl(fd, KVM_GET_REGS, &regs) == 0)
		snprintf(exit->fault.msg + n, sizeof(exit->fault.msg) - (size_t)n,
			 " (rip %#" PRIx64 ")", (uint64_t)regs.rip);
}

static const char *internal_error_name(uint32_t suberror)
{
	switch (suberror) {
	case KVM_INTERNAL_ERROR_EMULATION:
		return "it could not emulate an instruction";
	case KVM_INTERNAL_ERROR_SIMUL_EX:
		return "an exception occurred while delivering an exception";
	case KVM_INTERNAL_ERROR_DELIVERY_EV:
		return "it could not deliver an event";
	case KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON:
		return "the hardware exited for a reason KVM does not handle";
	default:
		return "internal error";
	}
}

static void kvm_exit_io(struct kvmcpu *kc, size_t run_size, struct vcpu_exit *exit)
{
	struct kvm_run *run = kc->run;
	uint64_t bytes = (uint64_t)run->io.size * run->io.count;

	if ((run->io.size != 1 && run->io.size != 2 && run->io.size != 4) || !run->io.count ||
	    run->io.data_offset > run_size || bytes > run_size - run->io.data_offset) {
		fault(exit, kc->fd, "KVM reported a malformed port I/O exit (size %u, count %u)",
		      run->io.size, run->io.count);
		return;
	}
	exit->reason = VCPU_EXIT_IO;
	exit->io.port = run->io.port;
	exit->io.size = run->io.size;
	exit->io.is_write = run->io.direction == KVM_EXIT_IO_OUT;
	exit->io.count = run->io.count;
	exit->io.data = (uint8_t *)run + run->io.data_offset;
}

static void kvm_exit_mmio(struct kvmcpu *kc, struct vcpu_exit *exit)
{
	struct kvm_run *run = kc->run;

	if (run->mmio.len < 1 || run->mmio.len > 8) {
		fault(exit, kc->fd, "KVM reported an MMIO access of %u bytes", run->mmio.len);
		return;
	}
	exit->reason = VCPU_EXIT_MMIO;
	exit->mmio.gpa = run->mmio.phys_addr;
	exit->mmio.size = (uint8_t)run->mmio.len;
	exit->mmio.is_write = run->mmio.is_write;
	if (run->mmio.is_write) {
		memcpy(exit->mmio.data, run->mmio.data, run->mmio.len);
	} else {
		/* The run loop fills exit->mmio.data; KVM takes it on the next KVM_RUN. */
		kc->mmio_read = true;
		kc->mmio_len = (uint8_t)run->mmio.len;
		kc->mmio_exit = exit;
	}
}

int kvm_vcpu_run(struct vcpu *vcpu, struct vcpu_exit *exit)
{
	struct kvmcpu *kc = vcpu->engine_data;
	struct kvmvm *kv = vcpu->vm->engine_data;
	struct kvm_run *run = kc->run;

	if (!atomic_load_explicit(&kc->thread_known, memory_order_relaxed)) {
		kc->thread = pthread_self();
		atomic_store(&kc->thread_known, true);
	}
	if (kc->mmio_read) {
		memcpy(run->mmio.data, kc->mmio_exit->mmio.data, kc->mmio_len);
		kc->mmio_read = false;
	}
	if (kvm_pv_complete(kc) < 0) {
		fault(exit, kc->fd, "cannot return a hypercall's result: %s", strerror(errno));
		return 0;
	}
	if (ioctl(kc->fd, KVM_RUN, 0) < 0) {
		if (errno == EINTR || errno == EAGAIN) {
			__atomic_store_n(&run->immediate_exit, 0, __ATOMIC_SEQ_CST);
			kc->eintr++;
			exit->reason = VCPU_EXIT_NONE;
			return 0;
		}
		fault(exit, kc->fd, "KVM_RUN failed: %s", strerror(errno));
		return 0;
	}
	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		if (!kvm_pv_exit(kc, exit))
			kvm_exit_io(kc, (size_t)kv->run_size, exit);
		break;
	case KVM_EXIT_MMIO:
		kvm_exit_mmio(kc, exit);
		break;
	case KVM_EXIT_HLT:
		exit->reason = VCPU_EXIT_HLT;
		break;
	case KVM_EXIT_SHUTDOWN:
		exit->reason = VCPU_EXIT_SHUTDOWN;
		break;
	case KVM_EXIT_SYSTEM_EVENT:
		if (run->system_event.type == KVM_SYSTEM_EVENT_CRASH)
			fault(exit, kc->fd, "the guest reported a crash to KVM");
		else
			exit->reason = VCPU_EXIT_SHUTDOWN;
		break;
	case KVM_EXIT_INTR:
	case KVM_EXIT_IRQ_WINDOW_OPEN:
		exit->reason = VCPU_EXIT_NONE;
		break;
	case KVM_EXIT_FAIL_ENTRY:
		fault(exit, kc->fd,
		      "KVM cannot run this guest: hardware entry failed (reason %#llx)",
		      (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
		break;
	case KVM_EXIT_INTERNAL_ERROR:
		fault(exit, kc->fd, "KVM cannot run this guest: %s (suberror %u)",
		      internal_error_name(run->internal.suberror), run->internal.suberror);
		break;
	default:
		fault(exit, kc->fd, "KVM cannot run this guest: unexpected exit reason %u",
		      run->exit_reason);
		break;
	}
	return 0;
}
