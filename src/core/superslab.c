/* superslab.c -- creating SuperSlabs, handing out their slabs, retiring empty
 * ones and the cache of retired ones. Model of retirement: formal/retire.pml.
 *
 * Life of a SuperSlab:
 *   FRESH   --create (mapped, or taken from the cache)-->     OWNED
 *   OWNED   --owner finds it empty and not its spare:
 *             unlinked from the heap, map entry tombstoned,
 *             owner = ABANDONED, hk_epoch_retire-->           RETIRED
 *   RETIRED --grace period: no section that could have read
 *             it is still open (hk_superslab_reclaimed)-->    CACHED or UNMAPPED
 *   CACHED  --create takes it (header zeroed, re-registered)--> OWNED
 *   CACHED  --HAKMEM_DECOMMIT_DELAY_MS passed: data pages
 *             decommitted, header page kept-->                CACHED (clean)
 *   CACHED  --hak_collect, or the cache is full-->            UNMAPPED
 *
 * Who may still read a RETIRED SuperSlab: only threads inside an epoch
 * section that began before the retirement: a sender between its push and
 * its notification (it reads `owner`), an adopter that read the SuperSlab's
 * address off an abandoned stack's head before it was popped by someone
 * else (it reads `stack_next`), an owner draining queues. No new reader can
 * find it: "empty" means no block of it is live, so no valid free can reach
 * it (a free of a stale pointer finds the tombstone), it is on no abandoned
 * stack (only owned SuperSlabs are retired; an abandoned one is popped and
 * adopted first), and it is on no list of its former owner.
 * The cache is touched only by exchanges of whole slots: a thread owns the
 * SuperSlab it took out of a slot, and nobody reads one through a slot. */
#include "core/superslab.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "core/addrmap.h"
#include "core/harden.h"
#include "core/purge.h"
#include "core/slab.h"
#include "epoch/epoch.h"
#include "os/os.h"
#include "util/options.h"
#include "util/stats.h"

static _Atomic uintptr_t hk_ss_cache[HK_KINDS][HK_SS_CACHE_SLOTS];
/* When each slot's SuperSlab entered the cache (UINT64_MAX: decommitted).
 * Written after the slot is filled, so a purger may read its previous
 * occupant's time: that only moves when it decommits, never what it owns,
 * which only the slot exchange decides. */
static _Atomic uint64_t hk_ss_cache_at[HK_KINDS][HK_SS_CACHE_SLOTS];

static hk_superslab *hk_ss_cache_take(int kind) {
  for (unsigned i = 0; i < HK_SS_CACHE_SLOTS; i++) {
    if (hk_load_relaxed(&hk_ss_cache[kind][i]) == 0) continue;
    /* Acquire: pairs with the release CAS that cached it (its header writes). */
    uintptr_t ss = hk_xchg_acquire(&hk_ss_cache[kind][i], 0);
    if (ss != 0) return (hk_superslab *)ss;
  }
  return NULL;
}

/* False when every slot is taken. */
static bool hk_ss_cache_put(hk_superslab *ss, uint64_t at) {
  /* Read before the slot is filled: from then on a taker may zero the header. */
  int k = ss->kind;
  for (unsigned i = 0; i < HK_SS_CACHE_SLOTS; i++) {
    uintptr_t expected = 0;
    /* Release: our writes to the SuperSlab (the reset slabs, the decommit)
     * before the next taker's acquire exchange. */
    if (hk_load_relaxed(&hk_ss_cache[k][i]) == 0 &&
        hk_cas_strong_acq_rel(&hk_ss_cache[k][i], &expected, (uintptr_t)ss)) {
      hk_store_relaxed(&hk_ss_cache_at[k][i], at);
      return true;
    }
  }
  return false;
}

/* Committed bytes of ss's slabs, which are set to none. */
static size_t hk_ss_take_committed(hk_superslab *ss) {
  size_t bytes = 0;
  for (unsigned i = 0; i < HK_MAX_SLABS; i++) {
    bytes += hk_load_relaxed(&ss->committed[i]);
    hk_store_relaxed(&ss->committed[i], 0u);
  }
  return bytes;
}

