/* stress_faults.c -- injected mapping failures: the allocator must fail
 * cleanly, never corrupt, and recover.
 *
 * Four phases of equal length, with hak_testing_inject_map_failures():
 *   0: 0%   1: 1%   2: 10%   3: 0% again
 * of the OS mappings refused with ENOMEM. T worker slots run a mixed
 * workload (malloc of mixed sizes with many large ones, calloc, realloc
 * growing into large sizes, posix_memalign / aligned_alloc with alignments
 * to 2 MiB, trades through a shared table so frees are often remote, and
 * thread churn, so heaps are set up under injection too). Each slot's live
 * set grows phase by phase, so new SuperSlabs are mapped while mappings
 * fail, not only large blocks.
 *
 * Checked: every failed call returns NULL with errno == ENOMEM
 * (posix_memalign: returns ENOMEM); a failed realloc leaves the old block
 * intact; every live object keeps its pattern across all phases; no call
 * fails in phases 0 and 3 (after injection stops, allocation works again,
 * also for new mappings: the live set grows in phase 3 and a final burst
 * maps more); and the 10% phase did see failures.
 *
 * A call that straddles a phase change is counted in its later phase and
 * is not held to the no-failure rule.
 *
 * usage: stress_faults [seconds=10] [threads=4] */
#include "stress_common.h"

#define MAX_SLOTS 64
#define CAP       4096 /* small live objects per slot in the last phase */
#define BIG       16   /* large live objects per slot */
#define TABLE     128
#define PHASES    4

static const unsigned phase_ppm[PHASES] = {0, 10000, 100000, 0};

typedef struct {
  int idx;
  int quota;
  uint64_t gen;
  s_item *live; /* CAP small and BIG large entries; the slot's, passed from thread to thread */
  bool finished; /* under sup_mu */
  bool running;  /* main's */
  pthread_t thread;
} slot;

static _Atomic int phase;
static _Atomic bool stop;
static _Atomic uint64_t next_id = 1;
static _Atomic uint64_t calls[PHASES], failures[PHASES], straddled, realloc_failures;
static _Atomic uint64_t bytes_verified;
static s_item table[TABLE];
static pthread_mutex_t table_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t sup_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t sup_cv = PTHREAD_COND_INITIALIZER;

static int cur_phase(void) { return atomic_load_explicit(&phase, memory_order_acquire); }

/* The live set: small and medium blocks (SuperSlab growth). Large ones are
 * a mapping each, so injection has plenty to refuse; few are live at once. */
static size_t small_size(uint64_t *rng) {
  unsigned r = (unsigned)s_below(rng, 100);
  if (r < 70) return s_range(rng, 16, 1024);
  if (r < 95) return s_range(rng, 1025, 8 * 1024);
  return s_range(rng, 8 * 1024 + 1, 64 * 1024);
}

static size_t large_size(uint64_t *rng) { return s_range(rng, 128 * 1024 + 1, 1024 * 1024); }

/* Book one call that started in phase p0: ok says whether it succeeded. A
 * failure outside an injected phase fails the run. */
static void account(int p0, bool ok, const char *what, size_t n) {
  int p1 = cur_phase();
  atomic_fetch_add_explicit(&calls[p1], 1, memory_order_relaxed);
  if (ok) return;
  atomic_fetch_add_explicit(&failures[p1], 1, memory_order_relaxed);
  if (p0 != p1) {
    atomic_fetch_add_explicit(&straddled, 1, memory_order_relaxed);
    return;
  }
  if (phase_ppm[p1] == 0)
    s_fail("%s(%zu) failed in phase %d, with no failure injected (%s)", what, n, p1,
           p1 == PHASES - 1 ? "allocation did not recover after injection stopped" : "before injection");
}

static void check_null(int p0, const char *what, size_t n, int err) {
  S_CHECK(err == ENOMEM, "%s(%zu) returned NULL with errno %d (%s), not ENOMEM", what, n, err, strerror(err));
  account(p0, false, what, n);
}

/* Allocate a new object in *it by one of several calls; leaves it->p NULL
 * when the allocator refused (which account() judged). */
