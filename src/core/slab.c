/* slab.c -- binding slabs to classes and carving their blocks lazily. */
#include "core/slab.h"

#include "core/block.h"
#include "core/harden.h"
#include "core/sizeclass.h"
#include "core/superslab.h"
#include "util/diag.h"
#include "util/stats.h"

hk_slab hk_slab_empty;

/* A medium slab's views (core/superslab.h, hk_slab_view_of): the seven
 * descriptors after it, one per further granule it spans, carry copies of
 * the fields free's fast path reads. Every write of those fields ends here,
 * so a view never differs from its slab when the owner frees. */
static void hk_slab_sync_views(hk_slab *s) {
  if (hk_superslab_of(s)->kind != HK_KIND_MEDIUM) return;
  for (hk_slab *v = s + 1; v < s + HK_MEDIUM_VIEWS; v++) {
    v->start = s->start;
    v->carved_key = s->carved_key;
    v->limit_key = s->limit_key;
    v->magic = s->magic;
    v->tc_off = s->tc_off;
  }
}

void hk_slab_init(hk_superslab *ss, hk_slab *s, unsigned cls) {
  uint8_t *base = (uint8_t *)ss + ((size_t)s->index << ss->slab_shift);
  uint8_t *start = s->index == 0 ? (uint8_t *)ss + HK_SS_HEADER : base;
  size_t span = ((size_t)1 << ss->slab_shift) - (size_t)(start - base);
  if (s->index == ss->nslabs - 1) span -= HK_SS_TAIL_GUARD; /* the SuperSlab's last page */
  uint32_t bsize = hk_class_size[cls];
  s->free = NULL;
  s->local_free = NULL;
  s->used = 0;
  s->magic = hk_slab_magic(bsize);
  s->carved_key = 0;
  s->limit_key = (uint32_t)(span / bsize) * hk_slab_unit(s, bsize);
  s->tc_off = (uint16_t)(cls * sizeof(hk_tcache));
  s->state = HK_SLAB_ACTIVE;
  s->start = start;
  s->next = s->prev = NULL;
  hk_slab_sync_views(s);
}

void hk_slab_reset(hk_slab *s) {
  s->free = s->local_free = NULL;
  s->used = s->carved_key = s->limit_key = 0;
  s->magic = 0;
  s->state = HK_SLAB_UNUSED;
  s->next = s->prev = NULL;
  hk_slab_sync_views(s);
}

/* Walks at most `limit` links (a block freed twice can make a cycle). */
static bool hk_list_holds(const hk_block *b, const void *p, uint32_t limit) {
  uintptr_t sec = b != NULL ? hk_ss_secret(b) : 0; /* every block of the list is of one SuperSlab */
  for (; b != NULL && limit != 0; b = hk_block_step(b, sec, HK_BLOCK_KEY_SALT), limit--)
    if ((const void *)b == p) return true;
  return false;
}

uint32_t hk_slab_blocks(const hk_slab *s, uint32_t key) {
  return key == 0 ? 0 : key / hk_slab_unit(s, hk_slab_block_size(s));
}

uint32_t hk_slab_carved_bytes(const hk_slab *s) {
  return hk_slab_blocks(s, s->carved_key) * hk_slab_block_size(s);
}

bool hk_slab_confirm_empty(hk_slab *s) {
  uint32_t bsize = hk_slab_block_size(s), live = 0, carved = hk_slab_carved_bytes(s);
  uintptr_t sec = hk_ss_secret(s->start);
  for (uint32_t off = 0; off < carved; off += bsize) {
    const hk_block *b = (const hk_block *)(s->start + off);
    live += !hk_block_keyed(b, sec, HK_BLOCK_KEY_SALT);
  }
  if (HK_LIKELY(live == 0)) return true;
  s->used = live;
  hk_bad_free(s->start, "block already free (its slab emptied while blocks of it were still in use: one was freed twice)", 1);
  return false;
}

bool hk_slab_on_free_list(const hk_slab *s, const void *p) {
  uint32_t blocks = hk_slab_blocks(s, s->limit_key); /* the most a list holds */
  return hk_list_holds(s->local_free, p, blocks) || hk_list_holds(s->free, p, blocks);
}

/* Carving reached into pages not committed since the slab's last decommit:
 * count them (a slab rebound to another class carves over pages it already
 * holds from 0 again, which costs nothing). Slab starts are page-aligned. */
static void hk_slab_note_committed(const hk_slab *s, uint32_t carved) {
  _Atomic uint32_t *at = &hk_superslab_of(s)->committed[s->index];
  uint32_t extent = (uint32_t)hk_page_up(carved);
  uint32_t before = hk_load_relaxed(at);
  if (extent <= before) return;
  hk_store_relaxed(at, extent);
  hk_stat_commit(extent - before);
}

/* Link the n fresh blocks at `first` into a list; hardened builds link them
 * in a random order (Fisher-Yates), so the address of the next block a
 * program gets, and which blocks neighbour a given one, cannot be predicted
 * from the blocks it got before. */
static hk_block *hk_slab_link_fresh(uint8_t *first, uint32_t n, uint32_t bsize) {
  uintptr_t sec = hk_ss_secret(first); /* every listed block carries its key */
#ifdef HK_HARDENED
  uint16_t order[HK_CARVE_BYTES / 16 > HK_CARVE_MIN ? HK_CARVE_BYTES / 16 : HK_CARVE_MIN];
  for (uint32_t i = 0; i < n; i++) order[i] = (uint16_t)i;
  for (uint32_t i = n - 1; i > 0; i--) {
    uint32_t j = hk_harden_rand_below(i + 1);
    uint16_t t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  for (uint32_t i = 0; i < n; i++)
    hk_block_link((hk_block *)(first + (size_t)order[i] * bsize),
                  i + 1 < n ? (hk_block *)(first + (size_t)order[i + 1] * bsize) : NULL, sec, HK_BLOCK_KEY_SALT);
  return (hk_block *)(first + (size_t)order[0] * bsize);
#else
  hk_block *b = (hk_block *)first;
  for (uint32_t i = 1; i < n; i++) {
    hk_block *next = (hk_block *)((uint8_t *)b + bsize);
    hk_block_link(b, next, sec, HK_BLOCK_KEY_SALT);
    b = next;
  }
  hk_block_link(b, NULL, sec, HK_BLOCK_KEY_SALT);
  return (hk_block *)first;
#endif
}

bool hk_slab_refill(hk_slab *s) {
  if (s->free != NULL) return true;
  if (s->local_free != NULL) {
    s->free = s->local_free;
    s->local_free = NULL;
    return true;
  }
  if (s->carved_key >= s->limit_key) return false;
  uint32_t bsize = hk_slab_block_size(s), unit = hk_slab_unit(s, bsize);
  uint32_t carved = hk_slab_blocks(s, s->carved_key), left = hk_slab_blocks(s, s->limit_key) - carved;
  uint32_t n = HK_CARVE_BYTES / bsize;
  if (n < HK_CARVE_MIN) n = HK_CARVE_MIN;
  if (n > left) n = left;
  s->free = hk_slab_link_fresh(s->start + (size_t)carved * bsize, n, bsize);
  s->carved_key += n * unit;
  hk_slab_sync_views(s);
  hk_slab_note_committed(s, (carved + n) * bsize);
  return true;
}
