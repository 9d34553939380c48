/* heap.c -- owner-only heap bookkeeping: slab lists, SuperSlab lists, the
 * refill order, and the retirement of heaps left by exited threads. */
#include "core/heap.h"

#include <string.h>

#include "core/harden.h"
#include "core/purge.h"
#include "core/sizeclass.h"
#include "core/tstack.h"
#include "epoch/epoch.h"
#include "os/os.h"
#include "util/diag.h"
#include "util/options.h"
#include "util/stats.h"

/* Owns nothing: every free by a thread without a heap misses its cache. */
hk_heap hk_heap_empty = {.cur = {[0 ... HK_NCLASSES - 1] = &hk_slab_empty}, .own = {[0 ... HK_OWN_SLOTS - 1] = HK_OWN_NONE}};
/* What a new heap's tick starts at: HK_TICK_PROF once the profiler is on. */
static _Atomic uint32_t hk_heap_tick_base;
__thread hk_heap *hk_tls_heap __attribute__((tls_model("initial-exec"))) = &hk_heap_empty;

#ifdef HK_HARDENED
void *hk_heap_malloc_list_call(hk_heap *h, unsigned cls, size_t r) { return hk_heap_malloc_list(h, cls, r); }
#endif

/* Heaps of exited threads, retired through the epoch like empty SuperSlabs.
 * Model: formal/retire.pml (the retired object there stands for either).
 *
 *   LIVE    --teardown: every owned SuperSlab abandoned or retired-->  DEAD
 *   DEAD    --hk_heap_retire: hk_epoch_retire-->                       RETIRED
 *   RETIRED --grace period: pool below HK_HEAP_POOL_MAX-->             POOLED
 *   RETIRED --grace period: pool full-->                               unmapped
 *   POOLED  --hk_heap_create pops it-->                                LIVE
 *   POOLED  --hak_collect pops it, hk_epoch_retire-->                  RETIRED, then unmapped
 *
 * Why a grace period: a sender that read a SuperSlab's owner (this heap)
 * before the teardown abandoned it may still set a pending bit, in the
 * section it read the owner in (remote.c's notify). Once every section open
 * at retirement has ended, nobody holds the heap, so it may be unmapped or
 * handed to a new thread with a clean pending set. A pool pop reads
 * stack_next of a heap that another thread may have popped meanwhile, so
 * pops run inside a section too: a popped heap leaves the pool for the OS
 * only through another grace period. */
static hk_tstack hk_heap_pool;
static _Atomic size_t hk_heap_pooled; /* about how many are pooled: a bound, not an exact count */

#define HK_HEAP_MAP_SIZE ((sizeof(hk_heap) + HK_PAGE_SIZE - 1) & ~(HK_PAGE_SIZE - 1))

static void hk_heap_unmap(hk_heap *h) {
  hk_os_unmap(h, HK_HEAP_MAP_SIZE);
  hk_stat_add(HK_STAT_HEAPS_UNMAPPED, 1);
}

static hk_heap *hk_heap_of_retired(hk_retired *r) { return (hk_heap *)((char *)r - offsetof(hk_heap, retire)); }

static void hk_heap_unmap_reclaimed(hk_retired *r) { hk_heap_unmap(hk_heap_of_retired(r)); }

static void hk_heap_reclaimed(hk_retired *r) {
  hk_heap *h = hk_heap_of_retired(r);
  if (hk_add_relaxed(&hk_heap_pooled, 1) >= HK_HEAP_POOL_MAX) {
    hk_sub_relaxed(&hk_heap_pooled, 1);
    hk_heap_unmap(h);
    return;
  }
  hk_tstack_push(&hk_heap_pool, (uintptr_t)h, &h->stack_next);
}

static hk_heap *hk_heap_pool_pop(hk_epoch_rec *rec) {
  hk_epoch_enter(rec);
  hk_heap *h = HK_TSTACK_POP(&hk_heap_pool, hk_heap, stack_next);
  hk_epoch_exit(rec);
  if (h != NULL) hk_sub_relaxed(&hk_heap_pooled, 1);
  return h;
}

size_t hk_heap_pool_release(void) {
  if (hk_load_relaxed(&hk_heap_pooled) == 0) return 0;
  hk_epoch_rec *rec = hk_epoch_acquire();
  if (rec == NULL) return 0;
  size_t n = 0;
  hk_heap *h;
  while ((h = hk_heap_pool_pop(rec)) != NULL) {
    hk_epoch_retire(&h->retire, hk_heap_unmap_reclaimed);
    n++;
  }
  hk_epoch_release(rec);
  return n;
}
/* Fresh heaps are carved HK_HEAP_BATCH at a time from one mapping: with
 * hundreds of threads starting on two cores, one mmap per thread queues
 * each new thread on the kernel's mmap lock behind every other (starvation
 * in stress_oversub). hk_heap_batch packs the batch's page number (high 48
 * bits) with how many heaps of it are taken (low 16); a carve is one CAS.
 * Only the thread holding the `refilling` try-flag maps and installs the
 * next batch; one that finds the flag taken maps its heap alone.
 *   NONE, USED UP --the flag's holder reads the word again, unchanged:
 *                   maps a batch, stores (batch, 1), heap 0 is its own-->  OPEN
 *   OPEN    --CAS count -> count + 1: heap `count` is the carver's-->      OPEN
 *   OPEN    --the last heap carved-->                                     USED UP
 * A store may install: no carve changes a used-up word, and only the flag's
 * holder stores, after reading the word again under the flag (a refill that
 * ended meanwhile is carved from instead). Model: formal/heap_batch.pml
 * (mutants heap_batch_carve_no_cas, _no_recheck, _no_flag). */
