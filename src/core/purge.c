/* purge.c -- the slab decommit protocol between owners and other purgers,
 * and the scan that lets any thread purge idle owners' slabs. See purge.h
 * for the states; model: formal/purge.pml. */
#include "core/purge.h"

#include "core/addrmap.h"
#include "os/os.h"
#include "util/options.h"
#include "util/stats.h"

/* Decommit slab i's pages (not the header, which shares slab 0). A refusal
 * only keeps the memory: nothing reads a slab's pages before writing them
 * (carving writes each block; small calloc always clears). */
static void hk_purge_decommit(hk_superslab *ss, unsigned i) {
  uint8_t *base = (uint8_t *)ss + ((size_t)i << ss->slab_shift);
  uint8_t *start = i == 0 ? (uint8_t *)ss + HK_SS_HEADER : base;
  hk_os_decommit(start, ((size_t)1 << ss->slab_shift) - (size_t)(start - base));
  /* Only the owner or the holder of the slab's PURGING claim gets here. */
  hk_stat_decommit(hk_load_relaxed(&ss->committed[i]));
  hk_store_relaxed(&ss->committed[i], 0u);
}

int hk_purge_claim_for_use(hk_superslab *ss, uint32_t candidates) {
  /* Acquire: a slab we find CLEAN was decommitted before our writes to it
   * (pairs with the purger's release fetch_and). */
  uint64_t w = hk_load_acquire(&ss->purge);
  for (;;) {
    uint32_t usable = candidates & ~(uint32_t)(w >> 32);
    if (usable == 0) return -1; /* all being purged right now: not waited for */
    unsigned i = (unsigned)__builtin_ctz(usable);
    uint64_t bit = (uint64_t)1 << i;
    if ((w & bit) == 0) return (int)i; /* CLEAN: no purger can claim it (claims need D) */
    /* DIRTY: clear D before using the pages, so no purger claims it after.
     * Acquire on success and on failure: the reload may show the slab CLEAN
     * after a purger finished with it, and its decommit must come before our
     * writes (pairs with the purger's release fetch_and). */
    if (atomic_compare_exchange_weak_explicit(&ss->purge, &w, w & ~bit, memory_order_acq_rel, memory_order_acquire))
      return (int)i;
  }
}

uint64_t hk_superslab_purge(hk_superslab *ss, uint64_t now, uint64_t delay) {
  uint64_t next = 0;
  uint32_t d = hk_purge_dirty(ss);
  while (d != 0) {
    unsigned i = (unsigned)__builtin_ctz(d);
    d &= d - 1;
    uint64_t due = hk_load_relaxed(&ss->dirty_ms[i]) + delay;
    if (due > now) {
      if (next == 0 || due < next) next = due;
      continue;
    }
    /* The owner is the only one that takes slabs, and it is here: clearing D
     * (so no purger claims the slab) is all the claim it needs. A purger
     * that claimed it first cleared D already: the and reports that. */
    uint64_t bit = (uint64_t)1 << i;
    if (hk_and_relaxed(&ss->purge, ~bit) & bit) hk_purge_decommit(ss, i);
  }
  return next;
}

/* Decommit the dirty slabs of one SuperSlab we may not own. */
static size_t hk_purge_foreign(hk_superslab *ss, uint64_t before, bool all) {
  size_t n = 0;
  /* Acquire: pairs with mark_dirty's release, so dirty_ms is the time of
   * the release that set the bit we see (or a later one). */
  uint64_t w = hk_load_acquire(&ss->purge);
  uint32_t d = (uint32_t)w;
  while (d != 0) {
    unsigned i = (unsigned)__builtin_ctz(d);
    d &= d - 1;
    if (!all && hk_load_relaxed(&ss->dirty_ms[i]) > before) continue;
    uint64_t bit = (uint64_t)1 << i;
    /* DIRTY -> PURGING. acq_rel: acquire, as above; release is unneeded
     * (our decommit comes after). Fails when the owner took the slab or
     * another purger claimed it: then it is not ours to decommit. */
    uint64_t cur = hk_load_relaxed(&ss->purge);
    bool claimed = false;
    while ((cur & bit) != 0 && (cur & HK_PURGING(bit)) == 0) {
      if (hk_cas_weak_acq_rel(&ss->purge, &cur, (cur & ~bit) | HK_PURGING(bit))) {
        claimed = true;
        break;
      }
    }
    if (!claimed) continue;
    hk_purge_decommit(ss, i);
    /* Release: the decommit before an owner's acquire load that sees CLEAN. */
    hk_and_release(&ss->purge, ~HK_PURGING(bit));
    n++;
  }
  return n;
}

size_t hk_purge_others(hk_epoch_rec *rec, uint64_t now, bool all) {
  uint64_t delay = hk_opt_get(decommit_delay_ms);
  /* An owner that ran a maintenance pass since would have purged these at
   * one delay; at two, it is idle (or only on fast paths). */
  uint64_t before = now > 2 * delay ? now - 2 * delay : 0;
  size_t n = 0;
  for (size_t wi = hk_ssmap_next_word(0); wi < HK_SSMAP_WORDS; wi = hk_ssmap_next_word(wi + 1)) {
    _Atomic uint64_t *w = hk_ssmap_word(wi); /* NULL only if the summary bit's store was seen first */
    if (w == NULL || hk_load_relaxed(w) == 0) continue;
    /* One section per bitmap word: a SuperSlab whose bit we read is
     * retired, if at all, after we leave (formal/retire.pml). */
    hk_epoch_enter(rec);
    uint64_t bits = hk_load_acquire(w); /* pairs with addrmap_set's release or */
    for (; bits != 0; bits &= bits - 1) {
      uintptr_t chunk = wi * 64 + (size_t)__builtin_ctzll(bits);
      n += hk_purge_foreign((hk_superslab *)(chunk << HK_SS_SHIFT), before, all);
    }
    hk_epoch_exit(rec);
  }
  if (n != 0) hk_stat_add(HK_STAT_SLABS_PURGED_BY_OTHERS, (long)n);
  return n;
}

void hk_purge_fork_child(void) {
  for (size_t wi = hk_ssmap_next_word(0); wi < HK_SSMAP_WORDS; wi = hk_ssmap_next_word(wi + 1)) {
    _Atomic uint64_t *word = hk_ssmap_word(wi); /* no other thread runs: its leaf exists */
    for (uint64_t bits = word == NULL ? 0 : hk_load_relaxed(word); bits != 0; bits &= bits - 1) {
      hk_superslab *ss = (hk_superslab *)((wi * 64 + (size_t)__builtin_ctzll(bits)) << HK_SS_SHIFT);
      uint64_t w = hk_load_relaxed(&ss->purge); /* relaxed: nobody else runs */
      if ((w >> 32) != 0) hk_store_relaxed(&ss->purge, (w & 0xffffffffu) | (w >> 32));
    }
  }
}

/* When the next scan for idle owners' slabs is due (ms; 0: at the first look). */
static _Atomic uint64_t hk_purge_others_due;

void hk_purge_others_maybe(hk_epoch_rec *rec, uint64_t now) {
  uint64_t due = hk_load_relaxed(&hk_purge_others_due);
  if (now < due) return;
  /* Relaxed: the winner only gets the right to scan; the scan synchronises
   * with each SuperSlab by itself. */
  if (!atomic_compare_exchange_strong_explicit(&hk_purge_others_due, &due, now + hk_opt_get(decommit_delay_ms),
                                               memory_order_relaxed, memory_order_relaxed))
    return;
  hk_purge_others(rec, now, false);
}
