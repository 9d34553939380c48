/* remote.c -- the remote-free protocol. Model: formal/remote_free.pml.
 *
 * Per SuperSlab: remote_head, an intrusive LIFO. Per owner heap: the pending
 * set, a bitmap of buckets (summary word -> words -> bucket -> owned
 * SuperSlabs in that bucket). States of one SuperSlab's queue, seen by its
 * owner:
 *
 *   EMPTY     remote_head == NULL
 *   QUEUED    remote_head != NULL and its bucket bit is set (or about to be:
 *             the pusher that saw NULL sets it right after its CAS)
 *   DRAINING  the owner cleared the bucket bit and is about to exchange
 *
 *   EMPTY    --push (CAS sees NULL)-->            QUEUED: that pusher, and only
 *                                                 it, sets the bucket bit
 *   QUEUED   --push (CAS sees non-NULL)-->        QUEUED: no notification
 *   QUEUED   --owner: bit cleared (exchange)-->   DRAINING
 *   DRAINING --owner: exchange(head, NULL)-->     EMPTY, chain reclaimed
 *   DRAINING --push before the exchange-->        DRAINING: the block rides in
 *                                                 the chain being taken
 *
 * No lost wake-up: the owner clears the bit before it exchanges the head. A
 * push that lands after the exchange sees NULL and sets the bit again; the
 * owner's bit clear happens-before that set, because the pusher's acq_rel CAS
 * reads the value the owner's acq_rel exchange wrote. Bits are idempotent, so
 * a SuperSlab can never be "linked twice", and a stale bit (a sender that
 * read an old owner, a queue drained by another route) costs one empty look.
 *
 * Ownership: a pusher notifies whoever `owner` names after its push. An
 * abandoned SuperSlab (owner == ABANDONED) is not notified: its adopter
 * CASes itself in first and exchanges the head after, so a push either lands
 * before the adopter's exchange (drained at adoption) or after it (sees NULL,
 * reads the new owner, notifies it). Instead of an owner, that pusher flags
 * the abandoned set, so a SuperSlab an adopter once set aside as useless is
 * looked at again (abandon.c).
 *
 * Retirement (epoch/epoch.h, formal/retire.pml): once a pusher's CAS has
 * landed, its blocks are the owner's, who may reclaim them, find the
 * SuperSlab empty and retire it while the pusher still has to read `owner`
 * to notify. So every push-and-notify runs inside an epoch section: one per
 * outbox flush (a batch of up to 32 chains), one per chain evicted from a
 * slot, one per lone block of a thread without a heap (which borrows a
 * recycled record for it). Before its CAS the pusher needs no section: its
 * blocks are live, and a SuperSlab with a live block is never retired.
 * A drain never retires: a SuperSlab it empties waits for the owner's purge
 * (core/heap.c), which unlinks it first. The owner's pending walk still
 * runs in a section, so that the walk's safety does not rest on that. */
#include "remote/remote.h"

#include "epoch/epoch.h"
#include "remote/abandon.h"

#include "util/diag.h"
#include "util/stats.h"

static void hk_remote_notify(hk_superslab *ss) {
  /* Acquire: pairs with the adopter's acq_rel CAS on owner (and the heap's
   * creation before it), so the heap we mark is a fully set-up heap. */
  hk_heap *owner = (hk_heap *)hk_load_acquire(hk_ss_owner_word(ss));
  if (owner == NULL) { /* abandoned: the adopter drains at adoption */
    hk_abandoned_freed(ss);
    return;
  }
  unsigned b = hk_bucket_of(ss);
  /* Release (both): pair with the owner's acquire exchanges in collect, so a
   * cleared summary bit implies the word bit is visible. Word before summary:
   * formal/mutants/remote_free_summary_first.pml. */
  hk_or_release(&owner->pend_words[b >> 6], (uint64_t)1 << (b & 63));
  hk_or_release(&owner->pend_summary, (uint64_t)1 << (b >> 6));
}

void hk_remote_stats_flush(hk_heap *h) {
  hk_stat_add(HK_STAT_REMOTE_CHAINS, h->stat_chains);
  hk_stat_add(HK_STAT_REMOTE_BLOCKS, h->stat_blocks);
  h->stat_chains = h->stat_blocks = 0;
}

/* Count a push. Per heap, added to the global counters every 256 chains:
 * a shared counter bumped on every push would bounce its cache line between
 * all the cores that free remotely. */
