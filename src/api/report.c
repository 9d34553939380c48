/* report.c -- the statistics table (malloc_stats, HAKMEM_SHOW_STATS=1) and
 * their JSON (hak_stats_json), from one list of figures.
 *
 * Both may run where nothing may allocate: inside the first malloc's set-up,
 * in an exit destructor under LD_PRELOAD. So no stdio and no malloc: text is
 * formatted into a small stack buffer that is written to fd 2 whenever it
 * fills (the table has no length limit), or copied into the caller's buffer
 * with the total length counted, as snprintf does. */
#include "api/report.h"

#include <errno.h>
#include <unistd.h>

#include "core/heap.h"
#include "core/sizeclass.h"
#include "large/large.h"
#include "prof/prof.h"
#include "remote/remote.h"
#include "util/stats.h"

void hk_report_snapshot(hak_stats_t *out) {
  hk_heap *h = hk_tls_heap;
  if (h->live) {
    hk_remote_collect(h); /* frees other threads sent: counted when taken back */
    hk_remote_stats_flush(h);
    hk_heap_stats_merge(h);
  }
  hk_stats_snapshot(out);
  out->large_cached_bytes = hk_large_cached_bytes();
  hk_prof_table_stats(&out->prof_table_bytes, &out->prof_samples_live, &out->prof_stacks,
                      &out->prof_samples_dropped);
  out->live_bytes = 0;
  for (unsigned c = 0; c < HK_NCLASSES; c++) {
    hak_class_stats_t *k = &out->classes[c];
    k->block_size = hk_class_size[c];
    k->live_bytes = k->live * (int64_t)k->block_size;
    out->live_bytes += k->live_bytes;
  }
}

/* ---- output: to fd 2 in pieces, or into a caller's buffer ----------------- */

typedef struct hk_out {
  char buf[256]; /* fd mode: what is not written yet */
  size_t len;
  int fd;        /* -1: memory mode */
  char *mem;     /* memory mode: the caller's buffer of cap bytes */
  size_t cap;
  size_t total;  /* every byte produced, written or not */
} hk_out;

static void hk_out_flush(hk_out *o) {
  size_t off = 0;
  while (off < o->len) {
    ssize_t w = write(o->fd, o->buf + off, o->len - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) break;
    off += (size_t)w;
  }
  o->len = 0;
}

static void hk_out_mem(hk_out *o, const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (o->fd >= 0) {
      if (o->len == sizeof o->buf) hk_out_flush(o);
      o->buf[o->len++] = s[i];
    } else if (o->total + i + 1 < o->cap) {
      o->mem[o->total + i] = s[i]; /* the last byte of cap stays for the NUL */
    }
  }
  o->total += n;
}

static size_t hk_len(const char *s) {
  size_t n = 0;
  while (s[n] != '\0') n++;
  return n;
}

static void hk_out_str(hk_out *o, const char *s) { hk_out_mem(o, s, hk_len(s)); }

/* Decimal digits of v into tmp (no terminator); returns their number. */
static size_t hk_fmt_u64(char tmp[24], uint64_t v) {
  char rev[24];
  size_t n = 0, i = 0;
  do { rev[n++] = (char)('0' + v % 10); v /= 10; } while (v != 0);
  while (n > 0) tmp[i++] = rev[--n];
  return i;
}

static void hk_out_u64(hk_out *o, uint64_t v) {
  char tmp[24];
  hk_out_mem(o, tmp, hk_fmt_u64(tmp, v));
}

static void hk_out_i64(hk_out *o, int64_t v) {
  if (v < 0) hk_out_str(o, "-");
  hk_out_u64(o, v < 0 ? 0 - (uint64_t)v : (uint64_t)v);
}

/* s right-aligned in a field of width w. */
static void hk_out_right(hk_out *o, const char *s, size_t n, size_t w) {
  for (; n < w; w--) hk_out_mem(o, " ", 1);
  hk_out_mem(o, s, n);
}

