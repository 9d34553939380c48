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
 *                       16-bit check of it, xored with the process secret
 *                       and the block's address
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
#define HK_CANARY_SPAN 8   /* canary bytes written and checked at most */

/* The process secret, from the kernel's AT_RANDOM bytes. hk_harden_init
 * sets it before the first block exists: at process init (api/thread.c,
 * which every small block's first malloc in a thread passes) and before a
 * large block's first canary (api/api.c). Every thread that finds it unset
 * computes the same value, so relaxed order suffices and a race only
 * repeats the work. A plain load on the fast paths: no call there, so the
 * compiler keeps what it loaded before a canary check. */
extern _Atomic uint64_t hk_harden_secret_word;
void hk_harden_init(void);
HK_INLINE uint64_t hk_harden_secret(void) { return hk_load_relaxed(&hk_harden_secret_word); }
/* A fresh 64-bit secret for a SuperSlab or a heap (never 0). */
uint64_t hk_harden_random(void);

/* The size a request of n is served as: malloc(0) as malloc(1), so its
 * usable size (the request) is not 0 and realloc(p, malloc_usable_size(p))
 * neither frees it nor moves it. */
HK_INLINE size_t hk_canary_request(size_t n) { return n + (n == 0); }

/* Bytes to ask the size classes for, to serve n with its canary (malloc(0)
 * too: the smallest class, 16 bytes, has room for 1 + HK_CANARY_MIN). */
HK_INLINE size_t hk_canary_pad(size_t n) { return n > SIZE_MAX - HK_CANARY_MIN ? SIZE_MAX : n + HK_CANARY_MIN; }

HK_INLINE uint64_t hk_canary_mask(const void *p) { return hk_harden_secret() ^ (uintptr_t)p; }

/* Eight canary bytes: the mask's, each with its top bit set. */
HK_INLINE uint64_t hk_canary_word(uint64_t mask) { return mask | 0x8080808080808080ull; }

HK_INLINE uint64_t hk_canary_tail(size_t gap, uint64_t mask) {
  return (gap | ((gap * 0xd6e8feb86659fd93ull) >> 48) << 48) ^ mask;
}

/* p: a block of `room` bytes (room >= hk_canary_pad(n)) now serving n.
 * One word store and the tail: a canary word that runs into the tail's
 * bytes (gap < 16) is overwritten by the tail, stored last; it never passes
 * room, since gap >= HK_CANARY_MIN > 8. */
HK_INLINE void hk_canary_set(void *p, size_t n, size_t room) {
  uint8_t *b = p;
  n = hk_canary_request(n);
  uint64_t mask = hk_canary_mask(p), w = hk_canary_word(mask), t = hk_canary_tail(room - n, mask);
  __builtin_memcpy(b + n, &w, 8);
  __builtin_memcpy(b + room - 8, &t, 8);
}

/* Reports the first changed byte (or the tail) and aborts (core/harden.c). */
__attribute__((noreturn, cold)) void hk_canary_fail(const void *p, size_t room);

/* p: a live block of `room` bytes. Its requested size; a changed canary
 * or tail aborts with "hakmem: heap overflow at <first bad byte>". The
 * canary bytes are the min(gap - 8, 8) after n: a linear overflow changes
 * the first of them, whatever its length. */
HK_INLINE size_t hk_canary_check(const void *p, size_t room) {
  const uint8_t *b = p;
  uint64_t mask = hk_canary_mask(p), t, x;
  __builtin_memcpy(&t, b + room - 8, 8);
  size_t gap = (size_t)((t ^ mask) & (((uint64_t)1 << 48) - 1));
  if (HK_UNLIKELY(gap < HK_CANARY_MIN || gap > room || hk_canary_tail(gap, mask) != t)) hk_canary_fail(p, room);
  size_t n = room - gap, c = gap - 8 < 8 ? gap - 8 : 8;
  __builtin_memcpy(&x, b + n, 8);
  if (HK_UNLIKELY(((x ^ hk_canary_word(mask)) & (~(uint64_t)0 >> (64 - 8 * c))) != 0)) hk_canary_fail(p, room);
  return n;
}

/* Randomised carving (core/slab.c): a number below n from a per-thread
 * generator. */
uint32_t hk_harden_rand_below(uint32_t n);

#define HK_HARDEN_INIT() hk_harden_init()
#else
#define HK_HARDEN_INIT() ((void)0)
#endif /* HK_HARDENED */
#endif /* HK_HARDEN_H */
