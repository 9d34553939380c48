/* hk_types.h -- every shared data structure of HAKMEM, each with the rules
 * for who may write which field in which state. Read this before any .c file:
 * the protocols are visible in the types. */
#ifndef HK_TYPES_H
#define HK_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ck_epoch.h>

#include "hk_atomic.h"
#include "hk_config.h"

/* A retired object's link (epoch/epoch.h): ck's entry, the retire-queue
 * link and the callback. Written by the retirer before its release push;
 * read by the poller after its acquire exchange. */
typedef struct hk_retired {
  ck_epoch_entry_t entry;
  struct hk_retired *qnext;
  void (*fn)(struct hk_retired *);
} hk_retired;

/* A free block: the link lives in its first word. Owner-only free lists use
 * `next` plainly; a block in a remote chain is written by its sender before
 * the publishing CAS and read by the owner after the acquiring exchange. */
typedef struct hk_block {
  struct hk_block *next;
  uintptr_t key; /* hk_block_key(b) while on an owner's free list: a cheap
                    double-free tell; cleared when the block is handed out */
} hk_block;

/* Per-address, so user data that happens to sit in a live block's second
 * word matches only by coincidence (and a match is then verified): the key
 * is the block's address plus an odd salt between 2^28 and 2^31, so it is
 * never a block address (blocks are 16-aligned) nor a block of the same
 * SuperSlab (a remote chain's prefetch hint, core/block.h). Added, not
 * xored: a salt that fits a sign-extended 32-bit displacement makes the key
 * one lea where a 64-bit constant took a movabs and an xor, in malloc's and
 * in free's fast paths alike. A block in a heap's thread cache (hk_tcache)
 * carries a different key from one on a slab's list, so a block freed twice
 * whose copies ended up on both (one moved to its slab by a cache flush) is
 * told apart on either side. How the two words are written and checked:
 * core/block.h (hardened builds encode the link and bind the key to it with
 * a secret, the salt xored in). */
#define HK_BLOCK_KEY_SALT ((uintptr_t)0x5bd1e995u)
#define HK_TC_KEY_SALT    ((uintptr_t)0x27d4eb4fu)
#define HK_QUARANTINE_KEY_SALT ((uintptr_t)0x165667b1u)
#define HK_SALT_OK(x) (((x) & 1) == 1 && (x) >= ((uintptr_t)1 << 28) && (x) < ((uintptr_t)1 << 31))
_Static_assert(HK_SALT_OK(HK_BLOCK_KEY_SALT) && HK_SALT_OK(HK_TC_KEY_SALT) && HK_SALT_OK(HK_QUARANTINE_KEY_SALT),
               "odd (no block address), at least 2^28 (no block of the same SuperSlab), a 32-bit displacement");
_Static_assert(HK_BLOCK_KEY_SALT != HK_TC_KEY_SALT && HK_TC_KEY_SALT != HK_QUARANTINE_KEY_SALT &&
               HK_BLOCK_KEY_SALT != HK_QUARANTINE_KEY_SALT, "each list its own key");
#undef HK_SALT_OK

/* Slab states. Only the owner heap moves a slab between them.
 *   UNUSED  -> ACTIVE   slab_init_class: assigned to a size class, becomes cur
 *   ACTIVE  -> FULL     the owner found no free block in it (not listed)
 *   ACTIVE  -> PARTIAL  displaced as cur while it still has free blocks
 *   FULL    -> PARTIAL  a local free or reclaimed remote free gave it a block
 *   PARTIAL -> ACTIVE   chosen as cur again
 *   PARTIAL -> KEPT     its last block came back (used == 0) and its class
 *   FULL    -> KEPT     keeps no empty slab yet: h->kept[class] (core/heap.c)
 *   KEPT    -> ACTIVE   chosen as cur again (after the partial slabs)
 *   KEPT    -> UNUSED   empty for the decommit delay, or hak_collect/exit:
 *                       any class may reuse it
 *   PARTIAL -> UNUSED   its last block came back and its class keeps one already
 *   FULL    -> UNUSED   the same */
