/* test_remote_hash.c -- where remote frees are batched and noted, through
 * the internal headers, linked from libhakmem.a.
 *   consecutive_superslabs_of_one_kind_use_every_slot_and_bucket: bit 21 of
 *     a SuperSlab's address is its kind, so a slot or bucket taken from the
 *     chunk number's low bits left every other one unused (the review of
 *     issue 12): eight small SuperSlabs shared four outbox slots.
 *   frees_into_sixteen_superslabs_are_batched: a thread that frees, in
 *     turn, into sixteen small SuperSlabs of another thread keeps sixteen
 *     chains in its outbox and pushes one per SuperSlab at exit, where the
 *     old slot index (and eight slots) evicted a chain (a section and a CAS)
 *     on almost every free.
 *   a_long_run_of_frees_is_pushed_in_full_chains: see its comment. */
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "hk_test.h"
#include "remote/remote.h"

TestSuite(remote_hash, .timeout = 60.);

Test(remote_hash, consecutive_superslabs_of_one_kind_use_every_slot_and_bucket) {
  for (uintptr_t kind = 0; kind < 2; kind++) {
    uint64_t slots = 0;
    for (uintptr_t k = 0; k < HK_OUTBOX_SLOTS; k++) {
      const hk_superslab *ss = (const hk_superslab *)((((uintptr_t)0x3f800 + 2 * k) | kind) << HK_SS_SHIFT);
      slots |= (uint64_t)1 << hk_outbox_index(ss);
    }
    cr_assert((slots) == (((uint64_t)1 << HK_OUTBOX_SLOTS) - 1), "kind %u used slots %#llx", (unsigned)kind, (unsigned long long)slots);
    static uint8_t seen[HK_PEND_BUCKETS];
    memset(seen, 0, sizeof seen);
    for (uintptr_t k = 0; k < HK_PEND_BUCKETS; k++) {
      const hk_superslab *ss = (const hk_superslab *)((((uintptr_t)0x3f800 + 2 * k) | kind) << HK_SS_SHIFT);
      unsigned b = hk_bucket_of(ss);
      cr_assert((b) < (HK_PEND_BUCKETS));
      cr_assert((seen[b]) == (0), "kind %u: bucket %u used twice", (unsigned)kind, b);
      seen[b] = 1;
    }
  }
  /* A small and a medium SuperSlab side by side land apart. */
  const hk_superslab *small = (const hk_superslab *)((uintptr_t)0x3f800 << HK_SS_SHIFT);
  const hk_superslab *medium = (const hk_superslab *)((uintptr_t)0x3f801 << HK_SS_SHIFT);
  cr_assert((hk_outbox_index(small)) != (hk_outbox_index(medium)));
  cr_assert((hk_bucket_of(small)) != (hk_bucket_of(medium)));
}

#define NSS  16
#define PER  12 /* below HK_OUTBOX_CHAIN, and NSS * PER below HK_OUTBOX_UNITS:
                   nothing is pushed before the thread exits */
static void *blocks[NSS][PER];

static void *remote_freer(void *arg) {
  (void)arg;
  T_FREE(T_MALLOC(16)); /* a live heap: frees go through the outbox */
  for (int i = 0; i < PER; i++)
    for (int s = 0; s < NSS; s++) T_FREE(blocks[s][i]);
  return NULL; /* exit flushes the outbox and the push counts */
}

Test(remote_hash, frees_into_sixteen_superslabs_are_batched) {
  _Static_assert(PER < HK_OUTBOX_CHAIN && NSS * PER < HK_OUTBOX_UNITS && NSS <= HK_OUTBOX_SLOTS, "no push before exit");
  /* 4 KiB blocks (small kind, < 512 per SuperSlab) until NSS distinct
   * SuperSlabs have PER blocks each; the rest is freed locally. */
  static void *all[NSS * 1024];
  static uintptr_t ssof[NSS];
  int nss = 0, cnt[NSS] = {0}, nall = 0;
  while (nss < NSS || cnt[NSS - 1] < PER) {
    cr_assert((nall) < (NSS * 1024), "too many blocks before %d SuperSlabs", NSS);
    void *p = T_MALLOC(4096);
    cr_assert((p) != NULL);
    all[nall++] = p;
    uintptr_t ss = (uintptr_t)p >> HK_SS_SHIFT;
    int s;
    for (s = 0; s < nss && ssof[s] != ss; s++) continue;
    if (s == nss) {
      if (nss == NSS) continue;
      ssof[nss++] = ss;
    }
    if (cnt[s] < PER) {
      blocks[s][cnt[s]++] = p;
      all[--nall] = NULL;
    }
  }
  for (int s = 0; s < NSS; s++) cr_assert((cnt[s]) == (PER));
  hak_stats_t before, after;
  hak_stats_get(&before);
  pthread_t t;
  cr_assert((pthread_create(&t, NULL, remote_freer, NULL)) == (0));
  cr_assert((pthread_join(t, NULL)) == (0));
  hak_stats_get(&after);
  size_t chains = after.remote_chains_pushed - before.remote_chains_pushed;
  size_t nblocks = after.remote_blocks_pushed - before.remote_blocks_pushed;
  cr_assert((nblocks) == ((size_t)NSS * PER), "blocks pushed %zu", nblocks);
  cr_assert((chains) <= ((size_t)NSS), "%zu chains for %d blocks into %d SuperSlabs", chains, NSS * PER, NSS);
  for (int i = 0; i < nall; i++) T_FREE(all[i]);
}

#define NONE 1000
static void *one_ss[NONE];

static void *remote_freer_one(void *arg) {
  (void)arg;
  T_FREE(T_MALLOC(16));
  for (int i = 0; i < NONE; i++) T_FREE(one_ss[i]);
  return NULL;
}

/* Full chains are pushed whole and the outbox's byte bound is kept right
 * across them: 1,000 blocks freed in a row cost about 1000 / HK_OUTBOX_CHAIN
 * pushes, never one per block. */
Test(remote_hash, a_long_run_of_frees_is_pushed_in_full_chains) {
  for (int i = 0; i < NONE; i++) cr_assert((one_ss[i] = T_MALLOC(32)) != NULL);
  hak_stats_t before, after;
  hak_stats_get(&before);
  pthread_t t;
  cr_assert((pthread_create(&t, NULL, remote_freer_one, NULL)) == (0));
  cr_assert((pthread_join(t, NULL)) == (0));
  hak_stats_get(&after);
  size_t chains = after.remote_chains_pushed - before.remote_chains_pushed;
  cr_assert((after.remote_blocks_pushed - before.remote_blocks_pushed) == ((size_t)NONE));
  cr_assert((chains) <= ((size_t)(2 * NONE / HK_OUTBOX_CHAIN + 2)), "%zu chains for %d blocks", chains, NONE);
}
