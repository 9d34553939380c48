/* stress_prodcons.c -- producer-consumer torture.
 *
 * P producers allocate objects of mixed sizes (16 B to 256 KiB, some large),
 * fill every byte with a pattern derived from the object's id and pass them
 * through C queues to C consumer slots. Consumers verify every byte and free
 * the objects: nearly every free is remote (a producer allocated it); half
 * the consumer threads also allocate a little, so their remote frees are
 * batched in an outbox, the others never get a heap of their own. Each
 * consumer thread retires after a few thousand objects and the supervisor
 * (main) starts a new thread in its slot, so outboxes are flushed at thread
 * exit and heaps are recycled while frees are in flight. Producers free a
 * few objects of their own (local frees) too.
 *
 * At the end every object was verified once and freed once: a bitmap per
 * producer marks each id as it is consumed (a second mark or a missing one
 * fails the run).
 *
 * usage: stress_prodcons [seconds=10] [producers=4] [consumers=4] */
#include "stress_common.h"

#define MAX_SIDES    64
#define QUEUE_CAP    512
#define BATCH        16
#define MAX_PER_PROD ((uint64_t)1 << 26) /* ids per producer (bitmap size) */

typedef struct {
  int idx;
  uint64_t produced; /* read by main after join */
  uint64_t local_frees;
} producer;

typedef struct {
  int slot;
  int quota;
  bool allocates; /* half the consumer threads also allocate (they get a heap and batch their remote frees in
                     its outbox); the others only free (each remote free is pushed alone) */
  uint64_t consumed, bytes;
  bool finished; /* under sup_mu */
  bool running;  /* main's own */
  pthread_t thread;
} consumer;

static int n_prod, n_cons;
static s_queue queues[MAX_SIDES];
static _Atomic uint64_t *seen[MAX_SIDES]; /* per producer, one bit per id */
static _Atomic bool stop;
static consumer cons[MAX_SIDES];
static pthread_mutex_t sup_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t sup_cv = PTHREAD_COND_INITIALIZER;
static int prods_done; /* under sup_mu */
static _Atomic uint64_t total_consumed, total_bytes;

static uint64_t make_id(int prod, uint64_t seq) { return ((uint64_t)prod << 40) | seq; }

static void *producer_main(void *arg) {
  producer *pr = arg;
  uint64_t rng = s_rng_init(1000 + (uint64_t)pr->idx);
  s_item batch[BATCH];
  int nb = 0, target = pr->idx % n_cons;
  uint64_t seq = 0;
  while (!atomic_load_explicit(&stop, memory_order_relaxed) && seq < MAX_PER_PROD) {
    size_t n = s_mixed_size(&rng);
    uint64_t id = make_id(pr->idx, seq);
    void *p = S_MALLOC(n);
    S_CHECK(p != NULL, "producer %d: malloc(%zu) failed: %s", pr->idx, n, strerror(errno));
    S_CHECK(s_aligned(p, 16) && s_owns(p), "producer %d: malloc(%zu) = %p: misaligned or not HAKMEM's", pr->idx, n, p);
    s_fill(p, n, id);
    if (s_below(&rng, 64) == 0) { /* a local free now and then: the owner's own path */
      void *q = S_MALLOC(n / 2 + 16);
      S_CHECK(q != NULL, "producer %d: malloc failed", pr->idx);
      s_fill(q, n / 2 + 16, ~id);
      s_verify(p, n, id, "producer, before a local free");
      s_verify(q, n / 2 + 16, ~id, "producer, local object");
      S_FREE(q);
      pr->local_frees++;
    }
    batch[nb++] = (s_item){p, n, id};
    seq++;
    if (nb == BATCH) {
      s_queue_push(&queues[target], batch, (size_t)nb);
      nb = 0;
      target = (int)s_below(&rng, (uint64_t)n_cons);
    }
  }
  if (nb) s_queue_push(&queues[target], batch, (size_t)nb);
  pr->produced = seq;
  pthread_mutex_lock(&sup_mu);
  prods_done++;
  pthread_cond_signal(&sup_cv);
  pthread_mutex_unlock(&sup_mu);
  return NULL;
}

static void consume(consumer *c, const s_item *it) {
  int prod = (int)(it->id >> 40);
  uint64_t seq = it->id & (((uint64_t)1 << 40) - 1);
  S_CHECK(prod < n_prod && seq < MAX_PER_PROD, "consumer: impossible id %#" PRIx64, it->id);
  S_CHECK(S_USABLE(it->p) >= it->n, "consumer: usable size %zu of %p < %zu requested", (size_t)S_USABLE(it->p), it->p,
          it->n);
  s_verify(it->p, it->n, it->id, "consumer");
  uint64_t bit = (uint64_t)1 << (seq & 63);
  uint64_t old = atomic_fetch_or_explicit(&seen[prod][seq >> 6], bit, memory_order_relaxed);
  S_CHECK((old & bit) == 0, "object id %#" PRIx64 " consumed twice", it->id);
  S_FREE(it->p);
  if (c->allocates && (c->consumed & 7) == 0) {
    size_t n = 16 + (size_t)(it->id % 500);
    void *q = S_MALLOC(n);
    S_CHECK(q != NULL, "consumer: malloc(%zu) failed: %s", n, strerror(errno));
    s_fill(q, n, it->id ^ 0xabc);
    s_verify(q, n, it->id ^ 0xabc, "consumer, its own object");
    S_FREE(q);
  }
  c->consumed++;
  c->bytes += it->n;
}

