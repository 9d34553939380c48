/* sample.c -- which allocations the profiler samples: each byte allocated
 * is a sample point with probability 1/R (HAKMEM_PROF_SAMPLE = R), a
 * Poisson process, so an allocation of s bytes is sampled with probability
 * 1 - exp(-s/R) and the gaps between samples are exponential (unbiased, as
 * tcmalloc and jemalloc sample).
 *
 * Small classes. The process splits exactly into one per class: for class
 * c of size s_c, the allocations until its next sample are geometric with
 * p_c = 1 - exp(-s_c/R), drawn as 1 + floor(-ln(u) R / s_c). The countdown
 * rides on the class's thread-cache ticker, which malloc's fast path already
 * decrements on every cache pop: the slow path sets the ticker to
 * min(HK_TC_TICK, allocations left) (prof_after in the heap keeps the rest),
 * so the sampled allocation is exactly the pop that runs the ticker out
 * (hk_prof_tick). The fast path's other source, the current slab's `free`
 * list, pops without the ticker: each refill's list is charged to the
 * countdown whole when the sample lies beyond it, its pops then all coming
 * before the sample, else primed into the cache (hk_prof_refilled); and a
 * slow-path miss counts as the pop it replaces (hk_prof_miss). The fast
 * path is untouched.
 *
 * Large blocks count down bytes per thread instead (their allocations have
 * no ticker): a sample when the countdown passes 0, then an exponential
 * draw afresh (memoryless, so starting at the block's end is exact).
 *
 * A sampled allocation is a large block (hk_large_alloc) marked `sampled`,
 * so its free reaches the profiler through hk_large_free without any test
 * on the free fast path, and realloc, malloc_usable_size and the aligned
 * family see an ordinary large block. Nothing the profiler does inside
 * malloc is sampled again (hk_prof_busy). */
#include "prof/prof.h"

#include <pthread.h>
#include <unistd.h>

#include "core/heap.h"
#include "core/sizeclass.h"
#include "large/large.h"
#include "os/os.h"
#include "util/diag.h"
#include "util/mix.h"
#include "util/options.h"

_Atomic bool hk_prof_enabled;
static size_t hk_prof_rate_bytes = HK_PROF_SAMPLE_DEFAULT; /* written before hk_prof_enabled */
static double hk_prof_inv_rate = 1.0 / (double)HK_PROF_SAMPLE_DEFAULT;
/* Per class, set with the rate: a sample's weight (hk_prof_weight of the
 * class size), and the rate over the class size, which scales a draw. */
static double hk_prof_cls_weight[HK_NCLASSES], hk_prof_cls_scale[HK_NCLASSES];

/* Per thread (initial-exec TLS: no allocation on first use). */
static __thread uint64_t hk_prof_rng __attribute__((tls_model("initial-exec")));      /* xorshift64*; 0: unseeded */
static __thread int64_t hk_prof_large_left __attribute__((tls_model("initial-exec"))); /* bytes; 0: not drawn */
static __thread bool hk_prof_busy __attribute__((tls_model("initial-exec")));         /* inside the profiler */

/* ---- numbers without libm (libhakmem.so needs only libc) ----------------- */

/* ln x for x > 0 (normal): x = m 2^e with m in [sqrt(1/2), sqrt(2)),
 * ln m = 2 atanh((m-1)/(m+1)), whose series in s = (m-1)/(m+1), |s| <
 * 0.172, converges fast: a sample's draw needs no more than 1e-13. */
double hk_prof_ln(double x) {
  union {
    double d;
    uint64_t u;
  } v = {x};
  int e = (int)((v.u >> 52) & 0x7ff) - 1023;
  v.u = (v.u & ~(0x7ffull << 52)) | (1023ull << 52);
  double m = v.d;
  if (m > 1.4142135623730951) {
    m *= 0.5;
    e++;
  }
  /* Eight terms: the first left out, s^17 / 17, is below 4e-14 of ln m.
   * The coefficients 1/k are constants (a division per term was most of a
   * sample's draw), and the polynomial in s^2 is evaluated in pairs
   * (Estrin's scheme: three dependent multiply-adds instead of Horner's
   * seven, whose chain was most of what remained). */
  double s = (m - 1) / (m + 1), t = s * s, t2 = t * t, t4 = t2 * t2;
  double p01 = 1.0 + t * (1.0 / 3), p23 = 1.0 / 5 + t * (1.0 / 7);
  double p45 = 1.0 / 9 + t * (1.0 / 11), p67 = 1.0 / 13 + t * (1.0 / 15);
  double sum = s * ((p01 + t2 * p23) + t4 * (p45 + t2 * p67));
  return 2 * sum + e * 0.6931471805599453;
}

