/* test_required.c -- CONTRACT.md "Required behaviour": the rows about plain
 * malloc, free, calloc, errno, sizes and usable sizes. Realloc, alignment and
 * threads have files of their own.
 *
 * Linked to libhakmem.so, so malloc here is HAKMEM's (every test checks that
 * first, in the suite's .init). With -DTEST_PREFIXED (sanitizer presets) the
 * same tests call hak_malloc & co. from libhakmem.a. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "hk_test.h"

TestSuite(required, .init = hk_require_override, .timeout = 240.);

static int cmp_ptr(const void *x, const void *y) {
  uintptr_t a = (uintptr_t) * (void *const *)x, b = (uintptr_t) * (void *const *)y;
  return a < b ? -1 : a > b;
}

static size_t first_not(const void *p, size_t n, unsigned char v) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++)
    if (b[i] != v) return i;
  return SIZE_MAX;
}

/* ---- malloc(0) ------------------------------------------------------------ */

Test(required, malloc_zero_returns_unique_freeable_pointers) {
  enum { N = 4096 };
  static void *p[N];
  for (int i = 0; i < N; i++) {
    p[i] = T_MALLOC(hk_opaque(0));
    HK_ASSERT_GOOD_BLOCK(p[i], (size_t)0, "malloc");
    memset(p[i], 0x77, T_USABLE(p[i])); /* the whole usable size may be written */
  }
  qsort(p, N, sizeof p[0], cmp_ptr);
  for (int i = 1; i < N; i++) {
    cr_assert(p[i - 1] != p[i], "malloc(0) returned %p twice while both were live", p[i]);
    cr_assert((uintptr_t)p[i - 1] + T_USABLE(p[i - 1]) <= (uintptr_t)p[i],
              "malloc(0) blocks %p (usable %zu) and %p overlap", p[i - 1], (size_t)T_USABLE(p[i - 1]), p[i]);
  }
  for (int i = 0; i < N; i++) T_FREE(p[i]);
  /* and again, after they were all freed */
  void *a = T_MALLOC(hk_opaque(0)), *b = T_MALLOC(hk_opaque(0));
  cr_assert(a != NULL && b != NULL && a != b, "malloc(0) after frees: %p %p", a, b);
  T_FREE(a);
  T_FREE(b);
}

Test(required, calloc_of_zero_bytes_returns_unique_freeable_pointers) {
  void *a = T_CALLOC(hk_opaque(0), hk_opaque(16));
  void *b = T_CALLOC(hk_opaque(16), hk_opaque(0));
  void *c = T_CALLOC(hk_opaque(0), hk_opaque(0));
  HK_ASSERT_GOOD_BLOCK(a, (size_t)0, "calloc(0, 16)");
  HK_ASSERT_GOOD_BLOCK(b, (size_t)0, "calloc(16, 0)");
  HK_ASSERT_GOOD_BLOCK(c, (size_t)0, "calloc(0, 0)");
  cr_assert(a != b && b != c && a != c, "calloc of zero bytes returned the same pointer twice");
  T_FREE(a);
  T_FREE(b);
  T_FREE(c);
}

/* ---- errno ----------------------------------------------------------------- */

static void *free_in_thread(void *arg) {
  void **blocks = arg;
  errno = EBADF;
  for (int i = 0; blocks[i] != NULL; i++) T_FREE(blocks[i]);
  hak_thread_flush();
  return (void *)(intptr_t)(errno == EBADF ? 0 : errno);
}

Test(required, free_never_changes_errno) {
  /* free(NULL), small, medium, large (munmap), a whole slab's worth (the slab
   * and maybe its SuperSlab empty out), and remote frees from a thread. */
  static const size_t sizes[] = {1, 16, 100, 1000, 9000, 70000, 200000, 5 * 1024 * 1024};
  enum { N = 3000 };
  static void *blocks[N + 1];
  for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
    size_t n = sizes[s] >= HK_LARGE_MIN ? 20 : N;
    for (size_t i = 0; i < n; i++) {
      blocks[i] = T_MALLOC(hk_opaque(sizes[s]));
      cr_assert(blocks[i] != NULL);
    }
    for (size_t i = 0; i < n; i++) {
      errno = EBADF;
      T_FREE(blocks[i]);
      cr_assert(errno == EBADF, "free of a %zu-byte block (#%zu) changed errno to %d", sizes[s], i, errno);
    }
  }
  errno = ENOTDIR;
  T_FREE(NULL);
  cr_assert(errno == ENOTDIR, "free(NULL) changed errno to %d", errno);

  for (size_t i = 0; i < N; i++) {
    blocks[i] = T_MALLOC(hk_opaque(i % 3 == 0 ? 300000 : 16 + i % 2000));
    cr_assert(blocks[i] != NULL);
  }
  blocks[N] = NULL;
  pthread_t t;
  cr_assert(pthread_create(&t, NULL, free_in_thread, blocks) == 0);
  void *rc;
  pthread_join(t, &rc);
  cr_assert(rc == NULL, "remote free (or hak_thread_flush) changed errno to %d", (int)(intptr_t)rc);
}

