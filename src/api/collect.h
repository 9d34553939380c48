/* collect.h -- giving back everything that can be given back now
 * (hak_collect's body, api/collect.c), for the API's own retry of a large
 * request the OS refused (api/api.c). */
#ifndef HK_COLLECT_H
#define HK_COLLECT_H

#include <stddef.h>

/* What hak_collect does; the bytes released (0: nothing could be). Never
 * inside a heap operation: it flushes and releases the calling thread's
 * caches, slabs and SuperSlabs, and polls the epoch for a while. */
size_t hk_collect(void);

#endif /* HK_COLLECT_H */
