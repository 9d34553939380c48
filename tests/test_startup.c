/* test_startup.c -- start-up safety (CONTRACT.md "first call of a thread or
 * process: any entry point may come first ... also before constructors ran").
 * Each case is a helper program (tests/helpers) linked to libhakmem.so, run
 * in a fresh process: it must exit 0, say "OK", and HAKMEM must not have
 * printed anything. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "hk_test.h"
#include "spawn.h"

#if !defined(HELPER_FIRST_CALL) || !defined(HELPER_DLOPEN_TLS) || !defined(HELPER_TLS_GD) || !defined(HELPER_TLS_IE) || \
    !defined(HELPER_NOTHREADS)
#error "helper paths must be set by tests/CMakeLists.txt"
#endif

TestSuite(startup, .init = hk_require_override, .timeout = 300.);

static void expect_ok(char *const argv[]) {
  static hk_spawn_result r;
  cr_assert(hk_spawn(argv, NULL, 240, &r) == 0, "could not run %s: %s", argv[0], strerror(errno));
  char how[128];
  hk_spawn_describe(&r, how, sizeof how);
  char cmd[512] = "";
  for (int i = 0; argv[i] != NULL; i++) {
    strncat(cmd, argv[i], sizeof cmd - strlen(cmd) - 2);
    strcat(cmd, " ");
  }
  cr_expect(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0 && strstr(r.out, "OK") != NULL,
            "%s: %s\nstdout: %s\nstderr: %s", cmd, how, r.out, r.err);
  cr_expect(r.err_len == 0, "%s: unexpected output on stderr:\n%s", cmd, r.err);
}

static void first_call(const char *stage, const char *call) {
  char *argv[] = {(char *)HELPER_FIRST_CALL, (char *)stage, (char *)call, NULL};
  expect_ok(argv);
}

/* Before any constructor ran: the executable's .preinit_array runs before
 * every shared library's initialisers, HAKMEM's and libc's included. */
Test(startup, first_call_before_constructors_is_malloc) { first_call("preinit", "malloc"); }
Test(startup, first_call_before_constructors_is_free_null) { first_call("preinit", "free_null"); }
Test(startup, first_call_before_constructors_is_realloc) { first_call("preinit", "realloc"); }
Test(startup, first_call_before_constructors_is_usable_size) { first_call("preinit", "usable_size"); }
Test(startup, first_call_before_constructors_is_posix_memalign) { first_call("preinit", "posix_memalign"); }
Test(startup, first_call_before_constructors_is_calloc) { first_call("preinit", "calloc"); }
Test(startup, first_call_before_constructors_is_aligned_alloc) { first_call("preinit", "aligned_alloc"); }

/* From an ordinary constructor of the program: malloc/free, realloc across
 * size classes, calloc, posix_memalign, a block kept until main. */
Test(startup, first_malloc_in_constructor) { first_call("ctor", "malloc"); }
Test(startup, first_call_in_constructor_is_realloc) { first_call("ctor", "realloc"); }

Test(startup, dlopen_library_with_tls_used_from_threads) {
  char *argv[] = {(char *)HELPER_DLOPEN_TLS, (char *)HELPER_TLS_GD, (char *)HELPER_TLS_IE, NULL};
  expect_ok(argv);
}

Test(startup, program_that_never_calls_pthread) {
  char *argv[] = {(char *)HELPER_NOTHREADS, (char *)"1000000", NULL};
  expect_ok(argv);
}

/* The process's first heap is mapped alone (core/heap.c): a single-threaded
 * program's one small block costs its SuperSlab's 2 MiB and a 20 KiB heap
 * (and a few pages of records), not a batch of 64 heaps (1.25 MiB more,
 * one 1 MiB block fewer for python under ulimit -v). */
Test(startup, single_threaded_program_maps_one_heap_not_a_batch) {
  static hk_spawn_result r;
  char *argv[] = {(char *)HELPER_NOTHREADS, (char *)"address", NULL};
  cr_assert(hk_spawn(argv, NULL, 60, &r) == 0, "could not run %s: %s", argv[0], strerror(errno));
  size_t mapped = 0, heaps = 0;
  cr_assert(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0 && sscanf(r.out, "MAPPED %zu HEAPS %zu", &mapped, &heaps) == 2,
            "helper_nothreads address: stdout %s, stderr:\n%s", r.out, r.err);
  cr_log_info("one small block in a fresh single-threaded process: %zu KiB of address space, %zu heap(s)",
              mapped >> 10, heaps);
  cr_assert(r.err_len == 0, "HAKMEM printed:\n%s", r.err);
  cr_assert(heaps == 1, "%zu heaps created for one thread", heaps);
  cr_assert(mapped <= 2 * HK_MIB + 512 * 1024, "%zu KiB of address space for one small block (a heap batch is 1280 KiB)",
            mapped >> 10);
}
