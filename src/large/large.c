/* large.c -- large allocations: map, register, cache, unmap, grow.
 *
 * Layout: each block is its own mapping of whole pages, placed wherever the
 * kernel puts it (adjacent ones merge into one VMA, as glibc's do, so
 * 100,000 live blocks do not reach the kernel's map-count limit), costing
 * its size rounded to pages in address space and nothing more: under
 * RLIMIT_AS a block of 1 MiB costs 1 MiB + 4 KiB, as in glibc (whole 2 MiB
 * chunks before, which halved what a program got). The header (hk_large,
 * HK_LARGE_HDR bytes) starts at a page start, the key page; the user
 * pointer is HK_LARGE_HDR bytes after it, or `align` bytes after the
 * mapping's start for an over-aligned block (the key page is then the page
 * below the user pointer, or the mapping's first). So for any user pointer
 * p the key is the page of p - HK_LARGE_HDR, and the page map
 * (core/addrmap.h) says whether a live block's header starts there: a free
 * finds and validates a large block without touching memory that is not
 * ours.
 *
 * A freed large mapping of ordinary alignment, whatever its size, goes to a
 * global cache instead of munmap. The cache is HK_LARGE_CACHE_SLOTS slots;
 * a slot holds one word that says everything about its mapping: the
 * page number of its base, its page count and a dirty bit (pages may hold
 * old data). An allocation of N pages takes the best fit among cached
 * mappings of N to HK_LARGE_REUSE_MAX_FACTOR * N pages; the block keeps the
 * whole mapping with its pages, so a live block holds at most twice the
 * memory a fresh mapping would (hk_config.h says why the tail keeps its
 * pages). Unmapping the tail instead split a VMA per reuse (see
 * hk_large_alloc_impl). A hit costs no page fault and no system call: the
 * pages the last user touched are still there (calloc clears what it hands
 * out again).
 *
 * Bound: the cache holds at most max(HAKMEM_LARGE_CACHE_MB, peak live large
 * bytes >> HK_LARGE_CACHE_PEAK_SHIFT) of address space (hk_config.h says
 * why); beyond it a freed mapping is unmapped at once.
 *
 * Memory return: a cached mapping keeps its pages for
 * HAKMEM_DECOMMIT_DELAY_MS, then is decommitted (madvise, the mapping
 * stays); hak_collect / malloc_trim unmap every cached one, and so does any
 * mapping that fails (the os layer's pressure hook) before it is retried:
 * under RLIMIT_AS the cache never costs the program an allocation. The timer runs
 * on large alloc/free and on every thread's maintenance tick
 * (malloc_slow.c): a clock read and one load while nothing is due.
 * Decommitting is done by one thread at a time: whoever wins the `purging`
 * try-flag scans; the others skip it and never wait. The purger holds
 * nothing another thread waits for: a mapping it has taken out to
 * decommit is simply absent from the cache meanwhile (an allocation that
 * wanted it maps a fresh one).
 *
 * Oversubscription: with more than HK_LARGE_CACHE_THREADS_PER_CPU live
 * threads per CPU the cache stops taking and giving (large calls go to the
 * OS as with the cache off; what is cached is decommitted by the timer and
 * unmapped by hak_collect). There
 * (stress_oversub: 256 threads, 2 cores) threads whose large calls never
 * enter the kernel keep both CPUs, and each hand-off of the kernel's mmap
 * lock, which page faults and every other thread's mmap/munmap need, waits
 * for its next holder to be scheduled among them: some threads then made no
 * progress for 10 s (mimalloc fails the same test the same way). Large
 * mappings throttle the threads into the kernel's queue and keep every
 * thread moving.
 *
 * Slot protocol (the slot-exchange style of the SuperSlab cache): a slot is
 * 0 or a mapping's word. put fills an empty slot with a CAS from 0 (release:
 * the freeing thread's writes to the pages before the next owner's use). A
 * taker reads the slots (relaxed loads, no writes), picks the best word and
 * takes exactly that word with a CAS from it to 0 (acquire on success); a
 * lost CAS rescans, a few times at most, then the caller maps afresh. The
 * purger and hak_collect take whatever a slot holds with an exchange. So a
 * mapping is owned by whoever took its word; nobody dereferences a cached
 * mapping, and the word alone says its size, so no taker ever takes a
 * mapping it cannot use. ABA is harmless: an identical word is the same
 * mapping (base) in the same state (size, dirty). Per slot, `at` is a hint
 * written after the slot is filled (the purger may read its previous
 * occupant's: it then decommits a mapping a little early, which costs page
 * faults, never correctness). put starts at a slot hashed from the
 * mapping's address, so threads do not all contend on slot 0; a search
 * reads every slot and picks the best fit, so two threads after the same
 * size race for the same slot, and the loser rescans. No epoch is needed:
 * a cached mapping is referenced by no live pointer, its key page is DEAD
 * in the page map, and nothing but a slot leads to it.
 *
 * Counters: every large call updates the cache's byte count and the live
 * large bytes (for the bound), both relaxed and on one cache line; the
 * statistics go to the calling thread's heap (hk_large_count), merged with
 * its other counts; a cache hit makes no mapped-bytes update.
 *
 * Growth (realloc past the mapping's end): mremap, never a copy. Into a
 * cached mapping that fits (its address space takes the pages), else in
 * place (the address space after the mapping is free), else the pages move,
 * header included, into a fresh reservation (MREMAP_FIXED replaces it). The
 * old key is marked DEAD like a free before the move (after it, the old
 * range may already be someone else's, whose registration must not be
 * overwritten); the target's key page (its leaf prepared first, so nothing
 * can fail after the move) turns LIVE once the moved header is valid; a
 * failed move makes the old key LIVE again and leaves the target alone if
 * the kernel gave it away (hk_os_remap).
 *
 * Hardened builds seal every header: a hash of its fields and its address
 * keyed by the process secret (core/harden.h), rewritten by whoever writes
 * the header and checked before any field is trusted (free, realloc,
 * malloc_usable_size). A large block's header is the first page of its
 * mapping, and the kernel places mappings side by side: a linear overflow
 * off the end of the block below reaches it, and a forged map_base or
 * map_size would have free unmap or cache someone else's memory. A header
 * changed without the secret aborts (`corrupted large block header`). */
