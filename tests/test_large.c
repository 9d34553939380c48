/* test_large.c -- large blocks (above 128 KiB, a mapping each): growth by
 * remapping, reuse of cached mappings, memory return, huge pages.
 *   realloc_growth_keeps_contents_and_address_map: a block grown from
 *     192 KiB to 64 MiB in 1.3x steps (in place or moved by mremap) keeps
 *     its bytes; the address map knows the whole new block and no longer
 *     the old pointer when it moved
 *   a_freed_big_mapping_serves_a_smaller_request: a 14 MiB block's mapping
 *     comes back for 8 MiB (same address, nothing new mapped), its tail
 *     keeping its pages; a request under half its size maps afresh
 *   a_reused_mappings_tail_grows_without_faults: a 7 MiB block's mapping
 *     serves 4 MiB; realloc back to 7 MiB stays in place and writing all
 *     of it makes no page fault (the tail's pages were kept: giving them
 *     back made 768 faults here)
 *   a_freed_small_mapping_is_grown_for_a_bigger_request: a cached 4 MiB
 *     mapping is grown for 10 MiB instead of mapping 12 MiB beside it
 *   rss_returns_after_large_churn_and_collect: replacing 5-25 MiB buffers
 *     then freeing all and trimming leaves RSS (sanitizers: mapped bytes)
 *     near the start
 *   huge_page_advice_follows_the_option: a 16 MiB block's mapping is
 *     THP-eligible with HAKMEM_LARGE_HUGEPAGES=1 (default) and not with 0
 *     where the kernel's mode is `madvise` (ctest runs the file both ways)
 *   calloc_of_a_reused_mapping_is_zero_when_madvise_fails: calloc(4 MiB)
 *     reuses a freed, dirty 4 MiB mapping while every madvise fails (as
 *     under a seccomp filter): it still reads as zeros
 *   a_mapping_whose_decommit_failed_stays_dirty: the cache's timed
 *     decommit of a freed mapping fails; a later calloc reusing it still
 *     gets zeros (the mapping was not taken for clean)
 *   owns_never_faults_while_a_neighbouring_block_is_unmapped: hak_owns of
 *     a pointer just past a large block that another thread frees and
 *     unmaps over and over: it read the block's header after the unmap
 *     and faulted (every run, within a second); it must answer */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/uio.h>
#include <time.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hakmem_testing.h"
#include "hk_test.h"


TestSuite(large, .init = hk_require_override, .timeout = 600.);

/* Pattern bytes [from, to) of a block (from a multiple of 8), by absolute
 * offset, so a grown block can be filled part by part. */
static void fill_range(unsigned char *p, size_t from, size_t to, uint64_t seed) {
  for (size_t i = from; i < to; i += 8) {
    uint64_t x = hk_pat_word(seed, i >> 3);
    for (size_t j = 0; j < 8 && i + j < to; j++) p[i + j] = (unsigned char)(x >> (j * 8));
  }
}

/* The first wrong byte in the sampled parts of [0, n) (both ends and one
 * word per page), or SIZE_MAX. */
static size_t check_sampled(const unsigned char *p, size_t n, uint64_t seed) {
  size_t edge = n < 65536 ? n : 65536;
  size_t bad = hk_check(p, edge, seed);
  if (bad != SIZE_MAX) return bad;
  for (size_t i = (n - edge) & ~(size_t)7; i < n; i++)
    if (p[i] != hk_pat(seed, i)) return i;
  for (size_t i = 0; i + 8 <= n; i += 4096)
    for (size_t j = 0; j < 8; j++)
      if (p[i + j] != hk_pat(seed, i + j)) return i + j;
  return SIZE_MAX;
}

