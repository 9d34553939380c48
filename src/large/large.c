/* large.c -- large allocations: map, register, unmap. */
#include "large/large.h"

#include <errno.h>
#include <stdint.h>

#include "core/addrmap.h"
#include "os/os.h"
#include "util/diag.h"
#include "util/stats.h"

void *hk_large_alloc(size_t size, size_t align) {
  if (size > PTRDIFF_MAX || align > ((size_t)1 << 40)) {
    hk_trace_failure(size, "size class threshold: larger than PTRDIFF_MAX");
    errno = ENOMEM;
    return NULL;
  }
  /* The user block starts `pad` bytes into a chunk-aligned mapping; the
   * header is the page below it. Whole chunks, so no other mapping of ours
   * shares an address-map entry; pages never touched cost no memory. */
  if (size == 0) size = 1; /* a unique block inside the mapping, usable >= 1 */
  size_t pad = align > HK_PAGE_SIZE ? align : HK_PAGE_SIZE;
  size_t need = pad + size;
  size_t map_size = (need + HK_SS_MASK) & ~(size_t)HK_SS_MASK;
  size_t map_align = align > HK_SS_SIZE ? align : HK_SS_SIZE;
  uint8_t *base = hk_os_map_aligned(map_size, map_align);
  if (base == NULL) return NULL;
  uint8_t *user = base + pad;
  hk_large *hdr = (hk_large *)(user - HK_PAGE_SIZE);
  hdr->magic = HK_LARGE_MAGIC;
  hdr->user = user;
  /* Usable: the request rounded to pages, not the chunk-rounded mapping, so
   * a program writing its whole usable size does not commit up to 2 MiB of
   * slack. realloc may still grow in place up to the mapping's end. */
  hdr->usable = (size + HK_PAGE_SIZE - 1) & ~(HK_PAGE_SIZE - 1);
  hdr->map_base = base;
  hdr->map_size = map_size;
  if (!hk_addrmap_set((uintptr_t)base, map_size, (uintptr_t)hdr | HK_MAP_LARGE)) {
    hk_addrmap_set((uintptr_t)base, map_size, 0);
    hk_os_unmap(base, map_size);
    errno = ENOMEM;
    return NULL;
  }
  hk_stat_add(HK_STAT_LARGE_LIVE, 1);
  return user;
}

static hk_large *hk_large_header(uintptr_t entry, const void *p) {
  hk_large *hdr = (hk_large *)(entry & ~HK_MAP_TAGS);
  if (HK_UNLIKELY(hdr->user != p)) {
    hk_bad_free(p, "inside a large block, not its start", 0);
    return NULL;
  }
  return hdr;
}

void hk_large_free(uintptr_t entry, void *p) {
  hk_large *hdr = hk_large_header(entry, p);
  if (hdr == NULL) return;
  void *base = hdr->map_base;
  size_t size = hdr->map_size;
  /* Leave a tombstone naming the old user pointer: a second free of exactly
   * that pointer is then recognisable as a double free. */
  hk_addrmap_set((uintptr_t)base, size, (uintptr_t)p | HK_MAP_DEAD);
  hk_os_unmap(base, size);
  hk_stat_add(HK_STAT_LARGE_LIVE, -1);
}

size_t hk_large_usable(uintptr_t entry, const void *p) {
  hk_large *hdr = hk_large_header(entry, p);
  return hdr == NULL ? 0 : hdr->usable;
}

bool hk_large_resize_in_place(void *p, size_t n) {
  uintptr_t e = hk_addrmap_get(p);
  if ((e & HK_MAP_LARGE) == 0) return false;
  hk_large *hdr = (hk_large *)(e & ~HK_MAP_TAGS);
  size_t room = (size_t)((uint8_t *)hdr->map_base + hdr->map_size - (uint8_t *)p);
  if (n > room) return false;
  size_t usable = (n + HK_PAGE_SIZE - 1) & ~(HK_PAGE_SIZE - 1);
  /* Shrinking: the pages past the new end go back to the OS now. */
  if (usable < hdr->usable) hk_os_decommit((uint8_t *)p + usable, hdr->usable - usable);
  hdr->usable = usable;
  return true;
}
