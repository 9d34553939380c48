/* formal/tstack.pml -- the versioned Treiber stack of src/core/tstack.h
 * (hk_tstack_push, HK_TSTACK_POP) with two nodes, with the C11 visibility
 * of the nodes' links modelled.
 *
 * ownership.pml has one node, so it cannot show what needs a second one: a
 * pop that installs a stale `next` (ABA, which the version prevents) or a
 * pop that reads a node's link without being ordered after the store of its
 * pusher (which the acquire reload prevents).
 *
 * Configuration: nodes 1 and 2, both on the stack at the start (1 on top);
 * NT (3) threads, each running OPS (3) operations, each a pop or a push of
 * a node it popped earlier (so nodes go round: pop 1, pop 2, push 1 is the
 * ABA pattern). The weak CAS may fail spuriously; a failed CAS reloads the
 * head.
 *
 * What maps to what (src/core/tstack.h; the statements named):
 *   top, ver       the head word: hk_ts_node / hk_ts_version of s->head
 *   lnk[n]         node n's link field (hk_superslab.stack_next,
 *                  hk_heap.stack_next): its latest value
 *   prv[n]         the value lnk[n] held before its latest store
 *   push           hk_tstack_push: `old = hk_load_relaxed(&s->head)`,
 *                  `hk_store_relaxed(link, hk_ts_node(old))`,
 *                  `hk_cas_weak_acq_rel(&s->head, &old, hk_ts_pack(node,
 *                  hk_ts_version(old) + 1))` (failure: relaxed reload, loop)
 *   pop            HK_TSTACK_POP: `old_ = hk_load_acquire(&(s)->head)`,
 *                  `n_ == 0: break` (empty), `next_ =
 *                  hk_load_relaxed(&((type *)n_)->field)`,
 *                  `hk_cas_weak_acq_rel_acq(&(s)->head, &old_,
 *                  hk_ts_pack(next_, hk_ts_version(old_) + 1))` (failure:
 *                  acquire reload, loop)
 *
 * Memory order, for the links only. Spin's interleavings are sequentially
 * consistent; C11 lets a relaxed load of a link return an older value than
 * the latest unless the latest store happens-before the load. The model
 * tracks, per link, a store count (wseq) and the value before the latest
 * store (prv), and per thread how many stores of each link happen-before it
 * (know). The head is written only by RMWs (the CASes), so every release
 * CAS heads a release sequence that runs through all later head values: an
 * acquire read of the head synchronizes with every release CAS before it.
 * `pub[n]` is what those CASes published about link n (the most any
 * releasing thread knew); an acquire read raises the reader's `know` to it.
 * A link read by a thread whose `know` is below the link's store count may
 * return the previous value (one step stale; older ones are not needed to
 * show a bug). A correct pop never acts on a stale link: its read follows
 * an acquire read of a head that named the node, after the push that put the
 * node there, unless the node was popped and pushed again since, and then
 * its CAS fails on the version.
 *
 * Checked (`asserts`): no node is popped while another thread holds it (no
 * node handed out twice), and at the end every node is held by exactly one
 * thread or on the stack exactly once (none lost, the stack no cycle).
 * Mutants: tstack_pop_relaxed_reload (the pop's failure reload relaxed, as
 * before the fix: the next link read may return the link of the node's
 * previous stay on the stack), tstack_no_version (the CAS compares the node
 * only: ABA). */

#define NIL 0
#define NN  2                   /* nodes 1..NN */
#ifndef NT
#define NT  3                   /* threads 0..NT-1 */
#endif
#define OPS 3                   /* operations per thread */
#define K(t, n) ((t) * (NN + 1) + (n))

byte top = 1;                   /* the head word's node */
byte ver = 0;                   /* and its version */
byte lnk[NN + 1];               /* each node's link: latest value */
byte prv[NN + 1];               /* and the value before the latest store */
byte wseq[NN + 1];              /* stores to each link so far */
byte pub[NN + 1];               /* link stores published by release CASes on the head */
byte know[NT * (NN + 1)];       /* link stores that happen-before thread t */
byte heldby[NN + 1];            /* ghost: thread + 1 that popped it, 0 on the stack */
byte ndone = 0;

