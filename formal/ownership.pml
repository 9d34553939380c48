/* formal/ownership.pml -- abandon and adopt (src/remote/abandon.c) with
 * remote frees (src/remote/remote.c) racing both.
 *
 * Configuration: one SuperSlab, first owned by heap 1 (process H1, a thread
 * that runs a few slow paths and then exits); two other threads, heaps 2 and
 * 3 (process Adopter), each of which may try to adopt it from the abandoned
 * stack, may give up (it would map a SuperSlab of its own), and, once it owns
 * it, may run slow paths and then either exit in turn (abandoning it again)
 * or stay. Two sender threads free 2 blocks each (blocks 1..4) through their
 * outboxes, as in remote_free.pml, and notify whichever heap the owner word
 * names after a push that saw an empty queue.
 *
 * What maps to what (file and line of the C code):
 *   owner                  hk_superslab.owner (hk_types.h); 0 = ABANDONED
 *   head, nxt[]            hk_superslab.remote_head, hk_block.next
 *   pend_word[h],          heap h's pend_words[] bit and pend_summary bit of
 *   pend_summary[h]        the SuperSlab's bucket
 *   stk_top, stk_ver       hk_abandoned[kind].head (core/tstack.h): node and
 *                          version; the SuperSlab's stack_next is always NULL
 *                          here (one SuperSlab), so the pop's `next` is NIL
 *   stack_push             hk_tstack_push (tstack.h): load, CAS (node, ver+1)
 *   stack_pop              HK_TSTACK_POP (tstack.h): load, CAS (next, ver+1)
 *   push, notify, flush,   as in remote_free.pml (remote.c l.38-92); notify
 *   Sender                 loads owner (l.41) and returns when it is
 *                          ABANDONED (l.42), else sets that heap's bits
 *   collect, drain,        hk_remote_collect, hk_remote_collect_pending,
 *   reclaim                hk_remote_drain, hk_remote_reclaim (l.96-155)
 *   teardown               api/thread.c hk_thread_teardown: outbox flush
 *                          (empty: owners send nothing here), collect, abandon
 *   abandon                abandon.c hk_abandon_all l.29 (release store of
 *                          ABANDONED) then l.30 (push on the abandoned stack)
 *   adopt                  abandon.c hk_adopt_one l.43 (pop), l.48 (CAS
 *                          ABANDONED -> me), l.49 (HK_ASSERT(won)), l.51
 *                          (absorb: owner-only, not modelled), l.52 (drain:
 *                          an exchange of the head, whatever it holds)
 *   Adopter's retries      api/malloc_slow.c hk_refill_with_superslab: up to
 *                          HK_ADOPT_BATCH adoptions per slow path
 *
 * Checked (formal/check.sh), all safety (-DSAFETY):
 *   asserts  no block is reclaimed twice (reclaim); only the thread the owner
 *            word names reclaims (drain); the adopter's CAS wins (HK_ASSERT,
 *            adopt); nobody abandons a SuperSlab it does not own (abandon);
 *            at the end (every thread finished) each block was reclaimed
 *            exactly once or sits in the queue of a SuperSlab that is
 *            abandoned and on the abandoned stack, waiting for its adopter
 *            (no block lost), and an owned SuperSlab has an empty queue
 *   one_owner (ltl) at most one thread believes it owns the SuperSlab: the
 *            first owner until its ABANDONED store, an adopter from its CAS.
 * Not checked here: progress (see remote_free.pml; here a SuperSlab nobody
 * adopts keeps its queue by design), ABA on the stack with several nodes (one
 * SuperSlab), heap reuse from the pool (a stale notification then sets a bit
 * in a reused heap: one empty look).
 *
 * Spin explores sequentially consistent interleavings. One exception, in the
 * mutant MUT_ADOPT_PLAIN_CHECK only: there the adopter's plain load of the
 * head may also return NIL, a stale value C11 allows it. See that mutant and
 * README.md.
 *
 * Mutants (formal/mutants/ownership_*.pml) #define one MUT_* switch and
 * #include this file. */

#define NSEND   2
#define NPER    2
#define NBLK    4
#define NIL     0
#define SS      1               /* the SuperSlab, as a stack node */
#define ABANDONED 0             /* HK_OWNER_ABANDONED */
#define NHEAP   3               /* heaps 1 (H1), 2 and 3 (Adopters) */