enum { HK_SLAB_UNUSED = 0, HK_SLAB_ACTIVE, HK_SLAB_PARTIAL, HK_SLAB_FULL, HK_SLAB_KEPT };

/* A slab: one SuperSlab's slab_size-aligned run of pages serving one size
 * class (its block size is hk_slab_block_size(s)). Every field is owner-only (no atomics): remote frees never touch a
 * slab, they go to the SuperSlab's queue and the owner moves them here.
 *   free        blocks to allocate from (the malloc fast path pops here)
 *   local_free  the owner's own frees; swapped into `free` when it runs dry
 *   used        blocks handed out and not yet returned to a list of this slab
 *               (a block freed remotely counts as used until reclaimed)
 *   carved_key  the blocks carved so far, as a key: never-carved blocks were
 *               never handed out (lazy carving: fresh pages are touched on
 *               demand)
 *   limit_key   the slab's whole blocks, as a key
 * A key is a count of blocks n times the slab's unit u = bsize * magic -
 * 2^64 (1 <= u <= bsize), so that "p is one of the first n blocks" is the
 * one compare (p - start) * magic < n * u (core/slab.h, hk_slab_is_block).
 * Exactly 64 bytes so the slab array indexes with a shift. */
typedef struct hk_slab {
  hk_block *free;
  hk_block *local_free;
  uint32_t used;
  uint32_t carved_key;   /* blocks carved, as a key (above) */
  uint32_t limit_key;    /* whole blocks in the slab, as a key */
  uint16_t tc_off;       /* its class's thread cache in a heap: class x
                            sizeof(hk_tcache), the byte offset free's fast
                            path adds to the heap (hk_slab_class: the class) */
  uint8_t state;         /* HK_SLAB_* */
  uint8_t index;         /* position in its SuperSlab */
  uint64_t magic;        /* floor(2^64 / block size) + 1: the block-start
                            test's multiplier (core/slab.h); 0 when UNUSED */
  uint8_t *start;        /* first block (slab 0 starts after the header) */
  struct hk_slab *next;  /* heap's partial list of this class */
  struct hk_slab *prev;
} hk_slab;

_Static_assert(sizeof(hk_slab) == 64, "slab metadata is one cache line");

struct hk_heap;

/* Ownership word values other than a heap pointer. A heap pointer is
 * page-aligned, so it never equals these. A retired SuperSlab's owner is
 * ABANDONED too (a late notifier then marks nobody), but it is on no
 * abandoned stack, so nobody can adopt it. */
#define HK_OWNER_ABANDONED ((uintptr_t)0)

/* A SuperSlab: the unit of ownership. Its header is the first page.
 *
 * owner (atomic, reached through hk_ss_owner_word): the owning heap, or
 *   HK_OWNER_ABANDONED. Stored only by the thread that owns the SuperSlab:
 *   its heap at creation (before the SuperSlab is visible), ABANDONED when
 *   its thread exits (release; it never touches the SuperSlab again) or
 *   when it retires it; and changed by one CAS, ABANDONED -> itself, by an
 *   adopter, which alone holds the popped SuperSlab (formal/ownership.pml).
 *   Any thread may read it; a thread that reads its own heap owns the
 *   SuperSlab (nobody else can install that value).
 * remote_head (atomic, own cache line): the MPSC LIFO of remotely freed
 *   blocks. Any thread pushes a chain with one CAS; only the owner takes, all
 *   of it, with one exchange. See remote/remote.c for the protocol.
 * Everything else is owner-only, or immutable after superslab_create. */
