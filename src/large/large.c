/* large.c -- large allocations: map, register, cache, unmap.
 *
 * A freed large mapping of ordinary alignment and at most HK_LARGE_CACHE_MAX
 * bytes goes to a global cache instead of munmap (HAKMEM_LARGE_CACHE_MB of
 * address space in all, 256 by default; 0 turns it off). The cache is one
 * bin per chunk count (1 to HK_LARGE_BINS chunks), each HK_LARGE_BIN_SLOTS
 * slots: an allocation looks only in the bin of its chunk count and, when
 * that is empty, the next one up (usable is what the header says, so a
 * mapping one chunk larger costs address space, not memory). It never scans
 * a mapping of another size, so it never takes one out and puts it back.
 * A hit costs no system call and no page fault: the pages the last user
 * touched are still there (calloc clears what it hands out again).
 *
 * Memory return: a cached mapping keeps its pages for
 * HAKMEM_DECOMMIT_DELAY_MS, then is decommitted (madvise, the mapping
 * stays); beyond the byte bound a freed mapping is unmapped at once;
 * hak_collect / malloc_trim unmap every cached one. The timer runs on large
 * alloc/free and on every thread's maintenance tick (malloc_slow.c): a clock
 * read and one load while nothing is due. Decommitting is done by one thread
 * at a time: whoever wins the `purging` try-flag scans; the others skip it
 * and never wait. The purger holds nothing another thread waits for: a
 * mapping it has taken out to decommit is simply absent from the cache
 * meanwhile (an allocation that wanted it maps a fresh one).
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
 * mmap/munmap throttle the threads into the kernel's queue and keep every
 * thread moving.
 *
 * Slots are taken and filled by whole-word exchanges only: a thread owns the
 * mapping it took out of a slot, and nobody dereferences a mapping through a
 * slot. Per slot, `at` is a hint written after the slot is filled (the
 * purger may read its previous occupant's: it then decommits a mapping a
 * little early, which costs page faults, never correctness). No epoch is
 * needed: a cached mapping is referenced by no live pointer, its map entries
 * are tombstones, and nothing but a slot leads to it. */
#include "large/large.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "core/addrmap.h"
#include "core/heap.h"
#include "core/superslab.h"
#include "os/os.h"
#include "util/diag.h"
#include "util/options.h"
#include "util/stats.h"

_Static_assert(HK_LARGE_CACHE_MAX == (size_t)HK_LARGE_BINS << HK_SS_SHIFT, "one bin per chunk count");

/* Written at the base of a cached mapping (its own memory, ours while cached). */
typedef struct hk_large_cached {
  size_t map_size;
  bool dirty; /* pages may hold old data: calloc must clear them */
} hk_large_cached;

#define HK_LC_CLEAN UINT64_MAX /* `at` of a decommitted mapping */

static _Atomic uintptr_t hk_lc_slot[HK_LARGE_BINS][HK_LARGE_BIN_SLOTS];
static _Atomic uint64_t hk_lc_at[HK_LARGE_BINS][HK_LARGE_BIN_SLOTS]; /* cached at, or HK_LC_CLEAN */
static _Atomic size_t hk_lc_bytes;       /* address space held by the cache */
static _Atomic uint64_t hk_lc_next_due = UINT64_MAX; /* earliest decommit deadline; UINT64_MAX: none */
static _Atomic unsigned hk_lc_purging;   /* try-flag: one decommitting thread at a time */

static void hk_lc_due_at(uint64_t due) {
  uint64_t cur = hk_load_relaxed(&hk_lc_next_due);
  /* Relaxed: a deadline, read only to decide whether to scan. */
  while (due < cur && !atomic_compare_exchange_weak_explicit(&hk_lc_next_due, &cur, due, memory_order_relaxed,
                                                             memory_order_relaxed)) {
  }
}

/* The cache serves while threads number at most HK_LARGE_CACHE_THREADS_PER_CPU
 * per CPU (see the header comment: past that, a large call goes to the OS). */
static _Atomic unsigned hk_lc_ncpus; /* 0: not read yet */

static bool hk_lc_serving(void) {
  if (hk_opt.large_cache_bytes == 0) return false;
  unsigned n = hk_load_relaxed(&hk_lc_ncpus); /* the same value whoever reads it */
  if (HK_UNLIKELY(n == 0)) {
    n = hk_os_ncpus();
    hk_store_relaxed(&hk_lc_ncpus, n);
  }
  return hk_heap_live_count() <= (size_t)n * HK_LARGE_CACHE_THREADS_PER_CPU;
}

static unsigned hk_lc_bin(size_t map_size) { return (unsigned)(map_size >> HK_SS_SHIFT) - 1u; }

/* Into its bin, preferring slot `from` (the one it came out of, for the
 * purger). False when the bin is full or the bytes bound would be passed. */
