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

int main(int argc, char **argv) {
  CHECK(argc >= 2, "usage: prof_check leak|threads-fork|threads|off [DIR]");
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
