/* formal/pmap.pml -- the page map of large blocks (src/core/addrmap.[ch],
 * "the page map") as src/large/large.c uses it: registration, free (the
 * LIVE -> DEAD CAS), the move of hk_large_grow, lookups by a block's owner,
 * the lazy install of a leaf, and the reuse of released mappings (the
 * cache, or the kernel's next mmap) while a double free is in flight.
 *
 * Configuration: four pages in one page-map word, two mapping slots of two
 * pages each (A = pages 0-1, B = pages 2-3); each mapping's header is its
 * first page (the key). The first level starts without the leaf. Processes:
 *   F1     maps X in A, registers it, hands p to F2, frees p
 *   F2     frees p too, racing F1 (a double free, the program's bug)
 *   Owner  maps N in B, registers it, looks it up, then frees it, or grows
 *          it by a move into A (the cached mapping, or a fresh one where A
 *          went back to the OS; or a failed mremap), looks it up and frees it
 *   R      a later allocation: takes the cached mapping, or a fresh one
 *          from the kernel (A or B once unmapped; ordinary or over-aligned
 *          layout), registers, looks up, frees
 * F1, Owner and R each may map the leaf; the first CAS installs it.
 * Memory order is not modelled (sequentially consistent steps; see
 * README.md).
 *
 * What maps to what:
 *   l1, leafw[t]    hk_pmap_l1[i] and the leaf thread t mapped (hk_leaf)
 *   ST(pg)          hk_pmap_get: the acquire load of the leaf pointer and
 *                   the relaxed load of the word, one step (the pointer
 *                   never changes once set)
 *   prepare         hk_pmap_prepare -> hk_leaf: acquire load; if NULL, map
 *                   a zeroed leaf and `hk_cas_strong_acq_rel(slot,
 *                   &expected, fresh)`, the loser unmapping its own
 *   pset            hk_pmap_set: the CAS loop on the word (a successful
 *                   iteration is one step; a failed one writes nothing)
 *   kill            hk_pmap_kill: `if (((old >> sh) & 3) != HK_PMAP_LIVE)
 *                   return false;` and the CAS `old ^ (3 << sh)`
 *   clear           hk_pmap_clear over the mapping's pages: `if
 *                   (hk_load_relaxed(&leaf[i >> 5]) & mask)
 *                   hk_and_relaxed(&leaf[i >> 5], ~mask)`
 *   register        hk_large_alloc_impl: hk_pmap_prepare, the header
 *                   (`hdr->magic = ...` to `hdr->map_size = ...`),
 *                   `hk_pmap_clear((uintptr_t)base, map_size)`,
 *                   `hk_pmap_set((uintptr_t)hdr, HK_PMAP_LIVE)`
 *   large_free      hk_large_free: `state = hk_pmap_get(key)`; DEAD:
 *                   "already released"; not LIVE: false (hk_free_other
 *                   reports "not allocated by hakmem"); LIVE: the header
 *                   (`hdr->user != p`: "inside a large block"),
 *                   `hk_pmap_kill(key)` (false: "already released"), then
 *                   the mapping to the cache (hk_lc_put) or hk_os_unmap
 *   lookup          hk_large_lookup (`hk_pmap_get(key) != HK_PMAP_LIVE`,
 *                   `hdr->user == p`) and hk_large_covers of the block's
 *                   last byte (hk_pmap_live_below, then the header)
 *   move            hk_large_move: hk_pmap_prepare(dest), `hk_pmap_set(hdr,
 *                   HK_PMAP_DEAD)`, hk_os_remap (fails: `hk_pmap_set(hdr,
 *                   HK_PMAP_LIVE)`, dest unmapped), the moved header,
 *                   `hk_pmap_clear(dest, dest_size)`, `hk_pmap_set(dest,
 *                   HK_PMAP_LIVE)`; dest from hk_lc_take or hk_os_map_block
 *   take            hk_lc_take (a slot's CAS) or the kernel's mmap
 *
 * Ghost state: live[g] (block g registered and not yet released or moved
 * away), key[g], livegen[pg] (the block that last made pg LIVE),
 * released[g], hit[g] (a double free released g, a block it did not
 * mean: the pages were reused under it).
 *
 * Checked (`asserts`):
 * - invariant (`map_ok`, asserted in the atomic step of every write to the
 *   map or to the ghost state it reads, so in every state): a page is LIVE
 *   exactly when it is the key of a live block: no lost mark (lost leaf, a
 *   neighbour's stale store, a clear of one's own key), no resurrected one,
 *   no block's DEAD over another's LIVE;
 * - a mapping goes back to the cache or the OS at most once, and each
 *   block is released at most once (`released[g] <= 1`);
 * - of the two frees of p exactly one releases X; the other reports a
 *   double free, or -- where the pages were reused by then -- releases the
 *   block there (hit: any allocator's double free after reuse), or faults
 *   reading a header the OS took back (as glibc's free would);
 * - an owner's lookups find its block (state LIVE, its header, covers ->
 *   its key) and its free releases it, unless a double free hit it;
 * - at the end no block is live, no page LIVE, no mapping leaked.
 * Mutants: mutants/pmap_*.pml.
 *
 * Not modelled: growth in place (hk_large_grow's hk_os_remap without a move
 * and its hk_pmap_clear of the gained pages: the range is the block's own),
 * hk_large_resize_in_place (no map change), keys other than a mapping's
 * first page (alignments above a page), hk_pmap_live_below across words
 * and leaves, memory order.
 * Not true, and not checked: hk_large_covers (hak_owns) of a pointer in no
 * live block reads the header of the block it finds LIVE below it; a
 * thread that frees that block and unmaps its range meanwhile makes the
 * read fault (README.md, "What the models do not prove"). */

