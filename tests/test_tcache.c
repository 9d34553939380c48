/* test_tcache.c -- the thread cache's sizes (hk_heap.tc_cap, core/heap.c):
 * a class that overflows after serving mallocs borrows room from its
 * heap's growth budget, the loans never exceed HK_TC_GROW_BYTES, and
 * classes that stop overflowing give them back. Through the internal
 * headers, linked from libhakmem.a. Each test runs in a thread of its own,
 * so it starts from a fresh heap. A round allocates n blocks and frees
 * them; from the second on, its mallocs pop the cache.
 *   a_burst_of_frees_does_not_grow_the_cache: 200 frees of 1 KiB blocks
 *     with no malloc between them flush as a fixed cache would.
 *   an_overflowing_class_grows_instead_of_flushing: after rounds of 64
 *     32 KiB blocks, a round's 64 frees stay cached (the fixed cache holds
 *     4): no block goes back to its slab, and the loan is accounted.
 *   growth_stops_at_the_budget: with the heap's budget cut to 2 MiB, rounds
 *     of 200 32 KiB blocks, then of 200 16 KiB ones: the loans stay within
 *     the budget, the first class stops at what the budget allows, the
 *     second gets none and flushes as a fixed cache.
 *   idle_classes_return_their_loans: after the growth above, cache hits of
 *     another class alone (the round-robin trim of each tick) bring every
 *     class back to its fixed size and the budget back to full.
 *   a_class_in_use_keeps_its_cache_until_its_loan_shrinks: a grown class
 *     whose cache holds 60 blocks and serves hits without overflowing is
 *     not trimmed as idle, and when its loan is halved below what it holds
 *     it gives back blocks first: it never holds more than its size.
 *   remote_frees_are_reclaimed_into_the_cache: blocks another thread freed
 *     come back, at the owner's next slow path, into the owner's cache up
 *     to one short of full (the rest to their slab), and its next mallocs
 *     hand them out again.
 *   rooms_stay_exact_across_pops_and_heap_reuse: threads on fresh and on
 *     reused heaps churn a class; its room always says how many blocks
 *     its list holds. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/heap.h"
#include "core/sizeclass.h"
#include "hk_test.h"

TestSuite(tcache, .timeout = 120.);

#define NBLK 200
/* What the heap under test may lend: HK_TC_GROW_BYTES, or what a test cut
 * it to (growth_stops_at_the_budget: a budget that rounds of NBLK blocks
 * exhaust, whatever HK_TC_GROW_BYTES is). */
static size_t budget = HK_TC_GROW_BYTES;

/* Bytes lent out of h's budget, checked against what is left of it. */
static size_t loans_checked(const hk_heap *h) {
  size_t lent = 0;
  for (unsigned c = 0; c < HK_NCLASSES; c++) {
    cr_assert(h->tc_cap[c] >= hk_tc_cap(c), "class %u: cache of %u blocks, below its fixed %u", c,
              (unsigned)h->tc_cap[c], (unsigned)hk_tc_cap(c));
    cr_assert(h->tc_cap[c] <= HK_TC_GROW_MAX || h->tc_cap[c] == hk_tc_cap(c), "class %u: cache of %u blocks", c,
              (unsigned)h->tc_cap[c]);
    cr_assert(h->tc[c].room >= 1 && h->tc[c].room <= h->tc_cap[c], "class %u: room %u in a cache of %u", c,
              (unsigned)h->tc[c].room, (unsigned)h->tc_cap[c]);
    lent += (size_t)(h->tc_cap[c] - hk_tc_cap(c)) * hk_class_size[c];
  }
  cr_assert(lent + h->tc_grow_left == budget, "lent %zu + left %u != the budget %zu", lent, (unsigned)h->tc_grow_left,
            budget);
  return lent;
}

static uint32_t cached(const hk_heap *h, unsigned c) { return h->tc_cap[c] - h->tc[c].room; }

static void run_in_thread(void *(*fn)(void *)) {
  pthread_t t;
  cr_assert(pthread_create(&t, NULL, fn, NULL) == 0);
  cr_assert(pthread_join(t, NULL) == 0);
}

static void *blk[NBLK];

static void allocate(size_t size, unsigned n) {
  for (unsigned i = 0; i < n; i++) {
    blk[i] = T_MALLOC(size);
    cr_assert(blk[i] != NULL);
  }
}

static void release(unsigned n) {
  for (unsigned i = 0; i < n; i++) T_FREE(blk[i]);
}

static void rounds(size_t size, unsigned n, unsigned k) {
  while (k-- > 0) {
    allocate(size, n);
    release(n);
  }
}

