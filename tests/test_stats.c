/* test_stats.c -- statistics that add up (hak_stats_get, hak_stats_json,
 * malloc_stats). Built against libhakmem.a with the hak_ names in every
 * preset: nothing but the test's own calls reaches HAKMEM (Criterion and libc
 * keep glibc's malloc), so every count can be predicted exactly.
 *
 * Criterion assertions only work on the test's own thread, so worker threads
 * record what they did and the test asserts afterwards. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hk_test.h"

#ifndef TEST_PREFIXED
#error "test_stats counts the hak_ API alone: build it with TEST_PREFIXED against libhakmem.a"
#endif

TestSuite(stats, .init = hk_require_override, .timeout = 300.);

/* What the test did, per size class (found from the usable size: every
 * block of a class has its class's size). */
typedef struct expect {
  _Atomic int64_t allocs[HAK_STATS_CLASSES];
  _Atomic int64_t frees[HAK_STATS_CLASSES];
  _Atomic int64_t large_allocs, large_frees;
} expect;

static expect ex;
static size_t class_size[HAK_STATS_CLASSES];

/* The class sizes, and what the suite's .init (hk_require_override) did
 * before the test: the expectations start from there. */
static void learn_classes(void) {
  hak_stats_t s = hk_stats();
  for (unsigned c = 0; c < HAK_STATS_CLASSES; c++) {
    class_size[c] = s.classes[c].block_size;
    atomic_store(&ex.allocs[c], (int64_t)s.classes[c].allocs);
    atomic_store(&ex.frees[c], (int64_t)s.classes[c].frees);
  }
  atomic_store(&ex.large_allocs, (int64_t)s.large_allocs);
  atomic_store(&ex.large_frees, (int64_t)s.large_frees);
}

static int class_of_usable(size_t usable) {
  for (int c = 0; c < HAK_STATS_CLASSES; c++)
    if (class_size[c] == usable) return c;
  return -1; /* large */
}

static void *x_malloc(size_t n) {
  void *p = hak_malloc(n);
  if (p == NULL) abort();
  int c = class_of_usable(hak_usable_size(p));
  if (c >= 0) atomic_fetch_add(&ex.allocs[c], 1);
  else atomic_fetch_add(&ex.large_allocs, 1);
  return p;
}

static void x_free(void *p) {
  int c = class_of_usable(hak_usable_size(p));
  if (c >= 0) atomic_fetch_add(&ex.frees[c], 1);
  else atomic_fetch_add(&ex.large_frees, 1);
  hak_free(p);
}

/* Per class: counted allocations minus frees equal the live blocks, and
 * both equal what the test did; the totals are the sums. */
