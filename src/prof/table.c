/* table.c -- the profiler's side table: the live samples keyed by pointer,
 * and their stacks, each distinct stack stored once with what its samples
 * stand for.
 *
 * Memory: one mapping from the os layer (never malloc), reserved when
 * profiling starts and committed page by page as it fills; its size is the
 * bound, and the statistics report it (prof table bytes). At the bound -- 3/4
 * of HK_PROF_SAMPLE_SLOTS live samples, HK_PROF_STACKS distinct stacks or
 * HK_PROF_FRAME_POOL frames (hk_config.h) -- a new sample is not taken: its
 * block is an ordinary one, and the statistics count it as dropped. Stacks
 * are never removed (a site that allocated once stays in the totals).
 *
 * Lock: one test-and-set lock over everything here, since sampling is rare
 * (once per 512 KiB by default). Taken inside malloc and free, so its holder
 * never allocates and never waits for anything that allocates; the holder
 * is inside the profiler (hk_prof_busy), so nothing it calls is sampled.
 * fork: prepare takes it, parent and child release it, so the child's copy
 * is consistent (the child's profile is then its own: the live blocks it
 * inherited, then its own samples). A signal asking for a dump never waits
 * for it (hk_prof_request_dump): it takes it if free, else leaves the dump
 * to the holder's release. */
#include "prof/prof.h"

#include <sched.h>

#include "os/os.h"
#include "util/mix.h"

typedef struct hk_prof_sample {
  uintptr_t ptr; /* 0: empty slot */
  uint64_t size;
  double weight; /* hk_prof_weight(size) when it was taken */
  uint32_t stack;
  uint32_t unused;
} hk_prof_sample;

#define HK_PT_INDEX (2 * HK_PROF_STACKS) /* the stacks' hash index: half full at most */
#define HK_PT_MAX_LIVE (HK_PROF_SAMPLE_SLOTS / 4 * 3)
_Static_assert((HK_PROF_SAMPLE_SLOTS & (HK_PROF_SAMPLE_SLOTS - 1)) == 0, "slots are masked");
_Static_assert((HK_PT_INDEX & (HK_PT_INDEX - 1)) == 0, "index slots are masked");

static struct {
  hk_prof_sample *samples; /* HK_PROF_SAMPLE_SLOTS, linear probing */
  uint32_t *index;         /* HK_PT_INDEX: stack number + 1, or 0 */
  hk_prof_stack *stacks;   /* HK_PROF_STACKS */
  uintptr_t *frames;       /* HK_PROF_FRAME_POOL */
  size_t bytes;            /* the mapping */
  size_t live, nstacks, nframes, dropped;
} hk_pt;

static _Atomic unsigned hk_pt_lock;    /* 1: held */
static _Atomic unsigned hk_pt_pending; /* 1: a signal asked for a dump */

bool hk_prof_table_init(void) {
  size_t s = HK_PROF_SAMPLE_SLOTS * sizeof(hk_prof_sample), i = HK_PT_INDEX * sizeof(uint32_t),
         k = HK_PROF_STACKS * sizeof(hk_prof_stack), f = HK_PROF_FRAME_POOL * sizeof(uintptr_t);
  size_t total = hk_page_up(s + i + k + f);
  uint8_t *m = hk_os_map(total);
  if (m == NULL) return false;
  hk_pt.samples = (hk_prof_sample *)m;
  hk_pt.index = (uint32_t *)(m + s);
  hk_pt.stacks = (hk_prof_stack *)(m + s + i);
  hk_pt.frames = (uintptr_t *)(m + s + i + k);
  hk_pt.bytes = total;
  return true;
}

/* ---- the lock ---------------------------------------------------------------- */

void hk_prof_lock(void) {
  unsigned spins = 0;
  /* Acquire: pairs with the release in hk_prof_unlock (the table as its last holder left it). */
  while (atomic_exchange_explicit(&hk_pt_lock, 1u, memory_order_acquire) != 0) {
    while (hk_load_relaxed(&hk_pt_lock) != 0) {
      if (++spins > 100) sched_yield(); /* the holder may be descheduled: 2 cores, many threads */
      else __asm__ __volatile__("" ::: "memory");
    }
  }
}

bool hk_prof_trylock(void) {
  /* Acquire: pairs with the release in hk_prof_unlock, as hk_prof_lock's. */
  return hk_load_relaxed(&hk_pt_lock) == 0 && atomic_exchange_explicit(&hk_pt_lock, 1u, memory_order_acquire) == 0;
}