static void hk_out_col_i64(hk_out *o, int64_t v, size_t w) {
  char tmp[25];
  size_t n = 0;
  if (v < 0) tmp[n++] = '-';
  n += hk_fmt_u64(tmp + n, v < 0 ? 0 - (uint64_t)v : (uint64_t)v);
  hk_out_right(o, tmp, n, w);
}

/* A byte count for people: "512 B", "1.5 KiB", "12.0 MiB", one decimal. */
static void hk_out_bytes(hk_out *o, int64_t v) {
  static const char *const unit[] = {" B", " KiB", " MiB", " GiB", " TiB"};
  uint64_t a = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
  unsigned u = 0;
  uint64_t tenths = a * 10;
  while (a >= 1024 && u < 4) {
    tenths = (a * 10 + 512) / 1024;
    a >>= 10;
    u++;
  }
  if (v < 0) hk_out_str(o, "-");
  if (u == 0) {
    hk_out_u64(o, a);
  } else {
    hk_out_u64(o, tenths / 10);
    char d[2] = {'.', (char)('0' + tenths % 10)};
    hk_out_mem(o, d, 2);
  }
  hk_out_str(o, unit[u]);
}

/* ---- the figures, once for both formats ----------------------------------- */

typedef struct hk_row {
  const char *section; /* JSON object key; table heading */
  const char *key;     /* JSON key */
  const char *label;   /* table label */
  int64_t value;
  bool bytes;          /* the table shows it as a size */
} hk_row;

#define HK_ROWS_MAX 40

static size_t hk_rows(const hak_stats_t *s, hk_row *r) {
  size_t n = 0;
#define ROW(sec, k, lab, v, b) (r[n++] = (hk_row){sec, k, lab, (int64_t)(v), b})
  ROW("memory", "committed_bytes", "committed now (pages in use or cached, not address space)", s->committed_bytes, true);
  ROW("memory", "peak_committed_bytes", "committed at peak", s->peak_committed_bytes, true);
  ROW("memory", "decommitted_bytes", "decommitted in all (madvise or munmap)", s->decommitted_bytes, true);
  ROW("memory", "mapped_bytes", "address space mapped (reserved, not all committed)", s->mapped_bytes, true);
  ROW("memory", "peak_mapped_bytes", "address space mapped at peak", s->peak_mapped_bytes, true);
  ROW("memory", "live_bytes", "in live small blocks (class sizes)", s->live_bytes, true);
  ROW("large", "live", "large blocks live", s->large_live, false);
  ROW("large", "live_bytes", "their usable bytes", s->large_live_bytes, true);
  ROW("large", "allocs", "allocated", s->large_allocs, false);
  ROW("large", "frees", "freed", s->large_frees, false);
  ROW("large", "cached_bytes", "freed mappings cached (address space)", s->large_cached_bytes, true);
  ROW("superslabs", "mapped", "mapped", s->superslabs_mapped, false);
  ROW("superslabs", "reused", "reused from the cache of retired ones", s->superslabs_reused, false);
  ROW("superslabs", "retired", "retired (empty)", s->superslabs_retired, false);
  ROW("superslabs", "unmapped", "unmapped", s->superslabs_unmapped, false);
  ROW("superslabs", "abandoned", "abandoned by exiting threads", s->superslabs_abandoned, false);
  ROW("superslabs", "adopted", "adopted", s->superslabs_adopted, false);
  ROW("superslabs", "slabs_purged_by_others", "slabs decommitted for an idle owner", s->slabs_purged_by_others, false);
  ROW("threads", "heaps_created", "heaps created", s->heaps_created, false);
  ROW("threads", "heaps_reused", "heaps reused", s->heaps_reused, false);
  ROW("threads", "heaps_unmapped", "heaps unmapped", s->heaps_unmapped, false);
  ROW("threads", "epoch_records", "epoch records", s->epoch_records, false);
  ROW("remote", "chains_sent", "chains sent (one CAS each)", s->remote_chains_pushed, false);
  ROW("remote", "blocks_sent", "blocks sent", s->remote_blocks_pushed, false);
  ROW("remote", "blocks_received", "blocks received by their owners", s->remote_blocks_received, false);
  ROW("errors", "invalid_frees", "invalid or double frees reported", s->invalid_frees, false);
  ROW("prof", "table_bytes", "heap profiler's side table (mapped, its bound)", s->prof_table_bytes, true);
  ROW("prof", "samples_live", "live sampled blocks", s->prof_samples_live, false);
  ROW("prof", "stacks", "distinct call stacks", s->prof_stacks, false);
  ROW("prof", "samples_dropped", "samples not taken (table full)", s->prof_samples_dropped, false);
  ROW("prof", "stash_bytes", "freed sampled mappings kept for samples", s->prof_stash_bytes, true);
#undef ROW
  return n;
}

