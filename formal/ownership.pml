/* formal/ownership.pml -- abandon, set-aside, revisit and adopt
 * (src/remote/abandon.c) with remote frees (src/remote/remote.c) racing all
 * of them.
 *
 * Configuration: one SuperSlab, first owned by heap 1 (process H1, a thread
 * that runs its last slow path and exits). Two other threads, heaps 2 and 3
 * (process Adopter), each run allocation slow paths (hk_adopt_for) any number
 * of times: each call pops the SuperSlab if it can (from `fresh`, or from
 * `visited` after splicing it onto `fresh`), then either adopts it or, when
 * it is of no use (no room for the caller's class and an empty queue), sets
 * it aside on `visited` without touching the owner word. A thread that
 * adopted it may run slow paths and then exit in turn (abandoning it again)
 * or stay. Two sender threads free 2 blocks each (blocks 1..4) through their
 * outboxes, as in remote_free.pml, and notify whichever heap the owner word
 * names after a push that saw an empty queue. When every one of these threads
 * has finished, a late thread (process Late, heap 4) runs hk_adopt_for once
 * more and the end state is checked: see "Checked".
 *
 * What maps to what. Each step names its function and the statement it
 * stands for (no line numbers: they went stale with every edit).
 *   owner                  the owner word, hk_ss_owner_word(ss) (hk_types.h,
 *                          superslab.h); 0 = ABANDONED
 *   head, nxt[]            hk_superslab.remote_head, hk_block.next
 *   pend_word[h],          heap h's pend_words[] bit and pend_summary bit of
 *   pend_summary[h]        the SuperSlab's bucket
 *   fresh, visited         hk_abandoned[kind].fresh.head and .visited.head
 *                          (abandon.c `hk_tstack fresh;`, `hk_tstack visited;`,
 *                          core/tstack.h): the node only.
 *                          With one node the version half of the word is
 *                          left out: a pop's CAS that races a pop-push of the
 *                          same node installs the same `next` (NIL), so ABA
 *                          is harmless here, and nothing else reads it.
 *   ss_next                hk_superslab.stack_next (NIL whenever the code is
 *                          right: one node; mutants can make it a cycle)
 *   room                   hk_superslab.room, computed by the abandoner before
 *                          its release store (`ss->room =
 *                          hk_room_of(ss)`) and read by the popper after its
 *                          acquire pop: whether it has room for the popper's
 *                          class is a nondeterministic choice of the popper
 *                          (every class, every slab state)
 *   stack_push(stk)        hk_tstack_push (tstack.h): relaxed load,
 *                          link = node(old), CAS (node, ver+1); the
 *                          successful iteration as one step (a failed CAS
 *                          writes nothing). Two nodes, ABA and the pop's
 *                          reload order: tstack.pml
 *   stack_pop              HK_TSTACK_POP(&set->fresh, ...) (tstack.h):
 *                          acquire load, read next, CAS (next,
 *                          ver+1); one step
 *   push, notify, flush,   as in remote_free.pml: hk_remote_push (remote.c
 *   Sender                 relaxed load, `tail->next =
 *                          old`, CAS, notify when it saw NULL),
 *                          hk_remote_notify (load owner
 *                          `hk_load_acquire(hk_ss_owner_word(ss))`,
 *                          ABANDONED: `hk_abandoned_freed(ss)` and return,
 *                          word bit, summary bit),
 *                          hk_outbox_flush_slot,
 *                          hk_remote_free (link in front, or
 *                          hk_outbox_start binds the slot; full: the slot
 *                          is flushed), hk_outbox_flush_all
 *   collect, drain,        hk_remote_collect (remote.h: relaxed
 *   reclaim                load), hk_remote_collect_pending (exchange
 *                          summary, exchange word,
 *                          relaxed check then drain), hk_remote_drain
 *                          (both through hk_remote_take_chain:
 *                          `hk_xchg_acq_rel(&ss->remote_head, NULL)`),
 *                          hk_remote_reclaim
 *                          (per block)
 *   teardown               api/thread.c hk_thread_teardown:
 *                          hk_outbox_flush (empty: owners send nothing
 *                          here), hk_remote_collect, hk_abandon_all
 *   abandon                hk_abandon_all: room,
 *                          `hk_store_release(hk_ss_owner_word(ss),
 *                          HK_OWNER_ABANDONED)`, `hk_tstack_push(
 *                          &set->fresh, ...)`
 *   revisit                hk_revisit and the pop after it:
 *                          relaxed load of visited.head, empty: return
 *                          false, CAS (0, ver+1) takes the whole chain
 *                          (one step with the successful iteration),
 *                          walk to its tail (the chain is our one
 *                          node), load fresh.head,
 *                          tail->stack_next = its node, CAS (top,
 *                          ver+1) (one step: the successful
 *                          iteration; the link is ours until the CAS
 *                          publishes it), then hk_adopt_for's
 *                          `continue` and HK_TSTACK_POP(&set->fresh)
 *                          again
 *   popped                 the pop at the top of hk_adopt_for's loop:
 *                          `HK_TSTACK_POP(&set->fresh, hk_superslab,
 *                          stack_next)`; when empty and not yet
 *                          revisited in this call (`if (revisited ||
 *                          !hk_revisit(set)) break;`), revisit (above).
 *                          (hk_abandoned_pop is gone: its pop and revisit
 *                          are inlined here.) The revisit at the top, when the
 *                          `freed` flag is set, is not modelled separately:
 *                          with one node, visited non-empty means fresh empty,
 *                          so it is the revisit after an empty pop
 *   adopt_for              hk_adopt_for: epoch section
 *                          (retire.pml), pop, nothing left:
 *                          break, the set-aside test `(ss->room & want)
 *                          == 0 && hk_load_relaxed(&ss->remote_head) ==
 *                          NULL` (the room half is the nondeterministic
 *                          choice, the head half one relaxed load),
 *                          `hk_tstack_push(&set->visited, (uintptr_t)ss,
 *                          &ss->stack_next)` at once, a second
 *                          look at the head by an RMW (raises the `freed`
 *                          flag, not modelled), `continue`,
 *                          `hk_adopt(h, ss)`
 *   set_aside              hk_tstack_push on visited inside the
 *                          loop (the owner word is not touched). The loop's
 *                          later pops and its one revisit, which may take
 *                          the SuperSlab back
 *                          off visited, are what the same Adopter's next
 *                          adopt_for does: with one SuperSlab, the model's
 *                          adopt_for ends after the set-aside
 *   adopt                  hk_adopt: CAS ABANDONED -> me,
 *                          HK_ASSERT(won),
 *                          hk_heap_absorb_superslab (owner-only, not
 *                          modelled beyond `listed`: now in our buckets), all
 *                          one step (the last two are private);
 *                          hk_remote_drain (an exchange of the head, whatever
 *                          it holds) and hk_remote_reclaim
 *   Adopter's loop         api/malloc_slow.c hk_malloc_slow (which
 *                          collects first: `hk_remote_collect(h)`) ->
 *                          hk_refill_with_superslab ->
 *                          hk_adopt_for: any number of slow paths
 *                          until one adopts
 *   Late                   a thread started after all others stopped: its
 *                          first slow path (hk_adopt_for) and the end checks
 *
 * Checked (formal/check.sh), all safety (-DSAFETY), by assertions:
 *   - no block is reclaimed twice (drain);
 *   - only the thread the owner word names reclaims (drain);
 *   - at most one owner at a time: `owners` counts the threads that believe
 *     they own the SuperSlab (the first owner until its ABANDONED store, an
 *     adopter from its CAS), asserted <= 1 wherever it grows;
 *   - custody: at most one thread holds the SuperSlab off the stacks (owner,
 *     popper, or reviser with it in its taken chain), asserted <= 1 wherever
 *     it grows -- the "only the popper may CAS it or read its slabs" of
 *     abandon.c's header;
 *   - the adopter's CAS wins (HK_ASSERT(won), adopt); nobody abandons a
 *     SuperSlab it does not own (abandon); a set-aside SuperSlab is
 *     ABANDONED (set_aside);
 *   - at the end (Late): when every sender and every other thread has
 *     finished, the SuperSlab is on exactly one stack if it is abandoned and
 *     on none if it is owned; then Late's hk_adopt_for, whatever class it
 *     wants, finds it if it is abandoned (on fresh or, after the splice, on
 *     visited) and adopts it if its queue holds frees; after that the queue
 *     is empty and every block was reclaimed exactly once (nreclaimed ==
 *     NBLK). So blocks freed into a SuperSlab while it was set aside (the
 *     popper's relaxed load saw an empty queue, the push landed before or
 *     after its push on visited, the sender read ABANDONED and notified
 *     nobody) are reclaimed by the next thread that pops it: none is lost.
 *     An owner that stays does one more collect after the senders finish,
 *     which must leave its queue empty.
 * Not checked here: progress (see remote_free.pml; here a SuperSlab nobody
 * pops keeps its queue by design: Late is the "somebody"), anything that
 * needs two nodes on the stacks (ABA on a stack, the splice's CAS on fresh
 * racing another push: a plain store there loses the other node, which this
 * configuration cannot show), the visit budget and the `count` hint (bounds
 * only), heap reuse from the pool (a stale notification then sets a bit in a
 * reused heap: one empty look), the `freed` flag (hk_abandoned_freed, set by
 * a notifier that reads ABANDONED; it makes the next hk_adopt_for splice
 * visited back first): a liveness aid only (with one node the model's
 * revisit on an empty fresh already covers it), retirement (an empty
 * SuperSlab retired instead of abandoned at teardown, hk_abandon_all; an
 * adopter's hk_heap_adopted never retires, it only makes an empty one the
 * spare or starts its delay, and the owner's purge retires it later: see
 * retire.pml; here the SuperSlab is never retired), and the epoch sections.
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
#define NHEAP   4               /* heaps 1 (H1), 2 and 3 (Adopters), 4 (Late) */

