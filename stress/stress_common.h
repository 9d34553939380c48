/* stress_common.h -- what every stress program shares: the allocator entry
 * points under one set of names, option parsing, a deterministic byte
 * pattern, a monotonic clock, a bounded queue, a watchdog and the failure
 * report.
 *
 * One source, two builds:
 *   -DSTRESS_HAK  S_MALLOC is hak_malloc & co. (include/hakmem.h), linked to
 *                 libhakmem.a. This is how the tsan and asan presets run them:
 *                 the sanitizer owns malloc, HAKMEM is called by name.
 *   plain         S_MALLOC is malloc & co., run under
 *                 LD_PRELOAD=libhakmem.so (release preset, stress/soak.sh).
 *                 The program refuses to run when HAKMEM is not the malloc
 *                 (unless --system: a baseline run on the C library).
 *
 * Usage of every program: stress_X [options] [seconds] [threads...]
 *   --seed=N       the seed (default: from the clock; printed on failure)
 *   --system       plain build only: allow running without libhakmem.so
 *   --selftest=K   provoke a sanitizer report (K: race, asan, ubsan) and
 *                  exit 0 if none stopped the program: proves reports fail
 *
 * Everything here is static: a program that uses half of it still compiles
 * under -Wall -Wextra -Werror. */
#ifndef STRESS_COMMON_H
#define STRESS_COMMON_H

#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "hakmem.h"
#include "hakmem_testing.h"

/* Functions of this header: a program may use any subset of them. */
#define S_FN static __attribute__((unused))

/* ---- sanitizer detection and defaults ------------------------------------ */

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define S_TSAN 1
#endif
#if __has_feature(address_sanitizer)
#define S_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__) && !defined(S_TSAN)
#define S_TSAN 1
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(S_ASAN)
#define S_ASAN 1
#endif
#if defined(S_TSAN) || defined(S_ASAN)
#define S_SANITIZED 1
#define S_SLOWDOWN 4 /* sanitizers run the same work several times slower */
#else
#define S_SLOWDOWN 1
#endif

/* A sanitizer report must stop the run with a failure even when the program
 * is started by hand without the presets' *SAN_OPTIONS (which override
 * these). */
#ifdef S_TSAN
const char *__tsan_default_options(void);
/* atexit_sleep_ms=0: TSan otherwise sleeps 1 s in every exit(), which would
 * make each child of stress_fork take a second. */
const char *__tsan_default_options(void) {
  return "halt_on_error=1:abort_on_error=1:second_deadlock_stack=1:atexit_sleep_ms=0";
}
#endif
#ifdef S_ASAN
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "halt_on_error=1:abort_on_error=1:detect_leaks=0"; }
const char *__ubsan_default_options(void);
const char *__ubsan_default_options(void) { return "halt_on_error=1:print_stacktrace=1"; }
#endif

/* ---- the allocator under test ------------------------------------------- */

#ifdef STRESS_HAK
#define S_MALLOC(n)               hak_malloc(n)
#define S_FREE(p)                 hak_free(p)
#define S_CALLOC(n, m)            hak_calloc((n), (m))
#define S_REALLOC(p, n)           hak_realloc((p), (n))
#define S_POSIX_MEMALIGN(o, a, n) hak_posix_memalign((o), (a), (n))
#define S_ALIGNED_ALLOC(a, n)     hak_aligned_alloc((a), (n))
#define S_MEMALIGN(a, n)          hak_memalign((a), (n))
#define S_USABLE(p)               hak_usable_size(p)
#define S_API_NAME                "hak_ API, libhakmem.a"
#else
#define S_MALLOC(n)               malloc(n)
#define S_FREE(p)                 free(p)
#define S_CALLOC(n, m)            calloc((n), (m))
#define S_REALLOC(p, n)           realloc((p), (n))
#define S_POSIX_MEMALIGN(o, a, n) posix_memalign((o), (a), (n))
#define S_ALIGNED_ALLOC(a, n)     aligned_alloc((a), (n))
#define S_MEMALIGN(a, n)          memalign((a), (n))
#define S_USABLE(p)               malloc_usable_size(p)
#define S_API_NAME                "malloc family, LD_PRELOAD"
#endif

#define S_KIB ((size_t)1024)
#define S_MIB ((size_t)1024 * 1024)

/* ---- failure report ---------------------------------------------------------- */

