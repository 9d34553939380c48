/* collect.c -- hak_collect and malloc_trim: give back everything that can be
 * given back now. Never inside a heap operation (api/api.c calls it only
 * between them, for a large request the OS refused): it may poll the epoch
 * for a while (bounded, see hk_epoch_drain), and it adopts every abandoned
 * SuperSlab so that those left empty by frees after their owner exited can
 * be retired. */
#include "api/collect.h"

#include "api/quarantine.h"
#include "api/thread.h"
#include "core/heap.h"
#include "core/purge.h"
#include "core/superslab.h"
#include "epoch/epoch.h"
#include "large/large.h"
#include "os/os.h"
#include "remote/abandon.h"
#include "remote/remote.h"
#include "hakmem.h"

#define HK_EXPORT __attribute__((visibility("default")))

size_t hk_collect(void) {
  size_t released = 0;
  hk_heap *h = hk_tls_heap;
  if (!h->live) h = hk_thread_init(); /* a heap to adopt into; NULL: skip that part */
  if (h != NULL) {
    HK_QUARANTINE_FLUSH(h); /* its remote blocks join the outbox flushed next */
    hk_outbox_flush(h);
    hk_remote_collect(h);
    hk_adopt_all(h);
    released += hk_heap_release_all(h);
    hk_remote_stats_flush(h);
    hk_large_stash_flush(false); /* into the cache, emptied below */
    hk_heap_stats_merge(h);
  }
  /* Every other thread's dirty slabs too, idle or not (core/purge.h). */
  hk_epoch_rec *rec = hk_epoch_acquire();
  if (rec != NULL) {
    released += hk_purge_others(rec, hk_os_now_ms(), true);
    hk_epoch_release(rec);
  }
  /* Outside every section: wait (boundedly) for the grace periods of what
   * was just retired, so it reaches the caches and the heap pool; the
   * pooled heaps go through one more, then the caches are emptied. */
  released += hk_epoch_drain();
  if (hk_heap_pool_release() != 0) released += hk_epoch_drain();
  released += hk_superslab_cache_purge(true);
  hk_large_spare_flush(true); /* the profiler's shared spare: into the cache, emptied next */
  released += hk_large_cache_purge(true);
  return released;
}

HK_EXPORT void hak_collect(bool force) {
  (void)force;
  hk_collect();
}

HK_EXPORT int hak_malloc_trim(size_t pad) {
  (void)pad;
  return hk_collect() != 0; /* glibc: 1 when memory was released */
}

#ifdef HK_OVERRIDE
/* libhakmem.so: malloc_trim is this function (an alias must name a
 * definition in its own translation unit, so it lives here, not in
 * override.inc). */
#include <malloc.h>
extern __typeof(hak_malloc_trim) malloc_trim __attribute__((alias("hak_malloc_trim"), visibility("default")));
#endif
