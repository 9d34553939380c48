/* large.c -- large allocations: map, register, cache, unmap.
 *
 * With HAKMEM_LARGE_CACHE_MB set (off by default: see hk_config.h), a freed
 * large mapping of at most HK_LARGE_CACHE_MAX bytes goes to a small global
 * cache instead of munmap; an allocation needing the same number of
 * chunks (and an alignment the mapping's base satisfies) takes it back,
 * saving the mmap, the alignment trims, the munmap and the address-map
 * writes of every chunk but none of the page faults once decommitted. A
 * cached mapping is decommitted after HAKMEM_DECOMMIT_DELAY_MS, unmapped
 * when the cache is full or by hak_collect.
 *
 * Slots are taken and filled by whole-word exchanges only: a thread owns the
 * mapping it took out of a slot, and nobody dereferences a mapping through a
 * slot. Per slot, `size` and `at` are hints written after the slot is
 * filled (a reader may see its previous occupant's): a taker verifies the
 * size in the mapping's own descriptor after its exchange and puts back
 * what does not fit. No epoch is needed: a cached mapping is referenced by
 * no live pointer, its map entries are tombstones, and nothing but a slot
 * leads to it. */
#include "large/large.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "core/addrmap.h"
#include "core/superslab.h"
#include "os/os.h"
#include "util/diag.h"
#include "util/options.h"
#include "util/stats.h"

/* Written at the base of a cached mapping (its own memory, ours while cached). */
typedef struct hk_large_cached {
  size_t map_size;
  bool dirty; /* pages may hold old data: calloc must clear them */
} hk_large_cached;

static _Atomic uintptr_t hk_lc_slot[HK_LARGE_CACHE_SLOTS];
static _Atomic size_t hk_lc_size[HK_LARGE_CACHE_SLOTS];
static _Atomic uint64_t hk_lc_at[HK_LARGE_CACHE_SLOTS]; /* cached at; UINT64_MAX: decommitted */
static _Atomic size_t hk_lc_bytes; /* address space held by the cache */

/* False when every slot is taken or the cache would exceed its bytes bound. */
static bool hk_lc_put(uint8_t *base, size_t map_size, bool dirty, uint64_t at) {
  if (hk_add_relaxed(&hk_lc_bytes, map_size) + map_size > hk_opt.large_cache_bytes) {
    hk_sub_relaxed(&hk_lc_bytes, map_size);
    return false;
  }
  hk_large_cached *c = (hk_large_cached *)base;
  c->map_size = map_size;
  c->dirty = dirty;
  for (unsigned i = 0; i < HK_LARGE_CACHE_SLOTS; i++) {
    uintptr_t expected = 0;
    /* Release: the descriptor above before the taker's acquire exchange. */
    if (hk_load_relaxed(&hk_lc_slot[i]) == 0 && hk_cas_strong_acq_rel(&hk_lc_slot[i], &expected, (uintptr_t)base)) {
      hk_store_relaxed(&hk_lc_size[i], map_size);
      hk_store_relaxed(&hk_lc_at[i], at);
      return true;
    }
  }
  hk_sub_relaxed(&hk_lc_bytes, map_size);
  return false;
}

/* The slot's mapping left the cache (taken, or about to be unmapped). */
static void hk_lc_left(size_t map_size) { hk_sub_relaxed(&hk_lc_bytes, map_size); }

/* A cached mapping of map_size bytes whose base is aligned to map_align. */
static uint8_t *hk_lc_take(size_t map_size, size_t map_align, bool *dirty) {
  for (unsigned i = 0; i < HK_LARGE_CACHE_SLOTS; i++) {
    if (hk_load_relaxed(&hk_lc_size[i]) != map_size || hk_load_relaxed(&hk_lc_slot[i]) == 0) continue;
    uintptr_t w = hk_xchg_acquire(&hk_lc_slot[i], 0); /* pairs with put's release CAS */
    if (w == 0) continue;
    hk_large_cached *c = (hk_large_cached *)w;
    hk_lc_left(c->map_size);
    if (c->map_size == map_size && (w & (map_align - 1)) == 0) {
      *dirty = c->dirty;
      return (uint8_t *)w;
    }
    /* A stale hint: not ours to use; back it goes (or away, if full). */
    if (!hk_lc_put((uint8_t *)w, c->map_size, c->dirty, hk_os_now_ms())) hk_os_unmap((void *)w, c->map_size);
  }
  return NULL;
}

size_t hk_large_cache_purge(bool all) {
  if (hk_opt.large_cache_bytes == 0) return 0; /* off: no slot is ever filled */
  uint64_t now = hk_os_now_ms(), delay = hk_opt.decommit_delay_ms;
  size_t n = 0;
  for (unsigned i = 0; i < HK_LARGE_CACHE_SLOTS; i++) {
    if (hk_load_relaxed(&hk_lc_slot[i]) == 0) continue;
    if (!all) {
      uint64_t at = hk_load_relaxed(&hk_lc_at[i]);
      if (at == UINT64_MAX || at + delay > now) continue;
    }
    uintptr_t w = hk_xchg_acquire(&hk_lc_slot[i], 0); /* pairs with put's release CAS */
    if (w == 0) continue;
    size_t map_size = ((hk_large_cached *)w)->map_size;
    hk_lc_left(map_size);
    n++;
    if (all) {
      hk_os_unmap((void *)w, map_size);
      continue;
    }
    hk_os_decommit((void *)w, map_size);
    if (!hk_lc_put((uint8_t *)w, map_size, false, UINT64_MAX)) hk_os_unmap((void *)w, map_size);
  }
  return n;
}

static void *hk_large_alloc_impl(size_t size, size_t align, bool zero) {
  if (size > PTRDIFF_MAX || align > ((size_t)1 << 40)) {
    hk_trace_failure(size, "size class threshold: larger than PTRDIFF_MAX");
    errno = ENOMEM;
    return NULL;
  }
  hk_large_cache_purge(false); /* large calls are rare and slow: the cache's timer runs here */
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
  bool cacheable = hk_opt.large_cache_bytes != 0 && pad == HK_PAGE_SIZE && map_size <= HK_LARGE_CACHE_MAX;
  uint8_t *base = cacheable ? hk_lc_take(map_size, map_align, &dirty) : NULL;
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
  /* Cache off (the default): straight back to the OS, without touching the
   * cache's shared byte counter or reading the clock. */
  bool cacheable = hk_opt.large_cache_bytes != 0 && (uint8_t *)p - base == (ptrdiff_t)HK_PAGE_SIZE &&
                   size <= HK_LARGE_CACHE_MAX;
  if (!cacheable || !hk_lc_put(base, size, true, hk_os_now_ms())) hk_os_unmap(base, size);
  hk_large_cache_purge(false);
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