static void hk_ss_unmap(hk_superslab *ss) {
  hk_stat_decommit(HK_PAGE_SIZE + hk_ss_take_committed(ss)); /* the header page and the slabs' */
  hk_os_unmap(ss, HK_SS_SIZE);
  hk_stat_add(HK_STAT_SS_UNMAPPED, 1);
}

/* Every data page (the header page stays: it is rewritten on reuse). A
 * refusal only keeps the memory: reuse zeroes the header itself and no
 * slab page is read before it is written. */
static void hk_ss_decommit(hk_superslab *ss) {
  hk_os_decommit((uint8_t *)ss + HK_PAGE_SIZE, HK_SS_SIZE - HK_PAGE_SIZE);
  hk_stat_decommit(hk_ss_take_committed(ss));
}

static void hk_superslab_init(hk_superslab *ss, int kind, struct hk_heap *heap) {
  ss->kind = (uint8_t)kind;
  ss->slab_shift = kind == HK_KIND_SMALL ? HK_SLAB_SHIFT_SMALL : HK_SLAB_SHIFT_MEDIUM;
  ss->nslabs = (uint8_t)(HK_SS_SIZE >> ss->slab_shift);
  ss->free_slabs = ss->nslabs == 32 ? 0xffffffffu : ((1u << ss->nslabs) - 1u);
  ss->magic = HK_SS_MAGIC;
#ifdef HK_HARDENED
  ss->secret = hk_harden_random(); /* fresh on every reuse: no list survives retirement */
#endif
  for (unsigned i = 0; i < ss->nslabs; i++) hk_ss_slab(ss, i)->index = (uint8_t)i;
  /* Not yet visible to any other thread: its blocks reach them only after
   * the owner hands them out, through the caller's own synchronisation. */
  hk_store_relaxed(hk_ss_owner_word(ss), (uintptr_t)heap);
}

/* ---- regions: SuperSlab address space reserved 32 chunks at a time --------
 *
 * Mapping one SuperSlab at its parity costs three takings of the kernel's
 * mmap lock (an over-sized mmap, two trims). With many more threads than
 * cores, a preempted holder of that lock stalls every thread that maps, for
 * seconds (stress_oversub: threads that never finish their first round).
 * So SuperSlabs are claimed from a region: HK_REGION_CHUNKS chunks mapped at
 * once (MAP_NORESERVE: untouched chunks cost nothing), even chunks for the
 * small kind, odd ones for medium.
 *
 * hk_region packs the current region's base (in region units, high 32 bits)
 * with a mask of its claimed chunks (low 32 bits), so a claim is one CAS:
 *   NONE    --a claimer installs a region (below) with its chunk-->      OPEN
 *   OPEN    --CAS sets a free chunk's bit (of the claimer's parity)-->    OPEN
 *   OPEN    --no chunk of a parity left: the claimer takes a parked spare
 *             region, or carves one from the arena (one CAS), and CAS
 *             installs it; the replaced word, if it still has chunks of the
 *             other parity, moves to that kind's leftover slot (claimed
 *             from first; an older leftover there gives its unclaimed
 *             chunks back). No claim can succeed on a replaced word-->   OPEN'
 *   OPEN    --hak_collect: CAS to 0, unmaps the unclaimed chunks-->       NONE
 * Claimers that found the region exhausted together each bring a region;
 * one installs, the others park theirs (HK_REGION_SPARES slots) and claim
 * from the winner's. Nobody waits for anybody, and no region is mapped
 * only to be unmapped. Before this (each claimer mapped a region, all but
 * one unmapped theirs and retried, and the old region's chunks of the other
 * parity were unmapped one by one), stress_oversub (256 threads, 2 cores)
 * queued thousands of 128 MiB maps and 64 MiB unmaps a second on the
 * kernel's mmap lock.
 * mapped_bytes counts claimed chunks only.
 * Every chunk changes hands once: claimed (a won CAS on the word that holds
 * it: hk_region or a leftover slot) or given back (by the thread that took
 * the word out of its slot by an exchange or a won CAS, so no claim can
 * still succeed on it). Model: formal/region.pml (the arena below, the
 * spares, the leftovers and hak_collect's release; mutants region_*). */