#include "large/large.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "core/addrmap.h"
#include "core/harden.h"
#include "core/heap.h"
#include "core/superslab.h"
#include "os/os.h"
#include "prof/prof.h"
#include "util/diag.h"
#include "util/mix.h"
#include "util/options.h"
#include "util/stats.h"

_Static_assert((HK_LARGE_CACHE_SLOTS & (HK_LARGE_CACHE_SLOTS - 1)) == 0, "slot indices are masked");
_Static_assert(sizeof(hk_large) <= HK_LARGE_HDR, "the header fits before the user pointer");

/* A slot word: base page number << 28 | pages << 1 | dirty. */
#define HK_LC_DIRTY      ((uintptr_t)1)
#define HK_LC_BASE_SHIFT 28
#define HK_LC_PAGES_MAX  (((size_t)1 << (HK_LC_BASE_SHIFT - 1)) - 1) /* 2^27 - 1 pages: 512 GiB */
#define HK_LC_CLEAN      UINT64_MAX                                  /* `at` of a mapping the purge has done */
#define HK_LC_RETRIES    4                                           /* lost take CASes before mapping afresh */
#define HK_LC_SLOT_BITS  6                                           /* a slot index, in hk_lc_take's keys */
_Static_assert(HK_LARGE_CACHE_SLOTS <= (1u << HK_LC_SLOT_BITS), "a slot index fits its bits");

static uintptr_t hk_lc_word(const uint8_t *base, size_t pages, bool dirty) {
  return ((uintptr_t)base >> 12) << HK_LC_BASE_SHIFT | (uintptr_t)pages << 1 | (dirty ? HK_LC_DIRTY : 0);
}
static uint8_t *hk_lc_base(uintptr_t w) { return (uint8_t *)((w >> HK_LC_BASE_SHIFT) << 12); }
static size_t hk_lc_pages(uintptr_t w) { return (size_t)(w & (((uintptr_t)1 << HK_LC_BASE_SHIFT) - 1)) >> 1; }
static size_t hk_lc_size(uintptr_t w) { return hk_lc_pages(w) << 12; }

/* The key page of a user pointer: where its header starts (see above). */
static uintptr_t hk_large_key(const void *p) { return ((uintptr_t)p - HK_LARGE_HDR) & ~(uintptr_t)(HK_PAGE_SIZE - 1); }

static _Atomic uintptr_t hk_lc_slot[HK_LARGE_CACHE_SLOTS];
static _Atomic uint64_t hk_lc_at[HK_LARGE_CACHE_SLOTS]; /* cached at, or HK_LC_CLEAN */
static struct {
  _Alignas(HK_CACHE_LINE) _Atomic size_t bytes; /* address space held by the cache */
  _Atomic size_t live;                          /* bytes of live large mappings */
  _Atomic size_t peak;                          /* high-water mark of live */
  _Atomic size_t biggest;                       /* the largest mapping ever: hk_large_covers' reach */
} hk_lc;
static _Atomic uint64_t hk_lc_next_due = UINT64_MAX; /* earliest decommit deadline; UINT64_MAX: none */
static _Atomic unsigned hk_lc_purging;   /* try-flag: one decommitting thread at a time */

static unsigned hk_lc_hash(uintptr_t x) {
  return (unsigned)(((uint64_t)x * 0x9e3779b97f4a7c15ull) >> 40) & (HK_LARGE_CACHE_SLOTS - 1);
}

static void hk_lc_due_at(uint64_t due) {
  uint64_t cur = hk_load_relaxed(&hk_lc_next_due);
  /* Relaxed: a deadline, read only to decide whether to scan. */
  while (due < cur && !atomic_compare_exchange_weak_explicit(&hk_lc_next_due, &cur, due, memory_order_relaxed,
                                                             memory_order_relaxed)) {
  }
}

static void hk_lc_live_add(size_t bytes) {
  size_t now = hk_add_relaxed(&hk_lc.live, bytes) + bytes;
  size_t peak = hk_load_relaxed(&hk_lc.peak);
  /* Relaxed: a statistic that only sizes the bound. */
  while (now > peak &&
         !atomic_compare_exchange_weak_explicit(&hk_lc.peak, &peak, now, memory_order_relaxed, memory_order_relaxed)) {
  }
}

/* The cache serves while threads number at most HK_LARGE_CACHE_THREADS_PER_CPU
 * per CPU (see the header comment: past that, a large call goes to the OS). */
static _Atomic unsigned hk_lc_ncpus; /* 0: not read yet */

static bool hk_lc_serving(void) {
  if (hk_opt_get(large_cache_bytes) == 0) return false;
  unsigned n = hk_load_relaxed(&hk_lc_ncpus); /* the same value whoever reads it */
  if (HK_UNLIKELY(n == 0)) {
    n = hk_os_ncpus();
    hk_store_relaxed(&hk_lc_ncpus, n);
  }
  return hk_heap_live_count() <= (size_t)n * HK_LARGE_CACHE_THREADS_PER_CPU;
}

static size_t hk_lc_bound(void) {
  size_t share = hk_load_relaxed(&hk_lc.peak) >> HK_LARGE_CACHE_PEAK_SHIFT;
  size_t floor_bytes = hk_opt_get(large_cache_bytes);
  return share > floor_bytes ? share : floor_bytes;
}

/* Into an empty slot, starting at `from`. False when every slot is full or
 * the byte bound would be passed. */
