/* bench_large: large buffers, where the cost is page faults and what the
 * allocator keeps committed between a free and the next malloc.
 *
 * usage: bench_large churn   [n=1000] [live=20] [min_mib=5] [max_mib=25] [seed=1234567]
 *        bench_large realloc [n=1000] [buffers=4] [min_kib=64] [max_mib=64] [seed=1234567]
 *
 * churn:   `live` buffers of min_mib..max_mib MiB (uniform, byte-granular) are
 *          kept; n times a random one is replaced: its first and last bytes
 *          are checked and it is freed, then a new size is malloc()ed and
 *          filled completely with memset (every page written). ops = n
 *          replacements. The first `live` buffers are made before the clock
 *          starts.
 * realloc: `buffers` buffers grow in rotation by realloc, each step to about
 *          1.3x the current size (rounded up to 4 KiB), from min_kib KiB to
 *          max_mib MiB; the new part is touched (one byte written per 4 KiB
 *          page, so the kernel must provide every page) and the bytes written
 *          before are checked to have moved with the block. A buffer past
 *          max_mib is freed and starts again at min_kib. The buffers start at
 *          staggered sizes, so the sizes in flight differ. ops = n realloc
 *          calls (the restarts' malloc and free are not counted).
 *
 * Output (bench_common.h): the Throughput and Peak RSS lines, then the RSS
 * at start / after free-all / after free-all+trim lines. Exit status 1 on a
 * NULL from malloc or realloc or a byte that did not survive, 2 on bad
 * arguments. Plain malloc/free/realloc: pick the allocator with LD_PRELOAD. */
#include "bench_common.h"

#define USAGE "churn|realloc [n=1000] [live|buffers] [min] [max] [seed=1234567]"
#define PAGE 4096u

static void churn(uint64_t n, uint32_t live, uint64_t min_mib, uint64_t max_mib, uint64_t seed, long rss_start)
{
    unsigned char **buf = calloc(live, sizeof *buf);
    size_t *len = calloc(live, sizeof *len);
    if (buf == NULL || len == NULL) b_die("calloc of %" PRIu32 " slots failed", live);
    size_t min = (size_t)min_mib << 20, span = ((size_t)(max_mib - min_mib) << 20) + 1;
    uint64_t rng = seed;

    for (uint32_t i = 0; i < live; i++) {
        len[i] = b_size(&rng, min, span);
        buf[i] = malloc(len[i]);
        if (buf[i] == NULL) b_die("malloc(%zu) returned NULL", len[i]);
        memset(buf[i], (int)(i & 0xFF), len[i]);
    }
    double t0 = b_now();
    for (uint64_t k = 0; k < n; k++) {
        uint32_t i = (uint32_t)(b_splitmix64(&rng) % live);
        unsigned char v = (unsigned char)(i + k);
        if (buf[i][0] != buf[i][len[i] - 1]) b_die("corruption: buffer %" PRIu32 " changed at replacement %" PRIu64, i, k);
        free(buf[i]);
        len[i] = b_size(&rng, min, span);
        buf[i] = malloc(len[i]);
        if (buf[i] == NULL) b_die("malloc(%zu) returned NULL at replacement %" PRIu64, len[i], k);
        memset(buf[i], v, len[i]);
    }
    double t1 = b_now();
    for (uint32_t i = 0; i < live; i++) {
        if (buf[i][0] != buf[i][len[i] - 1]) b_die("corruption: buffer %" PRIu32 " changed", i);
        free(buf[i]);
    }
    free(buf);
    free(len);

    char what[128];
    snprintf(what, sizeof what, "churn n=%" PRIu64 " live=%" PRIu32 " size=%" PRIu64 "-%" PRIu64 "MiB", n, live,
             min_mib, max_mib);
    b_report(n, t1 - t0, what);
    b_report_free_all(rss_start);
}

/* The next size: ~1.3x, a whole number of pages. */
static size_t grow(size_t s)
{
    size_t t = s + s / 10 * 3;
    return (t + PAGE - 1) / PAGE * PAGE;
}

/* Writes one byte per page of [from, to): page p gets the low byte of its
 * index, so a moved block can be checked anywhere. */
static void touch(unsigned char *p, size_t from, size_t to)
{
    for (size_t o = (from + PAGE - 1) / PAGE * PAGE; o < to; o += PAGE) p[o] = (unsigned char)(o / PAGE);
}

