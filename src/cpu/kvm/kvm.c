/*
 * The kvm engine: the VM half. Checks that this host can run guests under KVM,
 * creates the VM (Documentation/virt/kvm/api.rst §4: KVM_CREATE_VM,
 * KVM_SET_USER_MEMORY_REGION, KVM_CREATE_IRQCHIP, KVM_SET_GSI_ROUTING,
 * KVM_CREATE_PIT2) and routes device interrupt lines with KVM_IRQ_LINE.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../../core/log.h"
#include "../../core/vm.h"
#include "kvm.h"
#include "kvm_fd.h"

#define KVM_API_VERSION_WANTED 12

/* Does /proc/cpuinfo list VT-x or AMD-V? Reads only the first CPU's flags. */
static bool host_has_hw_virt(void)
{
	char line[8192];
	bool found = false;
	FILE *f = fopen("/proc/cpuinfo", "re");

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "flags", 5))
			continue;
		found = strstr(line, " vmx") || strstr(line, " svm");
		break;
	}
	fclose(f);
	return found;
}

static int kvm_open(char *why, size_t len)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);

	if (fd >= 0)
		return fd;
	if (errno == ENOENT)
		snprintf(why, len, "--engine kvm: /dev/kvm does not exist (no KVM module loaded, "
				   "or no hardware virtualization); use --engine bt");
	else if (errno == EACCES || errno == EPERM)
		snprintf(why, len, "--engine kvm: no permission to open /dev/kvm (join the kvm "
				   "group); use --engine bt");
	else
		snprintf(why, len, "--engine kvm: cannot open /dev/kvm: %s; use --engine bt",
			 strerror(errno));
	return -errno;
}

static int kvm_max_vcpus(int kvm_fd)
{
	int n = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);

	if (n <= 0)
		n = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
	return n > 0 ? n : 4; /* the API's documented default when neither answers */
}

/*
 * Fast and side-effect free: main.c calls it for --engine kvm and to decide
 * --engine auto. Opens /dev/kvm and asks system ioctls only; creates no VM.
 */
static int kvm_check(const struct vm_config *cfg, char *why, size_t len)
{
	static const struct {
		int cap;
		const char *name;
	} needed[] = {
		{ KVM_CAP_IRQCHIP, "an in-kernel irqchip" },
		{ KVM_CAP_PIT2, "an in-kernel PIT" },
		{ KVM_CAP_IRQ_ROUTING, "interrupt routing" },
		{ KVM_CAP_USER_MEMORY, "user memory regions" },
		{ KVM_CAP_SET_TSS_ADDR, "KVM_SET_TSS_ADDR" },
		{ KVM_CAP_EXT_CPUID, "KVM_GET_SUPPORTED_CPUID" },
		{ KVM_CAP_IMMEDIATE_EXIT, "immediate_exit" },
		{ KVM_CAP_MP_STATE, "KVM_SET_MP_STATE" },
	};
	int fd, version, max, err = 0;
	bool pvm = access("/sys/module/kvm_pvm", F_OK) == 0;

	fd = kvm_open(why, len);
	if (fd < 0)
		return fd;
	version = ioctl(fd, KVM_GET_API_VERSION, 0);
	if (version != KVM_API_VERSION_WANTED) {
		snprintf(why, len, "--engine kvm: /dev/kvm speaks KVM API version %d, ring3 needs %d; "
				   "use --engine bt", version, KVM_API_VERSION_WANTED);
		err = -ENOTSUP;
		goto out;
	}
	/*
	 * kvm_pvm provides /dev/kvm on hosts without VT-x/AMD-V, but it cannot
	 * run unmodified kernels (they stall or triple-fault): refuse it rather
	 * than hang.
	 */
	if (!host_has_hw_virt() || (pvm && access("/sys/module/kvm_intel", F_OK) &&
				    access("/sys/module/kvm_amd", F_OK))) {
		if (pvm)
			snprintf(why, len, "--engine kvm: this host has no hardware virtualization "
					   "(/dev/kvm is kvm_pvm, which cannot run unmodified "
					   "guests); use --engine bt");
		else
			snprintf(why, len, "--engine kvm: this host has no hardware virtualization "
					   "(no vmx or svm flag in /proc/cpuinfo); use --engine bt");
		err = -ENODEV;
		goto out;
	}
	for (size_t i = 0; i < sizeof(needed) / sizeof(needed[0]); i++) {
		if (ioctl(fd, KVM_CHECK_EXTENSION, needed[i].cap) <= 0) {
			snprintf(why, len, "--engine kvm: this host's KVM lacks %s; use --engine bt",
				 needed[i].name);
			err = -ENOTSUP;
			goto out;
		}
	}
	max = kvm_max_vcpus(fd);
	if (cfg->cpus > max) {
		snprintf(why, len, "--cpus %d: this host's KVM allows at most %d vCPUs", cfg->cpus,
			 max);
		err = -EINVAL;
	}
out:
	close(fd);
	return err;
}