#define HK_HEAP_BATCH 64 /* 1.25 MiB of address space (20 KiB heaps), untouched until carved */
static _Atomic uint64_t hk_heap_batch;
static _Atomic unsigned hk_heap_refilling;
/* The process's first heap is mapped alone, and the batches start with the
 * second: a single-threaded program (most processes; python under
 * `ulimit -v` among them) keeps 20 KiB of heap address space, not a
 * batch's 1.25 MiB. Set once, by the exchange that takes the lone heap. */
static _Atomic unsigned hk_heap_first_taken;

static hk_heap *hk_heap_carve(void) {
  if (hk_load_relaxed(&hk_heap_first_taken) == 0 && hk_xchg_relaxed(&hk_heap_first_taken, 1u) == 0)
    return hk_os_map(HK_HEAP_MAP_SIZE); /* orders nothing: the mapping is this thread's */
  uint64_t w = hk_load_acquire(&hk_heap_batch); /* pairs with the installing release store */
  for (;;) {
    while (w != 0 && (w & 0xffff) < HK_HEAP_BATCH) {
      /* Acquire (success and failure): pairs with the installing release
       * store, so the batch's mapping is seen before its heap is used. */
      if (atomic_compare_exchange_weak_explicit(&hk_heap_batch, &w, w + 1, memory_order_acquire,
                                                memory_order_acquire))
        return (hk_heap *)(uintptr_t)(((w >> 16) << 12) + (w & 0xffff) * HK_HEAP_MAP_SIZE);
    }
    /* Acquire: pairs with the release that ended the previous refill. */
    if (hk_xchg_acquire(&hk_heap_refilling, 1u) != 0) return hk_os_map(HK_HEAP_MAP_SIZE);
    uint64_t now = hk_load_acquire(&hk_heap_batch); /* pairs with the installing release store */
    if (now != w) { /* refilled while we looked: carve from it */
      hk_store_release(&hk_heap_refilling, 0u); /* pairs with the next refiller's acquire */
      w = now;
      continue;
    }
    uint8_t *fresh = hk_os_map(HK_HEAP_BATCH * HK_HEAP_MAP_SIZE);
    /* The old batch is full (or absent): no carve can change it, so a
     * store installs. Release: the fresh mapping before carvers' acquire. */
    if (fresh != NULL) hk_store_release(&hk_heap_batch, (((uint64_t)(uintptr_t)fresh >> 12) << 16) | 1u);
    hk_store_release(&hk_heap_refilling, 0u); /* pairs with the next refiller's acquire */
    return fresh != NULL ? (hk_heap *)fresh : hk_os_map(HK_HEAP_MAP_SIZE); /* short of address space: one */
  }
}

static _Atomic size_t hk_heaps_live; /* threads with a heap: create minus retire */

size_t hk_heap_live_count(void) { return hk_load_relaxed(&hk_heaps_live); }

void hk_heap_fork_child(void) {
  hk_store_relaxed(&hk_heap_refilling, 0u); /* a parent thread's batch refill at the fork: gone with it */
}

hk_heap *hk_heap_create(void) {
  /* The record first: a heap without one cannot enter epoch sections. */
  hk_epoch_rec *rec = hk_epoch_acquire();
  if (rec == NULL) return NULL;
  hk_heap *h = hk_heap_pool_pop(rec);
  if (h != NULL) {
    hk_stat_add(HK_STAT_HEAPS_REUSED, 1);
  } else {
    h = hk_heap_carve();
    if (h == NULL) {
      hk_epoch_release(rec);
      return NULL;
    }
    hk_stat_add(HK_STAT_HEAPS_CREATED, 1);
  }
  /* Reset: a mapped heap is zero already, a pooled one has passed a grace
   * period since its thread's teardown, so no sender still sets its bits. */
  for (unsigned c = 0; c < HK_NCLASSES; c++) {
    h->tc[c] = (hk_tcache){.head = NULL, .room = hk_tc_cap(c), .ticker = HK_TC_TICK};
    h->tc_cap[c] = (uint16_t)hk_tc_cap(c);
    h->tc_mark[c] = h->tc_seen[c] = 0;
    h->cur[c] = &hk_slab_empty;
    h->partial[c] = h->partial_tail[c] = NULL;
    h->kept[c] = NULL;
  }
  for (unsigned k = 0; k < HK_KINDS; k++) h->avail[k] = NULL;
  hk_heap_own_clear(h);
  memset(h->outbox, 0, sizeof h->outbox);
  h->outbox_used = 0;
  h->outbox_units = 0;
  h->stat_chains = h->stat_blocks = 0;
  memset(h->bucket, 0, sizeof h->bucket);
  /* Acquire: pairs with hk_heap_ticks_for_profiler's release (the
   * profiler's table before this heap's first profiled slow path). */
  h->tick = hk_load_acquire(&hk_heap_tick_base);
  h->tc_gc = 0;
  h->tc_hot = 0;
  h->tc_grow_left = HK_TC_GROW_BYTES;
  memset(&h->stats, 0, sizeof h->stats);
  h->prof_armed = false; /* the tickers restarted: draw the countdowns afresh */
  h->prof_credit = 0;     /* and no window or set-aside list is left of them */
  h->prof_aside = 0;
  h->purge_at = 0;
  h->spare[HK_KIND_SMALL] = h->spare[HK_KIND_MEDIUM] = NULL;
  hk_store_relaxed(&h->pend_summary, 0);
  for (unsigned w = 0; w < HK_PEND_WORDS; w++) hk_store_relaxed(&h->pend_words[w], 0);
  h->erec = rec;
#ifdef HK_HARDENED
  h->secret = hk_harden_random(); /* after hk_harden_init, which it calls */
  h->canary_secret = hk_harden_secret();
  h->quarantine = hk_opt_get(quarantine_bytes) != 0;
  h->q_head = h->q_tail = NULL;
  h->q_bytes = 0;
#endif
  h->live = true;
  hk_add_relaxed(&hk_heaps_live, 1); /* a count for policy, orders nothing */
  return h;
}

