/* test_stats_override.c -- the statistics as the override exports them
 * (libhakmem.so: mallinfo2, mallinfo, malloc_stats, HAKMEM_SHOW_STATS=1 at
 * exit). test_stats.c checks the counts themselves through the hak_ names. */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "hk_test.h"
#include "spawn.h"

#ifndef HELPER_STATS
#error "HELPER_STATS must name the helper program (tests/CMakeLists.txt)"
#endif

TestSuite(stats_override, .init = hk_require_override, .timeout = 300.);

Test(stats_override, mallinfo2_tracks_a_known_live_set) {
  enum { N = 1000 };
  static void *p[N];
  size_t asked = 0, usable = 0;
  uint64_t seed = 3;
  struct mallinfo2 before = mallinfo2();
  for (int i = 0; i < N; i++) {
    size_t n = 1 + (size_t)(hk_rand(&seed) % 8192);
    p[i] = malloc(hk_opaque(n));
    cr_assert(p[i] != NULL);
    asked += n;
    usable += malloc_usable_size(p[i]);
  }
  void *big = malloc(hk_opaque(5 * HK_MIB));
  cr_assert(big != NULL);
  struct mallinfo2 live = mallinfo2();
  size_t grew = live.uordblks - before.uordblks;
  /* Nothing else allocates between the two calls but the test itself. */
  cr_assert(grew >= asked && grew <= usable, "uordblks grew by %zu for %zu bytes asked (%zu usable)", grew, asked,
            usable);
  cr_assert(live.arena >= live.uordblks && live.fordblks == live.arena - live.uordblks,
            "arena %zu, uordblks %zu, fordblks %zu", live.arena, live.uordblks, live.fordblks);
  cr_assert(live.hblks == before.hblks + 1 && live.hblkhd - before.hblkhd >= 5 * HK_MIB &&
                live.hblkhd - before.hblkhd <= 5 * HK_MIB + 4096,
            "large block: hblks %zu -> %zu, hblkhd %zu -> %zu", before.hblks, live.hblks, before.hblkhd, live.hblkhd);
  cr_assert(live.usmblks >= live.arena + live.hblkhd, "usmblks (committed peak) %zu below arena + hblkhd %zu",
            live.usmblks, live.arena + live.hblkhd);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  struct mallinfo old = mallinfo(); /* the old interface, still exported */
#pragma GCC diagnostic pop
  cr_assert((size_t)old.uordblks == live.uordblks && (size_t)old.hblkhd == live.hblkhd,
            "mallinfo says %d/%d, mallinfo2 %zu/%zu", old.uordblks, old.hblkhd, live.uordblks, live.hblkhd);
  for (int i = 0; i < N; i++) free(p[i]);
  free(big);
  struct mallinfo2 after = mallinfo2();
  cr_assert(after.uordblks == before.uordblks && after.hblks == before.hblks,
            "after freeing: uordblks %zu (was %zu), hblks %zu (was %zu)", after.uordblks, before.uordblks,
            after.hblks, before.hblks);
}

static const char *const table_marks[] = {"hakmem: stats (pid", "\nmemory\n", "committed now", "\nlarge\n",
                                          "\nsuperslabs\n", "\nthreads\n", "\nremote\n", "remote batch sizes",
                                          "\nsize classes", "\n  total ", "hakmem: end of stats\n"};

static size_t count_of(const char *hay, const char *needle) {
  size_t n = 0;
  for (const char *s = hay; (s = strstr(s, needle)) != NULL; s++) n++;
  return n;
}

static void expect_tables(const char *argv1, const char *const env[], size_t tables) {
  static hk_spawn_result r;
  char *argv[] = {(char *)HELPER_STATS, (char *)argv1, NULL};
  cr_assert(hk_spawn(argv, env, 120, &r) == 0, "could not run %s: %s", argv[0], strerror(errno));
  char how[64];
  hk_spawn_describe(&r, how, sizeof how);
  cr_assert(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0 && strcmp(r.out, "OK\n") == 0,
            "helper_stats: %s, stdout %s, stderr:\n%s", how, r.out, r.err);
  cr_assert(r.err_len < HK_SPAWN_CAP - 1, "stderr filled the capture (%zu bytes)", r.err_len);
  for (size_t i = 0; i < sizeof table_marks / sizeof table_marks[0]; i++)
    cr_assert(count_of(r.err, table_marks[i]) == tables, "\"%s\" %zu times, not %zu, in:\n%s", table_marks[i],
              count_of(r.err, table_marks[i]), tables, r.err);
  /* The remote frees were counted on both sides. */
  cr_assert(strstr(r.err, "blocks sent                                                  8000") != NULL,
            "8000 remote blocks sent not in:\n%s", r.err);
}

Test(stats_override, show_stats_prints_the_table_at_exit) {
  const char *env[] = {"HAKMEM_SHOW_STATS=1", NULL};
  expect_tables("none", env, 1);
}

Test(stats_override, malloc_stats_and_show_stats_each_print_it) {
  const char *env[] = {"HAKMEM_SHOW_STATS=1", NULL};
  expect_tables("malloc_stats", env, 2);
}

Test(stats_override, malloc_stats_alone) {
  expect_tables("malloc_stats", NULL, 1);
}
