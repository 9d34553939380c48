/* mini_criterion.c -- the runner behind mini_criterion.h. */
#define _GNU_SOURCE
#include "mini_criterion.h"

#include <fnmatch.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_TESTS 512
#define MAX_SUITES 64

static struct {
  const char *suite, *name;
  void (*fn)(void);
  const struct hk_mc_opts *opts;
} tests[MAX_TESTS];
static int ntests;

static struct {
  const char *name;
  const struct hk_mc_opts *opts;
} suites[MAX_SUITES];
static int nsuites;

static int expect_failed; /* in the child: a cr_expect failed */

void hk_mc_register_suite(const char *suite, const struct hk_mc_opts *opts) {
  if (nsuites < MAX_SUITES) {
    suites[nsuites].name = suite;
    suites[nsuites].opts = opts;
    nsuites++;
  }
}

void hk_mc_register_test(const char *suite, const char *name, void (*fn)(void), const struct hk_mc_opts *opts) {
  if (ntests < MAX_TESTS) {
    tests[ntests].suite = suite;
    tests[ntests].name = name;
    tests[ntests].fn = fn;
    tests[ntests].opts = opts;
    ntests++;
  }
}

/* One message on stderr: `prefix`, then fmt's text, then a newline. */
static void hk_mc_say(const char *prefix, const char *fmt, va_list ap) {
  fputs(prefix, stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
}

void hk_mc_fail(int fatal, const char *file, int line, const char *expr, const char *fmt, ...) {
  fprintf(stderr, "[----] %s:%d: %s Failed: %s\n", file, line, fatal ? "Assertion" : "Expectation", expr);
  va_list ap;
  va_start(ap, fmt);
  hk_mc_say("[----]   ", fmt, ap);
  va_end(ap);
  fflush(NULL);
  if (fatal) _exit(1);
  expect_failed = 1;
}

/* A skipped test's exit status: neither a pass (0) nor a failure (1). */
#define HK_MC_SKIPPED 77

void hk_mc_skip(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  hk_mc_say("[SKIP] ", fmt, ap);
  va_end(ap);
  fflush(NULL);
  _exit(HK_MC_SKIPPED);
}

void hk_mc_log(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  hk_mc_say("[----] ", fmt, ap);
  va_end(ap);
}

static const struct hk_mc_opts *suite_opts(const char *name) {
  for (int i = 0; i < nsuites; i++)
    if (strcmp(suites[i].name, name) == 0) return suites[i].opts;
  return NULL;
}

int main(int argc, char **argv) {
  const char *filter = NULL;
  int verbose = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--filter") == 0 && i + 1 < argc) filter = argv[++i];
    else if (strncmp(argv[i], "--filter=", 9) == 0) filter = argv[i] + 9;
    else if (strcmp(argv[i], "--verbose") == 0) verbose = 1;
    else if (strcmp(argv[i], "--jobs") == 0 || strcmp(argv[i], "-j") == 0) i++;
  }
  int run = 0, failed = 0, skipped = 0;
  for (int t = 0; t < ntests; t++) {
    char full[256];
    snprintf(full, sizeof full, "%s/%s", tests[t].suite, tests[t].name);
    if (filter != NULL && fnmatch(filter, full, 0) != 0) continue;
    const struct hk_mc_opts *so = suite_opts(tests[t].suite), *to = tests[t].opts;
    if (to->disabled || (so != NULL && so->disabled)) continue;
    double timeout = to->timeout > 0 ? to->timeout : so != NULL && so->timeout > 0 ? so->timeout : 600;
    if (verbose) fprintf(stderr, "[RUN ] %s::%s\n", tests[t].suite, tests[t].name);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
      perror("fork");
      return 2;
    }
    if (pid == 0) {
      alarm((unsigned)timeout + 1);
      if (so != NULL && so->init != NULL) so->init();
      if (to->init != NULL) to->init();
      tests[t].fn();
      if (to->fini != NULL) to->fini();
      if (so != NULL && so->fini != NULL) so->fini();
      fflush(NULL);
      _exit(expect_failed ? 1 : 0);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
    }
    run++;
    if (WIFEXITED(status) && WEXITSTATUS(status) == HK_MC_SKIPPED) {
      skipped++;
      fprintf(stderr, "[SKIP] %s::%s\n", tests[t].suite, tests[t].name);
    } else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
      if (verbose) fprintf(stderr, "[PASS] %s::%s\n", tests[t].suite, tests[t].name);
    } else {
      failed++;
      if (WIFSIGNALED(status))
        fprintf(stderr, "[FAIL] %s::%s: CRASH, signal %d (%s)%s\n", tests[t].suite, tests[t].name, WTERMSIG(status),
                strsignal(WTERMSIG(status)), WTERMSIG(status) == SIGALRM ? ": timed out" : "");
      else
        fprintf(stderr, "[FAIL] %s::%s\n", tests[t].suite, tests[t].name);
    }
  }
  fprintf(stderr, "[====] Synthesis: Tested: %d | Skipped: %d | Passing: %d | Failing: %d\n", run, skipped,
          run - skipped - failed, failed);
  return failed != 0;
}