static const char *const hk_hist_label[HAK_STATS_HIST] = {"1", "2-3", "4-7", "8-15", "16-31", "32-63", "64-127", "128+"};

static bool hk_same(const char *a, const char *b) {
  while (*a != '\0' && *a == *b) a++, b++;
  return *a == *b;
}

/* ---- the table ------------------------------------------------------------ */

static void hk_table_hist(hk_out *o, const char *name, const size_t *hist) {
  hk_out_str(o, "  ");
  hk_out_str(o, name);
  for (unsigned i = 0; i < HAK_STATS_HIST; i++) hk_out_col_i64(o, (int64_t)hist[i], 8);
  hk_out_str(o, "\n");
}

static void hk_table(hk_out *o, const hak_stats_t *s) {
  hk_row rows[HK_ROWS_MAX];
  size_t n = hk_rows(s, rows);
  hk_out_str(o, "hakmem: stats (pid ");
  hk_out_u64(o, (uint64_t)getpid());
  hk_out_str(o, ")\n");
  for (size_t i = 0; i < n; i++) {
    if (i == 0 || !hk_same(rows[i].section, rows[i - 1].section)) {
      hk_out_str(o, rows[i].section);
      hk_out_str(o, "\n");
    }
    size_t len = hk_len(rows[i].label);
    hk_out_str(o, "  ");
    hk_out_mem(o, rows[i].label, len);
    for (; len < 60; len++) hk_out_mem(o, " ", 1);
    hk_out_str(o, " ");
    if (rows[i].bytes) {
      hk_out_bytes(o, rows[i].value);
      hk_out_str(o, " (");
      hk_out_i64(o, rows[i].value);
      hk_out_str(o, ")");
    } else {
      hk_out_i64(o, rows[i].value);
    }
    hk_out_str(o, "\n");
  }
  hk_out_str(o, "remote batch sizes (blocks)\n  ");
  hk_out_right(o, "", 0, 8);
  for (unsigned i = 0; i < HAK_STATS_HIST; i++) hk_out_right(o, hk_hist_label[i], hk_len(hk_hist_label[i]), 8);
  hk_out_str(o, "\n");
  hk_table_hist(o, "sent    ", s->remote_sent_hist);
  hk_table_hist(o, "received", s->remote_recv_hist);
  hk_out_str(o, "size classes (those used)\n");
  hk_out_str(o, "  class      size          allocs           frees            live      live bytes\n");
  for (unsigned c = 0; c < HAK_STATS_CLASSES; c++) {
    const hak_class_stats_t *k = &s->classes[c];
    if (k->allocs == 0 && k->frees == 0) continue;
    hk_out_col_i64(o, c, 7);
    hk_out_col_i64(o, (int64_t)k->block_size, 10);
    hk_out_col_i64(o, (int64_t)k->allocs, 16);
    hk_out_col_i64(o, (int64_t)k->frees, 16);
    hk_out_col_i64(o, k->live, 16);
    hk_out_col_i64(o, k->live_bytes, 16);
    hk_out_str(o, "\n");
  }
  hk_out_str(o, "  total           ");
  hk_out_col_i64(o, (int64_t)s->allocs, 16);
  hk_out_col_i64(o, (int64_t)s->frees, 16);
  hk_out_col_i64(o, s->live_blocks, 16);
  hk_out_col_i64(o, s->live_bytes, 16);
  hk_out_str(o, "\nhakmem: end of stats\n");
}