/* The pending-dump hand-off is a store-then-load on each side (the
 * requester stores `pending` then tries the lock; the holder releases the
 * lock then loads `pending`), so both sides are seq_cst: either the
 * requester's try comes after the release and it dumps itself, or the
 * holder sees the request and takes the lock again to dump. */
void hk_prof_unlock(void) {
  for (;;) {
    if (atomic_exchange_explicit(&hk_pt_pending, 0u, memory_order_relaxed) != 0) hk_prof_dump_pending();
    /* seq_cst: the release of the table, and ordered before the load below
     * (pairs with hk_prof_request_dump's seq_cst store and exchange). */
    atomic_store_explicit(&hk_pt_lock, 0u, memory_order_seq_cst);
    if (atomic_load_explicit(&hk_pt_pending, memory_order_seq_cst) == 0) return;
    /* seq_cst: the acquire of a try-lock; pairs with the store above in whoever released last. */
    if (atomic_exchange_explicit(&hk_pt_lock, 1u, memory_order_seq_cst) != 0) return; /* its holder dumps */
  }
}

void hk_prof_request_dump(void) {
  /* seq_cst: see hk_prof_unlock (store, then try the lock). */
  atomic_store_explicit(&hk_pt_pending, 1u, memory_order_seq_cst);
  /* seq_cst: a try-lock that acquires the table; pairs with hk_prof_unlock's store. */
  if (atomic_exchange_explicit(&hk_pt_lock, 1u, memory_order_seq_cst) == 0) hk_prof_unlock();
}

void hk_prof_fork_prepare(void) { hk_prof_lock(); }
void hk_prof_fork_parent(void) { hk_prof_unlock(); }
void hk_prof_fork_child(void) {
  /* The forking thread is the child's only one and held the lock since prepare. */
  hk_store_relaxed(&hk_pt_pending, 0u);
  hk_store_relaxed(&hk_pt_lock, 0u);
}

/* ---- stacks ------------------------------------------------------------------- */

static uint64_t hk_pt_stack_hash(const uintptr_t *frames, unsigned depth) {
  uint64_t h = depth;
  for (unsigned i = 0; i < depth; i++) h = hk_mix64(h ^ frames[i]);
  return h;
}

/* The number of the stack frames[0..depth), added if new; UINT32_MAX when full. */
static uint32_t hk_pt_stack(const uintptr_t *frames, unsigned depth) {
  uint64_t h = hk_pt_stack_hash(frames, depth);
  for (size_t i = h & (HK_PT_INDEX - 1);; i = (i + 1) & (HK_PT_INDEX - 1)) {
    uint32_t e = hk_pt.index[i];
    if (e == 0) {
      if (hk_pt.nstacks == HK_PROF_STACKS || hk_pt.nframes + depth > HK_PROF_FRAME_POOL) return UINT32_MAX;
      uint32_t n = (uint32_t)hk_pt.nstacks++;
      hk_prof_stack *s = &hk_pt.stacks[n];
      *s = (hk_prof_stack){.hash = h, .frames = (uint32_t)hk_pt.nframes, .depth = depth};
      for (unsigned j = 0; j < depth; j++) hk_pt.frames[hk_pt.nframes + j] = frames[j];
      hk_pt.nframes += depth;
      hk_pt.index[i] = n + 1;
      return n;
    }
    const hk_prof_stack *s = &hk_pt.stacks[e - 1];
    if (s->hash != h || s->depth != depth) continue;
    const uintptr_t *f = &hk_pt.frames[s->frames];
    unsigned j = 0;
    while (j < depth && f[j] == frames[j]) j++;
    if (j == depth) return e - 1;
  }
}

size_t hk_prof_stack_count(void) { return hk_pt.nstacks; }
hk_prof_stack *hk_prof_stack_at(size_t i) { return &hk_pt.stacks[i]; }
const uintptr_t *hk_prof_frames_of(const hk_prof_stack *s) { return &hk_pt.frames[s->frames]; }

/* ---- samples: linear probing, deletion by backward shift ------------------------- */

static size_t hk_pt_home(uintptr_t p) { return (size_t)(hk_mix64(p) & (HK_PROF_SAMPLE_SLOTS - 1)); }

static hk_prof_sample *hk_pt_find(uintptr_t p) {
  for (size_t i = hk_pt_home(p);; i = (i + 1) & (HK_PROF_SAMPLE_SLOTS - 1)) {
    hk_prof_sample *e = &hk_pt.samples[i];
    if (e->ptr == p) return e;
    if (e->ptr == 0) return NULL;
  }
}

static void hk_pt_insert(const hk_prof_sample *rec) {
  size_t i = hk_pt_home(rec->ptr);
  while (hk_pt.samples[i].ptr != 0) i = (i + 1) & (HK_PROF_SAMPLE_SLOTS - 1);
  hk_pt.samples[i] = *rec;
  hk_pt.live++;
}