typedef struct hk_superslab {
  /* First, at the SuperSlab's own address: free's fast path reaches a
   * descriptor as that address plus 64 x its granule (hk_slab_view_of), with no
   * offset of the array to add. */
  hk_slab slabs[HK_MAX_SLABS];
  /* immutable or owner-only */
  _Alignas(HK_CACHE_LINE) uint8_t kind;              /* HK_KIND_* (immutable) */
  uint8_t slab_shift;        /* immutable */
  uint8_t nslabs;            /* immutable */
  uint8_t in_avail;          /* owner-only: on the heap's avail list */
  uint32_t free_slabs;       /* owner-only: bitmask of UNUSED slabs */
  struct hk_superslab *bucket_next;  /* owner-only: heap's bucket list */
  struct hk_superslab *avail_next;   /* owner-only: heap's list of SuperSlabs with UNUSED slabs */
  _Atomic uintptr_t stack_next;      /* link on the global abandoned stack */
  uint64_t room;             /* written before abandoning: classes with free
                                blocks, bit 63 = a slab is (or can be) UNUSED */
  uint64_t magic;
#ifdef HK_HARDENED
  uint64_t secret;           /* immutable while owned: encodes the links of
                                its blocks (core/block.h) */
#endif
  /* the next line: the remote queue, apart from owner-written fields */
  _Alignas(HK_CACHE_LINE) _Atomic(hk_block *) remote_head;
  /* 16 lines: the owner word, read on every free, lives in one of these
   * lines, picked by address bits 22-25 (hk_ss_owner_word). Every header
   * starts 2 MiB-aligned, so a word at one fixed offset would sit in the
   * same L1 set in every SuperSlab: with more SuperSlabs than the cache has
   * ways, frees spread over them missed on it (cachegrind, random_mixed
   * WS=65536: 0.45 misses per free at 8 ways, 0.06 at 32). */
  struct {
    _Alignas(HK_CACHE_LINE) _Atomic uintptr_t word;
  } owner_at[16];
  /* Decommit bookkeeping (core/purge.c; model formal/purge.pml). `purge`
   * packs two slab masks: bits 0-31 "dirty" (UNUSED with pages that may be
   * committed, since dirty_ms[i]), bits 32-63 "purging" (a thread other
   * than the owner is decommitting it now). The owner sets dirty bits and
   * clears them when a class takes the slab again; any thread may claim a
   * dirty slab whose delay has passed and decommit its pages. */
  _Atomic uint64_t purge;
  _Atomic uint64_t dirty_ms[HK_MAX_SLABS];
  /* Committed bytes of each slab from its start: its carving's extent,
   * rounded to pages, since its pages were last decommitted (its binding
   * to a class may change meanwhile: pages stay committed). Written by the
   * carving owner and by whoever decommits the slab (the owner, or a purger
   * holding its PURGING claim); relaxed: statistics only, the purge word
   * orders the pages themselves. */
  _Atomic uint32_t committed[HK_MAX_SLABS];
  /* Owner-only: when it last became empty (core/heap.c retires it once it
   * has stayed empty for the decommit delay). */
  uint64_t empty_ms;
  /* Retirement (core/superslab.c): the epoch link. */
  hk_retired retire;
} hk_superslab;

#define HK_SS_MAGIC 0x48414b4d454d5353ull /* "HAKMEMSS" */
_Static_assert(sizeof(hk_superslab) <= HK_PAGE_SIZE, "SuperSlab header fits in its first page");

/* One outbox slot: a chain of blocks bound for one SuperSlab (sender-only). */
typedef struct hk_outbox_slot {
  hk_superslab *ss;
  hk_block *head;
  hk_block *tail;
  uint32_t count;
  uint32_t pushes;                  /* into this slot since the heap was set up */
  /* The slot's last HK_REMOTE_AHEAD blocks by pushes modulo HK_REMOTE_AHEAD,
   * across chains: the hint a new head gets is the block pushed that many
   * pushes ago, in this chain or an earlier one. */
  hk_block *ahead[HK_REMOTE_AHEAD];
} hk_outbox_slot;

