/* helper_hardened.c -- one memory error per run, for test_hardened.c.
 *
 * usage: helper_hardened MODE
 *
 * Linked to the hardened library (libhakmem-hardened.so, or libhakmem.so of
 * a -DHAKMEM_HARDENED=ON build). Each error mode prints "ADDR 0x..." on
 * stdout (flushed) with the address the diagnostic must name, makes the
 * mistake, and gives the allocator its chance to notice; the test expects
 * SIGABRT and one "hakmem: <bug> at 0x..." line. A mode still alive at the
 * end prints "SURVIVED" (or, for the forged link, "FOLLOWED" when the
 * allocator handed out the forged address). The clean modes run correct
 * programs and print "CLEAN". Writes nothing to stderr itself. */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hk_common.h"

enum { X_SETUP = 11, X_WRONG = 12, X_USAGE = 64 };

static void fail(int code, const char *what) {
  printf("FAIL: %s\n", what);
  fflush(stdout);
  exit(code);
}

static void say_addr(const void *p) {
  printf("ADDR %p\n", p);
  fflush(stdout);
}

static void survived(void) {
  printf("SURVIVED\n");
  fflush(stdout);
  exit(0);
}

/* ---- overflows: k bytes written past n, caught by free or realloc -------- */

static unsigned char *overflowed(size_t n, size_t k) {
  unsigned char *p = malloc(hk_opaque(n));
  if (p == NULL) fail(X_SETUP, "malloc returned NULL");
  if (malloc_usable_size(p) != n) fail(X_WRONG, "malloc_usable_size is not the requested size");
  memset(p, 'a', n);
  say_addr(p + n);
  memset(hk_launder(p + n), 'A', k); /* the bug */
  return p;
}

static void overflow_free(size_t n, size_t k) {
  free(overflowed(n, k));
  survived();
}

static void overflow_realloc(size_t n, size_t k) {
  unsigned char *p = overflowed(n, k);
  void *q = realloc(p, 3 * n);
  free(q);
  survived();
}

static void mode_overflow_1(void) { overflow_free(24, 1); }
static void mode_overflow_8(void) { overflow_free(100, 8); }
static void mode_overflow_64(void) { overflow_free(1000, 64); }
static void mode_overflow_1_realloc(void) { overflow_realloc(40, 1); }
static void mode_overflow_8_realloc(void) { overflow_realloc(300, 8); }
static void mode_overflow_64_realloc(void) { overflow_realloc(5000, 64); }
static void mode_overflow_1_large(void) { overflow_free(300 * 1000, 1); }
/* Medium blocks (their own slabs) as well as small ones. */
static void mode_overflow_1_medium(void) { overflow_free(20000, 1); }
static void mode_overflow_8_medium_realloc(void) { overflow_realloc(30000, 8); }
static void mode_overflow_64_large_realloc(void) { overflow_realloc(200 * 1000, 64); }

/* ---- a forged free-list link --------------------------------------------- */

/* The classic poisoning: a write after free puts the address of a target
 * in the freed block's link, and the key the default build expects beside
 * it (its address plus the thread cache's published salt). The default build
 * hands out the target on the second malloc; the hardened one must abort
 * on the first, before following the link. */
static void mode_forged_link(void) {
  static _Alignas(64) unsigned char target[256];
  uintptr_t *p = malloc(hk_opaque(48));
  if (p == NULL) fail(X_SETUP, "malloc returned NULL");
  free(p);
  say_addr(p);
  uintptr_t *w = hk_launder(p); /* the bug: writes after free */
  w[0] = (uintptr_t)target;
  w[1] = (uintptr_t)p + (uintptr_t)0x27d4eb4fu;
  ((uintptr_t *)target)[1] = (uintptr_t)target + (uintptr_t)0x27d4eb4fu; /* the target's key too */
  void *a = malloc(hk_opaque(48));
  void *b = malloc(hk_opaque(48));
  if (a == p && b == (void *)target) {
    printf("FOLLOWED\n");
    fflush(stdout);
    exit(0);
  }
  survived();
}

/* A write after free to the first word of a block on its slab's list (the
 * thread cache is flushed first; every tenth block stays live, so no slab
 * empties and drops its lists), caught when the list reaches it. */