static const char *s_name = "stress";
static uint64_t s_seed;

/* Print one line and end the process at once with status 1: other threads
 * may be mid-operation, so no exit handlers run. */
__attribute__((format(printf, 1, 2), noreturn, noinline, unused)) static void s_fail(const char *fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  int k = snprintf(buf, sizeof buf, "%s: FAIL (seed=%" PRIu64 "): ", s_name, s_seed);
  if (k < 0) k = 0;
  if ((size_t)k < sizeof buf) k += vsnprintf(buf + k, sizeof buf - (size_t)k, fmt, ap);
  va_end(ap);
  if ((size_t)k >= sizeof buf - 1) k = (int)sizeof buf - 2;
  buf[k++] = '\n';
  ssize_t w = write(2, buf, (size_t)k);
  (void)w;
  _exit(1);
}

#define S_CHECK(cond, ...)        \
  do {                            \
    if (!(cond)) s_fail(__VA_ARGS__); \
  } while (0)

/* ---- clock, random numbers, sizes ------------------------------------------ */

static inline double s_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Supervisors: wait on cv (mu held) at most ms milliseconds, then re-check. */
static inline void s_cond_wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu, long ms) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_nsec += ms * 1000 * 1000;
  ts.tv_sec += ts.tv_nsec / 1000000000;
  ts.tv_nsec %= 1000000000;
  pthread_cond_timedwait(cv, mu, &ts);
}

/* Workers: set *finished under mu and wake the supervisor. */
static inline void s_signal_finished(pthread_mutex_t *mu, pthread_cond_t *cv, bool *finished) {
  pthread_mutex_lock(mu);
  *finished = true;
  pthread_cond_signal(cv);
  pthread_mutex_unlock(mu);
}