/* A heap's thread cache of one size class: a LIFO of blocks the thread
 * freed, malloc's first choice, so the block it hands out is the one freed
 * last, still in cache (tcmalloc's per-class lists do the same). The blocks
 * count as used in their slabs until a flush gives them back. Owner-only.
 *   head    the LIFO, linked through hk_block.next, each block keyed hk_tc_key
 *   room    frees it takes before the free path grows it or flushes its
 *           older half; the cache's size (hk_heap.tc_cap) is read on slow
 *           paths only, so it is not here
 *   ticker  malloc's hits of this cache down to the class's next tick: a
 *           thread served from its caches alone still flushes its outbox,
 *           collects remote frees, runs its purge clock and visits one
 *           class's cache (tc_gc, round robin). Each class ticks after
 *           HK_TC_TICK of its own hits, so ticks come once per HK_TC_TICK
 *           hits overall, as with one ticker per heap, and each class's hits
 *           are counted without a fast-path instruction: the ticks settled
 *           in the heap's stats plus the ticker's progress. `--t->ticker`
 *           costs what `--h->ticker` did: t is in a register anyway. */
typedef struct hk_tcache {
  hk_block *head;
  uint32_t room;
  uint32_t ticker;
} hk_tcache;

/* s's size class (hk_slab.tc_off). */
_Static_assert(HK_NCLASSES * sizeof(hk_tcache) <= UINT16_MAX, "hk_slab.tc_off holds every class's offset");
HK_INLINE unsigned hk_slab_class(const hk_slab *s) {
  uint32_t off = s->tc_off; /* widened first: gcc 12 shifted the 16-bit word, then masked it */
  return off / (uint32_t)sizeof(hk_tcache);
}

/* Statistics of one class in one heap since its last merge into the
 * process-wide counters (core/heap.c hk_heap_stats_merge). Owner-only, and
 * none of it is written by a fast path: allocations and frees follow from
 * these, the slabs' `used` and the caches' room and ticker at the merge:
 *   cache hits   pops + ticker's progress
 *   slab pops    sum(used) - used_base + trimmed + reclaimed - adopted
 *   local frees  cached - cached_base + cache hits + trimmed + dropped
 * (allocations = cache hits + slab pops - primed, frees = local frees +
 * reclaimed - primed). */
typedef struct hk_class_stats {
  uint64_t pops;       /* cache hits settled at ticks (wraps: see the merge) */
  uint64_t trimmed;    /* cached blocks given back to their slabs */
  uint64_t reclaimed;  /* remote frees taken back to their slabs */
  uint64_t adopted;    /* `used` of slabs adopted from exited threads */
  uint64_t used_base;  /* sum of this class's slabs' `used` at the merge */
  uint32_t cached_base; /* blocks in the cache at the merge */
  uint32_t dropped;    /* cached blocks dropped as corrupt (leaked) */
  uint64_t primed;     /* slab blocks moved into the cache while profiling
                          (hk_heap_tc_prime): as a slab pop and a local
                          free they would count twice, so both subtract it */
} hk_class_stats;

/* A thread's large-block calls since the last merge, kept here so that no
 * large call writes a process-wide counter (a thread without a heap tallies
 * its one call and merges it at once, large/large.c). Byte counts wrap: a thread may free more than it
 * allocated; the merge adds them modulo 2^64. */
typedef struct hk_large_tally {
  uint64_t allocs, frees;
  uint64_t bytes;             /* usable bytes allocated minus freed */
  uint64_t commit, decommit;  /* what the blocks could have committed / gave back */
  uint64_t stash;             /* bytes put into the profiler's stash minus taken out (large.c) */
} hk_large_tally;

/* A heap's statistics, merged into the process-wide ones (hk_heap_stats_merge). */
typedef struct hk_heap_stats {
  hk_class_stats cls[HK_NCLASSES];
  hk_large_tally large;
  uint64_t sent_hist[HK_STAT_HIST_BUCKETS];  /* chains this thread pushed, by size */
  uint64_t recv_hist[HK_STAT_HIST_BUCKETS];  /* queues this thread drained, by size */
  uint64_t recv_blocks;              /* blocks taken back from remote queues */
} hk_heap_stats;

