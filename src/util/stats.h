/* stats.h -- process-wide counters, updated on slow paths only (relaxed
 * atomics: they are statistics, ordering nothing). */
#ifndef HK_STATS_H
#define HK_STATS_H

#include <stddef.h>

#include "hakmem.h"

void hk_stat_mapped(size_t bytes);
void hk_stat_unmapped(size_t bytes);
void hk_stat_invalid_free(void);
enum {
  HK_STAT_SS_MAPPED, HK_STAT_SS_ABANDONED, HK_STAT_SS_ADOPTED, HK_STAT_LARGE_LIVE,
  HK_STAT_HEAPS_CREATED, HK_STAT_HEAPS_REUSED, HK_STAT_REMOTE_CHAINS, HK_STAT_REMOTE_BLOCKS,
  HK_STAT_SS_RETIRED, HK_STAT_SS_REUSED, HK_STAT_SS_UNMAPPED, HK_STAT_EPOCH_RECORDS, HK_STAT_HEAPS_UNMAPPED,
  HK_STAT_SLABS_PURGED_BY_OTHERS,
  HK_STAT_COUNT
};
void hk_stat_add(int which, long delta);
void hk_stats_snapshot(hak_stats_t *out);
void hk_stats_print(void); /* one line on stderr: "hakmem: stats ..." */

#endif /* HK_STATS_H */
