/* hakmem.h -- HAKMEM's public interface.
 *
 * libhakmem.a provides exactly these hak_-prefixed functions and overrides
 * nothing; libhakmem.so provides them too and additionally exports the whole
 * malloc family (malloc, free, ...) so that LD_PRELOAD or -lhakmem replaces
 * the C library's allocator. Semantics follow glibc 2.36 as laid down in
 * CONTRACT.md.
 */
#ifndef HAKMEM_H
#define HAKMEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HAK_API __attribute__((visibility("default")))

/* The malloc family, prefixed. */
HAK_API void *hak_malloc(size_t size) __attribute__((malloc, alloc_size(1)));
HAK_API void hak_free(void *p);
HAK_API void *hak_calloc(size_t n, size_t size) __attribute__((malloc, alloc_size(1, 2)));
HAK_API void *hak_realloc(void *p, size_t size) __attribute__((alloc_size(2)));
HAK_API void *hak_reallocarray(void *p, size_t n, size_t size);
HAK_API int hak_posix_memalign(void **out, size_t alignment, size_t size);
HAK_API void *hak_aligned_alloc(size_t alignment, size_t size) __attribute__((malloc));
HAK_API void *hak_memalign(size_t alignment, size_t size) __attribute__((malloc));
HAK_API void *hak_valloc(size_t size) __attribute__((malloc));
HAK_API void *hak_pvalloc(size_t size) __attribute__((malloc));
HAK_API size_t hak_usable_size(const void *p);
HAK_API int hak_malloc_trim(size_t pad);
/* A table of the statistics (hak_stats_get) on stderr, written in pieces
 * from a stack buffer: no allocation, no truncation. */
HAK_API void hak_malloc_stats(void);
HAK_API int hak_mallopt(int param, int value);

/* True when p lies in memory HAKMEM manages: a SuperSlab, or the usable
 * bytes of a live large block (any pointer, never faults; O(1) but for a
 * pointer outside SuperSlabs, which costs a word per 128 KiB of the largest
 * large block). */
HAK_API bool hak_owns(const void *p);

/* The library's version, "MAJOR.MINOR.PATCH" (the soname carries MAJOR). */
HAK_API const char *hak_version(void);

/* Give this thread's cached frees back to their slabs (so their pages can
 * be decommitted while the thread sleeps), flush its remote-free outbox and
 * reclaim the remote frees that other threads sent to it. Threads that go
 * idle after freeing may call it; the reclaim also runs on every allocation
 * slow path and the outbox flush on every 8th (malloc takes one at least
 * every 256 hits of its caches), and all of it at thread exit. A thread that
 * blocks for good without calling it keeps its cached frees (at most 32 KiB
 * per size class) out of their slabs until it exits. It also adds the
 * thread's statistics to the process-wide ones (hak_stats_t; one walk of
 * the thread's SuperSlabs). */
HAK_API void hak_thread_flush(void);

/* Return to the OS everything that can be returned now: flush and reclaim
 * as above, retire this thread's empty SuperSlabs and the abandoned ones
 * that hold nothing, decommit empty slabs, reclaim what ck_epoch grace
 * periods allow, and unmap the caches of empty SuperSlabs and large
 * mappings. `force` is accepted for compatibility; every call does all of
 * it. malloc_trim (exported by libhakmem.so) is this function. Never call it
 * on a malloc/free path: it may poll the epoch for a while. */
HAK_API void hak_collect(bool force);

/* Size classes and remote-free batch-size buckets in hak_stats_t. */
#define HAK_STATS_CLASSES 48
#define HAK_STATS_HIST    8 /* bucket i: batches of 2^i to 2^(i+1)-1 blocks; the last, 128 and more */

/* One size class: every block of it has block_size usable bytes. A block
 * freed by another thread counts as freed when its owner takes it back
 * (on its slow paths, hak_thread_flush, or adoption after the owner exited). */
typedef struct hak_class_stats {
  size_t block_size;
  uint64_t allocs;     /* blocks handed out (malloc, calloc, realloc, aligned) */
  uint64_t frees;      /* blocks that came back */
  int64_t live;        /* allocs - frees */
  int64_t live_bytes;  /* live * block_size */
} hak_class_stats_t;

/* Process-wide counters. Each thread counts in its own heap, never on a
 * shared line, and adds its counts to these at its exit and when it calls
 * hak_thread_flush, hak_collect, hak_stats_get, hak_stats_json or
 * malloc_stats/mallinfo2 (which merge the calling thread first). So the
 * per-class figures include every exited thread and the caller exactly;
 * other running threads as of their last merge. Fields are read without
 * stopping other threads and may disagree by in-flight work. */