static inline void s_sleep(double seconds) {
  struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static inline uint64_t s_mix64(uint64_t x) { /* splitmix64's finaliser */
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

/* xorshift64*; s must not be 0 (s_rng_init sees to that). */
static inline uint64_t s_rand(uint64_t *s) {
  uint64_t x = *s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *s = x;
  return x * 0x2545f4914f6cdd1dull;
}

static inline uint64_t s_rng_init(uint64_t stream) { return s_mix64(s_seed ^ s_mix64(stream)) | 1; }

static inline uint64_t s_below(uint64_t *s, uint64_t n) { return (s_rand(s) >> 11) % n; }

static inline size_t s_range(uint64_t *s, size_t lo, size_t hi) { /* lo..hi inclusive */
  return lo + (size_t)s_below(s, hi - lo + 1);
}

/* A mixed request size, 16 B to 256 KiB: mostly small, some medium, a few
 * large (above 128 KiB: a mapping of their own). */
static inline size_t s_mixed_size(uint64_t *s) {
  unsigned pick = (unsigned)s_below(s, 1000);
  if (pick < 600) return s_range(s, 16, 256);
  if (pick < 800) return s_range(s, 257, 2048);
  if (pick < 920) return s_range(s, 2049, 16 * 1024);
  if (pick < 975) return s_range(s, 16 * 1024 + 1, 128 * 1024);
  return s_range(s, 128 * 1024 + 1, 256 * 1024);
}

/* ---- the pattern ------------------------------------------------------------- */

/* Byte i of an object with identity id is byte (i & 7) of word i >> 3 of a
 * stream derived from id, so a byte that was overwritten, shifted, or belongs
 * to another object (another id) does not match. */
static inline uint64_t s_pat_word(uint64_t base, size_t w) { return base ^ ((uint64_t)w * 0xd6e8feb86659fd93ull); }

static inline uint8_t s_pat_byte(uint64_t base, size_t i) { return (uint8_t)(s_pat_word(base, i >> 3) >> ((i & 7) * 8)); }

/* Fill bytes [from, to) of p with id's pattern. */
S_FN void s_fill_range(void *p, size_t from, size_t to, uint64_t id) {
  uint8_t *b = p;
  uint64_t base = s_mix64(id);
  size_t i = from;
  for (; i < to && ((uintptr_t)(b + i) & 7) != 0; i++) b[i] = s_pat_byte(base, i);
  if (((uintptr_t)b & 7) == 0) /* word i>>3 is the aligned word at b + i */
    for (; i + 8 <= to; i += 8) {
      uint64_t w = s_pat_word(base, i >> 3);
      memcpy(b + i, &w, 8);
    }
  for (; i < to; i++) b[i] = s_pat_byte(base, i);
}

/* First byte in [from, to) that differs from id's pattern, or SIZE_MAX. */
S_FN size_t s_check_range(const void *p, size_t from, size_t to, uint64_t id) {
  const uint8_t *b = p;
  uint64_t base = s_mix64(id);
  size_t i = from;
  for (; i < to && ((uintptr_t)(b + i) & 7) != 0; i++)
    if (b[i] != s_pat_byte(base, i)) return i;
  if (((uintptr_t)b & 7) == 0)
    for (; i + 8 <= to; i += 8) {
      uint64_t w;
      memcpy(&w, b + i, 8);
      if (w != s_pat_word(base, i >> 3)) break; /* the byte loop finds which */
    }
  for (; i < to; i++)
    if (b[i] != s_pat_byte(base, i)) return i;
  return SIZE_MAX;
}

static inline void s_fill(void *p, size_t n, uint64_t id) { s_fill_range(p, 0, n, id); }

/* Verify all n bytes of p against id's pattern; fail with a precise report. */
static inline void s_verify(const void *p, size_t n, uint64_t id, const char *what) {
  size_t bad = s_check_range(p, 0, n, id);
  if (bad != SIZE_MAX)
    s_fail("%s: object %p (id %#" PRIx64 ", %zu bytes): byte %zu is %#x, expected %#x", what, p, id, n, bad,
           ((const uint8_t *)p)[bad], s_pat_byte(s_mix64(id), bad));
}

/* Self-describing objects (for programs that pass bare pointers): the first
 * 16 bytes hold the id and the size (xor a hash of the id), the rest the
 * pattern. Size at least 16. */
static inline void s_obj_init(void *p, size_t n, uint64_t id) {
  uint64_t h[2] = {id, (uint64_t)n ^ s_mix64(id ^ 0x5555)};
  memcpy(p, h, 16);
  s_fill_range(p, 16, n, id);
}

/* Check a self-describing object; returns its size. */
static inline size_t s_obj_check(const void *p, const char *what) {
  uint64_t h[2];
  memcpy(h, p, 16);
  size_t n = (size_t)(h[1] ^ s_mix64(h[0] ^ 0x5555));
  if (n < 16 || n > 64 * S_MIB)
    s_fail("%s: object %p has a corrupt header (id %#" PRIx64 ", size word %#" PRIx64 ")", what, p, h[0], h[1]);
  size_t bad = s_check_range(p, 16, n, h[0]);
  if (bad != SIZE_MAX)
    s_fail("%s: object %p (id %#" PRIx64 ", %zu bytes): byte %zu is %#x, expected %#x", what, p, h[0], n, bad,
           ((const uint8_t *)p)[bad], s_pat_byte(s_mix64(h[0]), bad));
  return n;
}

static inline bool s_aligned(const void *p, size_t a) { return ((uintptr_t)p & (a - 1)) == 0; }

/* ---- harness memory ------------------------------------------------------------ */

/* Zeroed memory for the harness itself, from mmap: never from the allocator
 * under test, so harness state cannot be confused with what is tested. */
S_FN void *s_xalloc(size_t n) {
  void *p = mmap(NULL, n ? n : 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) s_fail("harness mmap of %zu bytes failed: %s", n, strerror(errno));
  return p;
}

/* ---- HAKMEM extras (by name in STRESS_HAK builds, by dlsym under preload) --- */

typedef void (*s_inject_fn)(unsigned per_million);
typedef void (*s_stats_fn)(hak_stats_t *out);
typedef bool (*s_owns_fn)(const void *p);
static s_inject_fn s_inject_hook;
static s_stats_fn s_stats_hook;
static s_owns_fn s_owns_hook;
static bool s_system; /* --system: the C library's malloc, no HAKMEM */

S_FN void s_bind_hakmem(void) {
#ifdef STRESS_HAK
  s_inject_hook = hak_testing_inject_map_failures;
  s_stats_hook = hak_stats_get;
  s_owns_hook = hak_owns;
#else
  s_inject_hook = (s_inject_fn)(uintptr_t)dlsym(RTLD_DEFAULT, "hak_testing_inject_map_failures");
  s_stats_hook = (s_stats_fn)(uintptr_t)dlsym(RTLD_DEFAULT, "hak_stats_get");
  s_owns_hook = (s_owns_fn)(uintptr_t)dlsym(RTLD_DEFAULT, "hak_owns");
  if (s_owns_hook == NULL || s_stats_hook == NULL) {
    if (s_system) return;
    s_fail("libhakmem.so is not loaded: run with LD_PRELOAD=.../libhakmem.so (or --system for the C library)");
  }
#endif
  void *p = S_MALLOC(64);
  S_CHECK(p != NULL && s_owns_hook(p), "malloc(64) = %p is not HAKMEM's: the override is not in effect", p);
  S_FREE(p);
}

static inline bool s_hakmem(void) { return s_owns_hook != NULL; }

static inline bool s_owns(const void *p) { return s_owns_hook == NULL || s_owns_hook(p); }

S_FN hak_stats_t s_stats(void) {
  hak_stats_t st;
  memset(&st, 0, sizeof st);
  if (s_stats_hook != NULL) s_stats_hook(&st);
  return st;
}

/* ---- options ----------------------------------------------------------------- */

#define S_MAX_THREAD_ARGS 8
static double s_seconds;
static long s_threads_arg[S_MAX_THREAD_ARGS];
static int s_nthreads_arg;

S_FN void s_selftest(const char *kind);

/* Parse `[options] [seconds] [threads...]`. usage names the thread args. */
S_FN void s_parse(int argc, char **argv, const char *name, double default_seconds, const char *usage) {
  s_name = name;
  s_seconds = default_seconds;
  s_seed = 0;
  bool have_seconds = false, have_seed = false;
  const char *selftest = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strncmp(a, "--seed=", 7) == 0) {
      s_seed = strtoull(a + 7, NULL, 0);
      have_seed = true;
    } else if (strcmp(a, "--system") == 0) {
      s_system = true;
    } else if (strncmp(a, "--selftest=", 11) == 0) {
      selftest = a + 11;
    } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      printf("usage: %s [--seed=N] [--system] [--selftest=race|asan|ubsan] [seconds=%g] %s\n", name,
             default_seconds, usage);
      exit(0);
    } else if (a[0] == '-' && a[1] == '-') {
      fprintf(stderr, "%s: unknown option %s (try --help)\n", name, a);
      exit(2);
    } else if (!have_seconds) {
      char *end;
      s_seconds = strtod(a, &end);
      if (*end != '\0' || s_seconds < 0) {
        fprintf(stderr, "%s: bad duration %s\n", name, a);
        exit(2);
      }
      have_seconds = true;
    } else if (s_nthreads_arg < S_MAX_THREAD_ARGS) {
      char *end;
      long v = strtol(a, &end, 0);
      if (*end != '\0' || v < 1 || v > 4096) {
        fprintf(stderr, "%s: bad thread count %s\n", name, a);
        exit(2);
      }
      s_threads_arg[s_nthreads_arg++] = v;
    }
  }
  if (!have_seed) s_seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
  if (selftest != NULL) s_selftest(selftest);
  s_bind_hakmem();
}

