/*
 * Shadow paging: guest-virtual pages below BT_TOP are mmap()s of the guest's
 * RAM memfd at the guest-physical offset, made lazily on host page faults by
 * walking the guest's two-level page tables (4 KiB and 4 MiB pages), setting
 * A and D as the hardware does, and flushed as the TLB rules allow (CR3
 * loads, INVLPG). Intel SDM vol. 3 ch. 4 (§4.3 32-bit paging, §4.7 #PF
 * error codes, §4.8 A/D bits, §4.10 TLBs).
 */
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include "runtime.h"

#define NPAGES (BT_TOP >> 12)
#define NWORDS (NPAGES / 64)
#define NREGIONS (BT_TOP >> 22) /* 4 MiB regions */
#define MAX_MAPS 50000		/* stay well below vm.max_map_count (65530) */

/*
 * Per guest-virtual page: mapped in the shadow, mapped writable, global,
 * and "kernel-only": mapped with rights ring 3 does not have (a supervisor
 * page, or a read-only page written with CR0.WP=0). Ring 3 must fault on
 * kernel-only pages as on real hardware, also through a host flat selector
 * it loaded natively, so they are hidden (PROT_NONE) whenever the CPU is at
 * CPL 3. Lazily: entering CPL 3 hides only the pages the kernel exposed since
 * it last left it; at CPL 0 a hidden page is shown again when the kernel
 * touches it (a host fault). A kernel with thousands of mapped pages thus
 * pays per system call for the few it uses (Linux: entry code, stack, a
 * few structures), not for all of them.
 */
static uint64_t map_bits[NWORDS], w_bits[NWORDS], glob_bits[NWORDS], sup_bits[NWORDS];
static uint64_t hidden_bits[NWORDS]; /* kernel-only pages that are PROT_NONE now */
static uint64_t exposed_words[NWORDS / 64]; /* words of sup_bits with exposed pages */
static uint32_t vpage_pa[NPAGES]; /* the guest-physical page each mapped virtual page shows */
/*
 * Guest-physical pages that hold translated code: every shadow mapping of
 * them is read-only, so a guest write faults and drops the translations
 * (self-modifying code, Intel SDM vol. 3 §11.6).
 */
#define CODE_PAGES ((3ull << 30) >> 12)
static uint64_t code_bits[CODE_PAGES / 64];
static uint16_t region_pages[NREGIONS];
static uint64_t active[(NREGIONS + 63) / 64]; /* regions that may have pages: what to scan */
/*
 * Regions mapped as one 4 MiB page: BIG_MAPPED, and BIG_W if the PDE granted
 * a writable mapping. The per-page w_bits cannot say that: translated code
 * makes single pages of it read-only.
 */
#define BIG_MAPPED 1u
#define BIG_W 2u
static uint8_t region_big[NREGIONS];
static unsigned nr_maps;
static unsigned n_global; /* pages mapped as global (a count that may run high: a hint) */
static bool identity; /* paging off: all RAM below BT_TOP is mapped at its address */

/*
 * The runs hide_exposed() hid on the last way out to CPL 3: the pages the
 * kernel used in its last stay. It will most likely use them again at its
 * next entry (its stack, the entry code's data), so they are shown again
 * at once when it is entered — an mprotect each instead of a host fault and
 * an mprotect.
 */
#define RECENT_RUNS 8
static struct {
	uint32_t pg, n;
} recent[RECENT_RUNS];
static unsigned n_recent;

/*
 * The last #PF reflected to the guest, to prefill its page when the guest
 * returns to the faulting code: a kernel fixing a demand fault writes the
 * entry (not-present to present needs no INVLPG, SDM §4.10.4.3) and IRETs
 * to the same instruction, which would fault on the host again. Only that
 * return counts — the same CR3 and EIP: a kernel that switched process
 * meanwhile returns to other tables, whose entries the walk must not touch.
 * mmu_fault notes the fault (pending), mmu_pf_delivered its EIP (armed).
 */
static struct {
	bool pending, armed;
	uint32_t la, cr3, eip;
	unsigned acc;
} pf_retry;

static bool prefill(uint32_t la, unsigned acc);
static void fault_around(uint32_t la);

static bool bit(const uint64_t *b, uint32_t pg)
{
	return b[pg / 64] >> (pg % 64) & 1;
}

static void set_bits(uint64_t *b, uint32_t pg, uint32_t n, bool v)
{
	for (uint32_t i = pg; i < pg + n; i++) {
		if (v)
			b[i / 64] |= 1ull << (i % 64);
		else
			b[i / 64] &= ~(1ull << (i % 64));
	}
}

void *mmu_phys(uint64_t pa, uint32_t len)
{
	if (pa >= rt.ram_size || len > rt.ram_size - pa)
		return NULL;
	return rt.ram + pa;
}

bool mmu_is_code(uint64_t pa)
{
	uint64_t pg = pa >> 12;

	return pg < CODE_PAGES && (code_bits[pg / 64] >> (pg % 64) & 1);
}

/* A write to a page with translations: drop them (the page is data again until retranslated). */
static void smc(uint64_t pa)
{
	uint64_t pg = pa >> 12;

	code_bits[pg / 64] &= ~(1ull << (pg % 64));
	rt.st->smc_writes++;
	tcrun_code_written(pa & ~0xfffull);
}

/* The runtime writes guest RAM at pa: translations of that page go first. */
void mmu_note_write(uint64_t pa)
{
	if (mmu_is_code(pa))
		smc(pa);
}

