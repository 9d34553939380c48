/* stress_oversub.c -- far more threads than cores.
 *
 * T threads (64 to 256 on a 2-core machine) each loop over mixed work:
 * local (replace one of its own live objects: verify, free, allocate, fill)
 * and remote (allocate an object and post it to a random thread's mailbox;
 * take what others posted to its own mailbox, verify and free it: a remote
 * free). Mailboxes are arrays of atomic pointers (release on posting,
 * acquire on taking), objects are self-describing (id and size in the first
 * 16 bytes, the pattern after).
 *
 * No thread may starve: each records when it last finished a round of work,
 * and main fails the run when any thread goes longer than --max-gap seconds
 * without progress (default 10 s, 4x that under sanitizers). With a lock in
 * the allocator a preempted holder stalls everyone queued behind it; with no
 * waiting anywhere, progress is up to the scheduler alone. The summary
 * reports the longest gap seen.
 *
 * usage: stress_oversub [--max-gap=S] [seconds=10] [threads=128] */
#include "stress_common.h"

#define MAX_THREADS 4096
#define LIVE        16 /* each thread's own live objects */
#define MAILBOX     128 /* slots per thread */
#define ROUND       16 /* operations per round of work */

typedef struct {
  int idx;
  _Atomic uint64_t last_ns; /* end of the last round (monotonic ns) */
  _Atomic uint64_t rounds;
  uint64_t max_gap_ns;      /* this thread's own view; main reads after join */
  uint64_t allocs, frees, posted, taken, bytes;
  pthread_t thread;
} worker;

static int nthreads;
static worker *workers;
static _Atomic(void *) *mailbox; /* nthreads * MAILBOX */
static _Atomic bool stop;
static _Atomic uint64_t next_id = 1;
/* The start gate: threads wait until all are created, so that creating 256
 * threads is not itself slowed down by the 255 already running. Each waiter
 * polls a flag in its own short sleeps. Not a mutex and condition variable:
 * after the broadcast every waiter must take the mutex in turn, and on 2
 * cores each hand-off waits for the next waiter to be scheduled among the
 * threads already running, so the last ones left the gate only after >10 s
 * and the run failed as "starved" with 0 rounds done before they had
 * called malloc once (with mimalloc too). */
static _Atomic bool gate_open;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Mixed sizes, but mostly small: with up to 256 threads and their
 * mailboxes, big ones would add up to a lot of memory. */
static void *new_obj(worker *w, uint64_t *rng) {
  size_t n = s_below(rng, 8) == 0 ? s_mixed_size(rng) : s_range(rng, 16, 2048);
  void *p = S_MALLOC(n);
  S_CHECK(p != NULL, "thread %d: malloc(%zu) failed: %s", w->idx, n, strerror(errno));
  S_CHECK(s_aligned(p, 16), "thread %d: malloc(%zu) = %p is misaligned", w->idx, n, p);
  s_obj_init(p, n, atomic_fetch_add_explicit(&next_id, 1, memory_order_relaxed));
  w->allocs++;
  return p;
}

static void free_obj(worker *w, void *p, const char *what) {
  w->bytes += s_obj_check(p, what);
  S_FREE(p);
  w->frees++;
}

static void *worker_main(void *arg) {
  worker *w = arg;
  uint64_t rng = s_rng_init(5000 + (uint64_t)w->idx);
  void *live[LIVE] = {0};
  /* acquire: pairs with main's release store (the workers' set-up) */
  while (!atomic_load_explicit(&gate_open, memory_order_acquire)) s_sleep(0.002);
  uint64_t last = now_ns();
  atomic_store_explicit(&w->last_ns, last, memory_order_relaxed);
  while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
    for (int op = 0; op < ROUND; op++) {
      unsigned r = (unsigned)s_below(&rng, 100);
      if (r < 55) { /* local */
        int k = (int)s_below(&rng, LIVE);
        if (live[k]) free_obj(w, live[k], "local free");
        live[k] = new_obj(w, &rng);
      } else if (r < 80) { /* post to someone */
        void *p = new_obj(w, &rng);
        int to = (int)s_below(&rng, (uint64_t)nthreads), at = (int)s_below(&rng, MAILBOX);
        bool ok = false;
        for (int tries = 0; tries < 4 && !ok; tries++, at = (at + 1) % MAILBOX) {
          void *expect = NULL;
          /* release: our writes to p happen-before the taker's acquire */
          ok = atomic_compare_exchange_strong_explicit(&mailbox[to * MAILBOX + at], &expect, p, memory_order_release,
                                                       memory_order_relaxed);
        }
        if (ok)
          w->posted++;
        else
          free_obj(w, p, "post refused, local free");
      } else { /* take what was posted to us */
        for (int k = 0; k < MAILBOX; k++) {
          void *p = atomic_exchange_explicit(&mailbox[w->idx * MAILBOX + k], NULL, memory_order_acquire);
          if (p) {
            free_obj(w, p, "mailbox (remote free)");
            w->taken++;
          }
        }
      }
    }
    uint64_t t = now_ns();
    if (t - last > w->max_gap_ns) w->max_gap_ns = t - last;
    last = t;
    atomic_store_explicit(&w->last_ns, t, memory_order_relaxed);
    atomic_fetch_add_explicit(&w->rounds, 1, memory_order_relaxed);
  }
  for (int k = 0; k < LIVE; k++)
    if (live[k]) free_obj(w, live[k], "final local free");
  return NULL;
}

