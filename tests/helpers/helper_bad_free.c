/* helper_bad_free.c -- one bad call per run, for test_bad_input.c.
 *
 * usage: helper_bad_free MODE
 *
 * Does exactly one bad call (MODE names it), then, if the process is still
 * alive, proves that nothing was corrupted: the memory behind the bad pointer
 * kept its bytes, the allocator never hands out that memory, errno survived,
 * and the heap still works. Prints "SURVIVED" on stdout when all of that
 * holds and exits 0; otherwise prints "FAIL: why" on stdout and exits with a
 * distinct code. Writes nothing to stderr itself: whatever appears there is
 * HAKMEM's diagnostic. The policy comes from the environment
 * (HAKMEM_INVALID_FREE, HAKMEM_DOUBLE_FREE), set by the test. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hk_common.h"

enum {
  X_OVERRIDE = 2,     /* malloc is not HAKMEM's */
  X_ERRNO = 3,        /* free changed errno */
  X_FOREIGN_WRITTEN = 4,
  X_HANDED_OUT = 5,   /* the allocator returned memory overlapping the bad pointer's block */
  X_REALLOC = 6,      /* realloc of an invalid pointer did not return NULL */
  X_USABLE = 7,       /* malloc_usable_size of an invalid pointer was not 0 */
  X_STAT = 8,         /* hak_stats invalid_frees did not count it */
  X_DAMAGED = 9,      /* our own block lost its contents */
  X_DUPLICATE = 10,   /* the same block handed out twice */
  X_SETUP = 11,
  X_GLIBC = 12,       /* glibc's heap no longer accepts its own block */
  X_USAGE = 64,
};

static void fail(int code, const char *fmt, const char *detail) {
  printf("FAIL: ");
  printf(fmt, detail);
  printf("\n");
  fflush(stdout);
  exit(code);
}

static void survived(void) {
  printf("SURVIVED\n");
  fflush(stdout);
  exit(0);
}

static size_t invalid_frees(void) {
  hak_stats_t s;
  memset(&s, 0, sizeof s);
  hak_stats_get(&s);
  return s.invalid_frees;
}

/* The allocator must never hand out memory in [lo, lo + len): allocate a few
 * thousand blocks of each small class-ish size and check every one. */
static void assert_never_handed_out(const void *lo, size_t len) {
  static const size_t sizes[] = {1, 16, 24, 32, 48, 64, 80, 128, 256, 512, 1024, 4096};
  enum { N = 2000 };
  static void *blocks[N];
  uintptr_t a = (uintptr_t)lo, b = a + len;
  for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
    for (int i = 0; i < N; i++) {
      blocks[i] = malloc(sizes[s]);
      if (blocks[i] == NULL) fail(X_SETUP, "%s", "malloc returned NULL during the heap check");
      uintptr_t p = (uintptr_t)blocks[i], q = p + malloc_usable_size(blocks[i]);
      if (p < b && q > a) fail(X_HANDED_OUT, "%s", "malloc returned memory of the bad pointer's block");
      memset(blocks[i], 0x3c, sizes[s]);
    }
    for (int i = 0; i < N; i++) free(blocks[i]);
  }
}

static int cmp_ptr(const void *x, const void *y) {
  uintptr_t a = (uintptr_t) * (void *const *)x, b = (uintptr_t) * (void *const *)y;
  return a < b ? -1 : a > b;
}

/* n blocks of `size`: all distinct and none overlapping (a double free that
 * entered a free list twice hands the same block out twice). */
static void assert_distinct_blocks(size_t size) {
  enum { N = 1000 };
  static void *blocks[N];
  for (int i = 0; i < N; i++) {
    blocks[i] = malloc(size);
    if (blocks[i] == NULL) fail(X_SETUP, "%s", "malloc returned NULL after the double free");
    hk_fill(blocks[i], size, (uint64_t)i + 1);
  }
  for (int i = 0; i < N; i++)
    if (hk_check(blocks[i], size, (uint64_t)i + 1) != SIZE_MAX)
      fail(X_DUPLICATE, "%s", "a block's contents were overwritten: it was handed out twice");
  qsort(blocks, N, sizeof blocks[0], cmp_ptr);
  for (int i = 1; i < N; i++)
    if ((uintptr_t)blocks[i - 1] + size > (uintptr_t)blocks[i])
      fail(X_DUPLICATE, "%s", "two live blocks overlap: a block was handed out twice");
  for (int i = 0; i < N; i++) free(blocks[i]);
}