Test(required, successful_calls_never_change_errno) {
  static const size_t sizes[] = {0, 1, 24, 512, 4096, 40000, 131072, 131073, 3000000};
  for (int round = 0; round < 2; round++) {
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
      size_t n = hk_opaque(sizes[s]);
      errno = EBADF;
      void *a = T_MALLOC(n);
      cr_assert(a != NULL && errno == EBADF, "malloc(%zu): %p, errno %d", n, a, errno);
      void *b = T_CALLOC(1, n);
      cr_assert(b != NULL && errno == EBADF, "calloc(1, %zu): %p, errno %d", n, b, errno);
      a = T_REALLOC(a, n * 2 + 1);
      cr_assert(a != NULL && errno == EBADF, "realloc(%zu): errno %d", n * 2 + 1, errno);
      a = T_REALLOC(a, n / 3 + 1);
      cr_assert(a != NULL && errno == EBADF, "realloc shrink(%zu): errno %d", n / 3 + 1, errno);
      void *c = NULL;
      cr_assert(T_POSIX_MEMALIGN(&c, 256, n) == 0 && errno == EBADF, "posix_memalign(256, %zu): errno %d", n, errno);
      void *d = T_ALIGNED_ALLOC(4096, n);
      cr_assert(d != NULL && errno == EBADF, "aligned_alloc(4096, %zu): errno %d", n, errno);
      void *e = T_MEMALIGN(64, n);
      cr_assert(e != NULL && errno == EBADF, "memalign(64, %zu): errno %d", n, errno);
      void *f = T_VALLOC(n);
      cr_assert(f != NULL && errno == EBADF, "valloc(%zu): errno %d", n, errno);
      void *g = T_PVALLOC(n);
      cr_assert(g != NULL && errno == EBADF, "pvalloc(%zu): errno %d", n, errno);
      void *h = T_REALLOCARRAY(NULL, n, 3);
      cr_assert(h != NULL && errno == EBADF, "reallocarray(NULL, %zu, 3): errno %d", n, errno);
      (void)T_USABLE(a);
      (void)T_USABLE(NULL);
      cr_assert(errno == EBADF, "malloc_usable_size changed errno to %d", errno);
      T_FREE(a);
      T_FREE(b);
      T_FREE(c);
      T_FREE(d);
      T_FREE(e);
      T_FREE(f);
      T_FREE(g);
      T_FREE(h);
      cr_assert(errno == EBADF);
    }
  }
  /* A failure sets ENOMEM; the success after it leaves ENOMEM alone. */
  errno = 0;
  cr_assert(T_MALLOC(hk_opaque(SIZE_MAX)) == NULL && errno == ENOMEM);
  void *p = T_MALLOC(hk_opaque(100));
  cr_assert(p != NULL && errno == ENOMEM, "a success after a failure changed errno to %d", errno);
  T_FREE(p);
}

/* ---- alignment and usable size, every size ------------------------------- */

Test(required, every_size_is_16_aligned_and_whole_usable_size_writable) {
  enum { RING = 8 };
  void *live[RING] = {0};
  unsigned char val[RING] = {0};
  size_t ring = 0, count = 0;
  size_t sizes[2048 + 64 * 8];
  size_t nsizes = 0;
  for (size_t n = 0; n < 2048; n++) sizes[nsizes++] = n;
  for (size_t p = 2048; p <= 4 * HK_MIB; p *= 2) {
    size_t more[] = {p - 17, p - 1, p, p + 1, p + p / 4 + 3, p + p / 2 + 7, p + 3 * p / 4 - 5};
    for (size_t k = 0; k < sizeof more / sizeof more[0]; k++)
      if (more[k] <= 4 * HK_MIB) sizes[nsizes++] = more[k];
  }
  for (size_t k = 0; k < nsizes; k++) {
    size_t n = hk_opaque(sizes[k]);
    if (live[ring] != NULL) {
      size_t u = T_USABLE(live[ring]);
      size_t bad = first_not(live[ring], u, val[ring]);
      cr_assert(bad == SIZE_MAX, "block %p (usable %zu) lost byte %zu: a neighbour wrote into it", live[ring], u, bad);
      T_FREE(live[ring]);
    }
    void *p = T_MALLOC(n);
    HK_ASSERT_GOOD_BLOCK(p, n, "malloc");
    size_t u = T_USABLE(p);
    val[ring] = (unsigned char)(count++ % 251 + 1);
    memset(p, val[ring], u); /* the slack too: programs such as redis write into it */
    live[ring] = p;
    ring = (ring + 1) % RING;
  }
  for (size_t i = 0; i < RING; i++) {
    if (live[i] == NULL) continue;
    size_t bad = first_not(live[i], T_USABLE(live[i]), val[i]);
    cr_assert(bad == SIZE_MAX, "block %p lost byte %zu", live[i], bad);
    T_FREE(live[i]);
  }
}

