/* hk_test.h -- Criterion glue shared by the test files.
 *
 * Every suite that checks the malloc contract runs hk_require_override as its
 * .init: if the test process is not actually allocating from HAKMEM (the
 * override is not active, or a prefixed build is broken) every test fails
 * with that message instead of passing against glibc. */
#ifndef HK_TEST_H
#define HK_TEST_H

#ifdef HK_MINI_CRITERION
#include "mini_criterion.h" /* ThreadSanitizer builds: see mini_criterion.h */
#else
#include <criterion/criterion.h>
#include <criterion/logging.h>
#endif

#include <stdio.h>
#include <unistd.h>

#include "hk_common.h"

static inline void hk_require_override(void) {
  void *p = T_MALLOC(hk_opaque(24));
  cr_assert(p != NULL, "%s: malloc(24) returned NULL", T_API_NAME);
  cr_assert(hak_owns(p), "%s: malloc(24) = %p is not HAKMEM's: the override is not active",
            T_API_NAME, p);
  T_FREE(p);
}

/* Sanitizer presets: their shadow memory is part of RSS, so RSS checks
 * there become checks of what HAKMEM maps. */
#if defined(HK_TSAN) || defined(HK_ASAN)
#define HK_SANITIZED 1
#endif

/* Give back everything returnable: malloc_trim, or hak_collect for the
 * prefixed API. */
#ifdef TEST_PREFIXED
#define T_TRIM() hak_collect(true)
#else
#define T_TRIM() malloc_trim(0)
#endif

/* The process's resident set, from /proc/self/statm. */
static inline size_t hk_rss_bytes(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  unsigned long size = 0, resident = 0;
  if (f != NULL) {
    if (fscanf(f, "%lu %lu", &size, &resident) != 2) resident = 0;
    fclose(f);
  }
  return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

static inline hak_stats_t hk_stats(void) {
  hak_stats_t s;
  memset(&s, 0, sizeof s);
  hak_stats_get(&s);
  return s;
}

/* Every success: aligned to 16, usable >= asked, ours. */
#define HK_ASSERT_GOOD_BLOCK(p, n, what)                                                         \
  do {                                                                                           \
    const void *hk_p_ = (p);                                                                     \
    size_t hk_n_ = (n);                                                                          \
    cr_assert(hk_p_ != NULL, "%s(%zu) returned NULL", (what), hk_n_);                            \
    cr_assert(hk_aligned(hk_p_, 16), "%s(%zu) = %p is not 16-byte aligned", (what), hk_n_, hk_p_); \
    cr_assert(hak_owns(hk_p_), "%s(%zu) = %p is not a HAKMEM block", (what), hk_n_, hk_p_);       \
    cr_assert(T_USABLE(hk_p_) >= hk_n_, "%s(%zu): usable size %zu < request", (what), hk_n_,     \
              (size_t)T_USABLE(hk_p_));                                                          \
  } while (0)

#endif /* HK_TEST_H */