static bool hk_lc_put(uintptr_t w, uint64_t at, unsigned from) {
  size_t size = hk_lc_size(w);
  if (hk_add_relaxed(&hk_lc.bytes, size) + size > hk_lc_bound()) {
    hk_sub_relaxed(&hk_lc.bytes, size);
    return false;
  }
  for (unsigned k = 0; k < HK_LARGE_CACHE_SLOTS; k++) {
    unsigned i = (from + k) & (HK_LARGE_CACHE_SLOTS - 1);
    uintptr_t expected = 0;
    /* Release: the pages' last writes before the taker's acquire CAS. */
    if (hk_load_relaxed(&hk_lc_slot[i]) == 0 && hk_cas_strong_acq_rel(&hk_lc_slot[i], &expected, w)) {
      hk_store_relaxed(&hk_lc_at[i], at);
      if (at != HK_LC_CLEAN) hk_lc_due_at(at + hk_opt_get(decommit_delay_ms));
      return true;
    }
  }
  hk_sub_relaxed(&hk_lc.bytes, size);
  return false;
}

/* A freed mapping [base, base + size) with its pages (dirty): into the
 * cache, from the slot its address hashes to, when `cacheable`; back to
 * the OS when not, or when the cache has no room. */
static void hk_lc_keep(uint8_t *base, size_t size, uint64_t now, bool cacheable) {
  if (!cacheable || !hk_lc_put(hk_lc_word(base, size >> 12, true), now, hk_lc_hash((uintptr_t)base >> 12)))
    hk_os_unmap(base, size);
}

/* Whatever slot i holds, now ours and out of the cache's byte count; 0 when
 * it is empty. */
static uintptr_t hk_lc_slot_take(unsigned i) {
  if (hk_load_relaxed(&hk_lc_slot[i]) == 0) return 0;
  uintptr_t w = hk_xchg_acquire(&hk_lc_slot[i], 0); /* pairs with put's release CAS */
  if (w != 0) hk_sub_relaxed(&hk_lc.bytes, hk_lc_size(w));
  return w;
}

/* A cached mapping of lo to hi pages, the smallest such (best fit); else,
 * when `or_smaller`, the largest below lo pages (to grow); 0 when there is
 * none. One scan looks for both, branch-free: the slots' sizes are random,
 * so branches on them mispredict (the branchy scan, run twice on a miss,
 * was a third of a large malloc). A slot's key is its page count above its
 * index; the smallest fitting key and the largest one below lo are kept by
 * selects. (Bins by size, to read fewer slots, were tried: a uniform size
 * mix overfilled the top bins, and the lane ran 2.5 times slower.) */
static uintptr_t hk_lc_take(size_t lo, size_t hi, bool or_smaller) {
  size_t below_max = or_smaller ? lo - 1 : 0;
  for (unsigned attempt = 0; attempt < HK_LC_RETRIES; attempt++) {
    uint64_t fit = UINT64_MAX, below = 0;
    for (unsigned i = 0; i < HK_LARGE_CACHE_SLOTS; i++) {
      uint64_t c = hk_lc_pages(hk_load_relaxed(&hk_lc_slot[i])); /* 0: empty */
      uint64_t key = c << HK_LC_SLOT_BITS | i;
      if (c == lo) { /* the best fit there can be, at the lowest index: what the whole scan would pick */
        fit = key;
        break;
      }
      fit = c - lo <= hi - lo && key < fit ? key : fit;
      below = c - 1 < below_max && key > below ? key : below;
    }
    uint64_t pick = fit != UINT64_MAX ? fit : below;
    if (pick == 0) return 0;
    unsigned at = (unsigned)(pick & (((uint64_t)1 << HK_LC_SLOT_BITS) - 1));
    uintptr_t expected = hk_load_relaxed(&hk_lc_slot[at]);
    if (hk_lc_pages(expected) != pick >> HK_LC_SLOT_BITS) continue; /* taken or replaced meanwhile */
    /* Acquire (acq_rel on success): pairs with put's release CAS. */
    if (hk_cas_strong_acq_rel(&hk_lc_slot[at], &expected, 0)) {
      hk_sub_relaxed(&hk_lc.bytes, hk_lc_size(expected));
      return expected;
    }
  }
  return 0;
}

/* Unmap every cached mapping (hak_collect; or address space is short). A
 * mapping the purger holds meanwhile comes back clean. */
static size_t hk_lc_unmap_all(void) {
  size_t n = 0;
  for (unsigned i = 0; i < HK_LARGE_CACHE_SLOTS; i++) {
    uintptr_t w = hk_lc_slot_take(i);
    if (w == 0) continue;
    hk_os_unmap(hk_lc_base(w), hk_lc_size(w));
    n++;
  }
  return n;
}

/* Decommit what has waited HAKMEM_DECOMMIT_DELAY_MS, unless nothing is due
 * yet or another thread is at it. */
static size_t hk_lc_purge_due(uint64_t now) {
  uint64_t seen = hk_load_relaxed(&hk_lc_next_due);
  if (HK_LIKELY(now < seen)) return 0;
  /* Someone else is decommitting: leave it to them, never wait. Acquire:
   * pairs with the release that ended the previous purge (its slot writes). */
  if (hk_xchg_acquire(&hk_lc_purging, 1u) != 0) return 0;
  uint64_t delay = hk_opt_get(decommit_delay_ms), next = UINT64_MAX;
  size_t n = 0;
  for (unsigned i = 0; i < HK_LARGE_CACHE_SLOTS; i++) {
    if (hk_load_relaxed(&hk_lc_slot[i]) == 0) continue;
    uint64_t at = hk_load_relaxed(&hk_lc_at[i]);
    if (at == HK_LC_CLEAN) continue;
    if (at + delay > now) {
      if (at + delay < next) next = at + delay;
      continue;
    }
    uintptr_t w = hk_lc_slot_take(i);
    if (w == 0) continue;
    /* Clean only if the OS discarded the pages: a refused decommit leaves
     * them dirty (calloc clears them). Either way `at` says nothing is
     * due: a refusal (seccomp) would be refused again every delay. */
    if ((w & HK_LC_DIRTY) && hk_os_decommit(hk_lc_base(w), hk_lc_size(w))) w &= ~HK_LC_DIRTY;
    n++;
    if (!hk_lc_put(w, HK_LC_CLEAN, i)) hk_os_unmap(hk_lc_base(w), hk_lc_size(w));
  }
  /* Our scan's earliest deadline, unless a put lowered it meanwhile. A put
   * into a slot we had passed could not lower it (it still read our `seen`,
   * already due), so the next scan comes within one delay regardless. */
  if (now + delay < next) next = now + delay;
  if (!atomic_compare_exchange_strong_explicit(&hk_lc_next_due, &seen, next, memory_order_relaxed,
                                               memory_order_relaxed))
    hk_lc_due_at(next);
  hk_store_release(&hk_lc_purging, 0u); /* pairs with the next purger's acquire exchange */
  return n;
}