Test(large, realloc_growth_keeps_contents_and_address_map) {
  const uint64_t seed = 77;
  size_t n = 192 * HK_KIB, moves = 0, steps = 0;
  unsigned char *p = T_MALLOC(hk_opaque(n));
  cr_assert(p != NULL);
  fill_range(p, 0, n, seed);
  while (n < 64 * HK_MIB) {
    size_t m = (size_t)((double)n * 1.3) & ~(size_t)7;
    if (m > 64 * HK_MIB) m = 64 * HK_MIB;
    unsigned char *q = T_REALLOC(hk_launder(p), hk_opaque(m));
    HK_ASSERT_GOOD_BLOCK(q, m, "realloc");
    size_t u = T_USABLE(q);
    cr_assert(u < m + 4096, "realloc(%zu): usable %zu, more than the request rounded to a page", m, u);
    cr_assert(hak_owns(q + u - 1) && hak_owns(q + u / 2), "realloc(%zu) = %p: the address map does not cover it", m,
              (void *)q);
    if (q != p) {
      moves++;
      cr_assert(!hak_owns(p), "realloc moved %p to %p but the old pointer is still registered as live", (void *)p,
                (void *)q);
    }
    size_t bad = check_sampled(q, n, seed);
    cr_assert(bad == SIZE_MAX, "realloc %zu -> %zu lost byte %zu", n, m, bad);
    fill_range(q, n, m, seed);
    p = q;
    n = m;
    steps++;
  }
  size_t bad = hk_check(p, n, seed);
  cr_assert(bad == SIZE_MAX, "after %zu growth steps (%zu moves) byte %zu of %zu is wrong", steps, moves, bad, n);
  cr_log_info("%zu growth steps to 64 MiB, %zu moved", steps, moves);
  /* Shrinking stays in place and the block is still whole. */
  unsigned char *s = T_REALLOC(hk_launder(p), hk_opaque(3 * HK_MIB));
  cr_assert(s == p, "a shrink moved the block");
  cr_assert(hk_check(s, 3 * HK_MIB, seed) == SIZE_MAX);
  T_FREE(s);
}

Test(large, a_freed_big_mapping_serves_a_smaller_request) {
  T_TRIM(); /* an empty cache */
  unsigned char *a = T_MALLOC(hk_opaque(14 * HK_MIB)); /* a 14 MiB (and a page) mapping */
  cr_assert(a != NULL);
  memset(a, 1, 14 * HK_MIB);
  T_FREE(hk_launder(a));
  size_t mapped0 = hk_stats().mapped_bytes, rss0 = hk_rss_bytes();
  unsigned char *b = T_MALLOC(hk_opaque(8 * HK_MIB));
  cr_assert(b != NULL);
  size_t mapped1 = hk_stats().mapped_bytes, rss1 = hk_rss_bytes();
  cr_assert(b == a, "malloc(8 MiB) after freeing a 14 MiB block got %p, not the cached mapping at %p", (void *)b,
            (void *)a);
  /* The tail past 8 MiB stays with the block, address space and pages (no
   * VMA split per reuse; realloc grows into it without a fault). */
  cr_assert(mapped1 == mapped0, "malloc(8 MiB) from a cached 14 MiB mapping changed the address space (%zu KiB, %zu before)",
            mapped1 >> 10, mapped0 >> 10);
  size_t u = T_USABLE(b);
  cr_assert(u >= 8 * HK_MIB && u < 8 * HK_MIB + 4096, "usable %zu: the request rounded to pages, not the mapping", u);
  memset(b, 2, u); /* the whole usable size is writable */
#ifndef HK_SANITIZED
  /* 8 MiB to 14 MiB were touched and stay resident. */
  cr_assert(rss1 + HK_MIB > rss0, "the reused mapping's tail lost its pages: RSS %zu KiB, %zu KiB before", rss1 >> 10,
            rss0 >> 10);
#else
  (void)rss0;
  (void)rss1;
#endif
  /* Under half of it (8 MiB now): the waste bound sends it elsewhere. */
  T_FREE(b);
  unsigned char *c = T_MALLOC(hk_opaque(3 * HK_MIB));
  cr_assert(c != NULL && c != b, "a 3 MiB request took a cached 8 MiB mapping");
  T_FREE(c);
  T_TRIM();
}

static long minor_faults(void) {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return u.ru_minflt;
}