byte owner = 1;                 /* ss->owner */
byte head = NIL;                /* ss->remote_head */
byte nxt[NBLK + 1];             /* hk_block.next */
bit  pend_word[NHEAP + 1];      /* heap h's bucket bit */
bit  pend_summary[NHEAP + 1];   /* heap h's summary bit */
byte stk_top = NIL;             /* hk_abandoned[kind].head: node ... */
byte stk_ver = 0;               /* ... and version */

/* Ghost state */
bit  reclaimed[NBLK + 1];
byte nreclaimed = 0;
byte owners = 1;                /* threads that believe they own the SuperSlab */
byte senders_done = 0;
byte threads_done = 0;          /* H1 and the Adopters */


/* ---------------------------------------------------------------- sender */

/* hk_remote_push + hk_remote_notify. The CAS loop is modelled by its
 * successful iteration, one atomic step: a failed CAS writes nothing and only
 * reloads `old` (remote_free.pml models the loop itself). The three shared
 * accesses of the notification stay separate steps. Locals are reset in the
 * step that ends the push. */
inline flush() {
  d_step {                                            /* remote.c l.52-57 */
    old = head; nxt[otail] = old; head = ohead;
    if :: old != NIL -> old = NIL; ohead = NIL; otail = NIL :: else fi
  };
  if
  :: ohead != NIL ->                                  /* the CAS saw NULL: l.60 */
     o = owner;                                       /* l.41 */
     if
     :: o != ABANDONED ->                             /* l.42 */
        pend_word[o] = 1;                             /* l.46 */
        d_step { pend_summary[o] = 1; o = 0; ohead = NIL; otail = NIL }  /* l.47 */
     :: else -> d_step { ohead = NIL; otail = NIL }
     fi
  :: else
  fi
}

proctype Sender(byte first) {
  byte ohead = NIL, otail = NIL;                      /* the outbox slot */
  byte old = NIL, o = 0;
  byte b = first;
  do
  :: b < first + NPER ->
     d_step {                                         /* hk_remote_free l.76-87 */
       if
       :: otail == NIL -> otail = b; nxt[b] = NIL
       :: else -> nxt[b] = ohead
       fi;
       ohead = b; b++
     };
     if :: flush() :: skip fi
  :: else -> break
  od;
  if :: otail != NIL -> flush() :: else fi;           /* hk_outbox_flush_all */
  d_step { senders_done++; b = 0 }
}

/* ----------------------------------------------------------------- owner */

/* hk_remote_drain + hk_remote_reclaim: the walk is owner-private */
inline drain() {
  d_step {
    assert(owner == me);                              /* only the owner reclaims */
    chain = head; head = NIL;                         /* remote.c l.134 */
    do
    :: chain != NIL ->
       assert(reclaimed[chain] == 0);                 /* reclaimed at most once */
       if :: reclaimed[chain] -> break :: else fi;
       reclaimed[chain] = 1; nreclaimed++;
       chain = nxt[chain]
    :: else -> break
    od;
    chain = NIL
  }
}

/* hk_remote_collect(h) + hk_remote_collect_pending(h), heap me */
inline collect() {
  if
  :: pend_summary[me] != 0 ->                         /* remote.h relaxed load */
     d_step { summary = pend_summary[me]; pend_summary[me] = 0 };   /* l.139 */
     if
     :: summary ->
        d_step { summary = 0; bits = pend_word[me]; pend_word[me] = 0 };  /* l.145 */
        if
        :: bits ->                                    /* l.151-152; `listed`: */
           if                                         /* SS is in our bucket */
           :: listed && head != NIL -> bits = 0; drain()
           :: else -> bits = 0
           fi
        :: else
        fi
     :: else
     fi
  :: else
  fi
}

/* hk_tstack_push(&hk_abandoned[kind], ss): the successful CAS iteration */
inline stack_push() {
  d_step { stk_top = SS; stk_ver++ }                  /* stack_next = NIL */
}

