/* stress_realloc_aligned.c -- realloc and aligned-allocation storms.
 *
 * T threads each keep SLOTS live objects and hammer them with:
 *   realloc  growing and shrinking across size classes and into large sizes
 *            (to 4 MiB): the prefix that survives must keep its bytes, the
 *            rest is filled; realloc(p, 0) frees (glibc) now and then
 *   posix_memalign, aligned_alloc, memalign with alignments from 8 B to 2 MiB:
 *            the result must be aligned and hold the size asked for
 *   calloc   must come back zeroed, also when it reuses a freed block
 * Every object is filled up to its usable size (malloc_usable_size must not
 * overstate it: an overlap would corrupt a neighbour's pattern) and verified
 * before every realloc and free. Threads also swap objects through a shared
 * exchange, so realloc and free often act on another thread's block.
 *
 * usage: stress_realloc_aligned [seconds=10] [threads=4] */
#include "stress_common.h"

#define MAX_THREADS 256
#define SLOTS       48
#define XCHG        64

typedef struct {
  void *p;
  size_t n; /* bytes filled with the pattern: the usable size */
  uint64_t id;
} obj;

typedef struct {
  int idx;
  uint64_t reallocs, moved, aligned, callocs, frees, swaps, bytes;
} worker;

static obj xchg[XCHG];
static pthread_mutex_t xchg_mu = PTHREAD_MUTEX_INITIALIZER;
static _Atomic bool stop;
static _Atomic uint64_t next_id = 1;

static uint64_t fresh_id(void) { return atomic_fetch_add_explicit(&next_id, 1, memory_order_relaxed); }

/* Sizes that cross classes: tiny to medium mostly, large sometimes, up to
 * 4 MiB rarely. */
static size_t storm_size(uint64_t *rng) {
  unsigned r = (unsigned)s_below(rng, 100);
  if (r < 40) return s_range(rng, 1, 512);
  if (r < 70) return s_range(rng, 513, 16 * 1024);
  if (r < 90) return s_range(rng, 16 * 1024 + 1, 128 * 1024);
  if (r < 99) return s_range(rng, 128 * 1024 + 1, 1024 * 1024);
  return s_range(rng, 1024 * 1024 + 1, 4 * 1024 * 1024);
}

static void check(worker *w, const obj *o, const char *what) {
  if (o->p == NULL) return;
  size_t u = S_USABLE(o->p);
  S_CHECK(u == o->n, "%s: usable size of %p changed from %zu to %zu", what, o->p, o->n, u);
  s_verify(o->p, o->n, o->id, what);
  w->bytes += o->n;
}

/* Fill a new object up to its usable size. */
static void adopt(obj *o, void *p, size_t asked, uint64_t id, const char *what) {
  size_t u = S_USABLE(p);
  S_CHECK(u >= asked, "%s: usable size %zu of %p < %zu asked", what, u, p, asked);
  S_CHECK(s_owns(p), "%s: %p is not HAKMEM's", what, p);
  o->p = p;
  o->n = u;
  o->id = id;
  s_fill(p, u, id);
}

static void release(worker *w, obj *o) {
  check(w, o, "before free");
  S_FREE(o->p);
  o->p = NULL;
  w->frees++;
}

static void do_realloc(worker *w, obj *o, uint64_t *rng) {
  if (o->p != NULL && s_below(rng, 50) == 0) { /* realloc(p, 0) frees, as glibc */
    check(w, o, "before realloc(p, 0)");
    S_CHECK(S_REALLOC(o->p, 0) == NULL, "realloc(p, 0) did not return NULL");
    o->p = NULL;
    w->frees++;
    return;
  }
  size_t m;
  unsigned r = (unsigned)s_below(rng, 4);
  if (o->p == NULL || r == 0) m = storm_size(rng);
  else if (r == 1) m = o->n * s_range(rng, 2, 4) + s_range(rng, 0, 64); /* grow */
  else if (r == 2) m = o->n / s_range(rng, 2, 4) + 1;                   /* shrink */
  else { /* near the edge of its class: n - 63 to n + 64, at least 1 */
    size_t up = o->n + s_range(rng, 0, 127) + 1;
    m = up > 64 ? up - 64 : 1;
  }
  if (m > 8 * S_MIB) m = s_range(rng, 1, 4096);
  check(w, o, "before realloc");
  void *q = S_REALLOC(o->p, m); /* realloc(NULL, m) when empty */
  S_CHECK(q != NULL, "realloc(%p, %zu) failed: %s", o->p, m, strerror(errno));
  S_CHECK(s_aligned(q, 16), "realloc(%zu) = %p is misaligned", m, q);
  size_t u = S_USABLE(q);
  S_CHECK(u >= m, "realloc: usable size %zu of %p < %zu asked", u, q, m);
  if (o->p != NULL) {
    size_t keep = o->n < m ? o->n : m;
    size_t bad = s_check_range(q, 0, keep, o->id);
    if (bad != SIZE_MAX)
      s_fail("realloc(%p, %zu) = %p (was %zu bytes): byte %zu of the kept %zu was not preserved", o->p, m, q, o->n,
             bad, keep);
    if (q != o->p) w->moved++;
    /* The same id: the kept prefix is already right, fill the rest. */
    s_fill_range(q, keep, u, o->id);
    o->p = q;
    o->n = u;
  } else {
    adopt(o, q, m, fresh_id(), "realloc(NULL, n)");
  }
  w->reallocs++;
}