static void hk_remote_count(hk_heap *h, uint32_t n) {
  if (!h->live) {
    hk_stat_add(HK_STAT_REMOTE_CHAINS, 1);
    hk_stat_add(HK_STAT_REMOTE_BLOCKS, n);
    hk_stat_sent_batch(n);
    return;
  }
  h->stats.sent_hist[hk_stat_hist_bucket(n)]++;
  h->stat_blocks += n;
  if (++h->stat_chains >= 256) hk_remote_stats_flush(h);
}

/* Push the chain head..tail (n blocks, linked through next) with one CAS.
 * Model: formal/remote_free.pml push; a plain store instead of the CAS:
 * formal/mutants/remote_free_push_no_cas.pml. */
static HK_NOINLINE void hk_remote_push(hk_heap *h, hk_superslab *ss, hk_block *head, hk_block *tail, uint32_t n) {
  hk_block *old = hk_load_relaxed(&ss->remote_head);
  do {
    hk_chain_link(tail, old);
    /* acq_rel: release publishes the chain's links to the owner's exchange;
     * acquire orders the owner's earlier bit clear before our notification. */
  } while (!hk_cas_weak_acq_rel(&ss->remote_head, &old, head));
  if (old == NULL) hk_remote_notify(ss);
  hk_remote_count(h, n);
}

/* What one block of ss counts against the outbox's byte bound (hk_config.h):
 * the kind is bit HK_SS_SHIFT of the SuperSlab's address. */
HK_INLINE uint32_t hk_outbox_units_of(const hk_superslab *ss) {
  return 1 + (uint32_t)((uintptr_t)ss >> HK_SS_SHIFT & 1) * (HK_OUTBOX_MEDIUM_UNITS - 1);
}

static HK_NOINLINE void hk_outbox_flush_slot(hk_heap *h, hk_outbox_slot *o) {
  _Static_assert(HK_OUTBOX_SLOTS <= 32, "outbox_used has a bit per slot");
  h->outbox_used &= ~(1u << (o - h->outbox));
  h->outbox_units -= o->count * hk_outbox_units_of(o->ss);
  hk_remote_push(h, o->ss, o->head, o->tail, o->count);
  o->ss = NULL;
  o->head = o->tail = NULL;
  o->count = 0;
}

/* A thread without a heap (never set up, or past its teardown): push the
 * block alone, in a section on a borrowed record. Without a record (none
 * free and no page for a new one) the push still happens: notification is
 * then skipped (reading the owner is only safe inside a section), and the
 * owner finds the block when it next drains that queue: a later push to it
 * that does notify, a drain of another SuperSlab in its bucket, or
 * adoption. Until then the block is not reused (a leak, not a loss). */
static HK_NOINLINE void hk_remote_free_heapless(hk_heap *h, hk_superslab *ss, hk_block *b) {
  hk_epoch_rec *rec = hk_epoch_acquire();
  if (rec == NULL) {
    hk_block *old = hk_load_relaxed(&ss->remote_head);
    do {
      hk_chain_link(b, old);
      /* Release: the link before the owner's acquire exchange. */
    } while (!hk_cas_weak_release(&ss->remote_head, &old, b));
    hk_remote_count(h, 1);
    return;
  }
  hk_epoch_enter(rec);
  hk_remote_push(h, ss, b, b, 1);
  hk_epoch_exit(rec);
  hk_epoch_release(rec);
}

static HK_NOINLINE void hk_outbox_flush_slot_in_section(hk_heap *h, hk_outbox_slot *o) {
  hk_epoch_enter(h->erec);
  hk_outbox_flush_slot(h, o);
  hk_epoch_exit(h->erec);
}

/* The chain in o is full, or the outbox is over its byte bound. */
static HK_NOINLINE void hk_outbox_over(hk_heap *h, hk_outbox_slot *o) {
  if (o->count >= HK_OUTBOX_CHAIN) hk_outbox_flush_slot_in_section(h, o);
  if (h->outbox_units >= HK_OUTBOX_UNITS) hk_outbox_flush_all(h);
}

/* b's prefetch hint: the block pushed into o HK_REMOTE_AHEAD pushes ago,
 * in this chain or an earlier one. The owner drains a queue's chains
 * together, newest first, so an earlier chain's block still queued lies
 * that far further down its walk; one already reclaimed (or of another
 * SuperSlab, the slot's before) is prefetched for nothing, never followed.
 * Hints from this chain alone left chains of up to 16 blocks without any:
 * medium blocks fill the outbox's byte bound in a few pushes, so their
 * chains are 1 to 7 blocks, and the owner missed on each one in turn. */
