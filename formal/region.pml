/* formal/region.pml -- the SuperSlab region arena (src/core/superslab.c,
 * hk_region_claim and what it calls): chunks claimed from the current
 * region by CAS, replaced regions parked in a leftover slot, regions carved
 * from an arena by CAS, spare regions and the spare arena, and
 * hak_collect's release of all of it racing the claimers.
 *
 * Configurations (formal/check.sh runs all three): regions of 4 chunks
 * (the code's 32), even chunks for the small kind, odd ones for medium;
 * arenas of 2 regions (as HK_ARENA_REGIONS); one spare-region slot (the
 * code has HK_REGION_SPARES, 8: one is enough to reach "every slot taken:
 * unmap it"); the spare arena slot.
 *   default    two small claimers and one medium claimer, 2 claims each
 *   COLLECT    one small and one medium claimer, 2 claims each, and a
 *              collector running the release of hak_collect at any moment
 *              (the same release runs in the pressure hook, api/thread.c
 *              hk_release_for_retry -> hk_superslab_reclaim_for_retry, on
 *              any thread whose mapping failed, a claimer inside
 *              hk_arena_map too: the arena it is mapping is still private
 *              then, so that is the collector running next to it)
 *   SMALLREG   regions of 2 chunks (one per kind), one small claimer with
 *              3 claims and one medium claimer with 2: every second claim
 *              replaces a region, so leftovers replace leftovers and arenas
 *              run out
 * The OS refuses an arena once MAXA (3) exist (then the claim returns NULL
 * and its caller maps the SuperSlab alone, not modelled). The weak CASes
 * may fail spuriously. Memory order is not modelled (sequentially
 * consistent steps; see README.md).
 *
 * What maps to what (src/core/superslab.c, the statements named):
 *   rg_r, rg_m      hk_region: the region (here a number, 0: NONE) and its
 *                   mask of claimed chunks
 *   lf_r[k], lf_m[k]  hk_region_left[k], the same for kind k's leftover
 *   rspare          hk_region_spare[] (one slot): a parked region, 0 empty
 *   ar_a, ar_n      hk_arena: the arena (a number, 0: none) and how many
 *                   of its regions were carved; region number of (a, i):
 *                   2(a-1)+i+1
 *   aspare          hk_arena_spare
 *   claim_from      hk_region_claim_from: `free = ~(uint32_t)w &
 *                   hk_region_parity[kind]`, `w == 0 || free == 0: return
 *                   NULL`, `i = __builtin_ctz(free)`,
 *                   `hk_cas_weak_acq_rel(slot, &w, w | (uint64_t)1 << i)`
 *                   won: chunk i; lost: w reloaded, again
 *   claim           hk_region_claim: `lw = hk_load_acquire(
 *                   &hk_region_left[kind])`, claim_from the leftover, then
 *                   `w = hk_load_acquire(&hk_region)` and the loop:
 *                   claim_from the region; `fresh = hk_spare_take()`, or
 *                   `hk_arena_carve()` (NULL: return NULL); `nw` = fresh
 *                   with the kind's first chunk; `old = w`; the install
 *                   loop `hk_cas_weak_acq_rel(&hk_region, &w, nw)`, lost:
 *                   again while `w == old || (w != 0 && old != 0 && (w >>
 *                   32) == (old >> 32))`, else not installed:
 *                   `hk_spare_park(fresh)` or `hk_unmap_unclaimed(fresh)`,
 *                   `continue` with w; installed: `hk_region_retire(w)`,
 *                   the fresh region's first chunk is ours
 *   region_retire   hk_region_retire: the first kind k with `~(uint32_t)w
 *                   & hk_region_parity[k]`: `prev = hk_xchg_acq_rel(
 *                   &hk_region_left[k], w)`, `hk_region_release(prev)`
 *   region_release  hk_region_release: unmap every chunk not in the mask
 *   spare_take,     hk_spare_take (relaxed look, exchange with 0),
 *   spare_park      hk_spare_park (relaxed look, CAS 0 -> r)
 *   arena_carve     hk_arena_carve: `w = hk_load_acquire(&hk_arena)`;
 *                   `w != 0 && (uint32_t)w < HK_ARENA_REGIONS`:
 *                   `hk_cas_weak_acq_rel(&hk_arena, &w, w + 1)` lost:
 *                   `continue`; won: region `idx`; `idx ==
 *                   HK_ARENA_REGIONS / 2 && hk_load_relaxed(&hk_arena_spare)
 *                   == 0`: map the next arena, `hk_cas_strong_acq_rel(
 *                   &hk_arena_spare, &expected, next)` or unmap it. Used
 *                   up: `a = hk_xchg_acquire(&hk_arena_spare, 0)`, or map
 *                   one (NULL: return NULL); `hk_cas_strong_acq_rel(
 *                   &hk_arena, &w, nw)` won: `hk_arena_release(w)`, region
 *                   0 of a; lost (w reloaded): park a as the spare arena
 *                   or unmap it, again
 *   collect         hk_superslab_cache_purge(true), its region part:
 *                   `hk_xchg_acq_rel(&hk_region, 0)` and release; every
 *                   spare region taken and unmapped; each leftover
 *                   exchanged with 0 and released; `hk_xchg_acq_rel(
 *                   &hk_arena, 0)` and `hk_arena_release`; the spare arena
 *                   exchanged with 0 and unmapped
 *
 * Ghost state: per region, the chunks handed out as SuperSlabs (`claimed`)
 * and the chunks given back to the OS (`unmapped`).
 *
 * Checked (`asserts`): every chunk changes hands at most once: it is
 * claimed only while neither claimed nor unmapped, and unmapped only while
 * neither (so no chunk goes to two SuperSlabs, none is unmapped under a
 * SuperSlab, none is unmapped twice); and nothing leaks: when every thread
 * has finished, one more collect leaves every chunk of every mapped arena
 * claimed or unmapped (no region, leftover, spare or uncarved arena part is
 * forgotten by every word and slot). No claimer waits for another (no
 * invalid end state). Mutants (formal/mutants/region_*.pml):
 * claim_no_cas (a chunk claimed by a load and a store), left_load_store (the
 * leftover swapped by a load and a store), install_store (a fresh region
 * installed by a plain store), carve_no_cas (a region carved by a load and
 * a store of the arena count), collect_load_store (hak_collect takes the
 * region by a load and a store), aspare_store (the spare arena stocked by a
 * plain store).
 *
 * Not modelled: mapped_bytes accounting (hk_stat_*), SuperSlabs mapped
 * alone after a NULL claim, ABA on a word (a region's base recurs only after
 * all of it was unmapped and the OS hands the range out again, while a
 * claimer stalls holding the old word). */

