/* prof_check.c -- the profiler's hazards, one mode per run (driven by
 * tests/prof/prof_test.sh, which sets the HAKMEM_PROF* options):
 *
 *   leak DIR        one site leaks 32 MiB, another allocates as much and
 *                   frees it; the at-exit report and dump must name the first
 *   threads-fork DIR  threads allocate and free (across threads too) with
 *                   sampling at 4 KiB, a signal asks for a dump meanwhile, a
 *                   child forked while they run allocates and exits (its
 *                   at-exit dump must not replace the parent's); afterwards
 *                   nothing sampled may stay live
 *   threads         the same without fork or signal (the TSan build)
 *   stash           freed sampled blocks' mappings stay with the freeing
 *                   thread for its next samples (large/large.c), at most
 *                   512 KiB of them, the rest in the shared spare (8 MiB at
 *                   most) where other threads' samples find them; a
 *                   thread's exit moves its stash there; hak_collect gives
 *                   them all back
 *   no-stash        the same with the large cache off: none kept
 *   off             profiling off: no dump, no table, statistics exact
 *
 * TEST_PREFIXED (sanitizer builds) calls the hak_ names. Prints "ok" and
 * exits 0 when every check here held; the script checks the files. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hakmem.h"

#ifdef TEST_PREFIXED
#define MALLOC hak_malloc
#define FREE hak_free
#define REALLOC hak_realloc
#define MEMALIGN hak_memalign
#else
#define MALLOC malloc
#define FREE free
#define REALLOC realloc
#define MEMALIGN memalign
void *memalign(size_t, size_t);
#endif

#define CHECK(c, ...)                                \
  do {                                               \
    if (!(c)) {                                      \
      fprintf(stderr, "prof_check: " __VA_ARGS__);   \
      fprintf(stderr, " (%s:%d)\n", #c, __LINE__);   \
      exit(1);                                       \
    }                                                \
  } while (0)

/* ---- leak ------------------------------------------------------------------ */

static void *leaked[1 << 16];

void leak_site(void);
void freed_site(void);

__attribute__((noinline)) void leak_site(void) {
  for (int i = 0; i < (1 << 15); i++) leaked[i] = MALLOC(1024); /* 32 MiB, never freed */
  __asm__ __volatile__("" ::: "memory");
}

__attribute__((noinline)) void freed_site(void) {
  for (int i = 0; i < (1 << 15); i++) {
    void *p = MALLOC(1024);
    memset(p, 0, 8);
    FREE(p);
  }
  __asm__ __volatile__("" ::: "memory");
}

/* ---- threads ---------------------------------------------------------------- */

#define THREADS 4
#define ROUNDS 20000
static void *handoff[THREADS][64];
static pthread_barrier_t barrier;

__attribute__((noinline)) static void *worker(void *arg) {
  unsigned id = (unsigned)(uintptr_t)arg, seed = id * 7919u + 1;
  void *mine[64] = {0};
  for (int r = 0; r < ROUNDS; r++) {
    seed = seed * 1103515245u + 12345u;
    unsigned k = (seed >> 8) & 63;
    FREE(mine[k]);
    size_t size = (seed >> 16) % 5 == 0 ? 150000 + (seed >> 20) % 100000 : 16 + (seed >> 16) % 2000;
    mine[k] = (seed & 0x300) == 0 ? MEMALIGN(256, size) : MALLOC(size);
    CHECK(mine[k] != NULL, "malloc failed");
    CHECK(((seed & 0x300) != 0) || ((uintptr_t)mine[k] & 255) == 0, "memalign(256) misaligned");
    memset(mine[k], (int)id, 16);
    if ((seed & 0xf000) == 0) mine[k] = REALLOC(mine[k], size * 2); /* moves some sampled blocks */
  }
  /* Half of them are freed by the next thread: sampled blocks freed remotely. */
  memcpy(handoff[id], mine, sizeof mine);
  pthread_barrier_wait(&barrier);
  for (int k = 0; k < 64; k++) FREE(handoff[(id + 1) % THREADS][k]);
  return NULL;
}

static void run_threads(void) {
  pthread_t t[THREADS];
  pthread_barrier_init(&barrier, NULL, THREADS);
  for (unsigned i = 0; i < THREADS; i++) pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)i);
  for (unsigned i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
  pthread_barrier_destroy(&barrier);
}

