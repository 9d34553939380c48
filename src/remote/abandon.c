/* abandon.c -- abandon and adopt. Model: formal/ownership.pml.
 *
 * The ownership word of a SuperSlab (hk_superslab.owner) moves:
 *   OWNED(H)  --H's thread exits: store ABANDONED, then push-->   ABANDONED
 *   ABANDONED --popped by H2, CAS ABANDONED -> H2-->             OWNED(H2)
 * Only the thread that popped a SuperSlab off the abandoned stack may CAS it,
 * so at most one thread owns it at any time. The release store when
 * abandoning pairs with the adopter's acq_rel CAS: the slabs' owner-only
 * state, last written by H, is visible to H2. Remote frees keep landing in
 * the queue throughout; the adopter drains it after its CAS (see remote.c). */
#include "remote/abandon.h"

#include "core/tstack.h"
#include "remote/remote.h"
#include "util/stats.h"

static hk_tstack hk_abandoned[HK_KINDS];

void hk_abandon_all(hk_heap *h) {
  for (unsigned b = 0; b < HK_PEND_BUCKETS; b++) {
    hk_superslab *ss = h->bucket[b];
    h->bucket[b] = NULL;
    while (ss != NULL) {
      hk_superslab *next = ss->bucket_next;
      ss->bucket_next = NULL;
      ss->avail_next = NULL;
      ss->in_avail = 0;
      /* Release: our last writes to the slabs happen-before the adopter's CAS. */
      hk_store_release(&ss->owner, HK_OWNER_ABANDONED);
      hk_tstack_push(&hk_abandoned[ss->kind], (uintptr_t)ss, &ss->stack_next);
      hk_stat_add(HK_STAT_SS_ABANDONED, 1);
      ss = next;
    }
  }
  for (unsigned c = 0; c < HK_NCLASSES; c++) {
    h->cur[c] = &hk_slab_empty;
    h->partial[c] = h->partial_tail[c] = NULL;
  }
  for (unsigned k = 0; k < HK_KINDS; k++) h->avail[k] = NULL;
}

bool hk_adopt_one(hk_heap *h, int kind) {
  hk_superslab *ss = HK_TSTACK_POP(&hk_abandoned[kind], hk_superslab, stack_next);
  if (ss == NULL) return false;
  uintptr_t expected = HK_OWNER_ABANDONED;
  /* acq_rel: acquire pairs with the abandoning store; release orders this
   * ownership before our head exchange, so later pushers notify us. */
  bool won = hk_cas_strong_acq_rel(&ss->owner, &expected, (uintptr_t)h);
  HK_ASSERT(won); /* only the popper may CAS an abandoned SuperSlab */
  (void)won;
  hk_heap_absorb_superslab(h, ss);
  hk_remote_drain(h, ss);
  hk_stat_add(HK_STAT_SS_ADOPTED, 1);
  return true;
}
