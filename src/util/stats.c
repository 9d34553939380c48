/* stats.c -- the counters behind hak_stats_get and HAKMEM_SHOW_STATS. */
#include "util/stats.h"

#include "hk_atomic.h"
#include "util/diag.h"

static _Atomic size_t hk_mapped, hk_peak_mapped, hk_invalid;
static _Atomic long hk_counters[HK_STAT_COUNT];

void hk_stat_mapped(size_t bytes) {
  size_t now = hk_add_relaxed(&hk_mapped, bytes) + bytes;
  size_t peak = hk_load_relaxed(&hk_peak_mapped);
  while (now > peak &&
         !atomic_compare_exchange_weak_explicit(&hk_peak_mapped, &peak, now, memory_order_relaxed,
                                                memory_order_relaxed)) {
  }
}

void hk_stat_unmapped(size_t bytes) { hk_sub_relaxed(&hk_mapped, bytes); }
void hk_stat_invalid_free(void) { hk_add_relaxed(&hk_invalid, 1); }
void hk_stat_add(int which, long delta) { hk_add_relaxed(&hk_counters[which], delta); }

void hk_stats_snapshot(hak_stats_t *out) {
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
}

void hk_stats_print(void) {
  hak_stats_t s;
  hk_stats_snapshot(&s);
  const struct {
    const char *name;
    size_t value;
  } rows[] = {
      {"mapped_kib", s.mapped_bytes >> 10},        {"peak_mapped_kib", s.peak_mapped_bytes >> 10},
      {"superslabs", s.superslabs_mapped},         {"abandoned", s.superslabs_abandoned},
      {"adopted", s.superslabs_adopted},           {"large_live", s.large_live},
      {"heaps", s.heaps_created},                  {"heaps_reused", s.heaps_reused},
      {"heaps_unmapped", s.heaps_unmapped},
      {"remote_chains", s.remote_chains_pushed},   {"remote_blocks", s.remote_blocks_pushed},
      {"invalid_frees", s.invalid_frees},          {"retired", s.superslabs_retired},
      {"ss_reused", s.superslabs_reused},          {"ss_unmapped", s.superslabs_unmapped},
      {"epoch_records", s.epoch_records},          {"purged_by_others", s.slabs_purged_by_others},
  };
  hk_line l = {.len = 0};
  hk_line_str(&l, "hakmem: stats");
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    hk_line_str(&l, " ");
    hk_line_str(&l, rows[i].name);
    hk_line_str(&l, "=");
    hk_line_dec(&l, rows[i].value);
  }
  hk_line_emit(&l);
}
