/* slab.h -- slabs: one size class's blocks, owner-only free lists, lazy
 * carving, and the O(1) "is this a block start" test. */
#ifndef HK_SLAB_H
#define HK_SLAB_H

#include "core/block.h"
#include "hk_types.h"

extern hk_slab hk_slab_empty; /* cur[c] of a heap with nothing: lists empty */

/* Bind an UNUSED slab of `ss` to class `cls` (state ACTIVE, nothing carved). */
void hk_slab_init(hk_superslab *ss, hk_slab *s, unsigned cls);
/* Back to UNUSED: forget the class and every list. */
void hk_slab_reset(hk_slab *s);
/* `used` reached 0: true when every carved block really is free (carries
 * its key), so the slab may go back to UNUSED. A double free the cheap
 * checks let through takes `used` to 0 while a block is still live (its key
 * cleared by malloc, or overwritten by the program): then this reports the
 * double free, sets `used` to the number of live blocks and returns false,
 * so the slab's pages are not reused under the live block. Reads each
 * block's key word once, in address order, once per emptying of a slab. */
bool hk_slab_confirm_empty(hk_slab *s);
/* Make `free` non-empty if possible: swap in local_free, else carve fresh
 * blocks. Returns false when every block is handed out. */
bool hk_slab_refill(hk_slab *s);

/* True when p is the start of a block this slab has handed out at some time
 * (carved). Costs a multiply and two compares. */
HK_INLINE bool hk_slab_is_block(const hk_slab *s, const void *p) {
  uint64_t off = (uint64_t)((uintptr_t)p - (uintptr_t)s->start); /* huge when p < start */
  return off < s->carved && off * s->magic <= s->magic - 1;
}

/* p is at a block boundary of a slab in use (no `carved` check: for
 * threads other than the owner, which may be carving concurrently). */
HK_INLINE bool hk_slab_is_boundary(const hk_slab *s, const void *p) {
  uint64_t off = (uint64_t)((uintptr_t)p - (uintptr_t)s->start);
  return s->magic != 0 && off < s->limit && off * s->magic <= s->magic - 1;
}

#ifdef HK_HARDENED
/* Hardened builds: one bit per 16-byte granule of the SuperSlab, set while
 * the block starting there is handed out, so every double free is detected
 * (the bitmap, HK_SS_SIZE / 128 bytes, lives after the header page). Indexed
 * by the address alone: a few shifts and masks, no slab descriptor, no
 * multiply. A slab's bits are those of its address range (its own words:
 * slabs start at multiples of 1 KiB). Owner-only, like the slab lists. */
HK_INLINE uint64_t *hk_out_word(const void *p) {
  uintptr_t a = (uintptr_t)p;
  return (uint64_t *)((a & ~(uintptr_t)HK_SS_MASK) + HK_PAGE_SIZE + ((a & HK_SS_MASK) >> 10) * sizeof(uint64_t));
}
HK_INLINE uint64_t hk_out_bit(const void *p) { return (uint64_t)1 << (((uintptr_t)p >> 4) & 63); }
/* The bitmap bytes of a slab of 2^shift bytes (from hk_out_word of its base). */
#define HK_OUT_BYTES(shift) (((size_t)1 << (shift)) / 128)
HK_INLINE void hk_block_mark_out(const void *p) { *hk_out_word(p) |= hk_out_bit(p); }
/* Clears p's bit; false when it was clear (p is already free). */
HK_INLINE bool hk_block_mark_back(const void *p) {
  uint64_t *w = hk_out_word(p), bit = hk_out_bit(p), v = *w;
  *w = v & ~bit;
  return (v & bit) != 0;
}
#define HK_HARDENED_OUT(p) hk_block_mark_out(p)
#define HK_HARDENED_BACK(p) hk_block_mark_back(p)
/* The successor n of b popped from a list of slab s must be a carved block
 * of s, or NULL (core/block.h: a link that passed its key check). */
#define HK_HARDENED_IN_SLAB(s, b, n) \
  ((n) == NULL || hk_slab_is_block((s), (n)) ? (void)0 : hk_block_corrupt(b))
#else
#define HK_HARDENED_OUT(p) ((void)0)
#define HK_HARDENED_BACK(p) true
#define HK_HARDENED_IN_SLAB(s, b, n) ((void)0)
#endif

/* The slow confirmation behind a matching block key: is p on one of the
 * owner's free lists? Walks at most as many links as the slab has bytes. */
bool hk_slab_on_free_list(const hk_slab *s, const void *p);

/* Hardened builds: p's bit says it is handed out. Always true otherwise. */
HK_INLINE bool hk_block_is_out(const void *p) {
#ifdef HK_HARDENED
  return (*hk_out_word(p) & hk_out_bit(p)) != 0;
#else
  (void)p;
  return true;
#endif
}

#endif /* HK_SLAB_H */