static uint32_t phys_read32(uint64_t pa)
{
	uint32_t *p = mmu_phys(pa, 4);

	return p ? *p : 0; /* a page table outside RAM reads as "not present" */
}

static void phys_or32(uint64_t pa, uint32_t bits)
{
	uint32_t *p = mmu_phys(pa, 4);

	if (p && (*p & bits) != bits)
		__atomic_or_fetch(p, bits, __ATOMIC_RELAXED);
}

struct walk {
	uint64_t pa;
	bool user, write, global, big;
	bool dirty; /* D was already set before this walk */
};

/*
 * The guest's page walk for one access (acc: ACC_W, ACC_U). 0, or -1 with a
 * #PF in *f. Sets A (and D for writes) in the entries, as the CPU would.
 */
/*
 * May ring 3 use la through these entries (a 4 MiB page: pte is the PDE)?
 * Both must say U/S (SDM vol. 3 §4.6.1), and a pv guest declared everything
 * from its USER_LIMIT up supervisor-only (docs/pv.md).
 */
static bool user_entry(uint32_t la, uint32_t pde, uint32_t pte)
{
	if (rt.sh->pv.user_limit && la >= rt.sh->pv.user_limit)
		return false;
	return (pde & 4) && (pte & 4);
}

static int walk(uint32_t la, unsigned acc, struct walk *w, struct bt_fault *f)
{
	struct bt_vcpu *c = rt.cpu;
	uint64_t pde_pa = (c->cr3 & 0xfffff000u) + (la >> 22) * 4, pte_pa = 0;
	uint32_t pde = phys_read32(pde_pa), pte;
	unsigned err = acc & (PFERR_W | PFERR_U);

	if (!(pde & 1))
		goto fault;
	if ((pde & 0x80) && (c->cr4 & CR4_PSE)) {
		w->big = true;
		w->pa = (pde & 0xffc00000u) | (la & 0x3fffff);
		w->user = user_entry(la, pde, pde);
		w->write = pde & 2;
		w->global = (pde & 0x100) && (c->cr4 & CR4_PGE);
		w->dirty = pde & 0x40;
	} else {
		pte_pa = (pde & 0xfffff000u) + ((la >> 12) & 0x3ff) * 4;
		pte = phys_read32(pte_pa);
		if (!(pte & 1))
			goto fault;
		w->big = false;
		w->pa = (pte & 0xfffff000u) | (la & 0xfff);
		w->user = user_entry(la, pde, pte);
		w->write = (pde & 2) && (pte & 2);
		w->global = (pte & 0x100) && (c->cr4 & CR4_PGE);
		w->dirty = pte & 0x40;
	}
	if ((acc & ACC_U) && !w->user)
		goto prot;
	if ((acc & ACC_W) && !w->write && ((acc & ACC_U) || (c->cr0 & CR0_WP)))
		goto prot;
	phys_or32(pde_pa, 0x20);
	if (w->big) {
		if (acc & ACC_W)
			phys_or32(pde_pa, 0x40);
	} else {
		phys_or32(pte_pa, (acc & ACC_W) ? 0x60 : 0x20);
	}
	return 0;
prot:
	err |= PFERR_P;
fault:
	f->vec = EXC_PF;
	f->err = err;
	f->has_err = true;
	f->cr2 = la;
	return -1;
}

int mmu_translate(uint32_t la, unsigned acc, uint64_t *pa, struct bt_fault *f)
{
	struct walk w;

	if (!(rt.cpu->cr0 & CR0_PG)) {
		*pa = la;
		return 0;
	}
	if (walk(la, acc, &w, f))
		return -1;
	*pa = w.pa;
	return 0;
}

int mmu_peek(uint32_t la, uint64_t *pa, bool *user)
{
	const struct bt_vcpu *c = rt.cpu;
	uint32_t pde, pte;

	if (user)
		*user = true;
	if (!(c->cr0 & CR0_PG)) {
		*pa = la;
		return 0;
	}
	pde = phys_read32((c->cr3 & 0xfffff000u) + (la >> 22) * 4);
	if (!(pde & 1))
		return -1;
	if ((pde & 0x80) && (c->cr4 & CR4_PSE)) {
		*pa = (pde & 0xffc00000u) | (la & 0x3fffff);
		if (user)
			*user = user_entry(la, pde, pde);
		return 0;
	}
	pte = phys_read32((pde & 0xfffff000u) + ((la >> 12) & 0x3ff) * 4);
	if (!(pte & 1))
		return -1;
	*pa = (pte & 0xfffff000u) | (la & 0xfff);
	if (user)
		*user = user_entry(la, pde, pte);
	return 0;
}

/* An instruction fetch for the translator: also says whether the page is global. */
int mmu_fetch(uint32_t la, unsigned acc, uint64_t *pa, bool *global, struct bt_fault *f)
{
	struct walk w;

	*global = false;
	if (!(rt.cpu->cr0 & CR0_PG)) {
		*pa = la;
		return 0;
	}
	if (walk(la, acc, &w, f))
		return -1;
	*pa = w.pa;
	*global = w.global;
	return 0;
}

/* The runtime's accesses to guest-linear memory, page by page. Non-RAM reads as ones. */
static int vmem_rw(uint32_t la, void *buf, uint32_t len, unsigned acc, struct bt_fault *f)
{
	uint8_t *b = buf;

	while (len) {
		uint32_t n = 4096 - (la & 0xfff);
		uint64_t pa;
		void *p;

		if (n > len)
			n = len;
		if (mmu_translate(la, acc, &pa, f))
			return -1;
		p = mmu_phys(pa, n);
		if (acc & ACC_W) {
			if (p && mmu_is_code(pa))
				smc(pa);
			if (p)
				memcpy(p, b, n);
		} else {
			if (p)
				memcpy(b, p, n);
			else
				memset(b, 0xff, n);
		}
		la += n;
		b += n;
		len -= n;
	}
	return 0;
}

