/* hk_config.h -- the allocator's compile-time constants, in one place.
 * Sizes are tunables, not invariants: change them when measurement says so. */
#ifndef HK_CONFIG_H
#define HK_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define HK_LIKELY(x)   __builtin_expect(!!(x), 1)
#define HK_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define HK_NOINLINE    __attribute__((noinline))
#define HK_COLD        __attribute__((cold, noinline))
#define HK_INLINE      static inline __attribute__((always_inline))
#define HK_CACHE_LINE  64
#define HK_PAGE_SIZE   ((size_t)4096)
/* n rounded up to whole pages (wraps to 0 past SIZE_MAX - 4095: callers check). */
HK_INLINE size_t hk_page_up(size_t n) { return (n + HK_PAGE_SIZE - 1) & ~(HK_PAGE_SIZE - 1); }

/* A SuperSlab is SS_SIZE bytes at an SS_SIZE-aligned address; its header
 * occupies the first HK_SS_HEADER bytes: the first page, and in hardened
 * builds also a guard page (PROT_NONE) between it and the first block. Hardened builds
 * also keep the SuperSlab's last page as a guard (HK_SS_TAIL_GUARD): a
 * linear overflow or underflow from any block stops at a guard page before
 * it reaches a header, this SuperSlab's or the next one's in the region. */
#define HK_SS_SHIFT   21
#define HK_SS_SIZE    ((size_t)1 << HK_SS_SHIFT)
#define HK_SS_MASK    (HK_SS_SIZE - 1)
#ifdef HK_HARDENED
#define HK_SS_GUARD   HK_PAGE_SIZE /* offset of the header's guard page */
#define HK_SS_HEADER  (HK_SS_GUARD + HK_PAGE_SIZE)
#define HK_SS_TAIL_GUARD HK_PAGE_SIZE
#else
#define HK_SS_HEADER  HK_PAGE_SIZE
#define HK_SS_TAIL_GUARD ((size_t)0)
#endif

/* Two kinds of SuperSlab, differing only in slab size: small blocks live in
 * 64 KiB slabs (32 per SuperSlab), medium blocks in 512 KiB slabs (4). */
#define HK_KIND_SMALL        0
#define HK_KIND_MEDIUM       1
#define HK_KINDS             2
#define HK_SLAB_SHIFT_SMALL  16
#define HK_SLAB_SHIFT_MEDIUM 19
#define HK_MAX_SLABS         32
/* Slab descriptors are indexed by 64 KiB granule, whatever the kind, so
 * free finds the one for p with one shift (hk_slab_view_of). */
#define HK_GRANULE_SHIFT     16
#define HK_SMALL_KIND_MAX    8192      /* largest block in a small-kind slab */

/* Size classes: 16-byte steps to 128 B, then 4 per power of two to 128 KiB. */
#define HK_NCLASSES      48
#define HK_MAX_SMALL     ((size_t)128 * 1024) /* larger: its own mapping */
/* Sizes served by malloc's inlined table lookup (hk_class_table: 4 KiB).
 * At 4 KiB, a program whose sizes straddle it (random 1-32 KiB churn) had
 * malloc mispredict the split one time in ten. */
#define HK_TABLE_MAX     32768

/* Lazy carving hands out at most this many bytes of fresh blocks at a time. */
#define HK_CARVE_BYTES   4096
#define HK_CARVE_MIN     4

/* The owned-chunk cache (hk_heap.own): direct-mapped by chunk number, so
 * a heap of up to this many SuperSlabs from one region (consecutive chunks)
 * has every one cached. 8 bytes each: a SuperSlab's full address, so no
 * pointer, however wild, can alias an entry. */
#define HK_OWN_SLOTS     64
#define HK_OWN_NONE      UINTPTR_MAX /* no SuperSlab address (2 MiB-aligned) equals it */