void hk_large_fork_child(void) {
  hk_store_relaxed(&hk_lc_purging, 0u); /* a parent thread's purge at the fork: gone with it */
}

size_t hk_large_cache_purge(bool all) {
  /* Everything: whatever the option says now, a free before the options
   * were read may have cached a mapping. */
  if (all) return hk_lc_unmap_all();
  if (hk_opt_get(large_cache_bytes) == 0) return 0; /* off: nothing is filled any more */
  return hk_lc_purge_due(hk_os_now_ms());
}

static void hk_large_note_size(size_t map_size) {
  size_t big = hk_load_relaxed(&hk_lc.biggest);
  /* Relaxed: a bound on how far back hk_large_covers looks; a block is
   * published to other threads by their own synchronisation, after this. */
  while (map_size > big && !atomic_compare_exchange_weak_explicit(&hk_lc.biggest, &big, map_size,
                                                                  memory_order_relaxed, memory_order_relaxed)) {
  }
}

/* Statistics of large calls: into the calling thread's heap (hk_large_tally,
 * merged with its other counts), so that no large call writes a
 * process-wide counter; a thread without a heap tallies its one call in
 * `one` and merges it at once (hk_large_counted). */
static hk_large_tally *hk_large_tally_for(hk_large_tally *one) {
  hk_heap *h = hk_tls_heap;
  return HK_LIKELY(h->live) ? &h->stats.large : one;
}
static void hk_large_counted(hk_large_tally *t, hk_large_tally *one) {
  if (HK_UNLIKELY(t == one)) hk_stats_merge_large(one);
}

static void hk_large_count(bool alloc, size_t usable, size_t committed) {
  hk_large_tally one = {0}, *t = hk_large_tally_for(&one);
  if (alloc) {
    t->allocs++;
    t->bytes += usable;
    t->commit += committed;
  } else {
    t->frees++;
    t->bytes -= usable;
    t->decommit += committed;
  }
  hk_large_counted(t, &one);
}

static void hk_large_count_resize(size_t old_usable, size_t new_usable) {
  hk_large_tally one = {0}, *t = hk_large_tally_for(&one);
  t->bytes += new_usable - old_usable; /* modulo 2^64 */
  if (new_usable > old_usable) t->commit += new_usable - old_usable;
  else t->decommit += old_usable - new_usable;
  hk_large_counted(t, &one);
}

/* The profiler's stash (HAKMEM_PROF=1): the mapping of a sampled block,
 * freed, stays with the freeing thread for its next samples instead of
 * going to the cache. At the default rate, random 1-32 KiB allocations are
 * sampled once in about 32; through the cache each sample paid a scan of
 * its slots (about 800 instructions of a sample's 2,200), a clock read and
 * the cache's shared counters, and came back in a mapping no cache of this
 * core held. Only its thread touches a stash: no atomics, no epoch (a
 * stashed mapping's key is DEAD in the page map, as a cached one's, and
 * nothing but the stash leads to it). Bound: HK_PROF_STASH_BYTES a thread
 * in mappings of at most HK_PROF_STASH_PAGES pages (hk_config.h), committed;
 * a thread with a heap only, since its teardown empties the stash (into the
 * spare below, else the cache, else unmapped), and so does hak_collect for
 * the calling thread. A fork child keeps the forking thread's stash; the
 * other threads' go with them, as their thread caches do.
 *
 * The spare: the stashes' shared overflow. Where threads free other
 * threads' samples in bursts (8 threads on 2 cores trading blocks through
 * long rings), one thread's stash overflows while the next one's runs dry:
 * each overflow went to the cache's 64 slots and on to munmap, each dry
 * stash to mmap and fresh page faults, and every munmap is a TLB shootdown
 * of all the process's CPUs. A stash that overflows moves mappings into the
 * spare until it is half full, and a dry one takes a mapping from the spare
 * together with up to half a stash more, so each thread goes to the spare
 * at most once per half a stash of samples. The spare is lists per page
 * count, like a stash, under the profiler's table lock (prof/table.c: a
 * sample takes it anyway to record, and a sampled free to forget; the fork
 * handlers hold it across fork, so a child's spare is consistent), at most
 * HK_PROF_SPARE_BYTES process-wide. Thread exit moves its stash into the
 * spare; hak_collect and an address-space shortage empty it into the cache
 * (and so back to the OS). Stashes and spare together are prof stash_bytes
 * in the statistics: a mapping's bytes are counted when a freed sample
 * enters a stash and uncounted when a sample takes it out of either. */
static __thread uint8_t *hk_stash_head[HK_PROF_STASH_PAGES + 1] __attribute__((tls_model("initial-exec")));
static __thread size_t hk_stash_bytes __attribute__((tls_model("initial-exec")));
static uint8_t *hk_spare_head[HK_PROF_STASH_PAGES + 1]; /* under hk_prof_lock */
_Static_assert(((size_t)HK_PROF_STASH_PAGES << 12) <= HK_PROF_STASH_BYTES / 2,
               "a spill keeps half a stash minus the mapping being put (hk_stash_put)");