void hk_heap_retire(hk_heap *h) {
  h->live = false;
  hk_sub_relaxed(&hk_heaps_live, 1);
  hk_epoch_release(h->erec); /* FREE: the next thread recycles it */
  h->erec = NULL;
  hk_epoch_retire(&h->retire, hk_heap_reclaimed);
}

static void hk_partial_push(hk_heap *h, hk_slab *s) {
  unsigned c = hk_slab_class(s);
  s->state = HK_SLAB_PARTIAL;
  s->next = NULL;
  s->prev = h->partial_tail[c];
  if (s->prev != NULL) s->prev->next = s;
  else h->partial[c] = s;
  h->partial_tail[c] = s;
}

static void hk_partial_remove(hk_heap *h, hk_slab *s) {
  unsigned c = hk_slab_class(s);
  if (s->prev != NULL) s->prev->next = s->next;
  else h->partial[c] = s->next;
  if (s->next != NULL) s->next->prev = s->prev;
  else h->partial_tail[c] = s->prev;
  s->next = s->prev = NULL;
}

static void hk_avail_push(hk_heap *h, hk_superslab *ss) {
  if (ss->in_avail) return;
  ss->in_avail = 1;
  ss->avail_next = h->avail[ss->kind];
  h->avail[ss->kind] = ss;
}

void hk_heap_own_clear(hk_heap *h) {
  for (unsigned i = 0; i < HK_OWN_SLOTS; i++) h->own[i] = HK_OWN_NONE;
}

void hk_heap_add_superslab(hk_heap *h, hk_superslab *ss) {
  hk_heap_own_note(h, ss);
  unsigned b = hk_bucket_of(ss);
  ss->bucket_next = h->bucket[b];
  h->bucket[b] = ss;
  ss->in_avail = 0;
  if (ss->free_slabs != 0) hk_avail_push(h, ss);
  /* From the cache of retired ones with committed pages (hk_superslab_create). */
  if (hk_purge_dirty(ss) != 0 && h->purge_at == 0) h->purge_at = hk_os_now_ms() + hk_opt_get(decommit_delay_ms);
}

/* Unlink ss from every list of h (owner only). */
static void hk_heap_remove_superslab(hk_heap *h, hk_superslab *ss) {
  uintptr_t c = hk_chunk_of(ss);
  if (hk_heap_owns_chunk(h, c)) h->own[hk_own_slot(c)] = HK_OWN_NONE; /* before it can be reused */
  hk_superslab **pp = &h->bucket[hk_bucket_of(ss)];
  while (*pp != ss) pp = &(*pp)->bucket_next;
  *pp = ss->bucket_next;
  ss->bucket_next = NULL;
  if (ss->in_avail) {
    pp = &h->avail[ss->kind];
    while (*pp != ss) pp = &(*pp)->avail_next;
    *pp = ss->avail_next;
    ss->avail_next = NULL;
    ss->in_avail = 0;
  }
  if (h->spare[ss->kind] == ss) h->spare[ss->kind] = NULL;
}

void hk_heap_retire_superslab(hk_heap *h, hk_superslab *ss) {
  hk_heap_remove_superslab(h, ss);
  hk_superslab_retire(ss);
}

/* ss has just become empty. It is not retired at once: a heap whose live
 * set swings around a boundary would retire and re-create a SuperSlab on
 * every swing (and with many threads, every swing is an mmap). It stays
 * on the avail list, and the purge retires it once it has stayed empty for
 * the decommit delay, except one per kind, the spare, kept until the thread
 * exits or hak_collect runs. */
static void hk_heap_superslab_emptied(hk_heap *h, hk_superslab *ss) {
  hk_superslab *spare = h->spare[ss->kind];
  if (spare == ss) return;
  if (spare == NULL || !hk_superslab_is_empty(spare)) {
    h->spare[ss->kind] = ss;
    return;
  }
  ss->empty_ms = hk_os_now_ms();
  uint64_t due = ss->empty_ms + hk_opt_get(decommit_delay_ms);
  if (h->purge_at == 0 || due < h->purge_at) h->purge_at = due;
}

