/* heap.h -- the per-thread heap and the malloc/free fast paths.
 *
 * Every thread starts on hk_heap_empty, whose cur[] slabs have empty lists,
 * so its first malloc falls into the slow path, which sets the thread up: no
 * init check on the fast path. */
#ifndef HK_HEAP_H
#define HK_HEAP_H

#include "core/block.h"
#include "core/harden.h"
#include "core/sizeclass.h"
#include "core/slab.h"
#include "core/superslab.h"
#include "hk_types.h"

extern __thread hk_heap *hk_tls_heap __attribute__((tls_model("initial-exec")));
extern hk_heap hk_heap_empty;

/* Allocation slow path (api/malloc_slow.c): sets the thread up, flushes and
 * reclaims, refills, adopts or maps. NULL + ENOMEM when out of memory. */
void *hk_malloc_slow(hk_heap *h, unsigned cls);
/* The same for the class times 16 (hk_heap_malloc_x16's tick, so that its
 * hit path does not compute the class). */
void *hk_malloc_slow_x16(hk_heap *h, unsigned cls_x16);

/* The block the fast path returns lives in the return register from its
 * load on: left to itself, gcc 12 put the cache there instead wherever the
 * fast path is inlined into a function with more live values
 * (hk_malloc_generic), which cost a move on every hit. */
#if defined(__x86_64__)
#define HK_IN_RETURN_REG(b) __asm__("" : "+a"(b))
#else
#define HK_IN_RETURN_REG(b) ((void)0)
#endif

#ifdef HK_HARDENED
/* Hardened builds (core/harden.h): hk_heap_malloc_as(h, cls, r) hands the
 * block out with its canary for a request of r bytes (r already
 * hk_canary_request's), on the fast path and through the slow one alike,
 * so the slow path is a tail call and the fast path saves no registers.
 * HK_AS_IS (hk_heap_malloc): no canary, the caller sets it. */
#define HK_AS_IS SIZE_MAX
/* hk_malloc_slow, then the canary (api/api.c). The class times 16, as the
 * fast path has it: a class computed for the call alone was computed
 * before the fast path's branch, on the hit path too. */
void *hk_malloc_slow_served(hk_heap *h, unsigned cls_x16, size_t r);
HK_INLINE void *hk_heap_malloc_miss_x16(hk_heap *h, unsigned cls_x16, size_t r) {
  return r == HK_AS_IS ? hk_malloc_slow_x16(h, cls_x16) : hk_malloc_slow_served(h, cls_x16, r);
}
#define hk_heap_malloc_miss(h, cls, r) hk_heap_malloc_miss_x16((h), (cls) * 16, (r))
HK_INLINE void hk_heap_hand_out(const hk_heap *h, void *b, unsigned cls_x16, size_t r) {
  if (r != HK_AS_IS) hk_canary_set_served(b, r, hk_class_size_of_x16(cls_x16), h->canary_secret);
}
#else
#define HK_AS_IS ((size_t)0)
#define hk_heap_malloc_miss(h, cls, r) ((void)(r), hk_malloc_slow((h), (cls)))
#define hk_heap_malloc_miss_x16(h, x16, r) ((void)(r), hk_malloc_slow_x16((h), (x16)))
#define hk_heap_hand_out(h, b, cls_x16, r) ((void)(r))
#endif

/* b, the head of a slab's `free` list, can be taken: it is there and
 * carries the slab key (one that does not is left for the slow path to
 * report). */
HK_INLINE bool hk_slab_head_ok(const hk_block *b) {
  return b != NULL && hk_block_keyed(b, hk_ss_secret(b), HK_BLOCK_KEY_SALT);
}
/* Take b (hk_slab_head_ok) off s's `free` list: s counts it as used. */
HK_INLINE void hk_slab_take_head(hk_slab *s, hk_block *b) {
  s->free = hk_block_next(b, hk_ss_secret(b));
  HK_HARDENED_IN_SLAB(s, b, s->free);
  s->used++;
}