/* Written under hk_prof_lock; read without it only to skip the lock when the
 * spare is empty or full (a stale value costs a needless lock or a mapping). */
static _Atomic size_t hk_spare_bytes;

static void hk_stash_tally(int64_t bytes) {
  hk_large_tally one = {0}, *t = hk_large_tally_for(&one);
  t->stash += (uint64_t)bytes; /* modulo 2^64 */
  hk_large_counted(t, &one);
}

/* A stash or the spare is one list per page count, linked through the
 * mappings' first words. */
HK_INLINE uint8_t *hk_stash_list_pop(uint8_t **head) {
  uint8_t *base = *head;
  if (base != NULL) *head = *(uint8_t **)base;
  return base;
}
HK_INLINE void hk_stash_list_push(uint8_t **head, uint8_t *base) {
  *(uint8_t **)base = *head;
  *head = base;
}

/* The largest page count a request of `pages` reuses (hk_stash_take). */
static size_t hk_stash_last(size_t pages) {
  size_t last = pages * HK_LARGE_REUSE_MAX_FACTOR;
  return last > HK_PROF_STASH_PAGES ? HK_PROF_STASH_PAGES : last;
}

/* The calling thread's stash is dry for `pages`: a mapping of pages to
 * hk_stash_last(pages) pages from the spare (a cache word, dirty), and
 * with it more of that size, up to half a stash, into the stash; 0 when
 * the spare has none. */
static uintptr_t hk_spare_take(size_t pages) {
  if (hk_load_relaxed(&hk_spare_bytes) == 0) return 0;
  size_t last = hk_stash_last(pages), moved = 0;
  uintptr_t w = 0;
  hk_prof_lock();
  for (size_t c = pages; c <= last; c++) {
    if (w == 0 && hk_spare_head[c] != NULL) {
      w = hk_lc_word(hk_stash_list_pop(&hk_spare_head[c]), c, true);
      moved += c << 12;
    }
    while (hk_spare_head[c] != NULL && hk_stash_bytes + (c << 12) <= HK_PROF_STASH_BYTES / 2) {
      hk_stash_list_push(&hk_stash_head[c], hk_stash_list_pop(&hk_spare_head[c]));
      hk_stash_bytes += c << 12;
      moved += c << 12;
    }
  }
  hk_store_relaxed(&hk_spare_bytes, hk_load_relaxed(&hk_spare_bytes) - moved);
  hk_prof_unlock();
  if (w != 0) hk_stash_tally(-(int64_t)hk_lc_size(w));
  return w;
}

/* Move the calling thread's stashed mappings into the spare, largest
 * first, until the stash holds at most `keep` bytes or the spare is full.
 * The statistics do not change: both are stash_bytes. */
static void hk_stash_spill(size_t keep) {
  if (hk_load_relaxed(&hk_spare_bytes) + HK_PAGE_SIZE > HK_PROF_SPARE_BYTES) return;
  hk_prof_lock();
  size_t spare = hk_load_relaxed(&hk_spare_bytes);
  for (size_t c = HK_PROF_STASH_PAGES; c >= 1 && hk_stash_bytes > keep; c--) {
    while (hk_stash_head[c] != NULL && hk_stash_bytes > keep && spare + (c << 12) <= HK_PROF_SPARE_BYTES) {
      hk_stash_list_push(&hk_spare_head[c], hk_stash_list_pop(&hk_stash_head[c]));
      hk_stash_bytes -= c << 12;
      spare += c << 12;
    }
  }
  hk_store_relaxed(&hk_spare_bytes, spare);
  hk_prof_unlock();
}

/* The latest stashed mapping of the fewest pages from pages to 2 x pages (a
 * cache word, dirty), from the spare when the stash has none; 0 when
 * neither has one. */
static uintptr_t hk_stash_take(size_t pages) {
  size_t last = hk_stash_last(pages);
  for (size_t c = pages; c <= last; c++) {
    uint8_t *base = hk_stash_list_pop(&hk_stash_head[c]);
    if (base == NULL) continue;
    hk_stash_bytes -= c << 12;
    hk_stash_tally(-(int64_t)(c << 12));
    return hk_lc_word(base, c, true);
  }
  return hk_spare_take(pages);
}

/* A freed sampled block's mapping [base, base + size), of ordinary
 * alignment: into the stash, which spills half of itself into the spare
 * when it is full; false when it does not fit even so, and always with the
 * cache off (HAKMEM_LARGE_CACHE_MB=0: freed mappings go back at once). */
static bool hk_stash_put(uint8_t *base, size_t size) {
  size_t pages = size >> 12;
  if (pages > HK_PROF_STASH_PAGES || !hk_tls_heap->live || hk_opt_get(large_cache_bytes) == 0) return false;
  if (hk_stash_bytes + size > HK_PROF_STASH_BYTES) {
    hk_stash_spill(HK_PROF_STASH_BYTES / 2 - size);
    if (hk_stash_bytes + size > HK_PROF_STASH_BYTES) return false;
  }
  hk_stash_list_push(&hk_stash_head[pages], base);
  hk_stash_bytes += size;
  hk_stash_tally((int64_t)size);
  return true;
}

/* Mappings out of the stash or the spare, into the cache (or unmapped
 * when it has no room). */
static void hk_stash_keep_all(uint8_t **heads) {
  uint64_t now = hk_os_now_ms();
  bool serving = hk_lc_serving();
  for (size_t c = 1; c <= HK_PROF_STASH_PAGES; c++) {
    for (uint8_t *base; (base = hk_stash_list_pop(&heads[c])) != NULL;) {
      hk_stash_tally(-(int64_t)(c << 12));
      hk_lc_keep(base, c << 12, now, serving);
    }
  }
}

void hk_large_stash_flush(bool to_spare) {
  if (hk_stash_bytes == 0) return;
  if (to_spare) hk_stash_spill(0);
  hk_stash_keep_all(hk_stash_head);
  hk_stash_bytes = 0;
}

