/* test_options.c -- HAKMEM_* options (src/util/options.def): a malformed
 * value warns once, naming the option and its accepted values, and keeps
 * the default (seen in what the process then does); sizes take k/m/g
 * suffixes; HAKMEM_VERBOSE=1 prints every option of the table once.
 *
 * Options are read before main, so each case runs a helper program linked to
 * libhakmem.so in a fresh process (helpers/spawn.c) with the variables set:
 * helper_bad_free for behaviour under the bad-free policies, and
 * helper_nothreads (a short mixed malloc workload) for the listings. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "hk_test.h"
#include "spawn.h"

#if !defined(HELPER_BAD_FREE) || !defined(HELPER_NOTHREADS) || !defined(OPTIONS_DOC)
#error "HELPER_BAD_FREE, HELPER_NOTHREADS and OPTIONS_DOC are set by tests/CMakeLists.txt"
#endif

TestSuite(options, .timeout = 120.);

static hk_spawn_result r;

/* Runs helper_nothreads (a few thousand calls) with env; it must exit 0. */
static void run_listing(const char *const env[]) {
  char *argv[] = {(char *)HELPER_NOTHREADS, (char *)"5000", NULL};
  cr_assert(hk_spawn(argv, env, 60, &r) == 0, "could not run %s: %s", HELPER_NOTHREADS, strerror(errno));
  char how[128];
  cr_assert(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0 && strstr(r.out, "OK") != NULL,
            "helper_nothreads with %s: %s\nstdout: %s\nstderr: %s", env[0], hk_spawn_describe(&r, how, sizeof how),
            r.out, r.err);
}

/* True when stderr holds `line` as a whole line. */
static bool has_line(const char *line) {
  size_t n = strlen(line);
  for (const char *s = r.err; (s = strstr(s, line)) != NULL; s++)
    if ((s == r.err || s[-1] == '\n') && s[n] == '\n') return true;
  return false;
}

/* The value in effect of option NAME according to HAKMEM_VERBOSE=1 with
 * NAME=value set, which must be accepted without a warning. */
static void expect_value(const char *name, const char *value, const char *shown) {
  char set[128], want[160];
  snprintf(set, sizeof set, "%s=%s", name, value);
  const char *env[] = {set, "HAKMEM_VERBOSE=1", NULL};
  run_listing(env);
  snprintf(want, sizeof want, "hakmem: %s=%s", name, shown);
  cr_expect(strstr(r.err, "malformed") == NULL, "%s: unexpected warning:\n%s", set, r.err);
  cr_expect(strstr(r.err, want) != NULL && (strstr(r.err, want)[strlen(want)] == '\n' ||
                                             strstr(r.err, want)[strlen(want)] == ' '),
            "%s: expected \"%s\" in the listing:\n%s", set, want, r.err);
}

/* NAME=value must give exactly one warning line naming the option, the
 * value and the accepted values, and leave the default (`dflt`) in effect. */
static void expect_malformed(const char *name, const char *value, const char *accepted, const char *dflt) {
  char set[160], warning[320], effect[128];
  snprintf(set, sizeof set, "%s=%s", name, value);
  /* HAKMEM_VERBOSE itself: its default (0) in effect means no listing. */
  bool verbose = strcmp(name, "HAKMEM_VERBOSE") == 0;
  const char *env[] = {set, verbose ? NULL : "HAKMEM_VERBOSE=1", NULL};
  run_listing(env);
  snprintf(warning, sizeof warning, "hakmem: %s is malformed (accepted: %s); keeping the default %s", set, accepted,
           dflt);
  snprintf(effect, sizeof effect, "hakmem: %s=%s", name, dflt);
  cr_expect(has_line(warning), "%s: expected the line\n%s\ngot:\n%s", set, warning, r.err);
  if (verbose)
    cr_expect(hk_count_lines(r.err, r.err_len) == 1, "%s: the default 0 prints no listing:\n%s", set, r.err);
  else
    cr_expect(has_line(effect), "%s: the default %s must stay in effect; listing:\n%s", set, dflt, r.err);
  size_t warnings = 0;
  for (const char *s = r.err; (s = strstr(s, "malformed")) != NULL; s++) warnings++;
  cr_expect(warnings == 1, "%s: %zu warnings, expected one:\n%s", set, warnings, r.err);
}