/* Thread cache (hk_tcache): per class at most HK_TC_BYTES of freed blocks,
 * and between HK_TC_MIN and HK_TC_MAX of them. A flush keeps the newer half.
 * In a balanced random churn a class's cache walks between empty and full,
 * so flushes come about every (cap/2)^2 operations of the class, and a
 * malloc that finds the cache empty pops the slab's list, whose blocks went
 * back to the slab long ago and miss the cache. 32 KiB gave the 4-32 KiB
 * classes caches of 2 to 8 blocks, and random churn over 1-32 KiB ran at
 * 0.54x tcmalloc; 128 KiB (16-32 blocks) made that lane 1.4x faster and
 * lowered its peak RSS (fewer slabs touched). It bounds what one thread
 * keeps out of its slabs to 4.0 MiB over the 48 classes, tcmalloc's own
 * per-thread cache bound (kMaxThreadCacheSize). */
#ifndef HK_TC_BYTES
#define HK_TC_BYTES      (128 * 1024)
#endif
#ifndef HK_TC_MIN
#define HK_TC_MIN        2
#endif
#ifndef HK_TC_MAX
#define HK_TC_MAX        64
#endif
/* A class whose cache overflows borrows room from its heap's growth budget
 * before it flushes (doubling its size, up to HK_TC_GROW_MAX blocks), and
 * the round-robin trim takes half the loan back from a class that did not
 * overflow since its last visit. Random churn over 1-32 KiB keeps about 70
 * blocks live in each of the 20-32 KiB classes, whose fixed caches hold 4
 * to 6: they ran empty and popped cold slab lists (0.74x tcmalloc). So the
 * per-thread bound is 4.0 MiB of fixed caches plus HK_TC_GROW_BYTES, lent
 * only to classes that overflow while serving mallocs, and taken back from
 * those that go idle. 2 MiB still left that churn's classes popping cold
 * slab lists: 8 MiB made it 1.09x faster (65.1 -> 71.4 M ops/s, tcmalloc
 * 74.1; random_mixed ws=8192 +4 %, t=2 16-32768 B 90 % remote +8 %, peak
 * RSS unchanged in every lane; 16 MiB gained nothing more). tcmalloc lets
 * one thread's cache grow to 4 MiB of its 32 MiB process-wide budget. */
#ifndef HK_TC_GROW_BYTES
#define HK_TC_GROW_BYTES (8u << 20)
#endif
#ifndef HK_TC_GROW_MAX
#define HK_TC_GROW_MAX   1024
#endif
/* Every HK_TC_TICK thread-cache hits malloc takes its slow path once (the
 * ticker), so the outbox, remote frees and the purge clock never wait on a
 * refill that the caches make rare; each tick also visits one class's
 * cache, round robin, and trims its older half if the class had no cache
 * hit since the last visit, so a class the thread stopped using gives its
 * blocks back within HK_NCLASSES ticks of each halving. */
#ifndef HK_TC_TICK
#define HK_TC_TICK       256
#endif

/* Sender-side batching (the outbox): direct-mapped slots, each a chain bound
 * for one SuperSlab, pushed when it holds HK_OUTBOX_CHAIN blocks; the whole
 * outbox is pushed every HK_OUTBOX_FLUSH_TICKS allocation slow paths and
 * whenever it holds HK_OUTBOX_UNITS units, a block of a small SuperSlab (at
 * most 8 KiB) being one unit and one of a medium SuperSlab (at most 128 KiB)
 * HK_OUTBOX_MEDIUM_UNITS. What waits in one thread's outbox is so bounded in
 * bytes: 256 * 8 KiB = 2 MiB of small blocks, 16 * 128 KiB = 2 MiB of
 * medium ones, however many SuperSlabs they go to. Eight slots, pushed at
 * every slow path, made chains of 2 to 11 blocks in the mt_remote benchmark
 * (a CAS and a section at the sender and a notification at the owner per
 * chain): a receiving thread frees blocks of a dozen or more of their
 * owner's SuperSlabs in turn, and eight slots evicted a chain on most frees.
 * Chains of up to 128 rather than 32 (the byte bound above is unchanged):
 * fewer pushes and notifications, and longer runs for the prefetch hints;
 * mt_remote at 8 threads on 2 cores 18.6 -> 21.2 M ops/s, prodcons 16-1024
 * 10.5 -> 15.2 (9 runs; jemalloc 15.3), the 2-thread lanes within noise
 * (16-2048 at 90 % 31.1 -> 30.4, at 50 % 34.0 -> 33.9). */
#define HK_OUTBOX_SLOTS        32
#define HK_OUTBOX_CHAIN        128
#define HK_OUTBOX_UNITS        256
#define HK_OUTBOX_MEDIUM_UNITS 16
#define HK_OUTBOX_FLUSH_TICKS  8