/* ---- too large, and out of memory -------------------------------------------- */

static void assert_heap_usable(void) {
  void *p[64];
  for (int i = 0; i < 64; i++) {
    size_t n = (size_t)(i % 8) * 1000 + 1 + (i == 63 ? 400000 : 0);
    p[i] = T_MALLOC(n);
    HK_ASSERT_GOOD_BLOCK(p[i], n, "malloc after a failure");
    hk_fill(p[i], n, (uint64_t)i);
  }
  for (int i = 0; i < 64; i++) {
    size_t n = (size_t)(i % 8) * 1000 + 1 + (i == 63 ? 400000 : 0);
    cr_assert(hk_check(p[i], n, (uint64_t)i) == SIZE_MAX, "heap corrupted after a failed request");
    T_FREE(p[i]);
  }
}

Test(required, size_beyond_ptrdiff_max_fails_with_enomem) {
  const size_t bad[] = {(size_t)PTRDIFF_MAX + 1, (size_t)PTRDIFF_MAX + 4096, SIZE_MAX / 2 + 2 * HK_MIB,
                        SIZE_MAX - HK_MIB, SIZE_MAX - 4095, SIZE_MAX - 15, SIZE_MAX};
  hak_stats_t before = hk_stats();
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    errno = 0;
    void *p = T_MALLOC(hk_opaque(bad[i]));
    cr_assert(p == NULL, "malloc(%zu) returned %p", bad[i], p);
    cr_assert(errno == ENOMEM, "malloc(%zu): errno %d, not ENOMEM", bad[i], errno);
    assert_heap_usable();
  }
  hak_stats_t after = hk_stats();
  cr_assert(after.large_live == before.large_live, "failed requests left %zu large mappings behind",
            after.large_live - before.large_live);
}

#if !defined(HK_ASAN) && !defined(HK_TSAN) /* sanitizers need far more address space than a limit leaves */
typedef struct chain {
  struct chain *next;
} chain;

static size_t vm_size_bytes(void) {
  FILE *f = fopen("/proc/self/status", "r");
  cr_assert(f != NULL);
  char line[256];
  size_t kb = 0;
  while (fgets(line, sizeof line, f) != NULL)
    if (sscanf(line, "VmSize: %zu kB", &kb) == 1) break;
  fclose(f);
  cr_assert(kb > 0, "no VmSize in /proc/self/status");
  return kb * 1024;
}

/* Allocates `size`-byte blocks until one fails; returns how many succeeded. */
static size_t fill_until_failure(size_t size, chain **head, size_t cap) {
  size_t n = 0;
  for (;;) {
    errno = 0;
    chain *c = T_MALLOC(hk_opaque(size));
    if (c == NULL) {
      cr_assert(errno == ENOMEM, "malloc(%zu) failed at the address-space limit with errno %d, not ENOMEM", size,
                errno);
      return n;
    }
    c->next = *head;
    *head = c;
    cr_assert(++n < cap, "malloc(%zu) succeeded %zu times under a limit that leaves room for far fewer", size, n);
  }
}

/* Lowers RLIMIT_AS to the current size + room; returns the old limit. */
static struct rlimit limit_address_space(size_t room) {
  struct rlimit old;
  cr_assert(getrlimit(RLIMIT_AS, &old) == 0);
  struct rlimit lim = {vm_size_bytes() + room, old.rlim_max};
  cr_assert(setrlimit(RLIMIT_AS, &lim) == 0);
  return old;
}

static void free_chain(chain **head) {
  while (*head != NULL) {
    chain *next = (*head)->next;
    T_FREE(*head);
    *head = next;
  }
}

