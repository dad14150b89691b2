/*
 * The translation cache: code bump-allocated in the TC region the runtime maps for the guest,
 * blocks found by (EIP, mode), chained to each other, and dropped exactly by guest-physical or
 * linear page when the guest writes its code or remaps it (Adams & Agesen, ASPLOS 2006, §3;
 * Intel SDM vol. 3A §11.6 on self-modifying code). No allocation after tc_init.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "tcache.h"

#define PAGE_SIZE 4096u
#define PAGE_INDEX_BUCKETS 4096u

bool tc_mode_primary(struct bt_mode mode)
{
	return mode.cs_base == 0 && mode.flags == (BT_MODE_CS32 | BT_MODE_SS32);
}

static uint32_t hash_key(uint32_t eip, struct bt_mode mode)
{
	uint32_t h = (eip ^ mode.cs_base ^ (mode.flags << 28)) * 0x9e3779b1u;
	return h ^ (h >> 15);
}

static uint32_t page_key(uint64_t page)
{
	uint64_t h = (page >> 12) * 0x9e3779b97f4a7c15ull;
	return (uint32_t)(h >> 40);
}

static void ibl_clear(struct tcache *tc, uint32_t idx)
{
	/*
	 * A key whose low 16 bits are neither idx nor idx - 1 (the targets that
	 * probe this entry): no target EIP ever matches it.
	 */
	tc->ibl[2 * idx] = -((idx & 0xffffu) ^ 0x8000u);
	tc->ibl[2 * idx + 1] = 0;
}

static void *meta_carve(uint8_t **p, size_t n)
{
	void *r = *p;
	*p += (n + 63) & ~(size_t)63;
	return r;
}

int tc_init(struct tcache **out, const struct bt_config *cfg)
{
	struct tcache *tc;
	uint32_t code_size, max_blocks, max_marks, max_exits, buckets;
	size_t meta_size;
	uint8_t *p;

	if (!cfg->tc_mem || !cfg->fetch || cfg->tc_size < (1u << 20) || cfg->tc_size % PAGE_SIZE ||
	    cfg->gs_base > cfg->tc_guest ||
	    (uint64_t)cfg->tc_guest + cfg->tc_size > (1ull << 32))
		return -EINVAL;
	code_size = cfg->tc_size - TC_IBL_SIZE;
	max_blocks = code_size / 64;
	max_marks = code_size / 4;
	max_exits = max_blocks * 2;
	for (buckets = 1024; buckets < max_blocks; buckets <<= 1)
		;
	meta_size = sizeof(*tc) + (size_t)max_blocks * sizeof(struct tc_block) +
		    (size_t)max_marks * sizeof(struct tc_mark) +
		    (size_t)max_exits * sizeof(struct tc_exit) + buckets * sizeof(void *) +
		    2 * PAGE_INDEX_BUCKETS * sizeof(void *) +
		    TC_SITE_SLOTS * sizeof(struct tc_site_slot) + 8 * 64;
	p = mmap(NULL, meta_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		 -1, 0);
	if (p == MAP_FAILED)
		return -ENOMEM;
	tc = meta_carve(&p, sizeof(*tc));
	tc->meta = tc;
	tc->meta_size = meta_size;
	tc->cfg = *cfg;
	tc->max_insns = cfg->max_block_insns ? cfg->max_block_insns : TC_BLOCK_INSNS;
	if (tc->max_insns > TC_BLOCK_INSNS)
		tc->max_insns = TC_BLOCK_INSNS;
	tc->ibl = cfg->tc_mem;
	tc->ibl_gs = cfg->tc_guest - cfg->gs_base;
	tc->code = (uint8_t *)cfg->tc_mem + TC_IBL_SIZE;
	tc->code_guest = cfg->tc_guest + TC_IBL_SIZE;
	tc->code_size = code_size;
	tc->blocks = meta_carve(&p, (size_t)max_blocks * sizeof(struct tc_block));
	tc->max_blocks = max_blocks;
	tc->marks = meta_carve(&p, (size_t)max_marks * sizeof(struct tc_mark));
	tc->max_marks = max_marks;
	tc->exits = meta_carve(&p, (size_t)max_exits * sizeof(struct tc_exit));
	tc->max_exits = max_exits;
	tc->hash = meta_carve(&p, buckets * sizeof(void *));
	tc->hash_mask = buckets - 1;
	tc->phash = meta_carve(&p, PAGE_INDEX_BUCKETS * sizeof(void *));
	tc->lhash = meta_carve(&p, PAGE_INDEX_BUCKETS * sizeof(void *));
	tc->page_mask = PAGE_INDEX_BUCKETS - 1;
	tc->sites = meta_carve(&p, TC_SITE_SLOTS * sizeof(struct tc_site_slot));
	tc_flush(tc);
	tc->stats.flushes = 0;
	tc->stats.generation = 0;
	*out = tc;
	return 0;
}