/*
 * GSI routing as on a PC with an IOAPIC, and as QEMU sets it: ISA IRQ n goes
 * to 8259 input n and IOAPIC pin n, except that IRQ 0 (the PIT, which KVM's
 * in-kernel PIT raises as GSI 0) goes to IOAPIC pin 2 — the MADT's interrupt
 * source override says the same — and GSI 2 (the cascade) goes nowhere.
 */
static int kvm_set_routing(struct kvmvm *kv)
{
	struct kvm_irq_routing *r;
	unsigned n = 0;
	int err = 0;

	r = calloc(1, sizeof(*r) + 48 * sizeof(r->entries[0]));
	if (!r)
		return -ENOMEM;
	for (unsigned gsi = 0; gsi < 24; gsi++) {
		if (gsi < 16 && gsi != 2) {
			r->entries[n].gsi = gsi;
			r->entries[n].type = KVM_IRQ_ROUTING_IRQCHIP;
			r->entries[n].u.irqchip.irqchip = gsi < 8 ? KVM_IRQCHIP_PIC_MASTER
								  : KVM_IRQCHIP_PIC_SLAVE;
			r->entries[n].u.irqchip.pin = gsi % 8;
			n++;
		}
		if (gsi == 2)
			continue;
		r->entries[n].gsi = gsi;
		r->entries[n].type = KVM_IRQ_ROUTING_IRQCHIP;
		r->entries[n].u.irqchip.irqchip = KVM_IRQCHIP_IOAPIC;
		r->entries[n].u.irqchip.pin = gsi == 0 ? 2 : gsi;
		n++;
	}
	r->nr = n;
	if (ioctl(kv->vm_fd, KVM_SET_GSI_ROUTING, r) < 0)
		err = -errno;
	free(r);
	return err;
}

/*
 * Every RAM region of the memfd mapping becomes one memory slot. Huge pages,
 * where the host allows them for shared memory (transparent_hugepage/
 * shmem_enabled), let KVM map guest RAM with 2 MiB pages: fewer faults.
 */
static int kvm_set_memory(struct kvmvm *kv, const struct guest_mem *mem)
{
	madvise(mem->host, mem->size, MADV_HUGEPAGE); /* only advice: failure is fine */
	for (int i = 0; i < mem->nr_regions; i++) {
		const struct mem_region *r = &mem->region[i];
		struct kvm_userspace_memory_region slot = {
			.slot = (uint32_t)i,
			.guest_phys_addr = r->gpa,
			.memory_size = r->size,
			.userspace_addr = (uint64_t)(uintptr_t)(mem->host + r->offset),
		};

		if (ioctl(kv->vm_fd, KVM_SET_USER_MEMORY_REGION, &slot) < 0)
			return -errno;
	}
	return 0;
}

