/* helper_stats.c -- a threaded program for the statistics' outputs under
 * the override: four threads each allocate blocks that the next one frees
 * (remote frees), then the program calls malloc_stats() once if asked and
 * exits (HAKMEM_SHOW_STATS=1 prints the table again at exit).
 *
 * usage: helper_stats [malloc_stats]     -> "OK", exit 0 */
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hk_common.h"

#define THREADS 4
#define BLOCKS 2000

static void *blocks[THREADS][BLOCKS];
static pthread_barrier_t barrier;

static void *worker(void *arg) {
  unsigned me = (unsigned)(uintptr_t)arg;
  uint64_t seed = 99 + me;
  for (unsigned i = 0; i < BLOCKS; i++) {
    blocks[me][i] = malloc(hk_opaque(1 + (size_t)(hk_rand(&seed) % 20000)));
    if (blocks[me][i] == NULL) abort();
  }
  pthread_barrier_wait(&barrier);
  unsigned from = (me + THREADS - 1) % THREADS;
  for (unsigned i = 0; i < BLOCKS; i++) free(blocks[from][i]);
  return NULL;
}

int main(int argc, char **argv) {
  pthread_t t[THREADS];
  pthread_barrier_init(&barrier, NULL, THREADS);
  for (unsigned i = 0; i < THREADS; i++)
    if (pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)i) != 0) return 2;
  for (unsigned i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
  if (argc > 1 && strcmp(argv[1], "malloc_stats") == 0) malloc_stats();
  printf("OK\n");
  return 0;
}