void hk_report_print(void) {
  int saved = errno;
  hak_stats_t s;
  hk_report_snapshot(&s);
  hk_out o = {.fd = 2};
  hk_table(&o, &s);
  hk_out_flush(&o);
  errno = saved;
}

/* ---- JSON ----------------------------------------------------------------- */

static void hk_json_key(hk_out *o, const char *k) {
  hk_out_str(o, "\"");
  hk_out_str(o, k);
  hk_out_str(o, "\":");
}

/* "allocs":..,"frees":..,"live":..,"live_bytes":.. -- a class's and the totals' figures. */
static void hk_json_counts(hk_out *o, uint64_t allocs, uint64_t frees, int64_t live, int64_t live_bytes) {
  hk_out_str(o, "\"allocs\":");
  hk_out_u64(o, allocs);
  hk_out_str(o, ",\"frees\":");
  hk_out_u64(o, frees);
  hk_out_str(o, ",\"live\":");
  hk_out_i64(o, live);
  hk_out_str(o, ",\"live_bytes\":");
  hk_out_i64(o, live_bytes);
}

static void hk_json_hist(hk_out *o, const char *k, const size_t *hist) {
  hk_json_key(o, k);
  for (unsigned i = 0; i < HAK_STATS_HIST; i++) {
    hk_out_str(o, i == 0 ? "[" : ",");
    hk_out_u64(o, hist[i]);
  }
  hk_out_str(o, "]");
}

static void hk_json(hk_out *o, const hak_stats_t *s) {
  hk_row rows[HK_ROWS_MAX];
  size_t n = hk_rows(s, rows);
  hk_out_str(o, "{");
  for (size_t i = 0; i < n; i++) {
    bool first = i == 0 || !hk_same(rows[i].section, rows[i - 1].section);
    if (first) {
      if (i != 0) hk_out_str(o, "},");
      hk_json_key(o, rows[i].section);
      hk_out_str(o, "{");
    } else {
      hk_out_str(o, ",");
    }
    hk_json_key(o, rows[i].key);
    hk_out_i64(o, rows[i].value);
  }
  hk_out_str(o, "},");
  hk_json_key(o, "remote_batches");
  hk_out_str(o, "{");
  hk_json_key(o, "buckets");
  for (unsigned i = 0; i < HAK_STATS_HIST; i++) {
    hk_out_str(o, i == 0 ? "[\"" : ",\"");
    hk_out_str(o, hk_hist_label[i]);
    hk_out_str(o, "\"");
  }
  hk_out_str(o, "],");
  hk_json_hist(o, "sent", s->remote_sent_hist);
  hk_out_str(o, ",");
  hk_json_hist(o, "received", s->remote_recv_hist);
  hk_out_str(o, "},");
  hk_json_key(o, "totals");
  hk_out_str(o, "{");
  hk_json_counts(o, s->allocs, s->frees, s->live_blocks, s->live_bytes);
  hk_out_str(o, "},");
  hk_json_key(o, "classes");
  for (unsigned c = 0; c < HAK_STATS_CLASSES; c++) {
    const hak_class_stats_t *k = &s->classes[c];
    hk_out_str(o, c == 0 ? "[{\"class\":" : ",{\"class\":");
    hk_out_u64(o, c);
    hk_out_str(o, ",\"size\":");
    hk_out_u64(o, k->block_size);
    hk_out_str(o, ",");
    hk_json_counts(o, k->allocs, k->frees, k->live, k->live_bytes);
    hk_out_str(o, "}");
  }
  hk_out_str(o, "]}");
}

int hk_report_json(char *buf, size_t len) {
  hak_stats_t s;
  hk_report_snapshot(&s);
  hk_out o = {.fd = -1, .mem = buf, .cap = buf == NULL ? 0 : len};
  hk_json(&o, &s);
  if (o.cap != 0) o.mem[o.total < o.cap ? o.total : o.cap - 1] = '\0';
  return o.total > INT32_MAX ? INT32_MAX : (int)o.total;
}
