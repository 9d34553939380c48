/* addrmap.h -- the global address map: for any address, in O(1) and without
 * touching the address itself, what HAKMEM has there.
 *
 * One entry per SS_SIZE chunk of the 47-bit address space, in two levels: a
 * static first level (zero pages until used) and lazily mapped leaves
 * installed by CAS. Entries:
 *   0                  not ours
 *   ss                 a SuperSlab starts at this chunk
 *   ss | HK_MAP_DEAD   a retired SuperSlab (a free into it is a double free)
 * SuperSlabs are chunk-aligned and chunk-sized. Chunk 0 is never ours; its
 * entry (once its leaf exists) is a tombstone for NULL, so that "entry
 * equals my chunk" alone proves a SuperSlab.
 *
 * Large blocks are mapped at page granularity (large.c), so several share a
 * chunk with each other and with foreign mappings: they are found through
 * the page map below instead. */
#ifndef HK_ADDRMAP_H
#define HK_ADDRMAP_H

#include <stdbool.h>
#include <stdint.h>

#include "hk_types.h"

#define HK_MAP_DEAD  ((uintptr_t)16)
#define HK_MAP_TAGS  HK_MAP_DEAD

HK_INLINE bool hk_entry_is_ss(uintptr_t e) { return e != 0 && (e & HK_MAP_TAGS) == 0; }

extern _Atomic(_Atomic uintptr_t *) hk_addrmap_l1[HK_MAP_L1_SIZE];

/* The SuperSlab bitmap: one bit per chunk, set while the chunk's entry is a
 * SuperSlab (hk_addrmap_set keeps the two in step). Its words live in the
 * address-map leaves, after the entries (HK_SSMAP_WORDS_PER_LEAF words, 1
 * KiB per 16 GiB), so they exist exactly where leaves do: a static bitmap
 * of the whole 47-bit space was 8 MiB of address space, which counts
 * against RLIMIT_AS (8 fewer 1 MiB blocks under `ulimit -v`). Word wi is
 * word wi % HK_SSMAP_WORDS_PER_LEAF of leaf wi / HK_SSMAP_WORDS_PER_LEAF. */
#define HK_SSMAP_WORDS ((size_t)1 << (HK_VA_BITS - HK_SS_SHIFT - 6))
#define HK_SSMAP_WORDS_PER_LEAF (HK_MAP_L2_SIZE / 64)
/* A leaf: its entries, then its bitmap words; whole pages (68 KiB). */
#define HK_MAP_LEAF_BYTES \
  ((HK_MAP_L2_SIZE * sizeof(uintptr_t) + HK_SSMAP_WORDS_PER_LEAF * sizeof(uint64_t) + HK_PAGE_SIZE - 1) & \
   ~(HK_PAGE_SIZE - 1))
/* One bit per first-level index whose leaf exists: a scan of the SuperSlab
 * bitmap (core/purge.c) reads only the words that leaves hold. */
extern _Atomic uint64_t hk_addrmap_leaves[HK_MAP_L1_SIZE / 64];
/* The first SuperSlab-bitmap word at index >= wi that a leaf holds, or
 * HK_SSMAP_WORDS: a scan's step (the words of absent leaves are all zero). */
size_t hk_ssmap_next_word(size_t wi);

/* The bitmap word of a leaf (non-NULL) for chunk index `chunk`. */
HK_INLINE _Atomic uint64_t *hk_ssmap_leaf_word(_Atomic uintptr_t *leaf, uintptr_t chunk) {
  _Atomic uint64_t *words = (_Atomic uint64_t *)(leaf + HK_MAP_L2_SIZE);
  return &words[(chunk & (HK_MAP_L2_SIZE - 1)) >> 6];
}

/* The leaf of first-level index i1, or NULL. Acquire (a plain load on
 * x86): a chunk may share a leaf that a thread we never synchronised with
 * installed, and its zeroing must be ordered before our reads of it. */
HK_INLINE _Atomic uintptr_t *hk_addrmap_leaf_at(size_t i1) {
  return hk_load_acquire(&hk_addrmap_l1[i1]); /* pairs with hk_leaf's CAS */
}

/* Bitmap word wi (< HK_SSMAP_WORDS), or NULL when its leaf does not exist
 * (all its bits are 0). */
HK_INLINE _Atomic uint64_t *hk_ssmap_word(size_t wi) {
  _Atomic uintptr_t *leaf = hk_addrmap_leaf_at(wi / HK_SSMAP_WORDS_PER_LEAF);
  return leaf == NULL ? NULL : hk_ssmap_leaf_word(leaf, (uintptr_t)wi << 6);
}

/* True when p is in a SuperSlab; false when it is not (large, foreign, NULL,
 * beyond the 47-bit map). Off the fast paths: free's uncached path, the
 * hardened build's room. The bit relaxed, as the entry in hk_addrmap_get
 * below. */
HK_INLINE bool hk_addrmap_in_superslab(const void *p) {
  uintptr_t a = (uintptr_t)p;
  if (HK_UNLIKELY((a >> HK_VA_BITS) != 0)) return false;
  _Atomic uintptr_t *leaf = hk_addrmap_leaf_at(a >> (HK_SS_SHIFT + HK_MAP_L2_BITS));
  if (HK_UNLIKELY(leaf == NULL)) return false;
  return (hk_load_relaxed(hk_ssmap_leaf_word(leaf, a >> HK_SS_SHIFT)) >> ((a >> HK_SS_SHIFT) & 63)) & 1;
}

