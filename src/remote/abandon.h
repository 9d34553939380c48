/* abandon.h -- ownership changes: a dead thread's SuperSlabs go to a global
 * lock-free stack; live threads adopt them before mapping new ones. */
#ifndef HK_ABANDON_H
#define HK_ABANDON_H

#include "core/heap.h"

/* Thread exit: give up every SuperSlab h owns (h must not touch them after). */
void hk_abandon_all(hk_heap *h);
/* Take one abandoned SuperSlab of `kind` into h, reclaiming the frees that
 * reached it meanwhile. False when none is waiting. */
bool hk_adopt_one(hk_heap *h, int kind);

#endif /* HK_ABANDON_H */
