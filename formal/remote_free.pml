/* formal/remote_free.pml -- the remote-free protocol of src/remote/remote.c:
 * the per-SuperSlab MPSC queue, the sender-side outbox, the owner's pending
 * set (a two-level bitmap of buckets) and collect/drain/reclaim.
 *
 * Configuration: one SuperSlab owned by one heap (the Owner process), two
 * sender threads (Sender), each freeing 2 blocks of that SuperSlab (blocks
 * 1..4). A sender's outbox may push its blocks as one chain of 2 (one CAS)
 * or as two chains of 1, so every partition of its frees into chains is
 * explored. The owner word never changes here: see ownership.pml for that.
 *
 * What maps to what (src/remote/remote.c unless named; each step names its
 * function and the statement it stands for, no line numbers: they went
 * stale with every edit):
 *   head                    hk_superslab.remote_head (hk_types.h)
 *   nxt[b]                  hk_block.next of block b
 *   pend_word               owner->pend_words[b >> 6], bit b & 63 of the
 *                           SuperSlab's bucket b = hk_bucket_of(ss)
 *   pend_summary            owner->pend_summary, bit b >> 6
 *   Sender, outbox_add      hk_remote_free: the slot already
 *                           collects for ss: link b in front (`b->next =
 *                           o->head`, `o->head = b`); otherwise
 *                           hk_outbox_start binds the slot
 *                           (`o->ss = ss`, `o->head = o->tail =
 *                           b`, `b->next = NULL`). The nondeterministic
 *                           flush after each free stands for every reason a
 *                           slot is flushed: HK_OUTBOX_CHAIN reached (
 *                           `hk_outbox_flush_slot_in_section(h, o)`), slot
 *                           needed for another SuperSlab (`if (o->ss !=
 *                           NULL) hk_outbox_flush_slot_in_section(h, o)`),
 *                           the heapless path (!h->live,
 *                           hk_remote_free_heapless, a chain of 1
 *                           pushed at `hk_remote_push(h, ss, b, b,
 *                           1)`), the outbox's byte bound (issue 12:
 *                           hk_outbox_over, whole outbox through
 *                           hk_outbox_flush_all), hak_thread_flush and every
 *                           8th allocation slow path (hk_outbox_flush_due).
 *                           Which reason, and how long a chain grows, does
 *                           not change a push. The epoch sections around these pushes
 *                           (in hk_outbox_flush_slot_in_section,
 *                           hk_remote_free_heapless, hk_outbox_flush_all)
 *                           are retire.pml's
 *                           business: no SuperSlab is retired here.
 *   Sender, final flush     hk_outbox_flush_all (`while
 *                           (h->outbox_used != 0) hk_outbox_flush_slot(...)`)
 *                           at thread exit (api/thread.c hk_thread_teardown,
 *                           `hk_outbox_flush(h)`, through
 *                           hk_outbox_flush in remote.h) or slow path
 *                           (api/malloc_slow.c)
 *   flush                   hk_outbox_flush_slot (
 *                           `hk_remote_push(h, o->ss, o->head, o->tail,
 *                           o->count)`)
 *   push                    hk_remote_push: relaxed load (
 *                           `old = hk_load_relaxed(&ss->remote_head)`),
 *                           tail->next = old, CAS (
 *                           `hk_cas_weak_acq_rel(&ss->remote_head, &old,
 *                           head)`), notify when the CAS saw NULL (`if
 *                           (old == NULL) hk_remote_notify(ss)`). tail->next
 *                           is private to the sender until the CAS publishes
 *                           it, so the model writes it in the CAS's atomic
 *                           step.
 *   notify                  hk_remote_notify: load owner (
 *                           `hk_load_acquire(hk_ss_owner_word(ss))`; fixed here), fetch_or
 *                           word bit (`hk_or_release(&owner->pend_words[b
 *                           >> 6], ...)`), then fetch_or summary bit (
 *                           `hk_or_release(&owner->pend_summary, ...)`)
 *   collect                 hk_remote_collect (remote.h): relaxed
 *                           load of pend_summary, then
 *                           hk_remote_collect_pending: exchange
 *                           summary (`hk_xchg_acquire(&h->pend_summary,
 *                           0)`), exchange the word (
 *                           `hk_xchg_acquire(&h->pend_words[w], 0)`), relaxed
 *                           emptiness check of each SuperSlab of the bucket
 *                           (`if (hk_load_relaxed(&ss->remote_head) ==
 *                           NULL) continue;`), then the drain below
 *   drain                   exchange head (`hk_xchg_acq_rel(
 *                           &ss->remote_head, NULL)`, in
 *                           hk_remote_take_chain), called by
 *                           hk_remote_collect_pending and by
 *                           hk_remote_drain (an adopter's)
 *   reclaim                 hk_remote_reclaim_one, one block at a time:
 *                           each chain a collect took is walked to its
 *                           end, up to 8 chains side by side
 *                           (hk_remote_reclaim); a taken
 *                           chain is the owner's alone, so the order of
 *                           the walks is not part of the protocol
 *   Owner's loop            the owner's allocation slow paths
 *                           (api/malloc_slow.c hk_malloc_slow), each
 *                           of which calls hk_remote_collect
 *
 * Checked (formal/check.sh):
 *   safety   (-DSAFETY, ltl no_lost_wakeup): assertions -- no block is
 *            reclaimed twice (reclaim), after the senders have finished one
 *            more collect reclaims every block and leaves the queue empty
 *            (Owner's end) -- and the invariant
 *              head != NIL -> a notifier is between its CAS and its summary
 *                             bit, or the bucket is marked (word bit set and
 *                             summary bit set or already taken by the owner),
 *                             or the owner has cleared the bit and not yet
 *                             exchanged the head (DRAINING)
 *   progress (-DPROGRESS: the owner collects forever and never stops;
 *            pan -a -f, ltl progress): under weak fairness the owner
 *            eventually reclaims all 4 blocks.
 * Spin explores sequentially consistent interleavings only; see README.md.
 *
 * Mutants (formal/mutants/remote_free_*.pml) #define one MUT_* switch and
 * #include this file; the switch replaces one step by a realistic bug. */

