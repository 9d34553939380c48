/* os.h -- the only interface to the kernel: aligned reservations and their
 * release. Every function keeps errno intact, on success and on failure
 * (POSIX: free keeps errno; a malloc that succeeds after a failed attempt
 * must not leave ENOMEM behind): a failure returns NULL/false and records
 * why for the trace, and whoever fails the program's request sets ENOMEM.
 *
 * Two kinds of mapping. Reservations (hk_os_map, hk_os_map_aligned*) are
 * MAP_NORESERVE: address space that is touched sparsely or only in part
 * (SuperSlab arenas, address-map leaves, heap batches) is not charged
 * against the overcommit limit up front. A block's memory (hk_os_map_block,
 * large allocations) is charged: the kernel's overcommit policy judges it at
 * the call, as it does glibc's mmap, so malloc(1 << 45) fails with ENOMEM
 * there instead of the process being killed when it touches the pages.
 *
 * Address-space pressure: when a mapping fails, the hook set with
 * hk_os_set_pressure_hook (the caches give back what they hold) runs once
 * and the mapping is retried if it gave something back; so every mapping
 * site, not only the large and SuperSlab paths, gets held-back address
 * space under RLIMIT_AS before it fails. */
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
/* The memory of a block handed to the program: `size` bytes (a page
 * multiple) aligned to `align`, charged against the overcommit limit (see
 * above). */
void *hk_os_map_block(size_t size, size_t align);
/* Run `hook` when a mapping fails; retry the mapping once when it returns
 * true. Not called again from the hook's own mappings. */
void hk_os_set_pressure_hook(bool (*hook)(void));
void hk_os_unmap(void *p, size_t size);
/* Give the pages of [p, p+size) back to the OS, keeping the range mapped.
 * True when they are gone: reads after this see zeros. False when the OS
 * refused (a seccomp filter, an injected failure): the pages keep their
 * contents, so a caller that wants zeros must clear them itself. p and size
 * are page multiples. */
bool hk_os_decommit(void *p, size_t size);
/* Ask for transparent huge pages on [p, p+size) (MADV_HUGEPAGE; a no-op
 * where the kernel has none). Applies to the whole mapping (VMA) range. */
void hk_os_hugepage(void *p, size_t size);
/* Copy n bytes from src, which another thread may unmap at any moment, to
 * dst without faulting: false when src is not (all) mapped. Through the
 * kernel (process_vm_readv on this process), so a syscall per call: only
 * for queries about memory the caller does not own (hak_owns). Where the
 * call is not allowed (a seccomp filter, a kernel without it) it falls
 * back to a plain copy, which faults as before if src is gone. */
bool hk_os_read_safe(void *dst, const void *src, size_t n);
/* Grow the mapping [old, old+old_size) to new_size > old_size bytes, pages
 * and contents kept. dest == NULL: in place only (the address space after
 * it must be free). Otherwise move it to dest, which must be a mapping of
 * new_size bytes from hk_os_map_block: it is replaced (MREMAP_FIXED), the old
 * range is unmapped. NULL on failure with old unchanged; dest is then still
 * ours and mapped, unless the kernel had released it and another mapping
 * took its place: then *dest_lost is set and dest must not be touched
 * (its entries, its pages) again. dest_lost may be NULL when dest is. */
void *hk_os_remap(void *old, size_t old_size, size_t new_size, void *dest, bool *dest_lost);
/* Grow the mapping [old, old+old_size) to new_size > old_size bytes, pages
 * and contents kept, wherever the kernel finds room (MREMAP_MAYMOVE: in
 * place when the address space after it is free, else moved, the old range
 * unmapped). For a mapping nobody else refers to. The new start, or NULL
 * with old unchanged. */
void *hk_os_remap_anywhere(void *old, size_t old_size, size_t new_size);

/* Milliseconds of a coarse monotonic clock (vDSO, no syscall): for the
 * decommit delay, never for anything that needs precision. */
uint64_t hk_os_now_ms(void);

/* CPUs this process may run on (sched_getaffinity; 1 if that fails). */
unsigned hk_os_ncpus(void);

/* Test hook: make the next mappings fail with probability per_million/1e6
 * (0 turns injection off). Used by the fault-injection tests. */
void hk_os_inject_failures(unsigned per_million);
/* Test hook: the same for hk_os_decommit (madvise), which then returns
 * false and leaves the pages as they were. */
void hk_os_inject_decommit_failures(unsigned per_million);

#endif /* HK_OS_H */