static void mode_uaf_write_slab_list(void) {
  enum { N = 400 };
  static void *blocks[N];
  for (int i = 0; i < N; i++)
    if ((blocks[i] = malloc(hk_opaque(200))) == NULL) fail(X_SETUP, "malloc returned NULL");
  for (int i = 0; i < N; i++)
    if (i % 10 != 0) free(blocks[i]);
  hak_thread_flush(); /* every cached block back on its slab's list */
  say_addr(blocks[N / 2 + 1]);
  *(uintptr_t *)hk_launder(blocks[N / 2 + 1]) ^= 0x40; /* the bug: one bit of the link */
  for (int i = 0; i < 2 * N; i++) /* past every listed block: fresh carving may come first */
    if (malloc(hk_opaque(200)) == NULL) fail(X_SETUP, "malloc returned NULL");
  survived();
}

/* ---- writes after free with HAKMEM_QUARANTINE ---------------------------- */

/* p freed, then written at offset `off`; more frees push it out of the
 * quarantine, whose release checks it. */
static void uaf_quarantined(size_t off) {
  unsigned char *p = malloc(hk_opaque(64));
  if (p == NULL) fail(X_SETUP, "malloc returned NULL");
  free(p);
  say_addr(p + off);
  ((unsigned char *)hk_launder(p))[off] = 'x'; /* the bug */
  for (int i = 0; i < 100000; i++) free(malloc(hk_opaque(64)));
  survived();
}

static void mode_uaf_write_quarantine(void) { uaf_quarantined(40); }
static void mode_uaf_write_quarantine_link(void) { uaf_quarantined(0); }

/* A quarantined block is not handed out again while it waits: the blocks
 * allocated meanwhile never include it, and a read after free sees the
 * fill, not another owner's data. */
static void mode_quarantine_delays_reuse(void) {
  unsigned char *p = malloc(hk_opaque(64));
  if (p == NULL) fail(X_SETUP, "malloc returned NULL");
  memset(p, 0x11, 64);
  free(p);
  for (int i = 0; i < 200; i++) { /* 200 * 64 B: well within a 64 KiB quarantine */
    unsigned char *q = malloc(hk_opaque(64));
    if (q == p) fail(X_WRONG, "a quarantined block was handed out again");
    memset(q, 0x22, 64);
    free(q);
  }
  if (((unsigned char *)hk_launder(p))[32] == 0x22 || ((unsigned char *)hk_launder(p))[32] == 0x11)
    fail(X_WRONG, "the quarantined block does not hold the fill");
  printf("CLEAN\n");
  exit(0);
}

/* A block of n bytes freed twice, the second free right after the first. */
static void double_free(size_t n) {
  void *p = malloc(hk_opaque(n));
  if (p == NULL) fail(X_SETUP, "malloc returned NULL");
  free(p);
  say_addr(p);
  free(hk_launder(p)); /* the bug */
  survived();
}

/* Run with HAKMEM_QUARANTINE: the first free put the block there. */
static void mode_double_free_quarantine(void) { double_free(64); }
/* A medium block (its request in its tail). */
static void mode_double_free_medium(void) { double_free(20000); }

/* Freed by another thread, then by its owner before the owner took the
 * remote free back: the first free's mark (the canary's tail, which the
 * other thread writes) must be what the owner's free finds. */
static void *free_it(void *p) {
  free(p);
  return NULL;
}
static void mode_double_free_remote_then_local(void) {
  void *keep = malloc(hk_opaque(48)), *p = malloc(hk_opaque(48));
  if (keep == NULL || p == NULL) fail(X_SETUP, "malloc returned NULL");
  pthread_t t;
  if (pthread_create(&t, NULL, free_it, p) != 0) fail(X_SETUP, "pthread_create failed");
  pthread_join(t, NULL);
  say_addr(p);
  free(hk_launder(p)); /* the bug */
  survived();
}

/* ---- guard pages and carving order --------------------------------------- */

/* The guard page after the SuperSlab's 4 KiB header page (hk_config.h:
 * HK_SS_GUARD), and the SuperSlab's last page:
 * a write there faults (the test expects SIGSEGV). */
static void guard(size_t off) {
  void *p = malloc(hk_opaque(32));
  if (p == NULL) fail(X_SETUP, "malloc returned NULL");
  unsigned char *ss = (unsigned char *)((uintptr_t)p & ~(uintptr_t)((2u << 20) - 1));
  say_addr(ss + off);
  *(volatile unsigned char *)(ss + off) = 1;
  survived();
}
static void mode_guard_header(void) { guard(4096); }
static void mode_guard_end(void) { guard((2u << 20) - 4096); }

/* A large block's header is the first 64 bytes of its mapping, right after
 * whatever mapping the kernel put below it (a linear overflow off the end
 * of the block there reaches it). Change 8 of its bytes as such an overflow
 * would, then hand the block to free, realloc or malloc_usable_size: each
 * must refuse the header before trusting a field of it. */