Test(large, a_reused_mappings_tail_grows_without_faults) {
  /* 7 MiB: under the huge-page threshold, so every page is its own fault. */
  T_TRIM();
  unsigned char *a = T_MALLOC(hk_opaque(7 * HK_MIB));
  cr_assert(a != NULL);
  memset(a, 1, 7 * HK_MIB);
  T_FREE(hk_launder(a));
  unsigned char *b = T_MALLOC(hk_opaque(4 * HK_MIB));
  cr_assert(b == a, "malloc(4 MiB) did not reuse the cached 7 MiB mapping");
  long f0 = minor_faults();
  unsigned char *c = T_REALLOC(b, hk_opaque(7 * HK_MIB));
  cr_assert(c == b, "realloc within the reused mapping moved the block");
  memset(c, 2, 7 * HK_MIB);
  long faults = minor_faults() - f0;
  cr_assert(faults < 64, "writing the 3 MiB tail of a reused mapping made %ld page faults", faults);
  T_FREE(c);
  T_TRIM();
}

Test(large, a_freed_small_mapping_is_grown_for_a_bigger_request) {
  T_TRIM();
  unsigned char *a = T_MALLOC(hk_opaque(4 * HK_MIB)); /* a 4 MiB (and a page) mapping */
  cr_assert(a != NULL);
  memset(a, 1, 4 * HK_MIB);
  T_FREE(hk_launder(a));
  hak_stats_t s0 = hk_stats();
  cr_assert(s0.large_cached_bytes >= 4 * HK_MIB, "the freed 4 MiB mapping was not cached (%zu KiB cached)",
            s0.large_cached_bytes >> 10);
  unsigned char *b = T_MALLOC(hk_opaque(10 * HK_MIB)); /* a 10 MiB (and a page) mapping */
  cr_assert(b != NULL);
  hak_stats_t s1 = hk_stats();
  /* The cached mapping was taken for the request, and the address space grew
   * by less than the fresh 10 MiB mapping beside it would have added. Not a
   * tighter 6 MiB + a page: mapped_bytes also counts the page map's 256 KiB
   * leaves, and mremap may move the grown block into a 4 GiB span that no
   * block used before, whose leaf is then mapped (about 1 run in 25 under
   * ASan, whose shadow changes where the kernel places mappings). */
  cr_assert(s1.large_cached_bytes == s0.large_cached_bytes - (4 * HK_MIB + 4096),
            "malloc(10 MiB) left the cached 4 MiB mapping in the cache (%zu KiB cached before, %zu after)",
            s0.large_cached_bytes >> 10, s1.large_cached_bytes >> 10);
  cr_assert(s1.mapped_bytes < s0.mapped_bytes + 10 * HK_MIB,
            "malloc(10 MiB) with a 4 MiB mapping cached mapped %zu KiB more: it mapped afresh beside it",
            (s1.mapped_bytes - s0.mapped_bytes) >> 10);
  cr_assert(hak_owns(b) && hak_owns(b + 10 * HK_MIB - 1));
  memset(b, 2, 10 * HK_MIB);
  cr_assert(T_USABLE(b) >= 10 * HK_MIB);
  T_FREE(b);
  T_TRIM();
}

Test(large, rss_returns_after_large_churn_and_collect) {
  enum { N = 8, ROUNDS = 200 };
  T_TRIM();
  size_t rss0 = hk_rss_bytes(), mapped0 = hk_stats().mapped_bytes;
  uint64_t x = 12345;
  unsigned char *b[N];
  for (int i = 0; i < N; i++) b[i] = NULL;
  for (int r = 0; r < N + ROUNDS; r++) {
    int i = r < N ? r : (int)(x % N);
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    T_FREE(b[i]);
    size_t sz = 5 * HK_MIB + (size_t)((x >> 33) % (20 * HK_MIB));
    b[i] = T_MALLOC(hk_opaque(sz));
    cr_assert(b[i] != NULL);
    memset(b[i], r, sz);
  }
  size_t rss_peak = hk_rss_bytes();
  for (int i = 0; i < N; i++) T_FREE(b[i]);
  T_TRIM();
  size_t rss1 = hk_rss_bytes(), mapped1 = hk_stats().mapped_bytes;
  cr_log_info("RSS %zu KiB at start, %zu KiB at the churn's end, %zu KiB after free-all and trim", rss0 >> 10,
              rss_peak >> 10, rss1 >> 10);
  cr_assert(mapped1 <= mapped0 + 4 * HK_MIB, "mapped %zu KiB after free-all and trim, %zu KiB at start",
            mapped1 >> 10, mapped0 >> 10);
#ifndef HK_SANITIZED
  size_t slack = rss0 / 10 > 4 * HK_MIB ? rss0 / 10 : 4 * HK_MIB;
  cr_assert(rss1 <= rss0 + slack, "RSS %zu KiB after free-all and trim, %zu KiB at start", rss1 >> 10, rss0 >> 10);
#endif
}

