/* helper_tls_lib.c -- dlopen()ed libraries with thread-local storage, for
 * helper_dlopen_tls. Built twice:
 *   helper_tls_gd  global-dynamic TLS only, 24 KiB of it: glibc allocates the
 *                  block with malloc, lazily, on a thread's first access
 *                  (inside __tls_get_addr), and frees it with free when the
 *                  thread exits: the allocator is entered from the dynamic
 *                  linker, in threads that may never have allocated.
 *   helper_tls_ie  (-DTLS_IE) also an initial-exec variable, which puts the
 *                  whole (small) module into the static TLS surplus.
 * Neither links HAKMEM: their malloc is whatever the program's is. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hk_common.h"

int tls_lib_work(uint64_t seed);
int tls_lib_finish(void);

#ifdef TLS_IE
#define NBLOCKS 4
#define BIG 32
static __thread long ie_calls __attribute__((tls_model("initial-exec")));
#else
#define NBLOCKS 8
#define BIG (24 * 1024)
#endif

static __thread unsigned char gd_big[BIG] __attribute__((tls_model("global-dynamic")));
static __thread uint64_t gd_seed __attribute__((tls_model("global-dynamic")));
static __thread unsigned gd_magic __attribute__((tls_model("global-dynamic"))) = 0xc0ffeeu;
static __thread long gd_calls __attribute__((tls_model("global-dynamic")));
static __thread void *gd_blocks[NBLOCKS] __attribute__((tls_model("global-dynamic")));
static __thread size_t gd_sizes[NBLOCKS] __attribute__((tls_model("global-dynamic")));

/* 0 when this thread's TLS and blocks still hold what the previous call left;
 * then leaves a new generation behind. */
int tls_lib_work(uint64_t seed) {
  if (gd_magic != 0xc0ffeeu) return 1; /* the TLS initialisation image was not copied */
#ifdef TLS_IE
  if (gd_calls != ie_calls) return 2; /* the two TLS blocks disagree */
#endif
  if (gd_seed != 0) {
    if (hk_check(gd_big, sizeof gd_big, gd_seed) != SIZE_MAX) return 3; /* TLS block overwritten */
    for (int i = 0; i < NBLOCKS; i++) {
      if (hk_check(gd_blocks[i], gd_sizes[i], gd_seed + (uint64_t)i) != SIZE_MAX) return 4;
      free(gd_blocks[i]);
      gd_blocks[i] = NULL;
    }
  }
  gd_seed = seed | 1;
  hk_fill(gd_big, sizeof gd_big, gd_seed);
  uint64_t s = seed * 2654435761u + 1;
  for (int i = 0; i < NBLOCKS; i++) {
    gd_sizes[i] = hk_mixed_size(&s);
    gd_blocks[i] = malloc(gd_sizes[i]);
    if (gd_blocks[i] == NULL) return 5;
    hk_fill(gd_blocks[i], gd_sizes[i], gd_seed + (uint64_t)i);
  }
  gd_calls++;
#ifdef TLS_IE
  ie_calls++;
#endif
  return 0;
}

/* Frees this thread's blocks; 0 when they were intact. */
int tls_lib_finish(void) {
  int rc = 0;
  for (int i = 0; i < NBLOCKS; i++) {
    if (gd_blocks[i] == NULL) continue;
    if (hk_check(gd_blocks[i], gd_sizes[i], gd_seed + (uint64_t)i) != SIZE_MAX) rc = 4;
    free(gd_blocks[i]);
    gd_blocks[i] = NULL;
  }
  gd_seed = 0;
  return rc;
}