static void *burst(void *arg) {
  (void)arg;
  unsigned c = hk_class_of(1024);
  allocate(1024, NBLK);
  hk_heap *h = hk_tls_heap;
  uint64_t trimmed = h->stats.cls[c].trimmed;
  release(NBLK);
  cr_assert(h->tc_cap[c] == hk_tc_cap(c), "1 KiB cache of %u blocks after a burst of frees", h->tc_cap[c]);
  cr_assert(h->stats.cls[c].trimmed > trimmed && cached(h, c) < hk_tc_cap(c));
  cr_assert(loans_checked(h) == 0);
  return NULL;
}

Test(tcache, a_burst_of_frees_does_not_grow_the_cache) { run_in_thread(burst); }

static void *grows(void *arg) {
  (void)arg;
  unsigned c = hk_class_of(32768);
  rounds(32768, 64, 8);
  allocate(32768, 64);
  hk_heap *h = hk_tls_heap;
  uint64_t trimmed = h->stats.cls[c].trimmed;
  release(64);
  cr_assert(hk_tc_cap(c) < 64, "the fixed cache of 32 KiB holds %u blocks", hk_tc_cap(c));
  cr_assert(cached(h, c) == 64, "%u of 64 freed blocks cached", cached(h, c));
  cr_assert(h->stats.cls[c].trimmed == trimmed, "blocks went back to their slabs");
  cr_assert(loans_checked(h) >= (size_t)(64 - hk_tc_cap(c)) * 32768);
  /* They are handed out again, newest first. */
  for (unsigned i = 64; i-- > 0;) cr_assert(T_MALLOC(32768) == blk[i], "block %u", i);
  release(64);
  return NULL;
}

Test(tcache, an_overflowing_class_grows_instead_of_flushing) { run_in_thread(grows); }

static void *bounded(void *arg) {
  (void)arg;
  unsigned big = hk_class_of(32768), mid = hk_class_of(16384);
  T_FREE(T_MALLOC(16)); /* the heap exists, nothing lent yet */
  hk_heap *h = hk_tls_heap;
  cr_assert(loans_checked(h) == 0);
  budget = (size_t)2 << 20;
  h->tc_grow_left = (uint32_t)budget;
  rounds(32768, NBLK, 10);
  size_t lent = loans_checked(h);
  uint32_t most = hk_tc_cap(big) + (uint32_t)(budget / 32768);
  cr_assert(h->tc_cap[big] <= most, "32 KiB cache of %u blocks, over the budget's %u", h->tc_cap[big], most);
  cr_assert(h->tc_cap[big] * 2 > most, "32 KiB cache of %u blocks, the budget allows %u", h->tc_cap[big], most);
  cr_assert(cached(h, big) <= h->tc_cap[big]);
  uint64_t trimmed = h->stats.cls[mid].trimmed;
  rounds(16384, NBLK, 10);
  cr_assert(h->tc_grow_left < 2 * 16384 * hk_tc_cap(mid) || h->tc_cap[mid] > hk_tc_cap(mid),
            "16 KiB did not grow with %u bytes left", (unsigned)h->tc_grow_left);
  cr_assert(loans_checked(h) <= budget);
  cr_assert(loans_checked(h) >= lent, "a loan shrank without a trim tick");
  cr_assert(h->stats.cls[mid].trimmed > trimmed, "16 KiB never flushed: %u blocks cached", cached(h, mid));
  cr_assert(cached(h, mid) <= h->tc_cap[mid]);
  /* The heap is pooled at the thread's exit and may serve the next test:
   * its whole budget again. */
  h->tc_grow_left += (uint32_t)(HK_TC_GROW_BYTES - budget);
  budget = HK_TC_GROW_BYTES;
  (void)loans_checked(h); /* lent + left is the whole budget again */
  return NULL;
}

Test(tcache, growth_stops_at_the_budget) { run_in_thread(bounded); }

static void *returns(void *arg) {
  (void)arg;
  rounds(32768, NBLK, 10);
  rounds(16384, NBLK, 10);
  hk_heap *h = hk_tls_heap;
  cr_assert(loans_checked(h) > 0);
  /* 16-byte cache hits only: one tick per HK_TC_TICK, each visiting one
   * class; a loan halves per visit, so a few dozen rounds of the classes
   * return them all. */
  for (unsigned i = 0; i < 64 * HK_NCLASSES * HK_TC_TICK; i++) T_FREE(T_MALLOC(16));
  cr_assert(loans_checked(h) == 0, "loans left after the classes went idle");
  for (unsigned c = 0; c < HK_NCLASSES; c++)
    cr_assert(cached(h, c) <= 1, "class %u still caches %u blocks", c, cached(h, c));
  return NULL;
}

Test(tcache, idle_classes_return_their_loans) { run_in_thread(returns); }