/* The THPeligible line of the smaps entry holding p: 1, 0, or -1 unknown. */
static int thp_eligible(const void *p) {
  FILE *f = fopen("/proc/self/smaps", "r");
  if (f == NULL) return -1;
  char line[256];
  int in = 0, res = -1;
  while (fgets(line, sizeof line, f) != NULL) {
    unsigned long lo, hi;
    if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') == line + strspn(line, "0123456789abcdef")) {
      in = (uintptr_t)p >= lo && (uintptr_t)p < hi;
      continue;
    }
    int v;
    if (in && sscanf(line, "THPeligible: %d", &v) == 1) {
      res = v;
      break;
    }
  }
  fclose(f);
  return res;
}

/* The kernel's THP mode: "always", "madvise", "never" or "" if unknown. */
static void thp_mode(char *out, size_t n) {
  out[0] = '\0';
  FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
  if (f == NULL) return;
  char buf[128];
  if (fgets(buf, sizeof buf, f) != NULL) {
    char *l = strchr(buf, '['), *r = l != NULL ? strchr(l, ']') : NULL;
    if (l != NULL && r != NULL && (size_t)(r - l - 1) < n) {
      memcpy(out, l + 1, (size_t)(r - l - 1));
      out[r - l - 1] = '\0';
    }
  }
  fclose(f);
}

Test(large, huge_page_advice_follows_the_option) {
  const char *env = getenv("HAKMEM_LARGE_HUGEPAGES");
  int want = env == NULL || strcmp(env, "0") != 0;
  unsigned char *p = T_MALLOC(hk_opaque(16 * HK_MIB));
  cr_assert(p != NULL);
  memset(p, 3, 16 * HK_MIB); /* usable either way */
  unsigned char *q = T_REALLOC(p, hk_opaque(40 * HK_MIB)); /* grown or moved: the advice follows */
  cr_assert(q != NULL);
  memset(q + 16 * HK_MIB, 4, 24 * HK_MIB);
  cr_assert(q[0] == 3 && q[16 * HK_MIB - 1] == 3);
  char mode[16];
  thp_mode(mode, sizeof mode);
  int got = thp_eligible(q), got_end = thp_eligible(q + 40 * HK_MIB - 1);
  cr_log_info("THP mode [%s], HAKMEM_LARGE_HUGEPAGES=%s: THPeligible %d / %d", mode, env ? env : "(unset)", got,
              got_end);
  if (strcmp(mode, "madvise") == 0 && got != -1) {
    cr_assert(got == want && got_end == want, "THPeligible %d/%d with HAKMEM_LARGE_HUGEPAGES=%s (mode madvise)", got,
              got_end, env ? env : "(unset)");
  }
  T_FREE(q);
}

/* The first non-zero byte of [p, p+n), or SIZE_MAX. */
static size_t first_nonzero(const unsigned char *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != 0) return i;
  return SIZE_MAX;
}

/* A freed 4 MiB block whose every byte is 0xab, cached (dirty). */
static unsigned char *dirty_cached_mapping(void) {
  T_TRIM(); /* an empty cache: the next 4 MiB request takes this mapping */
  unsigned char *a = T_MALLOC(hk_opaque(4 * HK_MIB));
  cr_assert(a != NULL);
  memset(a, 0xab, T_USABLE(a));
  T_FREE(hk_launder(a));
  return a;
}

