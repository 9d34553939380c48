/* epoch.c -- records, the retire queue and the poller. See epoch.h for the
 * protocol; model: formal/retire.pml. */
#include "epoch/epoch.h"

#include <sched.h>

#include "hk_atomic.h"
#include "os/os.h"
#include "util/stats.h"

#ifdef HK_TSAN
char hk_epoch_tsan_clock;
#endif

/* The global epoch, statically in the state ck_epoch_init leaves it
 * (epoch 1, no records), so that the very first malloc needs no init step. */
static ck_epoch_t hk_epoch = {.epoch = 1};

/* The reclaim record: ck_epoch_call and ck_epoch_poll only, under hk_poll_busy.
 * Registered on first use (states: 0 none, 1 registering, 2 ready). */
static ck_epoch_record_t hk_reclaim_rec;
/* Read on every poll attempt, written once: apart from the try-flag, which
 * every poll writes twice. */
static _Alignas(HK_CACHE_LINE) _Atomic int hk_reclaim_state;
static _Alignas(HK_CACHE_LINE) _Atomic int hk_poll_busy;

/* Retire queue: an MPSC LIFO; any thread pushes, the poller takes it all. */
static _Alignas(HK_CACHE_LINE) _Atomic(hk_retired *) hk_retire_queue;
/* Read by every maintenance tick of every heap (hk_epoch_maybe_poll): its own
 * line, so a retire's queue push does not invalidate it. */
_Alignas(HK_CACHE_LINE) _Atomic uint64_t hk_epoch_pending;

/* Record arena: records are claimed one at a time by a fetch_add on the
 * count. The first HK_REC_STATIC live in .bss (zero pages, touched only when
 * used), so thread start-up maps nothing for them: with hundreds of threads
 * starting at once, every mmap is a taking of the kernel's mmap lock, whose
 * holder, preempted, stalls them all. Beyond that, pages installed by CAS
 * (the loser of a race unmaps its page). Never unmapped: ck links records
 * forever. */
#define HK_REC_STATIC   1024
#define HK_REC_PER_PAGE (HK_PAGE_SIZE / sizeof(ck_epoch_record_t))
#define HK_REC_PAGES    4096
static ck_epoch_record_t hk_rec_static[HK_REC_STATIC];
static _Atomic uintptr_t hk_rec_pages[HK_REC_PAGES];
static _Atomic size_t hk_rec_count;

static ck_epoch_record_t *hk_rec_new(void) {
  size_t i = hk_add_relaxed(&hk_rec_count, 1);
  if (i < HK_REC_STATIC) {
    hk_stat_add(HK_STAT_EPOCH_RECORDS, 1);
    return &hk_rec_static[i];
  }
  i -= HK_REC_STATIC;
  if (i >= HK_REC_PAGES * HK_REC_PER_PAGE) return NULL;
  _Atomic uintptr_t *slot = &hk_rec_pages[i / HK_REC_PER_PAGE];
  uintptr_t page = hk_load_acquire(slot); /* pairs with the CAS below: a zeroed page */
  if (page == 0) {
    void *fresh = hk_os_map(HK_PAGE_SIZE);
    if (fresh == NULL) return NULL;
    /* acq_rel: publishes the fresh page; on failure the winner's is read. */
    if (hk_cas_strong_acq_rel(slot, &page, (uintptr_t)fresh)) page = (uintptr_t)fresh;
    else hk_os_unmap(fresh, HK_PAGE_SIZE);
  }
  hk_stat_add(HK_STAT_EPOCH_RECORDS, 1);
  return &((ck_epoch_record_t *)page)[i % HK_REC_PER_PAGE];
}

hk_epoch_rec *hk_epoch_acquire(void) {
  ck_epoch_record_t *r = ck_epoch_recycle(&hk_epoch, NULL);
  if (r != NULL) {
    /* ck's FREE -> USED exchange (inside libck, unseen by TSan) orders the
     * previous user's last section before ours; pairs with release below. */
    HK_TSAN_ACQUIRE(r);
    return r;
  }
  r = hk_rec_new();
  if (r != NULL) ck_epoch_register(&hk_epoch, r, NULL);
  return r;
}

void hk_epoch_release(hk_epoch_rec *r) {
  /* Only reader records are released, and readers never ck_epoch_call, so
   * there are no pending callbacks for unregister to drop. */
  HK_TSAN_RELEASE(r); /* acquired by the thread that recycles r */
  ck_epoch_unregister(r);
}

void hk_epoch_retire(hk_retired *obj, void (*fn)(hk_retired *)) {
  obj->fn = fn;
  HK_TSAN_RELEASE(obj); /* the retirer's last writes, acquired in the callback */
  hk_add_relaxed(&hk_epoch_pending, 1);
  hk_retired *old = hk_load_relaxed(&hk_retire_queue);
  do {
    obj->qnext = old;
    /* Release: obj's fields (and the unlinking before this call) are
     * visible to the poller, which takes the queue with an acquire exchange. */
  } while (!hk_cas_weak_release(&hk_retire_queue, &old, obj));
}

