/* test_bad_input.c -- CONTRACT.md "Bad input": foreign pointers, interior
 * pointers, double frees, and realloc / malloc_usable_size of invalid
 * pointers, under each policy.
 *
 * HAKMEM reads HAKMEM_INVALID_FREE / HAKMEM_DOUBLE_FREE once, at
 * initialisation, before main; so each case runs helpers/helper_bad_free.c in
 * a fresh process with the variable set, and checks how it ended and what it
 * wrote on stderr:
 *   warn    exit 0, the helper's "SURVIVED" (nothing corrupted, see the
 *           helper), and exactly one stderr line "hakmem: ...<kind>..."
 *   abort   killed by SIGABRT, after a "hakmem: ...<kind>..." line
 *   ignore  exit 0, "SURVIVED", nothing on stderr
 * Defaults: HAKMEM_INVALID_FREE=warn, HAKMEM_DOUBLE_FREE=abort. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "hk_test.h"
#include "spawn.h"

#ifndef HELPER_BAD_FREE
#error "HELPER_BAD_FREE must name helper_bad_free (set by tests/CMakeLists.txt)"
#endif

TestSuite(bad_input, .init = hk_require_override, .timeout = 300.);

typedef enum { WARN, ABORT, SILENT } outcome;

static const char *const outcome_name[] = {"warn: one line, continue", "abort", "ignore: silent, continue"};

/* Runs helper_bad_free MODE with env (NULL: defaults) and checks the outcome.
 * `kind` must appear in HAKMEM's diagnostic. Uses cr_expect so every mode of
 * a test is reported. */
static void expect_outcome_of(const char *helper, const char *mode, const char *env, outcome want, const char *kind) {
  static hk_spawn_result r;
  char *argv[] = {(char *)helper, (char *)mode, NULL};
  const char *envv[] = {env, NULL};
  int rc = hk_spawn(argv, env != NULL ? envv : NULL, 120, &r);
  cr_assert(rc == 0, "could not run %s: %s", helper, strerror(errno));
  char how[128];
  hk_spawn_describe(&r, how, sizeof how);
  const char *setting = env != NULL ? env : "default policies";
  int survived = strstr(r.out, "SURVIVED") != NULL;
  int has_diag = strncmp(r.err, "hakmem: ", 8) == 0 || strstr(r.err, "\nhakmem: ") != NULL;
  int has_kind = strstr(r.err, kind) != NULL;
  size_t lines = hk_count_lines(r.err, r.err_len);

  switch (want) {
    case WARN:
      cr_expect(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0 && survived,
                "%s with %s: expected to continue unharmed (%s), but: %s\nstdout: %s\nstderr: %s", mode, setting,
                outcome_name[want], how, r.out, r.err);
      cr_expect(lines == 1 && r.err_len > 0 && r.err[r.err_len - 1] == '\n',
                "%s with %s: expected exactly one diagnostic line on stderr, got %zu:\n%s", mode, setting, lines, r.err);
      cr_expect(strncmp(r.err, "hakmem: ", 8) == 0 && has_kind,
                "%s with %s: the diagnostic must start with \"hakmem: \" and mention \"%s\"; stderr: %s", mode, setting,
                kind, r.err);
      break;
    case ABORT:
      cr_expect(WIFSIGNALED(r.status) && WTERMSIG(r.status) == SIGABRT,
                "%s with %s: expected SIGABRT, but: %s\nstdout: %s\nstderr: %s", mode, setting, how, r.out, r.err);
      cr_expect(!survived, "%s with %s: the program continued past the bad call", mode, setting);
      cr_expect(has_diag && has_kind, "%s with %s: expected a \"hakmem: ...%s...\" diagnostic before the abort; stderr: %s",
                mode, setting, kind, r.err);
      break;
    case SILENT:
      cr_expect(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0 && survived,
                "%s with %s: expected to continue unharmed, but: %s\nstdout: %s\nstderr: %s", mode, setting, how, r.out,
                r.err);
      cr_expect(r.err_len == 0, "%s with %s: expected no output on stderr, got:\n%s", mode, setting, r.err);
      break;
  }
}

static void expect_outcome(const char *mode, const char *env, outcome want, const char *kind) {
  expect_outcome_of(HELPER_BAD_FREE, mode, env, want, kind);
}

static const char *const foreign_modes[] = {"foreign_stack", "foreign_static", "foreign_mmap", "foreign_glibc"};
static const char *const interior_modes[] = {"interior_small", "interior_large"};
static const char *const double_modes[] = {"double_small", "double_large"};
static const char *const realloc_modes[] = {"realloc_foreign", "realloc_interior"};
static const char *const usable_modes[] = {"usable_size_foreign", "usable_size_interior"};

#define EACH(list, env, want, kind)                                     \
  for (size_t i_ = 0; i_ < sizeof(list) / sizeof((list)[0]); i_++)       \
  expect_outcome((list)[i_], (env), (want), (kind))

/* ---- foreign pointers: stack, static, a separate mmap, glibc's heap ------------------ */

Test(bad_input, free_of_foreign_pointer_warns_once_and_continues_by_default) {
  EACH(foreign_modes, NULL, WARN, "invalid free");
  EACH(foreign_modes, "HAKMEM_INVALID_FREE=warn", WARN, "invalid free");
}

Test(bad_input, free_of_foreign_pointer_aborts_under_policy_abort) {
  EACH(foreign_modes, "HAKMEM_INVALID_FREE=abort", ABORT, "invalid free");
}

Test(bad_input, free_of_foreign_pointer_is_silent_under_policy_ignore) {
  EACH(foreign_modes, "HAKMEM_INVALID_FREE=ignore", SILENT, "invalid free");
}