/* chunks per region (HK_REGION_CHUNKS: 32): 4, or 2 with SMALLREG */
#ifdef SMALLREG
#define FULL   3                /* all chunks */
#define PAR(k) ((k) == 0 -> 1 : 2)
#else
#define FULL   15
#define PAR(k) ((k) == 0 -> 5 : 10)
#endif
#define MAXA   3                /* arenas the model lets the OS map */
#define MAXR   (2 * MAXA)       /* regions 1..MAXR */
#ifdef SMALLREG
#define NTHREADS 2              /* threads End waits for */
#else
#define NTHREADS 3
#endif

/* its first chunk: __builtin_ctz(hk_region_parity[kind]) */
#define FIRST(k) ((k) == 0 -> 1 : 2)
#define CTZ(x) ((x) & 1 -> 1 : ((x) & 2 -> 2 : ((x) & 4 -> 4 : ((x) & 8 -> 8 : 0))))
/* hk_region_claim_from's `free` and `i`: the chunk to try, 0 when none */
#define FREEBIT(r, m) ((r) == 0 -> 0 : CTZ(FULL & ~(m) & PAR(kind)))
#define RID(a, i) (2 * ((a) - 1) + (i) + 1)

byte rg_r = 0, rg_m = 0;        /* hk_region */
byte lf_r[2], lf_m[2];          /* hk_region_left[kind] */
byte rspare = 0;                /* hk_region_spare[0] */
byte ar_a = 0, ar_n = 0;        /* hk_arena */
byte aspare = 0;                /* hk_arena_spare */