static void hk_epoch_dispatch(ck_epoch_entry_t *e) {
  hk_retired *obj = (hk_retired *)((char *)e - offsetof(hk_retired, entry));
  HK_TSAN_ACQUIRE(&hk_epoch_tsan_clock); /* every reader section ended before now */
  HK_TSAN_ACQUIRE(obj);                   /* pairs with the release in hk_epoch_retire */
  hk_sub_relaxed(&hk_epoch_pending, 1);
  obj->fn(obj);
}

static bool hk_reclaim_ready(void) {
  int st = hk_load_acquire(&hk_reclaim_state); /* pairs with the release below */
  if (st == 2) return true;
  if (st == 0 && hk_cas_strong_acq_rel(&hk_reclaim_state, &st, 1)) {
    ck_epoch_register(&hk_epoch, &hk_reclaim_rec, NULL);
    hk_store_release(&hk_reclaim_state, 2); /* pairs with the acquire above: registered */
    return true;
  }
  return false; /* another thread is registering it right now: poll later */
}

/* Under the try-flag: move the queue into ck, then poll. */
static bool hk_epoch_poll_locked(void) {
  hk_retired *q = hk_xchg_acquire(&hk_retire_queue, NULL); /* pairs with retire's release CAS */
  while (q != NULL) {
    hk_retired *next = q->qnext;
    ck_epoch_call(&hk_reclaim_rec, &q->entry, hk_epoch_dispatch);
    q = next;
  }
  return ck_epoch_poll(&hk_reclaim_rec);
}

static bool hk_poll_trylock(void) {
  if (!hk_reclaim_ready()) return false;
  /* Acquire: the previous poller's work on the reclaim record (its ck_epoch_call
   * pushes, ck's private fields) happens-before ours; pairs with the release below. */
  return hk_load_relaxed(&hk_poll_busy) == 0 && hk_xchg_acquire(&hk_poll_busy, 1) == 0;
}

static void hk_poll_unlock(void) {
  hk_store_release(&hk_poll_busy, 0); /* pairs with the acquire exchange in trylock */
}

void hk_epoch_poll(void) {
  if (!hk_poll_trylock()) return;
  hk_epoch_poll_locked();
  hk_poll_unlock();
}

/* When the next paced poll may run (CLOCK_MONOTONIC_COARSE ms): its own
 * line, read by every paced caller, written by one poller per tick. */
static _Alignas(HK_CACHE_LINE) _Atomic uint64_t hk_poll_next_ms;

void hk_epoch_poll_paced(void) {
  uint64_t now = hk_os_now_ms();
  if (now < hk_load_relaxed(&hk_poll_next_ms)) return;
  if (!hk_poll_trylock()) return;
  /* Relaxed: a pace, ordering nothing; the try-flag orders the poll. */
  hk_store_relaxed(&hk_poll_next_ms, now + 1);
  hk_epoch_poll_locked();
  hk_poll_unlock();
}

/* ck_epoch.c's CK_EPOCH_STATE_FREE, which its header does not export. */
#define HK_CK_RECORD_FREE 1u

void hk_epoch_fork_child(const hk_epoch_rec *keep) {
  ck_stack_entry_t *e;
  bool reclaim_listed = false;
  CK_STACK_FOREACH(&hk_epoch.records, e) {
    ck_epoch_record_t *r = (ck_epoch_record_t *)((char *)e - offsetof(ck_epoch_record_t, record_next));
    if (r == &hk_reclaim_rec) reclaim_listed = true;
    /* Plain reads: the child has one thread. */
    if (r == keep || r == &hk_reclaim_rec || r->state == HK_CK_RECORD_FREE) continue;
    ck_epoch_unregister(r); /* as that thread's exit would have: FREE, no longer active */
  }
  /* A parent thread was registering the reclaim record at the fork: finish
   * it here (or only mark it, if ck had linked it), or nothing would ever
   * be reclaimed in the child. */
  if (hk_load_relaxed(&hk_reclaim_state) == 1) {
    if (!reclaim_listed) ck_epoch_register(&hk_epoch, &hk_reclaim_rec, NULL);
    hk_store_relaxed(&hk_reclaim_state, 2);
  }
  hk_store_relaxed(&hk_poll_busy, 0);
}

uint64_t hk_epoch_drain(void) {
  uint64_t before = hk_load_relaxed(&hk_epoch_pending), rounds = 0;
  /* Each grace period needs the epoch to advance twice, and each poll
   * advances it at most once, once every open section has seen it: a few
   * rounds when no reader lingers. Bounded, so a reader stuck in a section
   * (a stopped thread) makes this return early instead of hanging. */
  while (hk_load_relaxed(&hk_epoch_pending) != 0 && rounds++ < 256) {
    if (hk_poll_trylock()) {
      hk_epoch_poll_locked();
      hk_poll_unlock();
    }
    if (rounds > 4) sched_yield();
  }
  uint64_t after = hk_load_relaxed(&hk_epoch_pending);
  return before > after ? before - after : 0;
}
