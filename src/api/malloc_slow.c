/* malloc_slow.c -- the allocation slow path: everything the fast path left
 * out, in the order that reuses memory before mapping more. */
#include <errno.h>

#include "api/thread.h"
#include "core/heap.h"
#include "core/sizeclass.h"
#include "large/large.h"
#include "prof/prof.h"
#include "remote/abandon.h"
#include "remote/remote.h"
#include "util/diag.h"

static hk_slab *hk_refill_with_superslab(hk_heap *h, unsigned cls) {
  hk_slab *s = hk_adopt_for(h, cls);
  if (s != NULL) return s;
  hk_superslab *ss = hk_superslab_create(hk_class_kind(cls), h);
  if (ss == NULL) return NULL;
  hk_heap_add_superslab(h, ss);
  return hk_heap_refill(h, cls);
}

/* The head of the current slab's free list lacks its key: it was freed
 * twice (its first turn on the list handed it out and cleared the key) or
 * written after it was freed. Its link can no longer be trusted, so the rest
 * of the list is dropped (those blocks stay unreachable until the slab is
 * reset: a leak, never a block handed out twice), and the block is counted
 * as out again: its second free took one too many off `used`. */
static HK_NOINLINE void hk_free_list_corrupt(hk_slab *s) {
  hk_block *b = s->free;
  HK_HARDENED_CORRUPT(b);
  s->free = NULL;
  s->used++;
  hk_bad_free(b, "block already free (freed twice, or written after free; found when it was to be handed out again)", 1);
}

/* The same for the thread cache's head: it lacks the cache key. The cached
 * blocks count as used in their slabs, so dropping the list only leaks. */
static HK_NOINLINE void hk_tc_corrupt(hk_heap *h, unsigned cls) {
  hk_tcache *t = &h->tc[cls];
  hk_block *b = t->head;
  HK_HARDENED_CORRUPT(b);
  t->head = NULL;
  h->stats.cls[cls].dropped += h->tc_cap[cls] - t->room;
  t->room = h->tc_cap[cls];
  hk_bad_free(b, "block already free (freed twice, or written after free; found when it was to be handed out again)", 1);
}

/* The periodic work of a slow path, for every path into it: the outbox,
 * remote frees, the maintenance clock, and one class's cache trimmed, so a
 * thread whose mallocs all miss its caches still shrinks the idle ones.
 * True when the profiler takes this slow path. While it is on, every
 * heap's tick carries HK_TICK_PROF (hk_heap_ticks_for_profiler), so every
 * slow path enters the branch below, and what tells the profiler's turn
 * from maintenance is tested inside it, where the ordinary slow path goes
 * once per HK_MAINTAIN_TICKS: the ordinary slow path carries no profiler
 * instruction here (the `false` it returns folds into its callers'
 * branches), and one compare before it (hk_slow_tick_or_turn). */
HK_INLINE bool hk_slow_tick(hk_heap *h) {
  hk_heap_tc_gc(h);
  hk_outbox_flush_due(h);
  hk_remote_collect(h);
  if (HK_UNLIKELY(++h->tick >= HK_MAINTAIN_TICKS)) {
    bool profiling = h->tick >= HK_TICK_PROF;
    if (!profiling || h->tick - HK_TICK_PROF >= HK_MAINTAIN_TICKS) { /* decommit, reclaim */
      hk_heap_maintain(h);
      hk_large_cache_purge(false); /* so cached large mappings lose their pages without large calls */
    }
    return profiling;
  }
  return false;
}

/* The slow tick, or while profiling only the profiler's turn when the
 * profiler caused this slow path. Two kinds come from it (prof/sample.c):
 * ticker windows that end early, at a class's sample (32 pops on average
 * for 16 KiB blocks, where the ordinary window is HK_TC_TICK = 256), and
 * the miss that follows a slab list set aside so that the sample lands on
 * a counted pop (core/heap.c hk_heap_list_set_aside). The periodic work at
 * each of them made the owner collect more often in smaller batches and
 * trim its caches more often: 2 threads trading 16-32768 B blocks ran at
 * 0.69 of profiling off. So a window's end runs it only once the windows
 * set since it last ran hold HK_TC_TICK pops (prof_credit: 0.79), and the
 * miss of a class whose list was set aside runs none (prof_aside: 0.83;
 * one producer-consumer pair, 1-32 KiB, 0.77 -> 0.87): its refill takes
 * that list back from the slab's local_free and maps nothing, so pending
 * remote frees can wait for the next slow path. The ticks, and so the
 * outbox's cadence, the collects, the cache trims and maintenance, come as
 * often as without the profiler. `ticker` (a constant): a ticker ran out
 * with blocks in the cache; else a miss of class cls. The ordinary slow
 * path pays one compare, outside hk_slow_tick's branch (callgrind: 24.44
 * instructions per malloc at ws=256, as before; folded into the branch it
 * cost more, 24.47, since the maintenance test then had to come before the
 * work). */