void hk_large_spare_flush(bool wait) {
  if (hk_load_relaxed(&hk_spare_bytes) == 0) return;
  if (wait) hk_prof_lock();
  else if (!hk_prof_trylock()) return;
  uint8_t *heads[HK_PROF_STASH_PAGES + 1];
  memcpy(heads, hk_spare_head, sizeof heads);
  memset(hk_spare_head, 0, sizeof hk_spare_head);
  hk_store_relaxed(&hk_spare_bytes, 0);
  hk_prof_unlock();
  hk_stash_keep_all(heads);
}

/* Transparent huge pages for a mapping big enough that its last, partly
 * used huge page is a small share of it (hk_config.h). */
static void hk_large_advise(uint8_t *base, size_t map_size) {
  if (hk_opt_get(large_hugepages) && map_size >= HK_LARGE_HUGE_MIN) hk_os_hugepage(base, map_size);
}

/* The mapping [base, base+old_size), no longer registered to anyone, grown
 * to new_size: in place, else moved wherever the kernel finds room (one
 * call either way). Its new base, or NULL with the mapping as it was. */
static uint8_t *hk_large_remap_grow(uint8_t *base, size_t old_size, size_t new_size) {
  base = hk_os_remap_anywhere(base, old_size, new_size);
  if (base != NULL && old_size < HK_LARGE_HUGE_MIN) hk_large_advise(base, new_size); /* else the advice came along */
  return base;
}

/* Zero [user, user+usable) of a reused mapping: whole pages by decommit
 * (zero pages, faulted lazily) when it is big, else by memset, and by
 * memset too when the OS refused the decommit (the pages kept their data).
 * The end is a page boundary (the mapping's end or a shrink's). */
static void hk_large_clear(uint8_t *user, size_t usable) {
  uint8_t *page = (uint8_t *)hk_page_up((uintptr_t)user);
  if (usable < ((size_t)1 << 20)) {
    memset(user, 0, usable);
    return;
  }
  memset(user, 0, (size_t)(page - user));
  size_t rest = usable - (size_t)(page - user);
  if (!hk_os_decommit(page, rest)) memset(page, 0, rest);
}

#ifdef HK_HARDENED
/* Each step a bijection of the state xored with the next field: two headers
 * that differ give different states from that field on, so a forgery must
 * find a collision of the whole chain without knowing where it starts. */
static uint64_t hk_large_seal_of(const hk_large *hdr) {
  uint64_t s = hk_mix64(hk_harden_secret() ^ (uintptr_t)hdr);
  s = hk_mix64(s ^ hdr->magic);
  s = hk_mix64(s ^ (uintptr_t)hdr->user);
  s = hk_mix64(s ^ hdr->usable);
  s = hk_mix64(s ^ (uintptr_t)hdr->map_base);
  s = hk_mix64(s ^ hdr->map_size);
  return hk_mix64(s ^ hdr->sampled);
}
static void hk_large_seal(hk_large *hdr) { hdr->seal = hk_large_seal_of(hdr); }
/* hdr, a live block's header (its key page LIVE), or abort. */
static hk_large *hk_large_sealed(hk_large *hdr) {
  if (HK_UNLIKELY(hdr->seal != hk_large_seal_of(hdr))) hk_fatal("corrupted large block header", hdr);
  return hdr;
}
#else
#define hk_large_seal(hdr) ((void)0)
#define hk_large_sealed(hdr) (hdr)
#endif

/* What a live block can have committed: its header's page to its end (an
 * over-aligned block's pages before that are never touched). */
static size_t hk_large_committed(const hk_large *hdr) {
  return (size_t)((const uint8_t *)hdr->user + hdr->usable - (const uint8_t *)hdr);
}

static void *hk_large_alloc_impl(size_t size, size_t align, bool zero, bool sample) {
  if (size > PTRDIFF_MAX || align > ((size_t)1 << 40)) {
    hk_trace_failure(size, "size class threshold: larger than PTRDIFF_MAX");
    errno = ENOMEM;
    return NULL;
  }
  if (size == 0) size = 1; /* a unique block inside the mapping, usable >= 1 */
  /* The user block starts `pad` bytes into a page-aligned (or, over-aligned,
   * align-aligned) mapping of whole pages; the header starts at the key
   * page (see above). Pages never touched cost no memory. */
  size_t pad = align > HK_LARGE_HDR ? align : HK_LARGE_HDR;
  size_t map_size = hk_page_up(pad + size);
  size_t pages = map_size >> 12;
  /* Usable: the request rounded up to pages, wherever the mapping ends. */
  size_t usable = map_size - pad;
  bool dirty = false;
  uintptr_t w = sample && pad == HK_LARGE_HDR ? hk_stash_take(pages) : 0;
  if (w == 0) {
    hk_large_cache_purge(false); /* the cache's timer: a clock read and a load unless due */
    /* Only mappings of ordinary alignment are cached: an over-aligned one
     * would serve only its own alignment. */
    if (pad == HK_LARGE_HDR && pages <= HK_LC_PAGES_MAX && hk_lc_serving())
      w = hk_lc_take(pages, pages * HK_LARGE_REUSE_MAX_FACTOR, pages > 1);
  }
  uint8_t *base = hk_lc_base(w);
  bool whole = false; /* a cached mapping as it was */
  if (w != 0) {
    dirty = (w & HK_LC_DIRTY) != 0;
    size_t have = hk_lc_size(w);
    whole = have >= map_size;
    if (have < map_size) {
      /* Only smaller ones: grow the largest (its pages stay, only the rest
       * faults), rather than leave it holding memory beside a fresh one. */
      base = hk_large_remap_grow(base, have, map_size);
      if (base == NULL) hk_os_unmap(hk_lc_base(w), have);
    } else if (have > map_size) {
      /* A bigger mapping (at most HK_LARGE_REUSE_MAX_FACTOR times): the
       * block keeps all of it and its pages, so realloc can grow into it
       * in place without a fault (hk_config.h). Unmapping the tail
       * instead (a VMA split per reuse, then mremap and fresh faults to
       * grow the next one) made random churn of 32 KiB-4 MiB blocks 8x
       * slower, and splitting it off into the cache fragmented the cache
       * into pieces too small for the next requests (4x slower). The
       * address space is given back when the mapping is; under an
       * address-space limit a failed mapping empties the cache first
       * (os.h). */
      map_size = have;
    }
  }
  if (base == NULL) {
    dirty = false;
    /* A failure here has had the caches' address space given back and been
     * retried once (os.h). */
    base = hk_os_map_block(map_size, align > HK_PAGE_SIZE ? align : HK_PAGE_SIZE);
    if (base == NULL) {
      errno = ENOMEM;
      return NULL;
    }
    hk_large_advise(base, map_size);
  }
  uint8_t *user = base + pad;
  hk_large *hdr = (hk_large *)hk_large_key(user);
  if (dirty && zero) hk_large_clear(user, usable); /* a reused mapping is not fresh zero pages */
  if (!hk_pmap_prepare((uintptr_t)hdr)) {
    hk_os_unmap(base, map_size);
    errno = ENOMEM;
    return NULL;
  }
  hdr->magic = HK_LARGE_MAGIC;
  hdr->user = user;
  hdr->usable = usable;
  hdr->map_base = base;
  hdr->map_size = map_size;
  hdr->sampled = 0; /* the profiler marks its samples itself (prof/sample.c; not in hardened builds) */
  hk_large_seal(hdr);
  /* Stale marks of blocks that were here before. A cached mapping taken
   * whole has none but its own key's DEAD, which the set below replaces:
   * its block cleared the range when it registered, and no block can
   * register inside a live one. */
  if (!whole) hk_pmap_clear((uintptr_t)base, map_size);
  hk_large_note_size(map_size);
  hk_pmap_set((uintptr_t)hdr, HK_PMAP_LIVE); /* release: the header before the mark */
  hk_large_count(true, usable, hk_large_committed(hdr));
  hk_lc_live_add(map_size);
  return user;
}

