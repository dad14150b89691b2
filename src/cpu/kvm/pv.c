/*
 * The pv hypercall ABI under the kvm engine (docs/pv.md): the PORT method.
 * The guest's `outl %eax, (%dx)` to port 0x5230 is an ordinary KVM_EXIT_IO
 * that KVM hands to user space with the registers untouched; the engine reads
 * them (KVM_GET_REGS) and reports a VCPU_EXIT_HYPERCALL, and puts the result
 * in EAX before the next KVM_RUN. Not VMCALL/VMMCALL: KVM serves those in the
 * kernel (its own hypercalls, Documentation/virt/kvm/x86/hypercalls.rst) and
 * answers unknown numbers with -KVM_ENOSYS without ever exiting to user space.
 *
 * The CPU-state calls become KVM_SET_SREGS/KVM_SET_REGS/KVM_SET_MP_STATE.
 * Every call exits, so the shared page carries no interrupt flag here: a
 * guest store cannot reach the monitor without an exit (PV_FEAT_SHARED_IF
 * is not offered, and the guest uses IRQ_DISABLE/IRQ_ENABLE).
 */
#include <cpuid.h>
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>

#include "../../core/log.h"
#include "../../core/mem.h"
#include "../../core/vm.h"
#include "../../pv/pv.h"
#include "kvm.h"

#define FL_IF (1u << 9)
#define CR0_PE (1u << 0)
#define CR0_WP (1u << 16)
#define CR0_PG (1u << 31)
#define CR4_PSE (1u << 4)
#define CR4_PGE (1u << 7)

/* The TSS the engine keeps in the guest's shared page (Intel SDM vol. 3 §7.2.1). */
#define TSS_ESP0 4
#define TSS_SS0 8
#define TSS_IOMAP 102
#define TSS_SIZE 104

/*
 * Is this port exit a call? A single 4-byte OUT to PV_PORT from CPL 0 only,
 * as the bt engine requires: a ring-3 process given IOPL 3 (or a virtual-8086
 * task whose I/O bitmap lets it) must not load CR3 or stop the VM, and its OUT
 * stays plain port I/O to an unused port. The CPL is SS.DPL, as KVM reports it
 * on VMX and SVM alike (SDM vol. 3 §5.5); CS's RPL would not do in virtual-8086
 * mode, where CS holds a real-mode segment value.
 */
bool kvm_pv_is_call(const struct kvm_run *run, const struct kvm_sregs *s)
{
	return run->io.port == PV_PORT && run->io.direction == KVM_EXIT_IO_OUT &&
	       run->io.size == 4 && run->io.count == 1 && s->ss.dpl == 0;
}

bool kvm_pv_exit(struct kvmcpu *kc, struct vcpu_exit *exit)
{
	struct kvm_run *run = kc->run;
	struct kvm_sregs s;
	struct kvm_regs r;

	if (run->io.port != PV_PORT)
		return false;
	/* either failing: plain port I/O to an unused port */
	if (ioctl(kc->fd, KVM_GET_SREGS, &s) < 0 || !kvm_pv_is_call(run, &s))
		return false;
	if (ioctl(kc->fd, KVM_GET_REGS, &r) < 0)
		return false;
	exit->reason = VCPU_EXIT_HYPERCALL;
	exit->hcall.nr = (uint32_t)r.rax;
	exit->hcall.arg[0] = (uint32_t)r.rbx;
	exit->hcall.arg[1] = (uint32_t)r.rcx;
	exit->hcall.arg[2] = (uint32_t)r.rsi;
	exit->hcall.arg[3] = (uint32_t)r.rdi;
	exit->hcall.arg[4] = (uint32_t)r.rbp;
	exit->hcall.cr3 = s.cr3;
	exit->hcall.ret = -PV_ENOSYS;
	kc->hcall_exit = exit;
	return true;
}

/* Before the next KVM_RUN: the result into EAX (KVM completes the OUT itself). */
int kvm_pv_complete(struct kvmcpu *kc)
{
	struct kvm_regs r;

	if (!kc->hcall_exit)
		return 0;
	if (ioctl(kc->fd, KVM_GET_REGS, &r) < 0)
		return -errno;
	r.rax = (uint32_t)kc->hcall_exit->hcall.ret;
	kc->hcall_exit = NULL;
	return ioctl(kc->fd, KVM_SET_REGS, &r) < 0 ? -errno : 0;
}

static int set_if(struct kvmcpu *kc, bool on)
{
	struct kvm_regs r;

	if (ioctl(kc->fd, KVM_GET_REGS, &r) < 0)
		return -errno;
	r.rflags = on ? r.rflags | FL_IF : r.rflags & ~(uint64_t)FL_IF;
	return ioctl(kc->fd, KVM_SET_REGS, &r) < 0 ? -errno : 0;
}

/*
 * TR's type: a busy 32-bit TSS (11), as LTR leaves it and as VMX's guest-state
 * checks demand (SDM vol. 3 §26.3.1.2). SVM checks nothing, and QEMU's
 * emulated SVM (the nested test bed) aborts on a ring change through a TR
 * cached as busy, as its own LTR never caches one: there, 32-bit available (9).
 */
static uint8_t tss_type(void)
{
	static uint8_t type; /* the vendor does not change: one CPUID (an exit when nested) */
	unsigned a, b, c, d;

	if (type)
		return type;
	__cpuid(0, a, b, c, d);
	(void)a, (void)c, (void)d;
	/* "Auth"enticAMD, "Hygo"nGenuine */
	type = b == 0x68747541u || b == 0x6f677948u ? 9 : 11;
	return type;
}

