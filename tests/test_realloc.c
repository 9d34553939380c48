/* test_realloc.c -- CONTRACT.md "Required behaviour": the realloc and
 * reallocarray rows. */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hk_test.h"

TestSuite(realloc, .init = hk_require_override, .timeout = 240.);

static const size_t sizes[] = {0,     1,      15,     16,     17,          100,    1000,   4096,        8192,
                               8193,  20000,  65536,  100000, 131072,      HK_LARGE_MIN, 200000, HK_MIB,
                               HK_MIB + 4097, 3 * HK_MIB};
#define NSIZES (sizeof sizes / sizeof sizes[0])

Test(realloc, realloc_null_acts_as_malloc) {
  void *live[NSIZES];
  for (size_t i = 0; i < NSIZES; i++) {
    size_t n = hk_opaque(sizes[i]);
    errno = EBADF;
    live[i] = T_REALLOC(NULL, n);
    HK_ASSERT_GOOD_BLOCK(live[i], n, "realloc(NULL, n)");
    cr_assert(errno == EBADF, "realloc(NULL, %zu) changed errno to %d", n, errno);
    memset(live[i], (int)i + 1, T_USABLE(live[i]));
  }
  for (size_t i = 0; i < NSIZES; i++) {
    const unsigned char *b = live[i];
    for (size_t k = 0; k < T_USABLE(b); k++)
      cr_assert(b[k] == (unsigned char)(i + 1), "realloc(NULL, %zu) block overlaps another", sizes[i]);
    T_FREE(live[i]);
  }
  void *a = T_REALLOC(NULL, hk_opaque(0)), *b = T_REALLOC(NULL, hk_opaque(0));
  cr_assert(a != NULL && b != NULL && a != b, "realloc(NULL, 0) must act as malloc(0): %p %p", a, b);
  T_FREE(a);
  T_FREE(b);
}

Test(realloc, realloc_to_zero_frees_and_returns_null) {
  for (size_t i = 0; i < NSIZES; i++) {
    void *p = T_MALLOC(hk_opaque(sizes[i]));
    cr_assert(p != NULL);
    size_t live = hk_stats().large_live;
    void *r = T_REALLOC(p, hk_opaque(0));
    cr_assert(r == NULL, "realloc(malloc(%zu), 0) returned %p, not NULL (glibc frees and returns NULL)", sizes[i], r);
    if (sizes[i] >= HK_LARGE_MIN)
      cr_assert(hk_stats().large_live == live - 1, "realloc(p, 0) of a %zu-byte block did not free it", sizes[i]);
  }
  /* The freed memory is reused: no leak across many rounds. */
  hak_stats_t before = hk_stats();
  for (int r = 0; r < 20000; r++) {
    void *p = T_MALLOC(hk_opaque(3000));
    cr_assert(p != NULL);
    cr_assert(T_REALLOC(p, hk_opaque(0)) == NULL);
  }
  hak_stats_t after = hk_stats();
  cr_assert(after.mapped_bytes <= before.mapped_bytes + 4 * HK_MIB,
            "20000 x (malloc(3000), realloc(p, 0)) grew mapped bytes from %zu to %zu: realloc(p, 0) does not free",
            before.mapped_bytes, after.mapped_bytes);
}

Test(realloc, failed_realloc_leaves_block_intact) {
  const size_t huge[] = {(size_t)PTRDIFF_MAX + 1, SIZE_MAX / 2 + 4096, SIZE_MAX - 4096, SIZE_MAX - 16, SIZE_MAX,
                         (size_t)1 << 62};
  for (size_t i = 0; i < NSIZES; i++) {
    size_t n = sizes[i];
    unsigned char *p = T_MALLOC(hk_opaque(n));
    cr_assert(p != NULL);
    size_t u = T_USABLE(p);
    hk_fill(p, u, n + 1);
    for (size_t k = 0; k < sizeof huge / sizeof huge[0]; k++) {
      errno = 0;
      void *r = T_REALLOC(hk_launder(p), hk_opaque(huge[k]));
      cr_assert(r == NULL, "realloc(%zu-byte block, %zu) returned %p", n, huge[k], r);
      cr_assert(errno == ENOMEM, "realloc(%zu-byte block, %zu): errno %d, not ENOMEM", n, huge[k], errno);
      cr_assert(T_USABLE(p) == u, "failed realloc changed the usable size from %zu to %zu", u, (size_t)T_USABLE(p));
      size_t bad = hk_check(p, u, n + 1);
      cr_assert(bad == SIZE_MAX, "failed realloc(%zu-byte block, %zu) changed byte %zu", n, huge[k], bad);
    }
    /* still valid: it can grow, and be freed */
    p = T_REALLOC(p, hk_opaque(n + 5000));
    cr_assert(p != NULL, "the %zu-byte block could not be reallocated after a failure", n);
    size_t bad = hk_check(p, hk_min(u, n + 5000), n + 1);
    cr_assert(bad == SIZE_MAX, "realloc after a failure lost byte %zu", bad);
    T_FREE(p);
  }
}