/* A slab of ss went UNUSED: note its pages' decommit deadline, and retire
 * ss if nothing of it is live any more. */
static void hk_heap_slab_released(hk_heap *h, hk_superslab *ss) {
  hk_avail_push(h, ss);
  if (h->purge_at == 0) h->purge_at = hk_os_now_ms() + hk_opt_get(decommit_delay_ms);
  if (hk_superslab_is_empty(ss)) hk_heap_superslab_emptied(h, ss);
}

void hk_heap_absorb_superslab(hk_heap *h, hk_superslab *ss) {
  for (unsigned i = 0; i < ss->nslabs; i++) {
    hk_slab *s = hk_ss_slab(ss, i);
    if (s->state == HK_SLAB_UNUSED) continue;
    s->next = s->prev = NULL;
    h->stats.cls[hk_slab_class(s)].adopted += s->used; /* allocated by the exited thread */
    if (s->used == 0 && hk_slab_confirm_empty(s)) hk_superslab_release_slab(ss, s);
    else if (s->free != NULL || s->local_free != NULL || s->carved_key < s->limit_key) hk_partial_push(h, s);
    else s->state = HK_SLAB_FULL;
  }
  hk_heap_add_superslab(h, ss);
}

/* Does the thread cache of s's class hold a block in [lo, hi)? Walks at
 * most `cap` links, whatever a double free did to the list. */
static bool hk_tc_holds(const hk_heap *h, const hk_slab *s, uintptr_t lo, uintptr_t hi) {
  unsigned c = hk_slab_class(s);
  const hk_block *b = h->tc[c].head;
  for (uint32_t n = h->tc_cap[c]; b != NULL && n != 0; b = hk_block_step(b, hk_heap_secret(h), HK_TC_KEY_SALT), n--)
    if ((uintptr_t)b - lo < hi - lo) return true;
  return false;
}

/* s's `used` reached 0: may it go back to UNUSED? Every carved block must
 * carry its slab key (hk_slab_confirm_empty) and none sit in the cache:
 * cached blocks count as used, so one that is there was freed twice (one
 * copy flushed to s, one still cached), and releasing s would let the
 * cached copy be handed out from reused pages. */
static bool hk_heap_confirm_empty(hk_heap *h, hk_slab *s) {
  if (!hk_slab_confirm_empty(s)) return false;
  if (HK_LIKELY(!hk_tc_holds(h, s, (uintptr_t)s->start, (uintptr_t)s->start + hk_slab_carved_bytes(s)))) return true;
  s->used = 1; /* the cached copy: the slab stays until it comes back */
  hk_bad_free(s->start, "block already free (a block of an emptied slab is still in the thread cache: it was freed twice)", 1);
  return false;
}

/* s, off every list, with nothing out: back to UNUSED if every block
 * really is free, else (a double free emptied it; reported) on the partial
 * list. */
static void hk_heap_slab_give_back(hk_heap *h, hk_superslab *ss, hk_slab *s) {
  if (hk_heap_confirm_empty(h, s)) {
    hk_superslab_release_slab(ss, s);
    hk_heap_slab_released(h, ss);
  } else {
    hk_partial_push(h, s);
  }
}

/* s (off every list) emptied: kept for its class if the class keeps none
 * (see hk_heap.kept), else given back. No block check for a kept slab: it
 * stays with its class, whose mallocs check each block's key as they pop
 * it, as for any listed block; the pass runs when it is given back. */
static void hk_heap_slab_emptied(hk_heap *h, hk_superslab *ss, hk_slab *s) {
  unsigned c = hk_slab_class(s);
  if (h->kept[c] != NULL) {
    hk_heap_slab_give_back(h, ss, s);
    return;
  }
  s->state = HK_SLAB_KEPT;
  h->kept[c] = s;
  h->kept_ms[c] = hk_os_now_ms();
  uint64_t due = h->kept_ms[c] + hk_opt_get(decommit_delay_ms);
  if (h->purge_at == 0 || due < h->purge_at) h->purge_at = due;
}

/* The kept slab of class c given back (its delay passed, or hak_collect). */
static void hk_heap_release_kept(hk_heap *h, unsigned c) {
  hk_slab *s = h->kept[c];
  h->kept[c] = NULL;
  hk_heap_slab_give_back(h, hk_superslab_of(s), s);
}

/* Blocks came back to s (a local free or a reclaimed batch). A FULL slab
 * becomes PARTIAL; a slab with nothing out is emptied (above). The current
 * slab stays put even when empty: it is hot. */
void hk_heap_slab_returned(hk_heap *h, hk_superslab *ss, hk_slab *s) {
  if (s->state == HK_SLAB_FULL) {
    if (s->used == 0) hk_heap_slab_emptied(h, ss, s);
    else hk_partial_push(h, s);
  } else if (s->state == HK_SLAB_PARTIAL && s->used == 0) {
    hk_partial_remove(h, s);
    hk_heap_slab_emptied(h, ss, s);
  }
}

void hk_heap_adopted(hk_heap *h, hk_superslab *ss) {
  HK_ASSERT(hk_superslab_owner(ss) == h); /* drains never retire */
  if (hk_purge_dirty(ss) != 0 && h->purge_at == 0) h->purge_at = hk_os_now_ms() + hk_opt_get(decommit_delay_ms);
  if (hk_superslab_is_empty(ss)) hk_heap_superslab_emptied(h, ss);
}