/* The second half of the fast path (hk_heap_malloc_as): the thread cache
 * is empty, pop the current slab's list. */
HK_INLINE void *hk_heap_malloc_list(hk_heap *h, unsigned cls, size_t r) {
  hk_slab *s = h->cur[cls];
  hk_block *b = s->free;
  HK_IN_RETURN_REG(b);
  /* hk_slab_head_ok written out: through the helper, gcc 12 laid the hit
   * out behind a taken branch. */
  if (HK_LIKELY(b != NULL && hk_block_keyed(b, hk_ss_secret(b), HK_BLOCK_KEY_SALT))) {
    hk_slab_take_head(s, b);
    hk_block_unkey(b);
    hk_heap_hand_out(h, b, cls * 16, r);
    return b;
  }
  return hk_heap_malloc_miss(h, cls, r);
}
#ifdef HK_HARDENED
/* Out of line in hardened builds (core/heap.c): its checks need more
 * registers than the thread cache's pop, which then saved and restored
 * three on every call. */
void *hk_heap_malloc_list_call(hk_heap *h, unsigned cls, size_t r);
#define HK_HEAP_MALLOC_LIST(h, cls, r) hk_heap_malloc_list_call((h), (cls), (r))
#else
#define HK_HEAP_MALLOC_LIST(h, cls, r) hk_heap_malloc_list((h), (cls), (r))
#endif

/* Fast path: pop the class's thread cache (the block freed last), else the
 * current slab's list. No atomic, no lock, no call.
 * The popped block must carry the key of the list it is on (every block on
 * a free list does): a block freed twice sits on a list twice, and its
 * second turn comes after its first handed it out and cleared the key, so
 * it is caught here before it is handed out twice (the slow path reports
 * it). Checking here, not in free, keeps free from reading the block: that
 * load missed the cache on every free of a large working set and stalled
 * the free behind it, where malloc loads the block's line anyway (b->next). */
HK_INLINE void *hk_heap_malloc_x16(hk_heap *h, unsigned cls_x16, size_t r) {
  _Static_assert(sizeof(hk_tcache) == 16, "hk_class_table holds class x sizeof(hk_tcache)");
  hk_tcache *t = (hk_tcache *)((char *)h->tc + cls_x16);
  unsigned cls = cls_x16 / 16;
  hk_block *b = t->head;
  HK_IN_RETURN_REG(b);
  if (HK_LIKELY(b != NULL)) {
    if (HK_UNLIKELY(!hk_block_keyed(b, hk_heap_secret(h), HK_TC_KEY_SALT) || --t->ticker == 0))
      return hk_heap_malloc_miss_x16(h, cls_x16, r);
    t->head = hk_block_next(b, hk_heap_secret(h));
    t->room++;
    hk_block_unkey(b);
    hk_heap_hand_out(h, b, cls_x16, r);
    return b;
  }
  return HK_HEAP_MALLOC_LIST(h, cls, r);
}
HK_INLINE void *hk_heap_malloc_as(hk_heap *h, unsigned cls, size_t r) { return hk_heap_malloc_x16(h, cls * 16, r); }

HK_INLINE void *hk_heap_malloc(hk_heap *h, unsigned cls) { return hk_heap_malloc_as(h, cls, HK_AS_IS); }

/* The owned-chunk cache (hk_heap.own). p's chunk: the address of the
 * SuperSlab p would lie in, which free computes anyway for p's descriptor
 * (hk_slab_view_of), so the test costs the slot's index, one load and a compare.
 * p is in a SuperSlab h owns when h's entry for it equals it. */