static void *in_use(void *arg) {
  (void)arg;
  unsigned c = hk_class_of(32768);
  rounds(32768, 64, 8);
  hk_heap *h = hk_tls_heap;
  cr_assert(h->tc_cap[c] >= 64);
  allocate(32768, 60);
  release(60);
  cr_assert(cached(h, c) >= 60);
  /* Hits of this class only: ticks come every HK_TC_TICK of them, and the
   * trim comes by once per HK_NCLASSES ticks. */
  uint64_t trimmed = h->stats.cls[c].trimmed;
  for (unsigned i = 0; i < HK_NCLASSES * HK_TC_TICK / 2; i++) T_FREE(T_MALLOC(32768));
  cr_assert(h->stats.cls[c].trimmed == trimmed, "a class in use was trimmed as idle");
  for (unsigned i = 0; i < 16 * HK_NCLASSES * HK_TC_TICK; i++) {
    T_FREE(T_MALLOC(32768));
    if (i % HK_TC_TICK == 0) loans_checked(h); /* room within 1..cap */
  }
  cr_assert(h->tc_cap[c] == hk_tc_cap(c), "the loan of a class that never overflowed stayed: %u blocks", h->tc_cap[c]);
  cr_assert(h->stats.cls[c].trimmed > trimmed, "the shrunk cache kept its blocks");
  loans_checked(h);
  return NULL;
}

Test(tcache, a_class_in_use_keeps_its_cache_until_its_loan_shrinks) { run_in_thread(in_use); }

static void *freer(void *arg) {
  unsigned n = (unsigned)(uintptr_t)arg;
  for (unsigned i = 0; i < n; i++) T_FREE(blk[i]);
  hak_thread_flush(); /* push this thread's outbox */
  return NULL;
}

static void *reclaims(void *arg) {
  (void)arg;
  unsigned c = hk_class_of(256);
  allocate(256, NBLK);
  hk_heap *h = hk_tls_heap;
  cr_assert(cached(h, c) == 0);
  pthread_t t;
  cr_assert(pthread_create(&t, NULL, freer, (void *)(uintptr_t)NBLK) == 0);
  cr_assert(pthread_join(t, NULL) == 0);
  uint64_t reclaimed = h->stats.cls[c].reclaimed;
  T_FREE(T_MALLOC(100000)); /* a slow path of another class: it collects the remote frees */
  uint32_t got = cached(h, c);
  cr_assert(got == (uint32_t)h->tc_cap[c] - 1, "%u remote frees cached of %u, cache of %u", got, NBLK, h->tc_cap[c]);
  cr_assert(h->stats.cls[c].reclaimed - reclaimed == NBLK - got, "the rest went to their slab");
  loans_checked(h);
  /* The cached ones are handed out again before any slab block. */
  for (uint32_t i = 0; i < got; i++) {
    void *p = T_MALLOC(256);
    unsigned j = 0;
    while (j < NBLK && blk[j] != p) j++;
    cr_assert(j < NBLK, "malloc %u handed out a block not freed remotely", i);
  }
  cr_assert(cached(h, c) == 0);
  return NULL;
}

Test(tcache, remote_frees_are_reclaimed_into_the_cache) { run_in_thread(reclaims); }

/* A cache's room says how many blocks its list holds: the flushes, trims
 * and growth that set it, and a heap that a new thread takes over from the
 * pool, keep the two in step. Each of a run of threads (most on a heap an
 * earlier one left) makes thousands of pops and frees, then its cache must
 * hold exactly as many blocks as its room says. A count short of the list
 * leaks what the exiting thread's flush does not reach (a version that
 * let malloc's pops give their room back lazily got the base wrong on
 * reused heaps: test_memory_return leaked every churned SuperSlab). */
static uint32_t listed(const hk_heap *h, unsigned c) {
  uint32_t n = 0;
  for (hk_block *b = h->tc[c].head; b != NULL && n <= h->tc_cap[c]; b = hk_block_next(b, hk_heap_secret(h))) n++;
  return n;
}

static void *counts_after_pops(void *arg) {
  (void)arg;
  hk_heap *h;
  unsigned c = hk_class_of(64);
  for (int k = 0; k < 8; k++) {
    rounds(64, 100, 5); /* 500 pops of the 64-byte class */
    allocate(64, 3);    /* and the cache left short of full */
    h = hk_tls_heap;
    cr_assert(cached(h, c) == listed(h, c), "class %u: room says %u cached, the list holds %u", c, cached(h, c),
              listed(h, c));
    release(3);
  }
  return NULL;
}

Test(tcache, rooms_stay_exact_across_pops_and_heap_reuse) {
  size_t reused0 = hk_stats().heaps_reused, reused = 0;
  /* A dead thread's heap is reused once its grace period has ended, which
   * a later thread's slow paths end (a collect would unmap it instead). */
  for (int i = 0; i < 200 && reused < 5; i++) {
    run_in_thread(counts_after_pops);
    reused = hk_stats().heaps_reused - reused0;
  }
  cr_assert(reused >= 5, "only %zu threads ran on a reused heap", reused);
}