int vmem_read(uint32_t la, void *buf, uint32_t len, unsigned acc, struct bt_fault *f)
{
	return vmem_rw(la, buf, len, acc & ~ACC_W, f);
}

int vmem_write(uint32_t la, const void *buf, uint32_t len, unsigned acc, struct bt_fault *f)
{
	return vmem_rw(la, (void *)buf, len, acc | ACC_W, f);
}

static void sys_or_die(long r, const char *what, uint32_t la)
{
	if (r < 0 && r > -4096)
		rt_fatal(BT_EXIT_FAULT, "bt: shadow paging: %s at %#x failed (errno %ld)", what, la,
			 -r);
}

static void unmap_range(uint32_t pg, uint32_t n)
{
	sys_or_die((long)rt_syscall(SYS_munmap, (uint64_t)pg << 12, (uint64_t)n << 12, 0, 0, 0),
		   "munmap", pg << 12);
}

/* Apply fn to every run of pages in the shadow whose bits in sel are set, in address order. */
static void for_runs(const uint64_t *sel, bool only_mapped, void (*fn)(uint32_t pg, uint32_t n))
{
	uint32_t run = 0, start = 0;

	for (uint32_t a = 0; a < sizeof(active) / sizeof(active[0]); a++) {
		for (uint64_t act = active[a]; act; act &= act - 1) {
			uint32_t r = a * 64 + (uint32_t)__builtin_ctzll(act);

			for (uint32_t wd = r * 16; wd < r * 16 + 16; wd++) {
				uint64_t b = sel[wd] & (only_mapped ? map_bits[wd] : ~0ull);

				while (b) {
					uint32_t i = (uint32_t)__builtin_ctzll(b), pg = wd * 64 + i, n;
					uint64_t rest = ~(b >> i);

					n = rest ? (uint32_t)__builtin_ctzll(rest) : 64 - i;
					if (run && start + run == pg) {
						run += n;
					} else {
						if (run)
							fn(start, run);
						start = pg;
						run = n;
					}
					b = i + n < 64 ? b & (~0ull << (i + n)) : 0;
				}
			}
		}
	}
	if (run)
		fn(start, run);
}

/* The shadow's record of n pages at pg, dropped (their host mapping is the caller's). */
static void forget_bits(uint32_t pg, uint32_t n)
{
	set_bits(map_bits, pg, n, false);
	set_bits(w_bits, pg, n, false);
	set_bits(glob_bits, pg, n, false);
	set_bits(sup_bits, pg, n, false);
	set_bits(hidden_bits, pg, n, false);
	for (uint32_t i = pg; i < pg + n; i++)
		region_pages[i >> 10]--;
	for (uint32_t r = pg >> 10; r <= (pg + n - 1) >> 10; r++)
		if (!region_pages[r])
			region_big[r] = 0;
}

static void forget(uint32_t pg, uint32_t n)
{
	unmap_range(pg, n);
	forget_bits(pg, n);
}

static void map_identity(void)
{
	uint64_t top = rt.ram_size < BT_TOP ? rt.ram_size : BT_TOP;
	uint64_t start = rt.page0 ? 0 : 4096;
	void *p;

	if (top <= start)
		return;
	p = (void *)rt_syscall6(SYS_mmap, start, top - start, PROT_READ | PROT_WRITE | PROT_EXEC,
				MAP_SHARED | MAP_FIXED, (uint64_t)rt.memfd, start);
	if ((uintptr_t)p != start)
		rt_fatal(BT_EXIT_FAULT, "bt: cannot map guest RAM in the sandbox (%ld)", (long)p);
	identity = true;
}

/* Drop the shadow: everything (CR3 load without PGE, CR0/CR4 changes) or all but global pages. */
/* K changed mappings ring 3 may use: U forgets them before it runs again. */
static void post_to_u(bool all, uint32_t la)
{
	struct bt_shared *sh = rt.sh;

	if (!rt.split || rt.role != BT_K)
		return;
	if (all) {
		__atomic_add_fetch(&sh->u_flush_seq, 1, __ATOMIC_RELEASE);
		sh->u_ninvlpg = 0;
		return;
	}
	if (sh->u_ninvlpg >= BT_INVLPG_MAX) { /* too many pages: U checks them all */
		__atomic_add_fetch(&sh->u_reval_seq, 1, __ATOMIC_RELEASE);
		sh->u_ninvlpg = 0;
		return;
	}
	sh->u_invlpg[sh->u_ninvlpg++] = la;
}

