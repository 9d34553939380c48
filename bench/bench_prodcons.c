/* bench_prodcons: producers allocate, consumers free (every free is remote).
 *
 * usage: bench_prodcons <pairs> <objects per producer> <min> <max>
 *            [ring slots=1024] [seed=1234567]
 *
 * 2 x pairs threads: producer i mallocs `objects` blocks (sizes uniform in
 * [min, max]), writes a tag (its id and a sequence number) into each and
 * pushes it into ring i, a bounded lock-free SPSC ring (bench_common.h);
 * consumer i takes the blocks from ring i, checks that the tags arrive in
 * order and frees them. Nobody frees a block it allocated. A producer facing
 * a full ring, or a consumer facing an empty one, spins a little, then yields.
 *
 * ops = pairs x objects: one op is one object allocated, handed over and
 * freed, so ops/s here is objects per second. Timed with CLOCK_MONOTONIC from
 * the first thread's return from the start barrier (b_started, bench_common.h)
 * to the main thread's return from the last join. Output: `Throughput = N ops/s
 * [...]`, `Peak RSS = N KiB`; exit status 1 on a NULL from malloc or a lost,
 * doubled or corrupted object.
 */
#include <pthread.h>

#include "bench_common.h"

#define USAGE "<pairs> <objects per producer> <min> <max> [ring slots=1024] [seed=1234567]"

typedef struct pair {
    b_ring ring;
    pthread_t prod, cons;
    unsigned id;
} pair;

static uint64_t g_objects;
static size_t g_min, g_span;
static uint64_t g_seed;
static pthread_barrier_t g_start;

static void *producer(void *arg)
{
    pair *pr = arg;
    uint64_t srng = g_seed ^ ((uint64_t)pr->id << 40);
    pthread_barrier_wait(&g_start);
    b_started();
    for (uint64_t i = 0; i < g_objects; i++) {
        size_t size = b_size(&srng, g_min, g_span);
        void *p = malloc(size);
        if (p == NULL) b_die("producer %u: malloc(%zu) returned NULL", pr->id, size);
        b_tag_set(p, ((uint64_t)pr->id << 40) | i);
        unsigned spins = 0;
        while (!b_ring_push(&pr->ring, p)) b_backoff(&spins);
    }
    return NULL;
}

static void *consumer(void *arg)
{
    pair *pr = arg;
    uint64_t expect = (uint64_t)pr->id << 40;
    uint64_t end = expect + g_objects;
    pthread_barrier_wait(&g_start);
    b_started();
    unsigned spins = 0;
    while (expect != end) {
        size_t h;
        size_t n = b_ring_avail(&pr->ring, &h);
        if (n == 0) {
            b_backoff(&spins);
            continue;
        }
        for (size_t i = 0; i < n; i++) {
            void *p = b_ring_at(&pr->ring, h + i);
            uint64_t t = b_tag_get(p);
            if (t != expect) b_die("consumer %u: object %p tagged %#" PRIx64 ", expected %#" PRIx64, pr->id, p, t, expect);
            expect++;
            free(p);
        }
        b_ring_release(&pr->ring, h + n);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    b_prog = "bench_prodcons";
    b_usage = USAGE;
    if (argc < 5 || argc > 7) b_usage_exit();
    unsigned pairs = (unsigned)b_parse_u64(argv[1], "pairs", 1, 2048);
    g_objects = b_parse_u64(argv[2], "objects per producer", 1, (uint64_t)1 << 40);
    g_min = (size_t)b_parse_u64(argv[3], "min", 8, (uint64_t)1 << 40);
    size_t max = (size_t)b_parse_u64(argv[4], "max", g_min, g_min + UINT32_MAX - 1);
    g_span = max - g_min + 1;
    size_t ring = argc > 5 ? (size_t)b_parse_u64(argv[5], "ring slots", 2, (uint64_t)1 << 30) : 1024;
    g_seed = argc > 6 ? b_parse_u64(argv[6], "seed", 0, UINT64_MAX) : 1234567;

    pair *prs = b_calloc_lines(pairs, sizeof *prs);
    for (unsigned i = 0; i < pairs; i++) {
        prs[i].id = i;
        b_ring_init(&prs[i].ring, ring);
    }
    if (pthread_barrier_init(&g_start, NULL, 2 * pairs + 1) != 0) b_die("pthread_barrier_init failed");
    for (unsigned i = 0; i < pairs; i++) {
        int e = pthread_create(&prs[i].cons, NULL, consumer, &prs[i]);
        if (e == 0) e = pthread_create(&prs[i].prod, NULL, producer, &prs[i]);
        if (e != 0) b_die("pthread_create: error %d", e);
    }

    b_start_reset();
    pthread_barrier_wait(&g_start);
    for (unsigned i = 0; i < pairs; i++) {
        pthread_join(prs[i].prod, NULL);
        pthread_join(prs[i].cons, NULL);
    }
    double t1 = b_now(), t0 = b_start_time();

    for (unsigned i = 0; i < pairs; i++) b_ring_destroy(&prs[i].ring);
    size_t cap = prs[0].ring.mask + 1;
    free(prs);
    pthread_barrier_destroy(&g_start);

    char what[160];
    snprintf(what, sizeof what, "pairs=%u threads=%u objects=%" PRIu64 "/producer size=%zu-%zu ring=%zu",
             pairs, 2 * pairs, g_objects, g_min, max, cap);
    b_report((uint64_t)pairs * g_objects, t1 - t0, what);
    return 0;
}