static void assert_adds_up(const char *when) {
  hak_stats_t s = hk_stats();
  uint64_t allocs = 0, frees = 0;
  int64_t live = 0, bytes = 0;
  for (unsigned c = 0; c < HAK_STATS_CLASSES; c++) {
    const hak_class_stats_t *k = &s.classes[c];
    int64_t ea = atomic_load(&ex.allocs[c]), ef = atomic_load(&ex.frees[c]);
    cr_assert(k->allocs == (uint64_t)ea, "%s: class %u (%zu B): %llu allocations counted, the test made %lld", when,
              c, k->block_size, (unsigned long long)k->allocs, (long long)ea);
    cr_assert(k->frees == (uint64_t)ef, "%s: class %u (%zu B): %llu frees counted, the test made %lld", when, c,
              k->block_size, (unsigned long long)k->frees, (long long)ef);
    cr_assert(k->live == (int64_t)(k->allocs - k->frees) && k->live == ea - ef,
              "%s: class %u: live %lld, allocs - frees %lld, the test holds %lld", when, c, (long long)k->live,
              (long long)(k->allocs - k->frees), (long long)(ea - ef));
    cr_assert(k->live_bytes == k->live * (int64_t)k->block_size, "%s: class %u: live bytes", when, c);
    allocs += k->allocs;
    frees += k->frees;
    live += k->live;
    bytes += k->live_bytes;
  }
  cr_assert(s.allocs == allocs && s.frees == frees && s.live_blocks == live && s.live_bytes == bytes,
            "%s: totals %llu/%llu/%lld/%lld are not the sums of the classes %llu/%llu/%lld/%lld", when,
            (unsigned long long)s.allocs, (unsigned long long)s.frees, (long long)s.live_blocks,
            (long long)s.live_bytes, (unsigned long long)allocs, (unsigned long long)frees, (long long)live,
            (long long)bytes);
  cr_assert(s.large_allocs == (size_t)atomic_load(&ex.large_allocs) &&
                s.large_frees == (size_t)atomic_load(&ex.large_frees),
            "%s: large blocks: %zu allocated, %zu freed counted; the test made %lld and %lld", when, s.large_allocs,
            s.large_frees, (long long)atomic_load(&ex.large_allocs), (long long)atomic_load(&ex.large_frees));
  cr_assert(s.committed_bytes >= (size_t)bytes + s.large_live_bytes,
            "%s: %zu bytes committed, fewer than the %lld in live blocks", when, s.committed_bytes,
            (long long)bytes + (long long)s.large_live_bytes);
  cr_assert(s.peak_committed_bytes >= s.committed_bytes, "%s: the committed peak is below the committed bytes", when);
}

/* ---- one thread: counted exactly on demand, across many ticks ------------- */

Test(stats, counts_of_the_calling_thread_are_exact_on_demand) {
  learn_classes();
  enum { LIVE = 1000, CHURN = 200000 };
  static void *keep[LIVE];
  uint64_t seed = 42;
  for (int i = 0; i < LIVE; i++) keep[i] = x_malloc(hk_mixed_size(&seed));
  assert_adds_up("after 1000 mallocs");
  /* Cache hits well past many ticks (HK_TC_TICK apart per class), slab
   * refills, cache flushes: a churn over a working set of 64 blocks. */
  void *ws[64] = {0};
  for (int i = 0; i < CHURN; i++) {
    uint64_t r = hk_rand(&seed);
    unsigned slot = (unsigned)(r % 64);
    if (ws[slot] != NULL) {
      x_free(ws[slot]);
      ws[slot] = NULL;
    } else {
      ws[slot] = x_malloc(16 + (size_t)(r >> 40) % 2000);
    }
  }
  assert_adds_up("after a churn of 200000 calls");
  for (int i = 0; i < 64; i++)
    if (ws[i] != NULL) x_free(ws[i]);
  for (int i = 0; i < LIVE; i += 2) x_free(keep[i]);
  assert_adds_up("after freeing half");
  hak_thread_flush();
  assert_adds_up("after hak_thread_flush");
  for (int i = 1; i < LIVE; i += 2) x_free(keep[i]);
  hak_collect(true);
  assert_adds_up("after freeing everything and hak_collect");
  hak_stats_t s = hk_stats();
  cr_assert(s.live_blocks == 0 && s.live_bytes == 0, "%lld blocks (%lld bytes) live after freeing everything",
            (long long)s.live_blocks, (long long)s.live_bytes);
  cr_assert(s.allocs >= LIVE + CHURN / 4, "only %llu allocations counted", (unsigned long long)s.allocs);
}

/* ---- threads that trade blocks: remote frees, exits, adoption -------------- */

enum { THREADS = 4, PER_THREAD = 3000, HANDED = PER_THREAD / 2 };

static void *handed[THREADS][HANDED];   /* thread i's blocks for thread i+1 to free */
static void *left_live[THREADS][PER_THREAD];
static size_t left_count[THREADS];
static pthread_barrier_t barrier;
static _Atomic size_t remote_small; /* remote frees of class-sized blocks (large ones are not queued) */

