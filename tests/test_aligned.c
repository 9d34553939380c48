/* test_aligned.c -- CONTRACT.md "Required behaviour": posix_memalign,
 * aligned_alloc, memalign / valloc / pvalloc, and alignments up to 32 MiB. */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hk_test.h"

TestSuite(aligned, .init = hk_require_override, .timeout = 240.);

#define PAGE ((size_t)4096)

static size_t first_not(const void *p, size_t n, unsigned char v) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++)
    if (b[i] != v) return i;
  return SIZE_MAX;
}

static size_t max_sz(size_t a, size_t b) { return a > b ? a : b; }

/* A ring of live blocks, each filled (whole usable size) with its own byte:
 * evicting one checks that no neighbour wrote into it. */
typedef struct {
  void *p[6];
  unsigned char v[6];
  unsigned next, count;
} ring_t;

static void ring_put(ring_t *r, void *p) {
  unsigned i = r->next;
  if (r->p[i] != NULL) {
    size_t bad = first_not(r->p[i], T_USABLE(r->p[i]), r->v[i]);
    cr_assert(bad == SIZE_MAX, "block %p lost byte %zu: a neighbour wrote into it", r->p[i], bad);
    T_FREE(r->p[i]);
  }
  r->p[i] = p;
  r->v[i] = (unsigned char)(++r->count % 253 + 1);
  memset(p, r->v[i], T_USABLE(p));
  r->next = (i + 1) % 6;
}

static void ring_drain(ring_t *r) {
  for (unsigned i = 0; i < 6; i++) {
    if (r->p[i] == NULL) continue;
    size_t bad = first_not(r->p[i], T_USABLE(r->p[i]), r->v[i]);
    cr_assert(bad == SIZE_MAX, "block %p lost byte %zu", r->p[i], bad);
    T_FREE(r->p[i]);
    r->p[i] = NULL;
  }
}

static const size_t odd_sizes[] = {0, 1, 7, 13, 100, 1001, 4095, 4097, 65537, 131073, HK_MIB + 3};
#define NODD (sizeof odd_sizes / sizeof odd_sizes[0])

/* ---- posix_memalign --------------------------------------------------------- */

Test(aligned, posix_memalign_rejects_bad_alignment_without_touching_memptr) {
  const size_t bad[] = {0, 1, 2, 4, 3, 12, 20, 24, 48, 96, 100, 4097, 4104, ((size_t)1 << 20) + 8, SIZE_MAX,
                        SIZE_MAX / 2, SIZE_MAX / 2 + 9};
  const size_t n[] = {0, 100, 5000, 300000};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    for (size_t k = 0; k < sizeof n / sizeof n[0]; k++) {
      void *const sentinel = (void *)(uintptr_t)0x5a5a5a50;
      void *m = sentinel;
      int rc = T_POSIX_MEMALIGN(&m, hk_opaque(bad[i]), hk_opaque(n[k]));
      cr_assert(rc == EINVAL, "posix_memalign(alignment %zu, %zu) returned %d, not EINVAL", bad[i], n[k], rc);
      cr_assert(m == sentinel, "posix_memalign(alignment %zu, %zu) failed but wrote %p to *memptr", bad[i], n[k], m);
    }
  }
}

Test(aligned, posix_memalign_too_large_fails_with_enomem) {
  const struct {
    size_t a, n;
  } big[] = {{64, SIZE_MAX / 2},
             {64, (size_t)PTRDIFF_MAX + 1},
             {4096, (size_t)PTRDIFF_MAX},
             {(size_t)1 << 21, SIZE_MAX - ((size_t)1 << 20)},
             {(size_t)1 << 25, SIZE_MAX - ((size_t)1 << 25) + 1},
             {(size_t)1 << 62, 16},
             {(size_t)1 << 63, 16}};
  for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) {
    void *m = NULL;
    int rc = T_POSIX_MEMALIGN(&m, hk_opaque(big[i].a), hk_opaque(big[i].n));
    cr_assert(rc == ENOMEM, "posix_memalign(alignment %zu, %zu) returned %d (block %p), not ENOMEM", big[i].a, big[i].n,
              rc, m);
  }
  void *m = NULL;
  cr_assert(T_POSIX_MEMALIGN(&m, 64, 100) == 0 && m != NULL, "heap unusable after failed posix_memalign");
  T_FREE(m);
}

