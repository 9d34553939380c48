/* bench_random_mixed_mt_remote: the seed project's remote-free benchmark.
 *
 * usage: bench_random_mixed_mt_remote <threads> <iters per thread>
 *            <ws per thread> <min> <max> <remote%> [ring slots=65536] [seed=1234567]
 *
 * Every thread runs the random_mixed toggle loop on its own ws slots: each
 * iteration first drains the thread's inbox (frees every pointer in it), then
 * draws slot = r % ws from xorshift32; an empty slot gets malloc(size) with
 * size uniform in [min, max] and a tag in its first word; an occupied slot's
 * block is checked and emptied, then, with probability remote%, pushed into
 * the next thread's inbox (thread i sends to i+1 mod T) instead of being
 * freed. A full inbox makes the sender drain its own inbox and retry: it never
 * falls back to a local free, so the remote share is what was asked. With one
 * thread, the thread is its own next thread.
 *
 * Inboxes are bounded lock-free SPSC rings (bench_common.h): single producer
 * the previous thread, single consumer the owner. A thread that finished its
 * iterations frees its slots, then keeps draining its inbox until every thread
 * has finished (so no sender waits forever on it), and drains once more.
 *
 * ops = threads x iters (one per iteration: a malloc, a free or a send).
 * Timed with CLOCK_MONOTONIC from the first worker's return from the start
 * barrier (b_started, bench_common.h) to the main thread's return from the last
 * join. Output: `Throughput = N ops/s [...]`, `Peak RSS = N KiB`; exit status 1
 * on a NULL from malloc or a corrupted tag.
 */
#include <pthread.h>

#include "bench_common.h"

#define USAGE "<threads> <iters per thread> <ws per thread> <min> <max> <remote%> [ring slots=65536] [seed=1234567]"

typedef struct worker {
    unsigned id;
    pthread_t th;
    b_ring inbox;          /* filled by the previous thread, drained by this one */
    struct worker *next;   /* whose inbox this thread sends to */
    uint64_t sent;         /* blocks sent remotely */
    uint64_t received;     /* blocks freed from the inbox */
    uint64_t freed;        /* blocks the loop freed locally */
} worker;

static unsigned g_threads;
static uint64_t g_iters;
static uint32_t g_ws;
static size_t g_min, g_span;
static uint32_t g_remote_pct;
static uint64_t g_seed;
static worker *g_workers;
static pthread_barrier_t g_start;
static _Atomic unsigned g_done;

/* A tag names the owner thread and slot: (id << 32) | slot. */
static inline uint64_t tag_of(unsigned id, uint32_t slot)
{
    return ((uint64_t)id << 32) | slot;
}

/* Free everything in w's inbox; each block must carry the sender's tag. */
static size_t drain(worker *w, unsigned sender)
{
    size_t h;
    size_t n = b_ring_avail(&w->inbox, &h);
    if (n == 0) return 0;
    for (size_t i = 0; i < n; i++) {
        void *p = b_ring_at(&w->inbox, h + i);
        uint64_t t = b_tag_get(p);
        if ((t >> 32) != sender || (uint32_t)t >= g_ws)
            b_die("corruption: thread %u received %p tagged %#" PRIx64 " (sender %u)", w->id, p, t, sender);
        free(p);
    }
    b_ring_release(&w->inbox, h + n);
    w->received += n;
    return n;
}

