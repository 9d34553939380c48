/* prof_sites.c -- three allocation sites holding 60, 30 and 10 % of the
 * live bytes, each in small and large blocks (sizes that are exact size
 * classes, so the bytes a sample stands for are the bytes asked for), then
 * a heap profile of them (hak_prof_dump) while they are live, and one of
 * folded stacks. Run with HAKMEM_PROF=1 by tests/prof/prof_pprof_test.sh,
 * which reads the profile back with google-pprof.
 *
 * With `tiers`, site_thirty's small blocks come from the thread cache (a
 * helper allocates a batch and frees it just before, so each of the
 * site's mallocs pops a block that free put there), while the other two
 * sites' come from slab lists, which the fast path pops without the
 * profiler's ticker: the shares still hold only if both tiers are sampled
 * at the same rate (prof/sample.c charges a refill's list to the countdown).
 *
 * usage: prof_sites HEAP_FILE FOLDED_FILE [MiB [tiers]]   (MiB: the total,
 * default 120; a multiple of 40 keeps every share exact) */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hakmem.h"

/* Not malloc'd: only the three sites allocate while profiling. */
#define KEEP_MAX ((size_t)1 << 22)
static void *keep[KEEP_MAX];
static size_t nkeep;

/* Blocks of `small` bytes and of `large` bytes, `bytes` of each kind. */
/* `mark` makes the three bodies differ, so the compiler cannot fold them into one. */
#define SITE(name, mark)                                                   \
  __attribute__((noinline)) static void name(size_t bytes, size_t small, size_t large) { \
    for (size_t done = 0; done < bytes; done += small) {                   \
      void *p = malloc(small);                                             \
      memset(p, mark, 16);                                                 \
      keep[nkeep++] = p;                                                   \
    }                                                                      \
    for (size_t done = 0; done < bytes; done += large) {                   \
      void *p = malloc(large);                                             \
      memset(p, 1, 16);                                                    \
      keep[nkeep++] = p;                                                   \
    }                                                                      \
    __asm__ __volatile__("" ::: "memory"); /* no tail call: this frame stays */ \
  }

SITE(site_sixty, 1)
SITE(site_thirty, 2)
SITE(site_ten, 3)

/* The batch that site_thirty_cached's mallocs pop from the thread cache:
 * allocated here (from the slab lists) and freed at once, so none of it is
 * live in the profile. */
#define CACHED_BATCH 16
__attribute__((noinline)) static void scratch_batch(size_t size) {
  void *b[CACHED_BATCH];
  for (int i = 0; i < CACHED_BATCH; i++) {
    b[i] = malloc(size);
    memset(b[i], 4, 16);
  }
  for (int i = CACHED_BATCH - 1; i >= 0; i--) free(b[i]);
}

/* site_thirty with its small blocks from the thread cache (`tiers`). */
__attribute__((noinline)) static void site_thirty_cached(size_t bytes, size_t small, size_t large) {
  for (size_t done = 0; done < bytes;) {
    scratch_batch(small);
    for (int i = 0; i < CACHED_BATCH && done < bytes; i++, done += small) {
      void *p = malloc(small);
      memset(p, 2, 16);
      keep[nkeep++] = p;
    }
  }
  for (size_t done = 0; done < bytes; done += large) {
    void *p = malloc(large);
    memset(p, 1, 16);
    keep[nkeep++] = p;
  }
  __asm__ __volatile__("" ::: "memory"); /* no tail call: this frame stays */
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s HEAP_FILE FOLDED_FILE [MiB [tiers]]\n", argv[0]);
    return 2;
  }
  size_t mib = argc > 3 ? strtoul(argv[3], NULL, 10) : 120;
  bool tiers = argc > 4 && strcmp(argv[4], "tiers") == 0;
  size_t total = mib << 20;
  if (total / 64 + 1024 > KEEP_MAX) {
    fprintf(stderr, "%s: at most %zu MiB\n", argv[0], (KEEP_MAX - 1024) * 64 >> 20);
    return 2;
  }
  /* Interleaved in rounds, so no site gets all the early or late samples. */
  for (int round = 0; round < 8; round++) {
    site_sixty(total * 6 / 10 / 2 / 8, 64, 256 << 10);
    (tiers ? site_thirty_cached : site_thirty)(total * 3 / 10 / 2 / 8, 512, 768 << 10);
    site_ten(total / 10 / 2 / 8, 4096, 192 << 10);
  }
  if (hak_prof_dump(argv[1]) != 0) {
    perror("hak_prof_dump");
    return 1;
  }
  if (hak_prof_dump_folded(argv[2]) != 0) {
    perror("hak_prof_dump_folded");
    return 1;
  }
  for (size_t i = 0; i < nkeep; i++) free(keep[i]);
  return 0;
}