void mmu_flush(bool keep_global)
{
	static uint64_t not_global[NWORDS];
	bool any_global = false;

	rt.st->shadow_flushes++;
	post_to_u(true, 0);
	if (identity) {
		unmap_range(0, NPAGES);
		identity = false;
	}
	any_global = keep_global && n_global;
	if (!any_global) {
		unmap_range(0, NPAGES);
		/* clear only the regions that had pages: the arrays are 128 KiB each */
		for (uint32_t a = 0; a < sizeof(active) / sizeof(active[0]); a++) {
			for (uint64_t act = active[a]; act; act &= act - 1) {
				uint32_t r = a * 64 + (uint32_t)__builtin_ctzll(act), w = r * 16;

				memset(&map_bits[w], 0, 16 * 8);
				memset(&w_bits[w], 0, 16 * 8);
				memset(&glob_bits[w], 0, 16 * 8);
				memset(&sup_bits[w], 0, 16 * 8);
				memset(&hidden_bits[w], 0, 16 * 8);
				region_pages[r] = 0;
				region_big[r] = 0;
			}
			active[a] = 0;
		}
		memset(exposed_words, 0, sizeof(exposed_words));
		n_recent = 0;
		nr_maps = 0;
		n_global = 0;
	} else {
		for (uint32_t a = 0; a < sizeof(active) / sizeof(active[0]); a++)
			for (uint64_t act = active[a]; act; act &= act - 1) {
				uint32_t w = (a * 64 + (uint32_t)__builtin_ctzll(act)) * 16;

				for (uint32_t i = w; i < w + 16; i++)
					not_global[i] = ~glob_bits[i];
			}
		for_runs(not_global, true, forget);
	}
	if (!(rt.cpu->cr0 & CR0_PG))
		map_identity();
}

/*
 * INVLPG of a 4 KiB page whose entry did not change (Linux and the test
 * kernel flush pages they did not remap too): keep the shadow mapping and
 * save a munmap and a refault. Kept only if it grants no more than the entry
 * now does: same frame, A set, writable only if D is set and a write is
 * allowed, and the same user/supervisor standing.
 */
static bool still_valid(uint32_t la, bool *global)
{
	const struct bt_vcpu *c = rt.cpu;
	uint32_t pg = la >> 12, pde, pte;
	bool user_ok, write_ok, can_write, sup;

	if (!(c->cr0 & CR0_PG))
		return false;
	pde = phys_read32((c->cr3 & 0xfffff000u) + (la >> 22) * 4);
	if (!(pde & 1) || ((pde & 0x80) && (c->cr4 & CR4_PSE)))
		return false;
	if (!(pde & 0x20))
		return false; /* the guest cleared A: the next access must set it again */
	pte = phys_read32((pde & 0xfffff000u) + ((la >> 12) & 0x3ff) * 4);
	if (!(pte & 1) || !(pte & 0x20) || (pte >> 12) != vpage_pa[pg])
		return false;
	user_ok = (pde & 4) && (pte & 4);
	write_ok = (pde & 2) && (pte & 2);
	can_write = c->cpl == 3 ? write_ok : (write_ok || !(c->cr0 & CR0_WP));
	sup = !user_ok || (bit(w_bits, pg) && !write_ok);
	if (c->cpl == 3 && !user_ok)
		return false;
	if (bit(w_bits, pg) && (!can_write || (write_ok && !(pte & 0x40))))
		return false;
	*global = (pte & 0x100) && (c->cr4 & CR4_PGE);
	return sup == bit(sup_bits, pg);
}

/*
 * The same for a 4 MiB region mapped as one large page: checked against the
 * writability it was mapped with (BIG_W), and its first page's sup bit.
 */
static bool big_still_valid(uint32_t r, bool *global)
{
	const struct bt_vcpu *c = rt.cpu;
	uint32_t pg = r << 10, pde;
	bool user_ok, write_ok, can_write, sup, mapped_w = region_big[r] & BIG_W;

	if (!(c->cr0 & CR0_PG) || !(c->cr4 & CR4_PSE))
		return false;
	pde = phys_read32((c->cr3 & 0xfffff000u) + r * 4);
	/* P, A, PS; the same frame (bits 21-13 are PAT and PSE-36, not frame bits) */
	if ((pde & 0xa1) != 0xa1 || (pde & 0xffc00000u) >> 12 != vpage_pa[pg])
		return false;
	user_ok = pde & 4;
	write_ok = pde & 2;
	can_write = c->cpl == 3 ? write_ok : (write_ok || !(c->cr0 & CR0_WP));
	sup = !user_ok || (mapped_w && !write_ok);
	if (c->cpl == 3 && !user_ok)
		return false;
	if (mapped_w && (!can_write || (write_ok && !(pde & 0x40))))
		return false;
	*global = (pde & 0x100) && (c->cr4 & CR4_PGE);
	return sup == bit(sup_bits, pg);
}

/*
 * Pages kept because their entries still grant what they map (a CR3 load,
 * a PGE toggle, INVLPG) take the global standing the entries give now
 * (CR4.PGE may have changed).
 */
static void keep(uint32_t pg, uint32_t n, bool global)
{
	if (bit(glob_bits, pg) == global && bit(glob_bits, pg + n - 1) == global)
		return; /* a run's pages were mapped together: the ends speak for it */
	for (uint32_t i = pg; i < pg + n; i++)
		if (global && !bit(glob_bits, i))
			n_global++;
	set_bits(glob_bits, pg, n, global);
}

static void revalidate_run(uint32_t pg, uint32_t n)
{
	uint32_t bad = 0, start = 0;

	for (uint32_t i = pg; i < pg + n;) {
		uint32_t r = i >> 10, cnt = 1;
		bool ok, g = false;

		if (region_big[r]) { /* one large page: checked once, kept or dropped whole */
			cnt = ((r + 1) << 10) - i;
			if (cnt > pg + n - i)
				cnt = pg + n - i;
			ok = big_still_valid(r, &g);
		} else {
			ok = still_valid(i << 12, &g);
		}
		if (ok) {
			rt.st->reval_kept += cnt;
			keep(i, cnt, g);
			if (bad)
				forget(start, bad);
			bad = 0;
		} else {
			if (!bad)
				start = i;
			bad += cnt;
		}
		i += cnt;
	}
	if (bad)
		forget(start, bad);
}

