/*
 * Hypercall dispatch (docs/pv.md, "Calls"): one table, by number. Each call
 * says where it is served and how its arguments are checked; an unknown
 * number or a bad argument is an error the guest sees in EAX, never a
 * monitor failure. This file has no engine in it: engines call pv_dispatch
 * with the registers they caught, and the monitor's run loop calls
 * pv_hypercall for what they forward.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "../core/log.h"
#include "../core/mem.h"
#include "../core/vm.h"
#include "pv.h"

enum where { W_NONE, W_HERE, W_CPU, W_VM };

static const struct {
	const char *name;
	enum where where;
} calls[PV_NR_CALLS] = {
	[PV_VERSION_CALL] = { "version", W_HERE },    [PV_CONSOLE_WRITE] = { "console_write", W_VM },
	[PV_SHUTDOWN] = { "shutdown", W_VM },	      [PV_SHARED_PAGE] = { "shared_page", W_CPU },
	[PV_HALT] = { "halt", W_CPU },		      [PV_YIELD] = { "yield", W_VM },
	[PV_SET_TIMER] = { "set_timer", W_VM },	      [PV_SET_IDT] = { "set_idt", W_CPU },
	[PV_SET_GDT] = { "set_gdt", W_CPU },	      [PV_STACK_SWITCH] = { "stack_switch", W_CPU },
	[PV_SET_CR3] = { "set_cr3", W_CPU },	      [PV_MMU_UPDATE] = { "mmu_update", W_HERE },
	[PV_TLB_FLUSH] = { "tlb_flush", W_CPU },      [PV_IRQ_ENABLE] = { "irq_enable", W_CPU },
	[PV_IRQ_DISABLE] = { "irq_disable", W_CPU },  [PV_USER_LIMIT] = { "user_limit", W_CPU },
	[PV_UPDATE_VA] = { "update_va", W_HERE },
};

static const char *call_name(uint32_t nr)
{
	return nr < PV_NR_CALLS ? calls[nr].name : "(no such call)";
}

static bool in_ram(const struct pv_env *env, uint64_t gpa, uint64_t len)
{
	return gpa <= env->ram_size && len <= env->ram_size - gpa;
}

/* The checks a CPU-state call's arguments get before any engine sees them. */
static int64_t check_cpu_args(const struct pv_env *env, uint32_t nr, const uint32_t arg[5])
{
	switch (nr) {
	case PV_SHARED_PAGE:
		if (arg[0] == 0)
			return 0; /* unregister */
		/* the linear address: a page, not in the monitor's top 4 MiB (0: the gpa) */
		if ((arg[0] & 0xfff) || (arg[1] & 0xfff) || arg[1] >= 0xffc00000u)
			return -PV_EINVAL;
		return in_ram(env, arg[0], 4096) ? 0 : -PV_EFAULT;
	case PV_SET_IDT:
		/* 256 gates of 8 bytes at most (SDM vol. 3 §6.10); the limit is bytes - 1 */
		return arg[1] > 0x7ff ? -PV_EINVAL : 0;
	case PV_SET_GDT:
		return arg[1] > 0xffff ? -PV_EINVAL : 0;
	case PV_STACK_SWITCH:
		/* a ring-0 data selector from the GDT: RPL 0, TI 0, not null (SDM §7.2.1) */
		return (arg[0] & 7) || arg[0] < 8 || arg[0] > 0xffff ? -PV_EINVAL : 0;
	case PV_SET_CR3:
		if (arg[0] & 0xfff)
			return -PV_EINVAL;
		return in_ram(env, arg[0], 4096) ? 0 : -PV_EFAULT;
	case PV_TLB_FLUSH:
		return arg[0] != PV_FLUSH_ALL && arg[0] >= 0xffc00000u ? -PV_EINVAL : 0;
	case PV_USER_LIMIT:
		/* a whole number of PDEs, so that the split is the page directory's (the
		 * largest, PV_USER_LIMIT_NONE, is the last 4 MiB boundary: no upper check) */
		if ((arg[0] & 0x3fffffu) || arg[0] < PV_USER_LIMIT_MIN)
			return -PV_EINVAL;
		return 0;
	default:
		return 0;
	}
}