/* 1 - exp(-x) for x >= 0, accurate for tiny x (a 16-byte class at 512 KiB:
 * x = 3e-5) where 1 - exp(-x) would cancel: its series below 1/2, else
 * exp(-x) as exp(-x/2^k) squared k times. */
static double hk_one_minus_exp_neg(double x) {
  if (x > 45) return 1.0;
  int k = 0;
  while (x > 0.5) {
    x *= 0.5;
    k++;
  }
  /* -1/(n+1) for n = 1..19, so the terms cost a multiply, not a division;
   * and the sum stops once a term no longer changes it (x = 1e-3, a
   * 512-byte block at the default rate: 6 terms instead of 19). */
  static const double neg_inv[19] = {-1.0 / 2,  -1.0 / 3,  -1.0 / 4,  -1.0 / 5,  -1.0 / 6,  -1.0 / 7,  -1.0 / 8,
                                     -1.0 / 9,  -1.0 / 10, -1.0 / 11, -1.0 / 12, -1.0 / 13, -1.0 / 14, -1.0 / 15,
                                     -1.0 / 16, -1.0 / 17, -1.0 / 18, -1.0 / 19, -1.0 / 20};
  double sum = 0, term = x; /* x - x^2/2! + x^3/3! - ... */
  for (int n = 1; n < 20 && sum + term != sum; n++) {
    sum += term;
    term *= x * neg_inv[n - 1];
  }
  if (k == 0) return sum;
  double e = 1 - sum;
  while (k-- > 0) e *= e;
  return 1 - e;
}

double hk_prof_weight(size_t size) { return 1.0 / hk_one_minus_exp_neg((double)size * hk_prof_inv_rate); }
size_t hk_prof_rate(void) { return hk_prof_rate_bytes; }

/* -ln u for u uniform in (0, 1]: an exponential with mean 1. */
static double hk_prof_exp1(void) {
  uint64_t x = hk_prof_rng;
  if (HK_UNLIKELY(x == 0)) { /* seed: this thread's TLS address, the clock and a counter, mixed */
    static _Atomic uint64_t seq;
    x = (uintptr_t)&hk_prof_rng ^ (hk_os_now_ms() << 20) ^ (hk_add_relaxed(&seq, 1) * 0x9e3779b97f4a7c15ull);
    x = hk_mix64(x ^ (uint64_t)getpid() << 40);
    if (x == 0) x = 1;
  }
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  hk_prof_rng = x;
  uint64_t r = x * 0x2545f4914f6cdd1dull;
  double u = (double)((r >> 11) + 1) * (1.0 / 9007199254740992.0); /* (0, 1] */
  return -hk_prof_ln(u);
}

/* Allocations of class cls up to and including its next sample (>= 1). */
static uint64_t hk_prof_draw(unsigned cls) {
  double n = hk_prof_exp1() * hk_prof_cls_scale[cls];
  return n >= (double)(1u << 31) ? (uint64_t)1 << 31 : 1 + (uint64_t)n;
}

/* ---- small classes: the ticker as the countdown --------------------------- */

/* The class's sample is the n-th allocation from now (the one being served
 * counts when it is a pop). The ticker's window becomes min(HK_TC_TICK, n);
 * the statistics count a class's cache hits as pops + HK_TC_TICK - ticker,
 * so `pops` takes back the change of the ticker (hk_heap_stats_merge). */
static void hk_prof_window(hk_heap *h, unsigned cls, uint64_t n) {
  hk_tcache *t = &h->tc[cls];
  uint32_t k = n < HK_TC_TICK ? (uint32_t)n : HK_TC_TICK;
  h->prof_after[cls] = (uint32_t)(n - k);
  h->stats.cls[cls].pops += (uint64_t)k - t->ticker;
  t->ticker = k;
  /* The pops to come, for the slow path's periodic work (api/malloc_slow.c
   * hk_slow_tick_or_turn); kept below 2 x HK_TC_TICK, where it runs the
   * work at every window's end as without the profiler. */
  if (h->prof_credit < HK_TC_TICK) h->prof_credit += k;
}