/*
 * Instead of dropping the shadow at a CR3 load, keep each mapping that the
 * new tables grant exactly (still_valid: same frame, A set, writable only if
 * D is set): such an entry is one a fresh walk right after the load would
 * give, a fill the CPU may make speculatively (SDM vol. 3 §4.10.2.3), so the
 * guest cannot tell it from a flushed TLB. A process the kernel switches
 * back to, or whose tables it reloads to flush them (Linux's full-mm
 * flushes), keeps its pages: no refault per page, no munmap of all. The
 * same for a CR4.PGE toggle (Linux's global flush), globals included.
 */
void mmu_revalidate(bool keep_global)
{
	static uint64_t sel[NWORDS];

	if (identity || !(rt.cpu->cr0 & CR0_PG)) {
		mmu_flush(keep_global);
		return;
	}
	rt.st->revals++;
	for (uint32_t a = 0; a < sizeof(active) / sizeof(active[0]); a++)
		for (uint64_t act = active[a]; act; act &= act - 1) {
			uint32_t w = (a * 64 + (uint32_t)__builtin_ctzll(act)) * 16;

			for (uint32_t i = w; i < w + 16; i++)
				sel[i] = keep_global ? ~glob_bits[i] : ~0ull;
		}
	for_runs(sel, true, revalidate_run);
}

/* K: U's shadow must be checked against the tables before ring 3 runs again. */
static void post_reval(void)
{
	struct bt_shared *sh = rt.sh;

	if (rt.split && rt.role == BT_K) {
		__atomic_add_fetch(&sh->u_reval_seq, 1, __ATOMIC_RELEASE);
		sh->u_ninvlpg = 0;
	}
}

void mmu_cr3_loaded(void)
{
	pf_retry.pending = pf_retry.armed = false; /* another process: its #PF is not ours */
	post_reval();
	mmu_revalidate(rt.cpu->cr4 & CR4_PGE);
}

void mmu_invlpg(uint32_t la)
{
	uint32_t pg = la >> 12, r = la >> 22;

	rt.st->invlpg++;
	tcrun_invlpg(la);
	post_to_u(false, la);
	if (la >= BT_TOP || identity)
		return;
	if (region_big[r]) {
		forget(r << 10, 1024);
		return;
	}
	bool g = false;

	if (!bit(map_bits, pg))
		return;
	if (still_valid(la, &g)) {
		/* kept: with the global standing the entry gives now, so a CR3 load checks it if not */
		keep(pg, 1, g);
		return;
	}
	/*
	 * It was in use and its entry changed (a remap, a COW copy made
	 * writable): map the new translation now if there is one, over the old
	 * one — an mmap with MAP_FIXED replaces it: one host call where a
	 * munmap and an mmap were two (HOST-FACTS.md: mmap 2.6-3.8 µs, munmap
	 * 2.3-3.0 µs here). Only when
	 * nothing can be mapped is the old mapping unmapped.
	 */
	forget_bits(pg, 1);
	if (!prefill(la, rt.cpu->cpl == 3 ? ACC_U : 0))
		unmap_range(pg, 1);
}

static void write_protect(uint32_t pg, uint32_t n)
{
	sys_or_die((long)rt_syscall(SYS_mprotect, (uint64_t)pg << 12, (uint64_t)n << 12,
				    PROT_READ | PROT_EXEC, 0, 0),
		   "mprotect", pg << 12);
}

/* The translator made its first block on guest-physical page gpa: protect every mapping of it. */
void mmu_code_page(uint64_t gpa)
{
	uint64_t pg = gpa >> 12;

	if (pg >= CODE_PAGES)
		return;
	code_bits[pg / 64] |= 1ull << (pg % 64);
	if (identity) {
		if (gpa < BT_TOP && (gpa || rt.page0))
			write_protect((uint32_t)pg, 1);
		return;
	}
	for (uint32_t r = 0; r < NREGIONS; r++) {
		if (!region_pages[r])
			continue;
		for (uint32_t v = r << 10; v < (r + 1) << 10; v++) {
			if (vpage_pa[v] != pg || !bit(map_bits, v) || !bit(w_bits, v))
				continue;
			set_bits(w_bits, v, 1, false);
			if (!bit(hidden_bits, v))
				write_protect(v, 1);
		}
	}
}

static int prot_of(uint32_t pg)
{
	return PROT_READ | PROT_EXEC | (bit(w_bits, pg) ? PROT_WRITE : 0);
}

static void hide(uint32_t pg, uint32_t n)
{
	rt.st->us_hides++;
	if (n_recent < RECENT_RUNS)
		recent[n_recent++] = (typeof(recent[0])){ pg, n };
	sys_or_die((long)rt_syscall(SYS_mprotect, (uint64_t)pg << 12, (uint64_t)n << 12, PROT_NONE,
				    0, 0),
		   "mprotect", pg << 12);
}

static void unhide(uint32_t pg, uint32_t n)
{
	/* split the run where the writable bit changes */
	while (n) {
		uint32_t k = 1;
		int prot = prot_of(pg);

		while (k < n && prot_of(pg + k) == prot)
			k++;
		sys_or_die((long)rt_syscall(SYS_mprotect, (uint64_t)pg << 12, (uint64_t)k << 12,
					    (uint64_t)prot, 0, 0),
			   "mprotect", pg << 12);
		pg += k;
		n -= k;
	}
}