Test(required, out_of_memory_fails_with_enomem_and_heap_recovers) {
  const size_t room = 256 * HK_MIB;
  struct rlimit old = limit_address_space(room);
  chain *head = NULL;

  /* Large blocks first (each a mapping of its own, released on free). */
  size_t big = HK_MIB + 4096;
  size_t n1 = fill_until_failure(big, &head, 2 * room / HK_MIB);
  cr_assert(n1 >= 32, "only %zu large blocks fit in %zu MiB of address space", n1, room / HK_MIB);
  free_chain(&head);
  size_t n2 = fill_until_failure(big, &head, 2 * room / HK_MIB);
  cr_assert(n2 + 2 >= n1, "after freeing, only %zu of %zu large blocks fit again: failed requests leaked", n2, n1);
  free_chain(&head);

  /* Then small blocks, until no SuperSlab can be mapped. */
  size_t n3 = fill_until_failure(256, &head, 2 * room / 256);
  cr_assert(n3 >= room / 4 / 256, "only %zu small blocks fit", n3);
  for (int i = 0; i < 100; i++) { /* more failures at the limit: each NULL is ENOMEM */
    errno = 0;
    void *p = T_MALLOC(hk_opaque(i % 2 ? 256 : big));
    if (p == NULL) cr_assert(errno == ENOMEM, "failure %d at the limit: errno %d", i, errno);
    T_FREE(p);
  }
  free_chain(&head);
  size_t n4 = fill_until_failure(256, &head, 2 * room / 256);
  cr_assert(n4 >= n3 - n3 / 16, "after freeing, only %zu of %zu small blocks fit again", n4, n3);
  free_chain(&head);
  cr_assert(setrlimit(RLIMIT_AS, &old) == 0);
  assert_heap_usable();
}

/* Memory freed as small blocks serving a large request under the same limit
 * needs empty SuperSlabs unmapped: they are retired through ck_epoch (a
 * remote-free notifier may still read the header of a SuperSlab that just
 * became empty), and a mapping that fails first takes back what the caches
 * of retired SuperSlabs and large mappings hold. */
Test(required, freed_small_memory_serves_large_requests_under_limit) {
  const size_t room = 256 * HK_MIB;
  struct rlimit old = limit_address_space(room);
  chain *head = NULL;
  size_t big = HK_MIB + 4096;
  size_t n = fill_until_failure(256, &head, 2 * room / 256);
  free_chain(&head);
  void *p = T_MALLOC(hk_opaque(big));
  cr_assert(p != NULL,
            "malloc(%zu) failed under the limit after every block was freed (HAKMEM still maps %zu MiB after %zu "
            "small blocks were freed): freed memory is not given back for other uses",
            big, hk_stats().mapped_bytes >> 20, n);
  T_FREE(p);
  cr_assert(setrlimit(RLIMIT_AS, &old) == 0);
  assert_heap_usable();
}
#endif

/* ---- calloc ----------------------------------------------------------------- */

Test(required, calloc_product_overflow_fails_with_enomem) {
  const struct {
    size_t n, m;
  } bad[] = {
      {SIZE_MAX, 2},
      {2, SIZE_MAX},
      {SIZE_MAX / 2 + 1, 2},
      {(size_t)1 << 32, (size_t)1 << 32},
      {((size_t)1 << 33) + 1, (size_t)1 << 31},
      {SIZE_MAX, SIZE_MAX},
      {SIZE_MAX / 3, 4},
      {65537, SIZE_MAX / 65536},
      {(size_t)PTRDIFF_MAX / 2 + 1, 2}, /* no wrap, but beyond PTRDIFF_MAX */
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    errno = 0;
    void *p = T_CALLOC(hk_opaque(bad[i].n), hk_opaque(bad[i].m));
    cr_assert(p == NULL, "calloc(%zu, %zu) returned %p", bad[i].n, bad[i].m, p);
    cr_assert(errno == ENOMEM, "calloc(%zu, %zu): errno %d, not ENOMEM", bad[i].n, bad[i].m, errno);
  }
  assert_heap_usable();
}

