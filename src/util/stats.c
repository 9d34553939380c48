/* stats.c -- the process-wide counters behind hak_stats_get, malloc_stats,
 * mallinfo2 and HAKMEM_SHOW_STATS (formatted by api/report.c). */
#include "util/stats.h"

#include "hk_atomic.h"
#include "hk_types.h"

_Static_assert(HAK_STATS_CLASSES == HK_NCLASSES, "hakmem.h publishes one entry per size class");
_Static_assert(HAK_STATS_HIST == HK_STAT_HIST_BUCKETS, "hakmem.h publishes the whole histogram");

static _Atomic size_t hk_mapped, hk_peak_mapped, hk_invalid;
static _Atomic size_t hk_committed, hk_peak_committed, hk_decommitted;
static _Atomic size_t hk_large_allocs, hk_large_frees, hk_large_live_bytes, hk_prof_stash_bytes;
static _Atomic long hk_counters[HK_STAT_COUNT];
static _Atomic uint64_t hk_cls_allocs[HK_NCLASSES], hk_cls_frees[HK_NCLASSES];
static _Atomic uint64_t hk_sent_hist[HK_STAT_HIST_BUCKETS], hk_recv_hist[HK_STAT_HIST_BUCKETS], hk_recv_blocks;

static void hk_raise_peak(_Atomic size_t *peak_at, size_t now) {
  size_t peak = hk_load_relaxed(peak_at);
  while (now > peak &&
         !atomic_compare_exchange_weak_explicit(peak_at, &peak, now, memory_order_relaxed, memory_order_relaxed)) {
  }
}

void hk_stat_mapped(size_t bytes) { hk_raise_peak(&hk_peak_mapped, hk_add_relaxed(&hk_mapped, bytes) + bytes); }
void hk_stat_unmapped(size_t bytes) { hk_sub_relaxed(&hk_mapped, bytes); }
void hk_stat_invalid_free(void) { hk_add_relaxed(&hk_invalid, 1); }
size_t hk_stat_invalid_frees(void) { return hk_load_relaxed(&hk_invalid); }
void hk_stat_add(int which, long delta) { hk_add_relaxed(&hk_counters[which], delta); }

void hk_stat_commit(size_t bytes) {
  if (bytes != 0) hk_raise_peak(&hk_peak_committed, hk_add_relaxed(&hk_committed, bytes) + bytes);
}

void hk_stat_decommit(size_t bytes) {
  if (bytes == 0) return;
  hk_sub_relaxed(&hk_committed, bytes);
  hk_add_relaxed(&hk_decommitted, bytes);
}

void hk_stats_merge_large(const hk_large_tally *t) {
  if (t->allocs == 0 && t->frees == 0 && t->commit == 0 && t->decommit == 0 && t->stash == 0) return;
  hk_add_relaxed(&hk_large_allocs, t->allocs);
  hk_add_relaxed(&hk_large_frees, t->frees);
  hk_add_relaxed(&hk_counters[HK_STAT_LARGE_LIVE], (long)(t->allocs - t->frees));
  hk_add_relaxed(&hk_large_live_bytes, t->bytes); /* modulo 2^64: a net decrease wraps back */
  hk_add_relaxed(&hk_prof_stash_bytes, t->stash); /* the same */
  /* Commits first: the peak sees this thread's net change at once. */
  hk_stat_commit(t->commit);
  hk_stat_decommit(t->decommit);
}

void hk_stat_sent_batch(uint32_t blocks) { hk_add_relaxed(&hk_sent_hist[hk_stat_hist_bucket(blocks)], 1); }

void hk_stats_merge(const uint64_t allocs[HK_NCLASSES], const uint64_t frees[HK_NCLASSES],
                    const uint64_t sent_hist[HK_STAT_HIST_BUCKETS], const uint64_t recv_hist[HK_STAT_HIST_BUCKETS],
                    uint64_t recv_blocks) {
  for (unsigned c = 0; c < HK_NCLASSES; c++) {
    if (allocs[c] != 0) hk_add_relaxed(&hk_cls_allocs[c], allocs[c]);
    if (frees[c] != 0) hk_add_relaxed(&hk_cls_frees[c], frees[c]);
  }
  for (unsigned i = 0; i < HK_STAT_HIST_BUCKETS; i++) {
    if (sent_hist[i] != 0) hk_add_relaxed(&hk_sent_hist[i], sent_hist[i]);
    if (recv_hist[i] != 0) hk_add_relaxed(&hk_recv_hist[i], recv_hist[i]);
  }
  if (recv_blocks != 0) hk_add_relaxed(&hk_recv_blocks, recv_blocks);
}