/* Empty slot e, moving later entries of its run back so that every entry
 * stays reachable from its home without tombstones. */
static void hk_pt_delete(hk_prof_sample *e) {
  size_t i = (size_t)(e - hk_pt.samples);
  for (size_t j = (i + 1) & (HK_PROF_SAMPLE_SLOTS - 1);; j = (j + 1) & (HK_PROF_SAMPLE_SLOTS - 1)) {
    hk_prof_sample *n = &hk_pt.samples[j];
    if (n->ptr == 0) break;
    size_t home = hk_pt_home(n->ptr);
    /* n may move to i when i lies cyclically in [home, j). */
    if (((j - home) & (HK_PROF_SAMPLE_SLOTS - 1)) >= ((j - i) & (HK_PROF_SAMPLE_SLOTS - 1))) {
      hk_pt.samples[i] = *n;
      i = j;
    }
  }
  hk_pt.samples[i] = (hk_prof_sample){0};
  hk_pt.live--;
}

/* A sample leaves the live figures of its stack. */
static void hk_pt_unlive(const hk_prof_sample *e) {
  hk_prof_stack *s = &hk_pt.stacks[e->stack];
  if (--s->live == 0) { /* exactly 0, whatever rounding the sums gathered */
    s->est_live_count = 0;
    s->est_live_bytes = 0;
  } else {
    s->est_live_count -= e->weight;
    s->est_live_bytes -= e->weight * (double)e->size;
  }
}

/* The record of p, if any, out of the table and of its stack's live figures. */
static void hk_pt_remove(uintptr_t p) {
  hk_prof_sample *e = hk_pt_find(p);
  if (e == NULL) return;
  hk_pt_unlive(e);
  hk_pt_delete(e);
}

bool hk_prof_record(void *p, size_t size, double weight, const uintptr_t *frames, unsigned depth,
                    uint32_t *stack_no) {
  hk_prof_sample rec = {.ptr = (uintptr_t)p, .size = size, .weight = weight};
  bool ok = false;
  hk_prof_lock();
  hk_pt_remove(rec.ptr); /* a record whose free was missed (see hk_prof_moved): superseded */
  /* The stack's number: the one this thread's stack cache kept for these
   * frames, else found (or added) by hash, and kept there for the next
   * sample from the same place (a sample's hash and lookup were a third of
   * its record). */
  rec.stack = UINT32_MAX;
  if (hk_pt.live < HK_PT_MAX_LIVE) {
    if (stack_no != NULL && *stack_no != 0) rec.stack = *stack_no - 1;
    else if ((rec.stack = hk_pt_stack(frames, depth)) != UINT32_MAX && stack_no != NULL) *stack_no = rec.stack + 1;
  }
  if (rec.stack != UINT32_MAX) {
    hk_prof_stack *s = &hk_pt.stacks[rec.stack];
    s->live++;
    s->est_live_count += rec.weight;
    s->est_live_bytes += rec.weight * (double)size;
    s->est_total_count += rec.weight;
    s->est_total_bytes += rec.weight * (double)size;
    hk_pt_insert(&rec);
    ok = true;
  } else {
    hk_pt.dropped++;
  }
  hk_prof_unlock();
  return ok;
}

void hk_prof_forget(void *p) {
  hk_prof_lock();
  hk_pt_remove((uintptr_t)p);
  hk_prof_unlock();
}

/* A grown block's record follows it. The old address may in principle be
 * sampled again by another thread between the move and this call; the
 * newer record then supersedes this one (hk_prof_record), and this one's
 * figures leave the profile early: a rounding error, never a crash. */
void hk_prof_moved(void *from, void *to) {
  hk_prof_lock();
  hk_prof_sample *e = hk_pt_find((uintptr_t)from);
  if (e != NULL) {
    hk_prof_sample rec = *e;
    hk_pt_delete(e);
    rec.ptr = (uintptr_t)to;
    hk_pt_remove(rec.ptr); /* a stale record at the destination */
    hk_pt_insert(&rec);
  }
  hk_prof_unlock();
}

void hk_prof_table_stats(size_t *bytes, size_t *samples, size_t *stacks, size_t *dropped) {
  *bytes = *samples = *stacks = *dropped = 0;
  if (!hk_prof_on()) return;
  hk_prof_lock();
  *bytes = hk_pt.bytes;
  *samples = hk_pt.live;
  *stacks = hk_pt.nstacks;
  *dropped = hk_pt.dropped;
  hk_prof_unlock();
}