/* HK_TSTACK_POP(&hk_abandoned[kind]): got = the node, or NIL */
inline stack_pop() {
#ifdef MUT_ADOPT_NO_CAS
  /* BUG: peek the top, then unlink it with a plain store (no CAS) */
  got = stk_top;
  if :: got != NIL -> stk_top = NIL :: else fi
#else
  d_step {                                            /* load + CAS (next, ver+1) */
    got = stk_top;
    if :: got != NIL -> stk_top = NIL; stk_ver++ :: else fi
  }
#endif
}

/* hk_abandon_all, for our one SuperSlab */
inline abandon() {
#ifdef MUT_PUSH_BEFORE_STORE
  stack_push();                                       /* BUG: published first */
  d_step { assert(owner == me); owner = ABANDONED; owners--; listed = 0 };
#else
  d_step { assert(owner == me); owner = ABANDONED; owners--; listed = 0 };  /* l.22-29 */
  stack_push()                                        /* l.30 */
#endif
}

/* hk_thread_teardown: outbox flush (empty), collect, abandon, retire */
inline teardown() {
  collect();
  abandon()
}

/* hk_adopt_one, after a successful pop */
inline adopt() {
#ifdef MUT_ADOPT_NO_CAS
  d_step { owner = me; owners++; assert(owners <= 1) };  /* BUG: plain store */
#else
  d_step {                                            /* abandon.c l.48 */
    if
    :: owner == ABANDONED -> owner = me; owners++; won = 1;
       assert(owners <= 1)                            /* at most one owner */
    :: else -> won = 0
    fi
  };
  assert(won);                                        /* l.49 HK_ASSERT(won) */
  won = 0;
#endif
  listed = 1;                                         /* l.51 hk_heap_absorb_superslab */
#if defined(MUT_ADOPT_PLAIN_CHECK)
  /* BUG: a plain emptiness check instead of the exchange. The load is not an
   * RMW, so C11 lets it return a value older than the latest: here NIL, the
   * value written by the previous owner's last exchange (or the initial
   * NULL), which is the latest write to the head that happens-before this
   * load (the previous owner's release store of ABANDONED, acquired by our
   * CAS, orders its exchanges before us; no sender's push is ordered before
   * us: senders release nothing we acquire). The senders' loads of owner
   * stay as in the SC interleaving, which C11 allows too. */
  if
  :: head != NIL -> drain()                           /* saw the latest value */
  :: true                                             /* saw stale NIL: skip */
  fi
#elif defined(MUT_ADOPT_NO_DRAIN)
  skip                                                /* BUG: rely on notifications */
#else
  drain()                                             /* l.52: exchange */
#endif
}

active proctype H1() {
  byte me = 1;
  byte chain = NIL;
  bit summary = 0, bits = 0, listed = 1;
  teardown();                                         /* its last slow path */
  threads_done++
}

proctype Adopter(byte me) {
  byte chain = NIL, got = NIL;
  bit summary = 0, bits = 0, won = 0, listed = 0;
  do
  :: stk_top != NIL ->                                /* (an empty pop = giving up) */
     stack_pop();                                     /* abandon.c l.43 */
     if
     :: got != NIL -> adopt(); break
     :: else                                          /* lost the race; may retry */
     fi
  :: break                                            /* maps its own instead */
  od;
  if
  :: got != NIL ->
     if
     :: teardown()                                    /* exits: abandons it again */
     :: senders_done == NSEND -> collect()            /* stays: one more slow path */
     fi
  :: else
  fi;
  got = NIL;
  threads_done++
}

/* The end state: nothing lost. */
active proctype Check() {
  byte b = NIL, n = 0;
  senders_done == NSEND && threads_done == 1 + 2;
  d_step {
    /* blocks still queued: never reclaimed, and their SuperSlab is abandoned
     * and findable, so its next adopter drains them */
    b = head;
    do
    :: b != NIL -> assert(!reclaimed[b]); n++; b = nxt[b]
    :: else -> break
    od;
    assert(nreclaimed + n == NBLK);
    assert(head == NIL || owner == ABANDONED);
    assert((owner == ABANDONED) == (stk_top == SS));
    b = NIL; n = 0
  }
}

init {
  atomic {
    run Sender(1);
    run Sender(1 + NPER);
    run Adopter(2);
    run Adopter(3)
  }
}
