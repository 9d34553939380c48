/* test_hardened.c -- the hardened build catches memory errors (docs/
 * ARCHITECTURE.md "Hardened mode"): overflows of 1, 8 and 64 bytes at free
 * and at realloc (small, medium and large blocks), double frees (medium;
 * owner after another thread), a forged free-list link, writes after free (with
 * HAKMEM_QUARANTINE and without), guard pages around SuperSlab metadata,
 * a large block's sealed header, randomized carving; and correct programs
 * run clean under it.
 *
 * Each case runs helpers/helper_hardened.c, linked to the hardened library,
 * in a child process (the error kills it): it prints "ADDR 0x..." with the
 * address the diagnostic must name, then makes the mistake. Expected: killed
 * by SIGABRT after exactly one stderr line "hakmem: <bug> at 0x<addr>". */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "hk_test.h"
#include "spawn.h"

#ifndef HELPER_HARDENED
#error "HELPER_HARDENED must name helper_hardened (set by tests/CMakeLists.txt)"
#endif

TestSuite(hardened, .timeout = 300.);

static hk_spawn_result r;

static void run(const char *mode, const char *env) {
  char *argv[] = {(char *)HELPER_HARDENED, (char *)mode, NULL};
  const char *envv[] = {env, NULL};
  int rc = hk_spawn(argv, env != NULL ? envv : NULL, 120, &r);
  cr_assert(rc == 0, "could not run %s: %s", HELPER_HARDENED, strerror(errno));
}

/* The "ADDR 0x..." the helper printed. */
static unsigned long said_addr(const char *mode) {
  const char *a = strstr(r.out, "ADDR ");
  cr_assert(a != NULL, "%s: the helper printed no address; stdout: %s", mode, r.out);
  return strtoul(a + 5, NULL, 16);
}

/* SIGABRT after one line "hakmem: <what>0x<x>..." with x in [lo, lo + span]
 * (what: "<bug> at ", or "double free of " for the double-free report). */
static void expect_caught(const char *mode, const char *env, const char *what, unsigned long span) {
  run(mode, env);
  char how[128];
  hk_spawn_describe(&r, how, sizeof how);
  cr_expect(WIFSIGNALED(r.status) && WTERMSIG(r.status) == SIGABRT,
            "%s (%s): expected SIGABRT, but: %s\nstdout: %s\nstderr: %s", mode, env ? env : "defaults", how, r.out,
            r.err);
  cr_expect(hk_count_lines(r.err, r.err_len) == 1, "%s: expected exactly one diagnostic line, got:\n%s", mode, r.err);
  char want[128];
  snprintf(want, sizeof want, "hakmem: %s0x", what);
  const char *line = strstr(r.err, want);
  cr_assert(line != NULL, "%s: expected \"%s...\" on stderr; got: %s", mode, want, r.err);
  unsigned long at = strtoul(line + strlen(want) - 2, NULL, 16), lo = said_addr(mode);
  cr_expect(at >= lo && at <= lo + span, "%s: the diagnostic names 0x%lx, expected 0x%lx..0x%lx: %s", mode, at, lo,
            lo + span, r.err);
}

static void expect_clean(const char *mode, const char *env) {
  run(mode, env);
  char how[128];
  hk_spawn_describe(&r, how, sizeof how);
  cr_expect(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0 && strstr(r.out, "CLEAN") != NULL,
            "%s (%s): expected to run clean, but: %s\nstdout: %s\nstderr: %s", mode, env ? env : "defaults", how, r.out,
            r.err);
  cr_expect(r.err_len == 0, "%s (%s): expected nothing on stderr, got: %s", mode, env ? env : "defaults", r.err);
}

/* ---- overflows ----------------------------------------------------------- */

Test(hardened, overflow_of_1_8_64_bytes_is_caught_at_free) {
  expect_caught("overflow_1", NULL, "heap overflow at ", 0);
  expect_caught("overflow_8", NULL, "heap overflow at ", 7);
  expect_caught("overflow_64", NULL, "heap overflow at ", 63);
  expect_caught("overflow_1_large", NULL, "heap overflow at ", 0);
  expect_caught("overflow_1_medium", NULL, "heap overflow at ", 0);
}

