/* test_prof_capture.c -- the profiler's stack walk (prof/capture.c), through
 * the internal headers, linked from libhakmem.a (libc stays a shared
 * object): a walk that stops at a learned outermost run of libc frames
 * (the thread's or the program's start) must record exactly the frames a
 * full walk records, in the main thread and in another one. */
#include <pthread.h>
#include <string.h>

#include "hk_test.h"
#include "prof/prof.h"

TestSuite(prof_capture, .timeout = 60.);

typedef struct walk_result {
  uintptr_t frames[8][HK_PROF_FRAMES];
  unsigned depth[8];
  bool cut[8];
} walk_result;

/* The same call site every time, so every walk has the same stack. */
static __attribute__((noinline)) void walk_here(walk_result *r, int i) {
  hk_prof_walk w = {.frames = r->frames[i], .max = HK_PROF_FRAMES};
  hk_prof_walk_end(&w, hk_prof_unwind(hk_prof_walk_frame, &w));
  r->depth[i] = w.depth;
  r->cut[i] = w.cut;
  __asm__ volatile("" ::: "memory"); /* not a tail call */
}

static void *walk_eight(void *arg) {
  walk_result *r = arg;
  /* One call site: an unrolled loop would give each walk its own. */
#if defined(__clang__)
#pragma clang loop unroll(disable)
#else
#pragma GCC unroll 1
#endif
  for (int i = 0; i < 8; i++) walk_here(r, i);
  return NULL;
}

static void check(const walk_result *r, const char *where) {
  int cuts = 0;
  for (int i = 0; i < 8; i++) {
    cr_assert(r->depth[i] == r->depth[0] && r->depth[0] >= 2, "%s: walk %d has %u frames, walk 0 %u", where, i,
              r->depth[i], r->depth[0]);
    cr_assert(memcmp(r->frames[i], r->frames[0], r->depth[0] * sizeof(uintptr_t)) == 0,
              "%s: walk %d (%s) recorded other frames than walk 0", where, i, r->cut[i] ? "cut short" : "full");
    cuts += r->cut[i];
  }
  cr_log_info("%s: 8 walks of %u frames, %d of them cut at the learned start", where, r->depth[0], cuts);
  cr_assert(cuts >= 6, "%s: only %d of 8 walks stopped at the learned run (two full walks trust it)", where, cuts);
}

Test(prof_capture, walks_cut_at_the_start_frames_record_what_full_walks_do) {
  hk_prof_capture_init();
  if (hk_prof_unwind == NULL) cr_skip("libgcc_s's _Unwind_Backtrace was not found: backtrace() is used");
  static walk_result main_walks, thread_walks;
  walk_eight(&main_walks);
  check(&main_walks, "main thread");
  pthread_t t;
  cr_assert(pthread_create(&t, NULL, walk_eight, &thread_walks) == 0);
  cr_assert(pthread_join(t, NULL) == 0);
  check(&thread_walks, "second thread");
}

/* ---- the stack cache ------------------------------------------------------- */

typedef struct cache_result {
  uintptr_t cached[16][HK_PROF_FRAMES], full[16][HK_PROF_FRAMES];
  unsigned cached_depth[16], full_depth[16];
  uint64_t hits;
} cache_result;

/* One sample's capture (the stack cache first) and a full walk from the
 * same frame: both record this function's frame first (a static link: no
 * frame is left out), at two call sites, then the same callers. */
static __attribute__((noinline)) void capture_here(cache_result *r, int i) {
  uint32_t *stack_no;
  r->cached_depth[i] = hk_prof_capture(r->cached[i], HK_PROF_FRAMES, &stack_no);
  hk_prof_walk w = {.frames = r->full[i], .max = HK_PROF_FRAMES};
  hk_prof_walk_end(&w, hk_prof_unwind(hk_prof_walk_frame, &w));
  r->full_depth[i] = w.depth;
  __asm__ volatile("" ::: "memory"); /* not a tail call */
}

/* Two callers of the same shape: capture_here's frame sits at the same
 * place under either, so the cache's key is the same and only the return
 * address in the slot above it tells the stacks apart. */
static __attribute__((noinline)) void via_a(cache_result *r, int i) {
  capture_here(r, i);
  __asm__ volatile("" ::: "memory");
}
static __attribute__((noinline)) void via_b(cache_result *r, int i) {
  capture_here(r, i);
  __asm__ volatile("" ::: "memory");
}

static void *capture_sixteen(void *arg) {
  cache_result *r = arg;
  uint64_t before = hk_prof_stack_hits();
#if defined(__clang__)
#pragma clang loop unroll(disable)
#else
#pragma GCC unroll 1
#endif
  for (int i = 0; i < 16; i++) (i % 4 < 2 ? via_a : via_b)(r, i);
  r->hits = hk_prof_stack_hits() - before;
  return NULL;
}

static void check_cache(const cache_result *r, const char *where) {
  for (int i = 0; i < 16; i++) {
    cr_assert(r->cached_depth[i] == r->full_depth[i] && r->full_depth[i] >= 3, "%s: capture %d has %u frames, its full walk %u",
              where, i, r->cached_depth[i], r->full_depth[i]);
    /* Frame 0 is capture_here itself, at its two call sites; from its caller on they must agree. */
    cr_assert(memcmp(r->cached[i] + 1, r->full[i] + 1, (r->full_depth[i] - 1) * sizeof(uintptr_t)) == 0,
              "%s: capture %d (via %s) recorded other callers than a full walk", where, i, i % 4 < 2 ? "a" : "b");
  }
  /* via_a and via_b each call capture_here from one site: their frames differ. */
  cr_assert(r->full[0][1] != r->full[2][1], "%s: the two callers' return addresses are the same", where);
  cr_log_info("%s: %llu of 16 captures from the stack cache", where, (unsigned long long)r->hits);
  /* Every switch of caller misses once (the key is the same, the slot is not): 16 captures in runs of 2. */
  cr_assert(r->hits >= 6, "%s: only %llu of 16 captures came from the stack cache", where, (unsigned long long)r->hits);
}

Test(prof_capture, the_stack_cache_returns_what_a_full_walk_does_and_tells_callers_apart) {
  hk_prof_capture_init();
  if (hk_prof_unwind == NULL) cr_skip("libgcc_s's _Unwind_Backtrace was not found: backtrace() is used");
  static cache_result main_r, thread_r;
  capture_sixteen(&main_r);
  check_cache(&main_r, "main thread");
  pthread_t t;
  cr_assert(pthread_create(&t, NULL, capture_sixteen, &thread_r) == 0);
  cr_assert(pthread_join(t, NULL) == 0);
  check_cache(&thread_r, "second thread");
}
