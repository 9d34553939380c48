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