/* The class's sample is the n-th allocation from now, and the blocks on
 * cur[cls]'s `free` list, which the fast path pops without the ticker,
 * come first unless the ticker's window is cut short of them: they are
 * charged to the countdown (the window shrinks by their number) when the
 * sample lies beyond them (hk_prof_charge_list: false when it does not),
 * else set aside onto the slab's `local_free`, out of the fast path's
 * reach, to come back through a refill and be counted then (core/heap.c
 * hk_heap_list_set_aside), or primed into the cache at a refill
 * (hk_prof_refilled). Either way the sample is an allocation the ticker
 * counts, and exactly the n-th: the list's pops all come before the window
 * runs out, or the tick that runs it out finds the rest of the list and
 * sets it aside (hk_prof_tick). */
static bool hk_prof_charge_list(hk_heap *h, unsigned cls, uint64_t n) {
  uint32_t listed = hk_heap_list_count(h, cls);
  if (listed == UINT32_MAX || listed >= n) return false; /* not known without a walk, or the sample is in it */
  hk_prof_window(h, cls, n - listed);
  return true;
}

static void hk_prof_window_after_list(hk_heap *h, unsigned cls, uint64_t n) {
  if (hk_prof_charge_list(h, cls, n)) return;
  hk_heap_list_set_aside(h, cls);
  hk_prof_window(h, cls, n);
}

/* Profiling has just begun for this heap (or the heap was reset): every
 * class's countdown starts now, its ticker's window cut to it, so that no
 * class's first HK_TC_TICK allocations go unsampled. The allocation being
 * served is the first of its class's window: a cache pop, or a miss that
 * counts as one (its list is empty then). Lists left from before are
 * charged or set aside like a refill's (hk_prof_window_after_list). */
static void hk_prof_arm(hk_heap *h) {
  for (unsigned c = 0; c < HK_NCLASSES; c++) hk_prof_window_after_list(h, c, hk_prof_draw(c));
  h->prof_armed = true;
}

void hk_prof_miss(hk_heap *h, unsigned cls, uint32_t left) {
  if (HK_UNLIKELY(!h->prof_armed)) hk_prof_arm(h);
  else hk_prof_window(h, cls, (uint64_t)left + h->prof_after[cls]);
}

/* Priming every refill's blocks into the cache (the way to make each
 * allocation a pop before the list was charged) moved at most
 * HK_PROF_PRIME_MAX of them, so the slab tier took a slow path and a walk
 * of cold blocks every 8 allocations: 4.3 % of the time at 8 threads
 * trading 90 % of 16-32768 B blocks (perf). Now a refill primes only when
 * the sample falls within its list, and the list's count costs nothing
 * when the slab's `local_free` is empty (core/heap.c hk_heap_list_count). */
void hk_prof_refilled(hk_heap *h, unsigned cls) {
  if (!hk_prof_charge_list(h, cls, (uint64_t)h->tc[cls].ticker + h->prof_after[cls])) hk_heap_tc_prime(h, cls);
}

/* A sampled block of `size` bytes: a large block, recorded with the
 * caller's stack and marked, or unmarked when the table is full. */
HK_INLINE void *hk_prof_sample(size_t size, size_t align, bool zero, double weight) {
  uintptr_t frames[HK_PROF_FRAMES];
  uint32_t *stack_no;
  hk_prof_busy = true;
  unsigned depth = hk_prof_capture(frames, HK_PROF_FRAMES, &stack_no);
  void *p = hk_large_alloc_sample(size, align, zero);
  /* The record before the mark: p is not the program's yet, so nobody frees it meanwhile. */
  if (p != NULL && depth != 0 && hk_prof_record(p, size, weight, frames, depth, stack_no)) hk_large_hdr(p)->sampled = 1;
  hk_prof_busy = false;
  return p;
}

