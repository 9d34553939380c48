/* stress_pingpong.c -- ownership ping-pong around a ring of threads.
 *
 * R ring slots, each with an inbox. The thread in slot i takes objects from
 * its inbox, verifies every byte, then either frees the object (a remote free:
 * someone else allocated it) and sends a fresh replacement on, or rewrites it
 * with its next version and sends it on to slot i+1 (now and then to a random
 * slot). The population is constant, so inboxes never fill.
 *
 * The thread in each slot retires after a few thousand objects and main
 * starts a new one in its place: the retiring thread's SuperSlabs are
 * abandoned while blocks it allocated are still travelling the ring and
 * being freed by others (into abandoned queues, or into the adopter's), and
 * the new threads adopt them. At the end all objects are drained and freed:
 * allocations == frees, and SuperSlabs were adopted.
 *
 * usage: stress_pingpong [seconds=10] [ring=8] */
#include "stress_common.h"

#define MAX_RING 256
#define PER_SLOT 128 /* initial objects per slot */
#define BATCH    32

typedef struct {
  s_queue inbox;
  int idx;
  int quota;
  uint64_t gen;         /* threads started in this slot */
  bool finished;        /* under sup_mu */
  bool running;         /* main's */
  pthread_t thread;
  uint64_t handled, replaced, rewritten, bytes; /* this thread's; main sums after join */
} slot;

static int ring;
static slot *slots;
static _Atomic bool stop;
static _Atomic uint64_t next_id = 1;
static _Atomic uint64_t n_alloc, n_free;
static pthread_mutex_t sup_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t sup_cv = PTHREAD_COND_INITIALIZER;

/* The id of an object's version v: the pattern changes with every rewrite. */
static uint64_t ver_id(uint64_t id, uint64_t v) { return id * 0x100000001b3ull + v; }

static s_item new_object(uint64_t *rng) {
  size_t n = s_mixed_size(rng);
  uint64_t id = atomic_fetch_add_explicit(&next_id, 1, memory_order_relaxed) << 16; /* low bits: the version */
  void *p = S_MALLOC(n);
  S_CHECK(p != NULL, "malloc(%zu) failed: %s", n, strerror(errno));
  S_CHECK(s_aligned(p, 16) && s_owns(p), "malloc(%zu) = %p: misaligned or not HAKMEM's", n, p);
  s_fill(p, n, ver_id(id, 0));
  atomic_fetch_add_explicit(&n_alloc, 1, memory_order_relaxed);
  return (s_item){p, n, id};
}

static void verify_item(const s_item *it, const char *what) {
  S_CHECK(S_USABLE(it->p) >= it->n, "%s: usable size of %p below %zu", what, it->p, it->n);
  s_verify(it->p, it->n, ver_id(it->id & ~(uint64_t)0xffff, it->id & 0xffff), what);
}

static void free_item(const s_item *it) {
  S_FREE(it->p);
  atomic_fetch_add_explicit(&n_free, 1, memory_order_relaxed);
}