Test(required, calloc_zeroes_reused_blocks) {
  static const size_t sizes[] = {1,     8,     16,    24,     100,    256,         1000,   4096,
                                 8192,  10000, 65536, 100000, 131072, HK_LARGE_MIN, 200000, 1024 * 1024};
  for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
    size_t n = hk_opaque(sizes[s]);
    int reps = n >= HK_LARGE_MIN ? 20 : 200;
    for (int r = 0; r < reps; r++) {
      unsigned char *p = T_MALLOC(n);
      cr_assert(p != NULL);
      memset(p, 0xff, T_USABLE(p));
      T_FREE(p);
      unsigned char *q = (r & 1) ? T_CALLOC(n, 1) : T_CALLOC(1, n);
      cr_assert(q != NULL, "calloc(%zu) returned NULL", n);
      size_t nz = hk_first_nonzero(q, n);
      cr_assert(nz == SIZE_MAX, "calloc(%zu) after a free: byte %zu is 0x%02x%s", n, nz, q[nz],
                q == p ? " (the freed block itself)" : "");
      T_FREE(q);
    }
    /* A deep free list: many blocks dirtied, freed, then calloc'ed back. */
    enum { N = 400 };
    static unsigned char *blk[N];
    int cnt = n >= HK_LARGE_MIN ? 8 : N;
    for (int i = 0; i < cnt; i++) {
      blk[i] = T_MALLOC(n);
      cr_assert(blk[i] != NULL);
      memset(blk[i], 0xee, T_USABLE(blk[i]));
    }
    for (int i = 0; i < cnt; i++) T_FREE(blk[i]);
    for (int i = 0; i < cnt; i++) {
      blk[i] = T_CALLOC(1, n);
      cr_assert(blk[i] != NULL);
      size_t nz = hk_first_nonzero(blk[i], n);
      cr_assert(nz == SIZE_MAX, "calloc(1, %zu) #%d: byte %zu is 0x%02x", n, i, nz, blk[i][nz]);
    }
    for (int i = 0; i < cnt; i++) T_FREE(blk[i]);
  }
}

/* Slabs emptied by one size class and taken over by another must not be
 * mistaken for fresh (zeroed) pages. */
Test(required, calloc_zeroes_repurposed_slab_memory) {
  static const struct {
    size_t dirty, clean;
    int count;
  } plan[] = {{48, 80, 20000}, {16, 32, 40000}, {80, 48, 20000}, {20000, 9000, 200}, {1000, 3000, 2000}};
  enum { MAX = 40000 };
  static unsigned char *blk[MAX];
  for (size_t k = 0; k < sizeof plan / sizeof plan[0]; k++) {
    for (int i = 0; i < plan[k].count; i++) {
      blk[i] = T_MALLOC(hk_opaque(plan[k].dirty));
      cr_assert(blk[i] != NULL);
      memset(blk[i], 0xff, T_USABLE(blk[i]));
    }
    for (int i = 0; i < plan[k].count; i++) T_FREE(blk[i]);
    for (int i = 0; i < plan[k].count; i++) {
      blk[i] = T_CALLOC(1, hk_opaque(plan[k].clean));
      cr_assert(blk[i] != NULL);
      size_t nz = hk_first_nonzero(blk[i], plan[k].clean);
      cr_assert(nz == SIZE_MAX, "calloc(1, %zu) after %d blocks of %zu were freed: byte %zu is 0x%02x",
                plan[k].clean, plan[k].count, plan[k].dirty, nz, blk[i][nz]);
    }
    for (int i = 0; i < plan[k].count; i++) T_FREE(blk[i]);
  }
}

static void *free_all_remotely(void *arg) {
  unsigned char **blk = arg;
  for (int i = 0; blk[i] != NULL; i++) T_FREE(blk[i]);
  return NULL;
}

Test(required, calloc_zeroes_blocks_freed_by_other_thread) {
  enum { N = 10000 };
  static unsigned char *blk[N + 1];
  for (int i = 0; i < N; i++) {
    blk[i] = T_MALLOC(hk_opaque(64));
    cr_assert(blk[i] != NULL);
    memset(blk[i], 0xff, T_USABLE(blk[i]));
  }
  blk[N] = NULL;
  pthread_t t;
  cr_assert(pthread_create(&t, NULL, free_all_remotely, blk) == 0);
  pthread_join(t, NULL);
  /* The owner reclaims the remote frees (links written into the blocks by
   * the freeing thread) and hands them out again. */
  enum { M = 3 * N };
  static unsigned char *c[M];
  for (int i = 0; i < M; i++) {
    c[i] = T_CALLOC(1, hk_opaque(64));
    cr_assert(c[i] != NULL);
    size_t nz = hk_first_nonzero(c[i], 64);
    cr_assert(nz == SIZE_MAX, "calloc(1, 64) #%d = %p: byte %zu is 0x%02x", i, (void *)c[i], nz, c[i][nz]);
  }
  for (int i = 0; i < M; i++) T_FREE(c[i]);
}

/* ---- size arithmetic ------------------------------------------------------- */