/* Decommit every dirty slab whose delay has passed, and retire every empty
 * SuperSlab but the spares that has stayed empty that long (now = UINT64_MAX,
 * delay 0: everything now). Only SuperSlabs with an UNUSED slab can have
 * dirty slabs or be empty, and all of those are on the avail lists. */
static void hk_heap_purge(hk_heap *h, uint64_t now, uint64_t delay) {
  uint64_t next = 0;
  for (unsigned c = 0; c < HK_NCLASSES; c++) { /* first: a released slab may empty its SuperSlab */
    if (h->kept[c] == NULL) continue;
    uint64_t due = h->kept_ms[c] + delay;
    if (due <= now) hk_heap_release_kept(h, c);
    else if (next == 0 || due < next) next = due;
  }
  for (unsigned k = 0; k < HK_KINDS; k++) {
    hk_superslab *ss = h->avail[k], *following;
    for (; ss != NULL; ss = following) {
      following = ss->avail_next;
      uint64_t d = 0;
      if (ss != h->spare[k] && hk_superslab_is_empty(ss)) {
        if (ss->empty_ms + delay <= now) {
          hk_heap_retire_superslab(h, ss); /* not touched again below */
          continue;
        }
        d = ss->empty_ms + delay;
      }
      if (hk_purge_dirty(ss) != 0) {
        uint64_t dd = hk_superslab_purge(ss, now, delay);
        if (dd != 0 && (d == 0 || dd < d)) d = dd;
      }
      if (d != 0 && (next == 0 || d < next)) next = d;
    }
  }
  h->purge_at = next;
}

void hk_heap_ticks_for_profiler(void) {
  hk_store_release(&hk_heap_tick_base, HK_TICK_PROF); /* pairs with the heap init's acquire */
  if (hk_tls_heap->live) hk_tls_heap->tick |= HK_TICK_PROF; /* the starting thread's own heap */
}

void hk_heap_maintain(hk_heap *h) {
  h->tick &= HK_TICK_PROF; /* the count restarts; the profiler's mark stays */
  uint64_t now = hk_os_now_ms();
  if (h->purge_at != 0 && now >= h->purge_at) hk_heap_purge(h, now, hk_opt_get(decommit_delay_ms));
  /* Idle threads' dirty slabs: some running thread's slow path purges them. */
  hk_purge_others_maybe(h->erec, now);
  hk_epoch_maybe_poll_paced();
  /* Retired SuperSlabs waiting in the global cache lose their pages after
   * the same delay; some thread's slow path has to run the clock for them. */
  hk_superslab_cache_purge(false);
}

size_t hk_heap_release_all(hk_heap *h) {
  hk_heap_tc_flush_all(h);
  /* Current slabs with nothing out stay ACTIVE on the fast path (they are
   * hot); here they go back to UNUSED so their SuperSlab can empty. */
  for (unsigned c = 0; c < HK_NCLASSES; c++) {
    hk_slab *s = h->cur[c];
    if (s == &hk_slab_empty || s->used != 0 || !hk_heap_confirm_empty(h, s)) continue;
    h->cur[c] = &hk_slab_empty;
    hk_superslab *ss = hk_superslab_of(s);
    hk_superslab_release_slab(ss, s);
    hk_heap_slab_released(h, ss);
  }
  for (unsigned c = 0; c < HK_NCLASSES; c++)
    if (h->kept[c] != NULL) hk_heap_release_kept(h, c);
  size_t n = 0;
  for (unsigned k = 0; k < HK_KINDS; k++) {
    hk_superslab *spare = h->spare[k];
    if (spare != NULL && hk_superslab_is_empty(spare)) {
      hk_heap_retire_superslab(h, spare);
      n++;
    }
    for (hk_superslab *ss = h->avail[k]; ss != NULL; ss = ss->avail_next)
      if (hk_superslab_is_empty(ss)) n++; /* retired by the purge below */
  }
  hk_heap_purge(h, UINT64_MAX, 0);
  return n;
}

/* Refill order: the current slab (local frees, then carving), the class's
 * partial slabs (fill what is half used first), its kept empty slab, then an
 * UNUSED slab of an owned SuperSlab. */
hk_slab *hk_heap_refill(hk_heap *h, unsigned cls) {
  hk_slab *s = h->cur[cls];
  if (s != &hk_slab_empty) {
    if (hk_slab_refill(s)) return s;
    s->state = HK_SLAB_FULL;
    h->cur[cls] = &hk_slab_empty;
  }
  while ((s = h->partial[cls]) != NULL) {
    hk_partial_remove(h, s);
    if (hk_slab_refill(s)) {
      s->state = HK_SLAB_ACTIVE;
      h->cur[cls] = s;
      return s;
    }
    s->state = HK_SLAB_FULL;
  }
  if ((s = h->kept[cls]) != NULL) { /* carved and listed already: no binding, no block check */
    h->kept[cls] = NULL;
    s->state = HK_SLAB_ACTIVE;
    hk_slab_refill(s);
    h->cur[cls] = s;
    return s;
  }
  int kind = hk_class_kind(cls);
  hk_superslab *ss, **pp = &h->avail[kind];
  while ((ss = *pp) != NULL) {
    s = hk_superslab_take_slab(ss);
    if (ss->free_slabs == 0) {
      *pp = ss->avail_next;
      ss->in_avail = 0;
    } else if (s == NULL) { /* its UNUSED slabs are being decommitted by another thread */
      pp = &ss->avail_next;
      continue;
    }
    if (s != NULL) {
      hk_slab_init(ss, s, cls);
      hk_slab_refill(s);
      h->cur[cls] = s;
      return s;
    }
  }
  return NULL;
}