#define LIVE 1
#define DEAD 2
#define NONE 9

/* blocks */
#define GX 1
#define GN 2
#define GR 3
#define NG 4
/* layouts: the user pointer HK_LARGE_HDR after the key, or a page after it
 * (an over-aligned block: same key, another user pointer) */
#define ORD 1
#define ALIGNED 2
/* large_free results */
#define FREED 1
#define REPORTED 2
#define NOTOURS 3
#define FAULT 4

byte l1 = 0;        /* 0: no leaf; else the thread that mapped it */
byte leafw[4];      /* per mapper (1 F1, 2 Owner, 3 R): the leaf's word, two bits a page */
bool mapped[2];     /* slot A (0), B (1) mapped */
byte cache = NONE;  /* the cached slot (one cache slot) */
byte hdr[4];        /* the block whose header a page holds, 0: none */
byte key[NG];
byte lay[NG];
byte slotof[NG];
bool live[NG];
byte released[NG];
bool hit[NG];
byte livegen[4];
bool xpub = 0;      /* F1 handed p to F2 */
byte fres[3];       /* F1's, F2's large_free result */
byte fvictim[3];

#define ST(pg) (l1 == 0 -> 0 : ((leafw[l1] >> (2 * (pg))) & 3))
#define P_OK(pg) (ST(pg) != LIVE || (live[livegen[pg]] && key[livegen[pg]] == (pg)))
#define G_OK(g) (!live[g] || ST(key[g]) == LIVE)
#define INV_EXPR (P_OK(0) && P_OK(1) && P_OK(2) && P_OK(3) && G_OK(GX) && G_OK(GN) && G_OK(GR))
bool map_ok = 1;    /* the invariant, for a short assertion text; 1 between steps */
#define INV map_ok = INV_EXPR; assert(map_ok); map_ok = 1

inline prepare(me) {
  l = l1;
  if
  :: l == 0 ->
     /* hk_os_map: leafw[me], zeroed */
#ifndef MUT_LEAF_STORE
     atomic { if :: l1 == 0 -> l1 = me :: else -> skip fi; l = 0; INV } /* lost: unmap ours, use the winner's */
#else
     atomic { l1 = me; l = 0; INV } /* BUG: a plain store over a leaf someone installed meanwhile */
#endif
  :: else -> l = 0
  fi
}

