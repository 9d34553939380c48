/* abandon.c -- abandon and adopt. Model: formal/ownership.pml.
 *
 * The ownership word of a SuperSlab (hk_superslab.owner) moves:
 *   OWNED(H)  --H's thread exits: store ABANDONED, then push-->   ABANDONED
 *   ABANDONED --popped by H2, CAS ABANDONED -> H2-->             OWNED(H2)
 *   ABANDONED --popped by H2, of no use to it: pushed on the
 *               visited stack, owner untouched-->                ABANDONED
 * Only the thread that popped a SuperSlab off a stack may CAS it or read its
 * slabs, so at most one thread owns it at any time. The release store when
 * abandoning pairs with the adopter's acq_rel CAS: the slabs' owner-only
 * state, last written by H, is visible to H2. Remote frees keep landing in
 * the queue throughout; the adopter drains it after its CAS (see remote.c).
 *
 * Two stacks per kind: `fresh` holds SuperSlabs nobody has looked at since
 * they were abandoned, `visited` those a thread popped and found useless (no
 * room for its class, no pending frees). When `fresh` runs dry, `visited` is
 * spliced onto it whole, so every abandoned SuperSlab is looked at again
 * before any is looked at twice. Without the set-aside, an allocation would
 * either adopt SuperSlabs it cannot use (a thread that starts up in a
 * program with a large abandoned heap would take all of it) or give up after
 * a few and map a new one while useful ones wait further down the stack.
 *
 * Retirement (formal/retire.pml): a SuperSlab on a stack is abandoned, and
 * only owners retire, so nothing on a stack is ever retired. But a popper
 * reads the top node's stack_next before its CAS, and by then another
 * thread may have popped that node, adopted it, emptied and retired it: the
 * stale read would touch memory that may be unmapped or reused. Every pop
 * therefore runs inside an epoch section (one per adoption batch), which
 * keeps any SuperSlab it could still read from being reclaimed until the
 * section ends; the version tag still makes a stale CAS fail (ABA). The
 * revisit splice walks a chain it took whole, so it reads only its own nodes.
 * At thread exit an empty SuperSlab is retired instead of abandoned. */
#include "remote/abandon.h"

#include "epoch/epoch.h"

#include "core/sizeclass.h"
#include "core/tstack.h"
#include "remote/remote.h"
#include "util/stats.h"

#define HK_ROOM_ANY ((uint64_t)1 << 63)
_Static_assert(HK_NCLASSES < 63, "room mask has a bit per class and an ANY bit");

/* Each word on its own cache line (hk_tstack is a line itself): abandoning
 * threads CAS `fresh` and bump `count`, adopters CAS both stacks, and every
 * remote free into an abandoned SuperSlab stores `freed`. Sharing one line
 * made each of those writes miss in every other core that merely reads
 * another word (the adopter's budget, its `freed` check on every slow path
 * that adopts). */
typedef struct {
  hk_tstack fresh;
  hk_tstack visited;
  _Alignas(HK_CACHE_LINE) _Atomic size_t count; /* on either stack; a hint for the visit budget */
  _Alignas(HK_CACHE_LINE) _Atomic bool freed;   /* a remote free made an abandoned queue non-empty */
} hk_abandoned_set;

static hk_abandoned_set hk_abandoned[HK_KINDS];

/* What ss can still serve, computed by its last owner. */
static uint64_t hk_room_of(hk_superslab *ss) {
  uint64_t room = ss->free_slabs != 0 ? HK_ROOM_ANY : 0;
  for (unsigned i = 0; i < ss->nslabs; i++) {
    hk_slab *s = hk_ss_slab(ss, i);
    if (s->state == HK_SLAB_UNUSED) continue;
    if (s->used == 0) room |= HK_ROOM_ANY; /* released when adopted */
    else if (s->free != NULL || s->local_free != NULL || s->carved_key < s->limit_key) room |= (uint64_t)1 << hk_slab_class(s);
  }
  return room;
}

