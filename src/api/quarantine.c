/* quarantine.c -- hardened builds: a per-thread FIFO of freed small blocks
 * (HAKMEM_QUARANTINE bytes of class sizes, default 0: off). A freed block
 * waits there, filled with HK_QUARANTINE_FILL between its two list words
 * and its canary's tail (which free marked freed, and which stays so),
 * until the blocks freed after it exceed the bound; only then does it go
 * to the thread cache (our own SuperSlab) or its owner (remote free), so a
 * read after free sees the fill instead of a new owner's data for that
 * long. On release the block's key (core/block.h: its link, bound to the
 * heap's secret) and every fill byte are checked: a write after free
 * aborts with "hakmem: use after free write at <address>".
 *
 * Owner-only (the heap's thread). A block of this heap's SuperSlabs still
 * counts as used by its slab while quarantined, so the slab and SuperSlab
 * cannot be released under it; its tail says freed, so a second free of
 * it, ours or a remote one, is a double free (and the quarantine key
 * recognises a second free that reaches hk_quarantine_put). Large blocks are not
 * quarantined: their pages go back to the OS or the large cache. */
#include "api/quarantine.h"

#ifdef HK_HARDENED

#include <string.h>

#include "core/block.h"
#include "core/harden.h"
#include "core/heap.h"
#include "core/sizeclass.h"
#include "remote/remote.h"
#include "util/diag.h"
#include "util/options.h"

#define HK_QUARANTINE_FILL 0xdf
#define HK_QUARANTINE_WORD 0xdfdfdfdfdfdfdfdfull

static size_t hk_room_of(const hk_block *b) { return hk_slab_block_size(hk_slab_of_block(b)); }

/* b's fill between its two words and its tail is intact, and the tail
 * still says freed; or abort naming the first byte written. */
static void hk_quarantine_verify(const hk_block *b, size_t room) {
  const uint8_t *p = (const uint8_t *)b;
  for (size_t off = 2 * sizeof(uint64_t); off < room - 8; off += sizeof(uint64_t)) {
    uint64_t w;
    memcpy(&w, p + off, sizeof w);
    if (HK_LIKELY(w == HK_QUARANTINE_WORD)) continue;
    for (size_t i = 0; i < sizeof w; i++)
      if (p[off + i] != HK_QUARANTINE_FILL) hk_fatal("use after free write", p + off + i);
  }
  if (!hk_canary_says_freed(p, room)) hk_fatal("use after free write", p + room - 8);
}

/* The oldest block leaves: checked, then freed for real. */
static void hk_quarantine_release_head(hk_heap *h) {
  hk_block *b = h->q_head;
  if (HK_UNLIKELY(!hk_block_keyed(b, hk_heap_secret(h), HK_QUARANTINE_KEY_SALT))) hk_fatal("use after free write", b);
  h->q_head = hk_block_next(b, hk_heap_secret(h));
  if (h->q_head == NULL) h->q_tail = NULL;
  size_t room = hk_room_of(b);
  h->q_bytes -= room;
  hk_quarantine_verify(b, room);
  hk_superslab *ss = hk_superslab_of(b);
  /* Ours now (maybe by adoption since it came in): our thread cache. */
  if (hk_superslab_owner(ss) == h) hk_heap_free_tc(h, hk_slab_of_block(b), b);
  else hk_remote_free(h, ss, b);
}

void hk_quarantine_put(hk_heap *h, void *p, size_t room) {
  hk_block *b = p;
  uintptr_t sec = hk_heap_secret(h);
  if (HK_UNLIKELY(hk_block_keyed(b, sec, HK_QUARANTINE_KEY_SALT))) { /* only ours carry this heap's key */
    hk_bad_free(p, "block already free (it is in the quarantine)", 1);
    return;
  }
  memset((uint8_t *)p + 2 * sizeof(uint64_t), HK_QUARANTINE_FILL, room - 3 * sizeof(uint64_t)); /* not the tail */
  hk_block_link(b, NULL, sec, HK_QUARANTINE_KEY_SALT);
  if (h->q_tail != NULL) { /* its words are rewritten: check them first */
    if (HK_UNLIKELY(!hk_block_keyed(h->q_tail, sec, HK_QUARANTINE_KEY_SALT)))
      hk_fatal("use after free write", h->q_tail);
    hk_block_link(h->q_tail, b, sec, HK_QUARANTINE_KEY_SALT);
  } else {
    h->q_head = b;
  }
  h->q_tail = b;
  h->q_bytes += room;
  while (h->q_bytes > hk_opt_get(quarantine_bytes) && h->q_head != NULL) hk_quarantine_release_head(h);
}

void hk_quarantine_flush(hk_heap *h) {
  while (h->q_head != NULL) hk_quarantine_release_head(h);
  h->q_bytes = 0;
}

#else
typedef int hk_quarantine_unused; /* ISO C: a translation unit is not empty */
#endif /* HK_HARDENED */