HK_INLINE void hk_outbox_hint(hk_outbox_slot *o, hk_block *b) {
  hk_block **a = &o->ahead[++o->pushes % HK_REMOTE_AHEAD];
  hk_chain_hint(b, *a);
  *a = b;
}

/* The slot is empty or holds another SuperSlab's chain: start a new chain. */
static HK_NOINLINE void hk_outbox_start(hk_heap *h, hk_outbox_slot *o, hk_superslab *ss, hk_block *b) {
  if (o->ss != NULL) hk_outbox_flush_slot_in_section(h, o);
  h->outbox_used |= 1u << (o - h->outbox);
  o->ss = ss;
  o->head = o->tail = b;
  hk_chain_link(b, NULL);
  o->count = 1;
  hk_outbox_hint(o, b);
  h->outbox_units += hk_outbox_units_of(ss);
  if (HK_UNLIKELY(h->outbox_units >= HK_OUTBOX_UNITS)) hk_outbox_flush_all(h);
}

/* The common case (the slot already collects for ss) makes no call but tail
 * calls, so it needs no stack frame. */
void hk_remote_free(hk_heap *h, hk_superslab *ss, hk_block *b) {
  if (HK_UNLIKELY(!h->live)) { /* no thread state: push the block alone */
    hk_remote_free_heapless(h, ss, b);
    return;
  }
  hk_outbox_slot *o = &h->outbox[hk_outbox_index(ss)];
  if (HK_UNLIKELY(o->ss != ss)) {
    hk_outbox_start(h, o, ss, b);
    return;
  }
  hk_chain_link(b, o->head);
  o->head = b;
  uint32_t n = ++o->count;
  hk_outbox_hint(o, b);
  uint32_t units = h->outbox_units += hk_outbox_units_of(ss);
  if (HK_UNLIKELY(n >= HK_OUTBOX_CHAIN || units >= HK_OUTBOX_UNITS)) hk_outbox_over(h, o);
}

void hk_outbox_flush_all(hk_heap *h) {
  hk_epoch_enter(h->erec); /* one section for the whole batch */
  while (h->outbox_used != 0) hk_outbox_flush_slot(h, &h->outbox[__builtin_ctz(h->outbox_used)]);
  HK_ASSERT(h->outbox_units == 0);
  hk_epoch_exit(h->erec);
}

/* Return a chain to the owner's thread caches (with `cache`, while they
 * have room: core/heap.h hk_heap_cache_reclaimed) or to its slabs,
 * validating each block first (the sender could not read the owner's slab
 * metadata). Per block, like a local free: the slab needs attention only
 * when it was FULL or its last block came back.
 * (Settling runs of same-slab blocks once per run paid off less: in mixed
 * workloads consecutive blocks rarely share a slab.) Each block's hint
 * (core/block.h) was written before the push's release CAS, so the drain's
 * acquire exchange makes it visible like the link; it is only ever
 * prefetched, never followed. One block: its successor. */
HK_INLINE hk_block *hk_remote_reclaim_one(hk_heap *h, hk_superslab *ss, hk_block *b, bool cache) {
  hk_block *next = hk_chain_next(b);
  hk_chain_prefetch(b);
  hk_slab *s = hk_slab_of(ss, b);
  if (HK_UNLIKELY(!hk_slab_is_block(s, b))) {
    hk_bad_free(b, "freed by another thread; not the start of a block", 0);
  } else if (HK_UNLIKELY(s->used == 0 ||
                         ((hk_block_keyed(b, hk_ss_secret(b), HK_BLOCK_KEY_SALT) ||
                           hk_block_keyed(b, hk_heap_secret(h), HK_TC_KEY_SALT)) &&
                          hk_heap_block_is_free(h, s, b)))) {
    hk_bad_free(b, "freed by another thread; block already free", 1);
  } else if (!cache || !hk_heap_cache_reclaimed(h, s, b)) {
    h->stats.cls[hk_slab_class(s)].reclaimed++; /* a free of this class, counted by its owner */
    if (HK_UNLIKELY(!hk_heap_free_local(s, b))) hk_heap_slab_returned(h, ss, s);
  }
  return next;
}