static void check_bytes(const void *p, size_t n, unsigned char v, int code, const char *what) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++)
    if (b[i] != v) fail(code, "%s was written to", what);
}

static void bad_free(void *p) {
  errno = EBADF;
  free(hk_launder(p));
  if (errno != EBADF) fail(X_ERRNO, "%s", "free of an invalid pointer changed errno");
}

/* ---- foreign pointers ---------------------------------------------------- */

static _Alignas(4096) unsigned char static_area[16384];

static void foreign(void *area, size_t len, void *bad) {
  size_t before = invalid_frees();
  bad_free(bad);
  check_bytes(area, len, 0xa5, X_FOREIGN_WRITTEN, "the foreign memory");
  if (invalid_frees() < before + 1) fail(X_STAT, "%s", "hak_stats invalid_frees did not count the free");
  assert_never_handed_out(area, len);
  check_bytes(area, len, 0xa5, X_FOREIGN_WRITTEN, "the foreign memory");
  survived();
}

static void mode_foreign_stack(void) {
  _Alignas(64) unsigned char area[1024];
  memset(area, 0xa5, sizeof area);
  foreign(area, sizeof area, area + 64);
}

static void mode_foreign_static(void) {
  memset(static_area, 0xa5, sizeof static_area);
  foreign(static_area, sizeof static_area, static_area + 4096 + 64);
}

/* A separate mapping, and the bad pointer sits where a SuperSlab's first
 * block would: 2 MiB-aligned chunk, past a one-page header. The chunk is all
 * zeros, which is what an abandoned SuperSlab header (owner 0) looks like: an
 * allocator that trusted the memory instead of its address map would act on
 * it. */
static void mode_foreign_mmap(void) {
  size_t len = 4 * HK_MIB;
  unsigned char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) fail(X_SETUP, "%s", "mmap failed");
  unsigned char *chunk = (unsigned char *)(((uintptr_t)m + 2 * HK_MIB - 1) & ~(uintptr_t)(2 * HK_MIB - 1));
  size_t before = invalid_frees();
  bad_free(chunk + 4096 + 64);
  check_bytes(m, len, 0, X_FOREIGN_WRITTEN, "the foreign mapping");
  if (invalid_frees() < before + 1) fail(X_STAT, "%s", "hak_stats invalid_frees did not count the free");
  assert_never_handed_out(m, len);
  check_bytes(m, len, 0, X_FOREIGN_WRITTEN, "the foreign mapping");
  munmap(m, len);
  survived();
}

/* Another allocator's heap: glibc's own malloc, reached through libc.so.6's
 * handle (the program's malloc is HAKMEM's). */
static void mode_foreign_glibc(void) {
  void *libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
  if (libc == NULL) fail(X_SETUP, "dlopen(libc.so.6) failed: %s", dlerror());
  void *(*g_malloc)(size_t) = (void *(*)(size_t))dlsym(libc, "malloc");
  void (*g_free)(void *) = (void (*)(void *))dlsym(libc, "free");
  size_t (*g_usable)(void *) = (size_t(*)(void *))dlsym(libc, "malloc_usable_size");
  if (g_malloc == NULL || g_free == NULL || g_usable == NULL) fail(X_SETUP, "%s", "dlsym in libc.so.6 failed");
  if ((void *)g_malloc == (void *)malloc) fail(X_SETUP, "%s", "libc.so.6's malloc is the program's malloc");
  unsigned char *p = g_malloc(200);
  if (p == NULL) fail(X_SETUP, "%s", "glibc malloc returned NULL");
  if (hak_owns(p)) fail(X_SETUP, "%s", "hak_owns claims a glibc block");
  memset(p, 0xa5, 200);
  size_t before = invalid_frees();
  bad_free(p);
  check_bytes(p, 200, 0xa5, X_FOREIGN_WRITTEN, "the glibc block");
  if (invalid_frees() < before + 1) fail(X_STAT, "%s", "hak_stats invalid_frees did not count the free");
  if (g_usable(p) < 200) fail(X_GLIBC, "%s", "glibc's header of the block was changed");
  assert_never_handed_out(p, 200);
  g_free(p); /* glibc aborts here if its chunk header was touched */
  survived();
}