Test(options, malformed_policy_warns_and_keeps_warn) {
  /* HAKMEM_INVALID_FREE's default is warn: the foreign free must then be
   * reported in one line and survived, after the one line about the value. */
  char *argv[] = {(char *)HELPER_BAD_FREE, (char *)"foreign_stack", NULL};
  const char *env[] = {"HAKMEM_INVALID_FREE=bogus", NULL};
  cr_assert(hk_spawn(argv, env, 60, &r) == 0, "could not run %s", HELPER_BAD_FREE);
  char how[128];
  cr_expect(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0 && strstr(r.out, "SURVIVED") != NULL,
            "expected the default policy (warn, continue), got %s\nstdout: %s\nstderr: %s",
            hk_spawn_describe(&r, how, sizeof how), r.out, r.err);
  cr_expect(hk_count_lines(r.err, r.err_len) == 2, "expected two lines (the value, the free), got:\n%s", r.err);
  cr_expect(has_line("hakmem: HAKMEM_INVALID_FREE=bogus is malformed (accepted: abort, warn or ignore); "
                     "keeping the default warn"),
            "no warning about the value:\n%s", r.err);
  cr_expect(strstr(r.err, "invalid free") != NULL, "the invalid free was not reported:\n%s", r.err);
}

Test(options, malformed_policy_keeps_abort) {
  /* HAKMEM_DOUBLE_FREE's default is abort, and "warn " (a trailing blank)
   * is not "warn": the double free must still abort. */
  char *argv[] = {(char *)HELPER_BAD_FREE, (char *)"double_small", NULL};
  const char *env[] = {"HAKMEM_DOUBLE_FREE=warn ", NULL};
  cr_assert(hk_spawn(argv, env, 60, &r) == 0, "could not run %s", HELPER_BAD_FREE);
  char how[128];
  cr_expect(WIFSIGNALED(r.status) && WTERMSIG(r.status) == SIGABRT, "expected SIGABRT (default kept), got %s\n%s",
            hk_spawn_describe(&r, how, sizeof how), r.err);
  cr_expect(strstr(r.err, "hakmem: HAKMEM_DOUBLE_FREE=warn  is malformed (accepted: abort, warn or ignore)") != NULL,
            "no warning about the value:\n%s", r.err);
}

Test(options, malformed_values_warn_and_keep_defaults) {
  const char *size = "MiB, or a size with a k, m or g suffix";
  const char *ms = "milliseconds, 0 to 2147483647";
  const char *yn = "1, 0, yes, no, true, false, on or off";
  expect_malformed("HAKMEM_LARGE_CACHE_MB", "12x", size, "64");
  expect_malformed("HAKMEM_LARGE_CACHE_MB", "", size, "64");
  expect_malformed("HAKMEM_LARGE_CACHE_MB", "-1", size, "64");
  expect_malformed("HAKMEM_LARGE_CACHE_MB", "1kb", size, "64");
  expect_malformed("HAKMEM_LARGE_CACHE_MB", "k", size, "64");
  expect_malformed("HAKMEM_LARGE_CACHE_MB", "17592186044416", size, "64"); /* 2^44 MiB: overflows */
  expect_malformed("HAKMEM_LARGE_CACHE_MB", "99999999999999999999999", size, "64");
  expect_malformed("HAKMEM_DECOMMIT_DELAY_MS", "2147483648", ms, "250");
  expect_malformed("HAKMEM_DECOMMIT_DELAY_MS", "1s", ms, "250");
  expect_malformed("HAKMEM_DECOMMIT_DELAY_MS", " 5", ms, "250");
  expect_malformed("HAKMEM_LARGE_HUGEPAGES", "2", yn, "1");
  expect_malformed("HAKMEM_TRACE_FAILURES", "Y", yn, "0");
  expect_malformed("HAKMEM_VERBOSE", "3", "0, 1 or 2", "0");
}

Test(options, a_long_malformed_value_is_cut_in_the_warning) {
  char set[400] = "HAKMEM_INVALID_FREE=";
  memset(set + strlen(set), 'x', 300);
  const char *env[] = {set, NULL};
  run_listing(env);
  cr_expect(hk_count_lines(r.err, r.err_len) == 1, "expected one line:\n%s", r.err);
  cr_expect(strstr(r.err, "xxx... is malformed (accepted: abort, warn or ignore); keeping the default warn\n") != NULL,
            "the warning must end with the accepted values and the default:\n%s", r.err);
}

Test(options, a_control_character_stays_in_the_line) {
  const char *env[] = {"HAKMEM_SHOW_STATS=1\nhakmem: forged", NULL};
  run_listing(env);
  cr_expect(hk_count_lines(r.err, r.err_len) == 1, "expected one line:\n%s", r.err);
  cr_expect(has_line("hakmem: HAKMEM_SHOW_STATS=1?hakmem: forged is malformed (accepted: 1, 0, yes, no, true, false, "
                     "on or off); keeping the default 0"),
            "got:\n%s", r.err);
}