/* A thread heap. Owner-only except the pending bitmap and stack_next.
 *   tc[c]       the thread cache of class c (above): the fast paths' lists
 *   tc_cap[c]   the size of tc[c] now: hk_tc_cap(c), plus what the class
 *               borrowed from the heap's growth budget (tc_grow_left) when
 *               it overflowed after serving mallocs since its last
 *               overflow (tc_mark: a burst of frees alone does not grow
 *               it), doubling it instead of flushing while the budget
 *               lasts (hk_heap_tc_flush); tc_gc halves the growth
 *               of a class that did not overflow since its last visit
 *               (tc_hot) and returns it to the budget, and trims the
 *               older half of a class with no cache hit since then
 *               (tc_seen)
 *   own[i]      the owned-chunk cache: the address of a SuperSlab this heap
 *               owns whose chunk number (address >> 21) is i modulo
 *               HK_OWN_SLOTS, or HK_OWN_NONE. Free's one ownership test
 *               (core/heap.h). Never names a SuperSlab the heap does not
 *               own: an entry is written when one joins the heap and
 *               cleared when it leaves (retired, or abandoned at exit), all
 *               by the owner itself; a SuperSlab evicted by a neighbour is
 *               noted again by its next free
 *   cur[c]      the slab the malloc fast path pops from; never NULL: a heap
 *               with nothing points at hk_slab_empty, whose lists are empty
 *   kept[c]     one slab of class c whose blocks all came back, kept
 *               carved and listed for its class for the decommit delay
 *               (kept_ms[c]: since when) instead of released at once: a
 *               class whose live count swings around a slab boundary
 *               would otherwise release a slab (one pass over its blocks'
 *               key words, hk_slab_confirm_empty) and bind and carve a
 *               fresh one (touching every block again) on every swing
 *   partial[c]  slabs of class c with free blocks, other than cur[c], oldest
 *               first: a slab that became PARTIAL long ago has gathered the
 *               most frees since, so it refills cur for longest
 *   bucket[b]   owned SuperSlabs whose address hashes to bucket b
 *   pend_*      the pending set: senders set a bucket's bit when their push
 *               made one of its queues non-empty; the owner clears a bit
 *               before draining that bucket's queues (no lost wake-up)
 * A dead thread's heap is retired through the epoch (core/heap.c), since a
 * sender that read a stale owner may still set a pending bit in it; after
 * the grace period it is pooled for the next thread or unmapped.
 *   erec        this thread's ck_epoch record (epoch/epoch.h)
 *   spare[k]    one empty SuperSlab of kind k kept instead of retired
 *               (hysteresis), or NULL; it stays on the bucket and avail lists
 *   purge_at    earliest decommit deadline of an owned dirty slab; 0: none
 *   tick        allocation slow paths since the last look at purge_at
 *   stats       counters not yet merged into the process-wide ones */
