/* helper_nothreads.c -- a program that never creates a thread or calls any
 * pthread function: a million mixed malloc-family calls on the main thread,
 * every block's contents checked before it is freed or resized.
 *
 * usage: helper_nothreads [OPS]     -> "OK", exit 0
 *        helper_nothreads address   -> one malloc, then "MAPPED <peak bytes
 *                                      of address space> HEAPS <heaps created>" */
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hk_common.h"

#define SLOTS 4096
#define EDGE 4096 /* blocks above 2*EDGE bytes: only both ends are patterned */

static void *slot_p[SLOTS];
static size_t slot_n[SLOTS];
static uint64_t slot_seed[SLOTS];
static unsigned long ops_done;

static void die(const char *why, size_t n) {
  printf("FAIL after %lu ops: %s (size %zu)\n", ops_done, why, n);
  exit(1);
}

static void fill(void *p, size_t n, uint64_t seed) {
  if (n <= 2 * EDGE) {
    hk_fill(p, n, seed);
  } else {
    hk_fill(p, EDGE, seed);
    hk_fill((unsigned char *)p + n - EDGE, EDGE, ~seed);
  }
}

static int intact(const void *p, size_t n, uint64_t seed) {
  if (n <= 2 * EDGE) return hk_check(p, n, seed) == SIZE_MAX;
  return hk_check(p, EDGE, seed) == SIZE_MAX &&
         hk_check((const unsigned char *)p + n - EDGE, EDGE, ~seed) == SIZE_MAX;
}

static void accept_block(int i, void *p, size_t n, size_t align, uint64_t seed) {
  if (p == NULL) die("allocation returned NULL", n);
  if (!hak_owns(p)) die("block is not HAKMEM's", n);
  if (!hk_aligned(p, align < 16 ? 16 : align)) die("block misaligned", n);
  if (malloc_usable_size(p) < n) die("usable size < request", n);
  slot_p[i] = p;
  slot_n[i] = n;
  slot_seed[i] = seed;
  fill(p, n, seed);
}

static void release(int i) {
  if (slot_p[i] == NULL) return;
  if (!intact(slot_p[i], slot_n[i], slot_seed[i])) die("block contents changed while it was live", slot_n[i]);
  free(slot_p[i]);
  slot_p[i] = NULL;
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "address") == 0) {
    void *p = malloc(hk_opaque(32));
    if (p == NULL) die("malloc returned NULL", 32);
    hak_stats_t s;
    hak_stats_get(&s);
    printf("MAPPED %zu HEAPS %zu\n", s.peak_mapped_bytes, s.heaps_created);
    free(p);
    return 0;
  }
  unsigned long ops = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000000ul;
  uint64_t rng = 0x1234567887654321ull;
  for (ops_done = 0; ops_done < ops; ops_done++) {
    uint64_t r = hk_rand(&rng);
    int i = (int)(r % SLOTS);
    unsigned op = (unsigned)((r >> 16) % 100);
    size_t n = hk_mixed_size(&rng);
    uint64_t seed = r | 1;
    if (op < 45) {
      release(i);
      accept_block(i, malloc(n), n, 16, seed);
    } else if (op < 60) {
      if (slot_p[i] == NULL) {
        accept_block(i, realloc(NULL, n), n, 16, seed);
        continue;
      }
      if (!intact(slot_p[i], slot_n[i], slot_seed[i])) die("block contents changed before realloc", slot_n[i]);
      if (n == 0) { /* glibc: realloc(p, 0) frees p and returns NULL */
        if (realloc(slot_p[i], 0) != NULL) die("realloc(p, 0) did not return NULL", 0);
        slot_p[i] = NULL;
        continue;
      }
      size_t keep = hk_min(hk_min(slot_n[i], n), EDGE);
      unsigned char *q = realloc(slot_p[i], n);
      if (q == NULL) die("realloc returned NULL", n);
      if (hk_check(q, keep, slot_seed[i]) != SIZE_MAX) die("realloc lost the contents", n);
      slot_p[i] = NULL;
      accept_block(i, q, n, 16, seed);
    } else if (op < 70) {
      release(i);
      size_t cnt = 1 + (size_t)(r >> 40) % 8, each = n / cnt;
      unsigned char *q = calloc(cnt, each);
      if (q == NULL) die("calloc returned NULL", cnt * each);
      if (hk_first_nonzero(q, cnt * each) != SIZE_MAX) die("calloc memory not zeroed", cnt * each);
      accept_block(i, q, cnt * each, 16, seed);
    } else if (op < 75) {
      release(i);
      size_t align = (size_t)1 << (3 + (r >> 40) % 14); /* 8 .. 64 KiB */
      void *q = NULL;
      switch ((r >> 50) % 3) {
        case 0: q = aligned_alloc(align, n); break;
        case 1: if (posix_memalign(&q, align, n) != 0) q = NULL; break;
        default: q = memalign(align, n); break;
      }
      accept_block(i, q, n, align, seed);
    } else {
      release(i);
    }
  }
  for (int i = 0; i < SLOTS; i++) release(i);
  printf("OK\n");
  return 0;
}
