/* epoch.h -- safe reclamation through Concurrency Kit's ck_epoch.
 * Model: formal/retire.pml.
 *
 * Readers: a thread that dereferences a SuperSlab it does not own (a sender
 * notifying the owner after its push, a popper of an abandoned stack or of
 * the heap pool) does so between
 * hk_epoch_enter and hk_epoch_exit on its own record, one section per batch.
 *
 * Retirement: an object that no new reader can reach any more (unlinked from
 * every list, its address-map entry tombstoned) is handed to hk_epoch_retire
 * with a callback. After a grace period (every reader section that was open
 * when it was retired has ended) the callback runs, on whichever thread
 * polls; the callback may reuse or unmap the memory.
 *
 *   LINKED  --owner unlinks, tombstones the map-->          UNLINKED
 *   UNLINKED --hk_epoch_retire (push on the retire queue)--> QUEUED
 *   QUEUED  --poller: ck_epoch_call on the reclaim record--> DEFERRED
 *   DEFERRED --ck_epoch_poll sees the grace period-->        RECLAIMED (callback)
 *
 * Nobody waits: the retire queue is a lock-free push; polling is done by
 * whichever slow path wins a try-flag (losers skip, they never spin), from
 * maintenance ticks at most once per clock tick, and
 * the malloc/free paths never call ck_epoch_synchronize or ck_epoch_barrier.
 * ck_epoch_call and ck_epoch_poll both run only under the try-flag, on one
 * static reclaim record that is never used as a reader, so ck's rule "one
 * thread per record" holds and a record that belonged to an exiting thread
 * never holds pending callbacks (it is unregistered and recycled at once).
 *
 * Records: a thread takes one with ck_epoch_recycle (a record left FREE by an
 * exited thread) and registers a fresh one only when none is free, so the
 * record list never outgrows the peak number of threads holding one at once.
 * Records are never unmapped (ck keeps them linked forever). */
#ifndef HK_EPOCH_H
#define HK_EPOCH_H

#include <ck_epoch.h>
#include <stdbool.h>
#include <stdint.h>

#include "hk_types.h" /* hk_retired: lives in the retired object itself */

#ifdef HK_TSAN
#include <sanitizer/tsan_interface.h>
/* TSan cannot see inside the compiled libck (ck_epoch_poll's scan of the
 * records is uninstrumented), so the happens-before a grace period gives,
 * "every access in a section that was open at retirement happens-before
 * the callback", is stated to it: each section end releases this clock and
 * every callback acquires it before reusing memory. */
extern char hk_epoch_tsan_clock;
#define HK_TSAN_RELEASE(a) __tsan_release((void *)(a))
#define HK_TSAN_ACQUIRE(a) __tsan_acquire((void *)(a))
#else
#define HK_TSAN_RELEASE(a) ((void)0)
#define HK_TSAN_ACQUIRE(a) ((void)0)
#endif

typedef ck_epoch_record_t hk_epoch_rec;


/* A record for the calling thread (recycled or freshly registered); NULL
 * (errno untouched) only when no page for a new one could be mapped. */
hk_epoch_rec *hk_epoch_acquire(void);
/* Give the record back (thread exit): it becomes FREE for ck_epoch_recycle. */
void hk_epoch_release(hk_epoch_rec *r);

HK_INLINE void hk_epoch_enter(hk_epoch_rec *r) { ck_epoch_begin(r, NULL); }
HK_INLINE void hk_epoch_exit(hk_epoch_rec *r) {
  HK_TSAN_RELEASE(&hk_epoch_tsan_clock);
  ck_epoch_end(r, NULL);
}

/* Hand `obj` (already unreachable for new readers) to reclamation; `fn` runs
 * after a grace period. Any thread, lock-free, never waits. */
void hk_epoch_retire(hk_retired *obj, void (*fn)(hk_retired *));

/* Objects retired and not yet reclaimed (relaxed: a hint for when to poll). */
extern _Atomic uint64_t hk_epoch_pending;

/* Reclaim what a grace period has freed, if this thread wins the try-flag.
 * Never waits; cheap when nothing is pending. */
void hk_epoch_poll(void);
HK_INLINE void hk_epoch_maybe_poll(void) {
  if (HK_UNLIKELY(atomic_load_explicit(&hk_epoch_pending, memory_order_relaxed) != 0)) hk_epoch_poll();
}
/* The same, at most once per clock tick process-wide (epoch.c): for the
 * callers that come often (every heap's maintenance tick). A poll reads
 * every thread's record and may advance the global epoch, whose line every
 * section entry then misses; unpaced, every heap's tick polled while
 * anything was retired. Per-event callers (thread exit, SuperSlab
 * creation) poll unpaced: a thread's exit reclaims the heaps retired before
 * it, which keeps thread churn on pooled heaps. */
void hk_epoch_poll_paced(void);
HK_INLINE void hk_epoch_maybe_poll_paced(void) {
  if (HK_UNLIKELY(atomic_load_explicit(&hk_epoch_pending, memory_order_relaxed) != 0)) hk_epoch_poll_paced();
}
/* In a fork child (pthread_atfork), where only the forking thread lives:
 * every record but `keep` (the forking thread's, or NULL) and the reclaim
 * record goes back to ck as its thread's exit would have given it. A parent
 * thread that was inside a section at the fork would otherwise hold back
 * every grace period of the child forever. A poll another thread was running
 * is abandoned with the try-flag released: callbacks it had taken out of ck
 * and not yet run are lost (a leak, never a use after free). A registration
 * of the reclaim record left half done is finished. */
void hk_epoch_fork_child(const hk_epoch_rec *keep);

/* hak_collect only (never malloc/free): poll until nothing is pending or a
 * bounded number of rounds (yielding between them) has passed. Must not be
 * called inside a section. Returns the number of objects reclaimed. */
uint64_t hk_epoch_drain(void);

#endif /* HK_EPOCH_H */