void *hk_large_alloc(size_t size, size_t align) { return hk_large_alloc_impl(size, align, false, false); }
void *hk_large_calloc(size_t size) { return hk_large_alloc_impl(size, 16, true, false); }
void *hk_large_alloc_sample(size_t size, size_t align, bool zero) { return hk_large_alloc_impl(size, align, zero, true); }

/* The header of the live large block whose user pointer is p, or NULL. */
static hk_large *hk_large_lookup(const void *p) {
  uintptr_t key = hk_large_key(p);
  if (hk_pmap_get(key) != HK_PMAP_LIVE) return NULL;
  hk_large *hdr = hk_large_sealed((hk_large *)key); /* a live block's header: mapped and ours */
  return hdr->user == p ? hdr : NULL;
}

/* p - key is what a released block's user pointer had: HK_LARGE_HDR, or an
 * alignment up to a page (see above). */
static bool hk_large_user_offset(const void *p) {
  uintptr_t off = (uintptr_t)p - hk_large_key(p);
  return (off & (off - 1)) == 0 && off <= HK_PAGE_SIZE;
}

bool hk_large_free(void *p) {
  uintptr_t key = hk_large_key(p);
  uintptr_t state = hk_pmap_get(key);
  if (state == HK_PMAP_DEAD && hk_large_user_offset(p)) {
    hk_bad_free(p, "large block already released", 1);
    return true;
  }
  if (state != HK_PMAP_LIVE) return false;
  hk_large *hdr = hk_large_sealed((hk_large *)key);
  if (HK_UNLIKELY(hdr->user != p)) {
    hk_bad_free(p, "inside a large block, not its start", 0);
    return true;
  }
  uint8_t *base = hdr->map_base;
  size_t size = hdr->map_size;
  /* DEAD: a second free of p is recognisable as a double free, until the
   * page is someone's again. Losing the CAS means another free of p won. */
  if (!hk_pmap_kill(key)) {
    hk_bad_free(p, "large block already released", 1);
    return true;
  }
  bool sampled = hdr->sampled;
  if (HK_UNLIKELY(sampled)) hk_prof_forget(p); /* a profiler sample: its record goes */
  hk_large_count(false, hdr->usable, hk_large_committed(hdr));
  hk_sub_relaxed(&hk_lc.live, size);
  if (HK_UNLIKELY(sampled) && (uint8_t *)p - base == (ptrdiff_t)HK_LARGE_HDR && hk_stash_put(base, size)) return true;
  /* Cache off (HAKMEM_LARGE_CACHE_MB=0): straight back to the OS, without
   * touching the cache's shared byte counter or reading the clock. */
  if (hk_opt_get(large_cache_bytes) == 0) {
    hk_os_unmap(base, size);
    return true;
  }
  size_t pages = size >> 12;
  bool cacheable = (uint8_t *)p - base == (ptrdiff_t)HK_LARGE_HDR && pages <= HK_LC_PAGES_MAX && hk_lc_serving();
  uint64_t now = hk_os_now_ms();
  hk_lc_keep(base, size, now, cacheable);
  hk_lc_purge_due(now);
  return true;
}

size_t hk_large_cached_bytes(void) { return hk_load_relaxed(&hk_lc.bytes); }

bool hk_large_covers(const void *p) {
  uintptr_t a = (uintptr_t)p;
  size_t reach = hk_load_relaxed(&hk_lc.biggest);
  if (reach == 0 || (a >> HK_VA_BITS) != 0) return false;
  uintptr_t key = hk_pmap_live_below(a, a > reach ? a - reach : 0);
  if (key == 0) return false;
  /* A live block's header when we read the page map, but hak_owns is asked
   * about pointers the caller does not own: another thread may free that
   * block and unmap it before we read its header (a fault, as the test
   * owns_never_faults_while_a_neighbouring_block_is_unmapped showed). So
   * the header is copied without faulting; a header that is gone, or was
   * replaced by something else, says no. */
  hk_large hdr;
  if (!hk_os_read_safe(&hdr, (const void *)key, sizeof hdr) || hdr.magic != HK_LARGE_MAGIC) return false;
  return a >= (uintptr_t)hdr.user && a < (uintptr_t)hdr.user + hdr.usable;
}

