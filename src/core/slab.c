/* slab.c -- binding slabs to classes and carving their blocks lazily. */
#include "core/slab.h"

#include <string.h>

#include "core/sizeclass.h"

hk_slab hk_slab_empty;

void hk_slab_init(hk_superslab *ss, hk_slab *s, unsigned cls) {
  uint8_t *base = (uint8_t *)ss + ((size_t)s->index << ss->slab_shift);
  uint8_t *start = s->index == 0 ? (uint8_t *)ss + HK_SS_HEADER : base;
  size_t span = ((size_t)1 << ss->slab_shift) - (size_t)(start - base);
  uint32_t bsize = hk_class_size[cls];
  s->free = NULL;
  s->local_free = NULL;
  s->used = 0;
  s->reserved = 0;
  s->bsize = bsize;
  s->capacity = (uint32_t)(span / bsize);
  /* floor(2^32 / bsize) + 1: exact block index for every offset in a slab
   * (offset * error stays below 2^32 since capacity * bsize <= 2^19). */
  s->inv = (uint32_t)((((uint64_t)1 << 32) / bsize) + 1);
  s->class_idx = (uint8_t)cls;
  s->state = HK_SLAB_ACTIVE;
  s->start = start;
  s->next = s->prev = NULL;
}

void hk_slab_reset(hk_slab *s) {
#ifdef HK_HARDENED
  memset(hk_slab_bitmap(s), 0, HK_BITMAP_BYTES);
#endif
  s->free = s->local_free = NULL;
  s->used = s->reserved = s->capacity = 0;
  s->bsize = 0;
  s->inv = 0;
  s->state = HK_SLAB_UNUSED;
  s->next = s->prev = NULL;
}

static bool hk_list_holds(const hk_block *b, const void *p, uint32_t limit) {
  for (; b != NULL && limit != 0; b = b->next, limit--)
    if ((const void *)b == p) return true;
  return false;
}

bool hk_slab_on_free_list(const hk_slab *s, const void *p) {
  return hk_list_holds(s->local_free, p, s->capacity) || hk_list_holds(s->free, p, s->capacity);
}

bool hk_slab_refill(hk_slab *s) {
  if (s->free != NULL) return true;
  if (s->local_free != NULL) {
    s->free = s->local_free;
    s->local_free = NULL;
    return true;
  }
  if (s->reserved >= s->capacity) return false;
  uint32_t n = HK_CARVE_BYTES / s->bsize;
  if (n < HK_CARVE_MIN) n = HK_CARVE_MIN;
  if (n > s->capacity - s->reserved) n = s->capacity - s->reserved;
  uint8_t *first = s->start + (size_t)s->reserved * s->bsize;
  uint8_t *p = first;
  for (uint32_t i = 1; i < n; i++, p += s->bsize) ((hk_block *)p)->next = (hk_block *)(p + s->bsize);
  ((hk_block *)p)->next = NULL;
  s->free = (hk_block *)first;
  s->reserved += n;
  return true;
}