void hk_abandon_all(hk_heap *h) {
  hk_heap_release_all(h); /* the empty ones are retired, not abandoned */
  hk_heap_own_clear(h);    /* before any is published: an adopter owns it next */
  for (unsigned b = 0; b < HK_PEND_BUCKETS; b++) {
    hk_superslab *ss = h->bucket[b];
    h->bucket[b] = NULL;
    while (ss != NULL) {
      hk_superslab *next = ss->bucket_next;
      ss->bucket_next = NULL;
      ss->avail_next = NULL;
      ss->in_avail = 0;
      ss->room = hk_room_of(ss);
      /* Release: our last writes to the slabs happen-before the adopter's CAS.
       * Store, then push: formal/mutants/ownership_push_before_store.pml. */
      hk_store_release(hk_ss_owner_word(ss), HK_OWNER_ABANDONED);
      hk_abandoned_set *set = &hk_abandoned[ss->kind];
      hk_tstack_push(&set->fresh, (uintptr_t)ss, &ss->stack_next);
      hk_add_relaxed(&set->count, 1);
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

/* Move the whole visited stack onto fresh: one CAS to take it (empty, version
 * bumped), one to put it back. Nodes on the taken chain are ours alone.
 * Model: formal/ownership.pml revisit; a load and a store instead of the
 * CAS: formal/mutants/ownership_revisit_load_store.pml. */
static bool hk_revisit(hk_abandoned_set *set) {
  uint64_t old = hk_load_relaxed(&set->visited.head);
  do {
    if (hk_ts_node(old) == 0) return false;
    /* Acquire: pairs with the pushers' release CAS (the nodes' links). */
  } while (!hk_cas_weak_acq_rel(&set->visited.head, &old, hk_ts_pack(0, hk_ts_version(old) + 1)));
  uintptr_t top = hk_ts_node(old), tail = top, next;
  while ((next = hk_load_relaxed(&((hk_superslab *)tail)->stack_next)) != 0) tail = next;
  uint64_t head = hk_load_relaxed(&set->fresh.head);
  do {
    hk_store_relaxed(&((hk_superslab *)tail)->stack_next, hk_ts_node(head));
    /* Release: the links just written are visible to the poppers. */
  } while (!hk_cas_weak_acq_rel(&set->fresh.head, &head, hk_ts_pack(top, hk_ts_version(head) + 1)));
  return true;
}

/* Model: formal/ownership.pml adopt (mutants ownership_adopt_no_cas,
 * _no_drain, _plain_check). */
static void hk_adopt(hk_heap *h, hk_superslab *ss) {
  uintptr_t expected = HK_OWNER_ABANDONED;
  /* acq_rel: acquire pairs with the abandoning store; release orders this
   * ownership before our head exchange, so later pushers notify us. */
  bool won = hk_cas_strong_acq_rel(hk_ss_owner_word(ss), &expected, (uintptr_t)h);
  HK_ASSERT(won); /* only the popper may CAS an abandoned SuperSlab */
  (void)won;
  hk_heap_absorb_superslab(h, ss);
  hk_remote_drain(h, ss);
  hk_stat_add(HK_STAT_SS_ADOPTED, 1);
  hk_heap_adopted(h, ss);
}

/* A set-aside SuperSlab becomes useful only through a remote free (its room
 * is frozen while abandoned), so that is when `visited` goes back on top of
 * `fresh`: under steady thread churn `fresh` is never empty, and without
 * this the frees into set-aside SuperSlabs would wait for a quiet moment. */
void hk_abandoned_freed(hk_superslab *ss) {
  /* Release: the push that made the queue non-empty happens-before the
   * adopter's acquire exchange below, so it sees the queue non-empty. */
  hk_store_release(&hk_abandoned[ss->kind].freed, true);
}

hk_slab *hk_adopt_for(hk_heap *h, unsigned cls) {
  hk_abandoned_set *set = &hk_abandoned[hk_class_kind(cls)];
  /* Acquire: pairs with hk_abandoned_freed's release store. */
  bool revisited = hk_load_relaxed(&set->freed) && hk_xchg_acquire(&set->freed, false) && hk_revisit(set);
  size_t budget = hk_load_relaxed(&set->count) / 4;
  if (budget < HK_ADOPT_VISITS_MIN) budget = HK_ADOPT_VISITS_MIN;
  if (budget > HK_ADOPT_VISITS_MAX) budget = HK_ADOPT_VISITS_MAX;
  uint64_t want = HK_ROOM_ANY | (uint64_t)1 << cls;
  hk_slab *s = NULL;
  hk_epoch_enter(h->erec); /* the pops below may read retired SuperSlabs */
  for (; budget > 0; budget--) {
    hk_superslab *ss = HK_TSTACK_POP(&set->fresh, hk_superslab, stack_next);
    if (ss == NULL) {
      /* Once per call: after that, `fresh` holds only what we set aside. */
      if (revisited || !hk_revisit(set)) break;
      revisited = true;
      continue;
    }
    /* The pop's acquire made the abandoner's `room` and slab writes visible.
     * Pending remote frees make it worth adopting whatever its room: they
     * are memory nobody reclaims while it stays abandoned. Set aside at
     * once, not at the end of the call: concurrent adopters must not find
     * both stacks empty while we hold SuperSlabs we have no use for.
     * Model: formal/ownership.pml set_aside; without the queue test:
     * formal/mutants/ownership_aside_room_only.pml. */
    if ((ss->room & want) == 0 && hk_load_relaxed(&ss->remote_head) == NULL) {
      hk_tstack_push(&set->visited, (uintptr_t)ss, &ss->stack_next);
      /* A free may have landed after our look and flagged the set before
       * ss was on `visited` (a revisit in between would miss it): look
       * again with an RMW, which reads the latest head. acq_rel: if it
       * reads NULL, a later push reads our write and its flag comes after
       * our push on visited; if not, we raise the flag ourselves. */
      hk_block *seen = NULL;
      if (!atomic_compare_exchange_strong_explicit(&ss->remote_head, &seen, NULL, memory_order_acq_rel,
                                                   memory_order_acquire))
        hk_abandoned_freed(ss);
      continue;
    }
    hk_sub_relaxed(&set->count, 1);
    hk_adopt(h, ss);
    s = hk_heap_refill(h, cls);
    if (s != NULL) break;
  }
  hk_epoch_exit(h->erec);
  return s;
}

size_t hk_adopt_all(hk_heap *h) {
  size_t n = 0;
  for (int k = 0; k < HK_KINDS; k++) {
    hk_abandoned_set *set = &hk_abandoned[k];
    hk_superslab *ss;
    hk_epoch_enter(h->erec);
    for (bool revisited = false;;) {
      ss = HK_TSTACK_POP(&set->fresh, hk_superslab, stack_next);
      if (ss == NULL) {
        if (revisited || !hk_revisit(set)) break;
        revisited = true;
        continue;
      }
      hk_sub_relaxed(&set->count, 1);
      hk_adopt(h, ss);
      n++;
    }
    hk_epoch_exit(h->erec);
  }
  return n;
}