static void do_aligned(worker *w, obj *o, uint64_t *rng) {
  if (o->p) release(w, o);
  size_t align = (size_t)1 << s_range(rng, 3, 21); /* 8 B to 2 MiB */
  size_t n = storm_size(rng);
  if (align >= S_MIB && n > S_MIB) n = s_range(rng, 1, 256 * 1024);
  void *p = NULL;
  const char *fn;
  unsigned r = (unsigned)s_below(rng, 3);
  if (r == 0) {
    fn = "posix_memalign";
    int rc = S_POSIX_MEMALIGN(&p, align, n);
    S_CHECK(rc == 0, "posix_memalign(%zu, %zu) = %d", align, n, rc);
  } else if (r == 1) {
    fn = "aligned_alloc";
    n = (n + align - 1) & ~(align - 1); /* C11: a multiple of the alignment */
    p = S_ALIGNED_ALLOC(align, n);
  } else {
    fn = "memalign";
    p = S_MEMALIGN(align, n);
  }
  S_CHECK(p != NULL, "%s(%zu, %zu) failed: %s", fn, align, n, strerror(errno));
  S_CHECK(s_aligned(p, align), "%s(%zu, %zu) = %p is not aligned", fn, align, n, p);
  adopt(o, p, n, fresh_id(), fn);
  w->aligned++;
}

static void do_calloc(worker *w, obj *o, uint64_t *rng) {
  if (o->p) release(w, o);
  size_t size = storm_size(rng), k = s_range(rng, 1, 8);
  size_t each = size / k + 1;
  uint8_t *p = S_CALLOC(k, each);
  S_CHECK(p != NULL, "calloc(%zu, %zu) failed: %s", k, each, strerror(errno));
  for (size_t i = 0; i < k * each; i++)
    if (p[i] != 0) s_fail("calloc(%zu, %zu) = %p: byte %zu is %#x, not zero", k, each, (void *)p, i, p[i]);
  adopt(o, p, k * each, fresh_id(), "calloc");
  w->callocs++;
}

/* Trade an object with the shared exchange: the next realloc or free of it
 * usually happens on a block another thread allocated. */
static void do_swap(worker *w, obj *o, uint64_t *rng) {
  check(w, o, "before a swap");
  int k = (int)s_below(rng, XCHG);
  pthread_mutex_lock(&xchg_mu);
  obj t = xchg[k];
  xchg[k] = *o;
  pthread_mutex_unlock(&xchg_mu);
  *o = t;
  check(w, o, "after a swap");
  w->swaps++;
}

static void *worker_main(void *arg) {
  worker *w = arg;
  uint64_t rng = s_rng_init(7000 + (uint64_t)w->idx);
  obj mine[SLOTS];
  memset(mine, 0, sizeof mine);
  while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
    for (int i = 0; i < 64; i++) {
      obj *o = &mine[s_below(&rng, SLOTS)];
      unsigned r = (unsigned)s_below(&rng, 100);
      if (r < 55) do_realloc(w, o, &rng);
      else if (r < 80) do_aligned(w, o, &rng);
      else if (r < 88) do_calloc(w, o, &rng);
      else if (r < 96) do_swap(w, o, &rng);
      else if (o->p) release(w, o);
    }
  }
  for (int i = 0; i < SLOTS; i++)
    if (mine[i].p) release(w, &mine[i]);
  return NULL;
}

int main(int argc, char **argv) {
  s_parse(argc, argv, "stress_realloc_aligned", 10, "[threads=4]");
  int n = s_threads(0, 4);
  S_CHECK(n >= 1 && n <= MAX_THREADS, "1 to %d threads", MAX_THREADS);
  s_start_watchdog();
  worker ws[MAX_THREADS];
  pthread_t t[MAX_THREADS];
  double t0 = s_now();
  for (int i = 0; i < n; i++) {
    memset(&ws[i], 0, sizeof ws[i]);
    ws[i].idx = i;
    s_spawn(&t[i], worker_main, &ws[i]);
  }
  s_sleep(s_seconds);
  atomic_store(&stop, true);
  worker sum = {.idx = -1};
  for (int i = 0; i < n; i++) {
    pthread_join(t[i], NULL);
    sum.reallocs += ws[i].reallocs;
    sum.moved += ws[i].moved;
    sum.aligned += ws[i].aligned;
    sum.callocs += ws[i].callocs;
    sum.frees += ws[i].frees;
    sum.swaps += ws[i].swaps;
    sum.bytes += ws[i].bytes;
  }
  for (int k = 0; k < XCHG; k++)
    if (xchg[k].p) release(&sum, &xchg[k]);
  double elapsed = s_now() - t0;
  S_CHECK(sum.reallocs > 0 && sum.aligned > 0, "no work done");
  printf("%s: PASS %.1f s (%s), %d threads: %" PRIu64 " reallocs (%" PRIu64 " moved), %" PRIu64
         " aligned allocations, %" PRIu64 " callocs, %" PRIu64 " swaps, %.2f GiB verified\n",
         s_name, elapsed, S_API_NAME, n, sum.reallocs, sum.moved, sum.aligned, sum.callocs, sum.swaps,
         s_gib((double)sum.bytes));
  return 0;
}
