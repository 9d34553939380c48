/* prof.h -- the sampling heap profiler (HAKMEM_PROF=1, docs/PROFILING.md):
 * which allocations are sampled (sample.c), their call stacks (capture.c),
 * the side table that holds the live samples (table.c) and the dumps
 * (dump.c). Nothing here is on a fast path: small classes are sampled from
 * the malloc slow path through their thread cache's ticker, large blocks on
 * the large path, and a sampled block is a large block whose header says so,
 * so its free reaches the profiler through hk_large_free. Off (the default),
 * the slow paths pay one relaxed load. The hardened build has no profiler
 * (a sampled block's room would not be its class's, which the canary
 * follows). */
#ifndef HK_PROF_H
#define HK_PROF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <execinfo.h>

#include "hk_types.h"

/* Set once, by the start-up constructor when HAKMEM_PROF=1 and the table
 * could be mapped (hk_prof_start); never cleared. */
extern _Atomic bool hk_prof_enabled;

HK_INLINE bool hk_prof_on(void) {
#ifdef HK_HARDENED
  return false;
#else
  return hk_load_acquire(&hk_prof_enabled); /* pairs with hk_prof_start's release: the table is mapped */
#endif
}

/* ---- sample.c: the sampling decision ------------------------------------ */

/* Start-up (api/thread.c's constructor, after the options): with
 * HAKMEM_PROF=1, map the table, warm the stack walker, install the dump
 * signal and the fork handlers, then turn sampling on. */
void hk_prof_start(void);
/* The malloc slow path of class cls found its cache empty with `left` pops
 * of the ticker's window to come; the ticker has just restarted. Sets the
 * class's next window (the allocation now being served counts as its
 * first). */
void hk_prof_miss(hk_heap *h, unsigned cls, uint32_t left);
/* The same slow path has refilled cur[cls]'s `free` list (the allocation
 * still to be served): its blocks charged to the class's countdown, or
 * primed into the cache when the sample falls among them. */
void hk_prof_refilled(hk_heap *h, unsigned cls);
/* The ticker of class cls ran out (and has just restarted): this
 * allocation, the sampled block when it is the class's sample, else the
 * cache's pop (NULL only when that fails). Sets the class's next window
 * either way. malloc's slow path tail-calls it, so that its frame is the
 * only one of ours the stack walk meets. */
void *hk_prof_tick(hk_heap *h, unsigned cls);
/* The large path (api.c): hk_large_alloc / hk_large_calloc, sampled by a
 * per-thread byte countdown while profiling. */
void *hk_prof_large_alloc(size_t size, size_t align);
void *hk_prof_large_calloc(size_t size);
/* An aligned allocation of class size `size` got p, a sampled block not
 * aligned to `align` (> 64): the same sample in a block that is. */
void *hk_prof_realign(void *p, size_t size, size_t align);
/* Mean bytes between samples (HAKMEM_PROF_SAMPLE) and the estimated number
 * of allocations of `size` bytes one sample stands for: 1 / (1 -
 * exp(-size / rate)), the inverse of its inclusion probability. */
double hk_prof_weight(size_t size);
/* ln x for x > 0 (normal), without libm: the draws' exponentials. */
double hk_prof_ln(double x);
size_t hk_prof_rate(void);

/* ---- capture.c: call stacks ----------------------------------------------- */

/* Find HAKMEM's own code (its frames are left out of stacks) and call
 * backtrace() once, so that its first call, which loads libgcc_s and
 * allocates, happens here at start-up and not inside malloc. */
void hk_prof_capture_init(void);
/* HAKMEM's text (0, 0 in a static link): its frames are left out. */
extern uintptr_t hk_prof_self_lo, hk_prof_self_hi;

/* libgcc's _Unwind_Backtrace, found at start-up (NULL: use backtrace()). */
extern int (*hk_prof_unwind)(int (*)(void *, void *), void *);
/* Return-address slots a learned stack checks (capture.c's stack cache):
 * walks through more frames than this are not learned. */
#define HK_PROF_STK_SLOTS 24
/* One walk: the frames so far, and how it ended (capture.c). */
typedef struct hk_prof_walk {
  uintptr_t *frames;
  unsigned max, depth;
  bool ours_done; /* past HAKMEM's leading frames */
  bool cut;       /* stopped at a known outermost run of frames (capture.c) */
  bool full;      /* stopped at max */
  /* For the stack cache: the sampling function's CFA (0: learn nothing),
   * and every frame the unwinder visited, ours included: its return
   * address and its CFA. */
  uintptr_t cfa0;
  unsigned raw_n;
  uintptr_t raw_ip[HK_PROF_STK_SLOTS + 1], raw_cfa[HK_PROF_STK_SLOTS + 1];
  /* Set when the stack cache kept this walk: its entry's stack number
   * (hk_prof_stack_hit). */
  uint32_t *stack_no;
} hk_prof_walk;
int hk_prof_walk_frame(void *ctx, void *arg);
void hk_prof_walk_end(hk_prof_walk *w, int rc);
/* The stack cache (capture.c): the frames of a stack this thread walked
 * before from the same CFA, if every return-address slot of that walk
 * still holds what it held; 0 on a miss. On a hit, *stack_no is where the
 * cache keeps that stack's number in the side table, plus 1 (0: not known
 * yet), for hk_prof_record to read or fill. */