#define HK_REGION_CHUNKS 32
#define HK_REGION_SIZE   ((size_t)HK_REGION_CHUNKS << HK_SS_SHIFT)
#define HK_REGION_SHIFT  (HK_SS_SHIFT + 5)
_Static_assert(HK_REGION_SIZE == (size_t)1 << HK_REGION_SHIFT, "a region is 32 chunks");
static _Atomic uint64_t hk_region;
/* Regions are carved from an arena of HK_ARENA_REGIONS regions mapped at
 * once (MAP_NORESERVE address space), so replacing an exhausted region
 * makes no system call but once per arena. hk_arena packs the arena's base
 * (in region units, high 32 bits) with how many regions were carved (low
 * 32); a carve is one CAS, by any thread. The carver of region
 * HK_ARENA_REGIONS/2 maps the next arena ahead into hk_arena_spare; the
 * claimer that finds the arena used up installs that spare.
 *   NONE, USED UP --a claimer installs the spare arena, or one it maps,
 *                   by CAS (region 0 is its own); losers park theirs as
 *                   the spare or unmap it-->                          OPEN
 *   OPEN    --CAS count -> count + 1: region `count` is the carver's;
 *             the carver of the middle one stocks the spare arena-->  OPEN
 *   OPEN    --the last region carved-->                               USED UP
 *   any     --hak_collect: exchange with 0, uncarved regions unmapped--> NONE */
#define HK_ARENA_REGIONS 2
#define HK_ARENA_SIZE    ((size_t)HK_ARENA_REGIONS * HK_REGION_SIZE)
static _Atomic uint64_t hk_arena;
static _Atomic uintptr_t hk_arena_spare;
/* Carved regions ready to install (0: empty slot): claimers that found the
 * region exhausted together each carve one, one installs, the others park
 * theirs here for the next exhaustion instead of unmapping them. */
#define HK_REGION_SPARES 8
static _Atomic uintptr_t hk_region_spare[HK_REGION_SPARES];

static uint8_t *hk_spare_take(void) {
  for (unsigned i = 0; i < HK_REGION_SPARES; i++) {
    if (hk_load_relaxed(&hk_region_spare[i]) == 0) continue;
    uintptr_t r = hk_xchg_acquire(&hk_region_spare[i], (uintptr_t)0); /* pairs with the parking CAS */
    if (r != 0) return (uint8_t *)r;
  }
  return NULL;
}

static bool hk_spare_park(uint8_t *r) {
  for (unsigned i = 0; i < HK_REGION_SPARES; i++) {
    uintptr_t expected = 0;
    /* Release: pairs with the taker's acquire exchange. */
    if (hk_load_relaxed(&hk_region_spare[i]) == 0 && hk_cas_strong_acq_rel(&hk_region_spare[i], &expected, (uintptr_t)r))
      return true;
  }
  return false;
}
static _Atomic uint64_t hk_region_left[HK_KINDS]; /* replaced regions with chunks of that kind left */
static const uint32_t hk_region_parity[HK_KINDS] = {0x55555555u, 0xaaaaaaaau};

/* Unmap address space of a region or arena that no SuperSlab has claimed:
 * mapped_bytes counts chunks only as they are claimed. */
static void hk_unmap_unclaimed(void *p, size_t bytes) { hk_os_unreserve(p, bytes); }

/* Unmap the chunks of region w that nobody claimed (the caller replaced w). */
static void hk_region_release(uint64_t w) {
  if (w == 0) return;
  uint8_t *base = (uint8_t *)(uintptr_t)((w >> 32) << HK_REGION_SHIFT);
  uint32_t free = ~(uint32_t)w;
  while (free != 0) {
    unsigned i = (unsigned)__builtin_ctz(free);
    unsigned n = 0;
    while (i + n < HK_REGION_CHUNKS && (free >> (i + n) & 1)) n++; /* a run of free chunks */
    size_t bytes = (size_t)n << HK_SS_SHIFT;
    hk_unmap_unclaimed(base + ((size_t)i << HK_SS_SHIFT), bytes);
    free &= ~(uint32_t)(n == 32 ? 0xffffffffu : (((1u << n) - 1u) << i));
  }
}

