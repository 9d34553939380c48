/* helper_dlopen_tls.c -- a program that dlopen()s a library with TLS and uses
 * it from several threads, some of which existed before the dlopen (their
 * dynamic thread vector has to grow, with malloc, inside __tls_get_addr).
 * Both libraries are loaded, used, closed and loaded again.
 *
 * usage: helper_dlopen_tls GD_LIB IE_LIB     -> "OK", exit 0
 *   GD_LIB  helper_tls_gd (global-dynamic TLS, allocated with malloc)
 *   IE_LIB  helper_tls_ie (initial-exec TLS, in the static surplus) */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hk_common.h"

#define EARLY 3
#define LATE 5
#define ROUNDS 60

typedef int (*work_fn)(uint64_t);
typedef int (*finish_fn)(void);

#define NLIBS 2
static work_fn work[NLIBS];
static finish_fn finish[NLIBS];
static pthread_barrier_t loaded;

static int run_rounds(uint64_t id) {
  for (int r = 0; r < ROUNDS; r++) {
    for (int l = 0; l < NLIBS; l++) {
      int rc = work[l](id * 1000003u + (uint64_t)r + 1);
      if (rc != 0) return rc + 10 * l;
    }
  }
  for (int l = 0; l < NLIBS; l++) {
    int rc = finish[l]();
    if (rc != 0) return rc + 10 * l;
  }
  return 0;
}

static void *early_thread(void *arg) {
  /* Allocate before the library exists, so this thread's heap is set up. */
  void *p = malloc(100);
  free(p);
  pthread_barrier_wait(&loaded);
  return (void *)(intptr_t)run_rounds((uint64_t)(uintptr_t)arg);
}

static void *late_thread(void *arg) { return (void *)(intptr_t)run_rounds((uint64_t)(uintptr_t)arg); }

static int load(char **paths, void **handle) {
  for (int l = 0; l < NLIBS; l++) {
    handle[l] = dlopen(paths[l], RTLD_NOW | RTLD_LOCAL);
    if (handle[l] == NULL) {
      printf("FAIL: dlopen(%s): %s\n", paths[l], dlerror());
      return 0;
    }
    work[l] = (work_fn)dlsym(handle[l], "tls_lib_work");
    finish[l] = (finish_fn)dlsym(handle[l], "tls_lib_finish");
    if (work[l] == NULL || finish[l] == NULL) {
      printf("FAIL: dlsym: %s\n", dlerror());
      return 0;
    }
  }
  return 1;
}

static int unload(void **handle) {
  int ok = 1;
  for (int l = 0; l < NLIBS; l++) {
    if (dlclose(handle[l]) != 0) {
      printf("FAIL: dlclose: %s\n", dlerror());
      ok = 0;
    }
  }
  return ok;
}

static int join_all(pthread_t *t, int n, const char *what) {
  int ok = 1;
  for (int i = 0; i < n; i++) {
    void *rc = NULL;
    pthread_join(t[i], &rc);
    if (rc != NULL) {
      printf("FAIL: %s thread %d: tls_lib_work/finish returned %ld\n", what, i, (long)(intptr_t)rc);
      ok = 0;
    }
  }
  return ok;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    printf("usage: helper_dlopen_tls GD_LIB IE_LIB\n");
    return 64;
  }
  void *probe = malloc(16);
  if (probe == NULL || !hak_owns(probe)) {
    printf("FAIL: malloc is not HAKMEM's\n");
    return 2;
  }
  free(probe);

  pthread_t early[EARLY], late[LATE];
  pthread_barrier_init(&loaded, NULL, EARLY + 1);
  for (int i = 0; i < EARLY; i++) pthread_create(&early[i], NULL, early_thread, (void *)(uintptr_t)(i + 1));
  void *h[NLIBS];
  if (!load(argv + 1, h)) return 1;
  pthread_barrier_wait(&loaded);
  for (int i = 0; i < LATE; i++) pthread_create(&late[i], NULL, late_thread, (void *)(uintptr_t)(100 + i));
  int main_rc = run_rounds(999);
  int ok = join_all(early, EARLY, "early") & join_all(late, LATE, "late");
  if (main_rc != 0) {
    printf("FAIL: main thread: %d\n", main_rc);
    ok = 0;
  }
  ok &= unload(h);

  /* Again: the module id (and DTV slot) is reused. */
  if (!load(argv + 1, h)) return 1;
  for (int i = 0; i < LATE; i++) pthread_create(&late[i], NULL, late_thread, (void *)(uintptr_t)(200 + i));
  main_rc = run_rounds(1999);
  ok &= join_all(late, LATE, "reloaded");
  if (main_rc != 0) {
    printf("FAIL: main thread after reload: %d\n", main_rc);
    ok = 0;
  }
  ok &= unload(h);
  pthread_barrier_destroy(&loaded);
  if (!ok) return 1;
  printf("OK\n");
  return 0;
}
