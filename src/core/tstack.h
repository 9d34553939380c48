/* tstack.h -- an ABA-safe lock-free stack (Treiber) of page-aligned,
 * type-stable nodes: SuperSlabs on the abandoned stacks and heaps in the pool.
 *
 * The head word packs the node's page number (bits 0..34: 47-bit addresses,
 * 4 KiB-aligned nodes) with a 29-bit version bumped by every successful pop
 * and push, so a pop whose CAS races a pop-push-pop of the same node fails
 * instead of installing a stale `next` (ABA). The version wraps after 2^29
 * operations: a pop stalled for exactly that many operations could still
 * suffer ABA. A popper may read `next` of a node another thread popped
 * meanwhile: both SuperSlabs (abandon.c) and heaps (core/heap.c, the pool)
 * are popped only inside an epoch section, so one retired meanwhile is not
 * unmapped or reused under it.
 *
 *   pop:  acquire load of the head; loop { empty: return 0; read the top
 *         node's link; CAS (link, ver+1): won -> the node is the popper's;
 *         lost -> the head reloaded (acquire), again }
 *   push: relaxed load; loop { link = top; CAS (node, ver+1): won -> the
 *         node is on the stack; lost -> reloaded, again }
 * Models: formal/tstack.pml (two nodes, three threads, the links' C11
 * visibility; mutants tstack_no_version for ABA, tstack_pop_relaxed_reload
 * for the pop's reload order) and formal/ownership.pml (stack_push,
 * stack_pop: the abandoned stacks' users, one node). */
#ifndef HK_TSTACK_H
#define HK_TSTACK_H

#include <stdint.h>

#include "hk_atomic.h"
#include "hk_config.h"

/* A whole cache line: every push and pop writes the head, and a neighbour
 * on its line (another stack's head, a counter) would miss with it. */
typedef struct hk_tstack {
  _Alignas(HK_CACHE_LINE) _Atomic uint64_t head;
} hk_tstack;

#define HK_TS_PAGE_BITS 35
#define HK_TS_PAGE_MASK (((uint64_t)1 << HK_TS_PAGE_BITS) - 1)

HK_INLINE uint64_t hk_ts_pack(uintptr_t node, uint64_t version) {
  return ((uint64_t)node >> 12) | (version << HK_TS_PAGE_BITS);
}
HK_INLINE uintptr_t hk_ts_node(uint64_t w) { return (uintptr_t)((w & HK_TS_PAGE_MASK) << 12); }
HK_INLINE uint64_t hk_ts_version(uint64_t w) { return w >> HK_TS_PAGE_BITS; }

/* `link` is the node's own next field. */
HK_INLINE void hk_tstack_push(hk_tstack *s, uintptr_t node, _Atomic uintptr_t *link) {
  uint64_t old = hk_load_relaxed(&s->head);
  do {
    hk_store_relaxed(link, hk_ts_node(old));
    /* Release: the node's contents (and link) are visible to the popper,
     * which acquires in hk_tstack_pop. */
  } while (!hk_cas_weak_acq_rel(&s->head, &old, hk_ts_pack(node, hk_ts_version(old) + 1)));
}

/* `link_of(node)` gives a node's next field. Returns 0 when empty. */
#define HK_TSTACK_POP(s, type, field)                                                     \
  ({                                                                                      \
    uint64_t old_ = hk_load_acquire(&(s)->head); /* pairs with push's release CAS */       \
    uintptr_t n_;                                                                         \
    for (;;) {                                                                            \
      n_ = hk_ts_node(old_);                                                              \
      if (n_ == 0) break;                                                                 \
      uintptr_t next_ = hk_load_relaxed(&((type *)n_)->field);                            \
      /* Acquire on success: the node's contents as its pusher left them. Acquire         \
       * on failure too: the reloaded head's node has its link read next, which           \
       * must see its pusher's link store (pairs with push's release CAS; a               \
       * relaxed reload lets the read return an older link, and two poppers               \
       * take the same node: formal/mutants/tstack_pop_relaxed_reload.pml). */            \
      if (hk_cas_weak_acq_rel_acq(&(s)->head, &old_, hk_ts_pack(next_, hk_ts_version(old_) + 1))) \
        break;                                                                            \
    }                                                                                     \
    (type *)n_;                                                                           \
  })

#endif /* HK_TSTACK_H */
