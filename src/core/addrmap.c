/* addrmap.c -- registering ranges in the address map. */
#include "core/addrmap.h"

#include "os/os.h"

_Atomic(_Atomic uintptr_t *) hk_addrmap_l1[HK_MAP_L1_SIZE];
_Atomic uint64_t hk_addrmap_leaves[HK_MAP_L1_SIZE / 64];
_Atomic(_Atomic uintptr_t *) hk_pmap_l1[HK_PMAP_L1_SIZE];

#define HK_PMAP_LEAF_WORDS ((size_t)1 << (HK_PMAP_LEAF_BITS - 5)) /* 32 pages a word */
_Static_assert(sizeof(uintptr_t) == 8, "32 two-bit page states per word");

/* The leaf at *slot, mapping and installing a zeroed one of `bytes` when
 * there is none (first = its first word's initial value); NULL when the OS
 * refused. *installed: this call installed it. */
static _Atomic uintptr_t *hk_leaf(_Atomic(_Atomic uintptr_t *) *slot, size_t bytes, uintptr_t first,
                                  bool *installed) {
  _Atomic uintptr_t *leaf = hk_load_acquire(slot); /* pairs with the CAS below: leaf is initialised */
  if (leaf != NULL) return leaf;
  _Atomic uintptr_t *fresh = hk_os_map(bytes);
  if (fresh == NULL) return NULL;
  if (first != 0) hk_store_relaxed(&fresh[0], first);
  _Atomic uintptr_t *expected = NULL;
  /* Publishes the fresh leaf; pairs with the acquire load above. */
  if (hk_cas_strong_acq_rel(slot, &expected, fresh)) {
    *installed = true;
    return fresh;
  }
  hk_os_unmap(fresh, bytes); /* lost the race: use the winner's */
  return expected;
}

static _Atomic uintptr_t *hk_addrmap_leaf(size_t i1) {
  bool installed = false;
  /* Chunk 0's entry is a tombstone: see addrmap.h. */
  _Atomic uintptr_t *leaf = hk_leaf(&hk_addrmap_l1[i1], HK_MAP_LEAF_BYTES, i1 == 0 ? HK_MAP_DEAD : 0, &installed);
  /* Relaxed: the scan that reads it then loads the leaf pointer with
   * acquire (hk_ssmap_word) and the bitmap words with acquire. */
  if (installed) hk_or_relaxed(&hk_addrmap_leaves[i1 >> 6], (uint64_t)1 << (i1 & 63));
  return leaf;
}

/* ---- page map ---- */

static _Atomic uintptr_t *hk_pmap_leaf_of(uintptr_t page) {
  bool installed = false;
  return hk_leaf(&hk_pmap_l1[page >> HK_PMAP_LEAF_BITS], HK_PMAP_LEAF_WORDS * sizeof(uintptr_t), 0, &installed);
}

bool hk_pmap_prepare(uintptr_t key) { return (key >> HK_VA_BITS) == 0 && hk_pmap_leaf_of(key >> 12) != NULL; }

void hk_pmap_set(uintptr_t key, uintptr_t state) {
  uintptr_t page = key >> 12;
  /* Prepared: present, and the acquire load that found it orders its zeroing. */
  _Atomic uintptr_t *leaf = hk_load_acquire(&hk_pmap_l1[page >> HK_PMAP_LEAF_BITS]); /* pairs with hk_leaf's CAS */
  size_t i = page & (HK_PMAP_LEAF_WORDS * 32 - 1);
  unsigned sh = (unsigned)(i & 31) * 2;
  _Atomic uintptr_t *w = &leaf[i >> 5];
  uintptr_t old = hk_load_relaxed(w);
  /* Release: the header's writes before the mark (pairs with the acquire
   * of whoever orders its lookup after it; see hk_pmap_get). */
  while (!atomic_compare_exchange_weak_explicit(w, &old, (old & ~((uintptr_t)3 << sh)) | state << sh,
                                                memory_order_release, memory_order_relaxed)) {
  }
}

bool hk_pmap_kill(uintptr_t key) {
  uintptr_t page = key >> 12;
  _Atomic uintptr_t *leaf = hk_load_acquire(&hk_pmap_l1[page >> HK_PMAP_LEAF_BITS]); /* pairs with hk_leaf's CAS */
  if (leaf == NULL) return false;
  size_t i = page & (HK_PMAP_LEAF_WORDS * 32 - 1);
  unsigned sh = (unsigned)(i & 31) * 2;
  _Atomic uintptr_t *w = &leaf[i >> 5];
  uintptr_t old = hk_load_relaxed(w);
  do {
    if (((old >> sh) & 3) != HK_PMAP_LIVE) return false;
    /* Relaxed: the CAS alone decides which of two racing frees releases the
     * block; the header was read by a thread that got p through
     * synchronisation with its allocation. */
  } while (!atomic_compare_exchange_weak_explicit(w, &old, old ^ ((uintptr_t)3 << sh), memory_order_relaxed,
                                                  memory_order_relaxed));
  return true;
}