Test(options, sizes_take_suffixes) {
  expect_value("HAKMEM_LARGE_CACHE_MB", "128", "128");
  expect_value("HAKMEM_LARGE_CACHE_MB", "0", "0 (default 64)");
  expect_value("HAKMEM_LARGE_CACHE_MB", "2g", "2048");
  expect_value("HAKMEM_LARGE_CACHE_MB", "2G", "2048");
  expect_value("HAKMEM_LARGE_CACHE_MB", "3m", "3");
  expect_value("HAKMEM_LARGE_CACHE_MB", "1536k", "1536k");
  expect_value("HAKMEM_LARGE_CACHE_MB", "1048576K", "1024");
  expect_value("HAKMEM_LARGE_CACHE_MB", "64m", "64");
}

Test(options, other_types_parse) {
  expect_value("HAKMEM_DECOMMIT_DELAY_MS", "0", "0 (default 250)");
  expect_value("HAKMEM_DECOMMIT_DELAY_MS", "2147483647", "2147483647");
  expect_value("HAKMEM_LARGE_HUGEPAGES", "off", "0 (default 1)");
  expect_value("HAKMEM_LARGE_HUGEPAGES", "no", "0");
  expect_value("HAKMEM_TRACE_FAILURES", "yes", "1");
  expect_value("HAKMEM_TRACE_FAILURES", "true", "1");
  expect_value("HAKMEM_SHOW_STATS", "0", "0");
  expect_value("HAKMEM_INVALID_FREE", "ignore", "ignore (default warn)");
  expect_value("HAKMEM_DOUBLE_FREE", "warn", "warn (default abort)");
}

/* Every option of the table, once, in the table's order: the names come
 * from docs/OPTIONS.md (itself checked against the table by options_doc). */
Test(options, verbose_lists_every_option) {
  const char *env[] = {"HAKMEM_VERBOSE=1", NULL};
  run_listing(env);
  cr_assert(strncmp(r.err, "hakmem: version ", 16) == 0, "the listing must start with the version:\n%s", r.err);
  FILE *f = fopen(OPTIONS_DOC, "r");
  cr_assert(f != NULL, "cannot open %s", OPTIONS_DOC);
  char line[1024];
  size_t n = 0;
  const char *at = r.err;
  while (fgets(line, sizeof line, f) != NULL) {
    char name[64];
    if (sscanf(line, "| `%63[A-Z_]`", name) != 1) continue;
    char want[80];
    snprintf(want, sizeof want, "\nhakmem: %s=", name);
    const char *hit = strstr(at, want);
    cr_expect(hit != NULL, "%s is missing (or out of order) in the HAKMEM_VERBOSE=1 listing:\n%s", name, r.err);
    if (hit != NULL) at = hit + 1;
    n++;
  }
  fclose(f);
  cr_expect(n >= 8, "%s lists only %zu options", OPTIONS_DOC, n);
  cr_expect(hk_count_lines(r.err, r.err_len) == n + 1, "expected the version and %zu option lines, got:\n%s", n,
            r.err);
}

/* Level 2: one whole table row per option (six tab-separated fields), never
 * cut at the line buffer's end. */
Test(options, verbose_2_prints_whole_rows) {
  const char *env[] = {"HAKMEM_VERBOSE=2", NULL};
  run_listing(env);
  size_t rows = 0;
  for (char *s = r.err; (s = strstr(s, "hakmem: option\t")) != NULL; s++) {
    char *end = strchr(s, '\n');
    cr_assert(end != NULL, "an unterminated row:\n%s", s);
    size_t tabs = 0;
    for (char *c = s; c < end; c++) tabs += *c == '\t';
    cr_expect(tabs == 6, "expected 6 tabs in %.*s", (int)(end - s), s);
    cr_expect(end - s < 255, "a row of %d bytes fills the line buffer: %.*s", (int)(end - s), (int)(end - s), s);
    rows++;
  }
  cr_expect(rows >= 8, "only %zu rows:\n%s", rows, r.err);
}

/* The default: no HAKMEM_VERBOSE, no malformed value -- nothing on stderr. */
Test(options, silent_by_default) {
  const char *env[] = {"HAKMEM_DECOMMIT_DELAY_MS=100", NULL};
  run_listing(env);
  cr_expect(r.err_len == 0, "expected nothing on stderr, got:\n%s", r.err);
}
