/* hk_common.h -- what every test and helper program shares: the allocator
 * entry points under one set of names, values the compiler cannot see
 * through, and byte patterns to prove that memory kept its contents.
 *
 * Plain build (tests linked to libhakmem.so): T_MALLOC is malloc, and so on,
 * so the test exercises the override exactly as a program would.
 * -DTEST_PREFIXED (sanitizer presets, libhakmem.a): T_MALLOC is hak_malloc.
 *
 * Everything here is static inline: a file that includes this header and
 * uses half of it still compiles under -Wall -Wextra -Werror. */
#ifndef HK_COMMON_H
#define HK_COMMON_H

#include <errno.h>
#include <malloc.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hakmem.h"

#ifdef TEST_PREFIXED
#define T_MALLOC(n)              hak_malloc(n)
#define T_FREE(p)                hak_free(p)
#define T_CALLOC(n, m)           hak_calloc((n), (m))
#define T_REALLOC(p, n)          hak_realloc((p), (n))
#define T_REALLOCARRAY(p, n, m)  hak_reallocarray((p), (n), (m))
#define T_POSIX_MEMALIGN(o, a, n) hak_posix_memalign((o), (a), (n))
#define T_ALIGNED_ALLOC(a, n)    hak_aligned_alloc((a), (n))
#define T_MEMALIGN(a, n)         hak_memalign((a), (n))
#define T_VALLOC(n)              hak_valloc(n)
#define T_PVALLOC(n)             hak_pvalloc(n)
#define T_USABLE(p)              hak_usable_size(p)
#define T_API_NAME               "hak_ API (libhakmem.a)"
#else
#define T_MALLOC(n)              malloc(n)
#define T_FREE(p)                free(p)
#define T_CALLOC(n, m)           calloc((n), (m))
#define T_REALLOC(p, n)          realloc((p), (n))
#define T_REALLOCARRAY(p, n, m)  reallocarray((p), (n), (m))
#define T_POSIX_MEMALIGN(o, a, n) posix_memalign((o), (a), (n))
#define T_ALIGNED_ALLOC(a, n)    aligned_alloc((a), (n))
#define T_MEMALIGN(a, n)         memalign((a), (n))
#define T_VALLOC(n)              valloc(n)
#define T_PVALLOC(n)             pvalloc(n)
#define T_USABLE(p)              malloc_usable_size((void *)(p))
#define T_API_NAME               "malloc family (libhakmem.so override)"
#endif

#define HK_KIB ((size_t)1024)
#define HK_MIB ((size_t)1024 * 1024)
#define HK_LARGE_MIN (128 * HK_KIB + 1) /* larger than this: a mapping of its own */

/* Values the optimiser cannot fold: keeps gcc from proving a request too
 * large at compile time (-Walloc-size-larger-than) or from pairing a free
 * with the allocation it came from (-Wuse-after-free, -Wfree-nonheap-object
 * on purposely bad frees). */
static inline size_t hk_opaque(size_t x) {
  __asm__ volatile("" : "+r"(x));
  return x;
}

static inline void *hk_launder(void *p) {
  __asm__ volatile("" : "+r"(p));
  return p;
}

static inline int hk_aligned(const void *p, size_t a) { return ((uintptr_t)p & (a - 1)) == 0; }

/* A deterministic, seed-dependent byte pattern: a block filled with seed s
 * and checked with seed s fails if any byte was overwritten, shifted, or
 * belongs to another block (other seed). */
static inline uint64_t hk_pat_word(uint64_t seed, size_t w) {
  uint64_t x = seed * 0x9e3779b97f4a7c15ull + (uint64_t)w * 0xbf58476d1ce4e5b9ull;
  x ^= x >> 29;
  x *= 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

static inline unsigned char hk_pat(uint64_t seed, size_t i) {
  return (unsigned char)(hk_pat_word(seed, i >> 3) >> ((i & 7) * 8));
}

static inline void hk_fill(void *p, size_t n, uint64_t seed) {
  unsigned char *b = p;
  for (size_t i = 0; i < n; i += 8) {
    uint64_t x = hk_pat_word(seed, i >> 3);
    size_t m = n - i < 8 ? n - i : 8;
    for (size_t j = 0; j < m; j++) b[i + j] = (unsigned char)(x >> (j * 8));
  }
}

/* Index of the first byte that differs from the pattern, or SIZE_MAX. */
static inline size_t hk_check(const void *p, size_t n, uint64_t seed) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i += 8) {
    uint64_t x = hk_pat_word(seed, i >> 3);
    size_t m = n - i < 8 ? n - i : 8;
    for (size_t j = 0; j < m; j++)
      if (b[i + j] != (unsigned char)(x >> (j * 8))) return i + j;
  }
  return SIZE_MAX;
}

/* Index of the first non-zero byte, or SIZE_MAX. */
static inline size_t hk_first_nonzero(const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++)
    if (b[i] != 0) return i;
  return SIZE_MAX;
}

/* xorshift64*: reproducible sizes and decisions. */
static inline uint64_t hk_rand(uint64_t *s) {
  uint64_t x = *s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *s = x;
  return x * 0x2545f4914f6cdd1dull;
}

/* A mixed request size: mostly small, some medium, a few large (> 128 KiB). */
static inline size_t hk_mixed_size(uint64_t *s) {
  uint64_t r = hk_rand(s);
  unsigned pick = (unsigned)(r % 1000);
  if (pick < 700) return (size_t)(r >> 20) % 512;                 /* 0..511 */
  if (pick < 950) return 512 + (size_t)(r >> 20) % (16 * 1024);   /* to 16.5 KiB */
  if (pick < 995) return 16 * 1024 + (size_t)(r >> 20) % (112 * 1024); /* medium, to 128 KiB */
  return HK_LARGE_MIN + (size_t)(r >> 20) % (768 * 1024);         /* large */
}

static inline size_t hk_min(size_t a, size_t b) { return a < b ? a : b; }

#endif /* HK_COMMON_H */