#ifndef TEST_PREFIXED
/* The child of a fork taken while the threads run: its own profile. */
static void fork_child(const char *dir) {
  char path[512];
  for (int i = 0; i < 1000; i++) FREE(MALLOC(100000)); /* samples of its own, freed */
  void *keep = MALLOC(1 << 20);
  snprintf(path, sizeof path, "%s/child.%%p.heap", dir);
  CHECK(hak_prof_dump(path) == 0, "child dump: %s", strerror(errno));
  memset(keep, 1, 16);
  exit(0); /* its at-exit dump: HAKMEM_PROF_DUMP_AT_EXIT without %p, so a name of its own */
}

static void *forker(void *arg) {
  const char *dir = arg;
  usleep(2000);
  pid_t pid = fork();
  CHECK(pid >= 0, "fork");
  if (pid == 0) fork_child(dir);
  int st;
  CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0, "child failed");
  return NULL;
}
#endif

/* ---- stash ------------------------------------------------------------------ */

#define STASH_BOUND ((size_t)512 * 1024)    /* HK_PROF_STASH_BYTES (src/hk_config.h) */
#define SPARE_BOUND ((size_t)8 * 1024 * 1024) /* HK_PROF_SPARE_BYTES */
#define FILL_MAX    1024

/* The process-wide bytes kept in stashes and the spare, the calling
 * thread's counts merged first. */
static size_t stash_bytes(void) {
  hak_stats_t s;
  hak_thread_flush();
  hak_stats_get(&s);
  return s.prof_stash_bytes;
}

/* n blocks of 20,000 bytes live at once, then freed: at a 4 KiB rate nearly
 * every one is a sample (a mapping of 5 pages, 20 KiB), and their mappings
 * fill the freeing thread's stash, which spills into the spare. The kept
 * bytes are read while they are all live and after they are freed. */
typedef struct {
  int n;
  size_t at_live, at_end;
} fill;

static void *fill_stash(void *arg) {
  fill *f = arg;
  static __thread void *p[FILL_MAX];
  for (int i = 0; i < f->n; i++) {
    p[i] = MALLOC(20000);
    CHECK(p[i] != NULL, "malloc failed");
    memset(p[i], 1, 16);
  }
  f->at_live = stash_bytes();
  for (int i = 0; i < f->n; i++) FREE(p[i]);
  f->at_end = stash_bytes();
  return NULL;
}

static void fill_in_thread(fill *f) {
  pthread_t t;
  CHECK(pthread_create(&t, NULL, fill_stash, f) == 0, "pthread_create");
  CHECK(pthread_join(t, NULL) == 0, "pthread_join");
}

static void check_stash(void) {
  size_t before = stash_bytes();
  CHECK(before == 0, "%zu bytes stashed before any sample was freed", before);
  /* 5 MiB of samples freed by one thread: its stash keeps at most its
   * bound, and what it cannot keep goes to the spare, not away. */
  fill one = {.n = 256};
  fill_stash(&one);
  CHECK(one.at_live == 0, "%zu bytes stashed while every sample was live", one.at_live);
  CHECK(one.at_end > 4 * STASH_BOUND && one.at_end <= STASH_BOUND + SPARE_BOUND,
        "stash and spare after 256 sampled 20 KB frees: %zu bytes (stash bound %zu, spare bound %zu)", one.at_end,
        STASH_BOUND, SPARE_BOUND);
  /* The same thread again: its samples come out of the stash and the
   * spare, and go back. */
  fill two = {.n = 256};
  fill_stash(&two);
  CHECK(two.at_live + 4 * STASH_BOUND < one.at_end, "second round: %zu bytes kept while live, %zu before", two.at_live,
        one.at_end);
  CHECK(two.at_end > 4 * STASH_BOUND && two.at_end <= STASH_BOUND + SPARE_BOUND, "second round: %zu bytes kept",
        two.at_end);
  /* Another thread, its stash empty, samples from the spare (without it,
   * it mapped afresh and the kept bytes did not move while its blocks
   * lived); its exit leaves its stash in the spare. */
  fill other = {.n = 256};
  fill_in_thread(&other);
  CHECK(other.at_live + 4 * STASH_BOUND < two.at_end,
        "a new thread's samples did not come from the spare: %zu bytes kept while they lived, %zu before",
        other.at_live, two.at_end);
  size_t after_exit = stash_bytes();
  CHECK(after_exit == other.at_end, "%zu bytes kept after the thread exited, %zu before its exit", after_exit,
        other.at_end);
  /* 20 MiB of samples: the spare stays within its bound (the rest goes to
   * the cache). */
  fill big = {.n = FILL_MAX};
  fill_in_thread(&big);
  size_t after_big = stash_bytes();
  CHECK(big.at_end <= 2 * STASH_BOUND + SPARE_BOUND && after_big <= STASH_BOUND + SPARE_BOUND,
        "20 MiB of sampled frees: %zu bytes kept before the thread's exit, %zu after", big.at_end, after_big);
  hak_collect(true);
  size_t after_collect = stash_bytes();
  CHECK(after_collect == 0, "%zu bytes stashed after hak_collect", after_collect);
}