static void hk_remote_recv_stat(hk_heap *h, uint32_t n) {
  if (n == 0) return;
  h->stats.recv_hist[hk_stat_hist_bucket(n)]++;
  h->stats.recv_blocks += n;
}

/* Chains reclaimed side by side, one block of each in turn (a drain's one
 * chain alone). A chain's walk is a chase of links in lines the senders
 * wrote last, so one chain's next block cannot be loaded before its
 * current one is; the chains of different SuperSlabs are independent, and
 * walking them side by side has that many of those loads in flight instead
 * of one (the hints reach only as far as a chain, and medium blocks make
 * chains short). */
typedef struct {
  hk_superslab *ss;
  hk_block *b; /* non-NULL until the chain is done */
  uint32_t n;
} hk_reclaim_way;

static void hk_remote_reclaim(hk_heap *h, hk_reclaim_way *w, unsigned k, bool cache) {
  while (k != 0) {
    for (unsigned i = 0; i < k;) {
      w[i].b = hk_remote_reclaim_one(h, w[i].ss, w[i].b, cache);
      w[i].n++;
      if (w[i].b != NULL) {
        i++;
        continue;
      }
      hk_remote_recv_stat(h, w[i].n);
      w[i] = w[--k]; /* this chain is done: the last one takes its place */
    }
  }
}

/* ss's whole chain of remote frees, taken: the drain of both the owner's
 * collects and an adopter's. Always an exchange, never a plain emptiness
 * check: the adopter relies on the RMW reading the latest head (see the
 * ownership paragraph above; formal/mutants/ownership_adopt_plain_check.pml,
 * remote_free_drain_load_store.pml). acq_rel: acquire takes the pushers'
 * chains; release orders our bit clear before any later pusher's
 * notification (it reads our NULL). */
static hk_block *hk_remote_take_chain(hk_superslab *ss) { return hk_xchg_acq_rel(&ss->remote_head, NULL); }

/* A drain (an adopter's, at adoption: remote/abandon.c) returns the blocks
 * to their slabs, not to the thread cache, so a SuperSlab that an exited
 * thread left with all its blocks freed empties and is retired (caching
 * them kept each such SuperSlab alive until the adopter's own exit:
 * test_threads::free_after_owner_exit). The owner's own collects (below)
 * put them in its caches while they have room. */
void hk_remote_drain(hk_heap *h, hk_superslab *ss) {
  hk_reclaim_way w = {.ss = ss, .b = hk_remote_take_chain(ss), .n = 0};
  hk_remote_reclaim(h, &w, w.b != NULL, false);
}

void hk_remote_collect_pending(hk_heap *h) {
  hk_reclaim_way way[HK_RECLAIM_WAYS];
  unsigned k = 0;
  hk_epoch_enter(h->erec); /* defensive: drains do not retire (see the header) */
  uint64_t summary = hk_xchg_acquire(&h->pend_summary, 0); /* pairs with notify's release or */
  while (summary != 0) {
    unsigned w = (unsigned)__builtin_ctzll(summary);
    summary &= summary - 1;
    /* Clear before draining (no lost wake-up;
     * formal/mutants/remote_free_clear_after_xchg.pml). Acquire: pairs with
     * notify's release or, so a bit we clear implies its push is visible. */
    uint64_t bits = hk_xchg_acquire(&h->pend_words[w], 0);
    while (bits != 0) {
      unsigned b = w * 64 + (unsigned)__builtin_ctzll(bits);
      bits &= bits - 1;
      /* The relaxed emptiness check is safe here: a push whose bit we just
       * cleared happened-before our acquire exchange of that bit. The
       * chains taken are reclaimed side by side, HK_RECLAIM_WAYS at a time
       * (bucket lists are not changed by a reclaim: drains never retire). */
      hk_superslab *next;
      for (hk_superslab *ss = h->bucket[b]; ss != NULL; ss = next) {
        next = ss->bucket_next;
        if (hk_load_relaxed(&ss->remote_head) == NULL) continue;
        hk_block *chain = hk_remote_take_chain(ss);
        if (chain == NULL) continue;
        way[k++] = (hk_reclaim_way){.ss = ss, .b = chain, .n = 0};
        if (k == HK_RECLAIM_WAYS) {
          hk_remote_reclaim(h, way, k, true);
          k = 0;
        }
      }
    }
  }
  hk_remote_reclaim(h, way, k, true);
  hk_epoch_exit(h->erec);
}