int64_t pv_dispatch(const struct pv_env *env, uint32_t nr, const uint32_t arg[5])
{
	int64_t r;

	/* a forwarded call is counted once, where it is served */
	if (nr < PV_NR_CALLS && calls[nr].where == W_VM && !env->vcpu)
		return PV_FORWARD;
	if (env->counts)
		env->counts[nr < PV_NR_CALLS ? nr : PV_NR_CALLS]++;
	if (nr >= PV_NR_CALLS)
		return -PV_ENOSYS;
	switch (calls[nr].where) {
	case W_HERE:
		if (nr == PV_VERSION_CALL)
			return PV_VERSION;
		if (nr == PV_MMU_UPDATE)
			return pv_mmu_update(env, arg[0], arg[1]);
		/* UPDATE_VA: the write here, the flush as TLB_FLUSH of the page */
		if ((arg[2] & PV_UVA_INVLPG) && !env->cpu)
			return -PV_ENOSYS;
		r = pv_update_va(env, arg[0], arg[1], arg[2]);
		if (r || !(arg[2] & PV_UVA_INVLPG))
			return r;
		uint32_t flush[5] = { arg[0] };
		r = env->cpu(env->opaque, PV_TLB_FLUSH, flush);
		return r < 0 ? r : 0;
	case W_CPU:
		r = check_cpu_args(env, nr, arg);
		if (r < 0)
			return r;
		return env->cpu ? env->cpu(env->opaque, nr, arg) : -PV_ENOSYS;
	case W_VM:
		return pv_vm_call(env->vcpu, env, nr, arg);
	case W_NONE:
		break;
	}
	return -PV_ENOSYS;
}

/*
 * A call an engine handed to the run loop. Numbers and arguments are the
 * guest's 32-bit registers; anything wider was not a call.
 */
int64_t pv_hypercall(struct vcpu *vcpu, uint64_t nr, const uint64_t arg[5], uint64_t cr3)
{
	struct vm *vm = vcpu->vm;
	const struct cpu_engine *e = vm->engine;
	uint32_t a[5];
	struct pv_env env = {
		.ram = vm->mem.host,
		.ram_size = vm->mem.region[0].size, /* the low RAM, below the PCI hole (mem.h) */
		.cr3 = (uint32_t)cr3,
		.user_limit = vcpu->pv_user_limit,
		.vcpu = vcpu,
		.counts = vcpu->stats.hcall,
	};
	int64_t r;

	if (e->pv_cpu) {
		env.cpu = e->pv_cpu;
		env.opaque = vcpu;
	}
	for (int i = 0; i < 5; i++)
		a[i] = (uint32_t)arg[i];
	r = pv_dispatch(&env, nr > UINT32_MAX ? UINT32_MAX : (uint32_t)nr, a);
	if (r == PV_FORWARD) /* cannot happen with env.vcpu set; a guest must not see it */
		r = -PV_ENOSYS;
	if (r < 0)
		log_guest("pv: hypercall %" PRIu64 " (%s) returned %" PRId64, nr,
			  call_name(nr > UINT32_MAX ? UINT32_MAX : (uint32_t)nr), r);
	return r;
}

void pv_print_stats(struct vm *vm, FILE *f)
{
	uint64_t n[PV_STATS_SLOTS] = { 0 }, total = 0;

	for (int i = 0; i < vm->nr_vcpus; i++)
		for (int c = 0; c < PV_STATS_SLOTS; c++) {
			n[c] += vm->vcpu[i]->stats.hcall[c];
			if (vm->vcpu[i]->stats.hcall_engine)
				n[c] += vm->vcpu[i]->stats.hcall_engine[c];
		}
	for (int c = 0; c < PV_STATS_SLOTS; c++)
		total += n[c];
	if (!total)
		return;
	fprintf(f, "  hypercalls by number:\n");
	for (int c = 0; c < PV_STATS_SLOTS; c++) {
		if (!n[c])
			continue;
		if (c < PV_NR_CALLS)
			fprintf(f, "    %3d %-14s %12" PRIu64 "\n", c, calls[c].name, n[c]);
		else
			fprintf(f, "    %3s %-14s %12" PRIu64 "\n", "?", "(no such call)", n[c]);
	}
}