static void *trader(void *arg) {
  unsigned me = (unsigned)(uintptr_t)arg, from = (me + THREADS - 1) % THREADS;
  uint64_t seed = 1000 + me;
  static __thread void *own[PER_THREAD - HANDED];
  for (unsigned i = 0; i < HANDED; i++) handed[me][i] = x_malloc(hk_mixed_size(&seed));
  for (unsigned i = 0; i < PER_THREAD - HANDED; i++) own[i] = x_malloc(hk_mixed_size(&seed));
  pthread_barrier_wait(&barrier);
  for (unsigned i = 0; i < HANDED; i++) { /* remote frees, batched in the outbox */
    if (class_of_usable(hak_usable_size(handed[from][i])) >= 0) atomic_fetch_add(&remote_small, 1);
    x_free(handed[from][i]);
  }
  size_t n = 0;
  for (unsigned i = 0; i < PER_THREAD - HANDED; i++) {
    if (i % 4 == 0) left_live[me][n++] = own[i]; /* outlives this thread */
    else x_free(own[i]);
  }
  left_count[me] = n;
  for (int i = 0; i < 50000; i++) x_free(x_malloc(16 + (size_t)i % 700)); /* cache hits */
  hak_thread_flush(); /* push the outbox */
  pthread_barrier_wait(&barrier);
  hak_thread_flush(); /* take back what the others pushed; the exit merges the counts */
  return NULL;
}

