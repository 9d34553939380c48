/* os.h -- the only interface to the kernel: aligned reservations and their
 * release. Every function keeps errno intact on success; on failure it
 * returns NULL/false with errno = ENOMEM and records why for the trace. */
#ifndef HK_OS_H
#define HK_OS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Map `size` bytes (a page multiple) of zeroed read-write memory at an
 * address aligned to `align` (a power of two >= the page size). */
void *hk_os_map_aligned(size_t size, size_t align);
/* As hk_os_map_aligned, for address space the caller counts itself as it
 * hands parts of it out (hk_stat_mapped), and its unmapping. */
void *hk_os_reserve_aligned(size_t size, size_t align);
void hk_os_unreserve(void *p, size_t size);
/* The same, additionally choosing bit `log2(align)` of the address: the
 * result is aligned to `align` and ((addr / align) & 1) == parity. */
void *hk_os_map_aligned_parity(size_t size, size_t align, unsigned parity);
/* Map `size` bytes anywhere (page multiple), zeroed. */
void *hk_os_map(size_t size);
void hk_os_unmap(void *p, size_t size);
/* Give the pages of [p, p+size) back to the OS, keeping the range mapped
 * (reads after this see zeros). p and size are page multiples. */
void hk_os_decommit(void *p, size_t size);
/* Ask for transparent huge pages on [p, p+size) (MADV_HUGEPAGE; a no-op
 * where the kernel has none). Applies to the whole mapping (VMA) range. */
void hk_os_hugepage(void *p, size_t size);
/* Grow the mapping [old, old+old_size) to new_size > old_size bytes, pages
 * and contents kept. dest == NULL: in place only (the address space after
 * it must be free). Otherwise move it to dest, which must be a mapping of
 * new_size bytes from hk_os_map*: it is replaced (MREMAP_FIXED), the old
 * range is unmapped. NULL on failure with old unchanged; dest is then still
 * ours and mapped, unless the kernel had released it and another mapping
 * took its place: then *dest_lost is set and dest must not be touched
 * (its entries, its pages) again. dest_lost may be NULL when dest is. */
void *hk_os_remap(void *old, size_t old_size, size_t new_size, void *dest, bool *dest_lost);

/* Milliseconds of a coarse monotonic clock (vDSO, no syscall): for the
 * decommit delay, never for anything that needs precision. */
uint64_t hk_os_now_ms(void);

/* CPUs this process may run on (sched_getaffinity; 1 if that fails). */
unsigned hk_os_ncpus(void);

/* Test hook: make the next mappings fail with probability per_million/1e6
 * (0 turns injection off). Used by the fault-injection tests. */
void hk_os_inject_failures(unsigned per_million);

#endif /* HK_OS_H */