static uint8_t *hk_arena_map(void) {
  return hk_os_reserve_aligned(HK_ARENA_SIZE, HK_REGION_SIZE); /* counted chunk by chunk as claimed */
}

/* Give back an arena's uncarved regions (the caller replaced word w). */
static void hk_arena_release(uint64_t w) {
  uint32_t used = (uint32_t)w;
  if (w == 0 || used >= HK_ARENA_REGIONS) return;
  uint8_t *base = (uint8_t *)(uintptr_t)((w >> 32) << HK_REGION_SHIFT);
  size_t left = (size_t)(HK_ARENA_REGIONS - used) * HK_REGION_SIZE;
  hk_unmap_unclaimed(base + (size_t)used * HK_REGION_SIZE, left);
}

/* A fresh region, by one CAS on the arena word; NULL when the OS refused
 * a new arena. */
static uint8_t *hk_arena_carve(void) {
  uint64_t w = hk_load_acquire(&hk_arena); /* pairs with the installing CAS */
  for (;;) {
    if (w != 0 && (uint32_t)w < HK_ARENA_REGIONS) {
      /* acq_rel: acquire, the arena installed by another thread. */
      if (!hk_cas_weak_acq_rel(&hk_arena, &w, w + 1)) continue;
      uint32_t idx = (uint32_t)w;
      if (idx == HK_ARENA_REGIONS / 2 && hk_load_relaxed(&hk_arena_spare) == 0) {
        uint8_t *next = hk_arena_map(); /* only this carver: the next arena, ahead of need */
        uintptr_t expected = 0;
        /* Release: pairs with the installer's acquire exchange. */
        if (next != NULL && !hk_cas_strong_acq_rel(&hk_arena_spare, &expected, (uintptr_t)next))
          hk_unmap_unclaimed(next, HK_ARENA_SIZE);
      }
      return (uint8_t *)(uintptr_t)(((w >> 32) << HK_REGION_SHIFT) + (uint64_t)idx * HK_REGION_SIZE);
    }
    /* Used up (or none yet): install the spare arena, or map one (the first
     * time, or when the carver of the middle region has not finished: then
     * claimers racing here may each map one; all but one are parked or
     * unmapped). */
    uint8_t *a = (uint8_t *)hk_xchg_acquire(&hk_arena_spare, (uintptr_t)0); /* pairs with the stocking CAS */
    if (a == NULL && (a = hk_arena_map()) == NULL) return NULL;
    uint64_t nw = ((uint64_t)(uintptr_t)a >> HK_REGION_SHIFT) << 32 | 1u;
    /* acq_rel: release publishes the arena (pairs with carvers' acquire). */
    if (hk_cas_strong_acq_rel(&hk_arena, &w, nw)) {
      hk_arena_release(w);
      return a;
    }
    /* Someone installed one first: ours back as the spare, or away. */
    uintptr_t expected = 0;
    /* Release: pairs with the installer's acquire exchange. */
    if (!hk_cas_strong_acq_rel(&hk_arena_spare, &expected, (uintptr_t)a)) hk_unmap_unclaimed(a, HK_ARENA_SIZE);
  }
}

/* Claim a chunk of parity `kind` from region word *slot, starting from the
 * word's value *w (updated as the CASes reload it); NULL when none is left,
 * with *w the exhausted (or empty) word. */
static hk_superslab *hk_region_claim_from(_Atomic uint64_t *slot, int kind, uint64_t *wp) {
  uint64_t w = *wp;
  for (;; *wp = w) {
    uint32_t free = ~(uint32_t)w & hk_region_parity[kind];
    if (w == 0 || free == 0) return NULL;
    unsigned i = (unsigned)__builtin_ctz(free);
    /* acq_rel: acquire, the region installed by another thread happens-before
     * our use of the chunk. On failure w is reloaded: another claim went first. */
    if (hk_cas_weak_acq_rel(slot, &w, w | (uint64_t)1 << i)) {
      hk_stat_mapped(HK_SS_SIZE);
      return (hk_superslab *)(uintptr_t)(((w >> 32) << HK_REGION_SHIFT) + ((uint64_t)i << HK_SS_SHIFT));
    }
  }
}

/* A replaced region still holding chunks of the other parity waits in that
 * kind's leftover slot instead of being unmapped chunk by chunk (each munmap
 * a trip through the kernel's mmap lock, and a split of the region's VMA). */