HK_INLINE uintptr_t hk_chunk_of(const void *p) { return (uintptr_t)p & ~(uintptr_t)HK_SS_MASK; }
HK_INLINE unsigned hk_own_slot(uintptr_t chunk) { return (unsigned)(chunk >> HK_SS_SHIFT) & (HK_OWN_SLOTS - 1); }
HK_INLINE bool hk_heap_owns_chunk(const hk_heap *h, uintptr_t chunk) { return h->own[hk_own_slot(chunk)] == chunk; }
/* ss (owned by h) in the cache, evicting whatever shared its entry. */
HK_INLINE void hk_heap_own_note(hk_heap *h, const hk_superslab *ss) {
  uintptr_t c = hk_chunk_of(ss);
  h->own[hk_own_slot(c)] = c;
}

/* Thread cache full: give its older half back to the slabs (core/heap.c). */
void hk_heap_tc_flush(hk_heap *h, hk_tcache *t);
/* Every slow path: trim the next class's cache in turn (round robin). */
void hk_heap_tc_gc(hk_heap *h);
/* The profiler starts (prof/sample.c): from now on every heap's tick
 * carries HK_TICK_PROF, so all its slow paths take the tick branch where
 * the profiler has its turn (api/malloc_slow.c). The calling thread's heap
 * now, the others as they are set up. A power of two above any count, and
 * a multiple of HK_OUTBOX_FLUSH_TICKS, whose cadence reads the low bits. */
#define HK_TICK_PROF ((uint32_t)1 << 30)
void hk_heap_ticks_for_profiler(void);
/* Fold this heap's statistics into the process-wide counters (owner only:
 * thread exit, hak_thread_flush, and the statistics calls for the calling
 * thread). Walks the heap's SuperSlabs once. */
void hk_heap_stats_merge(hk_heap *h);

/* Push b onto t, keyed for the cache with its heap's secret sec (never
 * reading b); the room left. */
HK_INLINE uint32_t hk_tcache_push(hk_tcache *t, hk_block *b, uintptr_t sec) {
  hk_block_link(b, t->head, sec, HK_TC_KEY_SALT);
  t->head = b;
  return --t->room;
}

/* The thread cache of s's class: the heap's address plus the slab's
 * tc_off, with no shift of the class (the caches are the heap's first
 * member). */
_Static_assert(offsetof(hk_heap, tc) == 0, "hk_slab.tc_off is an offset from the heap");
HK_INLINE hk_tcache *hk_heap_tc_of(hk_heap *h, const hk_slab *s) { return (hk_tcache *)((char *)h + s->tc_off); }

/* Local free fast path, for a block of a SuperSlab this heap owns that passed
 * the block checks: onto the class's thread cache. s may be a view of the
 * block's slab (hk_slab_view_of): only its tc_off is read here. Writes the
 * block's key (never reads the block). The block stays counted as used by
 * its slab. */
HK_INLINE void hk_heap_free_to(hk_heap *h, hk_tcache *t, hk_block *b) {
  if (HK_UNLIKELY(hk_tcache_push(t, b, hk_heap_secret(h)) == 0)) hk_heap_tc_flush(h, t);
}
HK_INLINE void hk_heap_free_tc(hk_heap *h, hk_slab *s, hk_block *b) { hk_heap_free_to(h, hk_heap_tc_of(h, s), b); }

/* A reclaimed remote free (remote/remote.c) into its class's thread cache
 * while the cache has room for it and one more free (no flush here): the
 * next mallocs of the class pop it while the reclaim's touch of its line
 * is recent, and count it on the ticker, which the profiler samples by
 * (blocks popped from a slab's list it must first prime into the cache:
 * with the profiler on, mt_remote at 8 threads spent 8 % of its time
 * priming reclaimed blocks). The block stays counted as used by its
 * slab, as every cached block; the statistics count it as a cached free.
 * False when the cache is full: the block goes back to its slab. */
HK_INLINE bool hk_heap_cache_reclaimed(hk_heap *h, hk_slab *s, hk_block *b) {
  hk_tcache *t = hk_heap_tc_of(h, s);
  if (t->room <= 1) return false;
  hk_tcache_push(t, b, hk_heap_secret(h));
  return true;
}