uintptr_t hk_pmap_live_below(uintptr_t key, uintptr_t lowest) {
  if ((key >> HK_VA_BITS) != 0) return 0;
  intptr_t page = (intptr_t)(key >> 12), low = (intptr_t)(lowest >> 12);
  while (page >= low) {
    size_t i1 = (size_t)page >> HK_PMAP_LEAF_BITS;
    _Atomic uintptr_t *leaf = hk_load_acquire(&hk_pmap_l1[i1]); /* pairs with hk_leaf's CAS */
    if (leaf == NULL) { /* nothing LIVE in this leaf's range */
      page = (intptr_t)((uintptr_t)i1 << HK_PMAP_LEAF_BITS) - 1;
      continue;
    }
    size_t i = (size_t)page & (HK_PMAP_LEAF_WORDS * 32 - 1);
    uintptr_t w = hk_load_relaxed(&leaf[i >> 5]); /* relaxed: as hk_pmap_get */
    uintptr_t live = w & ~(w >> 1) & (uintptr_t)0x5555555555555555ull; /* state 01 at even bits */
    unsigned top = (unsigned)(i & 31) * 2;                               /* this page's bit and below */
    live &= top == 62 ? ~(uintptr_t)0 : (((uintptr_t)1 << (top + 2)) - 1);
    if (live != 0) {
      intptr_t found = page - (intptr_t)(i & 31) + (intptr_t)((63 - __builtin_clzll(live)) / 2);
      return found >= low ? (uintptr_t)found << 12 : 0;
    }
    page -= (intptr_t)(i & 31) + 1; /* the previous word's last page */
  }
  return 0;
}

void hk_pmap_clear(uintptr_t start, size_t size) {
  uintptr_t first = start >> 12, end = (start + size + 4095) >> 12; /* pages [first, end) */
  for (uintptr_t page = first; page < end;) {
    size_t i1 = page >> HK_PMAP_LEAF_BITS;
    uintptr_t leaf_end = (uintptr_t)(i1 + 1) << HK_PMAP_LEAF_BITS;
    uintptr_t stop = end < leaf_end ? end : leaf_end;
    _Atomic uintptr_t *leaf = hk_load_acquire(&hk_pmap_l1[i1]); /* pairs with hk_leaf's CAS */
    if (leaf == NULL) { /* no marks in this leaf's range */
      page = stop;
      continue;
    }
    while (page < stop) {
      size_t i = page & (HK_PMAP_LEAF_WORDS * 32 - 1);
      unsigned lo = (unsigned)(i & 31);
      unsigned n = (unsigned)(stop - page < 32 - lo ? stop - page : 32 - lo);
      uintptr_t mask = (n == 32 ? ~(uintptr_t)0 : (((uintptr_t)1 << (2 * n)) - 1)) << (2 * lo);
      /* Relaxed: these pages are ours alone now; only a neighbour's bits in
       * the same word change meanwhile, and the RMW keeps them. */
      if (hk_load_relaxed(&leaf[i >> 5]) & mask) hk_and_relaxed(&leaf[i >> 5], ~mask);
      page += n;
    }
  }
}

size_t hk_ssmap_next_word(size_t wi) {
  for (size_t i1 = wi / HK_SSMAP_WORDS_PER_LEAF; i1 < HK_MAP_L1_SIZE; i1++) {
    uint64_t leaves = hk_load_relaxed(&hk_addrmap_leaves[i1 >> 6]) >> (i1 & 63);
    if (leaves == 0) { /* none in the rest of this summary word */
      i1 |= 63;
      continue;
    }
    i1 += (size_t)__builtin_ctzll(leaves);
    size_t first = i1 * HK_SSMAP_WORDS_PER_LEAF;
    return wi > first ? wi : first;
  }
  return HK_SSMAP_WORDS;
}

bool hk_addrmap_set(uintptr_t start, size_t size, uintptr_t entry) {
  for (uintptr_t a = start & ~(uintptr_t)HK_SS_MASK; a < start + size; a += HK_SS_SIZE) {
    _Atomic uintptr_t *leaf = hk_addrmap_leaf(a >> (HK_SS_SHIFT + HK_MAP_L2_BITS));
    if (leaf == NULL) return false;
    /* Release: a thread that finds this entry by a relaxed load and then reads
     * the header got the pointer through synchronisation anyway (see get);
     * release keeps the header writes ordered for lookups of foreign pointers. */
    hk_store_release(&leaf[(a >> HK_SS_SHIFT) & (HK_MAP_L2_SIZE - 1)], entry);
    /* Release RMW (neighbours' bits share the word): the header before the
     * bit, for the purge scan's acquire load (core/purge.c); the free fast
     * path reads it relaxed, by the same argument as the entry's. */
    _Atomic uint64_t *w = hk_ssmap_leaf_word(leaf, a >> HK_SS_SHIFT);
    uint64_t bit = (uint64_t)1 << ((a >> HK_SS_SHIFT) & 63);
    bool is_ss = hk_entry_is_ss(entry) && entry == a;
    if (is_ss) hk_or_release(w, bit);
    else if (hk_load_relaxed(w) & bit) hk_and_relaxed(w, ~bit);
  }
  return true;
}