Test(required, size_arithmetic_near_size_max_never_wraps, .timeout = 600.) {
  hak_stats_t before = hk_stats();
  unsigned char *keep = T_MALLOC(hk_opaque(100));
  cr_assert(keep != NULL);
  hk_fill(keep, 100, 42);
  for (size_t i = 0; i < 16384; i++) {
    const size_t xs[2] = {SIZE_MAX - i, (size_t)PTRDIFF_MAX + i};
    for (int k = 0; k < 2; k++) {
      size_t x = hk_opaque(xs[k]);
      void *p;
#define SMALL_THEN(expr, name)                                                                     \
  do {                                                                                            \
    void *s_ = T_MALLOC(hk_opaque(24));                                                           \
    cr_assert(s_ != NULL, "small malloc before %s(%zu) failed", name, x);                         \
    T_FREE(s_);                                                                                   \
    errno = 0;                                                                                    \
    p = (expr);                                                                                   \
    cr_assert(p == NULL, "%s(%zu) (i=%zu) returned %p", name, x, i, p);                           \
    cr_assert(errno == ENOMEM, "%s(%zu) (i=%zu): errno %d, not ENOMEM", name, x, i, errno);       \
  } while (0)
      SMALL_THEN(T_MALLOC(x), "malloc");
      SMALL_THEN(T_CALLOC(1, x), "calloc(1, x)");
      SMALL_THEN(T_CALLOC(x, 1), "calloc(x, 1)");
      SMALL_THEN(T_REALLOC(NULL, x), "realloc(NULL, x)");
      SMALL_THEN(T_REALLOC(keep, x), "realloc(p, x)");
      SMALL_THEN(T_ALIGNED_ALLOC(64, x), "aligned_alloc(64, x)");
      SMALL_THEN(T_MEMALIGN(64, x), "memalign(64, x)");
      SMALL_THEN(T_VALLOC(x), "valloc");
      SMALL_THEN(T_PVALLOC(x), "pvalloc");
#undef SMALL_THEN
      void *s = T_MALLOC(hk_opaque(24));
      T_FREE(s);
      void *q = (void *)0x1;
      int rc = T_POSIX_MEMALIGN(&q, 64, x);
      cr_assert(rc == ENOMEM, "posix_memalign(64, %zu) (i=%zu) returned %d, not ENOMEM", x, i, rc);
      rc = T_POSIX_MEMALIGN(&q, 4096, x);
      cr_assert(rc == ENOMEM, "posix_memalign(4096, %zu) (i=%zu) returned %d, not ENOMEM", x, i, rc);
    }
    if (i % 1024 == 0)
      cr_assert(hk_check(keep, 100, 42) == SIZE_MAX, "a failed realloc changed the block (i=%zu)", i);
  }
  cr_assert(hk_check(keep, 100, 42) == SIZE_MAX, "a failed realloc changed the block");
  cr_assert(T_USABLE(keep) >= 100);
  T_FREE(keep);
  assert_heap_usable();
  hak_stats_t after = hk_stats();
  cr_assert(after.mapped_bytes <= before.mapped_bytes + 4 * HK_MIB,
            "mapped bytes grew from %zu to %zu across 600k failed requests: failures leak", before.mapped_bytes,
            after.mapped_bytes);
  cr_assert(after.large_live == before.large_live, "failed requests left %zu large mappings",
            after.large_live - before.large_live);
}

/* ---- malloc_usable_size ---------------------------------------------------- */

Test(required, usable_size_of_null_is_zero) {
  errno = EBADF;
  cr_assert(T_USABLE(NULL) == 0, "malloc_usable_size(NULL) = %zu", (size_t)T_USABLE(NULL));
  cr_assert(errno == EBADF);
}

static void *churn_and_free_remotely(void *arg) {
  void **v = arg;
  for (int i = 0; v[i] != NULL; i++) T_FREE(v[i]);
  uint64_t s = 99;
  for (int i = 0; i < 20000; i++) {
    void *p = T_MALLOC(hk_mixed_size(&s));
    T_FREE(p);
  }
  return NULL;
}

/* The owner's malloc_usable_size takes free's fast test (the owned-chunk
 * cache and p's slab descriptor, or for a medium slab one of its views:
 * api/api.c hk_room); any other thread's goes through the address map and
 * the slab itself. Both must say the same for every block, at every
 * granule of small and medium slabs: a view out of step with its slab
 * would show here. */
typedef struct {
  void **blocks;
  size_t *usable;
  int n, mismatch;
} usable_check;

static void *usable_from_another_thread(void *arg) {
  usable_check *c = arg;
  for (int i = 0; i < c->n; i++)
    if ((size_t)T_USABLE(c->blocks[i]) != c->usable[i] && c->mismatch < 0) c->mismatch = i;
  return NULL;
}