byte owner = 1;                 /* ss->owner */
byte head = NIL;                /* ss->remote_head */
byte nxt[NBLK + 1];             /* hk_block.next */
bit  pend_word[NHEAP + 1];      /* heap h's bucket bit */
bit  pend_summary[NHEAP + 1];   /* heap h's summary bit */
byte fresh = NIL;               /* hk_abandoned[kind].fresh.head: its node */
byte visited = NIL;             /* hk_abandoned[kind].visited.head: its node */
byte ss_next = NIL;             /* ss->stack_next */

/* Ghost state */
bit  reclaimed[NBLK + 1];
byte nreclaimed = 0;
byte owners = 1;                /* threads that believe they own the SuperSlab */
byte custody = 1;               /* threads holding it off the stacks (H1 owns it) */
byte senders_done = 0;
byte threads_done = 0;          /* H1 and the Adopters */


/* ---------------------------------------------------------------- sender */

/* hk_remote_push + hk_remote_notify. The CAS loop is modelled by its
 * successful iteration, one atomic step: a failed CAS writes nothing and only
 * reloads `old` (remote_free.pml models the loop itself). The three shared
 * accesses of the notification stay separate steps. Locals are reset in the
 * step that ends the push. */
inline flush() {
  d_step {                                            /* remote.c */
    old = head; nxt[otail] = old; head = ohead;
    if :: old != NIL -> old = NIL; ohead = NIL; otail = NIL :: else fi
  };
  if
  :: ohead != NIL ->                                  /* the CAS saw NULL: notify */
     o = owner;
     if
     :: o != ABANDONED ->
        pend_word[o] = 1;
        d_step { pend_summary[o] = 1; o = 0; ohead = NIL; otail = NIL }
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
     d_step {                                         /* hk_remote_free */
       if
       :: otail == NIL -> otail = b; nxt[b] = NIL
       :: else -> nxt[b] = ohead
       fi;
       ohead = b; b++
     };
     if :: flush() :: skip fi                         /* chain full, slot needed, ... */
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
    chain = head; head = NIL;                         /* remote.c */
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
     d_step { summary = pend_summary[me]; pend_summary[me] = 0 };
     if
     :: summary ->
        d_step { summary = 0; bits = pend_word[me]; pend_word[me] = 0 };
        if
        :: bits ->                                    /* `listed`: */
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

/* ----------------------------------------------------- the two stacks */

/* hk_tstack_push(&set->fresh or &set->visited, ss): the successful CAS
 * iteration; the pusher hands the SuperSlab over */
inline stack_push(stk) {
  d_step { ss_next = stk; stk = SS; custody-- }      /* link = node(old); CAS */
}

/* HK_TSTACK_POP(&set->fresh): got = the node, or NIL */
inline stack_pop() {
#ifdef MUT_ADOPT_NO_CAS
  /* BUG: peek the top, then unlink it with a plain store (no CAS) */
  got = fresh;
  if
  :: got != NIL -> d_step { fresh = ss_next; custody++; assert(custody <= 1) }
  :: else
  fi
#else
  d_step {                                            /* load, next, CAS (next, ver+1) */
    got = fresh;
    if
    :: got != NIL -> fresh = ss_next; custody++;
       assert(custody <= 1)                           /* the popper alone holds it */
    :: else
    fi
  }
#endif
}

/* hk_revisit, then the second pop: take all of visited (tk), splice it onto
 * fresh, pop fresh again */
inline revisit() {
#ifdef MUT_REVISIT_LOAD_STORE
  /* BUG: take the visited stack with a load and a plain store of empty */
  tk = visited;
  if
  :: tk != NIL -> d_step { visited = NIL; custody++; assert(custody <= 1) }
  :: else
  fi;
#else
  d_step {
    tk = visited;
    if
    :: tk != NIL -> visited = NIL; custody++;         /* CAS (0, ver+1) */
       assert(custody <= 1)                           /* the chain is ours alone */
    :: else                                           /* return false */
    fi
  };
#endif
  if
  :: tk != NIL ->
     /* the tail is tk (stack_next read: NIL); splice it onto fresh: */
     d_step { ss_next = fresh; fresh = tk; custody--; tk = NIL };
     stack_pop()                                      /* continue, the second pop */
  :: else
  fi
}

/* hk_adopt_for's pop and, when empty, its one revisit */
inline popped() {
  stack_pop();
  if
  :: got == NIL -> revisit()
  :: else
  fi
}

/* ----------------------------------------------------- abandon, adopt */

/* hk_abandon_all, for our one SuperSlab */
inline abandon() {
#ifdef MUT_PUSH_BEFORE_STORE
  stack_push(fresh);                                  /* BUG: published first */
  d_step { assert(owner == me); owner = ABANDONED; owners--; listed = 0 };
#else
  d_step { assert(owner == me); owner = ABANDONED; owners--; listed = 0 };
  stack_push(fresh)
#endif
}

/* hk_thread_teardown: outbox flush (empty), collect, abandon, then the heap
 * goes to the pool (hk_heap_retire) */
inline teardown() {
  collect();
  abandon()
}

/* hk_adopt, after a successful pop */
inline adopt() {
#ifdef MUT_ADOPT_NO_CAS
  d_step { owner = me; owners++; assert(owners <= 1); listed = 1 };  /* BUG: plain store */
#else
  d_step {
    won = (owner == ABANDONED);                       /* abandon.c CAS */
    if :: won -> owner = me; owners++ :: else fi;
    assert(owners <= 1);                              /* at most one owner */
    assert(won);                                      /* HK_ASSERT(won) */
    won = 0; listed = 1                               /* absorb */
  };
#endif
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
  drain()                                             /* exchange */
#endif
}

/* Set aside: onto visited at once, owner untouched */
inline set_aside() {
  d_step {
    assert(owner == ABANDONED);                       /* it stays ABANDONED */
    ss_next = visited; visited = SS; custody--;       /* hk_tstack_push(&set->visited) */
    got = NIL
  }
}

/* hk_adopt_for: got = SS when we adopted it, NIL otherwise. The set-aside
 * test as one choice: when the relaxed load of the head sees NULL the
 * SuperSlab may have no room for our class (set aside) or some (adopt); when
 * it sees frees, adopt whatever its room. One call site of adopt. */
inline adopt_for() {
  popped();                                           /* the pop; none: nothing to adopt */
  if
  :: got != NIL ->
     if
#ifdef MUT_ASIDE_ROOM_ONLY
     :: set_aside()                                   /* BUG: no room: aside, */
#else                                                 /* pending frees or not */
     :: head == NIL -> set_aside()                    /* no room, queue empty */
#endif
     :: true                                          /* room, or frees pending */
     fi;
     if :: got != NIL -> adopt() :: else fi
  :: else
  fi
}

active proctype H1() {
  byte me = 1;
  byte chain = NIL;
  bit summary = 0, bits = 0, listed = 1;
  teardown();                                         /* its last slow path */
  threads_done++
}

proctype Adopter(byte me) {
  byte chain = NIL, got = NIL, tk = NIL;
  bit summary = 0, bits = 0, won = 0, listed = 0;
  do
  :: adopt_for();                                     /* a slow path */
     if :: got != NIL -> break :: else fi             /* adopted it */
  :: break                                            /* no more slow paths */
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

/* The end state: nothing lost, nothing reclaimed twice. */
active proctype Late() {
  byte me = 4;
  byte chain = NIL, got = NIL, tk = NIL;
  bit summary = 0, bits = 0, won = 0, listed = 0;
  senders_done == NSEND && threads_done == 1 + 2;
  atomic {
    /* abandoned: on exactly one stack; owned: on none */
    assert(custody + (fresh == SS) + (visited == SS) == 1);
    assert((owner == ABANDONED) == (custody == 0));
    adopt_for();                                      /* whatever class it wants */
    assert(head == NIL);                              /* no block left behind */
    assert(nreclaimed == NBLK)                        /* each reclaimed once */
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
