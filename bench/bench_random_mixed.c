/* bench_random_mixed: single-threaded random malloc/free churn.
 *
 * usage: bench_random_mixed [cycles=10000000] [ws=8192] [seed=1234567]
 *
 * A rebuild of the seed project's benchmark. Each iteration draws one 32-bit
 * value r from xorshift32 (13, 17, 5) and picks slot = r % ws. An occupied
 * slot is freed and emptied; an empty one gets malloc(16 + (r & 0x3FF)) and
 * its first byte written. Each malloc or free counts one op, so ops == cycles.
 * Only the loop is timed (CLOCK_MONOTONIC); what is left is freed afterwards.
 *
 * It uses the plain malloc/free symbols and does not link hakmem: pick the
 * allocator with LD_PRELOAD. Output (two lines, parsed by bench/quick.sh):
 *   Throughput = N ops/s [iter=C ws=W]
 *   Peak RSS = N KiB
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

static uint64_t parse_u64(const char *s, const char *what, uint64_t min, uint64_t max)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v < min || v > max) {
        fprintf(stderr, "bench_random_mixed: bad %s '%s' (want %" PRIu64 "..%" PRIu64 ")\n",
                what, s, min, max);
        fprintf(stderr, "usage: bench_random_mixed [cycles=10000000] [ws=8192] [seed=1234567]\n");
        exit(2);
    }
    return (uint64_t)v;
}

static double now_sec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Keeps the checksum (and so every written byte) observable. */
static volatile unsigned sink;

int main(int argc, char **argv)
{
    uint64_t cycles = 10000000;
    uint32_t ws = 8192;
    uint32_t seed = 1234567;

    if (argc > 4) {
        fprintf(stderr, "usage: bench_random_mixed [cycles=10000000] [ws=8192] [seed=1234567]\n");
        return 2;
    }
    if (argc > 1) cycles = parse_u64(argv[1], "cycles", 1, UINT64_MAX);
    if (argc > 2) ws = (uint32_t)parse_u64(argv[2], "ws", 1, UINT32_MAX);
    if (argc > 3) seed = (uint32_t)parse_u64(argv[3], "seed", 0, UINT32_MAX);
    if (seed == 0) seed = 1; /* xorshift32 is stuck at 0 */

    void **slots = calloc(ws, sizeof *slots);
    if (slots == NULL) {
        fprintf(stderr, "bench_random_mixed: calloc(%" PRIu32 " slots) failed\n", ws);
        return 1;
    }

    uint32_t x = seed;
    uint64_t ops = 0;

    double t0 = now_sec();
    for (uint64_t i = 0; i < cycles; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        uint32_t r = x;
        uint32_t slot = r % ws;
        void *p = slots[slot];
        if (p != NULL) {
            free(p);
            slots[slot] = NULL;
        } else {
            p = malloc(16 + (size_t)(r & 0x3FF));
            if (p == NULL) {
                fprintf(stderr, "bench_random_mixed: malloc(%u) returned NULL at iter %" PRIu64 "\n",
                        16 + (unsigned)(r & 0x3FF), i);
                return 1;
            }
            ((char *)p)[0] = (char)r;
            slots[slot] = p;
        }
        ops++;
    }
    double t1 = now_sec();

    /* Not timed: read back what is live (proves the writes), then free it. */
    unsigned sum = 0;
    for (uint32_t s = 0; s < ws; s++) {
        if (slots[s] != NULL) {
            sum += (unsigned char)((char *)slots[s])[0];
            free(slots[s]);
        }
    }
    free(slots);
    sink = sum;

    double secs = t1 - t0;
    if (secs <= 0.0) secs = 1e-9;
    uint64_t thr = (uint64_t)((double)ops / secs + 0.5);

    struct rusage ru;
    long maxrss = 0;
    if (getrusage(RUSAGE_SELF, &ru) == 0) maxrss = ru.ru_maxrss; /* KiB on Linux */

    printf("Throughput = %" PRIu64 " ops/s [iter=%" PRIu64 " ws=%" PRIu32 "]\n", thr, cycles, ws);
    printf("Peak RSS = %ld KiB\n", maxrss);
    return 0;
}
