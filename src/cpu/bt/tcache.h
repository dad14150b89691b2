/*
 * The translation cache's inside: blocks bump-allocated in the TC, a hash by (EIP, mode),
 * the inline indirect-branch table, chaining, and the page → blocks indexes that make
 * invalidation exact. Internal to the translator (translate.c, tcache.c, their tests); the
 * runtime uses translate.h. The model is VMware's TC (Adams & Agesen, ASPLOS 2006, §3).
 */
#ifndef RING3_CPU_BT_TCACHE_H
#define RING3_CPU_BT_TCACHE_H

#include "translate.h"

/*
 * The inline indirect-branch table at the start of the TC, read by translated code through
 * %gs: 64 Ki entries indexed by the low 16 bits of the guest EIP (MOVZWL needs no flags),
 * each {-eip, tc}; target + entry[0] == 0 is a hit (LEA + JECXZ, flags untouched). A target
 * lives in its home entry i or in i + 1 (two choices: two hot targets with the same low
 * 16 bits — a loop calling both — both hit; one more entry past the end for i = 0xffff).
 * Only blocks of BT_MODE_KERNEL32 go in: other modes always take the INDIRECT callout.
 */
#define TC_IBL_ENTRIES 65536u
#define TC_IBL_SIZE (TC_IBL_ENTRIES * 8u + 64u)

#define TC_BLOCK_INSNS 64u     /* default max_block_insns */
#define TC_BLOCK_CODE 8192u    /* max TC bytes of one block */
#define TC_INSN_CODE 512u      /* room one more instruction (<= 200 bytes), an interrupt-
				  window check and the block's exits and stubs may need */
#define TC_BLOCK_MARKS 768u    /* max marks of one block */
#define TC_INSN_MARKS 32u      /* max marks one more instruction and the block's end need */
#define TC_NO_RESUME 0xffffu

/* Internal mark flags, beside BT_SITE_EXACT and BT_SITE_SHADOW. */
#define TC_MARK_AT_NEXT 0x10   /* exact at next_eip, not eip */
#define TC_MARK_AT_TARGET 0x20 /* exact at exits[exit].target */

/* One run of TC bytes inside a block, from tc_off up to the next mark. */
struct tc_mark {
	uint16_t tc_off;     /* from the block's first TC byte */
	uint16_t guest_off;  /* the guest instruction's EIP - block EIP */
	uint8_t len;	     /* its length */
	uint8_t kind;	     /* enum bt_site_kind */
	uint8_t action;	     /* enum bt_action */
	uint8_t restore;     /* guest registers held in scratch */
	uint8_t flags;	     /* BT_SITE_EXACT, BT_SITE_SHADOW, TC_MARK_* */
	uint8_t exit;	     /* TC_MARK_AT_TARGET and BT_SITE_CHAIN: the exit */
	uint16_t resume_off; /* callouts: where to resume, or TC_NO_RESUME */
};

struct tc_block;

/*
 * A callout or fault site found before: every callout asks for its site, and
 * two binary searches over ~100,000 blocks and their marks miss the cache at
 * their last steps. Valid for one TC generation (a flush empties the TC).
 */
struct tc_site_slot {
	uint32_t tc_addr, generation;
	struct tc_block *b;
	const struct tc_mark *m;
};
#define TC_SITE_SLOTS 4096

/* A direct branch out of a block: a rel32 that jumps to its stub, or chained to a block. */
struct tc_exit {
	uint32_t target;	/* guest EIP */
	uint32_t patch;		/* TC address of the rel32 */
	uint32_t stub;		/* TC address of the exit's BT_SITE_CHAIN callout */
	struct tc_block *from, *to;
	struct tc_exit *in_next, **in_pprev; /* in to->incoming */
};

/* A block's membership in a page index (guest-physical or linear). */
struct tc_pagelink {
	uint64_t page;
	struct tc_pagelink *next, **pprev;
	struct tc_block *block;
};

struct tc_block {
	uint32_t eip;
	struct bt_mode mode;
	uint32_t tc, tc_len; /* TC address and size of the code */
	uint32_t guest_len;
	bool valid;
	uint8_t npages;	     /* 1, or 2 when the last instruction crosses a page */
	uint8_t nexits;
	uint16_t nmarks;
	struct tc_block *hnext; /* (eip, mode) hash chain */
	struct tc_pagelink phys[2], lin[2];
	struct tc_mark *marks;
	struct tc_exit *exits;
	struct tc_exit *incoming; /* exits of other blocks chained here */
};

struct tcache {
	struct bt_config cfg;
	uint8_t *code;	      /* host view of the code area (after the IBL table) */
	uint32_t code_guest;  /* its guest view */
	uint32_t code_size, code_used;
	uint32_t *ibl;	      /* host view of the inline table */
	uint32_t ibl_gs;      /* its %gs offset */
	unsigned max_insns;

	/* Metadata, host-only, reset by a flush. blocks[] is sorted by tc (bump order). */
	void *meta;
	size_t meta_size;
	struct tc_block *blocks;
	uint32_t nblocks, max_blocks;
	struct tc_mark *marks;
	uint32_t nmarks, max_marks;
	struct tc_exit *exits;
	uint32_t nexits, max_exits;
	struct tc_block **hash;
	uint32_t hash_mask;
	struct tc_pagelink **phash, **lhash;
	uint32_t page_mask;
	struct tc_site_slot *sites; /* tc_site_lookup's cache, by TC address */

	struct bt_stats stats;
	uint8_t fetch_buf[2 * 4096]; /* guest bytes of the block being translated */
};

/* Host pointer for a TC address in the code area. */
static inline uint8_t *tc_host(struct tcache *tc, uint32_t addr)
{
	return tc->code + (addr - tc->code_guest);
}

struct tc_block *tc_find(struct tcache *tc, uint32_t eip, struct bt_mode mode);
struct tc_block *tc_block_at(struct tcache *tc, uint32_t tc_addr);
/* Room for one more block of the worst size: flushes when there is none. */
void tc_reserve(struct tcache *tc);
/* Publish a block built at code_guest + code_used: hash, page indexes, IBL, chains. */
void tc_commit(struct tcache *tc, struct tc_block *b);
void tc_chain(struct tcache *tc, struct tc_exit *e, struct tc_block *to);
bool tc_mode_primary(struct bt_mode mode);
/* Put b in the inline table (made, or found by a lookup after a miss). */
void tc_ibl_set(struct tcache *tc, const struct tc_block *b);

#endif