Test(large, calloc_of_a_reused_mapping_is_zero_when_madvise_fails) {
  unsigned char *a = dirty_cached_mapping();
  hak_testing_inject_decommit_failures(1000000);
  unsigned char *c = T_CALLOC(1, hk_opaque(4 * HK_MIB));
  hak_testing_inject_decommit_failures(0);
  cr_assert(c == a, "calloc(4 MiB) got %p, not the cached mapping at %p", (void *)c, (void *)a);
  size_t bad = first_nonzero(c, 4 * HK_MIB);
  cr_assert(bad == SIZE_MAX, "calloc of a reused mapping, madvise failing: byte %zu is 0x%02x", bad, c[bad]);
  T_FREE(c);
  T_TRIM();
}

Test(large, a_mapping_whose_decommit_failed_stays_dirty) {
  const char *env = getenv("HAKMEM_DECOMMIT_DELAY_MS");
  unsigned delay_ms = env != NULL ? (unsigned)strtoul(env, NULL, 10) : 250;
  cr_assert(delay_ms <= 2000, "HAKMEM_DECOMMIT_DELAY_MS=%u: too long for this test", delay_ms);
  unsigned char *a = dirty_cached_mapping();
  hak_testing_inject_decommit_failures(1000000);
  usleep((delay_ms * 2 + 50) * 1000u); /* its decommit is due */
  /* A large call runs the cache's timer: it decommits the 4 MiB mapping
   * (refused). 256 KiB is too small to take it. */
  unsigned char *t = T_MALLOC(hk_opaque(256 * HK_KIB));
  cr_assert(t != NULL);
  T_FREE(t);
  hak_testing_inject_decommit_failures(0);
  unsigned char *c = T_CALLOC(1, hk_opaque(4 * HK_MIB));
  cr_assert(c == a, "calloc(4 MiB) got %p, not the cached mapping at %p", (void *)c, (void *)a);
  size_t bad = first_nonzero(c, 4 * HK_MIB);
  cr_assert(bad == SIZE_MAX, "calloc of a mapping whose decommit failed: byte %zu is 0x%02x", bad, c[bad]);
  T_FREE(c);
  T_TRIM();
}

/* Blocks of 96 MiB: over the large cache's 64 MiB floor and a quarter of
 * the peak, so each free unmaps at once. */
#define OWNS_BLOCK ((size_t)96 << 20)
static _Atomic(char *) owns_block;
static _Atomic int owns_stop;

static void *owns_churn(void *arg) {
  (void)arg;
  while (!atomic_load(&owns_stop)) {
    char *p = T_MALLOC(OWNS_BLOCK);
    cr_assert(p != NULL);
    atomic_store(&owns_block, p);
    T_FREE(p);
  }
  return NULL;
}

Test(large, owns_never_faults_while_a_neighbouring_block_is_unmapped) {
  /* hak_owns reads the header through process_vm_readv; where a seccomp
   * filter forbids it, HAKMEM falls back to a plain read (os.h). */
  char from[8] = "probe", to[8];
  struct iovec l = {to, sizeof to}, r = {from, sizeof from};
  if (process_vm_readv(getpid(), &l, 1, &r, 1, 0) != (ssize_t)sizeof to)
    cr_skip("process_vm_readv is not allowed here (%s): hak_owns falls back to a plain read", strerror(errno));
  pthread_t t;
  cr_assert(pthread_create(&t, NULL, owns_churn, NULL) == 0);
  struct timespec t0, now;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  size_t queries = 0;
  do {
    for (int i = 0; i < 1000; i++, queries++) {
      char *p = atomic_load(&owns_block);
      if (p != NULL) (void)hak_owns(p + OWNS_BLOCK + 100); /* past its end: not a live block's */
    }
    clock_gettime(CLOCK_MONOTONIC, &now);
  } while (now.tv_sec - t0.tv_sec < 2);
  atomic_store(&owns_stop, 1);
  cr_assert(pthread_join(t, NULL) == 0);
  cr_log_info("%zu hak_owns queries beside a block unmapped and remapped meanwhile", queries);
}
