/* test_owned_cache.c -- free's owned-chunk cache (hk_heap.own, core/heap.h),
 * through the internal headers, linked from libhakmem.a.
 *   names_only_owned_superslabs: with more SuperSlabs than the cache has
 *     entries (so neighbours evict each other), every entry names a
 *     SuperSlab this heap owns, at every stage; frees into evicted ones are
 *     still local (nothing goes through the remote path), and after the
 *     heap gives its SuperSlabs back no entry names a retired one.
 *   double_free_in_an_evicted_superslab_is_caught: the first free of a block
 *     whose SuperSlab is not cached takes the uncached path, which notes it
 *     again; the second free then meets the cache head check and aborts. */
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/heap.h"
#include "hk_test.h"

TestSuite(owned_cache, .timeout = 120.);

/* 8 KiB blocks: the largest small-kind class, so ~250 blocks fill a
 * SuperSlab; NSS SuperSlabs' worth is more than HK_OWN_SLOTS of them. */
#define BSIZE 8192
#define NSS   (HK_OWN_SLOTS + 24)
#define NBLK  (NSS * 256)

static void *blk[NBLK];

/* Every cache entry names a SuperSlab owned by this thread's heap. */
static void check_entries(const char *when) {
  hk_heap *h = hk_tls_heap;
  for (unsigned i = 0; i < HK_OWN_SLOTS; i++) {
    uintptr_t c = h->own[i];
    if (c == HK_OWN_NONE) continue;
    cr_assert(hk_own_slot(c) == i, "%s: entry %u holds chunk %#lx of another entry", when, i, (unsigned long)c);
    hk_superslab *ss = (hk_superslab *)c;
    cr_assert(hak_owns(ss), "%s: entry %u names chunk %#lx, not a live SuperSlab", when, i, (unsigned long)c);
    cr_assert(hk_superslab_owner(ss) == h, "%s: entry %u names a SuperSlab another heap owns", when, i);
  }
}

static size_t distinct_chunks(void) {
  static uintptr_t seen[NBLK];
  size_t n = 0;
  for (size_t i = 0; i < NBLK; i++) {
    uintptr_t c = hk_chunk_of(blk[i]);
    size_t j = 0;
    while (j < n && seen[j] != c) j++;
    if (j == n) seen[n++] = c;
  }
  return n;
}

static void allocate_all(void) {
  for (size_t i = 0; i < NBLK; i++) {
    blk[i] = T_MALLOC(BSIZE);
    cr_assert(blk[i] != NULL);
    memset(blk[i], (int)(i & 0xff), 64);
  }
}

Test(owned_cache, names_only_owned_superslabs) {
  allocate_all();
  size_t nss = distinct_chunks();
  cr_assert(nss > HK_OWN_SLOTS, "only %zu SuperSlabs: the cache never evicts", nss);
  check_entries("after allocating");
  size_t pushed = hk_stats().remote_blocks_pushed;
  uint64_t r = 12345;
  for (size_t i = NBLK - 1; i > 0; i--) { /* free in random order */
    r = r * 6364136223846793005ull + 1442695040888963407ull;
    size_t j = (size_t)(r >> 33) % (i + 1);
    void *t = blk[i];
    blk[i] = blk[j];
    blk[j] = t;
  }
  for (size_t i = 0; i < NBLK; i++) {
    cr_assert(((unsigned char *)blk[i])[0] == ((unsigned char *)blk[i])[63], "block %zu damaged", i);
    T_FREE(blk[i]);
    if (i % 4096 == 0) check_entries("while freeing");
  }
  hak_thread_flush();
  cr_assert(hk_stats().remote_blocks_pushed == pushed, "frees of this thread's own blocks went through the remote path");
  check_entries("after freeing");
  hak_collect(true);
  check_entries("after hak_collect");
  /* The heap can allocate again from whatever it kept. */
  allocate_all();
  check_entries("after allocating again");
  for (size_t i = 0; i < NBLK; i++) T_FREE(blk[i]);
}

Test(owned_cache, double_free_in_an_evicted_superslab_is_caught) {
  allocate_all();
  hk_heap *h = hk_tls_heap;
  void *p = NULL;
  for (size_t i = 0; i < NBLK && p == NULL; i++)
    if (!hk_heap_owns_chunk(h, hk_chunk_of(blk[i]))) p = blk[i];
  cr_assert(p != NULL, "every SuperSlab is cached: nothing was evicted");
  pid_t pid = fork();
  cr_assert(pid >= 0);
  if (pid == 0) { /* the child: the default double-free policy aborts */
    int devnull = open("/dev/null", O_WRONLY);
    if (devnull >= 0) dup2(devnull, 2);
    T_FREE(p);
    if (!hk_heap_owns_chunk(hk_tls_heap, hk_chunk_of(p))) _exit(3); /* not noted again */
    T_FREE(p);
    _exit(0);
  }
  int st = 0;
  cr_assert(waitpid(pid, &st, 0) == pid);
  cr_assert(!(WIFEXITED(st) && WEXITSTATUS(st) == 3), "the uncached free did not note its SuperSlab again");
  cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT,
            "the double free of a block of an evicted SuperSlab was not caught (status %#x)", st);
  for (size_t i = 0; i < NBLK; i++) T_FREE(blk[i]);
}