Test(stats, counts_add_up_after_threads_trade_blocks_and_exit) {
  learn_classes();
  pthread_barrier_init(&barrier, NULL, THREADS);
  pthread_t t[THREADS];
  for (unsigned i = 0; i < THREADS; i++) cr_assert(pthread_create(&t[i], NULL, trader, (void *)(uintptr_t)i) == 0);
  for (unsigned i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
  pthread_barrier_destroy(&barrier);
  hak_collect(true);
  assert_adds_up("after the threads exited");
  hak_stats_t s = hk_stats();
  size_t sent = 0, recv = 0;
  for (unsigned i = 0; i < HAK_STATS_HIST; i++) {
    sent += s.remote_sent_hist[i];
    recv += s.remote_recv_hist[i];
  }
  cr_assert(sent == s.remote_chains_pushed, "sent histogram: %zu chains, counter: %zu", sent, s.remote_chains_pushed);
  cr_assert(s.remote_blocks_pushed == atomic_load(&remote_small), "%zu remote blocks sent, the test freed %zu remotely",
            s.remote_blocks_pushed, atomic_load(&remote_small));
  cr_assert(s.remote_blocks_received == s.remote_blocks_pushed,
            "%zu remote blocks sent but %zu taken back by their owners", s.remote_blocks_pushed,
            s.remote_blocks_received);
  cr_assert(recv != 0 && recv <= s.remote_blocks_received, "received histogram: %zu batches", recv);
  cr_assert(s.remote_blocks_pushed > s.remote_chains_pushed, "no chain held more than one block (%zu, %zu)",
            s.remote_blocks_pushed, s.remote_chains_pushed);
  /* Blocks of exited threads, freed here: remote frees into abandoned
   * SuperSlabs, taken back by hak_collect's adoption. */
  for (unsigned i = 0; i < THREADS; i++)
    for (size_t j = 0; j < left_count[i]; j++) x_free(left_live[i][j]);
  hak_collect(true);
  assert_adds_up("after freeing the exited threads' blocks");
  s = hk_stats();
  cr_assert(s.live_blocks == 0, "%lld blocks live after freeing everything", (long long)s.live_blocks);
  cr_assert(s.superslabs_adopted != 0, "no SuperSlab was adopted");
}

/* ---- bytes: the live set, committed memory -------------------------------- */

Test(stats, live_bytes_track_a_known_live_set) {
  learn_classes();
  hak_stats_t before = hk_stats();
  enum { N = 1000 };
  static void *p[N];
  size_t asked = 0, usable = 0;
  uint64_t seed = 7;
  for (int i = 0; i < N; i++) {
    size_t n = 1 + (size_t)(hk_rand(&seed) % 4096);
    p[i] = x_malloc(n);
    asked += n;
    usable += hak_usable_size(p[i]);
  }
  void *big = x_malloc(3 * HK_MIB);
  hak_stats_t s = hk_stats();
  int64_t grew = s.live_bytes - before.live_bytes;
  cr_assert(grew == (int64_t)usable, "live bytes grew by %lld for blocks of %zu usable bytes", (long long)grew, usable);
  cr_assert((size_t)grew >= asked && (size_t)grew <= asked + (size_t)N * 1024,
            "live bytes %lld not within the class rounding of the %zu asked", (long long)grew, asked);
  cr_assert(s.large_live_bytes >= 3 * HK_MIB && s.large_live_bytes < 3 * HK_MIB + 4096, "large live bytes %zu",
            s.large_live_bytes);
  /* Committed memory is what the blocks need, not the address space. */
  cr_assert(s.committed_bytes >= usable + 3 * HK_MIB, "committed %zu < live %zu", s.committed_bytes,
            usable + 3 * HK_MIB);
  cr_assert(s.committed_bytes < usable + 3 * HK_MIB + 16 * HK_MIB, "committed %zu for %zu live", s.committed_bytes,
            usable + 3 * HK_MIB);
  for (int i = 0; i < N; i++) x_free(p[i]);
  x_free(big);
  hak_collect(true);
  s = hk_stats();
  cr_assert(s.live_bytes == before.live_bytes, "live bytes %lld after freeing, %lld before", (long long)s.live_bytes,
            (long long)before.live_bytes);
  cr_assert(s.decommitted_bytes != 0, "hak_collect decommitted nothing");
  cr_assert(s.committed_bytes < s.peak_committed_bytes, "committed %zu did not fall below the peak %zu",
            s.committed_bytes, s.peak_committed_bytes);
}

/* ---- the outputs: JSON and the table ------------------------------------- */

Test(stats, json_is_complete_and_truncates_like_snprintf) {
  learn_classes();
  void *p = x_malloc(100);
  int need = hak_stats_json(NULL, 0);
  cr_assert(need > 1000, "hak_stats_json(NULL, 0) = %d", need);
  char small[64];
  memset(small, 'x', sizeof small);
  cr_assert(hak_stats_json(small, sizeof small) >= need - 64, "a truncated call must report the whole length");
  cr_assert(small[sizeof small - 1] == '\0' && strlen(small) == sizeof small - 1, "truncated output not terminated");
  char *buf = malloc((size_t)need + 1); /* glibc's: only the test's blocks are HAKMEM's */
  cr_assert(buf != NULL);
  int got = hak_stats_json(buf, (size_t)need + 1);
  cr_assert(got == need && strlen(buf) == (size_t)need, "full call: %d bytes, %zu written, %d needed", got,
            strlen(buf), need);
  /* Parse it and check it against itself: per class allocs - frees = live. */
  char path[] = "/tmp/hakmem_stats_json_XXXXXX";
  int fd = mkstemp(path);
  cr_assert(fd >= 0);
  cr_assert(write(fd, buf, (size_t)got) == got);
  close(fd);
  char cmd[512];
  snprintf(cmd, sizeof cmd,
           "python3 -c 'import json,sys; d=json.load(open(sys.argv[1]));"
           " cs=d[\"classes\"]; assert len(cs)==48;"
           " assert all(c[\"allocs\"]-c[\"frees\"]==c[\"live\"] and c[\"live\"]*c[\"size\"]==c[\"live_bytes\"] for c in cs);"
           " assert sum(c[\"live\"] for c in cs)==d[\"totals\"][\"live\"]==1;"
           " assert d[\"memory\"][\"committed_bytes\"]>0 and len(d[\"remote_batches\"][\"sent\"])==8;"
           " assert all(k in d for k in (\"memory\",\"large\",\"superslabs\",\"threads\",\"remote\",\"errors\"))' %s",
           path);
  int rc = system(cmd);
  unlink(path);
  cr_assert(rc == 0, "python3 rejected the JSON (or is missing): %.300s...", buf);
  free(buf);
  x_free(p);
}

static size_t hk_count_lines_in(const char *s) {
  size_t n = 0;
  for (; *s != '\0'; s++) n += *s == '\n';
  return n;
}

/* malloc_stats writes to fd 2: run it in a child whose stderr is a pipe. */
static size_t capture_malloc_stats(char *out, size_t cap) {
  int fds[2];
  cr_assert(pipe(fds) == 0);
  pid_t pid = fork();
  cr_assert(pid >= 0);
  if (pid == 0) {
    dup2(fds[1], 2);
    close(fds[0]);
    hak_malloc_stats();
    _exit(0);
  }
  close(fds[1]);
  size_t n = 0;
  ssize_t r;
  while ((r = read(fds[0], out + n, cap - 1 - n)) > 0) n += (size_t)r;
  close(fds[0]);
  out[n] = '\0';
  int st;
  waitpid(pid, &st, 0);
  cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "malloc_stats child failed");
  return n;
}

