/* formal/heap_batch.pml -- carving fresh heaps from a batch mapping
 * (src/core/heap.c hk_heap_carve; hk_heap_create calls it when the pool of
 * retired heaps is empty).
 *
 * Configuration: NT (3) threads, each creating NH (2) heaps from batches of
 * BATCH (2) heaps, so batches run out under the threads' feet and several
 * threads find the same batch used up at once. Any mapping may fail
 * (a nondeterministic choice): a failed batch mapping falls back to one
 * heap mapped alone, which may fail too (NULL). Memory order is not
 * modelled (sequentially consistent steps; see README.md).
 *
 * What maps to what (src/core/heap.c, the statements named):
 *   bid, cnt       hk_heap_batch: the batch's page number (high 48 bits;
 *                  here a batch number, 0: none yet) and how many of its
 *                  heaps are taken (low 16)
 *   refilling      hk_heap_refilling, the try-flag of the one refiller
 *   carve          `while (w != 0 && (w & 0xffff) < HK_HEAP_BATCH)`:
 *                  `atomic_compare_exchange_weak_explicit(&hk_heap_batch,
 *                  &w, w + 1, ...)` won: heap number `w & 0xffff` of the
 *                  batch; lost (or spuriously): w reloaded, again
 *   flag           `hk_xchg_acquire(&hk_heap_refilling, 1u) != 0`: taken,
 *                  `return hk_os_map(HK_HEAP_MAP_SIZE)` (one heap alone)
 *   recheck        `now = hk_load_acquire(&hk_heap_batch)`, `now != w`:
 *                  `hk_store_release(&hk_heap_refilling, 0u)`, `w = now`,
 *                  `continue`
 *   refill         `fresh = hk_os_map(HK_HEAP_BATCH * HK_HEAP_MAP_SIZE)`,
 *                  `hk_store_release(&hk_heap_batch, fresh | 1)` (heap 0 is
 *                  the refiller's), `hk_store_release(&hk_heap_refilling,
 *                  0u)`; fresh == NULL: one heap alone
 *
 * Checked (`asserts`): no heap of a batch is handed out twice; a batch is
 * replaced only when all its heaps are taken (none stranded: a stranded
 * heap is address space nobody can carve or unmap); at the end every batch
 * but the current one is fully taken, the current one exactly up to its
 * count, and the try-flag is free. Invalid end states: nobody waits for
 * anybody (the flag is a try-flag). Mutants: heap_batch_carve_no_cas (a
 * load and a store instead of the CAS), heap_batch_no_recheck (the
 * refiller does not look at the word again after taking the flag),
 * heap_batch_no_flag (every thread that finds the batch used up refills).
 *
 * Not modelled: the fork child's release of the flag (hk_heap_fork_child:
 * the child has one thread), the pool (a Treiber stack: tstack.pml). */

#define NT    3                 /* threads */
#define NH    2                 /* heaps each thread creates */
#define BATCH 2                 /* HK_HEAP_BATCH */
#define MAXB  (NT * NH + 1)     /* batch numbers 1.. */

byte bid = 0;                   /* hk_heap_batch: batch, 0 = none */
byte cnt = 0;                   /*   and heaps taken */
bit  refilling = 0;             /* hk_heap_refilling */

/* Ghost state */
byte nbatch = 0;                /* batches mapped so far */
byte taken[MAXB + 1];           /* heaps handed out, per batch (a bit each) */
byte ndone = 0;

inline take(b, i) {
  assert((taken[b] & (1 << (i))) == 0);               /* handed out once */
  taken[b] = taken[b] | (1 << (i))
}

/* hk_heap_carve: got = 1 with a heap (of a batch or alone), 0 for NULL */
inline carve() {
  d_step { wb = bid; wc = cnt };                      /* load acquire */
  do
  :: wb != 0 && wc < BATCH ->                         /* the carve loop */
#ifdef MUT_CARVE_NO_CAS
     /* BUG: w + 1 stored plainly after the load */
     d_step { bid = wb; cnt = wc + 1; take(wb, wc); got = 1; wb = 0; wc = 0 };
     break
#else
     if
     :: d_step {
          bid == wb && cnt == wc ->                   /* CAS won */
          cnt = wc + 1; take(wb, wc); got = 1; wb = 0; wc = 0
        };
        break
     :: d_step { wb = bid; wc = cnt }                 /* lost, or spuriously: reload */
     fi
#endif
  :: else ->                                          /* used up, or none yet */
#ifndef MUT_NO_FLAG
     if
     :: d_step { refilling == 1 -> skip };            /* taken: one heap alone */
        if :: got = 1 :: got = 0 fi;                  /* its mapping may fail */
        break
     :: d_step { refilling == 0 -> refilling = 1 }    /* ours */
     fi;
#endif
#ifndef MUT_NO_RECHECK
     if
     :: d_step { bid != wb || cnt != wc ->            /* refilled while we looked */
          refilling = 0; wb = bid; wc = cnt }
     :: d_step { bid == wb && cnt == wc -> skip }
        -> goto refill
     fi
#else
     goto refill
#endif
  od;
  goto carved;
refill:
  if
  :: d_step {                                         /* the batch mapped: install it */
       assert(bid == 0 || cnt == BATCH);              /* nothing of the old one stranded */
       nbatch++; bid = nbatch; cnt = 1; take(nbatch, 0); got = 1;
       wb = 0; wc = 0
     }
  :: d_step { wb = 0; wc = 0 };                       /* refused: one heap alone */
     if :: got = 1 :: got = 0 fi
  fi;
  refilling = 0;
carved:
  skip
}

proctype T() {
  byte wb = 0, wc = 0, n = 0;
  bit got = 0;
  do
  :: n < NH -> carve(); got = 0; n++
  :: else -> break
  od;
  ndone++
}

active proctype End() {
  byte b;
  ndone == NT;
  d_step {
    assert(refilling == 0);
    b = 1;
    do
    :: b <= nbatch ->
       if
       :: b == bid -> assert(taken[b] == (1 << cnt) - 1)  /* the current one: up to its count */
       :: else -> assert(taken[b] == (1 << BATCH) - 1)    /* the others: all taken */
       fi;
       b++
    :: else -> break
    od
  }
}

init {
  byte t;
  atomic { for (t : 1 .. NT) { run T() } }
}