/* Ghost state */
byte narena = 0;                /* arenas mapped */
byte claimed[MAXR + 1];         /* chunks handed out, per region */
byte unmapped[MAXR + 1];        /* chunks given back, per region */
byte gr, gb;                    /* the chunk being checked */
byte ndone = 0;

/* A chunk (region r, bit b) is handed out as a SuperSlab. */
inline give(r, b) {
  gr = r; gb = b;
  assert(((claimed[gr] | unmapped[gr]) & gb) == 0);   /* changes hands once */
  claimed[gr] = claimed[gr] | gb;
  gr = 0; gb = 0
}

/* Unmap the chunks in mask m of region r (munmap of what nobody claimed). */
inline unmap_chunks(r, m) {
  gr = r; gb = 1;
  do
  :: gb <= 8 ->
     if
     :: (m) & gb ->
        assert(((claimed[gr] | unmapped[gr]) & gb) == 0);  /* changes hands once */
        unmapped[gr] = unmapped[gr] | gb
     :: else
     fi;
     gb = gb * 2
  :: else -> break
  od;
  gr = 0; gb = 0
}

inline unmap_arena(a) {
  unmap_chunks(RID(a, 0), FULL); unmap_chunks(RID(a, 1), FULL)
}

/* hk_region_release(w): the chunks nobody claimed */
inline region_release(r, m) {
  if :: (r) != 0 -> unmap_chunks(r, FULL & ~(m)) :: else fi
}

/* hk_arena_release(w): the regions not carved (used < HK_ARENA_REGIONS) */
inline arena_release(a, n) {
  if
  :: (a) != 0 && (n) < 2 ->
     if :: (n) == 0 -> unmap_chunks(RID(a, 0), FULL) :: else fi;
     unmap_chunks(RID(a, 1), FULL)
  :: else
  fi
}

/* hk_arena_map: a fresh arena (a new address range), or 0 when the OS
 * refuses: here once MAXA arenas exist. Only inside a d_step. */
inline arena_map(res) {
  if :: narena < MAXA -> narena++; res = narena :: else -> res = 0 fi
}

/* Steps are merged where all but one of the accesses are private: a
 * mapping is the mapper's until a CAS or exchange publishes it, a word
 * taken out of a slot by an exchange or a won CAS is its taker's, and the
 * relaxed look before a slot's exchange or CAS (hk_spare_take,
 * hk_spare_park, the spare arena) behaves as that RMW failing at the time
 * of the look. */

/* ------------------------------------------------------ the claimer */

/* hk_region_claim_from(slot, kind, &w), with wr, wm = w and fb = the chunk
 * to try, as every load of w computes them: got = the chunk's bit and gr
 * its region, or got = 0 with wr, wm the exhausted (or empty) word. */
inline claim_from(sr, sm) {
  do
  :: fb == 0 -> break                                /* `w == 0 || free == 0` */
  :: fb != 0 ->
#ifdef MUT_CLAIM_NO_CAS
     /* BUG: the chunk's bit set with a plain store after the load */
     d_step { sr = wr; sm = wm | fb; got = fb; give(wr, fb); got = fb; fb = 0 };
     break
#else
     if
     :: d_step { sr == wr && sm == wm ->              /* CAS won */
          sm = wm | fb; give(wr, fb); got = fb; fb = 0 };
        break
     :: d_step { wr = sr; wm = sm; fb = FREEBIT(wr, wm) }  /* lost, or spuriously: reloaded */
     fi
#endif
  od
}

