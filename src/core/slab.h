/* slab.h -- slabs: one size class's blocks, owner-only free lists, lazy
 * carving, and the O(1) "is this a block start" test. */
#ifndef HK_SLAB_H
#define HK_SLAB_H

#include "core/block.h"
#include "core/sizeclass.h"
#include "hk_types.h"

extern hk_slab hk_slab_empty; /* cur[c] of a heap with nothing: lists empty */

/* The size of s's blocks (s a slab in use, or a view of one). */
_Static_assert(sizeof(hk_tcache) == sizeof hk_class_size_x16[0], "tc_off indexes hk_class_size_x16");
HK_INLINE uint32_t hk_slab_block_size(const hk_slab *s) { return hk_class_size_of_x16(s->tc_off); }

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

/* The block-start test. With b the block size and magic m = floor(2^64/b)
 * + 1, b*m = 2^64 + u with 1 <= u <= b (u: the slab's unit; u = b when b is
 * a power of two, hence the + 1 rather than ceil). For an offset
 * off = k*b + r (0 <= r < b) below 2^21, off*m mod 2^64 = k*u + r*m
 * without wrapping (m >= 2^47 for blocks up to 128 KiB): k*u when off is
 * a block start, at least m otherwise. Below the start (off wraps to
 * 2^64 - x, x < 2^21) it is 2^64 - (x*m mod 2^64) >= m - u - 2^21. So
 * with keys of at most 2^19 (n*u <= n*b <= a slab's bytes),
 *   off*m mod 2^64 < n*u  <=>  p is one of the first n block starts
 * in one multiply and one compare; an UNUSED slab (m = 0, keys 0) passes
 * nothing. tests/test_slab_key.c checks it against the division. */
HK_INLINE uint64_t hk_slab_magic(uint32_t bsize) { return UINT64_MAX / bsize + 1 + ((bsize & (bsize - 1)) == 0); }
HK_INLINE uint32_t hk_slab_unit(const hk_slab *s, uint32_t bsize) { return (uint32_t)(bsize * s->magic); }

/* True when p is the start of a block this slab has handed out at some time
 * (carved): a multiply and a compare (above). */
HK_INLINE bool hk_slab_is_block(const hk_slab *s, const void *p) {
  uint64_t off = (uint64_t)((uintptr_t)p - (uintptr_t)s->start); /* huge when p < start */
  return off * s->magic < s->carved_key;
}

/* p is at a block boundary of a slab in use (no carved check: for threads
 * other than the owner, which may be carving concurrently). */
HK_INLINE bool hk_slab_is_boundary(const hk_slab *s, const void *p) {
  uint64_t off = (uint64_t)((uintptr_t)p - (uintptr_t)s->start);
  return off * s->magic < s->limit_key;
}

/* The blocks a key counts (slow paths: one division); 0 for a key of 0,
 * whatever the slab (an UNUSED one has no unit). */
uint32_t hk_slab_blocks(const hk_slab *s, uint32_t key);
/* Bytes carved so far. */
uint32_t hk_slab_carved_bytes(const hk_slab *s);

#ifdef HK_HARDENED
/* The successor n of b popped from a list of slab s must be a carved block
 * of s, or NULL (core/block.h: a link that passed its key check). */
#define HK_HARDENED_IN_SLAB(s, b, n) \
  ((n) == NULL || hk_slab_is_block((s), (n)) ? (void)0 : hk_block_corrupt(b))
#else
#define HK_HARDENED_IN_SLAB(s, b, n) ((void)0)
#endif

/* The slow confirmation behind a matching block key: is p on one of the
 * owner's free lists? Walks at most as many links as the slab has bytes. */
bool hk_slab_on_free_list(const hk_slab *s, const void *p);

#endif /* HK_SLAB_H */