Test(aligned, posix_memalign_honours_every_power_of_two) {
  ring_t ring = {0};
  for (size_t a = sizeof(void *); a <= 32 * HK_MIB; a *= 2) {
    const size_t n[] = {0, 1, 100, a - 1, a, a + 1, hk_min(3 * a + 5, 4 * HK_MIB + 1)};
    for (size_t k = 0; k < sizeof n / sizeof n[0]; k++) {
      void *m = (void *)0x1;
      int rc = T_POSIX_MEMALIGN(&m, hk_opaque(a), hk_opaque(n[k]));
      cr_assert(rc == 0, "posix_memalign(%zu, %zu) returned %d", a, n[k], rc);
      char what[64];
      snprintf(what, sizeof what, "posix_memalign[alignment %zu]", a);
      HK_ASSERT_GOOD_BLOCK(m, n[k], what);
      cr_assert(hk_aligned(m, a), "posix_memalign(%zu, %zu) = %p is misaligned", a, n[k], m);
      ring_put(&ring, m);
    }
  }
  ring_drain(&ring);
}

/* ---- aligned_alloc ------------------------------------------------------------ */

Test(aligned, aligned_alloc_honours_power_of_two_alignment_for_any_size) {
  ring_t ring = {0};
  for (size_t a = 1; a <= 32 * HK_MIB; a *= 2) {
    for (size_t k = 0; k < NODD; k++) {
      size_t n = hk_opaque(odd_sizes[k]);
      errno = EBADF;
      void *p = T_ALIGNED_ALLOC(hk_opaque(a), n);
      cr_assert(p != NULL, "aligned_alloc(%zu, %zu) returned NULL (errno %d): no multiple-of-alignment rule", a, n,
                errno);
      cr_assert(errno == EBADF, "successful aligned_alloc(%zu, %zu) changed errno", a, n);
      char what[64];
      snprintf(what, sizeof what, "aligned_alloc[alignment %zu]", a);
      HK_ASSERT_GOOD_BLOCK(p, n, what);
      cr_assert(hk_aligned(p, max_sz(a, 16)), "aligned_alloc(%zu, %zu) = %p is misaligned", a, n, p);
      ring_put(&ring, p);
    }
  }
  ring_drain(&ring);
  /* many small aligned blocks live together: distinct, non-overlapping */
  for (int i = 0; i < 3000; i++) {
    void *p = T_ALIGNED_ALLOC(64, hk_opaque(48));
    cr_assert(p != NULL && hk_aligned(p, 64));
    ring_put(&ring, p);
  }
  ring_drain(&ring);
}

Test(aligned, aligned_alloc_rejects_non_power_of_two_alignment) {
  const size_t bad[] = {3, 5, 6, 12, 24, 48, 100, 4097, 12288, ((size_t)1 << 20) + 1, (size_t)3 << 20,
                        SIZE_MAX, SIZE_MAX / 2, SIZE_MAX / 2 + 2};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    for (size_t n = 0; n < 3; n++) {
      size_t size = n == 0 ? 100 : n == 1 ? bad[i] * 2 : 300000;
      errno = 0;
      void *p = T_ALIGNED_ALLOC(hk_opaque(bad[i]), hk_opaque(size));
      cr_assert(p == NULL, "aligned_alloc(%zu, %zu) returned %p for a non-power-of-two alignment", bad[i], size, p);
      cr_assert(errno == EINVAL, "aligned_alloc(%zu, %zu): errno %d, not EINVAL", bad[i], size, errno);
    }
  }
}

