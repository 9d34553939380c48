/* test_memory_return.c -- memory goes back to the OS (epoch retirement).
 *   rss_returns_after_1gib_multithreaded_peak_and_trim: RSS back within
 *     max(10 %, 4 MiB) of its start after a 4-thread workload that peaked at
 *     1 GiB freed everything (half of it remotely) and malloc_trim ran
 *   thread_churn_keeps_rss_mapped_and_records_bounded: 100,000 threads that
 *     allocate, free another thread's blocks remotely and exit
 *   heaps_of_exited_threads_are_retired_and_unmapped: 40 threads' heaps go
 *     back through the epoch; after trim none is pooled or mapped
 *   remote_frees_race_owner_exit_and_retirement: blocks freed remotely into
 *     SuperSlabs whose owner is exiting (and retiring what is empty) at that
 *     moment: nothing lost (everything is retired and unmapped after trim),
 *     no touch of unmapped memory (a fault would crash the test), no race
 *     (the TSan preset runs this file too)
 *   an_idle_threads_empty_slabs_are_decommitted_by_others: a thread frees
 *     24 MiB and goes idle; another thread's slow paths decommit its slabs
 *   empty_slabs_are_decommitted_after_the_delay: a live SuperSlab's empty
 *     slabs give their pages back without any trim
 *   freed_large_blocks_are_cached_decommitted_and_trimmed: freed large
 *     mappings stay mapped in the cache (reused), lose their pages after the
 *     delay, and malloc_trim / hak_collect unmaps them
 *
 * Sanitizer presets: their shadow memory is part of RSS and is not given
 * back with our pages, so there the RSS checks become checks of the address
 * space HAKMEM still maps (which bounds what it can hold), and the churn
 * runs fewer threads (a TSan thread start costs about a millisecond). */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hk_test.h"


TestSuite(memory_return, .init = hk_require_override, .timeout = 600.);

static size_t max_sz(size_t a, size_t b) { return a > b ? a : b; }

/* ---- 1 GiB peak, everything freed, trim --------------------------------------- */

#define PEAK_THREADS 4

typedef struct {
  int idx;
  size_t budget;     /* bytes to allocate */
  void **blocks;
  size_t n;
  pthread_barrier_t *bar;
  void **theirs;     /* the next thread's blocks, freed remotely by this one */
  size_t their_n;
} peak_job;

