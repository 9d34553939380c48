/* quarantine.h -- hardened builds: delayed reuse of freed small blocks
 * (HAKMEM_QUARANTINE=bytes), against reads and writes after free. */
#ifndef HK_QUARANTINE_H
#define HK_QUARANTINE_H

#include "hk_types.h"

#ifdef HK_HARDENED
/* Free p (a small block of `room` bytes whose checks passed, its canary's
 * tail marked freed: core/harden.h) into h's
 * quarantine, releasing the oldest blocks beyond the byte bound. */
void hk_quarantine_put(hk_heap *h, void *p, size_t room);
/* Release every quarantined block (thread exit, hak_thread_flush, collect). */
void hk_quarantine_flush(hk_heap *h);
#define HK_QUARANTINE_FLUSH(h) hk_quarantine_flush(h)
#else
#define HK_QUARANTINE_FLUSH(h) ((void)0)
#endif

#endif /* HK_QUARANTINE_H */