void tc_destroy(struct tcache *tc)
{
	if (tc)
		munmap(tc->meta, tc->meta_size);
}

void tc_flush(struct tcache *tc)
{
	for (uint32_t i = 0; i <= TC_IBL_ENTRIES; i++)
		ibl_clear(tc, i);
	memset(tc->hash, 0, (tc->hash_mask + 1) * sizeof(void *));
	memset(tc->phash, 0, (tc->page_mask + 1) * sizeof(void *));
	memset(tc->lhash, 0, (tc->page_mask + 1) * sizeof(void *));
	tc->nblocks = tc->nmarks = tc->nexits = 0;
	tc->code_used = 0;
	tc->stats.flushes++;
	tc->stats.generation++;
	tc->stats.tc_used = 0;
	tc->stats.tc_free = tc->code_size;
}

void tc_reserve(struct tcache *tc)
{
	if (tc->code_size - tc->code_used < TC_BLOCK_CODE || tc->nblocks + 1 > tc->max_blocks ||
	    tc->max_marks - tc->nmarks < TC_BLOCK_MARKS || tc->max_exits - tc->nexits < 4)
		tc_flush(tc);
}

/*
 * The inline table's entry for b's EIP (primary mode only). Set when a block
 * is made and again whenever a lookup finds it — an indirect branch that
 * missed because a colliding block took the entry takes it back, so the hot
 * one of two targets that share the low 16 bits wins, not the older one.
 */
void tc_ibl_set(struct tcache *tc, const struct tc_block *b)
{
	uint32_t idx = b->eip & 0xffff, *home = &tc->ibl[2 * idx], *next = home + 2;

	if (!tc_mode_primary(b->mode) || home[1] == b->tc || next[1] == b->tc)
		return;
	/*
	 * b goes home; the target there moves on to i + 1 if this is its home
	 * too and i + 1 holds nothing or another target of home i, else it is
	 * evicted (it finds its way back through its next miss).
	 */
	if (home[1] && ((-home[0]) & 0xffff) == idx &&
	    (!next[1] || ((-next[0]) & 0xffff) == idx)) {
		next[0] = home[0];
		next[1] = home[1];
	}
	home[0] = -b->eip;
	home[1] = b->tc;
}

struct tc_block *tc_find(struct tcache *tc, uint32_t eip, struct bt_mode mode)
{
	struct tc_block *b = tc->hash[hash_key(eip, mode) & tc->hash_mask];

	for (; b; b = b->hnext)
		if (b->eip == eip && b->mode.cs_base == mode.cs_base && b->mode.flags == mode.flags)
			return b;
	return NULL;
}

uint32_t tc_lookup(struct tcache *tc, uint32_t eip, struct bt_mode mode)
{
	struct tc_block *b = tc_find(tc, eip, mode);

	tc->stats.lookups++;
	if (!b)
		return 0;
	tc->stats.lookup_hits++;
	tc_ibl_set(tc, b);
	return b->tc;
}

