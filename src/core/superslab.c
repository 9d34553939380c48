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

#include <string.h>

#include "core/addrmap.h"
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
  for (unsigned i = 0; i < HK_SS_CACHE_SLOTS; i++) {
    uintptr_t expected = 0;
    /* Release: our writes to the SuperSlab (the reset slabs, the decommit)
     * before the next taker's acquire exchange. */
    if (hk_load_relaxed(&hk_ss_cache[ss->kind][i]) == 0 &&
        hk_cas_strong_acq_rel(&hk_ss_cache[ss->kind][i], &expected, (uintptr_t)ss)) {
      hk_store_relaxed(&hk_ss_cache_at[ss->kind][i], at);
      return true;
    }
  }
  return false;
}

static void hk_ss_unmap(hk_superslab *ss) {
  hk_os_unmap(ss, HK_SS_SIZE);
  hk_stat_add(HK_STAT_SS_UNMAPPED, 1);
}

/* Every data page (the header page stays: it is rewritten on reuse). */
static void hk_ss_decommit(hk_superslab *ss) {
  hk_os_decommit((uint8_t *)ss + HK_PAGE_SIZE, HK_SS_SIZE - HK_PAGE_SIZE);
}

static void hk_superslab_init(hk_superslab *ss, int kind, struct hk_heap *heap) {
  ss->kind = (uint8_t)kind;
  ss->slab_shift = kind == HK_KIND_SMALL ? HK_SLAB_SHIFT_SMALL : HK_SLAB_SHIFT_MEDIUM;
  ss->nslabs = (uint8_t)(HK_SS_SIZE >> ss->slab_shift);
  ss->free_slabs = ss->nslabs == 32 ? 0xffffffffu : ((1u << ss->nslabs) - 1u);
  ss->magic = HK_SS_MAGIC;
  for (unsigned i = 0; i < ss->nslabs; i++) {
    ss->slabs[i].index = (uint8_t)i;
    ss->slabs[i].kind = (uint8_t)kind;
  }
  /* Not yet visible to any other thread: its blocks reach them only after
   * the owner hands them out, through the caller's own synchronisation. */
  hk_store_relaxed(&ss->owner, (uintptr_t)heap);
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

hk_superslab *hk_superslab_create(int kind, struct hk_heap *heap) {
  hk_epoch_maybe_poll(); /* retired SuperSlabs whose grace period ended refill the cache */
  hk_superslab *ss = hk_ss_cache_take(kind);
  if (ss != NULL) {
    /* A retired SuperSlab after its grace period: no thread reads it. Its
     * slabs were all reset to UNUSED; start the header from zero as a fresh
     * mapping would (a decommitted page reads as zeros anyway). */
    memset(ss, 0, sizeof *ss);
#ifdef HK_HARDENED
    memset((uint8_t *)ss + HK_PAGE_SIZE, 0, HK_SS_HEADER - HK_PAGE_SIZE);
#endif
    hk_superslab_init(ss, kind, heap);
    /* Release store in addrmap_set: the header before the entry. */
    hk_addrmap_set((uintptr_t)ss, HK_SS_SIZE, (uintptr_t)ss); /* its leaf exists: cannot fail */
    hk_stat_add(HK_STAT_SS_REUSED, 1);
    return ss;
  }
  /* The kind is bit 21 of the address (see hk_slab_of_block): small-kind
   * SuperSlabs sit at even 2 MiB slots, medium ones at odd slots. */
  ss = hk_os_map_aligned_parity(HK_SS_SIZE, HK_SS_SIZE, kind == HK_KIND_MEDIUM);
  if (ss == NULL && hk_superslab_reclaim_for_retry())
    ss = hk_os_map_aligned_parity(HK_SS_SIZE, HK_SS_SIZE, kind == HK_KIND_MEDIUM);
  if (ss == NULL) return NULL;
  hk_superslab_init(ss, kind, heap);
  if (!hk_addrmap_set((uintptr_t)ss, HK_SS_SIZE, (uintptr_t)ss)) {
    hk_os_unmap(ss, HK_SS_SIZE);
    return NULL;
  }
  hk_stat_add(HK_STAT_SS_MAPPED, 1);
  return ss;
}

hk_slab *hk_superslab_take_slab(hk_superslab *ss) {
  if (ss->free_slabs == 0) return NULL;
  unsigned i = (unsigned)__builtin_ctz(ss->free_slabs);
  ss->free_slabs &= ~(1u << i);
  ss->dirty &= ~(1u << i); /* its committed pages are reused as they are */
  return &ss->slabs[i];
}

void hk_superslab_release_slab(hk_superslab *ss, hk_slab *s) {
  bool touched = s->carved != 0;
  hk_slab_reset(s);
  ss->free_slabs |= 1u << s->index;
  if (touched) {
    ss->dirty |= 1u << s->index;
    ss->dirty_ms[s->index] = hk_os_now_ms();
  }
}

uint64_t hk_superslab_purge(hk_superslab *ss, uint64_t now, uint64_t delay) {
  uint64_t next = 0;
  uint32_t d = ss->dirty;
  while (d != 0) {
    unsigned i = (unsigned)__builtin_ctz(d);
    d &= d - 1;
    uint64_t due = ss->dirty_ms[i] + delay;
    if (due <= now) {
      /* UNUSED: no block of the slab is live, nobody reads its pages. */
      uint8_t *base = (uint8_t *)ss + ((size_t)i << ss->slab_shift);
      uint8_t *start = i == 0 ? (uint8_t *)ss + HK_SS_HEADER : base;
      hk_os_decommit(start, ((size_t)1 << ss->slab_shift) - (size_t)(start - base));
      ss->dirty &= ~(1u << i);
    } else if (next == 0 || due < next) {
      next = due;
    }
  }
  return next;
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
   * one that reads the old owner sets a bit in a type-stable heap. */
  hk_store_relaxed(&ss->owner, HK_OWNER_ABANDONED);
  hk_stat_add(HK_STAT_SS_RETIRED, 1);
  hk_epoch_retire(&ss->retire, hk_superslab_reclaimed);
}

size_t hk_superslab_cache_purge(bool all) {
  uint64_t now = hk_os_now_ms(), delay = hk_opt.decommit_delay_ms;
  size_t released = 0;
  for (int k = 0; k < HK_KINDS; k++) {
    for (unsigned i = 0; i < HK_SS_CACHE_SLOTS; i++) {
      uintptr_t w = hk_load_relaxed(&hk_ss_cache[k][i]);
      if (w == 0) continue;
      if (!all) {
        uint64_t at = hk_load_relaxed(&hk_ss_cache_at[k][i]);
        if (at == UINT64_MAX || at + delay > now) continue;
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
      released++;
      if (!hk_ss_cache_put(s, UINT64_MAX)) hk_ss_unmap(s);
    }
  }
  return released;
}
