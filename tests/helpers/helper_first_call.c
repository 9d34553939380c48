/* helper_first_call.c -- HAKMEM entered before anything was set up.
 *
 * usage: helper_first_call STAGE CALL
 *   STAGE  preinit   the call runs from the executable's .preinit_array:
 *                    before any shared library's constructor, libc's and
 *                    HAKMEM's own included
 *          ctor      the call runs from an ordinary constructor
 *   CALL   malloc | free_null | realloc | usable_size | posix_memalign |
 *          calloc | aligned_alloc
 *
 * At STAGE the helper makes CALL first, then a short sequence of every kind
 * of request (small, medium, large, realloc across them, calloc, aligned),
 * recording the outcome in static variables with no I/O (stdio may not be
 * ready). main() reports it: exit 0 and "OK" on stdout when every step
 * succeeded and errno was never changed by a successful call. */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hk_common.h"

static const char *failure; /* first failed step, NULL if none */
static int ran;             /* the staged sequence ran */
static void *kept;          /* a block allocated at STAGE, freed in main */
static size_t kept_size;

#define STEP(cond, msg)                 \
  do {                                  \
    if (!(cond) && failure == NULL) {   \
      failure = (msg);                  \
      return;                           \
    }                                   \
  } while (0)

static void first_call(const char *call) {
  errno = EBADF;
  if (strcmp(call, "malloc") == 0) {
    void *p = malloc(40);
    STEP(p != NULL && hak_owns(p), "first call malloc(40) failed or not HAKMEM's");
    STEP(errno == EBADF, "first call malloc changed errno");
    free(p);
  } else if (strcmp(call, "free_null") == 0) {
    free(NULL);
    STEP(errno == EBADF, "first call free(NULL) changed errno");
  } else if (strcmp(call, "realloc") == 0) {
    void *p = realloc(NULL, 40);
    STEP(p != NULL && hak_owns(p), "first call realloc(NULL, 40) failed or not HAKMEM's");
    STEP(errno == EBADF, "first call realloc changed errno");
    free(p);
  } else if (strcmp(call, "usable_size") == 0) {
    STEP(malloc_usable_size(NULL) == 0, "first call malloc_usable_size(NULL) != 0");
    STEP(errno == EBADF, "first call malloc_usable_size changed errno");
  } else if (strcmp(call, "posix_memalign") == 0) {
    void *p = NULL;
    STEP(posix_memalign(&p, 64, 100) == 0, "first call posix_memalign(64, 100) failed");
    STEP(p != NULL && hak_owns(p) && hk_aligned(p, 64), "first call posix_memalign: bad block");
    STEP(errno == EBADF, "first call posix_memalign changed errno");
    free(p);
  } else if (strcmp(call, "calloc") == 0) {
    unsigned char *p = calloc(10, 10);
    STEP(p != NULL && hak_owns(p), "first call calloc(10, 10) failed or not HAKMEM's");
    STEP(hk_first_nonzero(p, 100) == SIZE_MAX, "first call calloc: memory not zeroed");
    STEP(errno == EBADF, "first call calloc changed errno");
    free(p);
  } else if (strcmp(call, "aligned_alloc") == 0) {
    void *p = aligned_alloc(4096, 10);
    STEP(p != NULL && hak_owns(p) && hk_aligned(p, 4096), "first call aligned_alloc(4096, 10) failed");
    STEP(errno == EBADF, "first call aligned_alloc changed errno");
    free(p);
  } else {
    STEP(0, "unknown CALL");
  }
}

/* After the first call: one of everything, still at STAGE. */
static void then_everything(void) {
  errno = EBADF;
  static const size_t sizes[] = {0, 1, 16, 100, 1000, 5000, 70000, 200000, 3 * 1024 * 1024};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    size_t n = sizes[i];
    unsigned char *p = malloc(n);
    STEP(p != NULL && hak_owns(p) && hk_aligned(p, 16), "malloc at start-up failed");
    STEP(malloc_usable_size(p) >= n, "usable size < request at start-up");
    hk_fill(p, n, n);
    STEP(hk_check(p, n, n) == SIZE_MAX, "block contents lost at start-up");
    free(p);
  }
  unsigned char *r = realloc(NULL, 24);
  STEP(r != NULL, "realloc(NULL, 24) failed at start-up");
  hk_fill(r, 24, 5);
  r = realloc(r, 50000);
  STEP(r != NULL && hk_check(r, 24, 5) == SIZE_MAX, "realloc grow to medium lost contents");
  r = realloc(r, 500000);
  STEP(r != NULL && hk_check(r, 24, 5) == SIZE_MAX, "realloc grow to large lost contents");
  r = realloc(r, 10);
  STEP(r != NULL && hk_check(r, 10, 5) == SIZE_MAX, "realloc shrink to small lost contents");
  free(r);
  unsigned char *c = calloc(1000, 3);
  STEP(c != NULL && hk_first_nonzero(c, 3000) == SIZE_MAX, "calloc at start-up not zeroed");
  free(c);
  void *a = NULL;
  STEP(posix_memalign(&a, 1 << 16, 300) == 0 && hk_aligned(a, 1 << 16), "posix_memalign(64 KiB) at start-up failed");
  free(a);
  STEP(errno == EBADF, "a successful call at start-up changed errno");
  kept_size = 777;
  kept = malloc(kept_size);
  STEP(kept != NULL, "malloc(777) at start-up failed");
  hk_fill(kept, kept_size, 9);
  ran = 1;
}

static const char *stage_arg, *call_arg;

static void run_stage(int argc, char **argv, const char *stage) {
  if (argc != 3 || strcmp(argv[1], stage) != 0) return;
  stage_arg = argv[1];
  call_arg = argv[2];
  first_call(argv[2]);
  if (failure == NULL) then_everything();
}

/* glibc passes (argc, argv, envp) to .preinit_array and .init_array entries. */
static void at_preinit(int argc, char **argv, char **envp) {
  (void)envp;
  run_stage(argc, argv, "preinit");
}

static void at_ctor(int argc, char **argv, char **envp) {
  (void)envp;
  run_stage(argc, argv, "ctor");
}

__attribute__((section(".preinit_array"), used)) static void (*preinit_entry)(int, char **, char **) = at_preinit;
__attribute__((section(".init_array"), used)) static void (*ctor_entry)(int, char **, char **) = at_ctor;

int main(int argc, char **argv) {
  if (argc != 3) {
    printf("usage: helper_first_call preinit|ctor CALL\n");
    return 64;
  }
  if (failure != NULL) {
    printf("FAIL (%s %s): %s\n", argv[1], argv[2], failure);
    return 1;
  }
  if (!ran || stage_arg == NULL || call_arg == NULL) {
    printf("FAIL: the %s stage never ran\n", argv[1]);
    return 2;
  }
  if (hk_check(kept, kept_size, 9) != SIZE_MAX) {
    printf("FAIL: the block allocated at %s lost its contents by main\n", argv[1]);
    return 3;
  }
  free(kept);
  void *p = malloc(100);
  if (p == NULL || !hak_owns(p)) {
    printf("FAIL: malloc in main is not HAKMEM's\n");
    return 4;
  }
  free(p);
  printf("OK\n");
  return 0;
}
