/* options.h -- HAKMEM_* environment options, read once at process init by
 * scanning environ (no getenv: it may run before libc is set up). */
#ifndef HK_OPTIONS_H
#define HK_OPTIONS_H

#include <stdbool.h>

#include "hk_config.h"

/* What to do about a bad free (HAKMEM_INVALID_FREE, HAKMEM_DOUBLE_FREE). */
enum { HK_POLICY_ABORT = 0, HK_POLICY_WARN = 1, HK_POLICY_IGNORE = 2 };

typedef struct hk_options {
  int invalid_free;   /* foreign or interior pointers; default warn */
  int double_free;    /* default abort, as glibc */
  bool trace_failures;
  bool show_stats;    /* print a stats line on stderr at exit */
  unsigned decommit_delay_ms; /* empty slabs, cached SuperSlabs and large
                                 mappings keep their pages this long before
                                 they are decommitted; default HK_DECOMMIT_DELAY_MS */
  size_t large_cache_bytes;   /* HAKMEM_LARGE_CACHE_MB: floor of the bound of
                                 the cache of freed large mappings; 0: no cache */
  bool large_hugepages;       /* HAKMEM_LARGE_HUGEPAGES: MADV_HUGEPAGE on large
                                 mappings of HK_LARGE_HUGE_MIN bytes or more; default 1 */
  size_t quarantine_bytes;    /* HAKMEM_QUARANTINE: hardened builds delay the reuse
                                 of freed small blocks in a per-thread FIFO of
                                 this many bytes; default 0 (off) */
} hk_options;

extern hk_options hk_opt;

/* Parse the environment once; later calls are no-ops. Safe to call from any
 * thread at any time: the parse is idempotent. */
void hk_options_init(void);

#endif /* HK_OPTIONS_H */