/* ---- interior pointers --------------------------------------------------- */

static void mode_interior_small(void) {
  unsigned char *p = malloc(64);
  if (p == NULL || !hak_owns(p)) fail(X_OVERRIDE, "%s", "malloc(64) is not a HAKMEM block");
  size_t u = malloc_usable_size(p);
  hk_fill(p, u, 77);
  bad_free(p + 16);
  if (hk_check(p, u, 77) != SIZE_MAX) fail(X_DAMAGED, "%s", "the block behind the interior pointer lost its contents");
  if (malloc_usable_size(p) != u) fail(X_DAMAGED, "%s", "the block's usable size changed");
  assert_never_handed_out(p, u);
  if (hk_check(p, u, 77) != SIZE_MAX) fail(X_DAMAGED, "%s", "the block behind the interior pointer lost its contents");
  free(p); /* the block is still live: this free is valid and silent */
  survived();
}

static void mode_interior_large(void) {
  size_t n = HK_MIB;
  unsigned char *p = malloc(n);
  if (p == NULL || !hak_owns(p)) fail(X_OVERRIDE, "%s", "malloc(1 MiB) is not a HAKMEM block");
  hk_fill(p, n, 78);
  bad_free(p + 8);
  /* Had the mapping been released, reading it faults (the test sees SIGSEGV). */
  if (hk_check(p, n, 78) != SIZE_MAX) fail(X_DAMAGED, "%s", "the large block lost its contents");
  void *q = malloc(n);
  if (q == NULL) fail(X_SETUP, "%s", "malloc(1 MiB) returned NULL");
  if ((uintptr_t)q < (uintptr_t)p + n && (uintptr_t)q + n > (uintptr_t)p)
    fail(X_HANDED_OUT, "%s", "a new large block overlaps the live one");
  memset(q, 0x11, n);
  if (hk_check(p, n, 78) != SIZE_MAX) fail(X_DAMAGED, "%s", "the large block lost its contents");
  free(q);
  free(p);
  survived();
}

/* ---- double frees (the detectable cases) ---------------------------------- */

static void mode_double_small(void) {
  void *keep = malloc(48); /* keeps the slab from emptying */
  void *p = malloc(48);
  if (p == NULL || !hak_owns(p)) fail(X_OVERRIDE, "%s", "malloc(48) is not a HAKMEM block");
  memset(p, 0x5a, 48);
  free(p);
  bad_free(p); /* p is the head of its slab's local free list */
  assert_distinct_blocks(48);
  free(keep);
  survived();
}

/* A double free by another thread: the block is on its owner's free list
 * (the thread cache's, or with to_slab its slab's after malloc_trim), and a
 * second thread frees it again. The sender cannot read the owner's
 * metadata; the owner's reclaim must see that the block was already free
 * (its key, which the sender's chain must leave in place) before the block
 * reaches a list twice. */
static void *free_in_thread(void *p) {
  bad_free(p);
  return NULL;
}

static void remote_double(int to_slab) {
  void *keep = malloc(48);
  void *p = malloc(48), *q = malloc(48);
  if (keep == NULL || p == NULL || q == NULL || !hak_owns(p)) fail(X_OVERRIDE, "%s", "malloc(48) is not a HAKMEM block");
  free(p);
  free(q);
  if (to_slab) malloc_trim(0); /* the thread cache goes back to the slabs; keep holds the slab */
  pthread_t t;
  if (pthread_create(&t, NULL, free_in_thread, p) != 0) fail(X_SETUP, "%s", "pthread_create failed");
  pthread_join(t, NULL); /* its exit pushes its outbox to p's SuperSlab */
  malloc_trim(0);        /* the owner reclaims what was pushed to it */
  for (int i = 0; i < 1000; i++) free(malloc(4096));
  assert_distinct_blocks(48);
  free(keep);
  survived();
}