/* Ring 3 -> 0 entries need a TSS: ring3's own, in the shared page, loaded into TR. */
static int stack_switch(struct vcpu *vcpu, struct kvm_sregs *s, uint32_t ss0, uint32_t esp0)
{
	struct kvmcpu *kc = vcpu->engine_data;
	uint8_t *tss;

	if (!kc->pv_page)
		return -PV_EINVAL; /* the ABI: SHARED_PAGE first (docs/pv.md) */
	tss = mem_ptr(&vcpu->vm->mem, kc->pv_page + PV_SH_ENGINE, TSS_SIZE);
	if (!tss)
		return -PV_EFAULT;
	kc->pv_ss0 = ss0;
	kc->pv_esp0 = esp0;
	memcpy(tss + TSS_ESP0, &esp0, 4);
	memcpy(tss + TSS_SS0, &ss0, 4);
	tss[TSS_IOMAP] = TSS_SIZE; /* no I/O bitmap: ring-3 IN/OUT raise #GP */
	tss[TSS_IOMAP + 1] = 0;
	memset(&s->tr, 0, sizeof(s->tr));
	s->tr.base = kc->pv_page_la + PV_SH_ENGINE;
	s->tr.limit = TSS_SIZE - 1;
	s->tr.type = tss_type();
	s->tr.present = 1;
	kc->pv_tr = true;
	return 0;
}

int64_t kvm_pv_cpu(void *opaque, uint32_t nr, const uint32_t a[5])
{
	struct vcpu *vcpu = opaque;
	struct kvmcpu *kc = vcpu->engine_data;
	struct kvm_sregs s;
	struct kvm_mp_state mp = { .mp_state = KVM_MP_STATE_HALTED };
	uint32_t *page;
	int64_t r = 0;

	switch (nr) {
	case PV_SHARED_PAGE: /* the dispatcher checked a[0] and a[1], where the guest maps it */
		kc->pv_page = a[0];
		kc->pv_page_la = a[1] ? a[1] : a[0];
		page = a[0] ? mem_ptr(&vcpu->vm->mem, a[0], 4096) : NULL;
		if (page)
			page[PV_SH_VERSION / 4] = PV_VERSION;
		if (!kc->pv_tr)
			return 0;
		/* TR's TSS lived in the old page: move it, or forget it with the page */
		if (!page) {
			kc->pv_tr = false;
			return 0;
		}
		if (ioctl(kc->fd, KVM_GET_SREGS, &s) < 0)
			return -PV_EINVAL;
		r = stack_switch(vcpu, &s, kc->pv_ss0, kc->pv_esp0);
		if (r == 0 && ioctl(kc->fd, KVM_SET_SREGS, &s) < 0)
			return -PV_EINVAL;
		return r;
	case PV_IRQ_ENABLE:
	case PV_IRQ_DISABLE:
		return set_if(kc, nr == PV_IRQ_ENABLE) ? -PV_EINVAL : 0;
	case PV_USER_LIMIT:
		/*
		 * Hardware paging already keeps ring 3 out of supervisor pages:
		 * nothing to change in the CPU. The monitor keeps the limit for
		 * MMU_UPDATE, which refuses user PDEs from it up (docs/pv.md).
		 */
		vcpu->pv_user_limit = a[0] == PV_USER_LIMIT_NONE ? 0 : a[0];
		return 0;
	case PV_HALT: /* STI; HLT: KVM's in-kernel LAPIC wakes the vCPU */
		if (set_if(kc, true) || ioctl(kc->fd, KVM_SET_MP_STATE, &mp) < 0)
			return -PV_EINVAL;
		return 0;
	}
	if (ioctl(kc->fd, KVM_GET_SREGS, &s) < 0)
		return -PV_EINVAL;
	if (kc->pv_tr) /* KVM's SVM code reads TR back as busy: put our type back */
		s.tr.type = tss_type();
	switch (nr) {
	case PV_SET_IDT:
		s.idt.base = a[0];
		s.idt.limit = (uint16_t)a[1];
		break;
	case PV_SET_GDT:
		s.gdt.base = a[0];
		s.gdt.limit = (uint16_t)a[1];
		break;
	case PV_STACK_SWITCH:
		r = stack_switch(vcpu, &s, a[0], a[1]);
		break;
	case PV_SET_CR3: /* and the ABI's one paging mode: PSE, WP (docs/pv.md) */
		s.cr3 = a[0];
		s.cr0 |= CR0_PE | CR0_PG | CR0_WP;
		s.cr4 |= CR4_PSE;
		page = kc->pv_page ? mem_ptr(&vcpu->vm->mem, kc->pv_page, 4096) : NULL;
		if (page)
			page[PV_SH_CR3 / 4] = a[0];
		/* a CR3 load flushes, even of the same CR3 (SDM §4.10.4.1) */
		__attribute__((fallthrough));
	case PV_TLB_FLUSH:
		/*
		 * No ioctl flushes a guest's TLB, and KVM_SET_SREGS with the same
		 * CR3 does not; a CR4.PGE change does (SDM vol. 3 §4.10.4.1), and
		 * KVM_SET_SREGS with a changed CR4 resets KVM's MMU context. So:
		 * toggle PGE, then put it back. One page is flushed as everything.
		 */
		s.cr4 ^= CR4_PGE;
		if (ioctl(kc->fd, KVM_SET_SREGS, &s) < 0)
			return -PV_EINVAL;
		s.cr4 ^= CR4_PGE;
		break;
	default:
		return -PV_ENOSYS;
	}
	if (r == 0 && ioctl(kc->fd, KVM_SET_SREGS, &s) < 0) {
		log_guest("pv: hypercall %u: KVM_SET_SREGS failed: %s", nr, strerror(errno));
		return -PV_EINVAL;
	}
	return r;
}