/* One block walks small -> medium -> large -> small again; every step keeps
 * min(old, new) bytes. */
Test(realloc, realloc_keeps_contents_across_small_large_small) {
  static const size_t walk[] = {1,      16,     24,     100,        1000,   4000,   8192,   8193,
                                30000,  131072, HK_LARGE_MIN, 300000, 2 * HK_MIB, 5 * HK_MIB, 2 * HK_MIB + 1, 400000,
                                140000, 131072, 70000,  9000,       500,    48,     17,     1,
                                0,      64,     HK_MIB, 32};
  for (uint64_t seed = 1; seed <= 3; seed++) {
    size_t cur = walk[0];
    unsigned char *p = T_MALLOC(hk_opaque(cur));
    cr_assert(p != NULL);
    hk_fill(p, cur, seed);
    for (size_t i = 1; i < sizeof walk / sizeof walk[0]; i++) {
      size_t n = hk_opaque(walk[i]);
      void *junk = T_MALLOC(hk_opaque(n / 2 + 8)); /* neighbours, so in-place growth is not free */
      unsigned char *q = T_REALLOC(p, n);
      if (n == 0) {
        cr_assert(q == NULL, "realloc(p, 0) returned %p", (void *)q);
        p = T_MALLOC(hk_opaque(0));
        cr_assert(p != NULL);
        cur = 0;
        T_FREE(junk);
        continue;
      }
      HK_ASSERT_GOOD_BLOCK(q, n, "realloc");
      size_t keep = hk_min(cur, n);
      size_t bad = hk_check(q, keep, seed);
      cr_assert(bad == SIZE_MAX, "realloc %zu -> %zu lost byte %zu of %zu kept", cur, n, bad, keep);
      p = q;
      hk_fill(p, n, seed);
      cur = n;
      T_FREE(junk);
    }
    T_FREE(p);
  }
}

/* Reported per size (cr_expect), so one run lists every size that moves. */
Test(realloc, realloc_to_usable_size_stays_in_place) {
  for (size_t i = 0; i < NSIZES; i++) {
    size_t n = sizes[i];
    unsigned char *p = T_MALLOC(hk_opaque(n));
    cr_assert(p != NULL);
    size_t u = T_USABLE(p);
    hk_fill(p, u, 5);
    unsigned char *q = T_REALLOC(p, hk_opaque(u));
    cr_assert(q != NULL);
    cr_expect(q == p, "realloc(p, malloc_usable_size(p) = %zu) moved a %zu-byte block from %p to %p", u, n,
              (void *)p, (void *)q);
    cr_assert(hk_check(q, u, 5) == SIZE_MAX, "realloc to the usable size changed the contents");
    cr_assert(T_USABLE(q) >= u);
    if (n == 0) { /* realloc(p, 0) would free it */
      T_FREE(q);
      continue;
    }
    unsigned char *r = T_REALLOC(q, hk_opaque(n));
    cr_assert(r != NULL);
    cr_expect(r == q, "realloc(p, %zu) of a block malloc(%zu) returned (usable %zu), which fits, moved it from %p to %p",
              n, n, u, (void *)q, (void *)r);
    cr_assert(hk_check(r, n, 5) == SIZE_MAX);
    T_FREE(r);
  }
}

/* Blocks from aligned_alloc / posix_memalign / memalign are ordinary blocks
 * to realloc and free, whatever their alignment and size (0 included). */
Test(realloc, realloc_of_aligned_blocks_keeps_contents) {
  static const size_t n[] = {0, 1, 100, 5000, 131072, 200000};
  for (size_t a = 16; a <= 4 * HK_MIB; a *= 4) {
    for (size_t k = 0; k < sizeof n / sizeof n[0]; k++) {
      for (int how = 0; how < 3; how++) {
        static const char *const names[] = {"aligned_alloc", "posix_memalign", "memalign"};
        unsigned char *p = NULL;
        if (how == 0) p = T_ALIGNED_ALLOC(hk_opaque(a), hk_opaque(n[k]));
        else if (how == 1) cr_assert(T_POSIX_MEMALIGN((void **)&p, hk_opaque(a), hk_opaque(n[k])) == 0);
        else p = T_MEMALIGN(hk_opaque(a), hk_opaque(n[k]));
        cr_assert(p != NULL, "%s(%zu, %zu) returned NULL", names[how], a, n[k]);
        hk_fill(p, n[k], a + n[k]);
        size_t grow = n[k] * 2 + 100;
        unsigned char *q = T_REALLOC(p, hk_opaque(grow));
        cr_assert(q != NULL, "realloc(%s(%zu, %zu) block, %zu) returned NULL (usable size of the block: %zu)",
                  names[how], a, n[k], grow, (size_t)T_USABLE(p));
        HK_ASSERT_GOOD_BLOCK(q, grow, "realloc of an aligned block");
        size_t bad = hk_check(q, n[k], a + n[k]);
        cr_assert(bad == SIZE_MAX, "realloc(%s(%zu, %zu) block, %zu) lost byte %zu", names[how], a, n[k], grow, bad);
        T_FREE(q);
      }
    }
  }
}