void *hk_prof_tick(hk_heap *h, unsigned cls) {
  if (HK_UNLIKELY(!h->prof_armed)) {
    hk_prof_arm(h);
    return hk_heap_malloc(h, cls);
  }
  if (h->prof_after[cls] != 0) { /* a tick only: the pop that ran it out is the window's first */
    hk_prof_window(h, cls, (uint64_t)h->prof_after[cls] + 1);
    return hk_heap_malloc(h, cls);
  }
  /* Due, unless list pops charged at the last refill are still to come:
   * the sample is then that many allocations later, all of them pops. */
  uint32_t charged = hk_heap_list_set_aside(h, cls);
  if (charged != 0) {
    hk_prof_window(h, cls, (uint64_t)charged + 1);
    return hk_heap_malloc(h, cls);
  }
  uint64_t next = hk_prof_draw(cls);
  void *p = hk_prof_busy ? NULL : hk_prof_sample(hk_class_size[cls], 16, false, hk_prof_cls_weight[cls]);
  /* Not sampled (inside the profiler, or out of memory): this allocation
   * is a pop after all, the first of the next window. */
  hk_prof_window(h, cls, next + (p == NULL));
  return p != NULL ? p : hk_heap_malloc(h, cls);
}

void *hk_prof_realign(void *p, size_t size, size_t align) {
  void *q = hk_large_alloc(size, align);
  if (q != NULL && hk_large_hdr(p)->sampled) {
    hk_large_hdr(q)->sampled = 1;
    hk_prof_moved(p, q);
    hk_large_hdr(p)->sampled = 0;
  }
  hk_large_free(p);
  return q;
}

/* ---- large blocks: a byte countdown ------------------------------------------ */

/* Bytes to the next large sample: exponential, mean the rate. */
static int64_t hk_prof_large_draw(void) { return 1 + (int64_t)(hk_prof_exp1() * (double)hk_prof_rate_bytes); }

static bool hk_prof_large_due(size_t size) {
  if (hk_prof_busy) return false;
  int64_t left = hk_prof_large_left;
  if (HK_UNLIKELY(left == 0)) left = hk_prof_large_draw();
  left -= size > (size_t)INT64_MAX / 2 ? INT64_MAX / 2 : (int64_t)size;
  if (left > 0) {
    hk_prof_large_left = left;
    return false;
  }
  hk_prof_large_left = hk_prof_large_draw();
  return true;
}

void *hk_prof_large_alloc(size_t size, size_t align) {
  if (HK_LIKELY(!hk_prof_on()) || !hk_prof_large_due(size)) return hk_large_alloc(size, align);
  return hk_prof_sample(size, align, false, hk_prof_weight(size));
}

void *hk_prof_large_calloc(size_t size) {
  if (HK_LIKELY(!hk_prof_on()) || !hk_prof_large_due(size)) return hk_large_calloc(size);
  return hk_prof_sample(size, 16, true, hk_prof_weight(size));
}

/* ---- start-up ------------------------------------------------------------------ */

void hk_prof_start(void) {
#ifndef HK_HARDENED
  if (!hk_opt_get(prof) || hk_load_relaxed(&hk_prof_enabled)) return;
  size_t rate = hk_opt_get(prof_sample);
  hk_prof_rate_bytes = rate == 0 ? 1 : rate;
  hk_prof_inv_rate = 1.0 / (double)hk_prof_rate_bytes;
  for (unsigned c = 0; c < HK_NCLASSES; c++) {
    hk_prof_cls_weight[c] = hk_prof_weight(hk_class_size[c]);
    hk_prof_cls_scale[c] = (double)hk_prof_rate_bytes / (double)hk_class_size[c];
  }
  if (!hk_prof_table_init()) {
    hk_line l = {.len = 0};
    hk_line_str(&l, "hakmem: HAKMEM_PROF: the profiler's table could not be mapped; profiling is off");
    hk_line_emit(&l);
    return;
  }
  hk_prof_busy = true; /* backtrace's first call allocates: nothing of it is sampled */
  hk_prof_capture_init();
  hk_prof_busy = false;
  pthread_atfork(hk_prof_fork_prepare, hk_prof_fork_parent, hk_prof_fork_child);
  hk_prof_note_start_pid();
  hk_prof_signal_install();
  /* Release: pairs with the acquire in hk_prof_on (the rate and the table
   * before any thread samples). */
  atomic_store_explicit(&hk_prof_enabled, true, memory_order_release);
  hk_heap_ticks_for_profiler();
#endif
}