static void alloc_into(s_item *it, uint64_t *rng, bool large) {
  size_t n = large ? large_size(rng) : small_size(rng);
  uint64_t id = atomic_fetch_add_explicit(&next_id, 1, memory_order_relaxed);
  int p0 = cur_phase();
  void *p = NULL;
  const char *what;
  unsigned r = (unsigned)s_below(rng, 10);
  errno = 0;
  if (r < 5) {
    what = "malloc";
    p = S_MALLOC(n);
  } else if (r < 7) {
    what = "calloc";
    p = S_CALLOC(1, n);
    if (p != NULL) {
      const uint8_t *b = p;
      for (size_t i = 0; i < n; i++)
        if (b[i] != 0) s_fail("calloc(1, %zu) = %p: byte %zu is not zero", n, p, i);
    }
  } else if (r < 9) {
    what = "posix_memalign";
    size_t align = (size_t)1 << s_range(rng, 4, large ? 21 : 12);
    int saved = errno = 12345;
    int rc = S_POSIX_MEMALIGN(&p, align, n);
    S_CHECK(errno == saved, "posix_memalign changed errno to %d", errno);
    if (rc != 0) {
      S_CHECK(rc == ENOMEM, "posix_memalign(%zu, %zu) returned %d, not ENOMEM", align, n, rc);
      account(p0, false, what, n);
      it->p = NULL;
      return;
    }
    S_CHECK(s_aligned(p, align), "posix_memalign(%zu) = %p is not aligned", align, p);
  } else {
    what = "aligned_alloc";
    size_t align = (size_t)1 << s_range(rng, 4, large ? 21 : 12);
    n = (n + align - 1) & ~(align - 1);
    p = S_ALIGNED_ALLOC(align, n);
    S_CHECK(p == NULL || s_aligned(p, align), "aligned_alloc(%zu) = %p is not aligned", align, p);
  }
  if (p == NULL) {
    check_null(p0, what, n, errno);
    it->p = NULL;
    return;
  }
  account(p0, true, what, n);
  S_CHECK(s_owns(p) && S_USABLE(p) >= n, "%s(%zu) = %p: not HAKMEM's or too small", what, n, p);
  s_fill(p, n, id);
  *it = (s_item){p, n, id};
}

static void drop(s_item *it, const char *what) {
  if (it->p == NULL) return;
  s_verify(it->p, it->n, it->id, what);
  atomic_fetch_add_explicit(&bytes_verified, it->n, memory_order_relaxed);
  S_FREE(it->p);
  it->p = NULL;
}

/* realloc: small blocks grow (into large sizes now and then), large ones
 * shrink or grow within large sizes. */
static void resize(s_item *it, uint64_t *rng, bool large) {
  size_t m;
  if (large) m = large_size(rng);
  else if (s_below(rng, 16) == 0) m = large_size(rng) / 2; /* often large: a new mapping */
  else m = it->n < 32 * 1024 ? it->n * s_range(rng, 2, 4) + s_range(rng, 0, 64) : small_size(rng);
  s_verify(it->p, it->n, it->id, "before realloc");
  int p0 = cur_phase();
  errno = 0;
  void *q = S_REALLOC(it->p, m);
  if (q == NULL) {
    int err = errno;
    /* The old block must be untouched and still ours to free. */
    s_verify(it->p, it->n, it->id, "a block whose realloc failed");
    atomic_fetch_add_explicit(&realloc_failures, 1, memory_order_relaxed);
    check_null(p0, "realloc", m, err);
    return;
  }
  account(p0, true, "realloc", m);
  size_t keep = it->n < m ? it->n : m;
  size_t bad = s_check_range(q, 0, keep, it->id);
  S_CHECK(bad == SIZE_MAX, "realloc(%p, %zu) = %p lost byte %zu of %zu", it->p, m, q, bad, keep);
  s_fill_range(q, keep, m, it->id);
  it->p = q;
  it->n = m;
}

static void *slot_main(void *arg) {
  slot *sl = arg;
  uint64_t rng = s_rng_init(((uint64_t)sl->idx << 32) ^ sl->gen ^ 0xfa17);
  for (int op = 0; op < sl->quota && !atomic_load_explicit(&stop, memory_order_relaxed); op++) {
    bool large = s_below(&rng, 8) == 0;
    int target = CAP * (cur_phase() + 1) / PHASES;
    s_item *it = large ? &sl->live[CAP + s_below(&rng, BIG)] : &sl->live[s_below(&rng, (uint64_t)target)];
    if (it->p == NULL) {
      alloc_into(it, &rng, large);
      continue;
    }
    unsigned r = (unsigned)s_below(&rng, 100);
    if (r < 25) {
      resize(it, &rng, large);
    } else if (r < 40 && !large) { /* trade: the next free of it is often remote */
      int k = (int)s_below(&rng, TABLE);
      pthread_mutex_lock(&table_mu);
      s_item t = table[k];
      table[k] = *it;
      pthread_mutex_unlock(&table_mu);
      *it = t;
      drop(it, "after a trade");
    } else if (r < 55 || large) {
      drop(it, "free");
    }
    /* else: keep it, the live set grows */
  }
  s_signal_finished(&sup_mu, &sup_cv, &sl->finished);
  return NULL;
}

static void start_slot(slot *sl, uint64_t *rng) {
  sl->quota = (int)s_range(rng, 1000, 4000);
  sl->gen++;
  sl->finished = false;
  sl->running = true;
  s_spawn(&sl->thread, slot_main, sl);
}

