/* heap.c -- owner-only heap bookkeeping: slab lists, SuperSlab lists, the
 * refill order, and the pool of heaps left by exited threads. */
#include "core/heap.h"

#include <string.h>

#include "core/sizeclass.h"
#include "core/tstack.h"
#include "os/os.h"
#include "util/stats.h"

hk_heap hk_heap_empty = {.cur = {[0 ... HK_NCLASSES - 1] = &hk_slab_empty}};
__thread hk_heap *hk_tls_heap __attribute__((tls_model("initial-exec"))) = &hk_heap_empty;

/* Heaps of exited threads. Type-stable: never unmapped (see hk_heap). */
static hk_tstack hk_heap_pool;

#define HK_HEAP_MAP_SIZE ((sizeof(hk_heap) + HK_PAGE_SIZE - 1) & ~(HK_PAGE_SIZE - 1))

hk_heap *hk_heap_create(void) {
  hk_heap *h = HK_TSTACK_POP(&hk_heap_pool, hk_heap, stack_next);
  if (h != NULL) {
    hk_stat_add(HK_STAT_HEAPS_REUSED, 1);
  } else {
    h = hk_os_map(HK_HEAP_MAP_SIZE);
    if (h == NULL) return NULL;
    hk_stat_add(HK_STAT_HEAPS_CREATED, 1);
  }
  /* Reset the owner-only part. The pending bitmap is left alone: stale
   * senders may still set bits in it, and a spurious bit only costs a look
   * at an empty bucket. */
  for (unsigned c = 0; c < HK_NCLASSES; c++) {
    h->cur[c] = &hk_slab_empty;
    h->partial[c] = h->partial_tail[c] = NULL;
  }
  for (unsigned k = 0; k < HK_KINDS; k++) h->avail[k] = NULL;
  memset(h->outbox, 0, sizeof h->outbox);
  h->outbox_used = 0;
  h->stat_chains = h->stat_blocks = 0;
  memset(h->bucket, 0, sizeof h->bucket);
  h->live = true;
  return h;
}

void hk_heap_retire(hk_heap *h) {
  h->live = false;
  hk_tstack_push(&hk_heap_pool, (uintptr_t)h, &h->stack_next);
}

static void hk_partial_push(hk_heap *h, hk_slab *s) {
  unsigned c = s->class_idx;
  s->state = HK_SLAB_PARTIAL;
  s->next = NULL;
  s->prev = h->partial_tail[c];
  if (s->prev != NULL) s->prev->next = s;
  else h->partial[c] = s;
  h->partial_tail[c] = s;
}

static void hk_partial_remove(hk_heap *h, hk_slab *s) {
  unsigned c = s->class_idx;
  if (s->prev != NULL) s->prev->next = s->next;
  else h->partial[c] = s->next;
  if (s->next != NULL) s->next->prev = s->prev;
  else h->partial_tail[c] = s->prev;
  s->next = s->prev = NULL;
}

static void hk_avail_push(hk_heap *h, hk_superslab *ss) {
  if (ss->in_avail) return;
  ss->in_avail = 1;
  ss->avail_next = h->avail[ss->kind];
  h->avail[ss->kind] = ss;
}

void hk_heap_add_superslab(hk_heap *h, hk_superslab *ss) {
  unsigned b = hk_bucket_of(ss);
  ss->bucket_next = h->bucket[b];
  h->bucket[b] = ss;
  ss->in_avail = 0;
  if (ss->free_slabs != 0) hk_avail_push(h, ss);
}

void hk_heap_absorb_superslab(hk_heap *h, hk_superslab *ss) {
  for (unsigned i = 0; i < ss->nslabs; i++) {
    hk_slab *s = &ss->slabs[i];
    if (s->state == HK_SLAB_UNUSED) continue;
    s->next = s->prev = NULL;
    if (s->used == 0) hk_superslab_release_slab(ss, s);
    else if (s->free != NULL || s->local_free != NULL || s->carved < s->limit) hk_partial_push(h, s);
    else s->state = HK_SLAB_FULL;
  }
  hk_heap_add_superslab(h, ss);
}

/* Blocks came back to s (a local free or a reclaimed batch). A FULL slab
 * becomes PARTIAL; a PARTIAL slab with nothing out becomes UNUSED so any class
 * can reuse its pages. The current slab stays put even when empty: it is hot. */
void hk_heap_slab_returned(hk_heap *h, hk_superslab *ss, hk_slab *s) {
  if (s->state == HK_SLAB_FULL) {
    if (s->used == 0) {
      hk_superslab_release_slab(ss, s);
      hk_avail_push(h, ss);
    } else {
      hk_partial_push(h, s);
    }
  } else if (s->state == HK_SLAB_PARTIAL && s->used == 0) {
    hk_partial_remove(h, s);
    hk_superslab_release_slab(ss, s);
    hk_avail_push(h, ss);
  }
}

/* Refill order: the current slab (local frees, then carving), the class's
 * partial slabs, then an UNUSED slab of an owned SuperSlab. */
hk_slab *hk_heap_refill(hk_heap *h, unsigned cls) {
  hk_slab *s = h->cur[cls];
  if (s != &hk_slab_empty) {
    if (hk_slab_refill(s)) return s;
    s->state = HK_SLAB_FULL;
    h->cur[cls] = &hk_slab_empty;
  }
  while ((s = h->partial[cls]) != NULL) {
    hk_partial_remove(h, s);
    if (hk_slab_refill(s)) {
      s->state = HK_SLAB_ACTIVE;
      h->cur[cls] = s;
      return s;
    }
    s->state = HK_SLAB_FULL;
  }
  int kind = hk_class_kind(cls);
  hk_superslab *ss;
  while ((ss = h->avail[kind]) != NULL) {
    s = hk_superslab_take_slab(ss);
    if (ss->free_slabs == 0) {
      h->avail[kind] = ss->avail_next;
      ss->in_avail = 0;
    }
    if (s != NULL) {
      hk_slab_init(ss, s, cls);
      hk_slab_refill(s);
      h->cur[cls] = s;
      return s;
    }
  }
  return NULL;
}