/* acquire read of the head: synchronizes with every release CAS before it */
inline acquire_head() {
  n = 1;
  do
  :: n <= NN -> if :: know[K(me, n)] < pub[n] -> know[K(me, n)] = pub[n] :: else fi; n++
  :: else -> break
  od;
  n = 0
}

/* release CAS on the head: publishes what this thread knows of every link */
inline release_head() {
  n = 1;
  do
  :: n <= NN -> if :: pub[n] < know[K(me, n)] -> pub[n] = know[K(me, n)] :: else fi; n++
  :: else -> break
  od;
  n = 0
}

/* the head's word as the CAS compares it */
#ifdef MUT_NO_VERSION
#define HEAD_IS(t, v) (top == (t))                    /* BUG: node only */
#else
#define HEAD_IS(t, v) (top == (t) && ver == (v))
#endif

/* The successful iteration as one step: the link store and the CAS (the
 * node is the pusher's alone until the CAS publishes it, so the stores of
 * failed iterations, overwritten before it, change nothing a pop can act
 * on: a pop that reads one holds a head value older than the push, and its
 * CAS fails). A failed iteration only reloads the head. */
inline push(x) {
  d_step { ot = top; ov = ver };                      /* relaxed load */
  do
  :: d_step {
       HEAD_IS(ot, ov) ->                             /* CAS succeeds */
       prv[x] = lnk[x]; lnk[x] = ot; wseq[x]++;       /* hk_store_relaxed(link, node(old)) */
       know[K(me, x)] = wseq[x];
       top = x; ver++; heldby[x] = 0;
       release_head(); acquire_head();                /* acq_rel */
       ot = NIL; ov = 0
     };
     break
  :: d_step { ot = top; ov = ver }                    /* fails (or spuriously): relaxed reload */
  od
}

inline pop() {
  d_step { ot = top; ov = ver; acquire_head() };      /* acquire load */
  do
  :: ot == NIL -> break                               /* empty */
  :: else ->
     if                                               /* relaxed read of the link */
     :: nx = lnk[ot]
     :: know[K(me, ot)] < wseq[ot] -> nx = prv[ot]    /* not ordered after the latest store */
     fi;
     if
     :: d_step {
          HEAD_IS(ot, ov) ->                          /* CAS succeeds */
          top = nx; ver++;
          assert(heldby[ot] == 0);                    /* nobody holds the node we take */
          heldby[ot] = me + 1;
          release_head(); acquire_head();             /* acq_rel */
          got = ot; ot = NIL; ov = 0; nx = NIL
        };
        break
     :: d_step {                                      /* fails (or spuriously): reload */
          ot = top; ov = ver;
#ifndef MUT_POP_RELAXED_RELOAD
          acquire_head();                             /* failure order acquire */
#endif
          nx = NIL
        }
     fi
  od
}

proctype T(byte me) {
  byte ot = NIL, ov = 0, nx = NIL, got = NIL, n = 0, i = 0;
  do
  :: i < OPS ->
     if
     :: pop(); got = NIL
     :: heldby[1] == me + 1 -> push(1)
     :: heldby[2] == me + 1 -> push(2)
     fi;
     i++
  :: else -> break
  od;
  ndone++
}

/* The end: every node held by one thread or on the stack once. */
active proctype End() {
  byte on[NN + 1];
  byte p, steps = 0;
  ndone == NT;
  d_step {
    p = top;
    do
    :: p != NIL && steps <= NN -> on[p]++; p = lnk[p]; steps++
    :: else -> break
    od;
    assert(p == NIL);                                 /* no cycle */
    assert(on[1] + (heldby[1] != 0) == 1);
    assert(on[2] + (heldby[2] != 0) == 1)
  }
}

init {
  byte t;
  atomic {
    lnk[1] = 2; lnk[2] = NIL;                         /* the stack: 1 -> 2 */
    wseq[1] = 1; wseq[2] = 1; pub[1] = 1; pub[2] = 1;
    for (t : 0 .. NT - 1) {
      know[K(t, 1)] = 1; know[K(t, 2)] = 1;
      run T(t)
    }
  }
}