/* blocks[] is in TC order: binary search for the block holding tc_addr. */
struct tc_block *tc_block_at(struct tcache *tc, uint32_t tc_addr)
{
	uint32_t lo = 0, hi = tc->nblocks;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (tc->blocks[mid].tc <= tc_addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0)
		return NULL;
	struct tc_block *b = &tc->blocks[lo - 1];
	return tc_addr - b->tc < b->tc_len ? b : NULL;
}

static void patch_rel32(struct tcache *tc, uint32_t at, uint32_t dest)
{
	uint32_t rel = dest - (at + 4);
	memcpy(tc_host(tc, at), &rel, 4);
}

void tc_chain(struct tcache *tc, struct tc_exit *e, struct tc_block *to)
{
	if (e->to || !e->from->valid || !to->valid)
		return;
	patch_rel32(tc, e->patch, to->tc);
	e->to = to;
	e->in_next = to->incoming;
	if (to->incoming)
		to->incoming->in_pprev = &e->in_next;
	e->in_pprev = &to->incoming;
	to->incoming = e;
	tc->stats.chains++;
}

static void unchain(struct tcache *tc, struct tc_exit *e)
{
	if (!e->to)
		return;
	patch_rel32(tc, e->patch, e->stub);
	*e->in_pprev = e->in_next;
	if (e->in_next)
		e->in_next->in_pprev = e->in_pprev;
	e->to = NULL;
	tc->stats.unchains++;
}

static void page_link(struct tc_pagelink **heads, uint32_t mask, struct tc_pagelink *l,
		      uint64_t page, struct tc_block *b)
{
	struct tc_pagelink **head = &heads[page_key(page) & mask];

	l->page = page;
	l->block = b;
	l->next = *head;
	if (*head)
		(*head)->pprev = &l->next;
	l->pprev = head;
	*head = l;
}

static void page_unlink(struct tc_pagelink *l)
{
	*l->pprev = l->next;
	if (l->next)
		l->next->pprev = l->pprev;
}

static bool page_has_code(struct tcache *tc, uint64_t page)
{
	for (struct tc_pagelink *l = tc->phash[page_key(page) & tc->page_mask]; l; l = l->next)
		if (l->page == page)
			return true;
	return false;
}

void tc_commit(struct tcache *tc, struct tc_block *b)
{
	struct tc_block **head = &tc->hash[hash_key(b->eip, b->mode) & tc->hash_mask];

	b->valid = true;
	b->incoming = NULL;
	b->hnext = *head;
	*head = b;
	for (unsigned i = 0; i < b->npages; i++) {
		if (!page_has_code(tc, b->phys[i].page) && tc->cfg.code_page)
			tc->cfg.code_page(tc->cfg.ctx, b->phys[i].page);
		page_link(tc->phash, tc->page_mask, &b->phys[i], b->phys[i].page, b);
		page_link(tc->lhash, tc->page_mask, &b->lin[i], b->lin[i].page, b);
	}
	tc_ibl_set(tc, b);
	tc->nblocks++;
	tc->code_used += b->tc_len;
	tc->stats.tc_used = tc->code_used;
	tc->stats.tc_free = tc->code_size - tc->code_used;
	for (unsigned i = 0; i < b->nexits; i++) {
		struct tc_block *to = tc_find(tc, b->exits[i].target, b->mode);
		if (to)
			tc_chain(tc, &b->exits[i], to);
	}
}

