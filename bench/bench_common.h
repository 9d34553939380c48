/* bench_common.h -- what the bench/ programs share: argument parsing, the
 * clock, the random streams, peak RSS, the figure lines, the block tags that
 * catch corruption, and a bounded single-producer single-consumer ring.
 *
 * Every benchmark calls the plain malloc/free symbols and never links
 * hakmem: the allocator under test is chosen with LD_PRELOAD (bench/run.sh).
 * They are built with -fno-builtin-malloc -fno-builtin-free so that the
 * compiler cannot reason allocator calls away.
 *
 * Output of every program (parsed by bench/run.sh and bench/quick.sh):
 *   Throughput = N ops/s [what was run]   (N with 3 decimals below 1000 ops/s)
 *   Peak RSS = N KiB
 * and, from bench_random_mixed and bench_random_mixed_mt_remote, the memory
 * given back once everything is freed (bench/run.sh ignores these lines):
 *   RSS at start = N KiB
 *   RSS after free-all = N KiB          (at once: what the allocator kept)
 *   RSS after free-all+trim = N KiB     (after malloc_trim(0): what it can give back)
 * and exit status 0; 1 on a NULL from malloc or a corrupted block; 2 on bad
 * arguments.
 *
 * Everything here is static and marked unused, so that a program that uses
 * part of it still compiles under -Wall -Wextra -Werror. */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define B_FN static __attribute__((unused))

/* The program's name and usage line, set by main() before parsing. */
static const char *b_prog = "bench";
static const char *b_usage = "";

B_FN void b_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
B_FN void b_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", b_prog);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

B_FN void b_usage_exit(void) __attribute__((noreturn));
B_FN void b_usage_exit(void)
{
    fprintf(stderr, "usage: %s %s\n", b_prog, b_usage);
    exit(2);
}

/* A decimal in [min, max], or the usage and exit status 2. */
B_FN uint64_t b_parse_u64(const char *s, const char *what, uint64_t min, uint64_t max)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v < min || v > max) {
        fprintf(stderr, "%s: bad %s '%s' (want %" PRIu64 "..%" PRIu64 ")\n", b_prog, what, s, min, max);
        b_usage_exit();
    }
    return (uint64_t)v;
}

B_FN double b_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The start of a timed run of worker threads: the earliest clock reading a
 * worker takes on its return from the start barrier (b_started), from
 * b_start_reset (before the workers are released) to b_start_time (after
 * they are joined: each reading happens before its join). Not the main
 * thread's reading after its own barrier wait: with more threads than
 * cores it came late whenever the workers took the cores first, and with
 * short runs after they had finished (larson's 2 ms rounds "ran" at 2,400
 * M ops/s on 2 cores). */
static _Atomic uint64_t b_t0_ns;
B_FN void b_start_reset(void) { atomic_store_explicit(&b_t0_ns, UINT64_MAX, memory_order_relaxed); }
B_FN void b_started(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    uint64_t cur = atomic_load_explicit(&b_t0_ns, memory_order_relaxed);
    /* Relaxed: the joins order every reading before b_start_time's load. */
    while (now < cur && !atomic_compare_exchange_weak_explicit(&b_t0_ns, &cur, now, memory_order_relaxed, memory_order_relaxed)) {}
}
B_FN double b_start_time(void) { return (double)atomic_load_explicit(&b_t0_ns, memory_order_relaxed) * 1e-9; }

/* Peak resident set of the whole process (getrusage: KiB on Linux). */
B_FN long b_peak_rss_kib(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    return ru.ru_maxrss;
}

/* Current resident set of the whole process, KiB (/proc/self/statm). */
B_FN long b_rss_kib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, resident = 0;
    if (f == NULL) return 0;
    if (fscanf(f, "%ld %ld", &size, &resident) != 2) resident = 0;
    fclose(f);
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/* The RSS the free-all lines compare against, taken once the program's own
 * set-up has run: the code and buffers of the clock, of /proc reading and of
 * the report formatting are touched, and the allocator has served and taken
 * back one block (its fixed per-process and per-thread state is in the
 * start). Taken cold, at the top of main, the start missed ~200-300 KiB of
 * pages that every allocator (glibc's own included) touches later and never
 * gives back, which the free-all comparison then charged to the allocator. */
B_FN long b_rss_start_kib(void)
{
    char buf[160];
    free(malloc(64));
    (void)b_rss_kib();
    snprintf(buf, sizeof buf, "%" PRIu64 " %.3f %ld %s", (uint64_t)1, b_now(), b_peak_rss_kib(), "warm");
    if (buf[0] == '\0') abort(); /* keeps the formatting from being elided */
    return b_rss_kib();
}

/* After the program freed everything it allocated: the RSS lines. malloc_trim
 * is glibc's (HAKMEM exports its own); under an allocator that has none it
 * trims glibc's unused arena, which is harmless. */
B_FN void b_report_free_all(long rss_start_kib)
{
    long now = b_rss_kib();
    malloc_trim(0);
    printf("RSS at start = %ld KiB\n", rss_start_kib);
    printf("RSS after free-all = %ld KiB\n", now);
    printf("RSS after free-all+trim = %ld KiB\n", b_rss_kib());
    fflush(stdout);
}

/* The two figure lines. `what` describes the run (no newline). Below 1000
 * ops/s (bench_large's buffers per second) the rate keeps three decimals,
 * which bench/run.sh reads; above, it is a whole number. */