unsigned hk_prof_stack_hit(uintptr_t cfa, uintptr_t *frames, unsigned max, uint32_t **stack_no);
/* Thread exit: the thread's stack cache is unmapped, and none is made again. */
void hk_prof_thread_exit(void);
/* Samples this thread took from its stack cache (tests). */
uint64_t hk_prof_stack_hits(void);

/* The caller's stack, innermost first, HAKMEM's frames left out: return
 * addresses into frames[0..max); returns how many (at least 1 when any).
 * Inline, so that its caller's frame is the only one of ours the unwinder
 * walks: the walk costs about a thousand instructions a frame, most of a
 * sample's cost, and the sampling paths reach here by tail calls
 * (malloc_slow.c) so that no other frame of ours is left on the stack; the
 * walk stops at the learned start frames, and a stack walked before from
 * the same place is checked, not walked (capture.c's stack cache).
 * *stack_no: NULL, or the cache's slot for the stack's number in the side
 * table (hk_prof_stack_hit), which spares hk_prof_record the stack's hash
 * and lookup. */
HK_INLINE unsigned hk_prof_capture(uintptr_t *frames, unsigned max, uint32_t **stack_no) {
  *stack_no = NULL;
  if (HK_LIKELY(hk_prof_unwind != NULL)) {
    /* The CFA of the function this is inlined into: the unwinder's first
     * frame, which keys the stack cache. */
    uintptr_t cfa = (uintptr_t)__builtin_dwarf_cfa();
    unsigned d = hk_prof_stack_hit(cfa, frames, max, stack_no);
    if (d != 0) return d;
    hk_prof_walk w = {.frames = frames, .max = max, .cfa0 = cfa};
    hk_prof_walk_end(&w, hk_prof_unwind(hk_prof_walk_frame, &w));
    *stack_no = w.stack_no;
    return w.depth;
  }
  void *raw[HK_PROF_FRAMES + 8];
  int n = backtrace(raw, HK_PROF_FRAMES + 8);
  int i = 0;
  while (i < n && (uintptr_t)raw[i] >= hk_prof_self_lo && (uintptr_t)raw[i] < hk_prof_self_hi) i++;
  unsigned d = 0;
  for (; i < n && d < max; i++) frames[d++] = (uintptr_t)raw[i];
  return d;
}

/* ---- table.c: the side table ---------------------------------------------- */

/* One distinct stack and what its samples stand for. The est_ figures are
 * sums of the samples' weights (hk_prof_weight) and of weight * size: live
 * ones go down again when a sample is freed, total ones never do. */
typedef struct hk_prof_stack {
  uint64_t hash;
  uint32_t frames;      /* offset of its first frame in the frame pool */
  uint32_t depth;
  uint64_t live;        /* live samples */
  double est_live_count, est_live_bytes;
  double est_total_count, est_total_bytes;
} hk_prof_stack;

/* Map the table (hk_os_map; never malloc). False when it cannot be. */
bool hk_prof_table_init(void);
/* Record p (size bytes, standing for weight = hk_prof_weight(size)
 * allocations) with its stack; false when the table is full (the sample is
 * dropped). stack_no (NULL: none): the stack cache's slot for the stack's
 * number plus 1, read when filled, filled when 0 (hk_prof_capture). */
bool hk_prof_record(void *p, size_t size, double weight, const uintptr_t *frames, unsigned depth,
                    uint32_t *stack_no);
/* The free hook (large/large.c): the sample at p is gone. */
void hk_prof_forget(void *p);
/* The move hook (large/large.c, and hk_prof_realign): the sample at `from`
 * is now at `to`. */
void hk_prof_moved(void *from, void *to);
/* The table's lock: a test-and-set lock (sampling is rare). hk_prof_unlock
 * performs a dump a signal asked for while the lock was held. */
void hk_prof_lock(void);
void hk_prof_unlock(void);
/* The lock if it is free now; false without waiting otherwise. */
bool hk_prof_trylock(void);
/* From a signal handler: a dump now if the lock is free, else when its
 * holder releases it. Async-signal-safe. */
void hk_prof_request_dump(void);
/* Lock held: the stacks, 0 <= i < hk_prof_stack_count(); a stack's frames. */
size_t hk_prof_stack_count(void);
hk_prof_stack *hk_prof_stack_at(size_t i);
const uintptr_t *hk_prof_frames_of(const hk_prof_stack *s);
/* For the statistics: the table's mapped bytes (its bound), live samples,
 * distinct stacks, and samples dropped because the table was full. */
void hk_prof_table_stats(size_t *bytes, size_t *samples, size_t *stacks, size_t *dropped);
/* fork: the child's table is consistent and its own (pthread_atfork). */
void hk_prof_fork_prepare(void);
void hk_prof_fork_parent(void);
void hk_prof_fork_child(void);

/* ---- dump.c: the formats ---------------------------------------------------- */

/* Lock held: write the dump a signal asked for (HAKMEM_PROF_SIGNAL_PATH). */
void hk_prof_dump_pending(void);
/* Start-up: the handler of HAKMEM_PROF_SIGNAL, if set. */
void hk_prof_signal_install(void);
/* At exit (HAKMEM_PROF_DUMP_AT_EXIT, HAKMEM_PROF_LEAKS, HAKMEM_PROF_TOP). */
void hk_prof_at_exit(void);
/* The pid profiling started in: a fork child's at-exit dump goes elsewhere. */
void hk_prof_note_start_pid(void);

#endif /* HK_PROF_H */
