/* harden.h -- the hardened build's checks (HK_HARDENED) besides the block
 * encoding of core/block.h: secrets, the canary after every block's
 * requested size (whose tail, marked by free, also catches every double
 * free), and the guard pages of the SuperSlab layout (hk_config.h). Nothing here exists in the
 * default build.
 *
 * Canary. A request of n bytes is served from a block of at least
 * n + HK_CANARY_MIN bytes (its room: the class size, or a large block's
 * usable size). The block then holds, after the program's n bytes:
 *   [n, n + 8)          the canary word: eight bytes of the block's mask
 *                       (the process secret xor its address), each with
 *                       its top bit set (so an ASCII or NUL byte written
 *                       past the end always differs)
 *   [room - 8, room)    the tail word: the gap room - n, xored with the
 *                       mask
 * (adjacent when the gap is 16; the bytes between are not looked at).
 * free, realloc and malloc_usable_size decode the tail (one xor), check
 * that the gap is in range and compare the canary word: a linear write
 * past the end changes the byte at n first. No separate check of the tail
 * is needed: a write that reaches it (through the canary, or not knowing
 * the secret) decodes to a gap out of range but for a chance of about
 * room / 2^64, and a change confined to its low bits gives a gap that
 * points the canary compare at bytes that are not the canary word. The
 * fixed 16-byte minimum (an 8-byte canary whatever the gap) keeps the
 * compare one word, with no mask of variable width. usable_size reports
 * n, so realloc(p, malloc_usable_size(p)) stays in place, as in scudo.
 *
 * The secret: hk_canary_set_served, hk_canary_set and hk_canary_free take
 * it as sec. The fast paths pass their heap's copy (hk_heap.canary_secret,
 * beside the heap pointer they hold: one load, where the global's relaxed
 * load is two instructions), every other caller hk_harden_secret(); the
 * two are the same value. The checks off the fast paths read the global. */
#ifndef HK_HARDEN_H
#define HK_HARDEN_H

#ifdef HK_HARDENED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hk_atomic.h"
#include "hk_config.h"

#define HK_CANARY_MIN 16 /* the canary word and the tail word */

/* The process secret, from the kernel's AT_RANDOM bytes. hk_harden_init
 * sets it before the first block exists: at process init (api/thread.c,
 * which every small block's first malloc in a thread passes) and before a
 * large block's first canary (api/api.c). Every thread that finds it unset
 * computes the same value, so relaxed order suffices and a race only
 * repeats the work. Heaps keep a copy (hk_heap.canary_secret), taken when
 * they are set up, after process init. */
extern _Atomic uint64_t hk_harden_secret_word;
void hk_harden_init(void);
HK_INLINE uint64_t hk_harden_secret(void) { return hk_load_relaxed(&hk_harden_secret_word); }
/* A fresh 64-bit secret for a SuperSlab or a heap (never 0). */
uint64_t hk_harden_random(void);

/* The size a request of n is served as: malloc(0) as malloc(1), so its
 * usable size (the request) is not 0 and realloc(p, malloc_usable_size(p))
 * neither frees it nor moves it. */
HK_INLINE size_t hk_canary_request(size_t n) { return n + (n == 0); }

/* Bytes to ask the size classes for, to serve n with its canary: the
 * request it is served as (malloc(0) as 1), the canary word and the tail. */
HK_INLINE size_t hk_canary_pad(size_t n) {
  n = hk_canary_request(n);
  return n > SIZE_MAX - HK_CANARY_MIN ? SIZE_MAX : n + HK_CANARY_MIN;
}

HK_INLINE uint64_t hk_canary_mask(const void *p, uint64_t sec) { return sec ^ (uintptr_t)p; }

/* The canary word: the mask's bytes, each with its top bit set. */
HK_INLINE uint64_t hk_canary_word(uint64_t mask) { return mask | 0x8080808080808080ull; }

HK_INLINE uint64_t hk_canary_tail(size_t gap, uint64_t mask) { return (uint64_t)gap ^ mask; }
/* The gap a tail word says; any value when the tail was changed. */
HK_INLINE size_t hk_canary_gap(uint64_t t, uint64_t mask) { return (size_t)(t ^ mask); }
/* The gap's range in a block of `room` bytes, [HK_CANARY_MIN, room]: one
 * compare of the request it gives, room - gap, which the canary's address
 * needs anyway (a gap above room wraps it past room - HK_CANARY_MIN). */
HK_INLINE bool hk_canary_gap_ok(size_t gap, size_t room) { return room - gap <= room - HK_CANARY_MIN; }