Test(hardened, overflow_of_1_8_64_bytes_is_caught_at_realloc) {
  expect_caught("overflow_1_realloc", NULL, "heap overflow at ", 0);
  expect_caught("overflow_8_realloc", NULL, "heap overflow at ", 7);
  expect_caught("overflow_64_realloc", NULL, "heap overflow at ", 63);
  expect_caught("overflow_64_large_realloc", NULL, "heap overflow at ", 63);
  expect_caught("overflow_8_medium_realloc", NULL, "heap overflow at ", 7);
}

/* ---- double frees (the canary's tail, which free marks) ------------------- */

Test(hardened, double_free_is_caught_whichever_thread_freed_first) {
  expect_caught("double_free_medium", NULL, "double free of ", 0);
  expect_caught("double_free_remote_then_local", NULL, "double free of ", 0);
}

/* ---- free-list links ------------------------------------------------------ */

Test(hardened, forged_free_list_link_is_caught_before_it_is_followed) {
  expect_caught("forged_link", NULL, "forged or overwritten free-list link at ", 0);
  cr_expect(strstr(r.out, "FOLLOWED") == NULL, "the forged link was followed");
}

Test(hardened, write_after_free_to_a_slab_list_link_is_caught) {
  expect_caught("uaf_write_slab_list", NULL, "forged or overwritten free-list link at ", 0);
}

/* ---- the quarantine ------------------------------------------------------ */

Test(hardened, write_after_free_is_caught_by_the_quarantine) {
  expect_caught("uaf_write_quarantine", "HAKMEM_QUARANTINE=65536", "use after free write at ", 0);
  expect_caught("uaf_write_quarantine_link", "HAKMEM_QUARANTINE=65536", "use after free write at ", 0);
}

Test(hardened, quarantine_delays_reuse_and_fills_freed_blocks) {
  expect_clean("quarantine_delays_reuse", "HAKMEM_QUARANTINE=65536");
}

Test(hardened, double_free_of_a_quarantined_block_is_caught) {
  expect_caught("double_free_quarantine", "HAKMEM_QUARANTINE=65536", "double free of ", 0);
}

/* ---- layout ---------------------------------------------------------------- */

Test(hardened, guard_pages_protect_superslab_metadata) {
  const char *modes[] = {"guard_header", "guard_end"};
  for (int i = 0; i < 2; i++) {
    run(modes[i], NULL);
    char how[128];
    hk_spawn_describe(&r, how, sizeof how);
    cr_expect(WIFSIGNALED(r.status) && WTERMSIG(r.status) == SIGSEGV,
              "%s: a write to the guard page should fault, but: %s\nstdout: %s", modes[i], how, r.out);
  }
}

Test(hardened, an_overwritten_large_block_header_is_caught_before_it_is_used) {
  expect_caught("large_header_free", NULL, "corrupted large block header at ", 0);
  expect_caught("large_header_realloc", NULL, "corrupted large block header at ", 0);
  expect_caught("large_header_usable", NULL, "corrupted large block header at ", 0);
}

Test(hardened, fresh_blocks_are_handed_out_in_random_order) {
  run("carve_order", NULL);
  int seq = -1, n = 0;
  const char *s = strstr(r.out, "SEQUENTIAL ");
  cr_assert(s != NULL && sscanf(s, "SEQUENTIAL %d of %d", &seq, &n) == 2, "stdout: %s", r.out);
  /* Address order: n of n. A random order of a 4 KiB carve of 36 blocks
   * puts about n/36 neighbours in a row. */
  cr_expect(seq < n / 4, "%d of %d fresh blocks followed their predecessor in address order", seq, n);
}

/* ---- correct programs ---------------------------------------------------- */

Test(hardened, correct_program_runs_clean) {
  expect_clean("clean", NULL);
  expect_clean("clean", "HAKMEM_QUARANTINE=262144");
}