/* hk_arena_carve: fresh = a region, or 0 when the OS refused an arena */
inline arena_carve() {
  d_step { aw = ar_a; an = ar_n };                   /* load acquire */
  do
  :: aw != 0 && an < 2 ->
#ifdef MUT_CARVE_NO_CAS
     d_step { ar_a = aw; ar_n = an + 1; won = 1 };   /* BUG: a plain store */
#else
     if
     :: d_step { ar_a == aw && ar_n == an -> ar_n = an + 1; won = 1 }  /* CAS won */
     :: d_step { aw = ar_a; an = ar_n; won = 0 }     /* lost, or spuriously */
     fi;
#endif
     if
     :: won ->
        if                                           /* idx == HK_ARENA_REGIONS / 2, */
        :: an == 1 ->                                /* the spare arena empty: map the next */
           d_step {
             if
             :: aspare == 0 ->
                arena_map(nxt);
                if :: nxt != 0 && aspare == 0 -> aspare = nxt :: else fi
             :: else
             fi;
             nxt = 0
           }
        :: else
        fi;
        d_step { fresh = RID(aw, an); aw = 0; an = 0; won = 0 };
        break
     :: else
     fi
  :: else ->                                         /* used up, or none yet */
     d_step { na = aspare; aspare = 0; if :: na == 0 -> arena_map(na) :: else fi };
     if
     :: na == 0 -> d_step { fresh = 0; aw = 0; an = 0 }; break  /* the OS refused */
     :: else
     fi;
     if
     :: d_step { ar_a == aw && ar_n == an ->         /* strong CAS won */
          ar_a = na; ar_n = 1; arena_release(aw, an);
          fresh = RID(na, 0); na = 0; aw = 0; an = 0 };
        break
     :: d_step { !(ar_a == aw && ar_n == an) ->      /* lost: w reloaded */
          aw = ar_a; an = ar_n };
        d_step {                                     /* ours: the spare arena, or unmapped */
#ifdef MUT_ASPARE_STORE
          aspare = na;                               /* BUG: a plain store */
#else
          if :: aspare == 0 -> aspare = na :: else -> unmap_arena(na) fi;
#endif
          na = 0 }
     fi
  od
}

/* hk_region_retire(w), w = wr, wm (the replaced word, ours since the CAS) */
inline region_retire() {
#ifdef MUT_LEFT_LOAD_STORE
  /* BUG: the leftover swapped by a load and a store, not an exchange */
  if
  :: wr != 0 && (FULL & ~wm & PAR(0)) != 0 -> k2 = 0
  :: wr != 0 && (FULL & ~wm & PAR(0)) == 0 && (FULL & ~wm & PAR(1)) != 0 -> k2 = 1
  :: else -> k2 = 2
  fi;
  if
  :: k2 < 2 ->
     d_step { pr = lf_r[k2]; pm = lf_m[k2] };
     d_step { lf_r[k2] = wr; lf_m[k2] = wm; region_release(pr, pm); pr = 0; pm = 0 }
  :: else
  fi;
  k2 = 0
#else
  d_step {
    if                                               /* the first kind with chunks left */
    :: wr != 0 && (FULL & ~wm & PAR(0)) != 0 -> k2 = 0
    :: wr != 0 && (FULL & ~wm & PAR(0)) == 0 && (FULL & ~wm & PAR(1)) != 0 -> k2 = 1
    :: else -> k2 = 2                                /* fully claimed, or none */
    fi;
    if
    :: k2 < 2 ->                                     /* exchange, release the older one */
       pr = lf_r[k2]; pm = lf_m[k2]; lf_r[k2] = wr; lf_m[k2] = wm;
       region_release(pr, pm); pr = 0; pm = 0
    :: else
    fi;
    k2 = 0
  }
#endif
}

