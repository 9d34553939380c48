/* slab.h -- slabs: one size class's blocks, owner-only free lists, lazy
 * carving, and the O(1) "is this a block start" test. */
#ifndef HK_SLAB_H
#define HK_SLAB_H

#include "hk_types.h"

extern hk_slab hk_slab_empty; /* cur[c] of a heap with nothing: lists empty */

/* Bind an UNUSED slab of `ss` to class `cls` (state ACTIVE, nothing carved). */
void hk_slab_init(hk_superslab *ss, hk_slab *s, unsigned cls);
/* Back to UNUSED: forget the class and every list. */
void hk_slab_reset(hk_slab *s);
/* Make `free` non-empty if possible: swap in local_free, else carve fresh
 * blocks. Returns false when every block is handed out. */
bool hk_slab_refill(hk_slab *s);

/* True when p is the start of a block this slab has handed out at some time
 * (carved). Costs a multiply and two compares. */
HK_INLINE bool hk_slab_is_block(const hk_slab *s, const void *p) {
  uint64_t off = (uint64_t)((uintptr_t)p - (uintptr_t)s->start);
  uint64_t idx = (off * s->inv) >> 32;
  return idx * s->bsize == off && idx < s->reserved;
}

/* Cheap double-free evidence: p is already at the head of a free list. */
HK_INLINE bool hk_slab_is_head(const hk_slab *s, const void *p) {
  return p == (const void *)s->local_free || p == (const void *)s->free;
}

#endif /* HK_SLAB_H */
