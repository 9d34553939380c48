/* test_epoch.c -- the epoch layer itself (src/epoch), linked from libhakmem.a.
 *   callback_waits_for_a_reader_inside_its_section: an object retired while
 *     a reader is inside a section it entered before is reclaimed only after
 *     that section ends. The handshake uses relaxed atomics only, so under
 *     the TSan preset the grace period (our annotation of what libck does)
 *     is the only happens-before between the reader's access and the
 *     callback's write: TSan reports a race if the annotation is dropped or
 *     the callback runs early (both shown in the epoch issue's closing note).
 *   records_are_recycled: 1,000 acquire/release pairs use one record.
 *   fork_child_reclaims_past_a_parent_reader: a thread of the parent is
 *     inside a section when another forks; in the child that thread does not
 *     exist, and an object retired there is still reclaimed. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "epoch/epoch.h"
#include "hk_test.h"

TestSuite(epoch, .timeout = 60.);

typedef struct {
  hk_retired r;
  long val;
} obj;

static obj X = {.val = 1};
static _Atomic int in_section, go, done;

static void set_val(hk_retired *r) {
  ((obj *)r)->val = 2;
  atomic_store_explicit(&done, 1, memory_order_relaxed);
}

static void *reader(void *arg) {
  (void)arg;
  hk_epoch_rec *rec = hk_epoch_acquire();
  if (rec == NULL) return (void *)-1;
  hk_epoch_enter(rec);
  long v = X.val; /* the access the grace period protects */
  atomic_store_explicit(&in_section, 1, memory_order_relaxed);
  while (!atomic_load_explicit(&go, memory_order_relaxed)) sched_yield();
  hk_epoch_exit(rec);
  hk_epoch_release(rec);
  return (void *)v;
}

Test(epoch, callback_waits_for_a_reader_inside_its_section) {
  pthread_t t;
  cr_assert(pthread_create(&t, NULL, reader, NULL) == 0);
  while (!atomic_load_explicit(&in_section, memory_order_relaxed)) sched_yield();
  hk_epoch_retire(&X.r, set_val);
  for (int i = 0; i < 100; i++) hk_epoch_poll(); /* the reader is still inside */
  int early = atomic_load_explicit(&done, memory_order_relaxed);
  atomic_store_explicit(&go, 1, memory_order_relaxed);
  while (!atomic_load_explicit(&done, memory_order_relaxed)) {
    hk_epoch_poll();
    sched_yield();
  }
  void *v = NULL;
  pthread_join(t, &v);
  cr_assert(!early, "the callback ran while a reader was still inside its section");
  cr_assert((long)v == 1, "the reader saw %ld", (long)v);
  cr_assert(X.val == 2);
}

Test(epoch, records_are_recycled) {
  hk_epoch_rec *first = hk_epoch_acquire();
  cr_assert(first != NULL);
  hk_epoch_release(first);
  for (int i = 0; i < 1000; i++) {
    hk_epoch_rec *r = hk_epoch_acquire();
    cr_assert(r != NULL);
    hk_epoch_enter(r);
    hk_epoch_exit(r);
    hk_epoch_release(r);
  }
  hak_stats_t s;
  hak_stats_get(&s);
  cr_assert(s.epoch_records <= 2, "%zu records registered for 1,000 sequential users", s.epoch_records);
}

static obj Y = {.val = 1};
static _Atomic int y_in_section, y_go;

static void set_y(hk_retired *r) { ((obj *)r)->val = 3; }

static void *parked_reader(void *arg) {
  (void)arg;
  hk_epoch_rec *rec = hk_epoch_acquire();
  if (rec == NULL) return (void *)-1;
  hk_epoch_enter(rec);
  atomic_store_explicit(&y_in_section, 1, memory_order_release); /* pairs with the main thread's acquire */
  while (!atomic_load_explicit(&y_go, memory_order_acquire)) sched_yield(); /* pairs with the release below */
  hk_epoch_exit(rec);
  hk_epoch_release(rec);
  return NULL;
}

Test(epoch, fork_child_reclaims_past_a_parent_reader) {
  hak_free(hak_malloc(16)); /* this thread has a heap and a record, as a forking program would */
  pthread_t t;
  cr_assert(pthread_create(&t, NULL, parked_reader, NULL) == 0);
  while (!atomic_load_explicit(&y_in_section, memory_order_acquire)) sched_yield(); /* pairs with the reader */
  pid_t pid = fork();
  cr_assert(pid >= 0);
  if (pid == 0) { /* the reader's thread is gone here, its record still inside a section */
    hk_epoch_retire(&Y.r, set_y);
    hk_epoch_drain();
    _exit(Y.val == 3 ? 0 : 1);
  }
  int st = 0;
  cr_assert(waitpid(pid, &st, 0) == pid);
  atomic_store_explicit(&y_go, 1, memory_order_release); /* pairs with the reader's acquire */
  pthread_join(t, NULL);
  cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
            "the child never reclaimed: a dead parent thread's section held back its grace periods (status %d)", st);
}
