/* superslab.h -- SuperSlabs: SS_SIZE-aligned regions whose header is their
 * first page; superslab_of(p) is one mask. */
#ifndef HK_SUPERSLAB_H
#define HK_SUPERSLAB_H

#include "hk_types.h"

HK_INLINE hk_superslab *hk_superslab_of(const void *p) {
  return (hk_superslab *)((uintptr_t)p & ~(uintptr_t)HK_SS_MASK);
}

/* Descriptors by granule (HK_GRANULE_SHIFT): a small slab is one granule,
 * so slab i is slabs[i]; a medium slab spans eight, so slab i is slabs[8i]
 * and slabs[8i+1 .. 8i+7] are its views: copies of the fields free's fast
 * path reads (start, carved_key, limit_key, magic, tc_off), which hk_slab_init,
 * hk_slab_reset and the carve keep equal to the slab's own (core/slab.c).
 * Nothing else of a view is meaningful, and nothing but hak_free's fast
 * path and its block checks reads one. */
_Static_assert(HK_MAX_SLABS == HK_SS_SIZE >> HK_GRANULE_SHIFT, "one descriptor per granule");
#define HK_MEDIUM_VIEWS ((unsigned)1 << (HK_SLAB_SHIFT_MEDIUM - HK_GRANULE_SHIFT))

HK_INLINE hk_slab *hk_ss_slab(hk_superslab *ss, unsigned i) {
  return &ss->slabs[i << (ss->slab_shift - HK_GRANULE_SHIFT)];
}

HK_INLINE hk_slab *hk_slab_of(hk_superslab *ss, const void *p) {
  return hk_ss_slab(ss, (unsigned)(((uintptr_t)p & HK_SS_MASK) >> ss->slab_shift));
}

/* The slab holding p, computed from p alone: a SuperSlab's kind is bit 21
 * of its address (superslab_create places small kinds at even 2 MiB slots,
 * medium at odd). */
HK_INLINE hk_slab *hk_slab_of_block(const void *p) {
  uintptr_t a = (uintptr_t)p;
  unsigned views = (unsigned)((a >> HK_SS_SHIFT) & 1) * (HK_SLAB_SHIFT_MEDIUM - HK_SLAB_SHIFT_SMALL);
  /* Integer arithmetic, not &ss->slabs[i]: free() calls this before it
   * knows p is ours (NULL included), where member access would be UB. */
  uintptr_t slabs = (a & ~(uintptr_t)HK_SS_MASK) + offsetof(hk_superslab, slabs);
  return (hk_slab *)(slabs + (((a & HK_SS_MASK) >> (HK_GRANULE_SHIFT + views)) << views) * sizeof(hk_slab));
}

/* What free's fast path reads for p: the descriptor of p's granule, the
 * slab itself or one of its views (above); one mask, one shift and a mask,
 * with no kind in it (the array is the header's first member). */
_Static_assert(offsetof(hk_superslab, slabs) == 0, "a descriptor's address is its SuperSlab's plus 64 x its granule");
HK_INLINE hk_slab *hk_slab_view_of(const void *p) {
  uintptr_t a = (uintptr_t)p;
  return (hk_slab *)((a & ~(uintptr_t)HK_SS_MASK) + ((a & HK_SS_MASK) >> HK_GRANULE_SHIFT) * sizeof(hk_slab));
}

/* ss's index in a table of `size` (a power of two) entries: a heap's
 * pending buckets, a thread's outbox slots. Bit HK_SS_SHIFT of the address
 * is the kind (superslab.c places small kinds at even chunks, medium at
 * odd), so the chunk number's low bits would leave every other entry of a
 * kind unused: the bits above the kind bit index, and the kind flips the
 * top index bit, so consecutive SuperSlabs of one kind use consecutive
 * entries and the two kinds' runs start half a table apart
 * (tests/test_remote_hash.c). */
HK_INLINE unsigned hk_superslab_hash(const hk_superslab *ss, unsigned size) {
  uintptr_t a = (uintptr_t)ss;
  return (unsigned)((a >> (HK_SS_SHIFT + 1)) ^ ((a >> HK_SS_SHIFT & 1) * (size / 2))) & (size - 1);
}

/* The owner word (see hk_superslab): bit 21 is the kind, bits 22-25 pick
 * its line, so up to 16 SuperSlabs of a kind in a row use 16 L1 sets. */
HK_INLINE _Atomic uintptr_t *hk_ss_owner_word(hk_superslab *ss) {
  /* Bits 22-25 shifted straight to a byte offset (x 64): shift, and, load. */
  _Static_assert(sizeof ss->owner_at[0] == 64, "one owner line is 64 bytes");
  uintptr_t line = ((uintptr_t)ss >> (HK_SS_SHIFT + 1 - 6)) & ((uintptr_t)15 << 6);
  return (_Atomic uintptr_t *)((uintptr_t)ss + offsetof(hk_superslab, owner_at) + line);
}

HK_INLINE struct hk_heap *hk_superslab_owner(hk_superslab *ss) {
  /* Relaxed: compared with the caller's own heap, a value only the caller
   * itself installs; for other callers any stale value means "not mine". */
  return (struct hk_heap *)hk_load_relaxed(hk_ss_owner_word(ss));
}

/* Map and register a fresh SuperSlab of `kind`, owned by `heap`, all slabs
 * UNUSED. NULL (errno untouched) when the OS refuses. */
hk_superslab *hk_superslab_create(int kind, struct hk_heap *heap);

/* Take an UNUSED slab (owner only); NULL when none is left, or every one
 * left is being decommitted by another thread at this moment. */
hk_slab *hk_superslab_take_slab(hk_superslab *ss);
/* Give a slab whose blocks all came back to the UNUSED pool (owner only);
 * its pages, if it touched any, become dirty (decommitted after the delay). */
void hk_superslab_release_slab(hk_superslab *ss, hk_slab *s);

HK_INLINE uint32_t hk_superslab_all_slabs(const hk_superslab *ss) {
  return ss->nslabs == 32 ? 0xffffffffu : ((1u << ss->nslabs) - 1u);
}
/* Every slab UNUSED and the queue empty: no block of ss is live anywhere
 * (a block in a queue or an outbox counts as used until reclaimed). */
HK_INLINE bool hk_superslab_is_empty(hk_superslab *ss) {
  return ss->free_slabs == hk_superslab_all_slabs(ss) && hk_load_relaxed(&ss->remote_head) == NULL;
}

/* Retire an empty SuperSlab its owner has already unlinked from its heap:
 * tombstone its map entry and hand it to ck_epoch; after the grace period
 * it goes to the cache of empty SuperSlabs, or is unmapped. */
void hk_superslab_retire(hk_superslab *ss);
/* The cache of retired SuperSlabs: decommit those cached longer than the
 * delay, or (all) unmap every one. Returns how many it touched. */
size_t hk_superslab_cache_purge(bool all);
/* A mapping just failed (the os layer's pressure hook, api/thread.c): poll
 * the epoch (without waiting) and unmap the cache and the unclaimed region
 * and arena, so address space held back for reuse serves the request
 * instead. True when anything was given back (worth retrying the mapping). */
bool hk_superslab_reclaim_for_retry(void);

#endif /* HK_SUPERSLAB_H */