static void large_header_overwritten(int how) {
  unsigned char *p = malloc(hk_opaque(300 * 1000));
  if (p == NULL) fail(X_SETUP, "malloc returned NULL");
  unsigned char *hdr = p - 64;
  say_addr(hdr);
  memset(hk_launder(hdr + 32), 'A', 8); /* the bug: a forged field */
  if (how == 0) free(p);
  if (how == 1) p = realloc(p, 600 * 1000);
  if (how == 2 && malloc_usable_size(p) == 0) fail(X_WRONG, "no usable size");
  survived();
}
static void mode_large_header_free(void) { large_header_overwritten(0); }
static void mode_large_header_realloc(void) { large_header_overwritten(1); }
static void mode_large_header_usable(void) { large_header_overwritten(2); }

/* Fresh blocks of one class in a new process: how many follow the previous
 * one at the next address? Address order (the default build) makes that
 * nearly all of them. Prints "SEQUENTIAL k of n". */
static void mode_carve_order(void) {
  enum { N = 100 };
  static uintptr_t a[N];
  for (int i = 0; i < N; i++) a[i] = (uintptr_t)malloc(hk_opaque(100));
  int seq = 0;
  for (int i = 1; i < N; i++) seq += a[i] == a[i - 1] + 112 || a[i] == a[i - 1] + 128;
  printf("SEQUENTIAL %d of %d\n", seq, N - 1);
  exit(0);
}

/* ---- correct programs run clean ------------------------------------------ */

/* Random malloc/calloc/realloc/memalign/free of mixed sizes (large ones
 * too), every block filled with its own pattern and checked before it is
 * freed; usable size equals the request; realloc(p, usable) stays in place;
 * half the frees are done by a second thread (remote frees). */
enum { LIVE = 2000 };
static void *slot[LIVE];
static size_t slot_n[LIVE];
static uint64_t slot_seed[LIVE];

typedef struct {
  void **p;
  size_t n;
} handoff;

static void *remote_free_all(void *arg) {
  handoff *h = arg;
  for (size_t i = 0; i < h->n; i++) free(h->p[i]);
  return NULL;
}

/* A short-lived thread's mix of sizes, contents checked; non-NULL on a fault. */
static void *churn(void *arg) {
  enum { N = 256 };
  void *p[N];
  size_t n[N];
  uint64_t seed = (uint64_t)(uintptr_t)arg, s = seed;
  for (int i = 0; i < N; i++) {
    n[i] = hk_mixed_size(&s);
    if ((p[i] = malloc(n[i])) == NULL) return (void *)1;
    hk_fill(p[i], n[i], seed + (uint64_t)i);
  }
  for (int i = 0; i < N; i++) {
    if (hk_check(p[i], n[i], seed + (uint64_t)i) != SIZE_MAX) return (void *)1;
    free(p[i]);
  }
  return NULL;
}

static void check_slot(int i) {
  if (slot[i] == NULL) return;
  if (hk_check(slot[i], slot_n[i], slot_seed[i]) != SIZE_MAX) fail(X_WRONG, "a live block lost its contents");
  /* The request, or 1 for malloc(0) (served as malloc(1)). */
  if (malloc_usable_size(slot[i]) != (slot_n[i] != 0 ? slot_n[i] : 1))
    fail(X_WRONG, "malloc_usable_size is not the requested size");
}

