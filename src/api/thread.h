/* thread.h -- process and thread life cycle: init on first use, teardown at
 * thread exit (flush, reclaim, abandon, retire the heap). */
#ifndef HK_THREAD_H
#define HK_THREAD_H

#include "hk_types.h"

/* Set the calling thread up; returns its heap, NULL (errno untouched) when no
 * heap could be mapped. Safe from any first call: ld.so, constructors,
 * thread-exit destructors of other libraries. */
hk_heap *hk_thread_init(void);
/* The heap for a remote free by a thread that has none yet (never NULL). */
hk_heap *hk_thread_heap_for_free(void);

#endif /* HK_THREAD_H */