/* hk_region_claim(kind): got = the chunk's bit, 0 when it returns NULL */
inline claim() {
  d_step { wr = lf_r[kind]; wm = lf_m[kind]; fb = FREEBIT(wr, wm) };  /* load acquire */
  claim_from(lf_r[kind], lf_m[kind]);
  if
  :: got != 0 -> goto claim_done
  :: else
  fi;
  d_step { wr = rg_r; wm = rg_m; fb = FREEBIT(wr, wm) };              /* load acquire */
  do
  :: claim_from(rg_r, rg_m);
     if :: got != 0 -> break :: else fi;
     d_step { fresh = rspare; rspare = 0 };          /* hk_spare_take */
     if :: fresh == 0 -> arena_carve() :: else fi;
     if :: fresh == 0 -> break :: else fi;           /* NULL: mapped alone */
     d_step { ow = wr; om = wm; inst = 0 };
#ifdef MUT_INSTALL_STORE
     /* BUG: installed by a plain store; w as last read taken for the old word */
     d_step { rg_r = fresh; rg_m = FIRST(kind); inst = 1 };
#else
     do
     :: d_step { rg_r == wr && rg_m == wm ->         /* CAS won */
          rg_r = fresh; rg_m = FIRST(kind); inst = 1 };
        break
     :: d_step { wr = rg_r; wm = rg_m; fb = FREEBIT(wr, wm) };  /* lost, or spuriously: reloaded */
        if
        :: (wr == ow && wm == om) || (wr != 0 && ow != 0 && wr == ow) -> skip  /* ours to replace */
        :: else -> break
        fi
     od;
#endif
     if
     :: inst == 0 ->                                 /* hk_spare_park, or unmapped */
        d_step {
          if :: rspare == 0 -> rspare = fresh :: else -> unmap_chunks(fresh, FULL) fi;
          fresh = 0; ow = 0; om = 0 }
     :: else ->
        d_step { got = FIRST(kind); give(fresh, got); fresh = 0; ow = 0; om = 0; inst = 0 };
        region_retire();
        break
     fi
  od;
claim_done:
  skip;
  d_step { got = 0; wr = 0; wm = 0; fb = 0; fresh = 0 }
}

proctype Claimer(bit kind; byte nc) {
  byte wr = 0, wm = 0, fb = 0, got = 0;               /* claim_from */
  byte fresh = 0, ow = 0, om = 0, pr = 0, pm = 0, k2 = 0;
  bit inst = 0, won = 0;
  byte aw = 0, an = 0, na = 0, nxt = 0;               /* arena_carve */
  byte n = 0;
  do
  :: n < nc -> claim(); n++
  :: else -> break
  od;
  ndone++
}

/* ------------------------------------------------------ the collector */

/* hk_superslab_cache_purge(true), the region and arena part: each step an
 * exchange and the release of what it took */
inline collect() {
#ifdef MUT_COLLECT_LOAD_STORE
  /* BUG: the region word taken by a load and a store of 0, not an exchange */
  d_step { cr = rg_r; cm = rg_m };
  d_step { rg_r = 0; rg_m = 0; region_release(cr, cm); cr = 0; cm = 0 };
#else
  d_step { cr = rg_r; cm = rg_m; rg_r = 0; rg_m = 0; region_release(cr, cm); cr = 0; cm = 0 };
#endif
  do                                                            /* every spare */
  :: d_step { cr = rspare; rspare = 0; if :: cr != 0 -> unmap_chunks(cr, FULL) :: else fi };
     if :: cr == 0 -> break :: else -> cr = 0 fi
  od;
  skip;                                                         /* (a jump may not land in a d_step) */
  d_step { cr = lf_r[0]; cm = lf_m[0]; lf_r[0] = 0; lf_m[0] = 0; region_release(cr, cm); cr = 0; cm = 0 };
  d_step { cr = lf_r[1]; cm = lf_m[1]; lf_r[1] = 0; lf_m[1] = 0; region_release(cr, cm); cr = 0; cm = 0 };
  d_step { cr = ar_a; cm = ar_n; ar_a = 0; ar_n = 0; arena_release(cr, cm); cr = 0; cm = 0 };
  d_step { cr = aspare; aspare = 0; if :: cr != 0 -> unmap_arena(cr) :: else fi; cr = 0 }
}

proctype Collector() {
  byte cr = 0, cm = 0;
  collect();
  ndone++
}

/* When everything has finished: one more collect, then nothing leaked. */
active proctype End() {
  byte cr = 0, cm = 0, r;
  ndone == NTHREADS;
  atomic {
    collect();
    r = 1;
    do
    :: r <= 2 * narena ->
       gr = r;
       assert((claimed[gr] | unmapped[gr]) == FULL);  /* every chunk claimed or given back */
       r++
    :: else -> break
    od
  }
}

#if defined(SMALLREG)
init { atomic { run Claimer(0, 3); run Claimer(1, 2) } }
#elif defined(COLLECT)
init { atomic { run Claimer(0, 2); run Claimer(1, 2); run Collector() } }
#else
init { atomic { run Claimer(0, 2); run Claimer(0, 2); run Claimer(1, 2) } }
#endif
