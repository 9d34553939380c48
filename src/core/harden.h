/* harden.h -- the hardened build's checks (HK_HARDENED) besides the block
 * encoding of core/block.h and the double-free bitmap of core/slab.h:
 * secrets, the canary after every block's requested size, and the guard
 * pages of the SuperSlab layout (hk_config.h). Nothing here exists in the
 * default build.
 *
 * Canary. A request of n bytes is served from a block of at least
 * n + HK_CANARY_MIN bytes (its room: the class size, or a large block's
 * usable size). The block then holds, after the program's n bytes:
 *   [n, n + c)          c = min(room - n - 8, HK_CANARY_SPAN) canary bytes,
 *                       at least one, each with its top bit set (so an ASCII
 *                       or NUL byte written past the end always differs)
 *   [room - 8, room)    the tail word: the gap room - n (48 bits) and a
 *                       16-bit check of it, xored with a mask of the process
 *                       secret and the block's address
 * free, realloc and malloc_usable_size decode the tail (a corrupted tail
 * fails the check), find n, and compare the canary bytes: a linear write
 * past the end changes the byte at n first. usable_size reports n, so
 * realloc(p, malloc_usable_size(p)) stays in place, as in scudo. */
#ifndef HK_HARDEN_H
#define HK_HARDEN_H

#ifdef HK_HARDENED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hk_atomic.h"
#include "hk_config.h"

#define HK_CANARY_MIN  9   /* one canary byte and the tail word */
#define HK_CANARY_SPAN 16  /* canary bytes written and checked at most */

/* The process secret, from the kernel's AT_RANDOM bytes. Every thread that
 * finds it unset computes the same value, so relaxed order suffices and a
 * race only repeats the work. Never 0. */
extern _Atomic uint64_t hk_harden_secret_word;
uint64_t hk_harden_secret_init(void);
HK_INLINE uint64_t hk_harden_secret(void) {
  uint64_t s = hk_load_relaxed(&hk_harden_secret_word);
  return HK_LIKELY(s != 0) ? s : hk_harden_secret_init();
}
/* A fresh 64-bit secret for a SuperSlab or a heap (never 0). */
uint64_t hk_harden_random(void);

/* Bytes to ask the size classes for, to serve n with its canary. */
HK_INLINE size_t hk_canary_pad(size_t n) { return n > SIZE_MAX - HK_CANARY_MIN ? SIZE_MAX : n + HK_CANARY_MIN; }

HK_INLINE uint64_t hk_canary_mask(const void *p) {
  return hk_harden_secret() ^ ((uintptr_t)p * 0x9e3779b97f4a7c15ull);
}

/* p: a block of `room` bytes (room >= n + HK_CANARY_MIN) now serving n. */
void hk_canary_set(void *p, size_t n, size_t room);
/* p: a live block of `room` bytes. Its requested size; a canary or tail
 * that changed aborts with "hakmem: heap overflow at <first bad byte>". */
size_t hk_canary_check(const void *p, size_t room);

/* Randomised carving (core/slab.c): a number below n from a per-thread
 * generator. */
uint32_t hk_harden_rand_below(uint32_t n);

#endif /* HK_HARDENED */
#endif /* HK_HARDEN_H */