/* The i-th thread-count argument, or def. */
static inline int s_threads(int i, int def) { return i < s_nthreads_arg ? (int)s_threads_arg[i] : def; }

/* ---- watchdog -------------------------------------------------------------- */

/* A program that has not finished limit seconds after it started is hung
 * (a deadlock, a livelock, a lost wake-up): report it and fail. */
static double s_watchdog_limit;

S_FN void *s_watchdog_main(void *arg) {
  (void)arg;
  double end = s_now() + s_watchdog_limit;
  for (;;) {
    double left = end - s_now();
    if (left <= 0) s_fail("watchdog: still running %.0f s after start: hung", s_watchdog_limit);
    s_sleep(left < 1 ? left : 1);
  }
  return NULL;
}

S_FN void s_start_watchdog(void) {
  s_watchdog_limit = 60.0 * S_SLOWDOWN + 3.0 * s_seconds;
  pthread_t t;
  S_CHECK(pthread_create(&t, NULL, s_watchdog_main, NULL) == 0, "cannot start the watchdog");
  pthread_detach(t);
}

/* Create a thread; retry while the system (or injected faults, under
 * LD_PRELOAD, where libc allocates thread structures with our malloc)
 * refuses, for up to 30 s. */
S_FN void s_spawn(pthread_t *t, void *(*fn)(void *), void *arg) {
  double give_up = s_now() + 30;
  int rc;
  while ((rc = pthread_create(t, NULL, fn, arg)) != 0) {
    if ((rc != EAGAIN && rc != ENOMEM) || s_now() > give_up) s_fail("pthread_create: %s", strerror(rc));
    s_sleep(0.001);
  }
}