inline pset(pg, s, g, lv) {
#ifndef MUT_SET_LOAD_STORE
  atomic {
    leafw[l1] = (leafw[l1] & ~(3 << (2 * (pg)))) | ((s) << (2 * (pg)));
    live[g] = lv;
    if :: (s) == LIVE -> livegen[pg] = g :: else -> skip fi;
    INV
  }
#else
  w = leafw[l1];
  atomic {
    leafw[l1] = (w & ~(3 << (2 * (pg)))) | ((s) << (2 * (pg))); /* BUG: the word as it was read */
    live[g] = lv;
    if :: (s) == LIVE -> livegen[pg] = g :: else -> skip fi;
    w = 0;
    INV
  }
#endif
}

/* ok, victim; a victim other than mine was hit */
inline kill(pg, mine) {
#ifndef MUT_KILL_TEST_THEN_SET
  atomic {
    if
    :: ST(pg) == LIVE -> leafw[l1] = leafw[l1] ^ (3 << (2 * (pg))); victim = livegen[pg]; live[victim] = 0; ok = 1;
       hit[victim] = hit[victim] || victim != (mine)
    :: else -> ok = 0
    fi;
    INV
  }
#else
  if
  :: ST(pg) == LIVE -> /* BUG: the test, then a set (an RMW of its own bits) */
     atomic {
       leafw[l1] = (leafw[l1] & ~(3 << (2 * (pg)))) | (DEAD << (2 * (pg)));
       victim = livegen[pg]; live[victim] = 0; ok = 1;
       hit[victim] = hit[victim] || victim != (mine);
       INV
     }
  :: else -> ok = 0
  fi
#endif
}

inline clear(s) {
#ifndef MUT_CLEAR_LOAD_STORE
  atomic {
    if :: (leafw[l1] & (15 << (4 * (s)))) != 0 -> leafw[l1] = leafw[l1] & ~(15 << (4 * (s))) :: else -> skip fi;
    INV
  }
#else
  w = leafw[l1];
  if
  :: (w & (15 << (4 * (s)))) != 0 -> atomic { leafw[l1] = w & ~(15 << (4 * (s))); w = 0; INV } /* BUG: a store of the whole word */
  :: else -> w = 0
  fi
#endif
}

/* Back to the cache, or to the OS (cache full or off). */
inline release(s) {
  atomic {
    assert(mapped[s] && cache != (s)); /* a mapping goes back once */
    if
    :: cache == NONE -> cache = s
    :: true -> mapped[s] = 0; hdr[2 * (s)] = 0; hdr[2 * (s) + 1] = 0
    fi
  }
}

/* hk_large_alloc_impl's registration of block g in slot s (mapped, ours). */
inline register(me, g, s) {
  prepare(me);
  atomic { hdr[2 * (s)] = g; key[g] = 2 * (s); slotof[g] = s; INV }
#ifndef MUT_CLEAR_AFTER_SET
  clear(s);
  pset(2 * (s), LIVE, g, 1);
#else
  pset(2 * (s), LIVE, g, 1);
  clear(s); /* BUG: the stale marks cleared after the LIVE mark */
#endif
}

/* hk_large_free(p), p of layout pl with key page pg, meant for block
 * mine: res, victim. */
inline large_free(pg, pl, mine) {
  st = ST(pg);
  if
  :: st == DEAD -> res = REPORTED
  :: st == 0 -> res = NOTOURS
  :: st == LIVE ->
     atomic { if :: mapped[(pg) / 2] -> hg = hdr[pg]; res = 0 :: else -> res = FAULT fi }
     if
     :: res == FAULT -> skip
     :: res == 0 && (hg == 0 || lay[hg] != (pl)) -> res = REPORTED /* hdr->user != p */
     :: res == 0 && hg != 0 && lay[hg] == (pl) ->
        kill(pg, mine);
        if
        :: ok ->
           res = FREED;
           released[victim]++;
           assert(released[victim] <= 1);
           release(slotof[hg])
        :: else -> res = REPORTED
        fi
     fi
  fi;
  st = 0; hg = 0; ok = 0
}

