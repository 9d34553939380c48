/* formal/purge.pml -- decommitting one UNUSED slab's pages: its owner
 * against other purgers (src/core/purge.{h,c}, src/core/superslab.c
 * hk_superslab_take_slab / hk_superslab_release_slab).
 *
 * Configuration: one slab of one SuperSlab; its owner cycles CYCLES times
 * through use, release (dirty), and either its own purge or taking the slab
 * back; NP purgers (other threads' scans, hak_collect) each try to claim and
 * decommit it PTRIES times. Memory order is not modelled (sequentially
 * consistent steps, as in the other models; see README.md).
 *
 * What maps to what (src/core/purge.c unless named):
 *   D, P            bits i and 32 + i of ss->purge (dirty, purging)
 *   inuse           the owner has taken the slab: a class carves and
 *                   writes its pages (heap.c hk_heap_refill onwards)
 *   decom           a purger is inside hk_purge_decommit (madvise)
 *   release         superslab.c hk_superslab_release_slab ->
 *                   purge.h hk_purge_mark_dirty: `hk_or_release(&ss->purge,
 *                   (uint64_t)1 << i)`
 *   take            hk_purge_claim_for_use: `uint64_t w =
 *                   hk_load_acquire(&ss->purge)`, `usable = candidates &
 *                   ~(uint32_t)(w >> 32)`, CLEAN: `return (int)i`, DIRTY:
 *                   `atomic_compare_exchange_weak_explicit(&ss->purge, &w, w & ~bit, ...)`
 *   own purge       hk_superslab_purge: `if (hk_and_relaxed(&ss->purge,
 *                   ~bit) & bit) hk_purge_decommit(ss, i)`
 *   claim           hk_purge_foreign: `hk_cas_weak_acq_rel(&ss->purge,
 *                   &cur, (cur & ~bit) | HK_PURGING(bit))` while `(cur &
 *                   bit) != 0 && (cur & HK_PURGING(bit)) == 0`
 *   unclaim         hk_purge_foreign: `hk_and_release(&ss->purge,
 *                   ~HK_PURGING(bit))` after the decommit
 *
 * Checked (`asserts`): the slab's pages are never decommitted while the
 * owner uses the slab: no touch of the pages by the owner during a foreign
 * decommit, and no foreign decommit starting or ending while the owner uses
 * them. Mutant: mutants/purge_take_ignores_purging.pml (the owner takes a
 * slab whose dirty bit a purger has just cleared, without looking at P). */

#ifndef NP
#define NP 2
#endif
#define CYCLES 3
#define PTRIES 2

bool D = 0;      /* dirty */
bool P = 0;      /* purging */
bool inuse = 1;  /* the owner starts with the slab in use */
byte decom = 0;  /* purgers inside their decommit */

proctype Owner() {
  byte n = 0;
  bool ld, lp, ok;
  do
  :: n < CYCLES ->
     /* using the slab: its pages are written */
     assert(decom == 0);
     assert(decom == 0);
     inuse = 0;                  /* every block came back: UNUSED */
     D = 1;                      /* release: dirty */
     if
     :: atomic { ld = D; D = 0 }; /* own purge: and-clear, decommit if it was set */
        skip                      /* the owner's decommit: no use can overlap it */
     :: skip                      /* or not purged now */
     fi;
     /* take it back (claim_for_use), as often as needed */
     do
     :: atomic { ld = D; lp = P };
#ifndef MUT_TAKE_IGNORES_P
        if
        :: lp -> skip             /* being purged: skipped, tried again later */
        :: !lp && !ld -> inuse = 1; break   /* CLEAN */
        :: !lp && ld ->
           atomic { if :: D && !P -> D = 0; ok = 1 :: else -> ok = 0 fi };
           if :: ok -> inuse = 1; break :: else -> skip fi
        fi
#else
        if
        :: !ld -> inuse = 1; break          /* BUG: P not looked at */
        :: ld ->
           atomic { if :: D -> D = 0; ok = 1 :: else -> ok = 0 fi };
           if :: ok -> inuse = 1; break :: else -> skip fi
        fi
#endif
     od;
     n++
  :: else -> break
  od
}

proctype Purger() {
  byte n = 0;
  bool claimed;
  do
  :: n < PTRIES ->
     atomic { if :: D && !P -> D = 0; P = 1; claimed = 1 :: else -> claimed = 0 fi };
     if
     :: claimed ->
        decom++;
        assert(!inuse);          /* madvise starts */
        assert(!inuse);          /* madvise ends */
        decom--;
        P = 0                    /* unclaim (release) */
     :: else -> skip
     fi;
     n++
  :: else -> break
  od
}

init {
  byte i;
  atomic {
    run Owner();
    for (i : 1 .. NP) { run Purger() }
  }
}
