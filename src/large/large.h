/* large.h -- allocations above the largest size class: each in its own
 * chunk-aligned mapping, header in the page below the user pointer, every
 * chunk of the mapping registered in the address map; freed mappings wait
 * in a bounded cache (see large.c); growth remaps instead of copying. */
#ifndef HK_LARGE_H
#define HK_LARGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hk_types.h"

/* `align` is a power of two >= 16. NULL + ENOMEM when the size cannot be
 * represented or the OS refuses. Fresh mappings are zeroed. */
void *hk_large_alloc(size_t size, size_t align);
/* The same, zeroed (a mapping reused from the cache is cleared). */
void *hk_large_calloc(size_t size);
/* The cache of freed mappings: decommit those cached longer than the delay,
 * or (all) unmap every one. Returns how many it touched. */
size_t hk_large_cache_purge(bool all);
/* In a fork child: release the cache's purge try-flag a parent thread held. */
void hk_large_fork_child(void);
/* `entry` is p's address-map entry (tagged HK_MAP_LARGE). Handles interior
 * pointers through the bad-free policy. */
void hk_large_free(uintptr_t entry, void *p);
/* Usable size of a large block, 0 (after the bad-free policy) if p is not
 * the block's start. */
size_t hk_large_usable(uintptr_t entry, const void *p);

/* realloc of a large block p (already validated) to n > 0 bytes without
 * moving: true when n fits its mapping. The usable size becomes n rounded to
 * pages; pages given up by a shrink are returned to the OS. */
bool hk_large_resize_in_place(void *p, size_t n);

/* realloc of a large block p (already validated) to n bytes past its
 * mapping's end, without copying: the mapping grows in place or moves
 * (mremap). The new pointer (p when grown in place; when moved, p is
 * released as by free), or NULL with p untouched and errno unchanged when that cannot be
 * done (over-aligned block, the OS refuses): the caller copies. */
void *hk_large_grow(void *p, size_t n);

/* Address space of the freed mappings the cache holds (statistics). */
size_t hk_large_cached_bytes(void);

#endif /* HK_LARGE_H */