Test(required, usable_size_is_the_same_from_the_owner_and_from_another_thread) {
  /* 300 blocks of each small size (a small slab is one granule: its own
   * descriptor), and 512 KiB of each medium size, which reaches every
   * granule, and so every view, of its 512 KiB slabs. */
  static const size_t sizes[] = {16, 24, 100, 640, 1000, 4096, 8000, 8193, 10000, 20000, 40000, 70000, 100000, 131072};
  enum { MAX = 4096 };
  static void *blocks[MAX];
  static size_t usable[MAX];
  int n = 0;
  for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++)
    for (size_t bytes = 0, m = 0; bytes < 512 * 1024 && m < 300 && n < MAX; bytes += sizes[k], m++) {
      blocks[n] = T_MALLOC(hk_opaque(sizes[k]));
      cr_assert(blocks[n] != NULL);
      usable[n] = T_USABLE(blocks[n]);
      cr_assert(usable[n] >= sizes[k], "usable size %zu for a request of %zu", usable[n], sizes[k]);
      n++;
    }
  usable_check c = {blocks, usable, n, -1};
  pthread_t t;
  cr_assert(pthread_create(&t, NULL, usable_from_another_thread, &c) == 0);
  pthread_join(t, NULL);
  cr_assert(c.mismatch < 0, "block %d (%p): usable size %zu from its owner, %zu from another thread", c.mismatch,
            c.mismatch < 0 ? NULL : blocks[c.mismatch], c.mismatch < 0 ? 0 : usable[c.mismatch],
            c.mismatch < 0 ? 0 : (size_t)T_USABLE(blocks[c.mismatch]));
  for (int i = 0; i < n; i++) T_FREE(blocks[i]);
}

/* The usable size is a property of the block: the same from malloc to free,
 * whatever happens around it (neighbours freed locally and remotely, slabs
 * filling and draining, other threads). */
Test(required, usable_size_covers_request_and_stays_fixed_for_block_lifetime) {
  enum { N = 600 };
  static void *blk[N], *other[N + 1];
  static size_t req[N], usable[N];
  uint64_t s = 7;
  for (int i = 0; i < N; i++) {
    req[i] = hk_mixed_size(&s);
    blk[i] = T_MALLOC(req[i]);
    HK_ASSERT_GOOD_BLOCK(blk[i], req[i], "malloc");
    usable[i] = T_USABLE(blk[i]);
    hk_fill(blk[i], usable[i], (uint64_t)i);
    other[i] = T_MALLOC(req[i]); /* a neighbour, freed by another thread */
    cr_assert(other[i] != NULL);
  }
  other[N] = NULL;
  for (int i = 0; i < 50000; i++) {
    void *p = T_MALLOC(hk_mixed_size(&s));
    cr_assert(p != NULL);
    T_FREE(p);
    if (i % 5000 == 0)
      for (int k = 0; k < N; k++)
        cr_assert(T_USABLE(blk[k]) == usable[k], "usable size of block %d changed from %zu to %zu", k, usable[k],
                  (size_t)T_USABLE(blk[k]));
  }
  pthread_t t;
  cr_assert(pthread_create(&t, NULL, churn_and_free_remotely, other) == 0);
  pthread_join(t, NULL);
  for (int i = 0; i < N; i++) {
    cr_assert(T_USABLE(blk[i]) == usable[i], "usable size of block %d changed from %zu to %zu", i, usable[i],
              (size_t)T_USABLE(blk[i]));
    size_t bad = hk_check(blk[i], usable[i], (uint64_t)i);
    cr_assert(bad == SIZE_MAX, "block %d (request %zu, usable %zu) lost byte %zu of its slack", i, req[i], usable[i],
              bad);
    T_FREE(blk[i]);
  }
}

/* ---- free(NULL) ------------------------------------------------------------ */

Test(required, free_null_does_nothing) {
  hak_stats_t before = hk_stats();
  unsigned char *p = T_MALLOC(hk_opaque(32));
  cr_assert(p != NULL);
  hk_fill(p, 32, 3);
  for (int i = 0; i < 100000; i++) T_FREE(NULL);
  cr_assert(hk_check(p, 32, 3) == SIZE_MAX);
  void *q = T_MALLOC(hk_opaque(32));
  cr_assert(q != NULL && q != p);
  hak_stats_t after = hk_stats();
  cr_assert(after.invalid_frees == before.invalid_frees, "free(NULL) was counted as an invalid free");
  T_FREE(p);
  T_FREE(q);
}

/* ---- the exported entry points (plain build only) ------------------------------ */
#ifndef TEST_PREFIXED
static void *resolve(const char *name) {
  void *sym = dlsym(RTLD_DEFAULT, name);
  cr_assert(sym != NULL, "%s is not exported by anything", name);
  Dl_info info;
  cr_assert(dladdr(sym, &info) != 0 && info.dli_fname != NULL, "dladdr(%s) failed", name);
  cr_assert(strstr(info.dli_fname, "libhakmem") != NULL, "%s resolves to %s, not libhakmem.so", name,
            info.dli_fname);
  return sym;
}

