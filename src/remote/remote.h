/* remote.h -- cross-thread frees: the per-SuperSlab MPSC queue, sender-side
 * batching (the outbox), the owner's pending set and batched reclaim. */
#ifndef HK_REMOTE_H
#define HK_REMOTE_H

#include "core/heap.h"

/* The slot of ss's chain (hk_superslab_hash: indexing by the chunk
 * number's low bits gave small SuperSlabs only the even slots, and a thread
 * freeing into five small SuperSlabs evicted a chain, a section and a CAS,
 * on almost every free). */
HK_INLINE unsigned hk_outbox_index(const hk_superslab *ss) {
  _Static_assert((HK_OUTBOX_SLOTS & (HK_OUTBOX_SLOTS - 1)) == 0 && HK_OUTBOX_SLOTS >= 2, "power of two");
  return hk_superslab_hash(ss, HK_OUTBOX_SLOTS);
}

/* Free b, a block of ss that the calling thread (heap h, possibly the empty
 * heap of an uninitialised or exited thread) does not own. */
void hk_remote_free(hk_heap *h, hk_superslab *ss, hk_block *b);
void hk_outbox_flush_all(hk_heap *h);
/* Add this heap's pending push counts to the global statistics. */
void hk_remote_stats_flush(hk_heap *h);
void hk_remote_collect_pending(hk_heap *h);

/* Push every outbox chain to its SuperSlab. One load when the outbox is empty. */
HK_INLINE void hk_outbox_flush(hk_heap *h) {
  if (HK_UNLIKELY(h->outbox_used != 0)) hk_outbox_flush_all(h);
}
/* The allocation slow path's flush: every HK_OUTBOX_FLUSH_TICKS-th (by the
 * maintenance tick, which counts slow paths), so chains grow between
 * flushes; their length and byte caps bound what waits (hk_config.h). */
HK_INLINE void hk_outbox_flush_due(hk_heap *h) {
  _Static_assert((HK_OUTBOX_FLUSH_TICKS & (HK_OUTBOX_FLUSH_TICKS - 1)) == 0, "power of two");
  if ((h->tick & (HK_OUTBOX_FLUSH_TICKS - 1)) == 0) hk_outbox_flush(h);
}

/* Reclaim every queue the pending set names (owner only). One load when
 * nothing is pending (relaxed: a bit missed now is seen next time, and the
 * acquire exchange in collect_pending orders what it finds). */
HK_INLINE void hk_remote_collect(hk_heap *h) {
  if (HK_UNLIKELY(hk_load_relaxed(&h->pend_summary) != 0)) hk_remote_collect_pending(h);
}
/* Take ss's whole queue and return the blocks to their slabs (owner only). */
void hk_remote_drain(hk_heap *h, hk_superslab *ss);

#endif /* HK_REMOTE_H */