void hk_stats_snapshot(hak_stats_t *out) {
  *out = (hak_stats_t){0};
  out->mapped_bytes = hk_load_relaxed(&hk_mapped);
  out->peak_mapped_bytes = hk_load_relaxed(&hk_peak_mapped);
  out->superslabs_mapped = (size_t)hk_load_relaxed(&hk_counters[HK_STAT_SS_MAPPED]);
  out->superslabs_abandoned = (size_t)hk_load_relaxed(&hk_counters[HK_STAT_SS_ABANDONED]);
  out->superslabs_adopted = (size_t)hk_load_relaxed(&hk_counters[HK_STAT_SS_ADOPTED]);
  out->large_live = (size_t)hk_load_relaxed(&hk_counters[HK_STAT_LARGE_LIVE]);
  out->heaps_created = (size_t)hk_load_relaxed(&hk_counters[HK_STAT_HEAPS_CREATED]);
  out->heaps_reused = (size_t)hk_load_relaxed(&hk_counters[HK_STAT_HEAPS_REUSED]);
  out->heaps_unmapped = (size_t)hk_load_relaxed(&hk_counters[HK_STAT_HEAPS_UNMAPPED]);
  out->remote_chains_pushed = (size_t)hk_load_relaxed(&hk_counters[HK_STAT_REMOTE_CHAINS]);
  out->remote_blocks_pushed = (size_t)hk_load_relaxed(&hk_counters[HK_STAT_REMOTE_BLOCKS]);
  out->invalid_frees = hk_load_relaxed(&hk_invalid);
  out->superslabs_retired = (size_t)hk_load_relaxed(&hk_counters[HK_STAT_SS_RETIRED]);
  out->superslabs_reused = (size_t)hk_load_relaxed(&hk_counters[HK_STAT_SS_REUSED]);
  out->superslabs_unmapped = (size_t)hk_load_relaxed(&hk_counters[HK_STAT_SS_UNMAPPED]);
  out->epoch_records = (size_t)hk_load_relaxed(&hk_counters[HK_STAT_EPOCH_RECORDS]);
  out->slabs_purged_by_others = (size_t)hk_load_relaxed(&hk_counters[HK_STAT_SLABS_PURGED_BY_OTHERS]);
  out->committed_bytes = hk_load_relaxed(&hk_committed);
  out->peak_committed_bytes = hk_load_relaxed(&hk_peak_committed);
  out->decommitted_bytes = hk_load_relaxed(&hk_decommitted);
  out->large_allocs = hk_load_relaxed(&hk_large_allocs);
  out->large_frees = hk_load_relaxed(&hk_large_frees);
  out->large_live_bytes = hk_load_relaxed(&hk_large_live_bytes);
  out->prof_stash_bytes = hk_load_relaxed(&hk_prof_stash_bytes);
  for (unsigned i = 0; i < HK_STAT_HIST_BUCKETS; i++) {
    out->remote_sent_hist[i] = (size_t)hk_load_relaxed(&hk_sent_hist[i]);
    out->remote_recv_hist[i] = (size_t)hk_load_relaxed(&hk_recv_hist[i]);
  }
  out->remote_blocks_received = (size_t)hk_load_relaxed(&hk_recv_blocks);
  for (unsigned c = 0; c < HK_NCLASSES; c++) {
    hak_class_stats_t *k = &out->classes[c];
    k->allocs = hk_load_relaxed(&hk_cls_allocs[c]);
    k->frees = hk_load_relaxed(&hk_cls_frees[c]);
    k->live = (int64_t)(k->allocs - k->frees);
    out->allocs += k->allocs;
    out->frees += k->frees;
    out->live_blocks += k->live;
  }
}