/* ---- a bounded blocking queue (mutex + condition variables) ---------------- */

/* The harness's own synchronisation: a mutex orders the producer's writes
 * before the consumer's reads, so anything TSan reports is the allocator's. */
typedef struct {
  void *p;
  size_t n;
  uint64_t id;
} s_item;

typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t not_empty, not_full;
  s_item *ring;
  size_t cap, head, count;
  bool closed;
} s_queue;

S_FN void s_queue_init(s_queue *q, size_t cap) {
  pthread_mutex_init(&q->mu, NULL);
  pthread_cond_init(&q->not_empty, NULL);
  pthread_cond_init(&q->not_full, NULL);
  q->ring = s_xalloc(cap * sizeof(s_item));
  q->cap = cap;
  q->head = q->count = 0;
  q->closed = false;
}

/* Push n items, blocking while full. */
S_FN void s_queue_push(s_queue *q, const s_item *it, size_t n) {
  pthread_mutex_lock(&q->mu);
  for (size_t i = 0; i < n; i++) {
    while (q->count == q->cap) pthread_cond_wait(&q->not_full, &q->mu);
    q->ring[(q->head + q->count) % q->cap] = it[i];
    q->count++;
  }
  pthread_cond_signal(&q->not_empty);
  pthread_mutex_unlock(&q->mu);
}

/* Pop up to max items; blocks until one is there or the queue is closed
 * (then returns what is left, 0 when empty). */
S_FN size_t s_queue_pop(s_queue *q, s_item *out, size_t max) {
  pthread_mutex_lock(&q->mu);
  while (q->count == 0 && !q->closed) pthread_cond_wait(&q->not_empty, &q->mu);
  size_t n = q->count < max ? q->count : max;
  for (size_t i = 0; i < n; i++) out[i] = q->ring[(q->head + i) % q->cap];
  q->head = (q->head + n) % q->cap;
  q->count -= n;
  if (n > 0) pthread_cond_broadcast(&q->not_full);
  pthread_mutex_unlock(&q->mu);
  return n;
}

S_FN void s_queue_close(s_queue *q) {
  pthread_mutex_lock(&q->mu);
  q->closed = true;
  pthread_cond_broadcast(&q->not_empty);
  pthread_mutex_unlock(&q->mu);
}

/* ---- units for the summary line ------------------------------------------------- */

static inline double s_gib(double bytes) { return bytes / (1024.0 * 1024.0 * 1024.0); }

/* ---- sanitizer self-test ------------------------------------------------------ */

/* Provoke the sanitizer's report on purpose: the run must end right there
 * with a failure. If the program gets past it, it says so and exits 0, which
 * the ctest wrapper (stress/expect_report.sh) counts as a failure. */
static int s_selftest_shared; /* plain int: racing on it is the point */

S_FN void *s_selftest_racer(void *arg) {
  for (int i = 0; i < 1000; i++) s_selftest_shared++;
  return arg;
}

__attribute__((noinline)) S_FN void s_selftest(const char *kind) {
  if (strcmp(kind, "race") == 0) {
    pthread_t a, b;
    pthread_create(&a, NULL, s_selftest_racer, NULL);
    pthread_create(&b, NULL, s_selftest_racer, NULL);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
  } else if (strcmp(kind, "asan") == 0) {
    /* The sanitizer's own malloc (in STRESS_HAK builds plain malloc is it). */
    char *volatile p = malloc(32);
    free(p);
    p[3] = 1; /* heap-use-after-free */
  } else if (strcmp(kind, "ubsan") == 0) {
    volatile int x = INT_MAX;
    x = x + 1; /* signed overflow */
  } else {
    fprintf(stderr, "%s: unknown self-test %s\n", s_name, kind);
    exit(2);
  }
  printf("%s: self-test %s: no sanitizer stopped the program\n", s_name, kind);
  exit(0);
}

#endif /* STRESS_COMMON_H */