static void mode_double_remote_cached(void) { remote_double(0); }
static void mode_double_remote_slab(void) { remote_double(1); }

/* A double free with other blocks freed in between: the block is no longer at
 * the head of a free list, so only the hardened build (whose free marks the
 * block's canary tail) sees it at the free. */
static void mode_double_small_hidden(void) {
  void *keep = malloc(48);
  void *p = malloc(48), *q = malloc(48), *r = malloc(48);
  if (p == NULL || q == NULL || r == NULL || !hak_owns(p)) fail(X_OVERRIDE, "%s", "malloc(48) is not a HAKMEM block");
  free(p);
  free(q);
  free(r);
  bad_free(p);
  assert_distinct_blocks(48);
  free(keep);
  survived();
}

/* A double free that takes a slab's `used` to 0 while one of its blocks is
 * still live: the slab must not go back to UNUSED (its pages would serve
 * another class over the live block). Blocks of 2500 B fill a 64 KiB slab
 * with 26; all of one slab but `z` are freed, the first of them twice.
 * Freed blocks wait in the thread cache, which keeps them counted as used;
 * the extra free takes `used` to 0 when they go back to the slab: some of
 * them while the cache overflows, the rest at malloc_trim at the latest. */
/* 2000 blocks of 3000 B (another class), each checked not to overlap the
 * live block z of zn bytes and then written over; `when` names the moment
 * in the failure message. */
static void allocate_around(const char *z, size_t zn, const char *when) {
  for (int i = 0; i < 2000; i++) {
    char *q = malloc(3000);
    if (q == NULL) fail(X_SETUP, "malloc returned NULL %s", when);
    if ((uintptr_t)q < (uintptr_t)z + zn && (uintptr_t)z < (uintptr_t)q + 3000)
      fail(X_HANDED_OUT, "%s", "memory of a live block was handed out again");
    memset(q, 0, 3000);
  }
}

static void mode_double_small_empties_slab(void) {
  enum { N = 400 };
  static char *p[N];
  int idx[N], k = 0;
  for (int i = 0; i < N; i++)
    if ((p[i] = malloc(2500)) == NULL || !hak_owns(p[i])) fail(X_OVERRIDE, "%s", "malloc(2500) is not a HAKMEM block");
  uintptr_t slab = (uintptr_t)p[N / 2] & ~(uintptr_t)0xffff; /* a slab in the middle: full */
  for (int i = 0; i < N; i++)
    if (((uintptr_t)p[i] & ~(uintptr_t)0xffff) == slab) idx[k++] = i;
  if (k < 3) fail(X_SETUP, "%s", "fewer than 3 blocks in one slab");
  char *z = p[idx[k - 1]];
  memset(z, 0x5a, 2500);
  for (int j = 0; j < k - 1; j++) free(p[idx[j]]);
  bad_free(p[idx[0]]); /* not the head of the local list any more */
  allocate_around(z, 2500, "after the double free");
  malloc_trim(0);
  allocate_around(z, 2500, "after the trim");
  for (int i = 0; i < 2500; i++)
    if ((unsigned char)z[i] != 0x5a) fail(X_DUPLICATE, "%s", "a live block was overwritten");
  survived();
}

static void mode_double_large(void) {
  size_t n = HK_MIB;
  void *p = malloc(n);
  if (p == NULL || !hak_owns(p)) fail(X_OVERRIDE, "%s", "malloc(1 MiB) is not a HAKMEM block");
  memset(p, 0x5a, n);
  free(p);
  bad_free(p);
  void *a = malloc(n), *b = malloc(n);
  if (a == NULL || b == NULL) fail(X_SETUP, "%s", "malloc(1 MiB) returned NULL after the double free");
  hk_fill(a, n, 1);
  hk_fill(b, n, 2);
  if (hk_check(a, n, 1) != SIZE_MAX || hk_check(b, n, 2) != SIZE_MAX)
    fail(X_DUPLICATE, "%s", "two large blocks share memory");
  free(a);
  free(b);
  survived();
}