static bool hk_lc_put(uint8_t *base, size_t map_size, bool dirty, uint64_t at, unsigned from) {
  if (hk_add_relaxed(&hk_lc_bytes, map_size) + map_size > hk_opt.large_cache_bytes) {
    hk_sub_relaxed(&hk_lc_bytes, map_size);
    return false;
  }
  hk_large_cached *c = (hk_large_cached *)base;
  c->map_size = map_size;
  c->dirty = dirty;
  unsigned b = hk_lc_bin(map_size);
  for (unsigned k = 0; k < HK_LARGE_BIN_SLOTS; k++) {
    unsigned i = (from + k) % HK_LARGE_BIN_SLOTS;
    uintptr_t expected = 0;
    /* Release: the descriptor above before the taker's acquire exchange. */
    if (hk_load_relaxed(&hk_lc_slot[b][i]) == 0 && hk_cas_strong_acq_rel(&hk_lc_slot[b][i], &expected, (uintptr_t)base)) {
      hk_store_relaxed(&hk_lc_at[b][i], at);
      if (at != HK_LC_CLEAN) hk_lc_due_at(at + hk_opt.decommit_delay_ms);
      return true;
    }
  }
  hk_sub_relaxed(&hk_lc_bytes, map_size);
  return false;
}

/* The mapping in slot (b, i), now ours and out of the cache's byte count;
 * 0 when the slot is empty. */
static uintptr_t hk_lc_slot_take(unsigned b, unsigned i) {
  if (hk_load_relaxed(&hk_lc_slot[b][i]) == 0) return 0;
  uintptr_t w = hk_xchg_acquire(&hk_lc_slot[b][i], 0); /* pairs with put's release CAS */
  if (w != 0) hk_sub_relaxed(&hk_lc_bytes, ((hk_large_cached *)w)->map_size);
  return w;
}

/* A cached mapping of map_size bytes, or of one chunk more. */
static uint8_t *hk_lc_take(size_t map_size, bool *dirty) {
  unsigned b0 = hk_lc_bin(map_size);
  for (unsigned b = b0; b < HK_LARGE_BINS && b <= b0 + 1; b++) {
    for (unsigned i = 0; i < HK_LARGE_BIN_SLOTS; i++) {
      uintptr_t w = hk_lc_slot_take(b, i);
      if (w == 0) continue;
      *dirty = ((hk_large_cached *)w)->dirty;
      return (uint8_t *)w;
    }
  }
  return NULL;
}

/* Unmap every cached mapping (hak_collect; or address space is short). Runs
 * whoever holds the try-flag: a mapping the purger holds comes back clean. */