static void hk_region_retire(uint64_t w) {
  if (w == 0) return;
  for (int k = 0; k < HK_KINDS; k++) {
    if ((~(uint32_t)w & hk_region_parity[k]) == 0) continue;
    /* acq_rel: release publishes the word to claimers; acquire, the word we replace. */
    uint64_t prev = hk_xchg_acq_rel(&hk_region_left[k], w);
    hk_region_release(prev); /* an older leftover: what it still holds goes back */
    return;
  }
  /* Fully claimed: nothing to give back. */
}

static hk_superslab *hk_region_claim(int kind) {
  uint64_t lw = hk_load_acquire(&hk_region_left[kind]); /* pairs with hk_region_retire's exchange */
  hk_superslab *left = hk_region_claim_from(&hk_region_left[kind], kind, &lw);
  if (left != NULL) return left;
  uint64_t w = hk_load_acquire(&hk_region); /* pairs with the installing CAS */
  for (;;) {
    hk_superslab *ss = hk_region_claim_from(&hk_region, kind, &w);
    if (ss != NULL) return ss;
    /* No chunk of our parity left: install a parked spare region or one
     * carved from the arena (no system call either way); NULL only when
     * the OS refuses an arena (the caller maps this SuperSlab alone). */
    uint8_t *fresh = hk_spare_take();
    if (fresh == NULL && (fresh = hk_arena_carve()) == NULL) return NULL;
    unsigned i = (unsigned)__builtin_ctz(hk_region_parity[kind]);
    uint64_t nw = (((uint64_t)(uintptr_t)fresh >> HK_REGION_SHIFT) << 32) | (uint64_t)1 << i;
    uint64_t old = w; /* the exhausted word (or 0: no region yet) */
    bool installed = false;
    for (;;) {
      /* acq_rel: release publishes the fresh region (pairs with the
       * claimers' acquire); acquire, the replaced word's bits. */
      if (hk_cas_weak_acq_rel(&hk_region, &w, nw)) {
        installed = true;
        break;
      }
      /* w reloaded: the same region whose other-parity bits changed (bits
       * are only ever set, so ours stay exhausted), or a spurious failure:
       * again. Another region (or none, after hak_collect): not ours to replace. */
      if (w == old || (w != 0 && old != 0 && (w >> 32) == (old >> 32))) continue;
      break;
    }
    if (!installed) {
      /* Another claimer installed a region first: ours back to the spare
       * slot (unmapped if it was stocked meanwhile), then claim from theirs. */
      if (!hk_spare_park(fresh)) hk_unmap_unclaimed(fresh, HK_REGION_SIZE);
      continue; /* with w as reloaded */
    }
    hk_stat_mapped(HK_SS_SIZE);
    hk_region_retire(w); /* the old region's unclaimed chunks: to a leftover slot */
    return (hk_superslab *)(fresh + ((size_t)i << HK_SS_SHIFT));
  }
}

bool hk_superslab_reclaim_for_retry(void) {
  /* A few polls, none of them waiting: with no reader in a section, one
   * poll reclaims everything retired; otherwise what a lingering reader
   * still protects stays, and the caller fails with ENOMEM as before. */
  uint64_t before = hk_load_relaxed(&hk_epoch_pending);
  for (int i = 0; i < 3 && hk_load_relaxed(&hk_epoch_pending) != 0; i++) hk_epoch_poll();
  size_t n = hk_superslab_cache_purge(true);
  return n != 0 || hk_load_relaxed(&hk_epoch_pending) != before;
}

/* Hardened builds: the guard pages of the layout (hk_config.h), set once
 * per mapping (a cached SuperSlab keeps them: decommits only madvise).
 * mprotect here rather than in os/: it is the one protection change of the
 * allocator, and it fails only when the kernel's mapping count is
 * exhausted (each guard splits the mapping), which is then ENOMEM. */
