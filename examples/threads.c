/* threads.c -- a small threaded program built against an installed HAKMEM.
 *
 * THREADS threads each allocate BLOCKS blocks of assorted sizes and fill
 * them; after a barrier each thread frees half of its right-hand
 * neighbour's blocks (cross-thread frees, HAKMEM's remote path) and half of
 * its own, checking every block's bytes first. It prints one line:
 *
 *   hakmem 0.1.0: 4 threads, 40000 blocks, 20000 freed by another thread, intact, owned by hakmem: yes
 *
 * and exits 0, or says what went wrong and exits 1. Linked to libhakmem.so
 * (CMake hakmem::hakmem, `pkg-config --libs hakmem`) it calls plain malloc
 * and free, which HAKMEM replaces; built with -DEXAMPLE_HAK_API and linked
 * to libhakmem.a (hakmem::hakmem_static) it calls hak_malloc and hak_free
 * and leaves the C library's malloc alone. Either way hak_owns() proves
 * that every block came from HAKMEM. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hakmem.h>

#ifdef EXAMPLE_HAK_API
#define ALLOC hak_malloc
#define FREE hak_free
#else
#define ALLOC malloc
#define FREE free
#endif

enum { THREADS = 4, BLOCKS = 10000 };

static unsigned char *blocks[THREADS][BLOCKS];
static pthread_barrier_t barrier;
static int failures[THREADS];

static size_t size_of(int t, int i) { return 16 + (size_t)((t * 7919 + i * 104729) % 2000); }

/* Checks block i of thread t, then frees it; the fill byte names its owner. */
static void check_and_free(int self, int t, int i) {
  unsigned char *p = blocks[t][i];
  for (size_t k = 0; k < size_of(t, i); k++)
    if (p[k] != (unsigned char)(t * 31 + i)) {
      failures[self]++;
      break;
    }
  if (!hak_owns(p)) failures[self]++;
  FREE(p);
}

static void *work(void *arg) {
  int t = (int)(size_t)arg, next = (t + 1) % THREADS;
  for (int i = 0; i < BLOCKS; i++) {
    blocks[t][i] = ALLOC(size_of(t, i));
    if (blocks[t][i] == NULL) {
      failures[t]++;
      return NULL;
    }
    memset(blocks[t][i], t * 31 + i, size_of(t, i));
  }
  pthread_barrier_wait(&barrier);
  for (int i = 0; i < BLOCKS; i += 2) check_and_free(t, next, i); /* the neighbour's even blocks */
  for (int i = 1; i < BLOCKS; i += 2) check_and_free(t, t, i);    /* its own odd ones */
  return NULL;
}

int main(void) {
  pthread_t th[THREADS];
  pthread_barrier_init(&barrier, NULL, THREADS);
  for (int t = 0; t < THREADS; t++)
    if (pthread_create(&th[t], NULL, work, (void *)(size_t)t) != 0) {
      fprintf(stderr, "pthread_create failed\n");
      return 1;
    }
  int bad = 0;
  for (int t = 0; t < THREADS; t++) {
    pthread_join(th[t], NULL);
    bad += failures[t];
  }
  printf("hakmem %s: %d threads, %d blocks, %d freed by another thread, %s, owned by hakmem: %s\n", hak_version(),
         THREADS, THREADS * BLOCKS, THREADS * BLOCKS / 2, bad ? "DAMAGED" : "intact", bad ? "no" : "yes");
  return bad ? 1 : 0;
}