Test(required, every_malloc_entry_point_resolves_to_hakmem) {
  static const char *const names[] = {
      "malloc",        "free",          "calloc",          "realloc",        "reallocarray", "posix_memalign",
      "aligned_alloc", "memalign",      "valloc",          "pvalloc",        "malloc_usable_size", "cfree",
      "malloc_trim",   "mallinfo",      "mallinfo2",       "malloc_stats",   "mallopt",      "__libc_malloc",
      "__libc_free",   "__libc_calloc", "__libc_realloc",  "__libc_memalign", "__posix_memalign"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) resolve(names[i]);
}

Test(required, glibc_internal_aliases_allocate_from_hakmem) {
  void *(*l_malloc)(size_t) = (void *(*)(size_t))resolve("__libc_malloc");
  void (*l_free)(void *) = (void (*)(void *))resolve("__libc_free");
  void *(*l_calloc)(size_t, size_t) = (void *(*)(size_t, size_t))resolve("__libc_calloc");
  void *(*l_realloc)(void *, size_t) = (void *(*)(void *, size_t))resolve("__libc_realloc");
  void *(*l_memalign)(size_t, size_t) = (void *(*)(size_t, size_t))resolve("__libc_memalign");
  int (*l_posix_memalign)(void **, size_t, size_t) = (int (*)(void **, size_t, size_t))resolve("__posix_memalign");
  void (*l_cfree)(void *) = (void (*)(void *))resolve("cfree");

  void *a = l_malloc(100);
  HK_ASSERT_GOOD_BLOCK(a, (size_t)100, "__libc_malloc");
  unsigned char *b = l_calloc(10, 10);
  HK_ASSERT_GOOD_BLOCK(b, (size_t)100, "__libc_calloc");
  cr_assert(hk_first_nonzero(b, 100) == SIZE_MAX, "__libc_calloc memory not zeroed");
  hk_fill(a, 100, 1);
  a = l_realloc(a, 5000);
  HK_ASSERT_GOOD_BLOCK(a, (size_t)5000, "__libc_realloc");
  cr_assert(hk_check(a, 100, 1) == SIZE_MAX, "__libc_realloc lost contents");
  void *c = l_memalign(4096, 100);
  HK_ASSERT_GOOD_BLOCK(c, (size_t)100, "__libc_memalign");
  cr_assert(hk_aligned(c, 4096));
  void *d = NULL;
  cr_assert(l_posix_memalign(&d, 256, 100) == 0);
  HK_ASSERT_GOOD_BLOCK(d, (size_t)100, "__posix_memalign");
  cr_assert(hk_aligned(d, 256));

  /* __libc_free and cfree really free: a large block's mapping goes away. */
  void *big1 = l_malloc(HK_MIB), *big2 = l_malloc(HK_MIB);
  cr_assert(big1 != NULL && big2 != NULL && hak_owns(big1) && hak_owns(big2));
  size_t live = hk_stats().large_live;
  l_free(big1);
  cr_assert(hk_stats().large_live == live - 1, "__libc_free did not release a large block");
  l_cfree(big2);
  cr_assert(hk_stats().large_live == live - 2, "cfree did not release a large block");
  l_free(a);
  l_free(b);
  l_cfree(c);
  free(d);
}

Test(required, malloc_trim_mallinfo2_mallopt_are_harmless) {
  int (*m_trim)(size_t) = (int (*)(size_t))resolve("malloc_trim");
  struct mallinfo2 (*m_info2)(void) = (struct mallinfo2(*)(void))resolve("mallinfo2");
  int (*m_opt)(int, int) = (int (*)(int, int))resolve("mallopt");
  enum { N = 1000 };
  static void *p[N];
  for (int i = 0; i < N; i++) {
    p[i] = malloc(hk_opaque((size_t)i * 7 + 1));
    hk_fill(p[i], (size_t)i * 7 + 1, (uint64_t)i);
  }
  for (int i = 0; i < N; i += 2) free(p[i]);
  m_trim(0);
  struct mallinfo2 mi = m_info2();
  (void)mi;
  cr_expect(m_opt(M_ARENA_MAX, 2) == 1, "mallopt(M_ARENA_MAX, 2) not accepted");
  cr_expect(m_opt(M_MMAP_THRESHOLD, 256 * 1024) == 1, "mallopt(M_MMAP_THRESHOLD) not accepted");
  for (int i = 1; i < N; i += 2) {
    cr_assert(hk_check(p[i], (size_t)i * 7 + 1, (uint64_t)i) == SIZE_MAX, "malloc_trim damaged a live block");
    free(p[i]);
  }
  assert_heap_usable();
}
#endif /* !TEST_PREFIXED */