int main(int argc, char **argv) {
  s_parse(argc, argv, "stress_faults", 10, "[threads=4]");
  int n = s_threads(0, 4);
  S_CHECK(n >= 1 && n <= MAX_SLOTS, "1 to %d threads", MAX_SLOTS);
  S_CHECK(s_inject_hook != NULL, "hak_testing_inject_map_failures is not available");
  s_start_watchdog();
  uint64_t rng = s_rng_init(4);
  slot *slots = s_xalloc((size_t)n * sizeof(slot));
  size_t ss_mapped[PHASES + 1];
  hak_stats_t st = s_stats();
  ss_mapped[0] = st.superslabs_mapped;
  double t0 = s_now(), phase_len = s_seconds / PHASES;
  for (int i = 0; i < n; i++) {
    slots[i].idx = i;
    slots[i].live = s_xalloc((CAP + BIG) * sizeof(s_item));
    start_slot(&slots[i], &rng);
  }
  /* Supervise: phases by the clock; replace threads that used up their
   * quota (thread start-up, heap set-up included, happens under injection). */
  int live = n, ph = 0;
  uint64_t threads = (uint64_t)n;
  pthread_mutex_lock(&sup_mu);
  while (live > 0) {
    int want = (int)((s_now() - t0) / phase_len);
    if (want > ph && ph < PHASES) {
      pthread_mutex_unlock(&sup_mu);
      st = s_stats();
      ss_mapped[ph + 1] = st.superslabs_mapped;
      ph++;
      if (ph == PHASES) {
        atomic_store(&stop, true);
      } else if (phase_ppm[ph] == 0) { /* injection off before the phase says so */
        s_inject_hook(0);
        atomic_store_explicit(&phase, ph, memory_order_release);
      } else { /* the phase first: a failure is never booked in an earlier phase */
        atomic_store_explicit(&phase, ph, memory_order_release);
        s_inject_hook(phase_ppm[ph]);
      }
      pthread_mutex_lock(&sup_mu);
      continue;
    }
    slot *sl = NULL;
    for (int i = 0; i < n && sl == NULL; i++)
      if (slots[i].running && slots[i].finished) sl = &slots[i];
    if (sl == NULL) {
      s_cond_wait_ms(&sup_cv, &sup_mu, 10);
      continue;
    }
    pthread_mutex_unlock(&sup_mu);
    pthread_join(sl->thread, NULL);
    sl->running = false;
    live--;
    if (!atomic_load(&stop)) {
      start_slot(sl, &rng);
      threads++;
      live++;
    }
    pthread_mutex_lock(&sup_mu);
  }
  pthread_mutex_unlock(&sup_mu);
  s_inject_hook(0);

  /* Recovery, beyond the run's peak: a burst of new mappings must all
   * succeed; then every object is verified and freed. */
  enum { BURST = 512 };
  static s_item burst[BURST];
  for (int i = 0; i < BURST; i++) {
    size_t sz = i % 8 == 0 ? s_range(&rng, 256 * 1024, 2 * S_MIB) : s_range(&rng, 16 * 1024, 128 * 1024);
    burst[i].p = S_MALLOC(sz);
    S_CHECK(burst[i].p != NULL, "after injection stopped: malloc(%zu) failed: %s", sz, strerror(errno));
    burst[i].n = sz;
    burst[i].id = ~(uint64_t)i;
    s_fill(burst[i].p, sz, burst[i].id);
  }
  for (int i = 0; i < BURST; i++) drop(&burst[i], "recovery burst");
  uint64_t left = 0;
  for (int i = 0; i < n; i++)
    for (int k = 0; k < CAP + BIG; k++)
      if (slots[i].live[k].p) {
        drop(&slots[i].live[k], "final check");
        left++;
      }
  for (int k = 0; k < TABLE; k++) drop(&table[k], "final check, table");
  double elapsed = s_now() - t0;

  uint64_t c[PHASES], f[PHASES];
  for (int p = 0; p < PHASES; p++) {
    c[p] = atomic_load(&calls[p]);
    f[p] = atomic_load(&failures[p]);
  }
  S_CHECK(c[PHASES - 1] > 0, "no call in the last phase: recovery untested");
  /* About 1 call in 80 maps (and so may fail) in this mix: with 2000 calls
   * at 10%, seeing none means injection is not reaching the allocator. */
  if (c[2] >= 2000)
    S_CHECK(f[2] > 0, "no allocation failed at 10%% injected mapping failures (%" PRIu64 " calls)", c[2]);
  printf("%s: PASS %.1f s (%s), %d slots (%" PRIu64 " threads); calls/failures per phase: 0%%: %" PRIu64 "/%" PRIu64
         ", 1%%: %" PRIu64 "/%" PRIu64 ", 10%%: %" PRIu64 "/%" PRIu64 ", 0%%: %" PRIu64 "/%" PRIu64
         " (%" PRIu64 " at a phase change, %" PRIu64 " reallocs failed with the block intact); SuperSlabs mapped per "
         "phase %zu, %zu, %zu, %zu; %.2f GiB verified\n",
         s_name, elapsed, S_API_NAME, n, threads, c[0], f[0], c[1], f[1], c[2], f[2], c[3], f[3],
         atomic_load(&straddled), atomic_load(&realloc_failures), ss_mapped[1] - ss_mapped[0],
         ss_mapped[2] - ss_mapped[1], ss_mapped[3] - ss_mapped[2], ss_mapped[4] - ss_mapped[3],
         s_gib((double)atomic_load(&bytes_verified)));
  (void)left;
  return 0;
}