static void *consumer_main(void *arg) {
  consumer *c = arg;
  s_item items[BATCH * 2];
  int done = 0;
  while (done < c->quota) {
    size_t n = s_queue_pop(&queues[c->slot], items, BATCH * 2);
    if (n == 0) break; /* closed and drained */
    for (size_t i = 0; i < n; i++) consume(c, &items[i]);
    done += (int)n;
  }
  atomic_fetch_add(&total_consumed, c->consumed);
  atomic_fetch_add(&total_bytes, c->bytes);
  s_signal_finished(&sup_mu, &sup_cv, &c->finished);
  return NULL;
}

static void start_consumer(int slot, uint64_t *rng) {
  consumer *c = &cons[slot];
  c->allocates = s_below(rng, 2) == 0;
  c->slot = slot;
  c->quota = (int)s_range(rng, 2000, 6000); /* "every few thousand objects" */
  c->consumed = c->bytes = 0;
  c->finished = false;
  c->running = true;
  s_spawn(&c->thread, consumer_main, c);
}

int main(int argc, char **argv) {
  s_parse(argc, argv, "stress_prodcons", 10, "[producers=4] [consumers=4]");
  n_prod = s_threads(0, 4);
  n_cons = s_threads(1, 4);
  S_CHECK(n_prod <= MAX_SIDES && n_cons <= MAX_SIDES, "at most %d producers and %d consumers", MAX_SIDES, MAX_SIDES);
  s_start_watchdog();
  uint64_t rng = s_rng_init(1);
  for (int i = 0; i < n_cons; i++) s_queue_init(&queues[i], QUEUE_CAP);
  for (int i = 0; i < n_prod; i++) seen[i] = s_xalloc(MAX_PER_PROD / 8);

  producer prods[MAX_SIDES];
  pthread_t pt[MAX_SIDES];
  double t0 = s_now();
  for (int i = 0; i < n_cons; i++) start_consumer(i, &rng);
  for (int i = 0; i < n_prod; i++) {
    prods[i] = (producer){.idx = i};
    s_spawn(&pt[i], producer_main, &prods[i]);
  }

  /* Supervise: replace every consumer that used up its quota; when time is
   * up stop the producers, and once they are done close the queues, so the
   * consumers drain what is left and finish. Producers may be blocked on a
   * full queue whose slot waits for its next consumer, so main never blocks
   * on anything but the supervision condition variable. */
  uint64_t spawned = (uint64_t)n_cons;
  enum { RUNNING, STOPPING, CLOSED } state = RUNNING;
  int live = n_cons;
  pthread_mutex_lock(&sup_mu);
  while (live > 0) {
    if (state == RUNNING && s_now() - t0 >= s_seconds) {
      atomic_store(&stop, true);
      state = STOPPING;
    }
    if (state == STOPPING && prods_done == n_prod) {
      pthread_mutex_unlock(&sup_mu);
      for (int i = 0; i < n_prod; i++) pthread_join(pt[i], NULL);
      for (int i = 0; i < n_cons; i++) s_queue_close(&queues[i]);
      state = CLOSED;
      pthread_mutex_lock(&sup_mu);
    }
    int done = -1;
    for (int i = 0; i < n_cons && done < 0; i++)
      if (cons[i].running && cons[i].finished) done = i;
    if (done < 0) {
      s_cond_wait_ms(&sup_cv, &sup_mu, 20);
      continue;
    }
    pthread_mutex_unlock(&sup_mu);
    pthread_join(cons[done].thread, NULL);
    cons[done].running = false;
    live--;
    /* A consumer that stopped short of its quota found its queue closed and
     * empty: its slot is finished. Otherwise a fresh thread takes over. */
    if (cons[done].consumed >= (uint64_t)cons[done].quota) {
      start_consumer(done, &rng);
      spawned++;
      live++;
    }
    pthread_mutex_lock(&sup_mu);
  }
  pthread_mutex_unlock(&sup_mu);
  double elapsed = s_now() - t0;

  /* Every object verified once and freed once. */
  uint64_t produced = 0, local_frees = 0;
  for (int i = 0; i < n_prod; i++) {
    produced += prods[i].produced;
    local_frees += prods[i].local_frees;
    for (uint64_t s = 0; s < prods[i].produced; s++)
      if (!(atomic_load_explicit(&seen[i][s >> 6], memory_order_relaxed) & ((uint64_t)1 << (s & 63))))
        s_fail("object id %#" PRIx64 " was produced but never consumed", make_id(i, s));
  }
  uint64_t consumed = atomic_load(&total_consumed);
  S_CHECK(consumed == produced, "produced %" PRIu64 " objects, consumed %" PRIu64, produced, consumed);
  S_CHECK(produced > 0, "no object was produced in %.1f s", elapsed);
  hak_stats_t st = s_stats();
  printf("%s: PASS %.1f s (%s), %d producers, %d consumers (%" PRIu64 " consumer threads): %" PRIu64
         " objects, %.2f GiB verified, %" PRIu64 " local frees; remote chains %zu, blocks %zu\n",
         s_name, elapsed, S_API_NAME, n_prod, n_cons, spawned, produced, s_gib((double)atomic_load(&total_bytes)),
         local_frees, st.remote_chains_pushed, st.remote_blocks_pushed);
  return 0;
}