#define NSEND   2               /* sender threads */
#define NPER    2               /* blocks each sender frees */
#define NBLK    4               /* NSEND * NPER */
#define NIL     0
#ifdef TWO_SS
#define NSS     2               /* SuperSlabs 1 and 2 share one bucket */
#define SS_OF(b) (b == NBLK -> 2 : 1)   /* the last block belongs to SuperSlab 2 */
#else
#define NSS     1
#define SS_OF(b) 1
#endif

byte head[NSS + 1];             /* ss->remote_head of SuperSlab 1..NSS; [0] unused */
byte nxt[NBLK + 1];             /* hk_block.next; nxt[0] unused */
bit  pend_word = 0;             /* the bucket's bit in owner->pend_words[] */
bit  pend_summary = 0;          /* the word's bit in owner->pend_summary */

/* Ghost state (not in the C code): what the properties talk about. */
bit  reclaimed[NBLK + 1];       /* block went back to its slab */
byte nreclaimed = 0;
byte notifying[NSS + 1];        /* pushers whose CAS saw NULL and that have not
                                   set the summary bit yet, per SuperSlab */
byte ophase = 0;                /* owner: 1 took the summary bit, 2 took the word
                                   bit and walks the bucket (DRAINING) */
byte ocur = 0;                  /* in phase 2: the next SuperSlab the owner looks at */
byte senders_done = 0;

#define MARKED      (pend_word && (pend_summary || ophase == 1))
#define DRAINING(s) (ophase == 2 && ocur <= s)
#define QUEUE_OK(s) (head[s] == NIL || notifying[s] > 0 || MARKED || DRAINING(s))

#ifdef TWO_SS
ltl no_lost_wakeup { [] (QUEUE_OK(1) && QUEUE_OK(2)) }
#else
ltl no_lost_wakeup { [] QUEUE_OK(1) }
#endif
ltl progress       { <> (nreclaimed == NBLK) }

/* ---------------------------------------------------------------- sender */

/* hk_remote_notify(ss): the owner word is fixed in this model. */
inline notify(ss) {
#ifdef MUT_SUMMARY_FIRST
  pend_summary = 1;                                   /* BUG: summary bit first */
  d_step { pend_word = 1; notifying[ss]-- }
#else
  pend_word = 1;                                      /* fetch_or word */
  d_step { pend_summary = 1; notifying[ss]-- }        /* fetch_or summary */
#endif
}

/* hk_remote_push(ss, h, t): one CAS for the whole chain h..t. */
inline push(ss, h, t) {
  old = head[ss];                                     /* relaxed load */
#ifdef MUT_PUSH_NO_CAS
  /* BUG: a plain store of the new head after the load, no CAS */
  d_step { nxt[t] = old; head[ss] = h; if :: old == NIL -> notifying[ss]++ :: else fi };
#else
  do
  :: d_step {
       nxt[t] = old;
       if
       :: head[ss] == old -> head[ss] = h; ok = 1;
          if :: old == NIL -> notifying[ss]++ :: else fi
       :: else -> old = head[ss]                      /* a failed CAS reloads old */
       fi
     };
     if :: ok -> break :: else fi
  od;
  ok = 0;
#endif
  if :: old == NIL -> notify(ss) :: else fi;
  old = NIL
}