static bool hk_superslab_guard(hk_superslab *ss) {
#ifdef HK_HARDENED
  int saved = errno;
  uint8_t *base = (uint8_t *)ss;
  if (mprotect(base + HK_SS_GUARD, HK_PAGE_SIZE, PROT_NONE) != 0 ||
      mprotect(base + HK_SS_SIZE - HK_SS_TAIL_GUARD, HK_SS_TAIL_GUARD, PROT_NONE) != 0) {
    errno = saved; /* the caller fails the request with ENOMEM (os.h) */
    return false;
  }
  errno = saved;
#else
  (void)ss;
#endif
  return true;
}

hk_superslab *hk_superslab_create(int kind, struct hk_heap *heap) {
  hk_epoch_maybe_poll(); /* retired SuperSlabs whose grace period ended refill the cache */
  hk_superslab *ss = hk_ss_cache_take(kind);
  if (ss != NULL) {
    /* A retired SuperSlab after its grace period: no thread reads it. Its
     * slabs were all reset to UNUSED; start the header from zero as a fresh
     * mapping would (a decommitted page reads as zeros anyway), except the
     * dirty slabs: taken before the cache decommitted it, their pages are
     * still committed, and only their dirty bits get them decommitted
     * later (by this owner's clock, another thread's purge or hak_collect).
     * No purging bit can be set: a purger works inside a section, so it was
     * done before the grace period ended. Decommitted in the cache, the
     * mask is 0 (hk_superslab_cache_purge). */
    uint32_t dirty = hk_purge_dirty(ss);
    uint64_t dirty_ms[HK_MAX_SLABS];
    for (uint32_t d = dirty; d != 0; d &= d - 1) {
      unsigned i = (unsigned)__builtin_ctz(d);
      dirty_ms[i] = hk_load_relaxed(&ss->dirty_ms[i]);
    }
    /* And the statistics' record of which pages are still committed. */
    uint32_t committed[HK_MAX_SLABS];
    for (unsigned i = 0; i < HK_MAX_SLABS; i++) committed[i] = hk_load_relaxed(&ss->committed[i]);
    memset(ss, 0, sizeof *ss);
    for (unsigned i = 0; i < HK_MAX_SLABS; i++) hk_store_relaxed(&ss->committed[i], committed[i]);
    hk_superslab_init(ss, kind, heap);
    for (uint32_t d = dirty; d != 0; d &= d - 1) {
      unsigned i = (unsigned)__builtin_ctz(d);
      hk_purge_mark_dirty(ss, i, dirty_ms[i]);
    }
    /* Release store in addrmap_set: the header before the entry. */
    hk_addrmap_set((uintptr_t)ss, HK_SS_SIZE, (uintptr_t)ss); /* its leaf exists: cannot fail */
    hk_stat_add(HK_STAT_SS_REUSED, 1);
    return ss;
  }
  /* The kind is bit 21 of the address (see hk_slab_of_block): small-kind
   * SuperSlabs sit at even 2 MiB slots, medium ones at odd slots. A failed
   * mapping has already had the caches give back address space and been
   * retried once (os.h). */
  ss = hk_region_claim(kind);
  if (ss == NULL) ss = hk_os_map_aligned_parity(HK_SS_SIZE, HK_SS_SIZE, kind == HK_KIND_MEDIUM);
  if (ss == NULL) return NULL;
  if (!hk_superslab_guard(ss)) {
    hk_os_unmap(ss, HK_SS_SIZE);
    return NULL;
  }
  hk_superslab_init(ss, kind, heap);
  if (!hk_addrmap_set((uintptr_t)ss, HK_SS_SIZE, (uintptr_t)ss)) {
    hk_os_unmap(ss, HK_SS_SIZE);
    return NULL;
  }
  hk_stat_add(HK_STAT_SS_MAPPED, 1);
  hk_stat_commit(HK_PAGE_SIZE); /* the header page; slab pages as they are carved */
  return ss;
}

hk_slab *hk_superslab_take_slab(hk_superslab *ss) {
  if (ss->free_slabs == 0) return NULL;
  /* Committed pages of a dirty slab are reused as they are; a slab another
   * thread is decommitting right now is skipped (core/purge.h). */
  int i = hk_purge_claim_for_use(ss, ss->free_slabs);
  if (i < 0) return NULL;
  ss->free_slabs &= ~(1u << i);
  return hk_ss_slab(ss, (unsigned)i);
}

