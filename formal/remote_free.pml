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
 * What maps to what (src/remote/remote.c unless named; line numbers are those
 * of commit bbc9aba; each is followed by the statement it names, to find it
 * again after edits):
 *   head                    hk_superslab.remote_head (hk_types.h)
 *   nxt[b]                  hk_block.next of block b
 *   pend_word               owner->pend_words[b >> 6], bit b & 63 of the
 *                           SuperSlab's bucket b = hk_bucket_of(ss)
 *   pend_summary            owner->pend_summary, bit b >> 6
 *   Sender, outbox_add      hk_remote_free (l.150-163): the slot already
 *                           collects for ss: link b in front (l.160 `b->next =
 *                           o->head`, l.161 `o->head = b`); otherwise
 *                           hk_outbox_start (l.139-146) binds the slot
 *                           (l.142 `o->ss = ss`, l.143 `o->head = o->tail =
 *                           b`, l.144 `b->next = NULL`). The nondeterministic
 *                           flush after each free stands for every reason a
 *                           slot is flushed: HK_OUTBOX_CHAIN reached (l.162
 *                           `hk_outbox_flush_slot_in_section(h, o)`), slot
 *                           needed for another SuperSlab (l.140 `if (o->ss !=
 *                           NULL) hk_outbox_flush_slot_in_section(h, o)`),
 *                           the heapless path (!h->live, l.151-153:
 *                           hk_remote_free_heapless, l.116-130, a chain of 1
 *                           pushed at l.127 `hk_remote_push(h, ss, b, b,
 *                           1)`), the outbox's byte bound (issue 12:
 *                           hk_outbox_over, whole outbox through
 *                           hk_outbox_flush_all), hak_thread_flush and every
 *                           8th allocation slow path (hk_outbox_flush_due).
 *                           Which reason, and how long a chain grows, does
 *                           not change a push. The epoch sections around these pushes
 *                           (l.133/l.135 in hk_outbox_flush_slot_in_section,
 *                           l.126/l.128, l.166/l.168) are retire.pml's
 *                           business: no SuperSlab is retired here.
 *   Sender, final flush     hk_outbox_flush_all (l.165-169: l.167 `while
 *                           (h->outbox_used != 0) hk_outbox_flush_slot(...)`)
 *                           at thread exit (api/thread.c hk_thread_teardown,
 *                           l.27 `hk_outbox_flush(h)`, through
 *                           hk_outbox_flush in remote.h l.17-19) or slow path
 *                           (api/malloc_slow.c l.30)
 *   flush                   hk_outbox_flush_slot (l.103-109: l.105
 *                           `hk_remote_push(h, o->ss, o->head, o->tail,
 *                           o->count)`)
 *   push                    hk_remote_push (l.92-101): relaxed load (l.93
 *                           `old = hk_load_relaxed(&ss->remote_head)`),
 *                           tail->next = old (l.95), CAS (l.98
 *                           `hk_cas_weak_acq_rel(&ss->remote_head, &old,
 *                           head)`), notify when the CAS saw NULL (l.99 `if
 *                           (old == NULL) hk_remote_notify(ss)`). tail->next
 *                           is private to the sender until the CAS publishes
 *                           it, so the model writes it in the CAS's atomic
 *                           step.
 *   notify                  hk_remote_notify (l.54-68): load owner (l.57
 *                           `hk_load_acquire(&ss->owner)`; fixed here), fetch_or
 *                           word bit (l.66 `hk_or_release(&owner->pend_words[b
 *                           >> 6], ...)`), then fetch_or summary bit (l.67
 *                           `hk_or_release(&owner->pend_summary, ...)`)
 *   collect                 hk_remote_collect (remote.h l.24-26): relaxed
 *                           load of pend_summary (l.25), then
 *                           hk_remote_collect_pending (l.202-225): exchange
 *                           summary (l.204 `hk_xchg_acquire(&h->pend_summary,
 *                           0)`), exchange the word (l.211
 *                           `hk_xchg_acquire(&h->pend_words[w], 0)`), relaxed
 *                           emptiness check of each SuperSlab of the bucket
 *                           (l.218-220: l.220 `if
 *                           (hk_load_relaxed(&ss->remote_head) != NULL)
 *                           hk_remote_drain(h, ss)`)
 *   drain                   hk_remote_drain (l.192-200): exchange head (l.198
 *                           `hk_xchg_acq_rel(&ss->remote_head, NULL)`)
 *   reclaim                 hk_remote_reclaim (l.176-190): walk the chain,
 *                           one block at a time (l.177 `while (b != NULL)`)
 *   Owner's loop            the owner's allocation slow paths
 *                           (api/malloc_slow.c hk_malloc_slow, l.21-47), each
 *                           of which calls hk_remote_collect (l.31)
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
  pend_word = 1;                                      /* l.66 fetch_or word */
  d_step { pend_summary = 1; notifying[ss]-- }        /* l.67 fetch_or summary */
#endif
}

/* hk_remote_push(ss, h, t): one CAS for the whole chain h..t. */
inline push(ss, h, t) {
  old = head[ss];                                     /* l.93 relaxed load */
#ifdef MUT_PUSH_NO_CAS
  /* BUG: a plain store of the new head after the load, no CAS */
  d_step { nxt[t] = old; head[ss] = h; if :: old == NIL -> notifying[ss]++ :: else fi };
#else
  do
  :: d_step {                                         /* l.95 + l.98 */
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
  if :: old == NIL -> notify(ss) :: else fi;          /* l.99 */
  old = NIL
}

/* hk_outbox_flush_slot (l.103-109): the slot of SuperSlab ss */
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
     d_step {                         /* remote.c l.160-161; start: l.142-145 */
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
  s = 1;                                              /* hk_outbox_flush_all l.167 */
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
  d_step { chain = head[ss]; head[ss] = NIL; ocur = ss + 1 };  /* l.198 exchange */
#endif
  reclaim()
}

/* The loop over the bucket's SuperSlabs (l.218-220): relaxed emptiness
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
  :: pend_summary != 0 ->                             /* remote.h l.25 relaxed load */
     d_step {                                         /* l.204 exchange summary */
       summary = pend_summary; pend_summary = 0;
       if :: summary -> ophase = 1 :: else fi
     };
     if
     :: summary ->
        d_step {                                      /* l.211 exchange word */
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