/* Push a block that came back (a thread-cache flush, a reclaimed remote
 * free) onto its slab's local list. Writes the block's key (never reads the
 * block). Returns false when the slab needs attention (it was FULL, its last
 * block came back, or `used` wrapped below zero). */
HK_INLINE bool hk_heap_free_local(hk_slab *s, hk_block *b) {
  hk_block_link(b, s->local_free, hk_ss_secret(b), HK_BLOCK_KEY_SALT);
  s->local_free = b;
  return (int32_t)--s->used > 0 && s->state != HK_SLAB_FULL;
}

/* Is b (a block of s, this heap's) already free: on s's lists or in the
 * thread cache? The slow confirmation behind the double-free checks; walks
 * bounded lists. */
bool hk_heap_block_is_free(hk_heap *h, hk_slab *s, const hk_block *b);
/* Every thread-cache block back to its slab (hak_collect, thread exit,
 * hak_thread_flush). */
void hk_heap_tc_flush_all(hk_heap *h);
/* Profiling: cur[cls]'s free list into the class's empty cache (core/heap.c). */
void hk_heap_tc_prime(hk_heap *h, unsigned cls);
/* Profiling only (prof/sample.c): the blocks on cur[cls]'s `free` list
 * after a refill, UINT32_MAX when not known without a walk; and that list
 * moved onto the slab's `local_free`, how many blocks it held. */
uint32_t hk_heap_list_count(hk_heap *h, unsigned cls);
uint32_t hk_heap_list_set_aside(hk_heap *h, unsigned cls);

/* The pending bucket of ss (hk_superslab_hash). */
HK_INLINE unsigned hk_bucket_of(const hk_superslab *ss) {
  _Static_assert((HK_PEND_BUCKETS & (HK_PEND_BUCKETS - 1)) == 0 && HK_PEND_BUCKETS >= 2, "power of two");
  return hk_superslab_hash(ss, HK_PEND_BUCKETS);
}

/* Owner-only heap operations (core/heap.c). */
hk_heap *hk_heap_create(void);               /* from the pool, or mapped */
void hk_heap_retire(hk_heap *h);             /* owns nothing: through the epoch to the pool */
/* hak_collect: every pooled heap goes back to the OS (after a grace period). */
size_t hk_heap_pool_release(void);
void hk_heap_fork_child(void);               /* fork child: release the batch refill flag */
size_t hk_heap_live_count(void);             /* threads with a live heap (relaxed, approximate) */
void hk_heap_add_superslab(hk_heap *h, hk_superslab *ss); /* also notes it in h->own */
void hk_heap_own_clear(hk_heap *h);          /* h owns nothing any more (abandon) */
void hk_heap_absorb_superslab(hk_heap *h, hk_superslab *ss); /* adoption */
void hk_heap_slab_returned(hk_heap *h, hk_superslab *ss, hk_slab *s);
hk_slab *hk_heap_refill(hk_heap *h, unsigned cls); /* NULL: needs a SuperSlab */
/* After adopting and draining ss: note its dirty slabs; if it is empty, make
 * it the kind's spare or start its delay (the purge retires it later:
 * drains never retire). */
void hk_heap_adopted(hk_heap *h, hk_superslab *ss);
/* Unlink an empty owned SuperSlab and retire it (core/superslab.c). */
void hk_heap_retire_superslab(hk_heap *h, hk_superslab *ss);
/* Every HK_MAINTAIN_TICKS allocation slow paths: decommit slabs whose delay passed, poll
 * the epoch if anything is retired. */
void hk_heap_maintain(hk_heap *h);
/* hak_collect: decommit every dirty slab now and retire every empty
 * SuperSlab, the spares included. Returns how many it retired. */
size_t hk_heap_release_all(hk_heap *h);

#endif /* HK_HEAP_H */