static void expose(uint32_t pg, uint32_t n)
{
	for (uint32_t w = pg / 64; w <= (pg + n - 1) / 64; w++)
		exposed_words[w / 64] |= 1ull << (w % 64);
}

/*
 * Hide the kernel-only pages exposed since the last time. With above_limit
 * false, not those from a pv guest's USER_LIMIT up: translated ring 3 runs
 * with its segments cut there (segments.c), so it cannot reach them
 * natively, and the runtime's accesses on its behalf walk with the limit
 * (walk()). Those stay marked exposed, for mmu_user_direct.
 */
static void hide_exposed_pages(bool above_limit)
{
	uint32_t run = 0, start = 0;
	uint32_t ul = rt.sh->pv.user_limit;
	uint32_t end_word = ul && rt_translate_user && !above_limit ? ul >> 18 : NWORDS;

	for (uint32_t x = 0; x < NWORDS / 64; x++) {
		uint64_t words = exposed_words[x], keep = 0;

		while (words) {
			uint32_t wd = x * 64 + (uint32_t)__builtin_ctzll(words);
			uint64_t b = sup_bits[wd] & map_bits[wd] & ~hidden_bits[wd];

			if (wd >= end_word)
				keep |= words & -words; /* stays exposed while the limit holds */
			words &= words - 1;
			if (wd >= end_word)
				continue;
			hidden_bits[wd] |= b;
			for (uint32_t i = 0; i < 64; i++) {
				if (b >> i & 1) {
					if (run && start + run == wd * 64 + i) {
						run++;
						continue;
					}
					if (run)
						hide(start, run);
					start = wd * 64 + i;
					run = 1;
				}
			}
		}
		exposed_words[x] = keep;
	}
	if (run)
		hide(start, run);
}

/* Entering CPL 3. */
static void hide_exposed(void)
{
	n_recent = 0;
	hide_exposed_pages(false);
}

/*
 * Ring 3 is about to run natively in the one child, not from the TC
 * (tcrun.c: the guest's own TF, 16-bit code): such code loads segment
 * registers without a trap — a host flat selector among them, and after a
 * MOV SS the step trap that would replay the load comes one instruction
 * late — so the segment limits do not hold it below a pv guest's USER_LIMIT.
 * The pages from there up are hidden too, as without the limit.
 */
void mmu_user_direct(void)
{
	if (!rt.split && rt.sh->pv.user_limit)
		hide_exposed_pages(true);
}

/*
 * At CPL 0, a host fault on a hidden kernel-only page: show it and its
 * hidden neighbours in the same 4 MiB region again. true if it was hidden.
 */
static bool show_hidden(uint32_t la)
{
	uint32_t pg = la >> 12, lo = pg, hi = pg + 1, r0 = (pg >> 10) << 10;

	if (la >= BT_TOP || !bit(hidden_bits, pg))
		return false;
	while (lo > r0 && bit(hidden_bits, lo - 1))
		lo--;
	while (hi < r0 + 1024 && bit(hidden_bits, hi))
		hi++;
	unhide(lo, hi - lo);
	set_bits(hidden_bits, lo, hi - lo, false);
	expose(lo, hi - lo);
	rt.st->us_shows++;
	return true;
}

/* Entering the kernel: show the runs hidden on the last way out that are still hidden. */
static void show_recent(void)
{
	static unsigned entries;

	/*
	 * A run shown here is hidden again on the way out whether the kernel
	 * used it or not (nothing tells us): every 32nd entry shows nothing, so
	 * the set shrinks back to what the kernel touches (the lazy path finds it).
	 */
	if (++entries % 32 == 0)
		n_recent = 0;
	for (unsigned i = 0; i < n_recent; i++) {
		uint32_t pg = recent[i].pg, n = recent[i].n, k;

		for (k = 0; k < n && bit(hidden_bits, pg + k) && bit(map_bits, pg + k); k++)
			;
		if (k < n)
			continue; /* changed since (a flush, INVLPG, a remap): left to the lazy path */
		unhide(pg, n);
		set_bits(hidden_bits, pg, n, false);
		expose(pg, n);
		rt.st->us_preshows++;
	}
	n_recent = 0;
}

/* Ring 3 must not reach what only ring 0 may. */
void mmu_cpl_changed(unsigned old_cpl)
{
	if (rt.split)
		return; /* U's shadow has only ring-3 pages; K never runs ring 3 */
	if ((old_cpl == 3) != (rt.cpu->cpl == 3))
		tcrun_top_visible(rt.cpu->cpl != 3);
	if (rt.cpu->cpl == 3 && old_cpl != 3)
		hide_exposed();
	else if (rt.cpu->cpl != 3 && old_cpl == 3)
		show_recent();
}

void mmu_cr_changed(uint32_t old_cr0, uint32_t old_cr4)
{
	struct bt_vcpu *c = rt.cpu;

	if ((old_cr0 ^ c->cr0) & CR0_PG || (old_cr4 ^ c->cr4) & CR4_PSE) {
		tcrun_paging_changed(true);
		mmu_flush(false);
	} else if ((old_cr0 ^ c->cr0) & CR0_WP) {
		if ((old_cr4 ^ c->cr4) & CR4_PGE)
			tcrun_paging_changed(false);
		mmu_flush(false);
	} else if ((old_cr4 ^ c->cr4) & CR4_PGE) {
		mmu_flush_global();
	}
}

/* A flush of every translation, global ones too: what a CR4.PGE toggle does. */
void mmu_flush_global(void)
{
	tcrun_paging_changed(false);
	/* Linux toggles PGE for it: every mapping revalidated, none kept blind */
	post_reval();
	mmu_revalidate(false);
}

