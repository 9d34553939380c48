/* addrmap.c -- registering ranges in the address map. */
#include "core/addrmap.h"

#include "os/os.h"

_Atomic(_Atomic uintptr_t *) hk_addrmap_l1[HK_MAP_L1_SIZE];
_Atomic uint64_t hk_ssmap[HK_SSMAP_WORDS];
_Atomic uint64_t hk_addrmap_leaves[HK_MAP_L1_SIZE / 64];

static _Atomic uintptr_t *hk_addrmap_leaf(size_t i1) {
  _Atomic uintptr_t *leaf = hk_load_acquire(&hk_addrmap_l1[i1]); /* pairs with the CAS below: leaf is zeroed */
  if (leaf != NULL) return leaf;
  _Atomic uintptr_t *fresh = hk_os_map(HK_MAP_L2_SIZE * sizeof(uintptr_t));
  if (fresh == NULL) return NULL;
  if (i1 == 0) hk_store_relaxed(&fresh[0], HK_MAP_DEAD); /* chunk 0: see addrmap.h */
  _Atomic uintptr_t *expected = NULL;
  /* Publishes the fresh (zero) leaf; pairs with the acquire load above. */
  if (hk_cas_strong_acq_rel(&hk_addrmap_l1[i1], &expected, fresh)) {
    /* Relaxed: the scan that reads it then reads bitmap words with acquire. */
    hk_or_relaxed(&hk_addrmap_leaves[i1 >> 6], (uint64_t)1 << (i1 & 63));
    return fresh;
  }
  hk_os_unmap(fresh, HK_MAP_L2_SIZE * sizeof(uintptr_t)); /* lost the race: use the winner's */
  return expected;
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
    _Atomic uint64_t *w = &hk_ssmap[a >> (HK_SS_SHIFT + 6)];
    uint64_t bit = (uint64_t)1 << ((a >> HK_SS_SHIFT) & 63);
    bool is_ss = hk_entry_is_ss(entry) && entry == a;
    if (is_ss) hk_or_release(w, bit);
    else if (hk_load_relaxed(w) & bit) hk_and_relaxed(w, ~bit);
  }
  return true;
}