Test(stats, malloc_stats_prints_every_section_untruncated) {
  learn_classes();
  /* Blocks in every class, so the table has a line for each. */
  static void *p[HAK_STATS_CLASSES];
  for (unsigned c = 0; c < HAK_STATS_CLASSES; c++) p[c] = x_malloc(class_size[c]);
  static char out[65536];
  size_t n = capture_malloc_stats(out, sizeof out);
  cr_assert(n > 4096, "malloc_stats printed %zu bytes", n);
  const char *sections[] = {"hakmem: stats (pid", "\nmemory\n", "committed now", "committed at peak",
                            "decommitted", "\nlarge\n", "\nsuperslabs\n", "\nthreads\n", "\nremote\n",
                            "remote batch sizes", "\nsize classes", "  total ", "hakmem: end of stats\n"};
  for (size_t i = 0; i < sizeof sections / sizeof sections[0]; i++)
    cr_assert(strstr(out, sections[i]) != NULL, "no \"%s\" in malloc_stats' output:\n%s", sections[i], out);
  cr_assert(hk_count_lines_in(out) >= 40 + HAK_STATS_CLASSES, "%zu lines", hk_count_lines_in(out));
  /* One line per class, each with its size. */
  char want[64];
  snprintf(want, sizeof want, "%10zu", class_size[HAK_STATS_CLASSES - 1]);
  cr_assert(strstr(out, want) != NULL, "no line for the largest class (%s)", want);
  for (unsigned c = 0; c < HAK_STATS_CLASSES; c++) x_free(p[c]);
}

/* A small program's peaks are small: committed memory is what it used, and
 * address space counts what is kept, not the arena reserved ahead (the
 * first SuperSlab used to raise the mapped peak by 192 MiB). */
Test(stats, peaks_of_a_small_program_are_small) {
  learn_classes();
  enum { N = 1000 };
  static void *p[N];
  for (int i = 0; i < N; i++) p[i] = x_malloc(100 + (size_t)i % 200); /* ~250 KiB live */
  hak_stats_t s = hk_stats();
  cr_assert(s.peak_committed_bytes < 2 * HK_MIB, "committed peak %zu KiB for 250 KiB of blocks",
            s.peak_committed_bytes >> 10);
  cr_assert(s.peak_mapped_bytes < 16 * HK_MIB, "mapped peak %zu KiB for 250 KiB of blocks", s.peak_mapped_bytes >> 10);
  cr_assert(s.mapped_bytes >= 2 * HK_MIB && s.mapped_bytes <= s.peak_mapped_bytes, "mapped %zu KiB, peak %zu KiB",
            s.mapped_bytes >> 10, s.peak_mapped_bytes >> 10);
  for (int i = 0; i < N; i++) x_free(p[i]);
}