/* Map n pages at guest-virtual page vpg onto guest-physical pa. */
static void map_pages(uint32_t vpg, uint64_t pa, uint32_t n, bool write, bool global, bool sup)
{
	int prot = PROT_READ | PROT_EXEC | (write ? PROT_WRITE : 0);
	long r;

	if (nr_maps >= MAX_MAPS)
		mmu_flush(false);
	for (uint32_t i = vpg; i < vpg + n; i++)
		if (!bit(map_bits, i))
			region_pages[i >> 10]++;
	for (uint32_t g = vpg >> 10; g <= (vpg + n - 1) >> 10; g++)
		active[g / 64] |= 1ull << (g % 64);
	if (global)
		n_global += n;
	r = (long)rt_syscall6(SYS_mmap, (uint64_t)vpg << 12, (uint64_t)n << 12, (uint64_t)prot,
			     MAP_SHARED | MAP_FIXED, (uint64_t)rt.memfd, pa);
	sys_or_die(r, "mmap", vpg << 12);
	nr_maps++;
	set_bits(map_bits, vpg, n, true);
	set_bits(w_bits, vpg, n, write);
	set_bits(glob_bits, vpg, n, global);
	set_bits(sup_bits, vpg, n, sup);
	set_bits(hidden_bits, vpg, n, false);
	if (sup)
		expose(vpg, n);
	for (uint32_t i = 0; i < n; i++) {
		vpage_pa[vpg + i] = (uint32_t)((pa >> 12) + i);
		if (write && mmu_is_code(pa + ((uint64_t)i << 12))) {
			set_bits(w_bits, vpg + i, 1, false);
			write_protect(vpg + i, 1);
		}
	}
}

/* la, mapping pa, is not RAM the shadow can map: MMIO, above BT_TOP, or page 0 we may not map. */
static bool not_ram(uint32_t la, uint64_t pa)
{
	return la >= BT_TOP || !mmu_phys(pa & ~0xfffull, 4096) || (la < 4096 && !rt.page0);
}

/*
 * Map the page of la after a successful walk w for an access (write or not)
 * at the present CPL. 0: mapped. 2: the same, and the write dropped
 * translations of that page (the writer may be running one). 1: la is not
 * RAM (MMIO, or page 0 we may not map): *mmio_pa is the guest-physical
 * address to emulate the access against.
 */
static int fill(uint32_t la, bool write, bool around, const struct walk *w, uint64_t *mmio_pa)
{
	struct bt_vcpu *c = rt.cpu;
	bool user = c->cpl == 3;
	uint64_t pa = w->pa;

	if (not_ram(la, pa)) {
		*mmio_pa = pa;
		return 1;
	}
	bool was_code = write && mmu_is_code(pa);

	if (was_code)
		smc(pa);
	/*
	 * Rights for this CPL; writable only once D is set (this access sets it
	 * if a write), so that a read of a clean writable page maps it read-only
	 * and the first write faults to set D (SDM vol. 3 §4.8).
	 */
	bool can_write = user ? w->write : (w->write || !(c->cr0 & CR0_WP));
	bool dirty_ok = write || !w->write || w->dirty;
	bool map_w = can_write && dirty_ok;
	bool sup = !w->user || (map_w && !w->write);

	if (w->big) {
		uint64_t base = pa & ~0x3fffffull;
		uint32_t vpg = (la >> 12) & ~0x3ffu;

		if (mmu_phys(base, 4u << 20) && vpg + 1024 <= NPAGES && (vpg || rt.page0)) {
			/* the whole 4 MiB page at once: one mapping, one TLB entry to drop */
			if (region_pages[vpg >> 10] && !region_big[vpg >> 10])
				forget(vpg, 1024);
			map_pages(vpg, base, 1024, map_w, w->global, sup);
			region_big[vpg >> 10] = BIG_MAPPED | (map_w ? BIG_W : 0);
			if (write)
				phys_or32((c->cr3 & 0xfffff000u) + (la >> 22) * 4, 0x40);
			return was_code ? 2 : 0;
		}
	}
	if (region_big[la >> 22])
		forget((la >> 22) << 10, 1024);
	map_pages(la >> 12, pa & ~0xfffull, 1, map_w, w->global, sup);
	if (user && around)
		fault_around(la);
	return was_code ? 2 : 0;
}

/*
 * Fault-around for ring 3: after a fill at CPL 3, map the other pages of the
 * aligned 16-page window whose PTEs are present, user, and already have A
 * set — pages the guest has used, or that its kernel mapped around a fault
 * (Linux's fault-around maps file pages 16 at a time). Nothing in the
 * guest's entries changes (A is set already; writable only where D is), so
 * this is a TLB fill the guest cannot tell from a later one (SDM vol. 3
 * §4.10.2.3). One mmap (≈ 3 µs) per run of consecutive frames instead of a
 * host fault (≈ 8-13 µs) per page that exec'd and forked processes touch.
 */
#define AROUND 16u

