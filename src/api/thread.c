/* thread.c -- process init, thread init and thread exit.
 *
 * Recursion is impossible by construction: the heap is installed in TLS
 * before anything that might allocate (pthread_setspecific may calloc for
 * high key numbers), so a nested malloc finds a live heap. */
#include "api/thread.h"

#include <pthread.h>

#include "api/quarantine.h"
#include "api/report.h"
#include "core/harden.h"
#include "core/heap.h"
#include "core/purge.h"
#include "core/superslab.h"
#include "large/large.h"
#include "prof/prof.h"
#include "epoch/epoch.h"
#include "os/os.h"
#include "remote/abandon.h"
#include "remote/remote.h"
#include "util/options.h"
#include "util/stats.h"

/* Key states: 0 none, 1 being created, 2 created. */
static _Atomic int hk_key_state;
static pthread_key_t hk_key;

/* The teardown runs in the second destructor round, after most other
 * libraries' destructors (which may still malloc and free) have run. */
/* Empty SuperSlabs are retired (hk_abandon_all), the rest abandoned; the
 * heap is retired through the epoch and its record goes back to ck. */
/* Model: formal/ownership.pml teardown (flush, collect, abandon). */
static void hk_thread_teardown(hk_heap *h) {
  HK_QUARANTINE_FLUSH(h); /* into the caches and outbox flushed next */
  hk_heap_tc_flush_all(h);
  hk_outbox_flush(h);
  hk_remote_collect(h);
  hk_remote_stats_flush(h);
  hk_large_stash_flush(true); /* into the spare, for other threads' samples; counted in the heap's tally */
  hk_heap_stats_merge(h); /* before abandoning: the merge reads the owned slabs */
  hk_prof_thread_exit();
  hk_abandon_all(h);
  hk_tls_heap = &hk_heap_empty;
  hk_heap_retire(h);
  hk_epoch_maybe_poll(); /* what this thread retired may be reclaimable already */
}

/* Set once this thread's exit destructors have started: a heap created after
 * that (by another library's destructor) is torn down at its first call,
 * since glibc runs at most PTHREAD_DESTRUCTOR_ITERATIONS rounds. */
static __thread bool hk_exiting __attribute__((tls_model("initial-exec")));

static void hk_thread_exit(void *arg) {
  hk_heap *h = arg;
  if (h != hk_tls_heap || !h->live) return;
  if (!hk_exiting) {
    hk_exiting = true;
    pthread_setspecific(hk_key, h); /* re-arm: called again next round */
    return;
  }
  hk_thread_teardown(h);
}

/* A thread that frees another thread's block before it ever allocated gets
 * its heap now, so its remote frees are batched in an outbox like everyone
 * else's (a consumer thread that only frees would otherwise pay one CAS per
 * block). Not once its exit destructors have started: an outbox set up then
 * might never be flushed. The empty heap (push each block alone) when that,
 * or mapping the heap, fails. */
hk_heap *hk_thread_heap_for_free(void) {
  if (hk_exiting) return &hk_heap_empty;
  hk_heap *h = hk_thread_init();
  return h != NULL ? h : &hk_heap_empty;
}

static void hk_process_init(void) {
  hk_options_init();
  HK_HARDEN_INIT(); /* the canaries' secret, before the first block */
  int st = 0;
  /* acq_rel: the winner's key creation is published by its release store below. */
  if (hk_load_acquire(&hk_key_state) == 0 && hk_cas_strong_acq_rel(&hk_key_state, &st, 1)) {
    if (pthread_key_create(&hk_key, hk_thread_exit) == 0)
      hk_store_release(&hk_key_state, 2); /* pairs with the acquire loads: hk_key is set */
  }
}

hk_heap *hk_thread_init(void) {
  hk_process_init();
  hk_heap *h = hk_heap_create();
  if (h == NULL) return NULL;
  hk_tls_heap = h;
  /* A thread racing the very first key creation is not registered and its
   * heap is not torn down at exit; the constructor below creates the key
   * before main, so only threads started by earlier constructors can race. */
  if (hk_load_acquire(&hk_key_state) == 2) pthread_setspecific(hk_key, h); /* pairs with the release in process_init */
  return h;
}

/* The forking thread is the child's only thread; it is never inside a
 * section at the fork (fork is not called from our code), so its record,
 * if it has one, stays, and every other goes back to ck. Try-flags and
 * claims the other threads held at the fork are released. */
static void hk_fork_child(void) {
  hk_heap *h = hk_tls_heap;
  hk_epoch_fork_child(h->live ? h->erec : NULL);
  hk_purge_fork_child();
  hk_large_fork_child();
  hk_heap_fork_child();
}

/* A mapping failed (os.h): give back the address space the caches hold
 * (cached large mappings, this thread's profiler stash and the stashes'
 * spare, retired
 * SuperSlabs after a few non-waiting epoch polls, the unclaimed part of the
 * SuperSlab region and arena); the mapping is retried when anything went
 * back. */
static bool hk_release_for_retry(void) {
  hk_large_stash_flush(false); /* this thread's sampled mappings, unmapped with the cache's next */
  hk_large_spare_flush(false);  /* the same, unless the shortage struck under the profiler's lock */
  size_t n = hk_large_cache_purge(true);
  return hk_superslab_reclaim_for_retry() || n != 0;
}

__attribute__((constructor(101))) static void hk_constructor(void) {
  hk_os_set_pressure_hook(hk_release_for_retry); /* before any thread but this one exists */
  hk_process_init();
  pthread_atfork(NULL, NULL, hk_fork_child);
  hk_prof_start(); /* HAKMEM_PROF=1: here, where backtrace's first call may allocate */
}

__attribute__((destructor)) static void hk_destructor(void) {
  hk_prof_at_exit();
  if (hk_opt_get(show_stats)) hk_report_print();
}