size_t hk_large_usable(const void *p) {
  hk_large *hdr = hk_large_lookup(p);
  return hdr == NULL ? 0 : hdr->usable;
}

bool hk_large_resize_in_place(void *p, size_t n) {
  hk_large *hdr = hk_large_lookup(p);
  if (hdr == NULL) return false;
  size_t room = (size_t)((uint8_t *)hdr->map_base + hdr->map_size - (uint8_t *)p);
  if (n > room) return false;
  /* p + usable stays a page boundary (at most the mapping's end). */
  size_t usable = hk_large_usable_at(p, n);
  /* Shrinking: the pages past the new end go back to the OS now (if it
   * refuses, they only stay: the mapping is dirty for calloc once freed). */
  if (usable < hdr->usable) hk_os_decommit((uint8_t *)p + usable, hdr->usable - usable);
  hk_large_count_resize(hdr->usable, usable);
  hdr->usable = usable;
  hk_large_seal(hdr);
  return true;
}

/* Move the large block of header hdr into dest, a mapping of dest_size
 * bytes at least its new size. The new user pointer, or NULL with the block
 * as it was; then dest is still ours unless *dest_lost (hk_os_remap). */
static void *hk_large_move(hk_large *hdr, uint8_t *dest, size_t dest_size, size_t usable, bool *dest_lost) {
  uint8_t *base = hdr->map_base;
  size_t old_size = hdr->map_size;
  hk_large *moved = (hk_large *)dest; /* ordinary blocks only: the header starts the mapping */
  /* Nothing may fail after the move. */
  if (!hk_pmap_prepare((uintptr_t)dest)) return NULL;
  /* As free does: a later free of the old pointer is a double free. Before
   * the move: afterwards the old range may already be someone else's. */
  hk_pmap_set((uintptr_t)hdr, HK_PMAP_DEAD);
  if (hk_os_remap(base, old_size, dest_size, dest, dest_lost) == NULL) {
    hk_pmap_set((uintptr_t)hdr, HK_PMAP_LIVE);
    return NULL;
  }
  moved->user = dest + HK_LARGE_HDR;
  moved->usable = usable;
  moved->map_base = dest;
  moved->map_size = dest_size;
  hk_large_seal(moved); /* its address changed with the rest */
  hk_pmap_clear((uintptr_t)dest, dest_size); /* a cached dest's DEAD key, stale marks of a fresh one */
  hk_large_note_size(dest_size);
  hk_pmap_set((uintptr_t)dest, HK_PMAP_LIVE); /* release: the moved header before the mark */
  if (old_size < HK_LARGE_HUGE_MIN) hk_large_advise(dest, dest_size); /* else the advice moved along */
  hk_lc_live_add(dest_size - old_size);
  return moved->user;
}

void *hk_large_grow(void *p, size_t n) {
  hk_large *hdr = hk_large_lookup(p);
  if (hdr == NULL) return NULL;
  uint8_t *base = hdr->map_base;
  size_t old_size = hdr->map_size;
  /* Over-aligned blocks keep their alignment only through a copy. */
  if ((uint8_t *)p - base != (ptrdiff_t)HK_LARGE_HDR || n > PTRDIFF_MAX - 2 * HK_PAGE_SIZE) return NULL;
  size_t new_size = hk_page_up(HK_LARGE_HDR + n);
  if (new_size <= old_size) return NULL; /* fits: hk_large_resize_in_place's case */
  size_t usable = new_size - HK_LARGE_HDR, old_usable = hdr->usable;
  int saved = errno; /* a failure here falls back to a copy that sets errno itself */
  void *q = NULL;
  /* A cached mapping that fits: its address space takes the pages (the
   * kernel drops its own), and later growth up to its size (at most
   * HK_LARGE_REUSE_MAX_FACTOR times this one) needs no call. */
  size_t pages = new_size >> 12;
  uintptr_t w = pages <= HK_LC_PAGES_MAX && hk_lc_serving()
                    ? hk_lc_take(pages, pages * HK_LARGE_REUSE_MAX_FACTOR, false)
                    : 0;
  if (w != 0) {
    bool lost = false;
    q = hk_large_move(hdr, hk_lc_base(w), hk_lc_size(w), usable, &lost);
    if (q == NULL && !lost) hk_os_unmap(hk_lc_base(w), hk_lc_size(w));
  }
  /* In place: the same header, a longer mapping. */
  if (q == NULL && hk_os_remap(base, old_size, new_size, NULL, NULL) != NULL) {
    hk_pmap_clear((uintptr_t)base + old_size, new_size - old_size); /* stale marks in the gained pages */
    hk_large_note_size(new_size);
    hdr->map_size = new_size;
    hdr->usable = usable;
    hk_large_seal(hdr);
    if (old_size < HK_LARGE_HUGE_MIN) hk_large_advise(base, new_size);
    hk_lc_live_add(new_size - old_size);
    q = p;
  }
  /* Moved into a fresh reservation. */
  if (q == NULL) {
    uint8_t *dest = hk_os_map_block(new_size, HK_PAGE_SIZE);
    if (dest != NULL) {
      bool lost = false;
      q = hk_large_move(hdr, dest, new_size, usable, &lost);
      if (q == NULL && !lost) hk_os_unmap(dest, new_size);
    }
  }
  if (q != NULL) hk_large_count_resize(old_usable, usable);
  if (q != NULL && q != p && hk_large_hdr(q)->sampled) hk_prof_moved(p, q); /* the header moved along */
  errno = saved;
  return q;
}