static size_t hk_lc_unmap_all(void) {
  size_t n = 0;
  for (unsigned b = 0; b < HK_LARGE_BINS; b++) {
    for (unsigned i = 0; i < HK_LARGE_BIN_SLOTS; i++) {
      uintptr_t w = hk_lc_slot_take(b, i);
      if (w == 0) continue;
      hk_os_unmap((void *)w, ((hk_large_cached *)w)->map_size);
      n++;
    }
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
  uint64_t delay = hk_opt.decommit_delay_ms, next = UINT64_MAX;
  size_t n = 0;
  for (unsigned b = 0; b < HK_LARGE_BINS; b++) {
    for (unsigned i = 0; i < HK_LARGE_BIN_SLOTS; i++) {
      if (hk_load_relaxed(&hk_lc_slot[b][i]) == 0) continue;
      uint64_t at = hk_load_relaxed(&hk_lc_at[b][i]);
      if (at == HK_LC_CLEAN) continue;
      if (at + delay > now) {
        if (at + delay < next) next = at + delay;
        continue;
      }
      uintptr_t w = hk_lc_slot_take(b, i);
      if (w == 0) continue;
      size_t map_size = ((hk_large_cached *)w)->map_size;
      hk_os_decommit((void *)w, map_size); /* the descriptor page too: put rewrites it */
      n++;
      if (!hk_lc_put((uint8_t *)w, map_size, false, HK_LC_CLEAN, i)) hk_os_unmap((void *)w, map_size);
    }
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
  if (hk_opt.large_cache_bytes == 0) return 0; /* off: no slot is ever filled */
  return all ? hk_lc_unmap_all() : hk_lc_purge_due(hk_os_now_ms());
}

static void *hk_large_alloc_impl(size_t size, size_t align, bool zero) {
  if (size > PTRDIFF_MAX || align > ((size_t)1 << 40)) {
    hk_trace_failure(size, "size class threshold: larger than PTRDIFF_MAX");
    errno = ENOMEM;
    return NULL;
  }
  hk_large_cache_purge(false); /* the cache's timer: a clock read and a load unless due */
  /* The user block starts `pad` bytes into a chunk-aligned mapping; the
   * header is the page below it. Whole chunks, so no other mapping of ours
   * shares an address-map entry; pages never touched cost no memory. */
  if (size == 0) size = 1; /* a unique block inside the mapping, usable >= 1 */
  size_t pad = align > HK_PAGE_SIZE ? align : HK_PAGE_SIZE;
  size_t need = pad + size;
  size_t map_size = (need + HK_SS_MASK) & ~(size_t)HK_SS_MASK;
  size_t map_align = align > HK_SS_SIZE ? align : HK_SS_SIZE;
  bool dirty = false;
  /* Only mappings of ordinary alignment are cached: an over-aligned one
   * wastes up to its alignment in address space, which must go back at once. */
  bool cacheable = pad == HK_PAGE_SIZE && map_size <= HK_LARGE_CACHE_MAX && hk_lc_serving();
  uint8_t *base = cacheable ? hk_lc_take(map_size, &dirty) : NULL;
  if (base != NULL) map_size = ((hk_large_cached *)base)->map_size; /* maybe a chunk more */
  if (base == NULL) base = hk_os_map_aligned(map_size, map_align);
  if (base == NULL && (hk_large_cache_purge(true) + hk_superslab_reclaim_for_retry()) != 0)
    base = hk_os_map_aligned(map_size, map_align); /* held-back address space, given back first */
  if (base == NULL) return NULL;
  uint8_t *user = base + pad;
  hk_large *hdr = (hk_large *)(user - HK_PAGE_SIZE);
  /* Usable: the request rounded to pages, not the chunk-rounded mapping, so
   * a program writing its whole usable size does not commit up to 2 MiB of
   * slack. realloc may still grow in place up to the mapping's end. */
  size_t usable = (size + HK_PAGE_SIZE - 1) & ~(HK_PAGE_SIZE - 1);
  if (dirty && zero) { /* a reused mapping is not fresh zero pages */
    if (usable >= ((size_t)1 << 20)) hk_os_decommit(user, usable); /* zero pages, faulted lazily */
    else memset(user, 0, usable);
  }
  hdr->magic = HK_LARGE_MAGIC;
  hdr->user = user;
  hdr->usable = usable;
  hdr->map_base = base;
  hdr->map_size = map_size;
  if (!hk_addrmap_set((uintptr_t)base, map_size, (uintptr_t)hdr | HK_MAP_LARGE)) {
    hk_addrmap_set((uintptr_t)base, map_size, 0);
    hk_os_unmap(base, map_size);
    errno = ENOMEM;
    return NULL;
  }
  hk_stat_add(HK_STAT_LARGE_LIVE, 1);
  return user;
}

void *hk_large_alloc(size_t size, size_t align) { return hk_large_alloc_impl(size, align, false); }
void *hk_large_calloc(size_t size) { return hk_large_alloc_impl(size, 16, true); }

static hk_large *hk_large_header(uintptr_t entry, const void *p) {
  hk_large *hdr = (hk_large *)(entry & ~HK_MAP_TAGS);
  if (HK_UNLIKELY(hdr->user != p)) {
    hk_bad_free(p, "inside a large block, not its start", 0);
    return NULL;
  }
  return hdr;
}

void hk_large_free(uintptr_t entry, void *p) {
  hk_large *hdr = hk_large_header(entry, p);
  if (hdr == NULL) return;
  uint8_t *base = hdr->map_base;
  size_t size = hdr->map_size;
  /* Leave a tombstone naming the old user pointer: a second free of exactly
   * that pointer is then recognisable as a double free. */
  hk_addrmap_set((uintptr_t)base, size, (uintptr_t)p | HK_MAP_DEAD);
  hk_stat_add(HK_STAT_LARGE_LIVE, -1);
  /* Cache off (HAKMEM_LARGE_CACHE_MB=0): straight back to the OS, without
   * touching the cache's shared byte counter or reading the clock. */
  if (hk_opt.large_cache_bytes == 0) {
    hk_os_unmap(base, size);
    return;
  }
  bool cacheable = (uint8_t *)p - base == (ptrdiff_t)HK_PAGE_SIZE && size <= HK_LARGE_CACHE_MAX && hk_lc_serving();
  uint64_t now = hk_os_now_ms();
  if (!cacheable || !hk_lc_put(base, size, true, now, 0)) hk_os_unmap(base, size);
  hk_lc_purge_due(now);
}

size_t hk_large_usable(uintptr_t entry, const void *p) {
  hk_large *hdr = hk_large_header(entry, p);
  return hdr == NULL ? 0 : hdr->usable;
}

bool hk_large_resize_in_place(void *p, size_t n) {
  uintptr_t e = hk_addrmap_get(p);
  if ((e & HK_MAP_LARGE) == 0) return false;
  hk_large *hdr = (hk_large *)(e & ~HK_MAP_TAGS);
  size_t room = (size_t)((uint8_t *)hdr->map_base + hdr->map_size - (uint8_t *)p);
  if (n > room) return false;
  size_t usable = (n + HK_PAGE_SIZE - 1) & ~(HK_PAGE_SIZE - 1);
  /* Shrinking: the pages past the new end go back to the OS now. */
  if (usable < hdr->usable) hk_os_decommit((uint8_t *)p + usable, hdr->usable - usable);
  hdr->usable = usable;
  return true;
}