static void *run(void *arg)
{
    worker *w = arg;
    unsigned prev = (w->id + g_threads - 1) % g_threads;
    void **slots = calloc(g_ws, sizeof *slots);
    if (slots == NULL) b_die("calloc(%" PRIu32 " slots) failed", g_ws);
    uint32_t x = b_seed32(g_seed, 2 * w->id);
    uint32_t xr = b_seed32(g_seed, 2 * w->id + 1);
    uint64_t srng = g_seed ^ ((uint64_t)w->id << 40);
    /* remote when xr's draw < threshold: remote% of 2^32 */
    uint64_t threshold = ((uint64_t)g_remote_pct << 32) / 100;

    pthread_barrier_wait(&g_start);
    b_started();

    for (uint64_t i = 0; i < g_iters; i++) {
        drain(w, prev);
        uint32_t r = b_xorshift32(&x);
        uint32_t slot = r % g_ws;
        void *p = slots[slot];
        if (p != NULL) {
            if (b_tag_get(p) != tag_of(w->id, slot))
                b_die("corruption: thread %u slot %" PRIu32 " block %p tagged %#" PRIx64, w->id, slot, p, b_tag_get(p));
            slots[slot] = NULL;
            if (threshold != 0 && b_xorshift32(&xr) < threshold) {
                unsigned spins = 0;
                while (!b_ring_push(&w->next->inbox, p)) {
                    if (drain(w, prev) == 0) b_backoff(&spins);
                }
                w->sent++;
            } else {
                free(p);
                w->freed++;
            }
        } else {
            size_t size = b_size(&srng, g_min, g_span);
            p = malloc(size);
            if (p == NULL) b_die("thread %u: malloc(%zu) returned NULL at iter %" PRIu64, w->id, size, i);
            b_tag_set(p, tag_of(w->id, slot));
            slots[slot] = p;
        }
    }

    for (uint32_t s = 0; s < g_ws; s++) {
        if (slots[s] == NULL) continue;
        if (b_tag_get(slots[s]) != tag_of(w->id, s)) b_die("corruption: thread %u slot %" PRIu32 " at the end", w->id, s);
        free(slots[s]);
    }
    free(slots);

    /* Every send happens before its sender's increment (release); once all
     * are seen (acquire), one last drain takes whatever is still queued. */
    atomic_fetch_add_explicit(&g_done, 1, memory_order_acq_rel);
    unsigned spins = 0;
    while (atomic_load_explicit(&g_done, memory_order_acquire) < g_threads) {
        if (drain(w, prev) == 0) b_backoff(&spins);
    }
    drain(w, prev);
    return NULL;
}

int main(int argc, char **argv)
{
    long rss_start = b_rss_start_kib();
    b_prog = "bench_random_mixed_mt_remote";
    b_usage = USAGE;
    if (argc < 7 || argc > 9) b_usage_exit();
    g_threads = (unsigned)b_parse_u64(argv[1], "threads", 1, 4096);
    g_iters = b_parse_u64(argv[2], "iters per thread", 1, UINT64_MAX / 4096);
    g_ws = (uint32_t)b_parse_u64(argv[3], "ws per thread", 1, UINT32_MAX);
    g_min = (size_t)b_parse_u64(argv[4], "min", 8, (uint64_t)1 << 40);
    size_t max = (size_t)b_parse_u64(argv[5], "max", g_min, g_min + UINT32_MAX - 1);
    g_span = max - g_min + 1;
    g_remote_pct = (uint32_t)b_parse_u64(argv[6], "remote%", 0, 100);
    size_t ring = argc > 7 ? (size_t)b_parse_u64(argv[7], "ring slots", 2, (uint64_t)1 << 30) : 65536;
    g_seed = argc > 8 ? b_parse_u64(argv[8], "seed", 0, UINT64_MAX) : 1234567;

    g_workers = b_calloc_lines(g_threads, sizeof *g_workers);
    for (unsigned i = 0; i < g_threads; i++) {
        g_workers[i].id = i;
        g_workers[i].next = &g_workers[(i + 1) % g_threads];
        b_ring_init(&g_workers[i].inbox, ring);
    }
    if (pthread_barrier_init(&g_start, NULL, g_threads + 1) != 0) b_die("pthread_barrier_init failed");
    for (unsigned i = 0; i < g_threads; i++) {
        int e = pthread_create(&g_workers[i].th, NULL, run, &g_workers[i]);
        if (e != 0) b_die("pthread_create: error %d", e);
    }

    b_start_reset();
    pthread_barrier_wait(&g_start);
    for (unsigned i = 0; i < g_threads; i++) pthread_join(g_workers[i].th, NULL);
    double t1 = b_now(), t0 = b_start_time();

    uint64_t sent = 0, received = 0, freed = 0;
    for (unsigned i = 0; i < g_threads; i++) {
        sent += g_workers[i].sent;
        received += g_workers[i].received;
        freed += g_workers[i].freed;
    }
    if (sent != received) b_die("lost blocks: %" PRIu64 " sent, %" PRIu64 " received", sent, received);
    uint64_t ops = (uint64_t)g_threads * g_iters;

    char what[192];
    snprintf(what, sizeof what, "threads=%u iter=%" PRIu64 " ws=%" PRIu32 " size=%zu-%zu remote=%" PRIu32
             "%% sent=%" PRIu64 " (%.1f%% of frees) ring=%zu",
             g_threads, g_iters, g_ws, g_min, max, g_remote_pct, sent,
             sent + freed ? 100.0 * (double)sent / (double)(sent + freed) : 0.0, g_workers[0].inbox.mask + 1);
    b_report(ops, t1 - t0, what);

    for (unsigned i = 0; i < g_threads; i++) b_ring_destroy(&g_workers[i].inbox);
    free(g_workers);
    pthread_barrier_destroy(&g_start);
    b_report_free_all(rss_start);
    return 0;
}