static void *slot_main(void *arg) {
  slot *sl = arg;
  uint64_t rng = s_rng_init(((uint64_t)sl->idx << 32) + sl->gen);
  s_item in[BATCH];
  int done = 0;
  while (done < sl->quota && !atomic_load_explicit(&stop, memory_order_relaxed)) {
    size_t n = s_queue_pop(&sl->inbox, in, BATCH);
    if (n == 0) break; /* closed and empty: the run is over */
    for (size_t i = 0; i < n; i++) {
      s_item it = in[i];
      verify_item(&it, "ring hop");
      sl->bytes += it.n;
      if (s_below(&rng, 100) < 30) { /* free it (remote, nearly always) and send a replacement */
        free_item(&it);
        it = new_object(&rng);
        sl->replaced++;
      } else if (it.n <= 4096 && (it.id & 0xffff) < 0xffff) { /* its next version, written here */
        it.id++;
        s_fill(it.p, it.n, ver_id(it.id & ~(uint64_t)0xffff, it.id & 0xffff));
        sl->rewritten++;
      }
      in[i] = it;
    }
    int to = (sl->idx + 1) % ring;
    if (s_below(&rng, 10) == 0) to = (int)s_below(&rng, (uint64_t)ring);
    s_queue_push(&slots[to].inbox, in, n);
    sl->handled += n;
    done += (int)n;
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
  s_parse(argc, argv, "stress_pingpong", 10, "[ring=8]");
  ring = s_threads(0, 8);
  S_CHECK(ring >= 2 && ring <= MAX_RING, "the ring needs 2 to %d threads", MAX_RING);
  s_start_watchdog();
  uint64_t rng = s_rng_init(2);
  slots = s_xalloc((size_t)ring * sizeof(slot));
  hak_stats_t st0 = s_stats();
  for (int i = 0; i < ring; i++) {
    slots[i].idx = i;
    s_queue_init(&slots[i].inbox, (size_t)ring * PER_SLOT + BATCH);
    s_item init[PER_SLOT];
    for (int k = 0; k < PER_SLOT; k++) init[k] = new_object(&rng);
    s_queue_push(&slots[i].inbox, init, PER_SLOT);
  }
  double t0 = s_now();
  for (int i = 0; i < ring; i++) start_slot(&slots[i], &rng);

  uint64_t threads = (uint64_t)ring, handled = 0, replaced = 0, rewritten = 0, bytes = 0;
  int live = ring;
  bool stopping = false;
  pthread_mutex_lock(&sup_mu);
  while (live > 0) {
    if (!stopping && s_now() - t0 >= s_seconds) {
      atomic_store(&stop, true);
      pthread_mutex_unlock(&sup_mu);
      for (int i = 0; i < ring; i++) s_queue_close(&slots[i].inbox); /* wakes waiting threads */
      pthread_mutex_lock(&sup_mu);
      stopping = true;
    }
    slot *sl = NULL;
    for (int i = 0; i < ring && sl == NULL; i++)
      if (slots[i].running && slots[i].finished) sl = &slots[i];
    if (sl == NULL) {
      s_cond_wait_ms(&sup_cv, &sup_mu, 20);
      continue;
    }
    pthread_mutex_unlock(&sup_mu);
    pthread_join(sl->thread, NULL);
    sl->running = false;
    handled += sl->handled;
    replaced += sl->replaced;
    rewritten += sl->rewritten;
    bytes += sl->bytes;
    sl->handled = sl->replaced = sl->rewritten = sl->bytes = 0;
    live--;
    if (!atomic_load(&stop)) {
      start_slot(sl, &rng);
      threads++;
      live++;
    }
    pthread_mutex_lock(&sup_mu);
  }
  pthread_mutex_unlock(&sup_mu);
  double elapsed = s_now() - t0;

  /* Drain: every object still in the ring is verified and freed. */
  uint64_t left = 0;
  for (int i = 0; i < ring; i++) {
    s_item it[BATCH];
    size_t n;
    while ((n = s_queue_pop(&slots[i].inbox, it, BATCH)) > 0)
      for (size_t k = 0; k < n; k++) {
        verify_item(&it[k], "final drain");
        free_item(&it[k]);
        left++;
      }
  }
  uint64_t na = atomic_load(&n_alloc), nf = atomic_load(&n_free);
  S_CHECK(left == (uint64_t)ring * PER_SLOT, "the ring ended with %" PRIu64 " objects, not %d: objects were lost or duplicated",
          left, ring * PER_SLOT);
  S_CHECK(na == nf, "%" PRIu64 " allocations but %" PRIu64 " frees", na, nf);
  hak_stats_t st = s_stats();
  size_t abandoned = st.superslabs_abandoned - st0.superslabs_abandoned;
  size_t adopted = st.superslabs_adopted - st0.superslabs_adopted;
  if (s_hakmem() && threads > (uint64_t)ring)
    S_CHECK(abandoned > 0 && adopted > 0, "%" PRIu64 " threads retired but %zu SuperSlabs abandoned, %zu adopted",
            threads - (uint64_t)ring, abandoned, adopted);
  printf("%s: PASS %.1f s (%s), ring of %d (%" PRIu64 " threads): %" PRIu64 " hops, %.2f GiB verified, %" PRIu64
         " objects replaced, %" PRIu64 " rewritten; SuperSlabs abandoned %zu, adopted %zu; remote chains %zu\n",
         s_name, elapsed, S_API_NAME, ring, threads, handled, s_gib((double)bytes), replaced, rewritten, abandoned,
         adopted, st.remote_chains_pushed - st0.remote_chains_pushed);
  return 0;
}