/* ---- the thread cache ----------------------------------------------------- */

/* One cached block back to its slab, like a local free used to be: the slab
 * needs attention when it was FULL or its last block came back; `used`
 * wrapping means nothing of the slab was out, so b was freed twice and its
 * other copy already came back: the push is undone and reported. */
static void hk_tc_return(hk_heap *h, hk_block *b) {
  hk_slab *s = hk_slab_of_block(b);
  if (HK_LIKELY(hk_heap_free_local(s, b))) return;
  if (HK_UNLIKELY((int32_t)s->used < 0)) {
    s->local_free = hk_block_next(b, hk_ss_secret(b));
    s->used = 0;
    hk_bad_free(b, "block already free", 1);
    return;
  }
  hk_heap_slab_returned(h, hk_superslab_of(b), s);
}

/* Give back every block of t's list (all), or its older half: every block
 * after the first n/2 of the n it holds. Each block walked, kept or given
 * back, must still carry the cache key: one that does not was handed out
 * or given back to its slab while a second copy of it stayed listed (freed
 * twice), or was written after its free; its link cannot be trusted (a
 * slab's list may follow it), so the list is cut just before it (a leak,
 * never a block handed out twice, and never a write into a slab's list)
 * and reported once (hardened builds: the canary's tail caught every
 * double free before its block reached a list, so it is a write, and they
 * abort). At most `cap` links are followed: a block freed twice can make
 * the list a cycle. */
static void hk_tc_trim(hk_heap *h, hk_tcache *t, bool all) {
  static const char found[] = "block already free (freed twice, or written after free; found when the thread cache was flushed)";
  unsigned c = (unsigned)(t - h->tc);
  uint32_t cap = h->tc_cap[c];
  uintptr_t sec = hk_heap_secret(h);
  hk_block *b = t->head, *last = NULL;
  uint32_t n = cap - t->room, kept = 0, keep = all ? 0 : n / 2;
  for (; kept < keep && b != NULL && n != 0; kept++, n--) {
    if (HK_UNLIKELY(!hk_block_keyed(b, sec, HK_TC_KEY_SALT))) break;
    last = b;
    b = hk_block_next(b, sec);
  }
  if (last != NULL) hk_block_end(last, sec, HK_TC_KEY_SALT);
  else t->head = NULL;
  t->room = cap - kept;
  /* Counted once per trim: the n blocks leaving go back to their slabs.
   * (A list shorter than its count, which only a program writing freed
   * blocks makes, is not told apart: its missing blocks count as given
   * back.) */
  hk_class_stats *st = &h->stats.cls[c];
  if (HK_UNLIKELY(kept < keep && b != NULL && n != 0)) {
    HK_HARDENED_CORRUPT(b);
    st->dropped += n; /* left out of their slabs: a leak */
    hk_bad_free(b, found, 1);
    return;
  }
  st->trimmed += n;
  for (; b != NULL && n != 0; n--) {
    if (HK_UNLIKELY(!hk_block_keyed(b, sec, HK_TC_KEY_SALT))) {
      HK_HARDENED_CORRUPT(b);
      st->trimmed -= n; /* the rest is dropped: left out of its slabs, a leak */
      st->dropped += n;
      hk_bad_free(b, found, 1);
      return;
    }
    hk_block *next = hk_block_next(b, sec);
    hk_tc_return(h, b);
    b = next;
  }
}

/* Class c's cache hits so far, modulo 2^32: those the slow paths settled,
 * plus its ticker's progress (a statistics merge restarts the count, which
 * at worst delays one growth or one trim). */
static uint32_t hk_tc_hits(const hk_heap *h, unsigned c) {
  return (uint32_t)h->stats.cls[c].pops + HK_TC_TICK - h->tc[c].ticker;
}

/* Full (room reached 0, so it holds cap blocks): grow by up to cap blocks
 * from the heap's budget (no block moves), else keep the newer half. Only
 * a class that served mallocs from its cache since its last overflow
 * grows: one that only takes frees, a burst freeing what the
 * program is done with, would keep them out of their slabs, whose pages
 * then outlive the decommit delay (test_memory_return). */
void hk_heap_tc_flush(hk_heap *h, hk_tcache *t) {
  _Static_assert(HK_NCLASSES <= 64 && HK_TC_GROW_MAX <= UINT16_MAX && HK_TC_MIN >= 2,
                 "tc_hot and tc_cap hold them; hk_heap_tc_gc keeps room >= 1");
  unsigned c = (unsigned)(t - h->tc);
  uint32_t cap = h->tc_cap[c], size = hk_class_size[c];
  uint32_t add = cap < HK_TC_GROW_MAX - cap ? cap : HK_TC_GROW_MAX - cap;
  if (add > h->tc_grow_left / size) add = h->tc_grow_left / size;
  uint32_t hits = hk_tc_hits(h, c);
  if (hits == h->tc_mark[c]) add = 0;
  h->tc_mark[c] = hits;
  h->tc_hot |= (uint64_t)1 << c;
  if (add != 0) {
    h->tc_cap[c] = (uint16_t)(cap + add);
    h->tc_grow_left -= add * size;
    t->room = add;
    return;
  }
  hk_tc_trim(h, t, false);
}