static void fault_around(uint32_t la)
{
	const struct bt_vcpu *c = rt.cpu;
	uint32_t pg0 = (la >> 12) & ~(AROUND - 1), pde, run = 0, start = 0, run_pfn = 0;
	bool run_w = false;

	pde = phys_read32((c->cr3 & 0xfffff000u) + (la >> 22) * 4);
	if (!(pde & 1) || !(pde & 4) || ((pde & 0x80) && (c->cr4 & CR4_PSE)) || !(pde & 0x20))
		return;
	for (uint32_t pg = pg0; pg <= pg0 + AROUND; pg++) {
		uint32_t pte = 0, pfn = 0;
		bool ok = false, w = false;

		if (pg < pg0 + AROUND && !bit(map_bits, pg) && (pg || rt.page0)) {
			pte = phys_read32((pde & 0xfffff000u) + (pg & 0x3ff) * 4);
			pfn = pte >> 12;
			w = (pde & 2) && (pte & 2) && (pte & 0x40) && !mmu_is_code((uint64_t)pfn << 12);
			ok = (pte & 0x25) == 0x25 && mmu_phys((uint64_t)pfn << 12, 4096);
		}
		if (run && ok && pfn == run_pfn + run && w == run_w) {
			run++;
			continue;
		}
		if (run) {
			map_pages(start, (uint64_t)run_pfn << 12, run, run_w, false, false);
			rt.st->prefills += run;
		}
		run = ok ? 1 : 0;
		start = pg;
		run_pfn = pfn;
		run_w = w;
	}
}

/*
 * Prefill: map a page before the guest touches it, where the next access
 * is all but certain — saving the host fault (a signal, a handler, then the
 * same mmap) that a lazy fill costs. The SDM allows it: a processor may load
 * translations speculatively, setting A as it walks (vol. 3 §4.8, §4.10.2.3),
 * and a translation it caches is one the guest's entries grant. Only a
 * successful walk maps; a not-present or forbidden page stays unmapped and
 * faults as before. Never MMIO, never a write that would drop translations.
 */
static bool prefill(uint32_t la, unsigned acc)
{
	struct walk w;
	struct bt_fault f;
	uint64_t pa, mmio;

	if (la >= BT_TOP || identity || !(rt.cpu->cr0 & CR0_PG) || bit(map_bits, la >> 12))
		return false;
	/* what fill() would refuse is refused before the walk sets A (and D) */
	if (mmu_peek(la, &pa, NULL) || not_ram(la, pa) || ((acc & ACC_W) && mmu_is_code(pa)))
		return false;
	if (walk(la, acc, &w, &f))
		return false;
	if (fill(la, acc & ACC_W, false, &w, &mmio))
		return false;
	rt.st->prefills++;
	return true;
}

void mmu_pf_delivered(uint32_t cr2, uint32_t eip)
{
	pf_retry.armed = pf_retry.pending && cr2 == pf_retry.la && rt.cpu->cr3 == pf_retry.cr3;
	pf_retry.pending = false;
	pf_retry.eip = eip;
}

void mmu_fault_returned(void)
{
	if (!pf_retry.armed || !(pf_retry.acc & ACC_U) != (rt.cpu->cpl != 3))
		return;
	pf_retry.armed = false;
	if (rt.cpu->cr3 != pf_retry.cr3 || g_eip() != pf_retry.eip)
		return;
	/*
	 * Not as a write: the walk would set D, which only the retried write
	 * may do (a handler that set D itself, as Linux does, gets a writable
	 * mapping anyway: fill maps a dirty writable page writable).
	 */
	prefill(pf_retry.la, pf_retry.acc & ~ACC_W);
}

/*
 * A host page fault at la while the guest ran. 0: the shadow now maps it,
 * retry. 2: the same, and the write dropped translations of that page (the
 * writer may be running one). -1: a guest #PF in *f. 1: la is not RAM (MMIO,
 * or page 0 we may not map): *mmio_pa is the guest-physical address to
 * emulate the access against.
 */
int mmu_fault(uint32_t la, uint32_t host_err, struct bt_fault *f, uint64_t *mmio_pa)
{
	struct bt_vcpu *c = rt.cpu;
	bool user = c->cpl == 3, write = host_err & PFERR_W;
	unsigned acc = (write ? ACC_W : 0) | (user ? ACC_U : 0);
	struct walk w;

	if (!(c->cr0 & CR0_PG)) {
		if (write && mmu_phys(la, 1) && mmu_is_code(la) && (la >= 4096 || rt.page0)) {
			smc(la);
			sys_or_die((long)rt_syscall(SYS_mprotect, la & ~0xfffu, 4096,
						    PROT_READ | PROT_WRITE | PROT_EXEC, 0, 0),
				   "mprotect", la);
			return 2;
		}
		*mmio_pa = la;
		return 1; /* identity-mapped RAM never faults: this is not RAM, or page 0 */
	}
	if (!user && show_hidden(la))
		return 0; /* hidden when ring 3 last ran: the kernel may see it */
	if (walk(la, acc, &w, f)) {
		pf_retry.pending = true;
		pf_retry.armed = false;
		pf_retry.la = la;
		pf_retry.cr3 = c->cr3;
		pf_retry.acc = acc;
		return -1;
	}
	int r = fill(la, write, true, &w, mmio_pa);

	if (r != 1) {
		rt.st->shadow_faults++;
		if (rt.role == BT_U)
			rt.st->shadow_faults_u++;
	}
	return r;
}

int mmu_init(void)
{
	memset(map_bits, 0, sizeof(map_bits));
	memset(hidden_bits, 0, sizeof(hidden_bits));
	memset(exposed_words, 0, sizeof(exposed_words));
	memset(active, 0, sizeof(active));
	pf_retry.pending = pf_retry.armed = false;
	n_recent = 0;
	nr_maps = 0;
	n_global = 0;
	identity = false;
	if (!(rt.cpu->cr0 & CR0_PG))
		map_identity();
	return 0;
}