Test(aligned, aligned_alloc_rejects_zero_alignment) {
  errno = 0;
  void *p = T_ALIGNED_ALLOC(hk_opaque(0), hk_opaque(16));
  cr_assert(p == NULL, "aligned_alloc(0, 16) returned %p: 0 is not a power of two", p);
  cr_assert(errno == EINVAL, "aligned_alloc(0, 16): errno %d, not EINVAL", errno);
}

Test(aligned, huge_power_of_two_alignment_fails_with_enomem) {
  const size_t a[] = {(size_t)1 << 62, (size_t)1 << 63};
  for (size_t i = 0; i < 2; i++) {
    errno = 0;
    void *p = T_ALIGNED_ALLOC(hk_opaque(a[i]), hk_opaque(16));
    cr_assert(p == NULL && errno == ENOMEM, "aligned_alloc(%zu, 16): %p, errno %d (want NULL, ENOMEM)", a[i], p, errno);
    errno = 0;
    p = T_MEMALIGN(hk_opaque(a[i]), hk_opaque(16));
    cr_assert(p == NULL && errno == ENOMEM, "memalign(%zu, 16): %p, errno %d (want NULL, ENOMEM)", a[i], p, errno);
  }
  void *p = T_ALIGNED_ALLOC(64, 64);
  cr_assert(p != NULL);
  T_FREE(p);
}

/* ---- memalign / valloc / pvalloc -------------------------------------------------- */

Test(aligned, memalign_aligns_to_requested_power_of_two) {
  ring_t ring = {0};
  for (size_t a = 1; a <= 32 * HK_MIB; a *= 2) {
    for (size_t k = 0; k < NODD; k++) {
      size_t n = hk_opaque(odd_sizes[k]);
      void *p = T_MEMALIGN(hk_opaque(a), n);
      char what[64];
      snprintf(what, sizeof what, "memalign[alignment %zu]", a);
      HK_ASSERT_GOOD_BLOCK(p, n, what);
      cr_assert(hk_aligned(p, max_sz(a, 16)), "memalign(%zu, %zu) = %p is misaligned", a, n, p);
      ring_put(&ring, p);
    }
  }
  ring_drain(&ring);
}

/* glibc's memalign rounds an alignment that is not a power of two up to the
 * next one (instead of failing as aligned_alloc must). */
Test(aligned, memalign_rounds_odd_alignment_up_to_power_of_two) {
  const struct {
    size_t asked, got;
  } cases[] = {{24, 32}, {48, 64}, {100, 128}, {3000, 4096}, {4097, 8192}, {(1 << 20) + 1, 1 << 21},
               {(size_t)3 << 20, (size_t)4 << 20}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    void *p = T_MEMALIGN(hk_opaque(cases[i].asked), hk_opaque(100));
    HK_ASSERT_GOOD_BLOCK(p, (size_t)100, "memalign");
    cr_assert(hk_aligned(p, cases[i].got), "memalign(%zu, 100) = %p is not %zu-aligned", cases[i].asked, p,
              cases[i].got);
    T_FREE(p);
  }
  void *p = T_MEMALIGN(hk_opaque(SIZE_MAX / 2 + 2), hk_opaque(16));
  cr_assert(p == NULL, "memalign(SIZE_MAX/2+2, 16) returned %p: no power of two above it fits", p);
}

static const size_t page_sizes[] = {0, 1, 100, 4095, 4096, 4097, 10000, 100000, 131072, 200000, HK_MIB + 1};
#define NPAGE (sizeof page_sizes / sizeof page_sizes[0])

Test(aligned, valloc_is_page_aligned) {
  ring_t ring = {0};
  for (int rep = 0; rep < 4; rep++) {
    for (size_t k = 0; k < NPAGE; k++) {
      size_t n = hk_opaque(page_sizes[k]);
      void *p = T_VALLOC(n);
      HK_ASSERT_GOOD_BLOCK(p, n, "valloc");
      cr_assert(hk_aligned(p, PAGE), "valloc(%zu) = %p is not page-aligned", n, p);
      ring_put(&ring, p);
    }
  }
  ring_drain(&ring);
}