/* One class per tick, round robin: a class with no cache hit since the
 * last visit (idle) gives the older half of its cache back to the slabs,
 * and one that did not overflow since then returns half its loan (cap -
 * hk_tc_cap) to the budget. Trimming classes in use emptied their caches
 * early, for cold slab-list pops (docs/ARCHITECTURE.md). A class in use
 * whose cache would fill the halved cap loses its older half first (the
 * trim leaves at most cap/2 blocks, and base >= 2 puts the halved cap
 * above that): room must stay at least 1, or the free path, which flushes
 * when its decrement reaches 0, would wrap it and never flush. */
void hk_heap_tc_gc(hk_heap *h) {
  unsigned g = h->tc_gc;
  hk_tcache *t = &h->tc[g];
  h->tc_gc = g + 1 < HK_NCLASSES ? g + 1 : 0;
  uint32_t cap = h->tc_cap[g], base = hk_tc_cap(g);
  uint32_t hits = hk_tc_hits(h, g);
  bool idle = hits == h->tc_seen[g];
  h->tc_seen[g] = hits;
  if (idle && cap - t->room > 1) hk_tc_trim(h, t, false); /* the older half */
  uint64_t bit = (uint64_t)1 << g;
  if (h->tc_hot & bit) {
    h->tc_hot &= ~bit;
  } else if (cap > base) {
    uint32_t shrunk = cap - (cap - base) / 2 - (cap - base) % 2;
    if (cap - t->room >= shrunk) hk_tc_trim(h, t, false); /* room stays >= 1 (the free path's flush) */
    uint32_t held = cap - t->room;
    HK_ASSERT(held < shrunk);
    h->tc_cap[g] = (uint16_t)shrunk;
    t->room = shrunk - held;
    h->tc_grow_left += (cap - shrunk) * hk_class_size[g];
  }
}

/* Profiling only, when the class's sample falls within a refilled list
 * (prof/sample.c counts a class's allocations by its ticker, which only
 * cache pops run, and charges a list whose pops all come first): the
 * blocks of cur[cls]'s `free` go into the class's empty cache, in list
 * order, as a malloc then a free of each would put them (used by the slab,
 * keyed for the cache), up to half its room (filling it left room for one
 * free, so the thread's next frees overflowed it into a trim: with the
 * profiler on at a 1 GiB rate, 2 threads trading half their blocks ran at
 * 0.951 of profiling off, 0.971 with half) and at most HK_PROF_PRIME_MAX
 * (the blocks of a slab's list are cold, and those primed past what the
 * class uses before its next trim were touched for nothing: with half the
 * room, profiling cost 7 % at ws=8192 and 11 % with two threads trading
 * 90 % of their blocks, with 8 at most 5 % and 4 %); what does not fit is
 * set aside on the slab's local_free (hk_heap_list_set_aside), to come back
 * through the next refill. So the fast path's second branch finds `free`
 * empty and every allocation of the class until then is a pop. A head
 * without its key ends the priming: the fast path finds it when the list
 * comes back, and the slow path reports it. */
void hk_heap_tc_prime(hk_heap *h, unsigned cls) {
  hk_slab *s = h->cur[cls];
  hk_tcache *t = &h->tc[cls];
  hk_block *first = NULL, *last = NULL, *b;
  uint32_t n = 0;
  uint32_t batch = t->room > 3 ? t->room / 2 : t->room - 1;
  if (batch > HK_PROF_PRIME_MAX) batch = HK_PROF_PRIME_MAX;
  while (n < batch && hk_slab_head_ok(b = s->free)) {
    hk_slab_take_head(s, b);
    if (last != NULL) hk_block_link(last, b, hk_heap_secret(h), HK_TC_KEY_SALT);
    else first = b;
    last = b;
    n++;
  }
  if (n != 0) {
    hk_block_link(last, t->head, hk_heap_secret(h), HK_TC_KEY_SALT);
    t->head = first;
    t->room -= n;
    h->stats.cls[cls].primed += n;
  }
  hk_heap_list_set_aside(h, cls);
}

/* Profiling only: the blocks on cur[cls]'s `free` list after a refill,
 * which the fast path will pop without running the ticker (prof/sample.c
 * charges them to the class's countdown instead of priming them), or
 * UINT32_MAX when that count is not known without a walk. Every carved block
 * is out (counted in `used`: handed out, cached, or freed remotely and not
 * taken back) or on one of the slab's two lists, so with `local_free` empty
 * (as a refill leaves it, but for a partial slab that held both) `free`
 * holds carved - used. A list dropped for a bad head breaks the sum (the
 * lost blocks stay counted as free); the countdown then runs a little
 * long, on a heap that has already reported the error. Debug builds walk the
 * list and check the sum. */