typedef struct hk_heap {
  hk_tcache tc[HK_NCLASSES];
  uint32_t tc_gc;                  /* the class the next tick trims */
  uintptr_t own[HK_OWN_SLOTS];     /* owned SuperSlabs' addresses, direct-mapped */
  hk_slab *cur[HK_NCLASSES];
  hk_slab *partial[HK_NCLASSES];      /* FIFO: head is the oldest */
  hk_slab *partial_tail[HK_NCLASSES];
  hk_slab *kept[HK_NCLASSES];         /* an emptied slab kept for its class, or NULL */
  uint64_t kept_ms[HK_NCLASSES];      /* when it emptied */
  uint16_t tc_cap[HK_NCLASSES];       /* each class's cache size now (see tc_hot) */
  uint32_t tc_mark[HK_NCLASSES];      /* class c's cache hits at its last overflow */
  uint32_t tc_seen[HK_NCLASSES];      /* class c's cache hits when tc_gc last came by */
  uint64_t tc_hot;                    /* bit c: class c's cache overflowed since tc_gc last came by */
  uint32_t tc_grow_left;              /* bytes of HK_TC_GROW_BYTES lent to no class */
  hk_superslab *avail[HK_KINDS];
  hk_outbox_slot outbox[HK_OUTBOX_SLOTS];
  uint32_t outbox_used;            /* bitmask of non-empty outbox slots */
  uint32_t outbox_units;           /* what they hold, in HK_OUTBOX_UNITS units */
  uint32_t stat_chains;            /* remote pushes not yet added to the */
  uint32_t stat_blocks;            /* global counters (see hk_remote_stats_flush) */
  bool live;                       /* owned by a running thread */
  uint32_t tick;                   /* plus HK_TICK_PROF while the profiler samples (malloc_slow.c) */
  uint64_t purge_at;
  struct ck_epoch_record *erec;
  hk_superslab *spare[HK_KINDS];
  _Atomic uintptr_t stack_next;    /* link on the global heap pool */
  hk_retired retire;               /* the epoch link (core/heap.c) */
  hk_heap_stats stats;             /* owner-only; see hk_heap_stats */
  /* The profiler's countdown per class (prof/sample.c), owner-only: the
   * class's sampled allocation is the one that runs its ticker out with
   * prof_after[c] == 0; otherwise prof_after[c] allocations follow the
   * ticker's window before it. prof_armed: drawn since profiling began.
   * prof_credit: the pops of the windows set since the slow path's
   * periodic work last ran on a ticker's run-out; prof_aside: bit c, class
   * c's slab list was set aside and its miss is still to come
   * (api/malloc_slow.c). */
  uint32_t prof_after[HK_NCLASSES];
  uint32_t prof_credit;
  uint64_t prof_aside;
  bool prof_armed;
#ifdef HK_HARDENED
  uint64_t secret;                 /* encodes the thread caches' links (core/block.h) */
  uint64_t canary_secret;          /* hk_harden_secret(), for the fast paths' canaries (core/harden.h) */
  bool quarantine;                 /* HAKMEM_QUARANTINE is on (false in hk_heap_empty) */
  hk_block *q_head, *q_tail;       /* the quarantine, oldest first (api/quarantine.c) */
  size_t q_bytes;                  /* what it holds, in class sizes */
#endif
  _Alignas(HK_CACHE_LINE) _Atomic uint64_t pend_summary;
  _Atomic uint64_t pend_words[HK_PEND_WORDS];
  _Alignas(HK_CACHE_LINE) hk_superslab *bucket[HK_PEND_BUCKETS];
} hk_heap;

/* A large allocation's header: at the start of its key page, HK_LARGE_HDR
 * bytes below the user pointer (or a page below an over-aligned one); the
 * page map marks that page LIVE (large/large.c, core/addrmap.h). Written
 * by its owner only (allocation, realloc in place or by move). */
typedef struct hk_large {
  uint64_t magic;
  void *user;
  size_t usable;     /* bytes from user to the end of the mapping */
  void *map_base;
  size_t map_size;
  uint64_t sampled;  /* 1: a profiler sample (prof/table.c holds its record);
                        its free and its move tell the profiler */
#ifdef HK_HARDENED
  uint64_t seal;     /* the fields above and the header's address, hashed
                        with the process secret (large/large.c) */
#endif
} hk_large;

#define HK_LARGE_MAGIC 0x48414b4d454d4c47ull /* "HAKMEMLG" */
/* Bytes from an ordinary large block's header to its user pointer: a cache
 * line, so large blocks are 64-byte aligned. */
#define HK_LARGE_HDR ((size_t)64)
_Static_assert(sizeof(hk_large) <= HK_LARGE_HDR, "a large block's header fits below its user pointer");

#endif /* HK_TYPES_H */