/* Remote chains carry a prefetch hint (core/block.h, hk_chain_hint): each
 * block names the block pushed HK_REMOTE_AHEAD pushes before it into its
 * outbox slot, that many places further down the owner's walk, so
 * the owner's reclaim has that many blocks' first loads in flight instead of
 * one. Without it, each block of a chain was a cache miss that the next one
 * waited on: 40% of mt_remote at 8 threads on 2 cores was that one load. */
#define HK_REMOTE_AHEAD        16
/* The owner's pending walk reclaims the chains of up to HK_RECLAIM_WAYS
 * SuperSlabs side by side (remote/remote.c), for as many of those loads in
 * flight where chains are too short for the hints (medium blocks); 4 and 16
 * measured the same as 8. */
#define HK_RECLAIM_WAYS        8

/* Statistics: remote-free batch sizes in a histogram whose bucket i counts
 * batches of 2^i to 2^(i+1)-1 blocks, the last bucket everything larger. */
#define HK_STAT_HIST_BUCKETS 8

/* Pending set: an owner heap keeps HK_PEND_BUCKETS buckets of SuperSlabs,
 * marked in a two-level bitmap (one summary word over HK_PEND_WORDS words). */
#define HK_PEND_WORDS    16
#define HK_PEND_BUCKETS  (HK_PEND_WORDS * 64)

/* Address map: 47-bit user address space in SS_SIZE chunks, two levels. */
#define HK_VA_BITS       47
#define HK_MAP_L2_BITS   13
#define HK_MAP_L1_BITS   (HK_VA_BITS - HK_SS_SHIFT - HK_MAP_L2_BITS)
#define HK_MAP_L1_SIZE   ((size_t)1 << HK_MAP_L1_BITS)
#define HK_MAP_L2_SIZE   ((size_t)1 << HK_MAP_L2_BITS)

/* How many abandoned SuperSlabs one allocation slow path may look at:
 * a quarter of those waiting, clamped to these bounds (latency). */
#define HK_ADOPT_VISITS_MIN 16
#define HK_ADOPT_VISITS_MAX 1024

/* Memory return. Empty slabs, cached empty SuperSlabs and cached large
 * mappings keep their pages for HK_DECOMMIT_DELAY_MS (HAKMEM_DECOMMIT_DELAY_MS)
 * before they are decommitted, so a heap oscillating around a boundary does
 * not pay a page fault per page on every swing. Retired SuperSlabs wait in a
 * global cache (HK_SS_CACHE_SLOTS per kind: 16 MiB of address space each,
 * one header page of memory once decommitted) and are unmapped beyond it;
 * each heap keeps one empty SuperSlab per kind instead of retiring it
 * (hysteresis). Freed large mappings of ordinary alignment, whatever their
 * size, wait in a cache of HK_LARGE_CACHE_SLOTS slots for reuse by any
 * request they fit with at most HK_LARGE_REUSE_MAX_FACTOR times its pages
 * (best fit; the excess tail of a reused mapping stays with the block,
 * pages and all: a live block holds at most twice its size. Giving back
 * the pages of tails over half the block refaulted them whenever the next
 * block was bigger: the churn of 20 live 5-25 MiB buffers made 143k page
 * faults per 200 replacements (tcmalloc 113k), and with huge pages its
 * refaults ran into the kernel's compaction: 340-590 buffers/s from run to
 * run, against 550-640 with the tails kept (tcmalloc 540-600), peak RSS
 * 425 -> 443 MiB (tcmalloc 438); random 32 KiB-4 MiB churn 8.4 -> 9.5 M
 * ops/s. At a quarter it had been 370 MiB refaulted per 200
 * replacements). The cache
 * holds at most max(HAKMEM_LARGE_CACHE_MB (default HK_LARGE_CACHE_MB, 0
 * turns it off), peak live large bytes >> HK_LARGE_CACHE_PEAK_SHIFT) of
 * address space: a floor that lets small programs reuse, a share of the
 * peak that bounds what the cache adds to RSS (at most 1/2 over the peak,
 * and only until the decommit delay: at 1/4 the 20-buffer churn unmapped
 * and refaulted 37 mappings per 200 replacements and ran at 380 buffers/s
 * against tcmalloc's 601, at 1/2 at 600, peak RSS 416 -> 425 MiB,
 * tcmalloc's 438); beyond it a freed mapping is
 * unmapped at once; a hit makes no system call. Decommitting cached
 * mappings is done by one thread at a time (a try-flag; the others skip
 * it). With more than HK_LARGE_CACHE_THREADS_PER_CPU live threads per CPU
 * the cache stands aside and large calls go to the OS: threads that never
 * enter the kernel then keep the CPUs while those queued on the kernel's
 * mmap lock (page faults, mmap, munmap) wait a scheduling round per
 * hand-off, and stress_oversub (256 threads, 2 cores) saw threads make no
 * progress for 10 s (large.c). Large mappings of at least
 * HK_LARGE_HUGE_MIN bytes ask for transparent huge pages
 * (HAKMEM_LARGE_HUGEPAGES, default 1): the tail huge page of a block may
 * commit up to 2 MiB past its usable end, at most 1/4 of it at this size.
 * The owner looks at its purge deadlines every HK_MAINTAIN_TICKS slow paths. */
