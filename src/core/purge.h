/* purge.h -- decommitting the pages of UNUSED slabs: by their owner once the
 * decommit delay has passed, and by any other thread once it has passed
 * twice, so that a thread gone idle does not pin what it freed (DESIGN.md,
 * "Memory return"). Model: formal/purge.pml.
 *
 * One slab's pages while the slab is UNUSED, in bits of ss->purge (D: bit i,
 * dirty; P: bit 32 + i, purging):
 *
 *   CLEAN    D=0 P=0  decommitted, or never touched
 *   DIRTY    D=1 P=0  may hold committed pages, since dirty_ms[i]
 *   PURGING  D=0 P=1  a thread other than the owner is decommitting them
 *
 *   in use  --owner releases it: dirty_ms[i], then fetch_or D (release)--> DIRTY
 *   DIRTY   --owner takes it: CAS D 1->0 with P=0-->                     in use, pages reused
 *   CLEAN   --owner takes it: acquire load sees D=0 P=0-->               in use
 *   PURGING --owner's take skips it (takes another slab, or none)-->    PURGING
 *   DIRTY   --any purger: CAS D=1,P=0 -> D=0,P=1 (acquire)-->            PURGING
 *   PURGING --that purger decommits, then fetch_and ~P (release)-->      CLEAN
 *
 * The owner's own purge is a purger that needs no P (it cannot be taking
 * the slab at the same time): CAS D 1->0, then decommit.
 *
 * Safety (pages are never decommitted while the slab is in use): a purger
 * claims only with D=1, which the owner sets after the slab is UNUSED and
 * clears, by CAS, before it uses the slab again; the owner uses a slab only
 * after that CAS succeeded (no claim can follow) or after an acquire load
 * saw D=0 P=0, which orders the last purger's decommit (its release
 * fetch_and) before the owner's writes to the pages. Progress: nobody
 * waits; the owner skips a PURGING slab, a purger that loses a CAS moves on.
 *
 * Other threads find SuperSlabs through the address map's SuperSlab bitmap,
 * inside an epoch section, so a SuperSlab retired meanwhile stays mapped
 * until they are done (formal/retire.pml: the scanner is one more reader). */
#ifndef HK_PURGE_H
#define HK_PURGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "epoch/epoch.h"
#include "hk_atomic.h"
#include "hk_types.h"

#define HK_PURGING(bit) ((uint64_t)(bit) << 32)

/* Dirty slabs of ss (owner's view; relaxed: a hint for its deadlines). */
HK_INLINE uint32_t hk_purge_dirty(hk_superslab *ss) { return (uint32_t)hk_load_relaxed(&ss->purge); }

/* Owner: slab i went UNUSED with pages it touched, at `now`. */
HK_INLINE void hk_purge_mark_dirty(hk_superslab *ss, unsigned i, uint64_t now) {
  hk_store_relaxed(&ss->dirty_ms[i], now);
  /* Release: dirty_ms before the bit; pairs with a purger's acquire load. */
  hk_or_release(&ss->purge, (uint64_t)1 << i);
}

/* Owner: the lowest slab of `candidates` (UNUSED slabs) that is not being
 * purged, claimed for use (its dirty bit cleared); -1 when every candidate
 * is being purged. */
int hk_purge_claim_for_use(hk_superslab *ss, uint32_t candidates);

/* Owner: decommit the dirty slabs of ss whose delay has passed. Returns the
 * next deadline among the rest, 0 when none is left dirty. */
uint64_t hk_superslab_purge(hk_superslab *ss, uint64_t now, uint64_t delay);

/* Any thread, outside a section (it enters its own on rec): decommit other
 * owners' dirty slabs, those dirty since at least twice the delay or, with
 * `all` (hak_collect), every one. Returns how many slabs it decommitted. */
size_t hk_purge_others(hk_epoch_rec *rec, uint64_t now, bool all);

/* In a fork child (single-threaded): a slab a parent thread was purging at
 * the fork would stay PURGING forever; it becomes DIRTY again (its pages
 * may or may not have been decommitted). */
void hk_purge_fork_child(void);

/* From an owner's periodic maintenance: at most one thread per delay period
 * runs hk_purge_others (a try-claim of the next due time, never a wait). */
void hk_purge_others_maybe(hk_epoch_rec *rec, uint64_t now);

#endif /* HK_PURGE_H */