int main(int argc, char **argv) {
  /* --max-gap=S is ours; strip it before the common parser sees it. */
  double max_gap = 10.0 * S_SLOWDOWN;
  int k = 1;
  for (int i = 1; i < argc; i++) {
    if (strncmp(argv[i], "--max-gap=", 10) == 0) max_gap = strtod(argv[i] + 10, NULL);
    else argv[k++] = argv[i];
  }
  argc = k;
  s_parse(argc, argv, "stress_oversub", 10, "[threads=128]  (and --max-gap=S)");
  nthreads = s_threads(0, 128);
  S_CHECK(nthreads >= 2 && nthreads <= MAX_THREADS, "2 to %d threads", MAX_THREADS);
  s_start_watchdog();
  workers = s_xalloc((size_t)nthreads * sizeof(worker));
  mailbox = s_xalloc((size_t)nthreads * MAILBOX * sizeof(*mailbox));
  double t0 = s_now();
  for (int i = 0; i < nthreads; i++) {
    workers[i].idx = i;
    atomic_store(&workers[i].last_ns, now_ns());
    s_spawn(&workers[i].thread, worker_main, &workers[i]);
  }
  double started = s_now() - t0;
  for (int i = 0; i < nthreads; i++) atomic_store(&workers[i].last_ns, now_ns());
  atomic_store_explicit(&gate_open, true, memory_order_release); /* pairs with the workers' acquire */

  /* Watch for starvation: every thread must finish a round at least every
   * max_gap seconds. */
  uint64_t limit = (uint64_t)(max_gap * 1e9), worst = 0;
  int worst_idx = -1;
  double t1 = s_now();
  for (;;) {
    s_sleep(0.05);
    uint64_t t = now_ns();
    bool all_ran = true; /* do not stop before every thread finished a round */
    for (int i = 0; i < nthreads; i++) {
      if (atomic_load_explicit(&workers[i].rounds, memory_order_relaxed) == 0) all_ran = false;
      uint64_t last = atomic_load_explicit(&workers[i].last_ns, memory_order_relaxed);
      uint64_t gap = t > last ? t - last : 0;
      if (gap > worst) {
        worst = gap;
        worst_idx = i;
      }
      if (gap > limit)
        s_fail("thread %d made no progress for %.1f s (limit %.1f s, %" PRIu64 " rounds done): starved", i,
               (double)gap * 1e-9, max_gap, atomic_load(&workers[i].rounds));
    }
    if (all_ran && s_now() - t1 >= s_seconds) break;
  }
  atomic_store(&stop, true);
  uint64_t allocs = 0, frees = 0, posted = 0, taken = 0, bytes = 0, rounds = 0, min_rounds = UINT64_MAX;
  for (int i = 0; i < nthreads; i++) {
    pthread_join(workers[i].thread, NULL);
    worker *w = &workers[i];
    if (w->max_gap_ns > worst) {
      worst = w->max_gap_ns;
      worst_idx = i;
    }
    uint64_t r = atomic_load(&w->rounds);
    if (r < min_rounds) min_rounds = r;
    rounds += r;
    allocs += w->allocs;
    frees += w->frees;
    posted += w->posted;
    taken += w->taken;
    bytes += w->bytes;
  }
  double elapsed = s_now() - t0;
  S_CHECK(worst <= limit, "thread %d went %.1f s between two rounds of work (limit %.1f s): starved", worst_idx,
          (double)worst * 1e-9, max_gap);
  S_CHECK(min_rounds > 0, "a thread finished no round of work at all");
  /* What is left in the mailboxes was posted and never taken. */
  uint64_t left = 0;
  worker sweeper = {.idx = -1};
  for (int i = 0; i < nthreads * MAILBOX; i++) {
    void *p = atomic_exchange(&mailbox[i], NULL);
    if (p) {
      free_obj(&sweeper, p, "final mailbox sweep");
      left++;
    }
  }
  S_CHECK(posted == taken + left, "%" PRIu64 " objects posted, %" PRIu64 " taken, %" PRIu64 " left over", posted,
          taken, left);
  S_CHECK(allocs == frees + sweeper.frees, "%" PRIu64 " allocations, %" PRIu64 " frees", allocs, frees + sweeper.frees);
  printf("%s: PASS %.1f s (%s), %d threads (started in %.2f s): %" PRIu64 " rounds (fewest %" PRIu64
         " in one thread), %" PRIu64 " objects, %" PRIu64 " remote, %.2f GiB verified; longest stall %.3f s (limit "
         "%.0f s)\n",
         s_name, elapsed, S_API_NAME, nthreads, started, rounds, min_rounds, allocs, taken + left,
         s_gib((double)(bytes + sweeper.bytes)), (double)worst * 1e-9, max_gap);
  return 0;
}
