/* bench_random_mixed: single-threaded random malloc/free churn.
 *
 * usage: bench_random_mixed [cycles=10000000] [ws=8192] [seed=1234567] [min max]
 *
 * A rebuild of the seed project's benchmark. Each iteration draws one 32-bit
 * value r from xorshift32 (13, 17, 5) and picks slot = r % ws. An occupied
 * slot is freed and emptied; an empty one gets malloc(16 + (r & 0x3FF)) and
 * its first byte written. Each malloc or free counts one op, so ops == cycles.
 * Only the loop is timed (CLOCK_MONOTONIC); what is left is checked and freed
 * afterwards.
 *
 * With min and max (1 <= min <= max, max - min < 2^32) the size is instead
 * uniform in [min, max], drawn from a second stream (splitmix64 of the seed):
 * bench/run.sh's size lanes (tiny, small, medium, large) use this.
 *
 * It uses the plain malloc/free symbols and does not link hakmem: pick the
 * allocator with LD_PRELOAD. Output (two lines, parsed by bench/quick.sh and
 * bench/run.sh):
 *   Throughput = N ops/s [iter=C ws=W ...]
 *   Peak RSS = N KiB
 * Exit status 1 when malloc returns NULL or a live block's first byte is not
 * what was written into it (the check runs after the timed loop).
 */
#include "bench_common.h"

#define USAGE "[cycles=10000000] [ws=8192] [seed=1234567] [min max]"

/* Keeps the checksum (and so every written byte) observable. */
static volatile unsigned sink;

int main(int argc, char **argv)
{
    uint64_t cycles = 10000000;
    uint32_t ws = 8192;
    uint32_t seed = 1234567;
    size_t min = 0, max = 0;
    bool uniform = false;

    long rss_start = b_rss_start_kib();
    b_prog = "bench_random_mixed";
    b_usage = USAGE;
    if (argc > 6 || argc == 5) b_usage_exit();
    if (argc > 1) cycles = b_parse_u64(argv[1], "cycles", 1, UINT64_MAX);
    if (argc > 2) ws = (uint32_t)b_parse_u64(argv[2], "ws", 1, UINT32_MAX);
    if (argc > 3) seed = (uint32_t)b_parse_u64(argv[3], "seed", 0, UINT32_MAX);
    if (argc > 5) {
        min = (size_t)b_parse_u64(argv[4], "min", 1, (uint64_t)1 << 40);
        max = (size_t)b_parse_u64(argv[5], "max", min, min + UINT32_MAX - 1);
        uniform = true;
    }
    if (seed == 0) seed = 1; /* xorshift32 is stuck at 0 */

    void **slots = calloc(ws, sizeof *slots);
    if (slots == NULL) b_die("calloc(%" PRIu32 " slots) failed", ws);

    uint32_t x = seed;
    uint64_t srng = seed;
    size_t span = max - min + 1;
    uint64_t ops = 0;

    double t0 = b_now();
    for (uint64_t i = 0; i < cycles; i++) {
        uint32_t r = b_xorshift32(&x);
        uint32_t slot = r % ws;
        void *p = slots[slot];
        if (p != NULL) {
            free(p);
            slots[slot] = NULL;
        } else {
            size_t size = uniform ? b_size(&srng, min, span) : 16 + (size_t)(r & 0x3FF);
            p = malloc(size);
            if (p == NULL) b_die("malloc(%zu) returned NULL at iter %" PRIu64, size, i);
            ((char *)p)[0] = (char)slot;
            slots[slot] = p;
        }
        ops++;
    }
    double t1 = b_now();

    /* Not timed: read back what is live (proves the writes), then free it. */
    unsigned sum = 0;
    for (uint32_t s = 0; s < ws; s++) {
        if (slots[s] != NULL) {
            char c = ((char *)slots[s])[0];
            if (c != (char)s) b_die("corruption: the block of slot %" PRIu32 " holds %d, not %d", s, c, (char)s);
            sum += (unsigned char)c;
            free(slots[s]);
        }
    }
    free(slots);
    sink = sum;

    char what[128];
    if (uniform)
        snprintf(what, sizeof what, "iter=%" PRIu64 " ws=%" PRIu32 " size=%zu-%zu", cycles, ws, min, max);
    else
        snprintf(what, sizeof what, "iter=%" PRIu64 " ws=%" PRIu32, cycles, ws);
    b_report(ops, t1 - t0, what);
    b_report_free_all(rss_start);
    return 0;
}
