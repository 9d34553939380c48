/* bench_larson: Larson-style server churn (Larson and Krishnan, "Memory
 * allocation for long-running server applications", ISMM 1998).
 *
 * usage: bench_larson <threads> <rounds> <iters per thread per round>
 *            <blocks per thread> <min> <max> [seed=1234567]
 *
 * A shared array of threads x blocks pointers is filled once (by the main
 * thread, not timed). Then, round after round, `threads` new threads each take
 * one segment of the array and replace random slots in it: check the old
 * block's tag, free it, malloc a new one with a size uniform in [min, max],
 * tag it. When a thread has done its iterations it exits and hands its
 * segment on to the next round's thread (a new thread, as in the original,
 * where each worker spawns its successor): the blocks it allocated are freed
 * by a thread that did not allocate them, after their owner exited. So this
 * measures churn with cross-thread frees, thread start-up and thread exit.
 *
 * ops = rounds x threads x iters x 2 (each replacement is one free and one
 * malloc). Each round is timed with CLOCK_MONOTONIC from the first worker's
 * return from the start barrier to the main thread's return from the last
 * join, and the rounds' times are summed (creating the threads is not timed;
 * their first malloc and their exit are; the start is b_started's,
 * bench_common.h).
 * Output: `Throughput = N ops/s [...]`, `Peak RSS = N KiB`; exit status 1 on a
 * NULL from malloc or a corrupted tag.
 */
#include <pthread.h>

#include "bench_common.h"

#define USAGE "<threads> <rounds> <iters per thread per round> <blocks per thread> <min> <max> [seed=1234567]"

typedef struct job {
    unsigned round, seg;
    pthread_t th;
} job;

static unsigned g_threads;
static uint64_t g_iters;
static uint32_t g_blocks;
static size_t g_min, g_span;
static uint64_t g_seed;
static void **g_array;
static pthread_barrier_t g_start;

static void *run(void *arg)
{
    job *j = arg;
    void **seg = g_array + (size_t)j->seg * g_blocks;
    uint64_t base = (uint64_t)j->seg * g_blocks; /* tags: the array index */
    uint64_t stream = (uint64_t)j->round * g_threads + j->seg;
    uint32_t x = b_seed32(g_seed, 2 * stream);
    uint64_t srng = g_seed ^ (stream << 24) ^ 0xA5A5A5A5ull;

    pthread_barrier_wait(&g_start);
    b_started();

    for (uint64_t i = 0; i < g_iters; i++) {
        uint32_t k = b_xorshift32(&x) % g_blocks;
        void *p = seg[k];
        if (b_tag_get(p) != base + k)
            b_die("corruption: round %u segment %u slot %" PRIu32 " block %p tagged %#" PRIx64,
                  j->round, j->seg, k, p, b_tag_get(p));
        free(p);
        size_t size = b_size(&srng, g_min, g_span);
        p = malloc(size);
        if (p == NULL) b_die("round %u thread %u: malloc(%zu) returned NULL", j->round, j->seg, size);
        b_tag_set(p, base + k);
        seg[k] = p;
    }
    return NULL;
}

int main(int argc, char **argv)
{
    b_prog = "bench_larson";
    b_usage = USAGE;
    if (argc < 7 || argc > 8) b_usage_exit();
    g_threads = (unsigned)b_parse_u64(argv[1], "threads", 1, 4096);
    unsigned rounds = (unsigned)b_parse_u64(argv[2], "rounds", 1, 1u << 20);
    g_iters = b_parse_u64(argv[3], "iters per thread per round", 1, UINT64_MAX >> 34);
    g_blocks = (uint32_t)b_parse_u64(argv[4], "blocks per thread", 1, 1u << 24);
    g_min = (size_t)b_parse_u64(argv[5], "min", 8, (uint64_t)1 << 40);
    size_t max = (size_t)b_parse_u64(argv[6], "max", g_min, g_min + UINT32_MAX - 1);
    g_span = max - g_min + 1;
    g_seed = argc > 7 ? b_parse_u64(argv[7], "seed", 0, UINT64_MAX) : 1234567;

    size_t n = (size_t)g_threads * g_blocks;
    g_array = calloc(n, sizeof *g_array);
    job *jobs = calloc(g_threads, sizeof *jobs);
    if (g_array == NULL || jobs == NULL) b_die("calloc of %zu slots failed", n);
    uint64_t srng = g_seed;
    for (size_t k = 0; k < n; k++) {
        size_t size = b_size(&srng, g_min, g_span);
        g_array[k] = malloc(size);
        if (g_array[k] == NULL) b_die("initial malloc(%zu) returned NULL", size);
        b_tag_set(g_array[k], k);
    }
    if (pthread_barrier_init(&g_start, NULL, g_threads + 1) != 0) b_die("pthread_barrier_init failed");

    double secs = 0.0;
    for (unsigned r = 0; r < rounds; r++) {
        for (unsigned t = 0; t < g_threads; t++) {
            jobs[t].round = r;
            jobs[t].seg = t;
            int e = pthread_create(&jobs[t].th, NULL, run, &jobs[t]);
            if (e != 0) b_die("pthread_create: error %d", e);
        }
        b_start_reset();
        pthread_barrier_wait(&g_start);
        for (unsigned t = 0; t < g_threads; t++) pthread_join(jobs[t].th, NULL);
        secs += b_now() - b_start_time();
    }

    for (size_t k = 0; k < n; k++) {
        if (b_tag_get(g_array[k]) != k) b_die("corruption: slot %zu at the end", k);
        free(g_array[k]);
    }
    free(g_array);
    free(jobs);
    pthread_barrier_destroy(&g_start);

    char what[160];
    snprintf(what, sizeof what, "threads=%u rounds=%u iter=%" PRIu64 " blocks=%" PRIu32 " size=%zu-%zu",
             g_threads, rounds, g_iters, g_blocks, g_min, max);
    b_report((uint64_t)rounds * g_threads * g_iters * 2, secs, what);
    return 0;
}