B_FN void b_report(uint64_t ops, double secs, const char *what)
{
    if (secs <= 0.0) secs = 1e-9;
    double rate = (double)ops / secs;
    if (rate < 1000.0)
        printf("Throughput = %.3f ops/s [%s ops=%" PRIu64 " secs=%.3f]\n", rate, what, ops, secs);
    else
        printf("Throughput = %" PRIu64 " ops/s [%s ops=%" PRIu64 " secs=%.3f]\n", (uint64_t)(rate + 0.5), what, ops,
               secs);
    printf("Peak RSS = %ld KiB\n", b_peak_rss_kib());
    fflush(stdout);
}

/* xorshift32 (13, 17, 5): the seed project's generator, for slot choices. */
static inline uint32_t b_xorshift32(uint32_t *x)
{
    uint32_t v = *x;
    v ^= v << 13;
    v ^= v >> 17;
    v ^= v << 5;
    *x = v;
    return v;
}

/* splitmix64: seeds and sizes (64 bits, so 4 MiB ranges are uniform enough). */
static inline uint64_t b_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* A non-zero xorshift32 state derived from (seed, stream). */
B_FN uint32_t b_seed32(uint64_t seed, uint64_t stream)
{
    uint64_t x = seed * 0x100000001B3ull + stream;
    uint32_t v = (uint32_t)b_splitmix64(&x);
    return v != 0 ? v : 1;
}

/* A size uniform in [min, max] (max - min < 2^32). */
static inline size_t b_size(uint64_t *rng, size_t min, size_t span /* max - min + 1 */)
{
    if (span <= 1) return min;
    return min + (size_t)((uint32_t)b_splitmix64(rng) % span);
}

/* n zeroed elements of `size` bytes at a cache-line boundary (for arrays of
 * structs with _Alignas(64) members). Exits on failure; free() releases it. */
B_FN void *b_calloc_lines(size_t n, size_t size)
{
    if (size != 0 && n > SIZE_MAX / size - 64) b_die("array of %zu x %zu bytes is too large", n, size);
    size_t bytes = (n * size + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, bytes != 0 ? bytes : 64);
    if (p == NULL) b_die("aligned_alloc(64, %zu) failed", bytes);
    memset(p, 0, bytes);
    return p;
}

/* ---- block tags --------------------------------------------------------- */
/* The first word of every live block holds tag ^ B_TAG_KEY, written after
 * malloc and checked before free: a block handed out twice, or overwritten by
 * the allocator while live, fails the check. Blocks are at least 8 bytes. */
#define B_TAG_KEY 0x5DEECE66DA3B9F17ull

static inline void b_tag_set(void *p, uint64_t tag)
{
    *(volatile uint64_t *)p = tag ^ B_TAG_KEY;
}

static inline uint64_t b_tag_get(const void *p)
{
    return *(const volatile uint64_t *)p ^ B_TAG_KEY;
}

/* ---- bounded SPSC ring -------------------------------------------------- */
/* One producer thread pushes pointers, one consumer thread takes them
 * (the same thread may be both). tail is written by the producer only, head by
 * the consumer only, each on its own cache line beside that side's cached
 * copy of the other index, so an uncontended push or drain touches the shared
 * line only when its cached view says full / empty.
 *   push: slot write, then tail (release); the consumer reads tail (acquire)
 *         before the slot, so it sees the pointer and what was written into
 *         the block before it was pushed.
 *   take: slot read, then head (release); the producer reads head (acquire)
 *         before overwriting a slot, so it never overwrites an unread one. */
typedef struct b_ring {
    _Alignas(64) _Atomic size_t tail; /* producer */
    size_t head_seen;                 /* producer's last view of head */
    _Alignas(64) _Atomic size_t head; /* consumer */
    size_t tail_seen;                 /* consumer's last view of tail */
    _Alignas(64) size_t mask;         /* capacity - 1 (capacity a power of two) */
    void **buf;
} b_ring;

/* capacity: rounded up to a power of two, at least 2. Exits on failure. */
B_FN void b_ring_init(b_ring *r, size_t capacity)
{
    size_t cap = 2;
    while (cap < capacity) cap <<= 1;
    atomic_init(&r->tail, 0);
    atomic_init(&r->head, 0);
    r->head_seen = 0;
    r->tail_seen = 0;
    r->mask = cap - 1;
    r->buf = calloc(cap, sizeof *r->buf);
    if (r->buf == NULL) b_die("calloc of a %zu-slot ring failed", cap);
}

B_FN void b_ring_destroy(b_ring *r)
{
    free(r->buf);
    r->buf = NULL;
}

/* Producer: false when the ring is full. */
static inline bool b_ring_push(b_ring *r, void *p)
{
    size_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
    if (t - r->head_seen > r->mask) {
        r->head_seen = atomic_load_explicit(&r->head, memory_order_acquire);
        if (t - r->head_seen > r->mask) return false;
    }
    r->buf[t & r->mask] = p;
    atomic_store_explicit(&r->tail, t + 1, memory_order_release);
    return true;
}

/* Consumer: the number of pointers waiting, reading the producer's index
 * only when the cached view says empty. *first gets the head index. */
static inline size_t b_ring_avail(b_ring *r, size_t *first)
{
    size_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
    *first = h;
    if (h == r->tail_seen) r->tail_seen = atomic_load_explicit(&r->tail, memory_order_acquire);
    return r->tail_seen - h;
}

static inline void *b_ring_at(const b_ring *r, size_t i)
{
    return r->buf[i & r->mask];
}

/* Consumer: give back the slots up to (not including) index `end`. */
static inline void b_ring_release(b_ring *r, size_t end)
{
    atomic_store_explicit(&r->head, end, memory_order_release);
}

/* A short busy wait that lets an oversubscribed machine schedule the peer. */
static inline void b_backoff(unsigned *spins)
{
    if (++*spins < 64) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
    } else {
        *spins = 0;
        sched_yield();
    }
}

#endif /* BENCH_COMMON_H */