Test(bad_input, free_of_foreign_pointer_ignores_the_double_free_policy) {
  expect_outcome("foreign_stack", "HAKMEM_DOUBLE_FREE=ignore", WARN, "invalid free");
  expect_outcome("foreign_mmap", "HAKMEM_DOUBLE_FREE=warn", WARN, "invalid free");
}

/* ---- interior pointers --------------------------------------------------------------- */

Test(bad_input, free_of_interior_pointer_warns_once_and_continues_by_default) {
  EACH(interior_modes, NULL, WARN, "invalid free");
}

Test(bad_input, free_of_interior_pointer_aborts_under_policy_abort) {
  EACH(interior_modes, "HAKMEM_INVALID_FREE=abort", ABORT, "invalid free");
}

Test(bad_input, free_of_interior_pointer_is_silent_under_policy_ignore) {
  EACH(interior_modes, "HAKMEM_INVALID_FREE=ignore", SILENT, "invalid free");
}

/* ---- double free: the cheap cases (head of the local free list; large) ------------------ */

Test(bad_input, double_free_aborts_by_default) {
  EACH(double_modes, NULL, ABORT, "double free");
  EACH(double_modes, "HAKMEM_DOUBLE_FREE=abort", ABORT, "double free");
}

Test(bad_input, double_free_warns_once_and_continues_under_policy_warn) {
  EACH(double_modes, "HAKMEM_DOUBLE_FREE=warn", WARN, "double free");
}

Test(bad_input, double_free_is_silent_under_policy_ignore) {
  EACH(double_modes, "HAKMEM_DOUBLE_FREE=ignore", SILENT, "double free");
}

Test(bad_input, double_free_ignores_the_invalid_free_policy) {
  EACH(double_modes, "HAKMEM_INVALID_FREE=ignore", ABORT, "double free");
}

/* ---- realloc / malloc_usable_size of an invalid pointer: same rule as free --------------- */

Test(bad_input, realloc_of_invalid_pointer_follows_invalid_free_policy) {
  EACH(realloc_modes, NULL, WARN, "invalid");
  EACH(realloc_modes, "HAKMEM_INVALID_FREE=abort", ABORT, "invalid");
  EACH(realloc_modes, "HAKMEM_INVALID_FREE=ignore", SILENT, "invalid");
}

Test(bad_input, usable_size_of_invalid_pointer_follows_invalid_free_policy) {
  EACH(usable_modes, NULL, WARN, "invalid");
  EACH(usable_modes, "HAKMEM_INVALID_FREE=abort", ABORT, "invalid");
  EACH(usable_modes, "HAKMEM_INVALID_FREE=ignore", SILENT, "invalid");
}

/* ---- a double free below the list head: caught before the block goes out twice --- */

/* The default build does not read a freed block in free (that load stalls
 * free on large working sets); a block freed twice is caught when its
 * second turn on the free list comes, before it is handed out again: the
 * helper's next mallocs abort by default, and under warn they go on with
 * every block distinct (the helper checks 1000 of them). */
Test(bad_input, double_free_below_the_head_is_caught_before_the_block_is_reused) {
  expect_outcome_of(HELPER_BAD_FREE, "double_small_hidden", NULL, ABORT, "double free");
  expect_outcome_of(HELPER_BAD_FREE, "double_small_hidden", "HAKMEM_DOUBLE_FREE=warn", WARN, "double free");
  /* The same when the extra free takes the slab's count of blocks out to 0
   * while one is live: caught when the slab would be released. */
  expect_outcome_of(HELPER_BAD_FREE, "double_small_empties_slab", NULL, ABORT, "double free");
  expect_outcome_of(HELPER_BAD_FREE, "double_small_empties_slab", "HAKMEM_DOUBLE_FREE=warn", WARN, "double free");
  expect_outcome_of(HELPER_BAD_FREE_HARDENED, "double_small_empties_slab", NULL, ABORT, "double free");
}

/* A block on its owner's free list freed again by another thread: the
 * owner's reclaim catches it (the sender's chain must not overwrite the key
 * that says "free"; remote/remote.c's prefetch hint keeps it). The hardened
 * build catches it at the second free, by the canary's tail. */
Test(bad_input, double_free_by_another_thread_is_caught_by_the_owner) {
  static const char *const modes[] = {"double_remote_cached", "double_remote_slab"};
  for (size_t i = 0; i < 2; i++) {
    /* At the reclaim, by name: a later check (the slab's count, the hand-out)
     * would also catch it, but after the block was on a list twice. */
    expect_outcome_of(HELPER_BAD_FREE, modes[i], NULL, ABORT, "freed by another thread; block already free");
    expect_outcome_of(HELPER_BAD_FREE, modes[i], "HAKMEM_DOUBLE_FREE=warn", WARN,
                      "freed by another thread; block already free");
    expect_outcome_of(HELPER_BAD_FREE_HARDENED, modes[i], NULL, ABORT, "double free");
  }
}

/* ---- the hardened build detects every double free ------------------------ */

/* helper_bad_free_hardened is the same helper linked to
 * libhakmem-hardened.so: a double free that is not at the head of a free
 * list is caught there (and everything the default build catches still is). */
Test(bad_input, hardened_build_detects_double_free_not_at_list_head) {
  expect_outcome_of(HELPER_BAD_FREE_HARDENED, "double_small_hidden", NULL, ABORT, "double free");
  expect_outcome_of(HELPER_BAD_FREE_HARDENED, "double_small_hidden", "HAKMEM_DOUBLE_FREE=warn", WARN, "double free");
  EACH(double_modes, NULL, ABORT, "double free");
  for (size_t i = 0; i < sizeof double_modes / sizeof double_modes[0]; i++)
    expect_outcome_of(HELPER_BAD_FREE_HARDENED, double_modes[i], NULL, ABORT, "double free");
}