void hk_superslab_release_slab(hk_superslab *ss, hk_slab *s) {
  bool touched = s->carved_key != 0;
  hk_slab_reset(s);
  ss->free_slabs |= 1u << s->index;
  if (touched) hk_purge_mark_dirty(ss, s->index, hk_os_now_ms());
}

/* After the grace period (epoch callback, on the polling thread). */
static void hk_superslab_reclaimed(hk_retired *r) {
  hk_superslab *ss = (hk_superslab *)((uint8_t *)r - offsetof(hk_superslab, retire));
  if (!hk_ss_cache_put(ss, hk_os_now_ms())) hk_ss_unmap(ss);
}

void hk_superslab_retire(hk_superslab *ss) {
  HK_ASSERT(ss->free_slabs == (ss->nslabs == 32 ? 0xffffffffu : ((1u << ss->nslabs) - 1u)));
  /* Tombstone the map entry: a later free of a stale pointer into it is
   * diagnosed (api.c) without touching its memory. */
  hk_addrmap_set((uintptr_t)ss, HK_SS_SIZE, (uintptr_t)ss | HK_MAP_DEAD);
  /* Relaxed: a late notifier that reads ABANDONED skips the notification;
   * one that reads the old owner sets a bit in that heap, inside the section
   * that also keeps the heap from being retired under it (core/heap.c). */
  hk_store_relaxed(hk_ss_owner_word(ss), HK_OWNER_ABANDONED);
  hk_stat_add(HK_STAT_SS_RETIRED, 1);
  hk_epoch_retire(&ss->retire, hk_superslab_reclaimed);
}

size_t hk_superslab_cache_purge(bool all) {
  uint64_t now = 0, delay = hk_opt_get(decommit_delay_ms); /* now: read once a slot is full */
  size_t released = 0;
  if (all) { /* and the unclaimed part of the current region and arena */
    uint64_t w = hk_xchg_acq_rel(&hk_region, 0); /* acquire: its base; release: claimers see NONE */
    if (w != 0) released++;
    hk_region_release(w);
    /* Every parked region (hk_spare_take's exchange acquires the parking
     * CAS): no claimer can install it any more. */
    for (uint8_t *sp; (sp = hk_spare_take()) != NULL; released++) hk_unmap_unclaimed(sp, HK_REGION_SIZE);
    for (int k = 0; k < HK_KINDS; k++) {
      uint64_t lw = hk_xchg_acq_rel(&hk_region_left[k], 0); /* acquire: its base; release: claimers see none */
      if (lw != 0) released++;
      hk_region_release(lw);
    }
    uint64_t aw = hk_xchg_acq_rel(&hk_arena, 0); /* acquire: its base; release: carvers see none */
    if (aw != 0 && (uint32_t)aw < HK_ARENA_REGIONS) released++;
    hk_arena_release(aw);
    uintptr_t sa = hk_xchg_acquire(&hk_arena_spare, (uintptr_t)0); /* pairs with the stocking CAS */
    if (sa != 0) {
      hk_unmap_unclaimed((void *)sa, HK_ARENA_SIZE);
      released++;
    }
  }
  for (int k = 0; k < HK_KINDS; k++) {
    for (unsigned i = 0; i < HK_SS_CACHE_SLOTS; i++) {
      uintptr_t w = hk_load_relaxed(&hk_ss_cache[k][i]);
      if (w == 0) continue;
      if (!all) {
        uint64_t at = hk_load_relaxed(&hk_ss_cache_at[k][i]);
        if (at == UINT64_MAX) continue;
        if (now == 0) now = hk_os_now_ms();
        if (at + delay > now) continue;
      }
      uintptr_t ss = hk_xchg_acquire(&hk_ss_cache[k][i], 0); /* pairs with put's release CAS */
      if (ss == 0) continue;
      hk_superslab *s = (hk_superslab *)ss;
      if (all) {
        hk_ss_unmap(s);
        released++;
        continue;
      }
      hk_ss_decommit(s);
      hk_store_relaxed(&s->purge, 0); /* every slab clean now; published by the put's release CAS */
      released++;
      if (!hk_ss_cache_put(s, UINT64_MAX)) hk_ss_unmap(s);
    }
  }
  return released;
}
