/* formal/retire.pml -- epoch-based retirement of one SuperSlab
 * (src/epoch/epoch.{h,c}, src/core/superslab.c hk_superslab_retire) with
 * ck_epoch's grace-period detection (ck_epoch_begin/end, ck_epoch_call,
 * ck_epoch_poll of Concurrency Kit 0.7.1) modelled step by step.
 *
 * Configuration: one SuperSlab X; NR reader threads, each running SECTIONS
 * epoch sections; in each, it may pick up a reference to X while X is still
 * reachable (a sender whose push just landed, a popper that read X off an
 * abandoned stack's head) and then dereferences it twice (the notifier's
 * load of `owner` after its push; the popper's load of `stack_next`). One
 * retirer (X's owner, which found X empty, and then the poller that wins the
 * try-flag) unlinks X, hands it to ck_epoch_call, polls until the callback
 * runs, and reuses the memory (the cache hands X to hk_superslab_create,
 * which zeroes its header).
 *
 * What maps to what (src/epoch/ unless named). Each step names its
 * function and the statement it stands for (no line numbers: they went
 * stale with every edit):
 *   gepoch              ck_epoch.epoch (the global epoch, starts at 1:
 *                       epoch.c `static ck_epoch_t hk_epoch = {.epoch =
 *                       1}`)
 *   act[i],repoch[i]    reader i's ck_epoch_record.active and .epoch
 *   enter               hk_epoch_enter (epoch.h `ck_epoch_begin(r,
 *                       NULL)`): ck_epoch_begin: store active = 1, (fence),
 *                       load the global epoch, store it in the record: two
 *                       steps, so a poller may see an active record with a
 *                       stale epoch
 *   leave               hk_epoch_exit (epoch.h: `ck_epoch_end(r,
 *                       NULL)`): store active = 0
 *   Reader sections     remote.c hk_outbox_flush_slot_in_section,
 *                       hk_remote_free_heapless,
 *                       hk_outbox_flush_all: a sender's push
 *                       and notify; abandon.c hk_adopt_for
 *                       and hk_adopt_all: the pops; remote.c
 *                       hk_remote_collect_pending: the owner's
 *                       drains (which never retire: the section is a guard)
 *   linked              X is reachable: on its owner's lists, its map entry
 *                       live, its blocks live (a push can still land)
 *   unlink              hk_heap_retire_superslab (core/heap.c:
 *                       `hk_heap_remove_superslab(h, ss)`) + the
 *                       tombstone store (core/superslab.c hk_superslab_retire
 *                       `hk_addrmap_set((uintptr_t)ss,
 *                       HK_SS_SIZE, (uintptr_t)ss | HK_MAP_DEAD)`,
 *                       `hk_store_relaxed(hk_ss_owner_word(ss), HK_OWNER_ABANDONED)`)
 *   call_epoch          ck_epoch_call: the entry goes to bucket gepoch. In
 *                       the code the retirer only queues X (superslab.c
 *                       `hk_epoch_retire(&ss->retire,
 *                       hk_superslab_reclaimed)`, epoch.c) and the
 *                       poller that wins the try-flag makes the call
 *                       (hk_epoch_poll_locked take the
 *                       queue, `ck_epoch_call(&hk_reclaim_rec,
 *                       &q->entry, hk_epoch_dispatch)`), at the same or a
 *                       later global epoch; the model calls at once, the
 *                       earliest bucket the code could use
 *   poll                ck_epoch_poll (epoch.c) ->
 *                       ck_epoch_poll_deferred: dispatch bucket e-2; scan
 *                       the records; no record active: dispatch every
 *                       bucket; an active record with an epoch != e: stop;
 *                       else CAS the epoch e -> e+1 and dispatch bucket e-1
 *   reused              the callback ran and the memory was reused:
 *                       hk_epoch_dispatch (epoch.c:
 *                       `obj->fn(obj)`) -> hk_superslab_reclaimed
 *                       (superslab.c: to the cache or unmapped) ->
 *                       hk_superslab_create (`memset(ss, 0,
 *                       sizeof *ss)`)
 *
 * States of X: LINKED --unlink--> UNLINKED --call--> DEFERRED --poll sees a
 * grace period--> RECLAIMED --reuse--> REUSED.
 *
 * Checked (formal/check.sh: asserts, -DSAFETY): no reader dereferences X
 * after its memory was reused (the assertion in touch), and every process
 * ends (the retirer's polling finishes once the readers are done).
 *
 * Mutant formal/mutants/retire_no_grace.pml reuses X right after handing it
 * to ck_epoch_call, without waiting for the poll: the checker finds a reader
 * that touches reused memory. */

#define NR 2
#define SECTIONS 2
#define EMAX 7  /* epochs explored: enough for two grace periods and more */

byte gepoch = 1;
bool act[NR];
byte repoch[NR];
bool linked = 1;
bool reused = 0;
byte call_epoch = 0;     /* 0: not called yet */
bool dispatched = 0;

inline touch(ref) {
  if
  :: ref -> assert(!reused)
  :: else -> skip
  fi
}

proctype Reader(byte i) {
  byte n = 0;
  bool ref;
  do
  :: n < SECTIONS ->
     act[i] = 1;              /* ck_epoch_begin: active first ... */
     repoch[i] = gepoch;         /* ... then the global epoch it observed */
     ref = 0;
     if
     :: linked -> ref = 1        /* found X (a push landed, a stack head read) */
     :: true -> skip             /* this section looks at something else */
     fi;
     touch(ref);                 /* e.g. the notifier's load of owner */
     touch(ref);                 /* e.g. the fetch_or into that heap */
     act[i] = 0;              /* ck_epoch_end */
     n++
  :: else -> break
  od
}

/* ck_epoch_dispatch of bucket b: runs the entry if it was filed there. */
inline dispatch(b) {
  if
  :: call_epoch != 0 && call_epoch == b -> dispatched = 1
  :: else -> skip
  fi
}

proctype Retirer() {
  byte e, i;
  bool any_active, blocked;
  linked = 0;                    /* unlink, tombstone: no new reader finds X */
  call_epoch = gepoch;           /* ck_epoch_call (under the try-flag) */
#ifdef MUT_NO_GRACE
  dispatched = 1;                /* BUG: reclaimed without a grace period */
#endif
  do
  :: dispatched -> break
  :: else ->
     /* ck_epoch_poll */
     e = gepoch;
     if :: e >= 2 -> dispatch(e - 2) :: else -> skip fi;
     any_active = 0;
     blocked = 0;
     i = 0;
     do                          /* ck_epoch_scan, one record at a time */
     :: i < NR ->
        if
        :: act[i] -> any_active = 1;
           if :: repoch[i] != e -> blocked = 1 :: else -> skip fi
        :: else -> skip
        fi;
        i++
     :: else -> break
     od;
     if
     :: blocked -> skip          /* a reader lags: try again later */
     :: !blocked && !any_active -> /* grace period: every bucket */
        dispatch(call_epoch)
     :: !blocked && any_active ->
        atomic { if :: gepoch == e && e < EMAX -> gepoch = e + 1 :: else -> skip fi };
        dispatch(e - 1)
     fi
  od;
  reused = 1                     /* callback: to the cache, then reused */
}

init {
  atomic {
    run Reader(0);
    run Reader(1);
    run Retirer()
  }
}