static void drop_block(struct tcache *tc, struct tc_block *b)
{
	struct tc_block **pp = &tc->hash[hash_key(b->eip, b->mode) & tc->hash_mask];
	uint32_t idx = b->eip & 0xffff;

	if (!b->valid)
		return;
	b->valid = false;
	while (*pp && *pp != b)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = b->hnext;
	if (tc->ibl[2 * idx + 1] == b->tc)
		ibl_clear(tc, idx);
	if (tc->ibl[2 * idx + 3] == b->tc)
		ibl_clear(tc, idx + 1);
	for (unsigned i = 0; i < b->npages; i++) {
		page_unlink(&b->phys[i]);
		page_unlink(&b->lin[i]);
	}
	while (b->incoming)
		unchain(tc, b->incoming);
	/* Its own exits too: a runtime still inside it leaves through the stubs. */
	for (unsigned i = 0; i < b->nexits; i++)
		unchain(tc, &b->exits[i]);
	tc->stats.invalidated++;
}

static unsigned invalidate(struct tcache *tc, struct tc_pagelink **heads, uint64_t page)
{
	struct tc_pagelink **head = &heads[page_key(page) & tc->page_mask];
	unsigned n = 0;

	/* drop_block unlinks from this very list: restart from the head after each drop. */
	for (struct tc_pagelink *l = *head; l;) {
		if (l->page == page) {
			drop_block(tc, l->block);
			n++;
			l = *head;
		} else {
			l = l->next;
		}
	}
	return n;
}

unsigned tc_invalidate_page(struct tcache *tc, uint64_t gpa)
{
	return invalidate(tc, tc->phash, gpa & ~(uint64_t)(PAGE_SIZE - 1));
}

unsigned tc_invalidate_linear(struct tcache *tc, uint32_t la)
{
	return invalidate(tc, tc->lhash, la & ~(PAGE_SIZE - 1));
}

/* The block and the mark (the last at or before tc_addr) of a TC address; false if none. */
static bool find_mark(struct tcache *tc, uint32_t tc_addr, struct tc_block **bp,
		      const struct tc_mark **mp)
{
	struct tc_site_slot *slot = &tc->sites[(tc_addr ^ tc_addr >> 12) % TC_SITE_SLOTS];
	struct tc_block *b;
	uint32_t off, lo = 0, hi;

	if (slot->tc_addr == tc_addr && slot->generation == tc->stats.generation && slot->b) {
		*bp = slot->b;
		*mp = slot->m;
		return true;
	}
	b = tc_block_at(tc, tc_addr);
	if (!b || !b->nmarks)
		return false;
	off = tc_addr - b->tc;
	hi = b->nmarks;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (b->marks[mid].tc_off <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0)
		return false;
	*slot = (struct tc_site_slot){ tc_addr, (uint32_t)tc->stats.generation, b, &b->marks[lo - 1] };
	*bp = b;
	*mp = slot->m;
	return true;
}

int tc_site_lookup(struct tcache *tc, uint32_t tc_addr, struct bt_site *site)
{
	struct tc_block *b;
	const struct tc_mark *m;

	if (!find_mark(tc, tc_addr, &b, &m))
		return -ENOENT;
	*site = (struct bt_site){
		.kind = m->kind,
		.action = m->action,
		.eip = b->eip + m->guest_off,
		.len = m->len,
		.restore = m->restore,
		.flags = m->flags & (BT_SITE_EXACT | BT_SITE_SHADOW),
	};
	site->next_eip = site->eip + m->len;
	if (m->kind == BT_SITE_CHAIN || (m->flags & TC_MARK_AT_TARGET))
		site->target_eip = b->exits[m->exit].target;
	if (m->flags & TC_MARK_AT_TARGET)
		site->state_eip = site->target_eip;
	else if (m->flags & TC_MARK_AT_NEXT)
		site->state_eip = site->next_eip;
	else if (m->kind != BT_SITE_INDIRECT)
		site->state_eip = site->eip;
	if (m->resume_off != TC_NO_RESUME)
		site->resume_tc = b->tc + m->resume_off;
	if (!b->valid)
		site->flags |= BT_SITE_STALE;
	return 0;
}

const struct bt_stats *tc_stats(struct tcache *tc)
{
	return &tc->stats;
}
