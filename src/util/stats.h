/* stats.h -- process-wide counters. Nothing here is written by a malloc or
 * free fast path: heaps count in their own memory (hk_heap_stats, core/heap.c)
 * and merge here at thread exit and on demand; the rest is counted per
 * slow-path event (a SuperSlab mapped, a slab's pages committed by carving
 * or decommitted, a large block, a remote-free batch). Relaxed atomics:
 * they are statistics, ordering nothing. */
#ifndef HK_STATS_H
#define HK_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "hakmem.h"
#include "hk_config.h"

void hk_stat_mapped(size_t bytes);   /* address space (reserved, not committed) */
void hk_stat_unmapped(size_t bytes);
void hk_stat_invalid_free(void);
/* How many were reported (debug checks of counts that a reported error may break). */
size_t hk_stat_invalid_frees(void);
/* Memory the allocator made usable (pages a slab carved, SuperSlab header
 * pages, live large blocks) and gave back (madvise or munmap). */
void hk_stat_commit(size_t bytes);
void hk_stat_decommit(size_t bytes);
/* One remote-free chain pushed by a thread without a heap (the rest come
 * through hk_stats_merge). */
void hk_stat_sent_batch(uint32_t blocks);
/* The histogram bucket of a batch of n >= 1 blocks (hk_heap_stats). */
static inline unsigned hk_stat_hist_bucket(uint32_t n) {
  unsigned b = 31u - (unsigned)__builtin_clz(n | 1u);
  return b < HK_STAT_HIST_BUCKETS - 1 ? b : HK_STAT_HIST_BUCKETS - 1;
}
/* Large blocks: a heap's tally since its last merge (hk_types.h), or one
 * call of a thread without a heap (large/large.c). */
struct hk_large_tally;
void hk_stats_merge_large(const struct hk_large_tally *t);
/* A heap's counts since its last merge (core/heap.c hk_heap_stats_merge). */
void hk_stats_merge(const uint64_t allocs[HK_NCLASSES], const uint64_t frees[HK_NCLASSES],
                    const uint64_t sent_hist[HK_STAT_HIST_BUCKETS], const uint64_t recv_hist[HK_STAT_HIST_BUCKETS],
                    uint64_t recv_blocks);
enum {
  HK_STAT_SS_MAPPED, HK_STAT_SS_ABANDONED, HK_STAT_SS_ADOPTED, HK_STAT_LARGE_LIVE,
  HK_STAT_HEAPS_CREATED, HK_STAT_HEAPS_REUSED, HK_STAT_REMOTE_CHAINS, HK_STAT_REMOTE_BLOCKS,
  HK_STAT_SS_RETIRED, HK_STAT_SS_REUSED, HK_STAT_SS_UNMAPPED, HK_STAT_EPOCH_RECORDS, HK_STAT_HEAPS_UNMAPPED,
  HK_STAT_SLABS_PURGED_BY_OTHERS,
  HK_STAT_COUNT
};
void hk_stat_add(int which, long delta);
/* The process-wide counters as they stand (no merge). */
void hk_stats_snapshot(hak_stats_t *out);

#endif /* HK_STATS_H */
