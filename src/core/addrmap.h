/* addrmap.h -- the global address map: for any address, in O(1) and without
 * touching the address itself, what HAKMEM has there.
 *
 * One entry per SS_SIZE chunk of the 47-bit address space, in two levels: a
 * static first level (zero pages until used) and lazily mapped leaves
 * installed by CAS. Entries:
 *   0                  not ours
 *   ss                 a SuperSlab starts at this chunk
 *   hdr | HK_MAP_LARGE a large allocation's mapping covers this chunk
 *   user | HK_MAP_DEAD a released large allocation whose user pointer was
 *                      `user` (so a second free of it is a double free)
 * Chunks belong to one mapping at a time: SuperSlabs are chunk-aligned and
 * chunk-sized, large mappings are reserved in whole chunks. Chunk 0 is
 * never ours; its entry (once its leaf exists) is a tombstone for NULL, so
 * that "entry equals my chunk" alone proves a SuperSlab. */
#ifndef HK_ADDRMAP_H
#define HK_ADDRMAP_H

#include <stdbool.h>
#include <stdint.h>

#include "hk_types.h"

#define HK_MAP_LARGE ((uintptr_t)8)
#define HK_MAP_DEAD  ((uintptr_t)16)
#define HK_MAP_TAGS  (HK_MAP_LARGE | HK_MAP_DEAD)

HK_INLINE bool hk_entry_is_ss(uintptr_t e) { return e != 0 && (e & HK_MAP_TAGS) == 0; }

extern _Atomic(_Atomic uintptr_t *) hk_addrmap_l1[HK_MAP_L1_SIZE];

/* The SuperSlab bitmap: one bit per chunk, set while the chunk's entry is a
 * SuperSlab (hk_addrmap_set keeps the two in step). 8 MiB of zero pages,
 * touched only where SuperSlabs are: one load answers the free fast path,
 * where the entry would take two dependent ones. */
#define HK_SSMAP_WORDS ((size_t)1 << (HK_VA_BITS - HK_SS_SHIFT - 6))
extern _Atomic uint64_t hk_ssmap[HK_SSMAP_WORDS];
/* One bit per first-level index whose leaf exists: a scan of the SuperSlab
 * bitmap (core/purge.c) reads only the words that leaves cover. */
extern _Atomic uint64_t hk_addrmap_leaves[HK_MAP_L1_SIZE / 64];
#define HK_SSMAP_WORDS_PER_LEAF (HK_MAP_L2_SIZE / 64)
/* The first SuperSlab-bitmap word at index >= wi that a leaf covers, or
 * HK_SSMAP_WORDS: a scan's step (the words of absent leaves are all zero). */
size_t hk_ssmap_next_word(size_t wi);

/* True when p is in a SuperSlab; false when it is not (large, foreign, NULL,
 * beyond the 47-bit map). The free fast path's only map access. Relaxed, as
 * hk_addrmap_get below. */
HK_INLINE bool hk_addrmap_in_superslab(const void *p) {
  uintptr_t a = (uintptr_t)p;
  if (HK_UNLIKELY((a >> HK_VA_BITS) != 0)) return false;
  return (hk_load_relaxed(&hk_ssmap[a >> (HK_SS_SHIFT + 6)]) >> ((a >> HK_SS_SHIFT) & 63)) & 1;
}

/* The entry for p's chunk. Relaxed: a pointer reaches a thread only through
 * synchronisation with whoever allocated it, which ordered the registration
 * before it; for a foreign pointer any value read is as good as another. */
HK_INLINE uintptr_t hk_addrmap_get(const void *p) {
  uintptr_t a = (uintptr_t)p;
  if (HK_UNLIKELY((a >> HK_VA_BITS) != 0)) return 0;
  _Atomic uintptr_t *leaf = hk_load_relaxed(&hk_addrmap_l1[a >> (HK_SS_SHIFT + HK_MAP_L2_BITS)]);
  if (HK_UNLIKELY(leaf == NULL)) return 0;
  return hk_load_relaxed(&leaf[(a >> HK_SS_SHIFT) & (HK_MAP_L2_SIZE - 1)]);
}

/* Set the entries of every chunk in [start, start+size) to `entry`. Returns
 * false (errno = ENOMEM) when a leaf could not be mapped. */
bool hk_addrmap_set(uintptr_t start, size_t size, uintptr_t entry);

#endif /* HK_ADDRMAP_H */
