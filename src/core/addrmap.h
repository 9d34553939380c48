/* addrmap.h -- the global address map: for any address, in O(1) and without
 * touching the address itself, what HAKMEM has there.
 *
 * One entry per SS_SIZE chunk of the 47-bit address space, in two levels: a
 * static first level (zero pages until used) and lazily mapped leaves
 * installed by CAS. Entries:
 *   0                  not ours
 *   ss | (shift - 16)  a SuperSlab starts at this chunk; the low bits hold its
 *                      slab shift less 16 (0 small, 3 medium), so the free
 *                      fast path finds the slab without first loading the
 *                      SuperSlab header: one dependent load fewer
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

#define HK_MAP_SHIFT ((uintptr_t)7)  /* SuperSlab entries: slab shift - 16 */
#define HK_MAP_LARGE ((uintptr_t)8)
#define HK_MAP_DEAD  ((uintptr_t)16)
#define HK_MAP_TAGS  (HK_MAP_LARGE | HK_MAP_DEAD)

HK_INLINE uintptr_t hk_entry_for_superslab(const hk_superslab *ss) {
  return (uintptr_t)ss | (uintptr_t)(ss->slab_shift - HK_SLAB_SHIFT_SMALL);
}
HK_INLINE bool hk_entry_is_ss(uintptr_t e) { return e != 0 && (e & HK_MAP_TAGS) == 0; }
HK_INLINE hk_superslab *hk_entry_ss(uintptr_t e) { return (hk_superslab *)(e & ~HK_MAP_SHIFT); }
/* The slab holding p, from p's SuperSlab entry alone. */
HK_INLINE hk_slab *hk_entry_slab(uintptr_t e, const void *p) {
  return &hk_entry_ss(e)->slabs[((uintptr_t)p & HK_SS_MASK) >> (HK_SLAB_SHIFT_SMALL + (e & HK_MAP_SHIFT))];
}

extern _Atomic(_Atomic uintptr_t *) hk_addrmap_l1[HK_MAP_L1_SIZE];

/* True, with p's SuperSlab entry, when p is in a SuperSlab; false when not (large, foreign,
 * NULL, or beyond the map): the entry, less the kind bit, must equal p's own
 * chunk address, which also rejects tagged entries and addresses aliased by
 * the index mask. The free fast path's only map access. */
HK_INLINE bool hk_addrmap_ss_entry(const void *p, uintptr_t *entry) {
  uintptr_t a = (uintptr_t)p;
  _Atomic uintptr_t *leaf = hk_load_relaxed(&hk_addrmap_l1[(a >> (HK_SS_SHIFT + HK_MAP_L2_BITS)) & (HK_MAP_L1_SIZE - 1)]);
  if (HK_UNLIKELY(leaf == NULL)) return false;
  *entry = hk_load_relaxed(&leaf[(a >> HK_SS_SHIFT) & (HK_MAP_L2_SIZE - 1)]);
  return (*entry & ~HK_MAP_SHIFT) == (a & ~(uintptr_t)HK_SS_MASK);
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