/* hk_outbox_flush_slot: the slot of SuperSlab ss */
inline flush(ss) {
  push(ss, ohead[ss], otail[ss]);
  d_step { ohead[ss] = NIL; otail[ss] = NIL; ocount[ss] = 0 }
}

proctype Sender(byte first) {
  byte ohead[NSS + 1], otail[NSS + 1], ocount[NSS + 1];  /* hk_outbox_slot per SuperSlab */
  byte old = NIL, s = 0;
  bit ok = 0;
  byte b = first;
  do
  :: b < first + NPER ->
     d_step {                         /* remote.c; start: */
       s = SS_OF(b);
       if
       :: ocount[s] == 0 -> otail[s] = b; nxt[b] = NIL   /* bind the slot */
       :: else -> nxt[b] = ohead[s]                   /* link in front */
       fi;
       ohead[s] = b; ocount[s]++; b++
     };
     if
     :: flush(s)                                      /* full, needed, or slow path */
     :: skip                                          /* keep batching */
     fi;
     s = 0
  :: else -> break
  od;
  s = 1;                                              /* hk_outbox_flush_all */
  do
  :: s <= NSS -> if :: ocount[s] > 0 -> flush(s) :: else fi; s++
  :: else -> break
  od;
  s = 0;
  senders_done++
}

/* ----------------------------------------------------------------- owner */

/* hk_remote_reclaim: the chain is the owner's alone after the exchange. */
inline reclaim() {
  d_step {
    do
    :: chain != NIL ->
       assert(reclaimed[chain] == 0);                 /* reclaimed at most once */
       if :: reclaimed[chain] -> break :: else fi;    /* (a cycle: stop) */
       reclaimed[chain] = 1; nreclaimed++;
       chain = nxt[chain]
    :: else -> break
    od
  }
}

/* hk_remote_drain(ss) */
inline drain(ss) {
#ifdef MUT_DRAIN_LOAD_STORE
  chain = head[ss];                                   /* BUG: load ... */
  d_step { head[ss] = NIL; ocur = ss + 1 };           /* ... then store NULL */
#else
  d_step { chain = head[ss]; head[ss] = NIL; ocur = ss + 1 };  /* exchange */
#endif
  reclaim()
}

/* The loop over the bucket's SuperSlabs: relaxed emptiness
 * check, then drain. */
inline sweep() {
  ss = 1;
  do
  :: ss <= NSS ->
     if
     :: head[ss] != NIL -> drain(ss)
     :: else -> ocur = ss + 1
     fi;
     ss++
  :: else -> break
  od;
  ss = 0;
  d_step { ophase = 0; ocur = 0 }
}

/* hk_remote_collect + hk_remote_collect_pending, one bucket */
inline collect() {
#ifdef MUT_CLEAR_AFTER_XCHG
  /* BUG: the owner reads the marks, drains, and only then clears them */
  if
  :: pend_summary != 0 ->
     d_step { summary = pend_summary; ophase = 1 };
     d_step { bits = pend_word; if :: bits -> ophase = 2; ocur = 1 :: else -> ophase = 0 fi };
     if :: bits -> sweep() :: else fi;
     pend_word = 0;
     pend_summary = 0
  :: else
  fi;
#else
  if
  :: pend_summary != 0 ->                             /* remote.h relaxed load */
     d_step {                                         /* exchange summary */
       summary = pend_summary; pend_summary = 0;
       if :: summary -> ophase = 1 :: else fi
     };
     if
     :: summary ->
        d_step {                                      /* exchange word */
          bits = pend_word; pend_word = 0;
          if :: bits -> ophase = 2; ocur = 1 :: else -> ophase = 0 fi
        };
        if :: bits -> sweep() :: else fi
     :: else
     fi
  :: else
  fi;
#endif
  summary = 0;
  bits = 0
}

active proctype Owner() {
  byte chain = NIL, ss = 0;
  bit summary = 0, bits = 0;
  do
  :: collect()
#ifndef PROGRESS
  :: senders_done == NSEND -> break
#endif
  od;
  /* The senders are done: one more slow path must find everything. */
  collect();
  ss = 1;
  do
  :: ss <= NSS -> assert(head[ss] == NIL); ss++
  :: else -> break
  od;
  assert(nreclaimed == NBLK)
}

init {
  atomic {
    run Sender(1);
    run Sender(1 + NPER)
  }
}