uint32_t hk_heap_list_count(hk_heap *h, unsigned cls) {
  hk_slab *s = h->cur[cls];
  if (s->local_free != NULL) return UINT32_MAX;
  uint32_t carved = hk_slab_blocks(s, s->carved_key);
  uint32_t n = carved > s->used ? carved - s->used : 0;
#ifdef HK_DEBUG
  /* Not where the walk met a block without its key (an error the fast path
   * reports when it pops it), nor after a reported one. */
  uint32_t walked = 0;
  const hk_block *b = s->free;
  for (; hk_slab_head_ok(b) && walked <= carved; b = hk_block_next(b, hk_ss_secret(b))) walked++;
  HK_ASSERT(b != NULL || walked == n || hk_stat_invalid_frees() != 0);
#endif
  return n;
}

/* Profiling only: cur[cls]'s `free` list, not yet exhausted when the
 * class's sample fell due, goes onto the slab's `local_free`, out of the
 * fast path's reach, so that the allocations still to come are all cache
 * pops (or a miss, which counts as one) and the sample lands on the right
 * one. Returns how many blocks moved: carved - used when `local_free` was
 * empty (hk_heap_list_count), else counted by the walk that finds the
 * list's tail. The walk stops at a head without the slab key; that head and
 * what follows it stay on `free`, where the fast path finds it and the slow
 * path reports it. Marked in prof_aside either way: the miss that follows
 * is the profiler's. */
uint32_t hk_heap_list_set_aside(hk_heap *h, unsigned cls) {
  hk_slab *s = h->cur[cls];
  hk_block *first = s->free;
  if (first == NULL) return 0;
  h->prof_aside |= (uint64_t)1 << cls; /* the class's next pop misses (api/malloc_slow.c) */
  uint32_t n = hk_heap_list_count(h, cls);
  if (n != UINT32_MAX) {
    s->local_free = first;
    s->free = NULL;
    return n;
  }
  uint32_t limit = hk_slab_blocks(s, s->limit_key); /* a cycle (a double free) ends the walk too */
  hk_block *last = NULL, *b = first;
  n = 0;
  while (n < limit && hk_slab_head_ok(b)) {
    last = b;
    b = hk_block_next(b, hk_ss_secret(b));
    n++;
  }
  if (last == NULL) return 0;
  hk_block_link(last, s->local_free, hk_ss_secret(last), HK_BLOCK_KEY_SALT);
  s->local_free = first;
  s->free = b;
  return n;
}

void hk_heap_tc_flush_all(hk_heap *h) {
  for (unsigned c = 0; c < HK_NCLASSES; c++)
    if (h->tc[c].head != NULL) hk_tc_trim(h, &h->tc[c], true);
}

bool hk_heap_block_is_free(hk_heap *h, hk_slab *s, const hk_block *b) {
  return hk_slab_on_free_list(s, b) || hk_tc_holds(h, s, (uintptr_t)b, (uintptr_t)b + 1);
}

/* ---- statistics ------------------------------------------------------------ */

void hk_heap_stats_merge(hk_heap *h) {
  /* Blocks out of each class's slabs (handed out, cached, or freed remotely
   * and not yet taken back): the only slab counter a fast path moves. */
  uint64_t used[HK_NCLASSES] = {0};
  for (unsigned b = 0; b < HK_PEND_BUCKETS; b++)
    for (hk_superslab *ss = h->bucket[b]; ss != NULL; ss = ss->bucket_next)
      for (unsigned i = 0; i < ss->nslabs; i++) {
        const hk_slab *s = hk_ss_slab(ss, i);
        if (s->state != HK_SLAB_UNUSED) used[hk_slab_class(s)] += s->used;
      }
  uint64_t allocs[HK_NCLASSES], frees[HK_NCLASSES];
  for (unsigned c = 0; c < HK_NCLASSES; c++) {
    hk_class_stats *st = &h->stats.cls[c];
    /* A ticker is never 0 here: only inside the slow path that restarts it. */
    HK_ASSERT(h->tc[c].ticker != 0);
    uint32_t ticked = HK_TC_TICK - h->tc[c].ticker, cached = h->tc_cap[c] - h->tc[c].room;
    /* Unsigned arithmetic wraps: pops may hold minus the ticker's progress
     * at the last merge, and the sums are exact modulo 2^64. */
    uint64_t hits = st->pops + ticked;
    uint64_t slab = used[c] - st->used_base + st->trimmed + st->reclaimed - st->adopted;
    uint64_t local = (uint64_t)cached - st->cached_base + hits + st->trimmed + st->dropped;
    allocs[c] = hits + slab - st->primed;
    frees[c] = local + st->reclaimed - st->primed;
    *st = (hk_class_stats){.pops = 0 - (uint64_t)ticked, .used_base = used[c], .cached_base = cached};
  }
  hk_stats_merge(allocs, frees, h->stats.sent_hist, h->stats.recv_hist, h->stats.recv_blocks);
  memset(h->stats.sent_hist, 0, sizeof h->stats.sent_hist);
  memset(h->stats.recv_hist, 0, sizeof h->stats.recv_hist);
  h->stats.recv_blocks = 0;
  hk_stats_merge_large(&h->stats.large);
  h->stats.large = (hk_large_tally){0};
}