/* The entry for p's chunk. The entry relaxed: a pointer reaches a thread
 * only through synchronisation with whoever allocated it, which ordered the
 * registration before it; for a foreign pointer any value read is as good
 * as another. The leaf through hk_addrmap_leaf_at (a large block's chunk
 * may share a leaf another thread installed). */
HK_INLINE uintptr_t hk_addrmap_get(const void *p) {
  uintptr_t a = (uintptr_t)p;
  if (HK_UNLIKELY((a >> HK_VA_BITS) != 0)) return 0;
  _Atomic uintptr_t *leaf = hk_addrmap_leaf_at(a >> (HK_SS_SHIFT + HK_MAP_L2_BITS));
  if (HK_UNLIKELY(leaf == NULL)) return 0;
  return hk_load_relaxed(&leaf[(a >> HK_SS_SHIFT) & (HK_MAP_L2_SIZE - 1)]);
}

/* Set the entries of every chunk in [start, start+size) to `entry`. Returns
 * false (errno untouched) when a leaf could not be mapped. */
bool hk_addrmap_set(uintptr_t start, size_t size, uintptr_t entry);

/* ---- the page map: where large blocks start -----------------------------
 *
 * Two bits per 4 KiB page of the 47-bit space, in two levels (a static
 * first level of HK_PMAP_L1_SIZE leaf pointers, 256 KiB of zero pages;
 * leaves of 2^HK_PMAP_LEAF_BITS pages, 256 KiB each for 4 GiB of address
 * space, mapped on first use and installed by CAS). A large block's key is
 * the page where its header starts (large.c). A page's state:
 *   0                 no large block starts here
 *   HK_PMAP_LIVE      a live block's header starts at this page
 *   HK_PMAP_DEAD      a released block's did (a second free is a double free)
 * A block's registration first clears every mark in its own pages (stale
 * ones of blocks released before the kernel gave us the range), so a LIVE
 * page is always a mapped header of ours and DEAD never names a page inside
 * a live block. Neighbouring blocks share words: every change is an atomic
 * RMW of its own two bits.
 *
 * The protocol (model: formal/pmap.pml, with large.c's use of it):
 *   leaf    NULL --hk_leaf: CAS from NULL; a loser unmaps its own leaf and
 *                  uses the winner's--> installed (never changes again)
 *   page    0 or DEAD (stale) --a registration of a range that is ours:
 *                  hk_pmap_clear of its pages, then hk_pmap_set LIVE at its
 *                  key (release: the header before the mark)--> LIVE
 *           LIVE --free: hk_pmap_kill, CAS LIVE -> DEAD; of racing frees of
 *                  one block exactly one wins, the others report a double
 *                  free--> DEAD (then the mapping goes to the cache or OS)
 *           LIVE --hk_large_move: hk_pmap_set DEAD before the mremap (after
 *                  it the old range may be another block's, whose LIVE must
 *                  not be overwritten); a failed mremap sets LIVE again--> DEAD
 * Invariant: a page is LIVE exactly while it is the key of a live block.
 * A double free that loses the race to a reuse of the pages (the cache, or
 * the kernel's next mmap) releases the new block, as in any allocator; one
 * that reads the header after the OS took the range back faults, as
 * glibc's does. */
#define HK_PMAP_LIVE      ((uintptr_t)1)
#define HK_PMAP_DEAD      ((uintptr_t)2)
#define HK_PMAP_LEAF_BITS 20
#define HK_PMAP_L1_SIZE   ((size_t)1 << (HK_VA_BITS - 12 - HK_PMAP_LEAF_BITS))
extern _Atomic(_Atomic uintptr_t *) hk_pmap_l1[HK_PMAP_L1_SIZE];

/* The state of the page at `key` (any address in it). The state relaxed,
 * as hk_addrmap_get: a valid pointer came through synchronisation with its
 * allocation, which ordered the registration (a release RMW) before it; the
 * leaf pointer acquire, as there. */
HK_INLINE uintptr_t hk_pmap_get(uintptr_t key) {
  if (HK_UNLIKELY((key >> HK_VA_BITS) != 0)) return 0;
  uintptr_t page = key >> 12;
  _Atomic uintptr_t *leaf = hk_load_acquire(&hk_pmap_l1[page >> HK_PMAP_LEAF_BITS]); /* pairs with hk_leaf's CAS */
  if (HK_UNLIKELY(leaf == NULL)) return 0;
  size_t i = page & (((size_t)1 << HK_PMAP_LEAF_BITS) - 1);
  return (hk_load_relaxed(&leaf[i >> 5]) >> ((i & 31) * 2)) & 3;
}

/* Map the leaf that `key` needs; false when it could not be mapped. After
 * it, hk_pmap_set for that key cannot fail. */
bool hk_pmap_prepare(uintptr_t key);
/* Set the state of key's page (prepared) to `state`. Release: the header's
 * writes before the mark. */
void hk_pmap_set(uintptr_t key, uintptr_t state);
/* LIVE -> DEAD at key's page, atomically; false (nothing changed) when it
 * was not LIVE: someone else released it first. */
bool hk_pmap_kill(uintptr_t key);
/* The highest page in [lowest, key] (page addresses) that is LIVE, or 0:
 * the only large block that can cover key (blocks do not overlap, and a
 * block's key page lies inside it). Reads (lowest - key) / 128 KiB words. */
uintptr_t hk_pmap_live_below(uintptr_t key, uintptr_t lowest);
/* Clear every mark in the pages of [start, start+size), a range that is
 * ours now (only words that have marks are written). */
void hk_pmap_clear(uintptr_t start, size_t size);

#endif /* HK_ADDRMAP_H */