_Static_assert(HK_NCLASSES <= 64, "prof_aside has a bit per class");
HK_INLINE bool hk_slow_tick_or_turn(hk_heap *h, bool ticker, unsigned cls) {
  if (HK_UNLIKELY(h->tick >= HK_TICK_PROF)) {
    if (ticker) {
      if (h->prof_credit < HK_TC_TICK) return true;
      h->prof_credit -= HK_TC_TICK;
    } else if (h->prof_aside >> cls & 1) {
      h->prof_aside &= ~((uint64_t)1 << cls);
      return true;
    }
  }
  return hk_slow_tick(h);
}

/* A cache miss's refill, once the thread is set up and its slow tick done.
 * With `profiling` (a constant: hk_malloc_miss_prof below is the profiling
 * copy, so the ordinary slow path carries no profiler code) the profiler
 * counts the slab blocks the fast path will pop, or primes them into the
 * cache (prof/sample.c says why). */
HK_INLINE void *hk_malloc_refill(hk_heap *h, unsigned cls, bool profiling) {
  hk_slab *s = h->cur[cls];
  if (HK_LIKELY(s->local_free != NULL)) { /* the common refill: take back our own frees */
    s->free = s->local_free;
    s->local_free = NULL;
    if (profiling) hk_prof_refilled(h, cls);
    return hk_heap_malloc(h, cls);
  }
  s = hk_heap_refill(h, cls);
  if (s == NULL) s = hk_refill_with_superslab(h, cls);
  if (HK_UNLIKELY(s == NULL)) {
    hk_trace_failure(hk_class_size[cls], "pool exhaustion: no SuperSlab could be mapped");
    errno = ENOMEM;
    return NULL;
  }
  if (profiling) hk_prof_refilled(h, cls);
  return hk_heap_malloc(h, cls); /* s is cur[cls] with a free block now */
}

/* The restart of class cls's ticker that every slow path of the class
 * makes, settling the hits it counted (at least 1 left: only a pop runs it
 * out); what was left. */
HK_INLINE uint32_t hk_ticker_restart(hk_heap *h, unsigned cls) {
  uint32_t left = h->tc[cls].ticker;
  h->stats.cls[cls].pops += HK_TC_TICK - left;
  h->tc[cls].ticker = HK_TC_TICK;
  return left;
}

/* The profiler's miss: it counts as the cache pop it replaces. */
static HK_NOINLINE void *hk_malloc_miss_prof(hk_heap *h, unsigned cls) {
  hk_prof_miss(h, cls, hk_ticker_restart(h, cls));
  return hk_malloc_refill(h, cls, true);
}

HK_NOINLINE void *hk_malloc_slow_x16(hk_heap *h, unsigned cls_x16) { return hk_malloc_slow(h, cls_x16 / 16); }

HK_NOINLINE void *hk_malloc_slow(hk_heap *h, unsigned cls) {
  hk_tcache *t = &h->tc[cls];
  if (HK_UNLIKELY(t->head != NULL)) { /* the ticker ran out, or the head lacks its key */
    if (!hk_block_keyed(t->head, hk_heap_secret(h), HK_TC_KEY_SALT)) {
      hk_tc_corrupt(h, cls);
    } else {
      /* The ticker ran out: HK_TC_TICK - 1 hits, and the pop that ran it
       * out, which comes back through the fast path after the restart. */
      h->stats.cls[cls].pops += HK_TC_TICK - 1;
      t->ticker = HK_TC_TICK;
      if (HK_UNLIKELY(hk_slow_tick_or_turn(h, true, cls))) return hk_prof_tick(h, cls); /* a tail call: see prof.h */
    }
    return hk_heap_malloc(h, cls);
  }
  if (HK_UNLIKELY(h->cur[cls]->free != NULL)) hk_free_list_corrupt(h->cur[cls]);
  if (HK_UNLIKELY(!h->live)) {
    h = hk_thread_init();
    if (h == NULL) {
      hk_trace_failure(hk_class_size[cls], "pool exhaustion: no thread heap could be mapped");
      errno = ENOMEM;
      return NULL;
    }
  }
  /* The tick first, so that the profiler's copy restarts the ticker itself
   * (it needs what was left) and this path keeps nothing across the tick. */
  if (HK_UNLIKELY(hk_slow_tick_or_turn(h, false, cls))) return hk_malloc_miss_prof(h, cls);
  hk_ticker_restart(h, cls);
  return hk_malloc_refill(h, cls, false);
}