/* The first byte, the last page written and the one in the middle. */
static void check(const unsigned char *p, size_t len, uint32_t i)
{
    size_t last = (len - 1) / PAGE * PAGE, mid = len / 2 / PAGE * PAGE;
    if (p[0] != 0 || p[last] != (unsigned char)(last / PAGE) || p[mid] != (unsigned char)(mid / PAGE))
        b_die("corruption: buffer %" PRIu32 " of %zu bytes lost its contents", i, len);
}

static void realloc_growth(uint64_t n, uint32_t nbuf, uint64_t min_kib, uint64_t max_mib, long rss_start)
{
    unsigned char **buf = calloc(nbuf, sizeof *buf);
    size_t *len = calloc(nbuf, sizeof *len);
    if (buf == NULL || len == NULL) b_die("calloc of %" PRIu32 " slots failed", nbuf);
    size_t min = (size_t)min_kib << 10, max = (size_t)max_mib << 20;
    unsigned steps = 0;
    for (size_t s = min; s <= max; s = grow(s)) steps++;

    for (uint32_t i = 0; i < nbuf; i++) { /* buffer i starts i/nbuf of the way up */
        len[i] = min;
        for (unsigned k = 0; k < steps * i / nbuf; k++) len[i] = grow(len[i]);
        buf[i] = malloc(len[i]);
        if (buf[i] == NULL) b_die("malloc(%zu) returned NULL", len[i]);
        touch(buf[i], 0, len[i]);
    }
    double t0 = b_now();
    for (uint64_t k = 0; k < n; k++) {
        uint32_t i = (uint32_t)(k % nbuf);
        if (len[i] > max) { /* past the top: start again */
            free(buf[i]);
            len[i] = min;
            buf[i] = malloc(len[i]);
            if (buf[i] == NULL) b_die("malloc(%zu) returned NULL at step %" PRIu64, len[i], k);
            touch(buf[i], 0, len[i]);
        }
        size_t old = len[i];
        len[i] = grow(old);
        unsigned char *p = realloc(buf[i], len[i]);
        if (p == NULL) b_die("realloc(%zu) returned NULL at step %" PRIu64, len[i], k);
        buf[i] = p;
        check(p, old, i);
        touch(p, old, len[i]);
    }
    double t1 = b_now();
    for (uint32_t i = 0; i < nbuf; i++) {
        check(buf[i], len[i], i);
        free(buf[i]);
    }
    free(buf);
    free(len);

    char what[128];
    snprintf(what, sizeof what, "realloc n=%" PRIu64 " buffers=%" PRIu32 " size=%" PRIu64 "KiB-%" PRIu64 "MiB", n,
             nbuf, min_kib, max_mib);
    b_report(n, t1 - t0, what);
    b_report_free_all(rss_start);
}

int main(int argc, char **argv)
{
    long rss_start = b_rss_start_kib();
    b_prog = "bench_large";
    b_usage = USAGE;
    if (argc < 2 || argc > 7) b_usage_exit();
    bool is_churn = strcmp(argv[1], "churn") == 0;
    if (!is_churn && strcmp(argv[1], "realloc") != 0) b_usage_exit();

    uint64_t n = 1000, seed = 1234567;
    if (argc > 2) n = b_parse_u64(argv[2], "n", 1, UINT64_MAX);
    if (argc > 6) seed = b_parse_u64(argv[6], "seed", 0, UINT64_MAX);
    if (is_churn) {
        uint32_t live = argc > 3 ? (uint32_t)b_parse_u64(argv[3], "live", 1, 1u << 20) : 20;
        uint64_t min = argc > 4 ? b_parse_u64(argv[4], "min_mib", 1, 1u << 20) : 5;
        uint64_t max = argc > 5 ? b_parse_u64(argv[5], "max_mib", min, 1u << 20) : (min > 25 ? min : 25);
        churn(n, live, min, max, seed, rss_start);
    } else {
        uint32_t nbuf = argc > 3 ? (uint32_t)b_parse_u64(argv[3], "buffers", 1, 1u << 16) : 4;
        uint64_t min = argc > 4 ? b_parse_u64(argv[4], "min_kib", 4, 1u << 30) : 64;
        uint64_t max = argc > 5 ? b_parse_u64(argv[5], "max_mib", (min + 1023) >> 10, 1u << 20) : 64;
        if (((uint64_t)max << 20) <= (min << 10)) b_die("max_mib must be above min_kib");
        realloc_growth(n, nbuf, min, max, rss_start);
    }
    return 0;
}