/* ---- realloc / malloc_usable_size of invalid pointers -------------------- */

static void mode_realloc_foreign(void) {
  _Alignas(64) unsigned char area[1024];
  memset(area, 0xa5, sizeof area);
  void *r = realloc(hk_launder(area + 64), 100);
  if (r != NULL) fail(X_REALLOC, "%s", "realloc of a stack pointer returned non-NULL");
  check_bytes(area, sizeof area, 0xa5, X_FOREIGN_WRITTEN, "the foreign memory");
  assert_never_handed_out(area, sizeof area);
  survived();
}

static void mode_realloc_interior(void) {
  unsigned char *p = malloc(64);
  if (p == NULL || !hak_owns(p)) fail(X_OVERRIDE, "%s", "malloc(64) is not a HAKMEM block");
  size_t u = malloc_usable_size(p);
  hk_fill(p, u, 79);
  void *r = realloc(hk_launder(p + 16), 200);
  if (r != NULL) fail(X_REALLOC, "%s", "realloc of an interior pointer returned non-NULL");
  if (hk_check(p, u, 79) != SIZE_MAX) fail(X_DAMAGED, "%s", "the block behind the interior pointer lost its contents");
  assert_never_handed_out(p, u);
  free(p);
  survived();
}

static void mode_usable_size_foreign(void) {
  _Alignas(64) unsigned char area[1024];
  memset(area, 0xa5, sizeof area);
  size_t u = malloc_usable_size(hk_launder(area + 64));
  if (u != 0) fail(X_USABLE, "%s", "malloc_usable_size of a stack pointer is not 0");
  check_bytes(area, sizeof area, 0xa5, X_FOREIGN_WRITTEN, "the foreign memory");
  survived();
}

static void mode_usable_size_interior(void) {
  unsigned char *p = malloc(64);
  if (p == NULL || !hak_owns(p)) fail(X_OVERRIDE, "%s", "malloc(64) is not a HAKMEM block");
  size_t u = malloc_usable_size(hk_launder(p + 16));
  if (u != 0) fail(X_USABLE, "%s", "malloc_usable_size of an interior pointer is not 0");
  free(p);
  survived();
}

int main(int argc, char **argv) {
  static const struct {
    const char *name;
    void (*fn)(void);
  } modes[] = {
      {"foreign_stack", mode_foreign_stack},
      {"foreign_static", mode_foreign_static},
      {"foreign_mmap", mode_foreign_mmap},
      {"foreign_glibc", mode_foreign_glibc},
      {"interior_small", mode_interior_small},
      {"interior_large", mode_interior_large},
      {"double_small", mode_double_small},
      {"double_small_hidden", mode_double_small_hidden},
      {"double_remote_cached", mode_double_remote_cached},
      {"double_remote_slab", mode_double_remote_slab},
      {"double_small_empties_slab", mode_double_small_empties_slab},
      {"double_large", mode_double_large},
      {"realloc_foreign", mode_realloc_foreign},
      {"realloc_interior", mode_realloc_interior},
      {"usable_size_foreign", mode_usable_size_foreign},
      {"usable_size_interior", mode_usable_size_interior},
  };
  if (argc != 2) {
    printf("usage: helper_bad_free MODE\n");
    return X_USAGE;
  }
  void *probe = malloc(32);
  if (probe == NULL || !hak_owns(probe)) fail(X_OVERRIDE, "%s", "malloc is not HAKMEM's: the override is not active");
  free(probe);
  for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++)
    if (strcmp(argv[1], modes[i].name) == 0) modes[i].fn();
  printf("unknown mode %s\n", argv[1]);
  return X_USAGE;
}