/* HAKMEM_LARGE_CACHE_MB=0: freed mappings go back to the OS at once, sampled
 * ones too. */
static void check_no_stash(void) {
  fill f = {.n = 256};
  fill_stash(&f);
  size_t kept = stash_bytes();
  CHECK(kept == 0, "%zu bytes stashed with the large cache off", kept);
}

int main(int argc, char **argv) {
  CHECK(argc >= 2, "usage: prof_check leak|threads-fork|threads|stash|no-stash|off [DIR]");
  const char *mode = argv[1], *dir = argc > 2 ? argv[2] : ".";
  hak_stats_t s;
  if (strcmp(mode, "leak") == 0) {
    leak_site();
    freed_site();
  } else if (strcmp(mode, "threads") == 0 || strcmp(mode, "threads-fork") == 0) {
    hak_thread_flush();
    hak_stats_get(&s);
    size_t live_before = s.prof_samples_live;
#ifndef TEST_PREFIXED
    pthread_t f;
    bool with_fork = strcmp(mode, "threads-fork") == 0;
    if (with_fork) pthread_create(&f, NULL, forker, (void *)dir);
    if (with_fork) raise(SIGUSR2); /* HAKMEM_PROF_SIGNAL=USR2: a dump, however the lock stands */
#endif
    run_threads();
#ifndef TEST_PREFIXED
    if (with_fork) pthread_join(f, NULL);
#endif
    hak_thread_flush();
    hak_stats_get(&s);
    CHECK(s.prof_table_bytes != 0 && s.prof_stacks != 0, "no samples taken");
    /* Every block the test allocated is freed; glibc keeps a joined
     * thread's DTV (calloc'd) with its cached stack, which may be sampled. */
    CHECK(s.prof_samples_live <= live_before + THREADS + 1, "%zu samples live after every block was freed (%zu before)",
          s.prof_samples_live, live_before);
    char path[512];
    snprintf(path, sizeof path, "%s/after.heap", dir);
    CHECK(hak_prof_dump(path) == 0, "dump: %s", strerror(errno));
  } else if (strcmp(mode, "stash") == 0) {
    check_stash();
  } else if (strcmp(mode, "no-stash") == 0) {
    check_no_stash();
  } else if (strcmp(mode, "off") == 0) {
    hak_thread_flush();
    hak_stats_get(&s);
    uint64_t before = s.allocs;
    void *p[1000];
    for (int i = 0; i < 1000; i++) p[i] = MALLOC(64);
    for (int i = 0; i < 1000; i++) FREE(p[i]);
    hak_thread_flush();
    hak_stats_get(&s);
    CHECK(s.allocs - before == 1000, "allocs counted %llu, not 1000", (unsigned long long)(s.allocs - before));
    CHECK(s.prof_table_bytes == 0 && s.prof_samples_live == 0 && s.large_allocs == 0, "profiler state while off");
    errno = 0;
    CHECK(hak_prof_dump("/dev/null") == -1 && errno == ENOTSUP, "hak_prof_dump while off");
  } else {
    CHECK(0, "unknown mode %s", mode);
  }
  printf("ok\n");
  return 0;
}
