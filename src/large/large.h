/* large.h -- allocations above the largest size class: each in its own
 * mapping of whole pages, header HK_LARGE_HDR bytes below the user pointer,
 * found through the page map (core/addrmap.h); freed mappings wait in a
 * bounded cache (see large.c); growth remaps instead of copying. */
#ifndef HK_LARGE_H
#define HK_LARGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hk_types.h"

/* The usable size of a large block of n > 0 bytes at p: to the page
 * boundary after its last byte, where its mapping ends (hk_large_alloc_impl,
 * hk_large_resize_in_place). The checked sized delete (api/operator_new.inc)
 * compares against it. */
HK_INLINE size_t hk_large_usable_at(const void *p, size_t n) {
  return hk_page_up((uintptr_t)p + n) - (uintptr_t)p;
}

/* The header of p, a live large block known to be one (just allocated,
 * or validated): the page of p - HK_LARGE_HDR (large.c). For the
 * profiler's `sampled` mark (prof/sample.c). */
HK_INLINE hk_large *hk_large_hdr(const void *p) {
  return (hk_large *)(((uintptr_t)p - HK_LARGE_HDR) & ~(uintptr_t)(HK_PAGE_SIZE - 1));
}

/* `align` is a power of two >= 16. NULL + ENOMEM when the size cannot be
 * represented or the OS refuses. Fresh mappings are zeroed. */
void *hk_large_alloc(size_t size, size_t align);
/* The same, zeroed (a mapping reused from the cache is cleared). */
void *hk_large_calloc(size_t size);
/* A profiler's sample of size bytes (prof/sample.c): as hk_large_alloc, or
 * hk_large_calloc when zero, first trying the calling thread's stash of
 * freed sampled mappings, then the stashes' shared spare (large.c). */
void *hk_large_alloc_sample(size_t size, size_t align, bool zero);
/* Empty the calling thread's stash: into the spare as far as it has room
 * when `to_spare` (thread teardown), the rest into the cache, or unmapped
 * when that has no room (hak_collect, an address-space shortage). */
void hk_large_stash_flush(bool to_spare);
/* Empty the spare into the cache (or unmap what does not fit): hak_collect,
 * and with `wait` false an address-space shortage, which skips it when the
 * profiler's lock is held (the shortage may have struck under it). */
void hk_large_spare_flush(bool wait);
/* The cache of freed mappings: decommit those cached longer than the delay,
 * or (all) unmap every one. Returns how many it touched. */
size_t hk_large_cache_purge(bool all);
/* In a fork child: release the cache's purge try-flag a parent thread held. */
void hk_large_fork_child(void);
/* Free p if it is a live large block's start; report it through the
 * bad-free policy if it is a released one's or lies in a live one's header
 * page. False (nothing done) when p is none of these: the caller goes on. */
bool hk_large_free(void *p);
/* Usable size of the live large block starting at p; 0 when p is not one
 * (nothing reported). Never touches memory that is not a live block's. */
size_t hk_large_usable(const void *p);
/* True when p lies in a live large block's usable bytes (hak_owns). Looks
 * back through the page map at most as far as the largest block ever
 * (a word per 128 KiB); copies the header of the live block it finds
 * there through the kernel, so a block freed and unmapped meanwhile by
 * another thread makes it say no instead of faulting. */
bool hk_large_covers(const void *p);

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