#define HK_DECOMMIT_DELAY_MS 250
#define HK_SS_CACHE_SLOTS    8
#define HK_LARGE_CACHE_SLOTS 64
#define HK_LARGE_CACHE_MB    64
#define HK_LARGE_CACHE_PEAK_SHIFT 1
#define HK_LARGE_REUSE_MAX_FACTOR 2
#define HK_LARGE_HUGE_MIN    ((size_t)8 << 20)
#define HK_LARGE_CACHE_THREADS_PER_CPU 16
#define HK_MAINTAIN_TICKS    64
/* Heaps of exited threads kept for the next threads (12 KiB each); beyond
 * it, a retired heap is unmapped after its grace period. */
#define HK_HEAP_POOL_MAX     16

/* The heap profiler (src/prof/). HK_PROF_SAMPLE_DEFAULT: mean bytes
 * between samples (jemalloc's lg_prof_sample 19). A sample keeps at most
 * HK_PROF_FRAMES frames. The side table is bounded, mapped once when
 * profiling starts (MAP_NORESERVE: pages commit as they are used):
 * HK_PROF_SAMPLE_SLOTS slots for live samples (filled to 3/4 at most, so
 * 98,304 samples: about 48 GiB of live heap at the default rate), and
 * HK_PROF_STACKS distinct stacks sharing HK_PROF_FRAME_POOL frames. A
 * sample that finds either full is not taken (counted as dropped). */
#define HK_PROF_SAMPLE_DEFAULT ((size_t)512 * 1024)
#define HK_PROF_FRAMES       64
/* Blocks a profiling slow path moves from a slab's list into the cache at
 * most (core/heap.c hk_heap_tc_prime says why). */
#define HK_PROF_PRIME_MAX    8
#define HK_PROF_SAMPLE_SLOTS ((size_t)1 << 17)
/* The profiler's stash (large/large.c): each thread keeps freed sampled
 * mappings of at most HK_PROF_STASH_PAGES pages (a block of up to 60 KiB:
 * every size class's sample), HK_PROF_STASH_BYTES of them at most,
 * committed, for its next samples. */
#define HK_PROF_STASH_BYTES  ((size_t)512 * 1024)
#define HK_PROF_STASH_PAGES  16
/* The stashes' shared overflow (large/large.c, the spare): at most this
 * much process-wide, in the same mappings. */
#define HK_PROF_SPARE_BYTES  ((size_t)8 << 20)
#define HK_PROF_STACKS       ((size_t)1 << 14)
#define HK_PROF_FRAME_POOL   ((size_t)1 << 19)
/* The longest value of a STRING option (a path), and the room for all of
 * them (util/options.c copies each value there). */
#define HK_OPT_STR_MAX       1023
#define HK_OPT_STR_POOL      4096

#ifdef HK_DEBUG
#include <stdlib.h>
void hk_assert_fail(const char *expr, const char *file, int line);
#define HK_ASSERT(e) ((e) ? (void)0 : hk_assert_fail(#e, __FILE__, __LINE__))
#else
#define HK_ASSERT(e) ((void)0)
#endif

#endif /* HK_CONFIG_H */
