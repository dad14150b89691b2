/*
 * MMU_UPDATE: page-table writes in batches, as Xen's mmu_update (Xen's
 * include/public/xen.h, "MMU_NORMAL_PT_UPDATE"). A request names the entry by
 * its guest-physical address and says whether it is a PTE or a PDE (the low
 * two bits); an entry inside the page CR3 names is a PDE whatever it claims.
 * A present entry must map guest RAM only: a 4 KiB frame, a page table, or a
 * 4 MiB page (PDE with PS, Intel SDM vol. 3 §4.3) that lies wholly inside
 * RAM, and never the monitor's top 4 MiB (PDE 1023); after USER_LIMIT, a
 * PDE from the limit up must not grant user access. The whole batch is
 * checked before the first write, so a bad request changes nothing. These
 * checks keep the ABI's answers consistent; the engines' MMUs (bt's shadow
 * tables, KVM's) are what confine the guest.
 *
 * No flush is implied: as after a store to a page table on real hardware,
 * the guest flushes (TLB_FLUSH) what it changed.
 */
#include <string.h>

#include "pv.h"

#define PTE_P 0x1u
#define PDE_PS 0x80u

int pv_mmu_check(uint64_t ram_size, unsigned kind, uint32_t ofs, uint32_t val)
{
	uint64_t base, size;

	if (!(val & PTE_P))
		return 0; /* a not-present entry maps nothing: the other bits are the guest's */
	if (kind == PV_MMU_PDE && ofs / 4 == PV_PDE_MONITOR)
		return -PV_EPERM;
	/* bit 7 is PS only in a PDE; in a PTE it is PAT (SDM vol. 3 §4.3) */
	if (kind == PV_MMU_PDE && (val & PDE_PS)) {
		/* bits 13-21 of a 4 MiB PDE are reserved without PSE-36: must be 0 */
		if (val & 0x003fe000u)
			return -PV_EINVAL;
		base = val & 0xffc00000u;
		size = 4u << 20;
	} else {
		base = val & 0xfffff000u;
		size = 4096;
	}
	return base < ram_size && size <= ram_size - base ? 0 : -PV_EPERM;
}

/* One request's checks: 0, or the error the whole batch gets. */
static int check_req(const struct pv_env *env, const struct pv_mmu_req *q)
{
	unsigned kind = q->ptr & 3;
	uint32_t at = q->ptr & ~3u;
	int r;

	if (kind > PV_MMU_PDE)
		return -PV_EINVAL;
	if ((uint64_t)at + 4 > env->ram_size)
		return -PV_EFAULT;
	/* the kind is the guest's word: the live directory's entries are PDEs */
	if ((at & ~0xfffu) == (env->cr3 & ~0xfffu))
		kind = PV_MMU_PDE;
	r = pv_mmu_check(env->ram_size, kind, at & 0xfff, q->val);
	if (r)
		return r;
	/* the guest declared everything from user_limit up supervisor-only */
	if (kind == PV_MMU_PDE && env->user_limit &&
	    (q->val & (PTE_P | PV_PDE_U)) == (PTE_P | PV_PDE_U) &&
	    (at & 0xfff) / 4 >= env->user_limit >> 22)
		return -PV_EPERM;
	return 0;
}

static void write_entry(const struct pv_env *env, uint32_t at, uint32_t val)
{
	__atomic_store_n((uint32_t *)(env->ram + at), val, __ATOMIC_RELAXED);
	if (env->written)
		env->written(env->opaque, at);
}

/*
 * Xen's update_va_mapping: the guest names the page by its linear address,
 * and the entry is the one CR3's directory leads to (a PDE without PS, then
 * the PTE); the flush, if asked, is the engine's (the dispatcher's caller).
 */
int64_t pv_update_va(const struct pv_env *env, uint32_t la, uint32_t val, uint32_t flags)
{
	uint64_t pd = env->cr3 & ~0xfffu;
	uint32_t pde;
	struct pv_mmu_req q;
	int r;

	if ((la & 0xfff) || la >= PV_USER_LIMIT_NONE || (flags & ~PV_UVA_INVLPG))
		return -PV_EINVAL;
	if (pd + 4096 > env->ram_size)
		return -PV_EFAULT;
	memcpy(&pde, env->ram + pd + (la >> 22) * 4, 4);
	if (!(pde & PTE_P) || (pde & PDE_PS))
		return -PV_EINVAL; /* no page table maps la: MMU_UPDATE is for directories */
	q.ptr = (pde & ~0xfffu) + ((la >> 12) & 0x3ff) * 4;
	q.val = val;
	r = check_req(env, &q);
	if (r)
		return r;
	write_entry(env, q.ptr, val);
	return 0;
}

int64_t pv_mmu_update(const struct pv_env *env, uint32_t gpa, uint32_t count)
{
	struct pv_mmu_req req[PV_MMU_MAX];
	uint64_t len = (uint64_t)count * sizeof(req[0]);

	if (count == 0 || count > PV_MMU_MAX || (gpa & 3))
		return -PV_EINVAL;
	if (gpa > env->ram_size || len > env->ram_size - gpa)
		return -PV_EFAULT;
	/* one copy: the guest (another vCPU) cannot change a request between check and use */
	memcpy(req, env->ram + gpa, len);
	for (uint32_t i = 0; i < count; i++) {
		int r = check_req(env, &req[i]);

		if (r)
			return r;
	}
	for (uint32_t i = 0; i < count; i++)
		write_entry(env, req[i].ptr & ~3u, req[i].val);
	return count;
}