Test(aligned, pvalloc_is_page_aligned_and_rounds_size_up_to_page) {
  ring_t ring = {0};
  for (int rep = 0; rep < 4; rep++) {
    for (size_t k = 0; k < NPAGE; k++) {
      size_t n = hk_opaque(page_sizes[k]);
      size_t rounded = (n + PAGE - 1) & ~(PAGE - 1);
      void *p = T_PVALLOC(n);
      HK_ASSERT_GOOD_BLOCK(p, n, "pvalloc");
      cr_assert(hk_aligned(p, PAGE), "pvalloc(%zu) = %p is not page-aligned", n, p);
      cr_assert(T_USABLE(p) >= rounded, "pvalloc(%zu): usable size %zu < %zu (the size rounded up to a page)", n,
                (size_t)T_USABLE(p), rounded);
      ring_put(&ring, p); /* writes the whole usable size, so the rounded page too */
    }
  }
  ring_drain(&ring);
}

/* ---- alignments up to 32 MiB, and the address space they cost ---------------- */

Test(aligned, alignment_32mib_honoured_without_wasting_address_space) {
  const size_t a = 32 * HK_MIB;
  hak_stats_t before = hk_stats();
  void *p = T_ALIGNED_ALLOC(hk_opaque(a), hk_opaque(100));
  hak_stats_t after = hk_stats();
  cr_assert(p != NULL, "aligned_alloc(32 MiB, 100) returned NULL");
  cr_assert(hk_aligned(p, a), "aligned_alloc(32 MiB, 100) = %p is not 32 MiB-aligned", p);
  cr_assert(hak_owns(p) && T_USABLE(p) >= 100);
  size_t delta = after.mapped_bytes - before.mapped_bytes;
  cr_assert(after.mapped_bytes <= before.mapped_bytes + a + 4 * HK_MIB,
            "aligned_alloc(32 MiB, 100) added %zu MiB of mapped address space (limit: alignment + 4 MiB)",
            delta >> 20);
  memset(p, 0x42, T_USABLE(p));
  T_FREE(p);
}

Test(aligned, large_alignments_waste_at_most_the_alignment) {
  for (size_t a = 2 * HK_MIB; a <= 32 * HK_MIB; a *= 2) {
    const size_t n[] = {100, a / 2 + 1, a + 1};
    for (size_t k = 0; k < 3; k++) {
      hak_stats_t before = hk_stats();
      void *p = NULL;
      cr_assert(T_POSIX_MEMALIGN(&p, hk_opaque(a), hk_opaque(n[k])) == 0, "posix_memalign(%zu MiB, %zu) failed",
                a >> 20, n[k]);
      hak_stats_t after = hk_stats();
      cr_assert(hk_aligned(p, a));
      size_t limit = a + ((n[k] + 2 * HK_MIB - 1) & ~(2 * HK_MIB - 1)) + 4 * HK_MIB;
      cr_assert(after.mapped_bytes <= before.mapped_bytes + limit,
                "posix_memalign(%zu MiB, %zu) added %zu KiB of mapped address space (limit %zu KiB)", a >> 20, n[k],
                (after.mapped_bytes - before.mapped_bytes) >> 10, limit >> 10);
      T_FREE(p);
    }
  }
}

Test(aligned, freeing_aligned_blocks_returns_their_address_space) {
  hak_stats_t before = hk_stats();
  for (int rep = 0; rep < 40; rep++) {
    size_t a = (size_t)1 << (21 + rep % 5); /* 2 .. 32 MiB */
    void *p = T_ALIGNED_ALLOC(hk_opaque(a), hk_opaque((size_t)rep * 1000 + 1));
    cr_assert(p != NULL && hk_aligned(p, a));
    T_FREE(p);
  }
  hak_stats_t after = hk_stats();
  cr_assert(after.mapped_bytes <= before.mapped_bytes + 4 * HK_MIB,
            "40 aligned allocations, all freed, left %zu MiB mapped: aligned mappings leak",
            (after.mapped_bytes - before.mapped_bytes) >> 20);
  cr_assert(after.large_live == before.large_live);
}
