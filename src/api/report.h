/* report.h -- the statistics as people and programs read them: the
 * malloc_stats table, hak_stats_json and the figures behind mallinfo2. */
#ifndef HK_REPORT_H
#define HK_REPORT_H

#include "hakmem.h"

/* Take back the remote frees sent to the calling thread and merge its
 * counts (if it has a heap), then snapshot. */
void hk_report_snapshot(hak_stats_t *out);
/* The table on stderr (malloc_stats, HAKMEM_SHOW_STATS=1 at exit). */
void hk_report_print(void);
/* hak_stats_json (include/hakmem.h). */
int hk_report_json(char *buf, size_t len);

#endif /* HK_REPORT_H */
