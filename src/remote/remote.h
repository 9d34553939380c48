/* remote.h -- cross-thread frees: the per-SuperSlab MPSC queue, sender-side
 * batching (the outbox), the owner's pending set and batched reclaim. */
#ifndef HK_REMOTE_H
#define HK_REMOTE_H

#include "core/heap.h"

/* Free b, a block of ss that the calling thread (heap h, possibly the empty
 * heap of an uninitialised or exited thread) does not own. */
void hk_remote_free(hk_heap *h, hk_superslab *ss, hk_block *b);
/* Push every outbox chain to its SuperSlab. */
void hk_outbox_flush(hk_heap *h);
/* Reclaim every queue the pending set names (owner only). One load when
 * nothing is pending. */
void hk_remote_collect(hk_heap *h);
/* Take ss's whole queue and return the blocks to their slabs (owner only). */
void hk_remote_drain(hk_heap *h, hk_superslab *ss);

#endif /* HK_REMOTE_H */