static void mode_clean(void) {
  uint64_t rng = 0x1234567;
  static void *away[LIVE * 4];
  size_t naway = 0;
  for (int round = 0; round < 40000; round++) {
    int i = (int)(hk_rand(&rng) % LIVE);
    check_slot(i);
    unsigned op = (unsigned)(hk_rand(&rng) % 8);
    if (slot[i] != NULL && op < 3) {
      if (naway < sizeof away / sizeof away[0] && (op & 1)) away[naway++] = slot[i];
      else free(slot[i]);
      slot[i] = NULL;
      continue;
    }
    if (slot[i] != NULL && op < 5) { /* realloc, growing or shrinking */
      size_t n = hk_mixed_size(&rng);
      unsigned char *q = realloc(slot[i], n);
      if (q == NULL && n != 0) fail(X_SETUP, "realloc returned NULL");
      if (n == 0) {
        slot[i] = NULL;
        continue;
      }
      if (hk_check(q, hk_min(n, slot_n[i]), slot_seed[i]) != SIZE_MAX) fail(X_WRONG, "realloc lost contents");
      slot[i] = q;
      slot_n[i] = n;
      slot_seed[i] = hk_rand(&rng);
      hk_fill(q, n, slot_seed[i]);
      if (realloc(q, malloc_usable_size(q)) != q) fail(X_WRONG, "realloc(p, malloc_usable_size(p)) moved");
      continue;
    }
    if (slot[i] != NULL) free(slot[i]);
    size_t n = hk_mixed_size(&rng);
    void *p;
    switch (op) {
      case 5:
        p = calloc(1, n);
        if (p != NULL && hk_first_nonzero(p, n) != SIZE_MAX) fail(X_WRONG, "calloc not zeroed");
        break;
      case 6:
        p = memalign(64, n);
        if (p != NULL && !hk_aligned(p, 64)) fail(X_WRONG, "memalign misaligned");
        break;
      default:
        p = malloc(n);
        break;
    }
    if (p == NULL) fail(X_SETUP, "allocation returned NULL");
    slot[i] = p;
    slot_n[i] = n;
    slot_seed[i] = hk_rand(&rng);
    hk_fill(p, n, slot_seed[i]);
    if (naway == sizeof away / sizeof away[0] || round % 5000 == 4999) {
      pthread_t t;
      handoff h = {away, naway};
      if (pthread_create(&t, NULL, remote_free_all, &h) != 0) fail(X_SETUP, "pthread_create failed");
      pthread_join(t, NULL);
      naway = 0;
    }
  }
  for (int i = 0; i < LIVE; i++) {
    check_slot(i);
    free(slot[i]);
  }
  for (size_t i = 0; i < naway; i++) free(away[i]);
  malloc_trim(0);
  /* Threads that come and go: their SuperSlabs are retired, cached and
   * reused by the next ones (a reused header keeps its guard pages). */
  for (int wave = 0; wave < 4; wave++) {
    pthread_t t[8];
    for (int i = 0; i < 8; i++)
      if (pthread_create(&t[i], NULL, churn, (void *)(uintptr_t)(wave * 8 + i + 1)) != 0)
        fail(X_SETUP, "pthread_create failed");
    for (int i = 0; i < 8; i++) {
      void *rc = NULL;
      pthread_join(t[i], &rc);
      if (rc != NULL) fail(X_WRONG, "a churning thread's blocks lost their contents");
    }
  }
  printf("CLEAN\n");
  exit(0);
}

int main(int argc, char **argv) {
  static const struct {
    const char *name;
    void (*fn)(void);
  } modes[] = {
      {"overflow_1", mode_overflow_1},
      {"overflow_8", mode_overflow_8},
      {"overflow_64", mode_overflow_64},
      {"overflow_1_realloc", mode_overflow_1_realloc},
      {"overflow_8_realloc", mode_overflow_8_realloc},
      {"overflow_64_realloc", mode_overflow_64_realloc},
      {"overflow_1_large", mode_overflow_1_large},
      {"overflow_1_medium", mode_overflow_1_medium},
      {"overflow_8_medium_realloc", mode_overflow_8_medium_realloc},
      {"double_free_medium", mode_double_free_medium},
      {"double_free_remote_then_local", mode_double_free_remote_then_local},
      {"overflow_64_large_realloc", mode_overflow_64_large_realloc},
      {"forged_link", mode_forged_link},
      {"uaf_write_slab_list", mode_uaf_write_slab_list},
      {"uaf_write_quarantine", mode_uaf_write_quarantine},
      {"uaf_write_quarantine_link", mode_uaf_write_quarantine_link},
      {"quarantine_delays_reuse", mode_quarantine_delays_reuse},
      {"double_free_quarantine", mode_double_free_quarantine},
      {"guard_header", mode_guard_header},
      {"guard_end", mode_guard_end},
      {"large_header_free", mode_large_header_free},
      {"large_header_realloc", mode_large_header_realloc},
      {"large_header_usable", mode_large_header_usable},
      {"carve_order", mode_carve_order},
      {"clean", mode_clean},
  };
  if (argc != 2) {
    printf("usage: helper_hardened MODE\n");
    return X_USAGE;
  }
  void *probe = malloc(32);
  if (probe == NULL || !hak_owns(probe)) fail(X_SETUP, "malloc is not HAKMEM's: the override is not active");
  free(probe);
  for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++)
    if (strcmp(argv[1], modes[i].name) == 0) modes[i].fn();
  printf("unknown mode %s\n", argv[1]);
  return X_USAGE;
}