static uint64_t splitmix(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* Mostly small blocks, some medium, a few large: every layer holds memory. */
static size_t mixed_size(uint64_t *rng) {
  uint64_t r = splitmix(rng);
  unsigned k = (unsigned)(r % 100);
  if (k < 80) return 16 + (size_t)((r >> 8) % 1024);
  if (k < 98) return 1024 + (size_t)((r >> 8) % (64 * 1024));
  return 256 * 1024 + (size_t)((r >> 8) % (768 * 1024));
}

static void *peak_main(void *arg) {
  peak_job *j = arg;
  uint64_t rng = 1234 + (uint64_t)j->idx;
  size_t cap = j->budget / 256, got = 0;
  j->blocks = T_MALLOC(cap * sizeof(void *));
  if (j->blocks == NULL) return (void *)1;
  while (got < j->budget && j->n < cap) {
    size_t sz = mixed_size(&rng);
    unsigned char *p = T_MALLOC(sz);
    if (p == NULL) return (void *)2;
    memset(p, (int)(j->n & 0xff), sz); /* commit every page */
    j->blocks[j->n++] = p;
    got += sz;
  }
  pthread_barrier_wait(j->bar); /* the peak: every thread holds its share */
  pthread_barrier_wait(j->bar); /* main has handed out the remote halves */
  for (size_t i = 0; i < j->n / 2; i++) T_FREE(j->blocks[i]); /* local half */
  for (size_t i = 0; i < j->their_n; i++) T_FREE(j->theirs[i]); /* the next thread's half, remotely */
  pthread_barrier_wait(j->bar);
  return NULL;
}

Test(memory_return, rss_returns_after_1gib_multithreaded_peak_and_trim) {
  T_TRIM();
  size_t rss0 = hk_rss_bytes();
  hak_stats_t s0 = hk_stats();
  pthread_barrier_t bar;
  pthread_barrier_init(&bar, NULL, PEAK_THREADS + 1);
  peak_job jobs[PEAK_THREADS];
  pthread_t t[PEAK_THREADS];
#ifdef HK_SANITIZED
  const size_t total = 256 * HK_MIB; /* shadow memory quadruples the footprint */
#else
  const size_t total = 1024 * HK_MIB;
#endif
  for (int i = 0; i < PEAK_THREADS; i++) {
    jobs[i] = (peak_job){.idx = i, .budget = total / PEAK_THREADS, .bar = &bar};
    cr_assert(pthread_create(&t[i], NULL, peak_main, &jobs[i]) == 0);
  }
  pthread_barrier_wait(&bar);
  size_t rss_peak = hk_rss_bytes();
  for (int i = 0; i < PEAK_THREADS; i++) {
    peak_job *next = &jobs[(i + 1) % PEAK_THREADS];
    jobs[i].theirs = next->blocks + next->n / 2;
    jobs[i].their_n = next->n - next->n / 2;
  }
  pthread_barrier_wait(&bar);
  pthread_barrier_wait(&bar);
  for (int i = 0; i < PEAK_THREADS; i++) {
    void *rc = NULL;
    pthread_join(t[i], &rc);
    cr_assert(rc == NULL, "worker %d failed (%p)", i, rc);
    T_FREE(jobs[i].blocks);
  }
  pthread_barrier_destroy(&bar);
  T_TRIM();
  size_t rss1 = hk_rss_bytes();
  hak_stats_t s1 = hk_stats();
  cr_log_info("RSS: start %zu KiB, peak %zu KiB, after free-all and trim %zu KiB; mapped %zu -> %zu KiB (peak %zu KiB)",
              rss0 >> 10, rss_peak >> 10, rss1 >> 10, s0.mapped_bytes >> 10, s1.mapped_bytes >> 10,
              s1.peak_mapped_bytes >> 10);
  cr_assert(s1.peak_mapped_bytes >= total * 9 / 10, "the workload did not reach its peak (%zu MiB mapped)",
            s1.peak_mapped_bytes >> 20);
  size_t slack = max_sz(s0.mapped_bytes / 10, 4 * HK_MIB);
  cr_assert(s1.mapped_bytes <= s0.mapped_bytes + slack, "still mapped after trim: %zu KiB, started at %zu KiB",
            s1.mapped_bytes >> 10, s0.mapped_bytes >> 10);
#ifndef HK_SANITIZED
  size_t rslack = max_sz(rss0 / 10, 4 * HK_MIB);
  cr_assert(rss1 <= rss0 + rslack, "RSS after free-all and trim: %zu KiB, started at %zu KiB (peak %zu KiB)",
            rss1 >> 10, rss0 >> 10, rss_peak >> 10);
#endif
}

/* ---- thread churn ------------------------------------------------------------- */

#ifdef HK_TSAN
#define CHURN_THREADS 2000
#elif defined(HK_ASAN)
#define CHURN_THREADS 20000
#else
#define CHURN_THREADS 100000
#endif
#define CHURN_WAVE  8  /* threads alive at once */
#define CHURN_BLOCKS 48

/* Each thread frees the blocks the previous wave's thread in its lane left
 * in `mailbox` (remotely: their owner has exited, or is exiting), then
 * leaves its own there. */
static void *churn_mailbox[CHURN_WAVE][CHURN_BLOCKS];

static void *churn_main(void *arg) {
  uintptr_t lane = (uintptr_t)arg;
  uint64_t rng = lane * 7919 + 1;
  for (int i = 0; i < CHURN_BLOCKS; i++) {
    if (churn_mailbox[lane][i] != NULL) T_FREE(churn_mailbox[lane][i]);
    size_t sz = 16 + (size_t)(splitmix(&rng) % 2048);
    if (i == 0) sz = 300 * 1024; /* one large block per thread too */
    unsigned char *p = T_MALLOC(sz);
    if (p == NULL) return (void *)1;
    p[0] = p[sz - 1] = 0x5a;
    churn_mailbox[lane][i] = p;
  }
  return NULL;
}

Test(memory_return, thread_churn_keeps_rss_mapped_and_records_bounded, .timeout = 900.) {
  T_TRIM();
  hak_stats_t s0 = hk_stats();
  size_t rss0 = hk_rss_bytes(), rss_max = 0, mapped_max = 0;
  for (int n = 0; n < CHURN_THREADS; n += CHURN_WAVE) {
    pthread_t t[CHURN_WAVE];
    for (uintptr_t l = 0; l < CHURN_WAVE; l++) cr_assert(pthread_create(&t[l], NULL, churn_main, (void *)l) == 0);
    for (int l = 0; l < CHURN_WAVE; l++) {
      void *rc = NULL;
      pthread_join(t[l], &rc);
      cr_assert(rc == NULL, "churn thread failed");
    }
    if (n % 1024 == 0) {
      size_t r = hk_rss_bytes(), m = hk_stats().mapped_bytes;
      if (r > rss_max) rss_max = r;
      if (m > mapped_max) mapped_max = m;
    }
  }
  for (int l = 0; l < CHURN_WAVE; l++)
    for (int i = 0; i < CHURN_BLOCKS; i++) T_FREE(churn_mailbox[l][i]);
  T_TRIM();
  hak_stats_t s1 = hk_stats();
  size_t rss1 = hk_rss_bytes();
  cr_log_info("churn of %d threads: RSS %zu KiB -> max %zu KiB -> %zu KiB after trim; mapped %zu -> max %zu -> %zu KiB; "
              "epoch records %zu, heaps %zu (reused %zu), SuperSlabs mapped %zu, retired %zu, reused %zu, unmapped %zu",
              CHURN_THREADS, rss0 >> 10, rss_max >> 10, rss1 >> 10, s0.mapped_bytes >> 10, mapped_max >> 10,
              s1.mapped_bytes >> 10, s1.epoch_records, s1.heaps_created, s1.heaps_reused, s1.superslabs_mapped,
              s1.superslabs_retired, s1.superslabs_reused, s1.superslabs_unmapped);
  /* Records and heaps: bounded by the threads alive at once (a wave, main,
   * and whatever Criterion's runner holds), not by the threads started. */
  cr_assert(s1.epoch_records <= 64, "%zu epoch records after %d threads", s1.epoch_records, CHURN_THREADS);
  cr_assert(s1.heaps_created - s0.heaps_created <= 64, "%zu heaps created for %d threads",
            s1.heaps_created - s0.heaps_created, CHURN_THREADS);
  /* A wave holds at most 8 x (300 KiB + 48 x 2 KiB): the rest is fixed cost. */
  cr_assert(mapped_max <= s0.mapped_bytes + 96 * HK_MIB, "mapped grew to %zu MiB during the churn", mapped_max >> 20);
  cr_assert(s1.mapped_bytes <= s0.mapped_bytes + max_sz(s0.mapped_bytes / 10, 4 * HK_MIB),
            "mapped %zu KiB after the churn and trim, %zu KiB before", s1.mapped_bytes >> 10, s0.mapped_bytes >> 10);
#ifndef HK_SANITIZED
  cr_assert(rss_max <= rss0 + 64 * HK_MIB, "RSS grew to %zu MiB during the churn", rss_max >> 20);
  cr_assert(rss1 <= rss0 + max_sz(rss0 / 10, 4 * HK_MIB), "RSS %zu KiB after the churn and trim, %zu KiB before",
            rss1 >> 10, rss0 >> 10);
#endif
}

/* ---- heaps of exited threads --------------------------------------------------- */

#define HEAP_THREADS 40 /* alive at once: more than the pool keeps (16) */

static pthread_barrier_t heap_barrier;

static void *heap_thread(void *arg) {
  (void)arg;
  void *p = T_MALLOC(100); /* sets up this thread's heap */
  if (p == NULL) return (void *)1;
  pthread_barrier_wait(&heap_barrier); /* all heaps live at once: none is reused */
  T_FREE(p);
  return NULL;
}

Test(memory_return, heaps_of_exited_threads_are_retired_and_unmapped) {
  /* The process's first heap is mapped alone, and the batch of 64 comes
   * with its second thread (core/heap.c): one thread first, so that the
   * batch the 40 carve from is mapped before s0, as in any program that
   * has had a second thread. Its uncarved heaps stay reserved for later
   * threads: address space only, never touched. */
  pthread_t first;
  cr_assert(pthread_barrier_init(&heap_barrier, NULL, 1) == 0);
  cr_assert(pthread_create(&first, NULL, heap_thread, NULL) == 0);
  pthread_join(first, NULL);
  pthread_barrier_destroy(&heap_barrier);
  T_TRIM();
  hak_stats_t s0 = hk_stats();
  pthread_t t[HEAP_THREADS];
  cr_assert(pthread_barrier_init(&heap_barrier, NULL, HEAP_THREADS) == 0);
  for (int i = 0; i < HEAP_THREADS; i++) cr_assert(pthread_create(&t[i], NULL, heap_thread, NULL) == 0);
  for (int i = 0; i < HEAP_THREADS; i++) {
    void *rc = NULL;
    pthread_join(t[i], &rc);
    cr_assert(rc == NULL);
  }
  pthread_barrier_destroy(&heap_barrier);
  hak_stats_t s1 = hk_stats();
  T_TRIM(); /* grace periods pass; the pool's heaps are retired and unmapped too */
  hak_stats_t s2 = hk_stats();
  cr_log_info("%d threads: heaps created %zu, reused %zu; unmapped %zu before trim, %zu after; mapped %zu -> %zu KiB",
              HEAP_THREADS, s1.heaps_created - s0.heaps_created, s1.heaps_reused - s0.heaps_reused,
              s1.heaps_unmapped - s0.heaps_unmapped, s2.heaps_unmapped - s0.heaps_unmapped, s0.mapped_bytes >> 10,
              s2.mapped_bytes >> 10);
  cr_assert(s1.heaps_created + s1.heaps_reused - s0.heaps_created - s0.heaps_reused >= HEAP_THREADS,
            "each live thread has its own heap");
  /* Every dead thread's heap is gone: none is left pooled after the trim. */
  cr_assert(s2.heaps_unmapped - s0.heaps_unmapped >= HEAP_THREADS, "%zu of %d dead heaps unmapped",
            s2.heaps_unmapped - s0.heaps_unmapped, HEAP_THREADS);
  cr_assert(s2.mapped_bytes <= s0.mapped_bytes, "mapped %zu KiB after, %zu KiB before", s2.mapped_bytes >> 10,
            s0.mapped_bytes >> 10);
  /* The pool is empty: the next thread maps a fresh heap. */
  pthread_t one;
  cr_assert(pthread_barrier_init(&heap_barrier, NULL, 1) == 0);
  cr_assert(pthread_create(&one, NULL, heap_thread, NULL) == 0);
  pthread_join(one, NULL);
  pthread_barrier_destroy(&heap_barrier);
  cr_assert(hk_stats().heaps_reused == s2.heaps_reused, "a heap was reused after the pool was released");
}

/* ---- remote frees racing the owner's exit and retirement ---------------------- */

#define RACE_SENDERS 3
#define RACE_BLOCKS  6000 /* of 256 B: about 1.5 MiB, most of a SuperSlab */
#ifdef HK_SANITIZED
#define RACE_ROUNDS 60
#else
#define RACE_ROUNDS 400
#endif

typedef struct {
  void *blocks[RACE_BLOCKS];
  _Atomic int go;
  _Atomic int taken[RACE_SENDERS];
} race_round;

typedef struct {
  race_round *r;
  int idx;
} race_sender;

static void *race_owner(void *arg) {
  race_round *r = arg;
  for (int i = 0; i < RACE_BLOCKS; i++) {
    unsigned char *p = T_MALLOC(256);
    if (p == NULL) return (void *)1;
    memset(p, 0x33, 256);
    r->blocks[i] = p;
  }
  atomic_store_explicit(&r->go, 1, memory_order_release);
  /* Free our own share while the senders free theirs, then exit at once:
   * the teardown retires what is empty and abandons the rest while remote
   * chains are still landing. */
  for (int i = 0; i < RACE_BLOCKS; i += RACE_SENDERS + 1) T_FREE(r->blocks[i]);
  return NULL;
}

static void *race_send(void *arg) {
  race_sender *s = arg;
  race_round *r = s->r;
  while (!atomic_load_explicit(&r->go, memory_order_acquire)) sched_yield();
  for (int i = 0; i < RACE_BLOCKS; i++) {
    if (i % (RACE_SENDERS + 1) != s->idx + 1) continue;
    unsigned char *p = r->blocks[i];
    if (p[0] != 0x33 || p[255] != 0x33) return (void *)1; /* corrupted while live */
    T_FREE(p);
  }
  hak_thread_flush();
  return NULL;
}

Test(memory_return, remote_frees_race_owner_exit_and_retirement) {
  T_TRIM();
  hak_stats_t s0 = hk_stats();
  race_round *r = T_MALLOC(sizeof *r);
  cr_assert(r != NULL);
  for (int round = 0; round < RACE_ROUNDS; round++) {
    memset(r, 0, sizeof *r);
    pthread_t owner, send[RACE_SENDERS];
    race_sender ss[RACE_SENDERS];
    cr_assert(pthread_create(&owner, NULL, race_owner, r) == 0);
    for (int i = 0; i < RACE_SENDERS; i++) {
      ss[i] = (race_sender){.r = r, .idx = i};
      cr_assert(pthread_create(&send[i], NULL, race_send, &ss[i]) == 0);
    }
    void *rc = NULL;
    pthread_join(owner, &rc);
    cr_assert(rc == NULL, "round %d: the owner failed", round);
    for (int i = 0; i < RACE_SENDERS; i++) {
      pthread_join(send[i], &rc);
      cr_assert(rc == NULL, "round %d: sender %d saw a corrupted live block", round, i);
    }
    if (round % 16 == 0) T_TRIM(); /* reclaim and unmap while later rounds run on */
  }
  T_FREE(r);
  T_TRIM();
  hak_stats_t s1 = hk_stats();
  cr_log_info("race: %zu SuperSlabs retired, %zu unmapped, %zu abandoned, %zu adopted; mapped %zu -> %zu KiB",
              s1.superslabs_retired - s0.superslabs_retired, s1.superslabs_unmapped - s0.superslabs_unmapped,
              s1.superslabs_abandoned - s0.superslabs_abandoned, s1.superslabs_adopted - s0.superslabs_adopted,
              s0.mapped_bytes >> 10, s1.mapped_bytes >> 10);
  cr_assert(s1.superslabs_retired > s0.superslabs_retired, "nothing was retired");
  /* Nothing lost: a block stranded in a queue would keep its SuperSlab
   * from ever being empty, hence mapped. */
  cr_assert(s1.mapped_bytes <= s0.mapped_bytes + 4 * HK_MIB, "mapped %zu KiB after the rounds, %zu KiB before",
            s1.mapped_bytes >> 10, s0.mapped_bytes >> 10);
}

/* ---- an idle owner's empty slabs ----------------------------------------------- */

#define IDLE_BYTES (24 * HK_MIB)
#define IDLE_BLOCK 1000

static pthread_mutex_t idle_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t idle_cv = PTHREAD_COND_INITIALIZER;
static int idle_phase; /* 1: the owner freed everything and waits; 2: it may exit */

static void *idle_owner(void *arg) {
  (void)arg;
  enum { N = IDLE_BYTES / IDLE_BLOCK };
  void **b = T_MALLOC(N * sizeof *b);
  if (b == NULL) return (void *)1;
  for (int i = 0; i < N; i++) {
    b[i] = T_MALLOC(IDLE_BLOCK);
    if (b[i] == NULL) return (void *)1;
    memset(b[i], 7, IDLE_BLOCK);
  }
  for (int i = 0; i < N; i++) T_FREE(b[i]); /* local frees: its slabs go UNUSED, dirty */
  T_FREE(b);
  pthread_mutex_lock(&idle_mu);
  idle_phase = 1;
  pthread_cond_broadcast(&idle_cv);
  while (idle_phase != 2) pthread_cond_wait(&idle_cv, &idle_mu); /* idle: no malloc, no free */
  pthread_mutex_unlock(&idle_mu);
  return NULL;
}

Test(memory_return, an_idle_threads_empty_slabs_are_decommitted_by_others) {
  T_TRIM();
  pthread_t t;
  idle_phase = 0;
  cr_assert(pthread_create(&t, NULL, idle_owner, NULL) == 0);
  pthread_mutex_lock(&idle_mu);
  while (idle_phase != 1) pthread_cond_wait(&idle_cv, &idle_mu);
  pthread_mutex_unlock(&idle_mu);
  hak_stats_t s0 = hk_stats();
  size_t rss_idle = hk_rss_bytes();
  /* The owner never runs its allocator again. Past twice the delay, this
   * thread's own slow paths (one per iteration here) purge its slabs. */
  usleep(700 * 1000);
  size_t purged = 0;
  for (int round = 0; round < 100 && purged < 300; round++) {
    for (int i = 0; i < 2000; i++) T_FREE(T_MALLOC(4096));
    purged = hk_stats().slabs_purged_by_others - s0.slabs_purged_by_others;
    if (purged < 300) usleep(50 * 1000);
  }
  size_t rss_after = hk_rss_bytes();
  cr_log_info("idle owner: %zu slabs purged by another thread; RSS %zu KiB while idle, %zu KiB after", purged,
              rss_idle >> 10, rss_after >> 10);
  /* 24 MiB of 1000-byte blocks is 384 slabs of 64 KiB; allow for some the
   * owner kept current (never released) and a few partly used. */
  cr_assert(purged >= 300, "only %zu of the idle thread's slabs were decommitted", purged);
#ifndef HK_SANITIZED
  cr_assert(rss_after + 16 * HK_MIB <= rss_idle, "RSS %zu KiB after the purge, %zu KiB while idle", rss_after >> 10,
            rss_idle >> 10);
#endif
  pthread_mutex_lock(&idle_mu);
  idle_phase = 2;
  pthread_cond_broadcast(&idle_cv);
  pthread_mutex_unlock(&idle_mu);
  pthread_join(t, NULL);
}

/* ---- empty slabs of a live SuperSlab ------------------------------------------ */

#ifndef HK_SANITIZED
Test(memory_return, empty_slabs_are_decommitted_after_the_delay) {
  /* One live block keeps its SuperSlab; 1.8 MiB of 1 KiB blocks around it
   * (28 of its 32 slabs) come and go. After the delay (default 250 ms) and
   * one slow-path pass, their pages are gone from RSS without any trim.
   * Some stay: the thread cache's blocks, the current slab, the 4 KiB
   * class's slab, about 400 KiB in all; 1.5 MiB of blocks left CI with
   * 1020 KiB of margin against the 1 MiB asked, so the test frees more. */
  T_TRIM();
  void *keep = T_MALLOC(1000);
  enum { N = 1800 };
  static void *b[N];
  for (int i = 0; i < N; i++) {
    b[i] = T_MALLOC(1000);
    cr_assert(b[i] != NULL);
    memset(b[i], 1, 1000);
  }
  size_t rss_full = hk_rss_bytes();
  for (int i = 0; i < N; i++) T_FREE(b[i]);
  usleep(400 * 1000);
  /* Slow paths of another class: each refill ticks the owner's purge timer. */
  for (int i = 0; i < 20000; i++) T_FREE(T_MALLOC(4096));
  size_t rss_after = hk_rss_bytes();
  cr_log_info("RSS with 1.8 MiB of blocks %zu KiB, after freeing them and the delay %zu KiB", rss_full >> 10,
              rss_after >> 10);
  cr_assert(rss_after + HK_MIB <= rss_full, "RSS %zu KiB after the delay, %zu KiB with the blocks live",
            rss_after >> 10, rss_full >> 10);
  T_FREE(keep);
}
#endif

Test(memory_return, freed_large_blocks_are_cached_decommitted_and_trimmed) {
  enum { N = 8 };
  size_t sz = HK_MIB; /* one 2 MiB chunk each */
  T_TRIM();
  size_t mapped0 = hk_stats().mapped_bytes;
  void *b[N];
  for (int i = 0; i < N; i++) {
    b[i] = T_MALLOC(sz);
    cr_assert(b[i] != NULL);
    memset(b[i], 1, sz);
  }
  size_t rss_full = hk_rss_bytes();
  for (int i = 0; i < N; i++) T_FREE(b[i]);
  size_t mapped_cached = hk_stats().mapped_bytes;
  cr_assert(mapped_cached >= mapped0 + N * sz, "freed large mappings were not kept: mapped %zu KiB, %zu KiB before",
            mapped_cached >> 10, mapped0 >> 10);
  /* Reused: allocating them again maps nothing new. */
  for (int i = 0; i < N; i++) b[i] = T_MALLOC(sz);
  cr_assert(hk_stats().mapped_bytes <= mapped_cached, "a cached mapping was not reused");
  for (int i = 0; i < N; i++) T_FREE(b[i]);
  usleep(400 * 1000);
  T_FREE(T_MALLOC(sz)); /* a large call runs the cache's timer */
#ifndef HK_SANITIZED
  size_t rss_after = hk_rss_bytes();
  cr_log_info("RSS with %d MiB of large blocks %zu KiB, after freeing them and the delay %zu KiB", N, rss_full >> 10,
              rss_after >> 10);
  cr_assert(rss_after + (N - 2) * sz <= rss_full, "cached large mappings kept their pages: RSS %zu KiB, %zu KiB live",
            rss_after >> 10, rss_full >> 10);
#else
  (void)rss_full;
#endif
  T_TRIM();
  size_t mapped1 = hk_stats().mapped_bytes;
  cr_assert(mapped1 + N * sz <= mapped_cached, "trim left the cached large mappings mapped: %zu KiB, %zu KiB cached",
            mapped1 >> 10, mapped_cached >> 10);
}
