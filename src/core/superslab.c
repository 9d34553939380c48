/* superslab.c -- creating SuperSlabs and handing out their slabs. */
#include "core/superslab.h"

#include "core/addrmap.h"
#include "core/slab.h"
#include "os/os.h"
#include "util/stats.h"

hk_superslab *hk_superslab_create(int kind, struct hk_heap *heap) {
  /* The kind is bit 21 of the address (see hk_slab_of_block): small-kind
   * SuperSlabs sit at even 2 MiB slots, medium ones at odd slots. */
  hk_superslab *ss = hk_os_map_aligned_parity(HK_SS_SIZE, HK_SS_SIZE, kind == HK_KIND_MEDIUM);
  if (ss == NULL) return NULL;
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
  return &ss->slabs[i];
}

void hk_superslab_release_slab(hk_superslab *ss, hk_slab *s) {
  hk_slab_reset(s);
  ss->free_slabs |= 1u << s->index;
}