/* A long random walk over sizes, several blocks at once. */
Test(realloc, random_resizes_keep_contents) {
  enum { N = 64 };
  unsigned char *p[N] = {0};
  size_t n[N] = {0};
  uint64_t s = 12345;
  for (int step = 0; step < 40000; step++) {
    int i = (int)(hk_rand(&s) % N);
    size_t want = hk_mixed_size(&s);
    if (want == 0) want = 1;
    if (p[i] != NULL) {
      size_t bad = hk_check(p[i], n[i], (uint64_t)i * 7919 + n[i]);
      cr_assert(bad == SIZE_MAX, "step %d: block %d (%zu bytes) lost byte %zu while live", step, i, n[i], bad);
    }
    unsigned char *q = T_REALLOC(p[i], want);
    HK_ASSERT_GOOD_BLOCK(q, want, "realloc");
    if (p[i] != NULL) {
      size_t keep = hk_min(n[i], want);
      size_t bad = hk_check(q, keep, (uint64_t)i * 7919 + n[i]);
      cr_assert(bad == SIZE_MAX, "step %d: realloc %zu -> %zu lost byte %zu", step, n[i], want, bad);
    }
    p[i] = q;
    n[i] = want;
    hk_fill(q, want, (uint64_t)i * 7919 + want);
  }
  for (int i = 0; i < N; i++) T_FREE(p[i]);
}

/* ---- reallocarray ------------------------------------------------------------ */

Test(realloc, reallocarray_overflow_fails_and_keeps_block) {
  const struct {
    size_t n, m;
  } bad[] = {{SIZE_MAX, 2}, {2, SIZE_MAX}, {SIZE_MAX / 2 + 1, 2}, {(size_t)1 << 32, (size_t)1 << 32},
             {SIZE_MAX / 16 + 1, 16}, {(size_t)PTRDIFF_MAX / 4 + 1, 4}};
  static const size_t start[] = {64, 5000, 300000};
  for (size_t s = 0; s < sizeof start / sizeof start[0]; s++) {
    unsigned char *p = T_MALLOC(hk_opaque(start[s]));
    cr_assert(p != NULL);
    size_t u = T_USABLE(p);
    hk_fill(p, u, 11);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
      errno = 0;
      void *r = T_REALLOCARRAY(hk_launder(p), hk_opaque(bad[i].n), hk_opaque(bad[i].m));
      cr_assert(r == NULL, "reallocarray(p, %zu, %zu) returned %p", bad[i].n, bad[i].m, r);
      cr_assert(errno == ENOMEM, "reallocarray(p, %zu, %zu): errno %d, not ENOMEM", bad[i].n, bad[i].m, errno);
      size_t b = hk_check(p, u, 11);
      cr_assert(b == SIZE_MAX, "failed reallocarray(p, %zu, %zu) changed byte %zu of the block", bad[i].n, bad[i].m,
                b);
      errno = 0;
      r = T_REALLOCARRAY(NULL, hk_opaque(bad[i].n), hk_opaque(bad[i].m));
      cr_assert(r == NULL && errno == ENOMEM, "reallocarray(NULL, %zu, %zu): %p, errno %d", bad[i].n, bad[i].m, r,
                errno);
    }
    /* and a legal one keeps the contents */
    unsigned char *q = T_REALLOCARRAY(p, hk_opaque(start[s] / 8 + 10), hk_opaque(16));
    HK_ASSERT_GOOD_BLOCK(q, (start[s] / 8 + 10) * 16, "reallocarray");
    size_t keep = hk_min(u, (start[s] / 8 + 10) * 16);
    size_t b = hk_check(q, keep, 11);
    cr_assert(b == SIZE_MAX, "reallocarray to %zu bytes lost byte %zu of %zu kept", (start[s] / 8 + 10) * 16, b, keep);
    T_FREE(q);
  }
}

Test(realloc, reallocarray_null_zero_count_returns_block) {
  void *a = T_REALLOCARRAY(NULL, hk_opaque(0), hk_opaque(16));
  void *b = T_REALLOCARRAY(NULL, hk_opaque(16), hk_opaque(0));
  cr_assert(a != NULL, "reallocarray(NULL, 0, 16) returned NULL");
  cr_assert(b != NULL, "reallocarray(NULL, 16, 0) returned NULL");
  cr_assert(a != b);
  cr_assert(hak_owns(a) && hak_owns(b));
  T_FREE(a);
  T_FREE(b);
}