/* p: a block of `room` bytes now serving r bytes, r already
 * hk_canary_request's (room >= r + HK_CANARY_MIN). Two word stores, which
 * never overlap: the gap is at least 16. */
HK_INLINE void hk_canary_set_served(void *p, size_t r, size_t room, uint64_t sec) {
  uint8_t *b = p;
  uint64_t mask = hk_canary_mask(p, sec), w = hk_canary_word(mask), t = hk_canary_tail(room - r, mask);
  __builtin_memcpy(b + r, &w, 8);
  __builtin_memcpy(b + room - 8, &t, 8);
}

/* p: a block of `room` bytes (room >= hk_canary_pad(n)) now serving n. */
HK_INLINE void hk_canary_set(void *p, size_t n, size_t room, uint64_t sec) {
  hk_canary_set_served(p, hk_canary_request(n), room, sec);
}

/* Reports the first changed byte (or the tail) and aborts (core/harden.c);
 * a freed block's tail (HK_CANARY_FREED) is reported as such. */
__attribute__((noreturn, cold)) void hk_canary_fail(const void *p, size_t room);

/* Free marks the tail: its top bit flipped, the gap decodes as gap + 2^63,
 * out of range whatever the room. A second free of the block before
 * malloc hands it out again (and writes a new tail) finds it: every double
 * free is caught at the free, local or remote, and the owner need not keep
 * a bitmap. */
#define HK_CANARY_FREED ((uint64_t)1 << 63)

/* Does the tail of p (a block of `room` bytes) say free marked it freed? */
HK_INLINE bool hk_canary_says_freed(const void *p, size_t room) {
  uint64_t t;
  __builtin_memcpy(&t, (const uint8_t *)p + room - 8, 8);
  return hk_canary_gap_ok(hk_canary_gap(t, hk_canary_mask(p, hk_harden_secret())) ^ HK_CANARY_FREED, room);
}

/* hk_canary_free's tail was out of range: a tail that says the block is
 * free is reported as a double free (under its policy: this returns when
 * that is not abort, and the free is dropped); any other is an overflow
 * (hk_canary_fail). */
__attribute__((cold)) void hk_canary_free_fail(const void *p, size_t room);

/* p's tail word *t and the gap it says, the canary word checked: false
 * when the gap is out of range (a tail overwritten, or marked freed); a
 * changed canary word aborts (hk_canary_fail). What hk_canary_check and
 * hk_canary_free share. */
HK_INLINE bool hk_canary_read(const void *p, size_t room, uint64_t sec, uint64_t *t, size_t *gap) {
  const uint8_t *b = p;
  uint64_t mask = hk_canary_mask(p, sec), x;
  __builtin_memcpy(t, b + room - 8, 8);
  *gap = hk_canary_gap(*t, mask);
  if (HK_UNLIKELY(!hk_canary_gap_ok(*gap, room))) return false;
  __builtin_memcpy(&x, b + room - *gap, 8);
  if (HK_UNLIKELY(x != hk_canary_word(mask))) hk_canary_fail(p, room);
  return true;
}

/* p: a live block of `room` bytes. Its requested size; a changed canary
 * or tail aborts with "hakmem: heap overflow at <first bad byte>". A
 * linear overflow changes the canary word's first byte, whatever its
 * length; one that reached the tail makes the gap out of range. */
HK_INLINE size_t hk_canary_check(const void *p, size_t room) {
  uint64_t t;
  size_t gap;
  if (HK_UNLIKELY(!hk_canary_read(p, room, hk_harden_secret(), &t, &gap))) hk_canary_fail(p, room);
  return room - gap;
}

/* free of p, a block of `room` bytes: the checks of hk_canary_check, then
 * the tail marked freed. False when the tail is out of range: the caller
 * then calls hk_canary_free_fail and drops the free (left to it, not
 * called here, so that the fast path ends in a tail call and saves no
 * registers). */
HK_INLINE bool hk_canary_free(void *p, size_t room, uint64_t sec) {
  uint64_t t;
  size_t gap;
  if (HK_UNLIKELY(!hk_canary_read(p, room, sec, &t, &gap))) return false;
  t ^= HK_CANARY_FREED;
  __builtin_memcpy((uint8_t *)p + room - 8, &t, 8);
  return true;
}

/* Randomised carving (core/slab.c): a number below n from a per-thread
 * generator. */
uint32_t hk_harden_rand_below(uint32_t n);

#define HK_HARDEN_INIT() hk_harden_init()
#else
#define HK_HARDEN_INIT() ((void)0)
#endif /* HK_HARDENED */
#endif /* HK_HARDEN_H */
