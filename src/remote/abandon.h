/* abandon.h -- ownership changes: a dead thread's SuperSlabs go to a global
 * lock-free stack; live threads adopt them before mapping new ones. */
#ifndef HK_ABANDON_H
#define HK_ABANDON_H

#include "core/heap.h"

/* Thread exit: give up every SuperSlab h owns (h must not touch them after). */
void hk_abandon_all(hk_heap *h);
/* Adopt abandoned SuperSlabs that can serve class cls (or hold frees
 * nobody reclaimed) into h, reclaiming those frees, until one gives h a
 * slab of cls: that slab, now h->cur[cls]; NULL when a bounded number of
 * looks found none. */
hk_slab *hk_adopt_for(hk_heap *h, unsigned cls);
/* hak_collect: adopt every abandoned SuperSlab into h, reclaiming its
 * pending frees; those left empty are retired. Returns how many. */
size_t hk_adopt_all(hk_heap *h);
/* A remote free made the queue of ss, abandoned, non-empty (remote.c). */
void hk_abandoned_freed(hk_superslab *ss);

#endif /* HK_ABANDON_H */