/* The owner of g: hk_large_lookup(p) and hk_large_covers(last byte). */
inline lookup(g) {
  assert(ST(key[g]) == LIVE || hit[g]);
  d_step {
    top = 2 * slotof[g] + 1;
    w = (l1 == 0 -> 0 : leafw[l1]);
    found = NONE;
    do
    :: ((w >> (2 * top)) & 3) == LIVE -> found = top; break
    :: else -> if :: top == 0 -> break :: else -> top-- fi
    od;
    assert(hit[g] || (found == key[g] && mapped[found / 2] && hdr[found] == g));
    top = 0; w = 0; found = 0
  }
}

/* The owner's free of g. */
inline own_free(g) {
  large_free(key[g], lay[g], g);
  assert(hit[g] || (res == FREED && victim == g));
  res = 0; victim = 0
}

proctype F1() {
  byte l, w, st, hg, res, victim;
  bool ok;
  register(1, GX, 0);
  xpub = 1;
  large_free(0, ORD, GX);
  atomic { fres[1] = res; fvictim[1] = victim; res = 0; victim = 0 }
}

proctype F2() {
  byte l, w, st, hg, res, victim;
  bool ok;
  xpub;
  large_free(0, ORD, GX);
  atomic { fres[2] = res; fvictim[2] = victim; res = 0; victim = 0 }
}

proctype Owner() {
  byte l, w, st, hg, res, victim, top, found, d;
  bool ok;
  register(2, GN, 1);
  lookup(GN);
  if
  :: true /* free it */
  :: true -> /* grow it: a move into dest */
     atomic {
       if
       :: cache != NONE -> d = cache; cache = NONE
       :: cache == NONE && !mapped[0] -> d = 0; mapped[0] = 1; hdr[0] = 0; hdr[1] = 0
       :: else -> d = NONE /* in place or a copy: not modelled */
       fi
     }
     if
     :: d == NONE -> skip
     :: else ->
        prepare(2);
#ifndef MUT_MOVE_DEAD_LATE
        pset(2, DEAD, GN, 0);
#endif
        if
        :: atomic { mapped[1] = 0; hdr[2] = 0; hdr[3] = 0; hdr[2 * d] = 0 } /* mremap: B's pages now in d */
#ifdef MUT_MOVE_DEAD_LATE
           pset(2, DEAD, GN, 0); /* BUG: after the move, B may be someone else's */
#endif
           atomic { hdr[2 * d] = GN; key[GN] = 2 * d; slotof[GN] = d; INV }
           clear(d);
           pset(2 * d, LIVE, GN, 1)
        :: /* mremap failed: the block stays, dest goes back to the OS */
#ifdef MUT_MOVE_DEAD_LATE
           skip;
#endif
           pset(2, LIVE, GN, 1);
           atomic { mapped[d] = 0; hdr[2 * d] = 0; hdr[2 * d + 1] = 0 }
        fi;
        lookup(GN)
     fi
  fi;
  own_free(GN)
}

proctype R() {
  byte l, w, st, hg, res, victim, top, found, s;
  bool ok;
  atomic {
    if
    :: cache != NONE -> s = cache; cache = NONE; lay[GR] = ORD
    :: cache == NONE && !mapped[0] -> s = 0
    :: cache == NONE && !mapped[1] -> s = 1
    fi;
    if
    :: lay[GR] == 0 -> mapped[s] = 1; hdr[2 * s] = 0; hdr[2 * s + 1] = 0;
       if :: lay[GR] = ORD :: lay[GR] = ALIGNED fi
    :: else -> skip
    fi
  }
  register(3, GR, s);
  lookup(GR);
  own_free(GR)
}

init {
  atomic {
    mapped[0] = 1; mapped[1] = 1; /* X's and N's fresh mappings */
    lay[GX] = ORD; lay[GN] = ORD;
    run F1(); run F2(); run Owner(); run R()
  }
  (_nr_pr == 1);
  /* exactly one of the two frees released X */
  assert(released[GX] == 1);
  assert((fres[1] == FREED && fvictim[1] == GX) != (fres[2] == FREED && fvictim[2] == GX));
  assert(!live[GX] && !live[GN] && !live[GR]);
  assert(ST(0) != LIVE && ST(1) != LIVE && ST(2) != LIVE && ST(3) != LIVE);
  assert(!mapped[0] || cache == 0);
  assert(!mapped[1] || cache == 1)
}