static int kvm_init(struct vm *vm)
{
	struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };
	uint64_t idmap = KVM_IDENTITY_MAP_ADDR;
	struct kvmvm *kv;
	const char *step;
	char why[256];
	int err;

	kv = calloc(1, sizeof(*kv));
	if (!kv)
		return -ENOMEM;
	kv->vm_fd = -1;
	kv->kvm_fd = kvm_open(why, sizeof(why));
	if (kv->kvm_fd < 0) {
		log_msg("%s", why);
		err = kv->kvm_fd;
		goto err_free;
	}
	step = "KVM_GET_VCPU_MMAP_SIZE";
	kv->run_size = ioctl(kv->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (kv->run_size < (int)sizeof(struct kvm_run))
		goto err_errno;
	kv->tsc_deadline = ioctl(kv->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_TSC_DEADLINE_TIMER) > 0;
	step = "KVM_GET_SUPPORTED_CPUID";
	err = kvm_cpuid_fetch(kv);
	if (err)
		goto err_step;
	step = "KVM_CREATE_VM";
	do
		kv->vm_fd = ioctl(kv->kvm_fd, KVM_CREATE_VM, 0);
	while (kv->vm_fd < 0 && errno == EINTR);
	if (kv->vm_fd < 0)
		goto err_errno;
	/* Both must be set before the first vCPU exists. */
	step = "KVM_SET_TSS_ADDR";
	if (ioctl(kv->vm_fd, KVM_SET_TSS_ADDR, KVM_TSS_ADDR) < 0)
		goto err_errno;
	step = "KVM_SET_IDENTITY_MAP_ADDR";
	if (ioctl(kv->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_SET_IDENTITY_MAP_ADDR) > 0 &&
	    ioctl(kv->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &idmap) < 0)
		goto err_errno;
	step = "KVM_CREATE_IRQCHIP";
	if (ioctl(kv->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0)
		goto err_errno;
	step = "KVM_SET_GSI_ROUTING";
	err = kvm_set_routing(kv);
	if (err)
		goto err_step;
	step = "KVM_CREATE_PIT2";
	if (ioctl(kv->vm_fd, KVM_CREATE_PIT2, &pit) < 0)
		goto err_errno;
	step = "KVM_SET_USER_MEMORY_REGION";
	err = kvm_set_memory(kv, &vm->mem);
	if (err)
		goto err_step;
	step = "sigaction(SIGUSR1)";
	err = kvm_signal_init();
	if (err)
		goto err_step;
	vm->engine_data = kv;
	return 0;

err_errno:
	err = -errno;
err_step:
	log_msg("kvm engine: %s failed: %s", step, strerror(-err));
	if (kv->vm_fd >= 0)
		close(kv->vm_fd);
	close(kv->kvm_fd);
	free(kv->cpuid);
err_free:
	free(kv);
	return err;
}

/* KVM_IRQ_LINE: the in-kernel PIC and IOAPIC see the level through the routing above. */
static void kvm_irq_line(struct vm *vm, unsigned gsi, int level)
{
	struct kvmvm *kv = vm->engine_data;
	struct kvm_irq_level irq = { .irq = gsi, .level = level ? 1 : 0 };

	if (!kv)
		return;
	atomic_fetch_add_explicit(&kv->irq_lines, 1, memory_order_relaxed);
	if (ioctl(kv->vm_fd, KVM_IRQ_LINE, &irq) < 0)
		log_guest("kvm engine: KVM_IRQ_LINE %u: %s", gsi, strerror(errno));
}

static void kvm_print_stats(struct vm *vm, FILE *f)
{
	struct kvmvm *kv = vm->engine_data;
	uint64_t eintr = 0;

	if (!kv)
		return;
	for (int i = 0; i < vm->nr_vcpus; i++)
		if (vm->vcpu[i] && vm->vcpu[i]->engine_data)
			eintr += ((struct kvmcpu *)vm->vcpu[i]->engine_data)->eintr;
	fprintf(f, "  kvm: %" PRIu64 " irq line changes, %" PRIu64 " kicks, %" PRIu64
		   " KVM_RUN interrupted by a signal\n",
		(uint64_t)kv->irq_lines, (uint64_t)kv->kicks, eintr);
}

static void kvm_destroy(struct vm *vm)
{
	struct kvmvm *kv = vm->engine_data;

	for (int i = 0; i < vm->nr_vcpus; i++)
		if (vm->vcpu[i])
			kvm_vcpu_destroy(vm->vcpu[i]);
	if (!kv)
		return;
	close(kv->vm_fd);
	close(kv->kvm_fd);
	free(kv->cpuid);
	free(kv);
	vm->engine_data = NULL;
}

const struct cpu_engine kvm_engine = {
	.name = "kvm",
	.flags = ENGINE_IRQCHIP_IN_KERNEL,
	.check = kvm_check,
	.init = kvm_init,
	.vcpu_init = kvm_vcpu_init,
	.vcpu_run = kvm_vcpu_run,
	.vcpu_kick = kvm_vcpu_kick,
	.pv_cpu = kvm_pv_cpu,
	.irq_line = kvm_irq_line,
	.print_stats = kvm_print_stats,
	.destroy = kvm_destroy,
	.ioeventfd = kvm_ioeventfd, .msi_route = kvm_msi_route, .irqfd = kvm_irqfd, .msi = kvm_msi,
};