typedef struct hak_stats {
  size_t mapped_bytes;         /* address space mapped: SuperSlabs as claimed, large
                                  mappings, metadata (reserved, not committed) */
  size_t peak_mapped_bytes;    /* high-water mark of mapped_bytes */
  size_t superslabs_mapped;    /* SuperSlabs ever mapped (fresh mappings only) */
  size_t superslabs_abandoned; /* SuperSlabs abandoned by exiting threads */
  size_t superslabs_adopted;   /* abandoned SuperSlabs taken over by a thread */
  size_t large_live;           /* large allocations currently mapped */
  size_t heaps_created;        /* thread heaps ever created (not reused) */
  size_t heaps_reused;         /* thread starts served by a dead thread's heap */
  size_t heaps_unmapped;       /* dead threads' heaps given back to the OS */
  size_t remote_chains_pushed; /* remote-free chains (one CAS each); each live */
  size_t remote_blocks_pushed; /* thread's last < 256 pushes are not counted yet */
  size_t invalid_frees;        /* frees of pointers that were not ours */
  size_t superslabs_retired;   /* empty SuperSlabs retired through ck_epoch */
  size_t superslabs_reused;    /* SuperSlabs served from the cache of retired ones */
  size_t superslabs_unmapped;  /* retired SuperSlabs given back to the OS */
  size_t epoch_records;        /* ck_epoch records ever registered (bounded by
                                  the peak number of threads, rounded up to a page) */
  size_t slabs_purged_by_others; /* empty slabs decommitted by a thread other than
                                    their owner (an idle owner's, or hak_collect) */
  /* Memory, as opposed to address space: the pages slabs have carved since
   * they were last decommitted, SuperSlab header pages, and live large
   * blocks (usable bytes and their header page). */
  size_t committed_bytes;
  size_t peak_committed_bytes;
  size_t decommitted_bytes;    /* committed bytes ever given back (madvise or munmap) */
  /* Large blocks (their own mappings). */
  size_t large_allocs;
  size_t large_frees;
  size_t large_live_bytes;     /* usable bytes of the live ones */
  size_t large_cached_bytes;   /* address space of freed mappings kept for reuse */
  /* Remote frees: chains pushed by senders and queues drained by owners, by
   * size (HAK_STATS_HIST), and the blocks the owners took back. */
  size_t remote_sent_hist[HAK_STATS_HIST];
  size_t remote_recv_hist[HAK_STATS_HIST];
  size_t remote_blocks_received;
  /* Size classes and their sums. */
  uint64_t allocs;
  uint64_t frees;
  int64_t live_blocks;
  int64_t live_bytes;
  hak_class_stats_t classes[HAK_STATS_CLASSES];
  /* The heap profiler's side table (HAKMEM_PROF=1; all 0 when off): its
   * mapping (the bound), live samples, distinct stacks, and samples not
   * taken because it was full; and the freed sampled mappings kept for the
   * next samples (at most 512 KiB a thread, and 8 MiB shared). */
  size_t prof_table_bytes;
  size_t prof_samples_live;
  size_t prof_stacks;
  size_t prof_samples_dropped;
  size_t prof_stash_bytes;
} hak_stats_t;

/* Heap profiling (HAKMEM_PROF=1; docs/PROFILING.md). hak_prof_dump writes
 * the live sampled heap, scaled to estimated totals, in the heap-profile
 * text format of google-pprof and jeprof; hak_prof_dump_folded writes
 * folded stacks ("outer;inner;site bytes") for flame graphs. In path, %p
 * stands for the process id. Return 0, or -1 with errno (ENOTSUP when
 * profiling is off; the file's open or write error). Never allocate. */
HAK_API int hak_prof_dump(const char *path);
HAK_API int hak_prof_dump_folded(const char *path);

/* Merges the calling thread's counts, then fills *out. */
HAK_API void hak_stats_get(hak_stats_t *out);

/* The figures of hak_stats_get (and of the malloc_stats table) as one JSON
 * object, written to buf like snprintf: at most len bytes including the
 * terminating NUL (nothing when len is 0; buf may then be NULL). Returns
 * the length of the whole JSON text, excluding the NUL: a return >= len
 * means it was truncated, and len = return + 1 holds it. Never allocates. */
HAK_API int hak_stats_json(char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif /* HAKMEM_H */
