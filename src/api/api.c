/* api.c -- the hak_ malloc family: fast paths inline here, everything else
 * one call away. In libhakmem.so, api/override.inc adds the malloc-family
 * exports as aliases of these functions. */
#include "hakmem.h"
#include "hakmem_testing.h"

#include <errno.h>
#include <string.h>

#include "api/collect.h"
#include "api/quarantine.h"
#include "api/report.h"
#include "api/thread.h"
#include "core/addrmap.h"
#include "core/harden.h"
#include "core/heap.h"
#include "core/sizeclass.h"
#include "large/large.h"
#include "os/os.h"
#include "prof/prof.h"
#include "remote/remote.h"
#include "util/diag.h"
#include "util/options.h"
#include "util/stats.h"

#define HK_EXPORT __attribute__((visibility("default")))

/* ---- large requests the OS refused ------------------------------------------
 * A large mapping that fails has already had the caches' address space given
 * back and been tried again (os.h). What else the process holds back -- the
 * calling thread's cached blocks, empty slabs and empty SuperSlabs, which
 * stay mapped through the decommit delay -- only a collect gives back, and a
 * collect must not run inside a heap operation: here, between the API's
 * calls, none is running. So a refused large request collects once and is
 * tried again, as glibc would serve it from what the program freed
 * (test_limits: memory_the_thread_freed_serves_a_large_block_under_rlimit_as).
 * At most one collect per HK_REFUSED_COLLECT_MS per thread (a collect
 * gives back what the calling thread holds): a program that probes with
 * sizes no machine backs (halving from 2^45) pays for one, not one per
 * probe; and none for a size no mapping could take.
 * errno: as the call found it when the retry succeeds (os.h), else ENOMEM. */
#define HK_REFUSED_COLLECT_MS 100

/* One try at a large block (a profiler sample or not). */
HK_INLINE void *hk_large_try(size_t size, size_t align, bool zero) {
  return zero ? hk_prof_large_calloc(size) : hk_prof_large_alloc(size, align);
}

static HK_NOINLINE void *hk_large_refused(size_t size, size_t align, bool zero, int saved) {
  static __thread uint64_t last __attribute__((tls_model("initial-exec"))); /* this thread's last collect */
  uint64_t now = hk_os_now_ms();
  if (size > PTRDIFF_MAX || (last != 0 && now - last < HK_REFUSED_COLLECT_MS)) return NULL;
  last = now;
  if (hk_collect() == 0) return NULL;
  void *p = hk_large_try(size, align, zero);
  if (p != NULL) errno = saved;
  return p;
}

/* A large block, and the retry above. Out of line: the medium classes'
 * path, which tail-calls it, keeps no frame. */
static HK_NOINLINE void *hk_large_get(size_t size, size_t align, bool zero) {
  int saved = errno;
  void *p = hk_large_try(size, align, zero);
  return HK_LIKELY(p != NULL) ? p : hk_large_refused(size, align, zero, saved);
}

/* ---- the hardened build's canary (core/harden.h) -------------------------
 * HK_PADDED(n): what to ask the size classes for to serve n; HK_GUARDED(p,
 * n): a block just allocated for n gets its canary; HK_REQUESTED(p, room):
 * the size a live block was asked for, its canary checked. The default
 * build: n, p and room, so its paths are as without the canary. */
#ifdef HK_HARDENED
/* The room of a live block of ours: its class size, or a large block's
 * usable size. */
static size_t hk_room_of_live(const void *p) {
  if (hk_addrmap_in_superslab(p)) return hk_slab_block_size(hk_slab_of_block(p));
  return hk_large_usable(p);
}

static void *hk_guarded(void *p, size_t n) {
  if (p == NULL) return NULL;
  hk_harden_init(); /* a large block may come before any thread's set-up */
  hk_canary_set(p, n, hk_room_of_live(p), hk_harden_secret());
  return p;
}
#define HK_PADDED(n) hk_canary_pad(n)
#define HK_GUARDED(p, n) hk_guarded((p), (n))
#define HK_REQUESTED(p, room) hk_canary_check((p), (room))
#else
#define HK_PADDED(n) (n)
#define HK_GUARDED(p, n) (p)
#define HK_REQUESTED(p, room) (room)
#endif

/* ---- malloc ------------------------------------------------------------ */

#ifdef HK_HARDENED
/* The slow path of hk_heap_malloc_as (core/heap.h): the block, with its
 * canary for a request of r. */
HK_NOINLINE void *hk_malloc_slow_served(hk_heap *h, unsigned cls_x16, size_t r) {
  void *p = hk_malloc_slow_x16(h, cls_x16);
  if (HK_LIKELY(p != NULL)) hk_canary_set_served(p, r, hk_class_size_of_x16(cls_x16), hk_harden_secret());
  return p;
}

/* The medium classes and large blocks; r is hk_canary_request(n). The
 * class is known here: no lookup of the room. */
static HK_NOINLINE void *hk_malloc_generic(size_t n) {
  size_t r = hk_canary_request(n);
  if (r <= HK_MAX_SMALL - HK_CANARY_MIN) return hk_heap_malloc_as(hk_tls_heap, hk_class_medium(r + HK_CANARY_MIN), r);
  return hk_guarded(hk_large_get(hk_canary_pad(n), 16, false), n);
}

/* malloc's body, also inlined into operator new (api/operator_new.inc). */
HK_INLINE void *hk_malloc_inline(size_t n) {
  size_t r = hk_canary_request(n);
  if (HK_LIKELY(r <= HK_TABLE_MAX - HK_CANARY_MIN)) /* no overflow check of the pad needed */
    return hk_heap_malloc_x16(hk_tls_heap, hk_class_x16_small(r + HK_CANARY_MIN), r);
  return hk_malloc_generic(n);
}
#else
static HK_NOINLINE void *hk_malloc_generic(size_t n) {
  if (n <= HK_MAX_SMALL) return hk_heap_malloc(hk_tls_heap, hk_class_medium(n));
  return hk_large_get(n, 16, false);
}

/* malloc's body, also inlined into operator new (api/operator_new.inc). */
HK_INLINE void *hk_malloc_inline(size_t n) {
  if (HK_LIKELY(n <= HK_TABLE_MAX)) return hk_heap_malloc_x16(hk_tls_heap, hk_class_x16_small(n), HK_AS_IS);
  return hk_malloc_generic(n);
}
#endif

HK_EXPORT void *hak_malloc(size_t n) { return hk_malloc_inline(n); }

/* ---- free -------------------------------------------------------------- */

/* A local free that passed the block checks. Hardened builds check the
 * canary first and mark the tail freed (a second free is a double free),
 * and with HAKMEM_QUARANTINE the block waits in the quarantine. */
#ifdef HK_HARDENED
HK_INLINE void hk_free_local_hardened(hk_heap *h, hk_slab *s, void *p) {
  /* The cache first: the canary's stores may alias s, so s->tc_off read
   * after them would be loaded a second time. */
  hk_tcache *t = hk_heap_tc_of(h, s);
  size_t room = hk_slab_block_size(s);
  if (HK_UNLIKELY(!hk_canary_free(p, room, h->canary_secret))) {
    hk_canary_free_fail(p, room); /* already free (reported), or an overflow */
    return;
  }
  if (HK_UNLIKELY(h->quarantine)) {
    hk_quarantine_put(h, p, room);
    return;
  }
  hk_heap_free_to(h, t, p);
}
#define HK_FREE_LOCAL(h, s, p) hk_free_local_hardened((h), (s), (p))

/* A free of another thread's block: true when it was dealt with here
 * (reported, or taken into our quarantine). A live block is at a block
 * boundary of its slab, whose class is fixed while the block is live, so
 * anything else is reported now (in hardened builds it could lie in the
 * SuperSlab's tail guard page, which the remote push would write) and a
 * block at a boundary has its canary checked; the owner checks the rest
 * when it reclaims. */
static bool hk_free_remote_hardened(hk_heap *h, hk_slab *s, void *p) {
  if (!hk_slab_is_boundary(s, p)) {
    hk_bad_free(p, "not the start of a block", 0);
    return true;
  }
  size_t room = hk_slab_block_size(s);
  /* The global secret: h may be hk_heap_empty (a thread without a heap). */
  if (HK_UNLIKELY(!hk_canary_free(p, room, hk_harden_secret()))) {
    hk_canary_free_fail(p, room); /* already free (reported), or an overflow */
    return true;
  }
  if (HK_LIKELY(!h->quarantine)) return false; /* hk_heap_empty's is false */
  hk_quarantine_put(h, p, room);
  return true;
}
#define HK_FREE_REMOTE_TAKEN(h, s, p) hk_free_remote_hardened((h), (s), (p))
#else
#define HK_FREE_LOCAL(h, s, p) hk_heap_free_tc((h), (s), (p))
#define HK_FREE_REMOTE_TAKEN(h, s, p) false
#endif

/* A pointer into one of our own SuperSlabs that failed the fast path's
 * checks: a bad pointer, or a double free of the thread cache's head. */
static HK_NOINLINE void hk_free_own_suspect(hk_heap *h, hk_slab *s, void *p) {
  if (!hk_slab_is_block(s, p)) hk_bad_free(p, "not the start of a block", 0);
  else if (s->used == 0 || hk_heap_block_is_free(h, s, p)) hk_bad_free(p, "block already free", 1);
  else HK_FREE_LOCAL(h, s, p);
}

/* A remote free by a thread without a heap: set one up (api/thread.c). */
static HK_NOINLINE void hk_free_remote_first(hk_superslab *ss, void *p) {
  hk_remote_free(hk_thread_heap_for_free(), ss, p);
}

/* p (a block of s, one of h's SuperSlabs) is not free as far as the fast
 * path can tell: the default build compares it with the thread cache's
 * head; hardened builds leave it to the canary's tail, which free marks
 * (hk_canary_free: every double free, that head's included). */
HK_INLINE bool hk_free_looks_live(hk_heap *h, const hk_slab *s, const void *p) {
#ifdef HK_HARDENED
  (void)h;
  (void)s;
  (void)p;
  return true;
#else
  return p != hk_heap_tc_of(h, s)->head;
#endif
}

/* A free of p, in a SuperSlab h owns; s is p's slab or a view of it
 * (hk_slab_view_of). The local path, or the suspect one with the slab
 * itself. No load of the block itself (see hk_heap_malloc): the double free
 * caught here is the block at the head of the thread cache (hardened
 * builds: every one, by the tail that free marks). */
HK_INLINE void hk_free_owned(hk_heap *h, hk_slab *s, void *p) {
  if (HK_LIKELY(hk_slab_is_block(s, p) && hk_free_looks_live(h, s, p))) {
    HK_FREE_LOCAL(h, s, p);
    return;
  }
  hk_free_own_suspect(h, hk_slab_of_block(p), p);
}

/* A SuperSlab block that is not a valid local free: someone else's block
 * (the remote path), or a bad pointer into our own. The remote case makes no
 * call but tail calls: no stack frame. p's descriptor is taken as a view
 * (hk_slab_view_of: a shift and a mask, where the slab itself needs the
 * kind's arithmetic), and only by the branches that read one: every field
 * they read (hk_free_owned's; the hardened build's boundary and class) is
 * one a view carries, and the default build's remote case reads none. */
static HK_NOINLINE void hk_free_nonlocal(hk_superslab *ss, void *p) {
  hk_heap *h = hk_tls_heap;
  if (HK_UNLIKELY(hk_superslab_owner(ss) == h)) {
    hk_heap_own_note(h, ss); /* evicted from the cache by a neighbour */
    hk_free_owned(h, hk_slab_view_of(p), p);
    return;
  }
  /* Another thread's slab: its metadata is not ours to read. Reject what
   * needs no metadata (the header page, misalignment); the owner checks the
   * rest when it reclaims. */
  if (((uintptr_t)p & 15) != 0 || ((uintptr_t)p & HK_SS_MASK) < HK_SS_HEADER) {
    hk_bad_free(p, "not the start of a block", 0);
    return;
  }
  if (HK_FREE_REMOTE_TAKEN(h, hk_slab_view_of(p), p)) return;
  if (HK_UNLIKELY(!h->live)) {
    hk_free_remote_first(ss, p);
    return;
  }
  hk_remote_free(h, ss, p);
}

/* Large blocks, tombstones and pointers that are not ours. */
static HK_NOINLINE void hk_free_other(void *p) {
#ifdef HK_HARDENED
  size_t room = hk_large_usable(p); /* 0: not a live large block's start; large.c reports it */
  if (room != 0) hk_canary_check(p, room);
#endif
  if (hk_large_free(p)) return;
  uintptr_t e = hk_addrmap_get(p);
  if ((e & HK_MAP_DEAD) && (e & ~HK_MAP_TAGS) == ((uintptr_t)p & ~(uintptr_t)HK_SS_MASK))
    hk_bad_free(p, "block of a retired SuperSlab: already free", 1); /* every block was free when it retired */
  else hk_bad_free(p, "not allocated by hakmem", 0);
}

/* p is in no SuperSlab of this thread's owned-chunk cache: NULL (tested
 * first: programs free NULL often, and the address-map lookup and the
 * large-block test before it cost free(NULL) 19 more instructions, 40
 * instead of 21), another thread's block, one of ours evicted from the
 * cache, or no SuperSlab block at all. */
static HK_NOINLINE void hk_free_uncached(void *p) {
  if (p == NULL) return;
  if (HK_LIKELY(hk_addrmap_in_superslab(p))) hk_free_nonlocal(hk_superslab_of(p), p);
  else hk_free_other(p);
}

HK_EXPORT void hak_free(void *p) {
  /* The descriptor comes from p alone (the slab's or a view of it), hidden
   * from the compiler so its loads need not wait for the ownership test and
   * the CPU overlaps the two. */
  hk_slab *s = hk_slab_view_of(p);
  __asm__("" : "+r"(s));
  hk_heap *h = hk_tls_heap;
  /* One load and compare says both "a SuperSlab block" and "ours": the
   * cache names only SuperSlabs this heap owns (hk_heap.own). */
  if (HK_LIKELY(hk_heap_owns_chunk(h, hk_chunk_of(p)))) {
    hk_free_owned(h, s, p);
    return;
  }
  hk_free_uncached(p);
}

/* ---- sizes ------------------------------------------------------------- */

/* hk_room past its fast case: another thread's block, one of ours evicted
 * from the owned-chunk cache, a large block, NULL or a bad pointer. */
static HK_NOINLINE size_t hk_room_slow(const void *p) {
  if (p == NULL) return 0;
  uintptr_t e = hk_addrmap_get(p);
  if (hk_entry_is_ss(e)) {
    hk_superslab *ss = hk_superslab_of(p);
    hk_slab *s = hk_slab_of_block(p);
    /* start, magic and the class are fixed while any block of the slab is
     * live; `carved_key` is the owner's to read. */
    bool ok = hk_superslab_owner(ss) == hk_tls_heap ? hk_slab_is_block(s, p) : hk_slab_is_boundary(s, p);
    if (ok) return hk_slab_block_size(s);
    hk_bad_free(p, "not the start of a block", 0);
    return 0;
  }
  size_t u = hk_large_usable(p);
  if (u != 0) return u;
  hk_bad_free(p, "not allocated by hakmem", 0);
  return 0;
}

/* The room of p (its class size, or a large block's usable size), 0 for
 * NULL; a bad pointer goes through the bad-free policy and reports 0.
 * malloc_usable_size is as hot as malloc and free in programs that count
 * their memory by it (redis calls it on every zmalloc and zfree: 1.03 M
 * calls against 0.41 M mallocs and 0.46 M frees under redis-benchmark),
 * so a block of a SuperSlab this thread owns takes free's fast test: the
 * owned-chunk cache, then the block-start test on p's descriptor or view
 * (hak_free), with no address-map lookup and no owner word. NULL never
 * passes it (HK_OWN_NONE). */
HK_INLINE size_t hk_room(const void *p) {
  hk_slab *s = hk_slab_view_of(p);
  if (HK_LIKELY(hk_heap_owns_chunk(hk_tls_heap, hk_chunk_of(p)) && hk_slab_is_block(s, p)))
    return hk_slab_block_size(s);
  return hk_room_slow(p);
}

/* Usable size of p: its room, or in hardened builds the size it was asked
 * for (the canary follows it), as scudo reports. */
static size_t hk_usable(const void *p) {
  size_t room = hk_room(p);
  return room == 0 ? 0 : HK_REQUESTED(p, room);
}

HK_EXPORT size_t hak_usable_size(const void *p) { return hk_usable(p); }

HK_EXPORT bool hak_owns(const void *p) {
  uintptr_t e = hk_addrmap_get(p);
  return (e != 0 && (e & HK_MAP_DEAD) == 0) || hk_large_covers(p);
}

/* ---- calloc / realloc -------------------------------------------------- */

HK_EXPORT void *hak_calloc(size_t n, size_t size) {
  size_t total;
  if (HK_UNLIKELY(__builtin_mul_overflow(n, size, &total))) {
    hk_trace_failure(SIZE_MAX, "size class threshold: n * size overflows");
    errno = ENOMEM;
    return NULL;
  }
  if (total > HK_MAX_SMALL) /* zero pages, or cleared when reused */
    return HK_GUARDED(hk_large_get(HK_PADDED(total), 16, true), total);
  void *p = hak_malloc(total);
  if (p != NULL) memset(p, 0, total); /* small blocks may be reused */
  return p;
}

HK_EXPORT void *hak_realloc(void *p, size_t n) {
  if (p == NULL) return hak_malloc(n);
  if (n == 0) { /* glibc: free and return NULL */
    hak_free(p);
    return NULL;
  }
  size_t room = hk_room(p);
  if (room == 0) return NULL; /* bad pointer: reported by hk_room */
  size_t old = HK_REQUESTED(p, room);
  if (n > PTRDIFF_MAX) {
    errno = ENOMEM;
    return NULL;
  }
  /* In place whenever it fits, as glibc: programs rely on
   * realloc(p, malloc_usable_size(p)) == p and on shrinking never moving. */
  size_t want = HK_PADDED(n);
  if (room > HK_MAX_SMALL) {
    if (hk_large_resize_in_place(p, want)) return HK_GUARDED(p, n);
    void *q = hk_large_grow(p, want); /* mremap: the pages move, not the bytes */
    if (q != NULL) return HK_GUARDED(q, n);
  } else if (want <= room) {
    return HK_GUARDED(p, n);
  }
  void *q = hak_malloc(n);
  if (q == NULL) return NULL; /* p untouched */
  memcpy(q, p, n < old ? n : old);
  hak_free(p);
  return q;
}

HK_EXPORT void *hak_reallocarray(void *p, size_t n, size_t size) {
  size_t total;
  if (__builtin_mul_overflow(n, size, &total)) {
    errno = ENOMEM;
    return NULL;
  }
  if (p == NULL) return hak_malloc(total);
  return hak_realloc(p, total);
}

/* ---- aligned ----------------------------------------------------------- */

/* The class that serves n bytes aligned to align (a power of two), or
 * HK_NCLASSES when a large mapping does. Small alignments come from a class
 * whose size is a multiple of the alignment (slab starts are page-aligned);
 * the rest are large mappings aligned as asked. The sized-delete check
 * (api/operator_new.inc) derives the usable size a request gets from it. */
static unsigned hk_class_for(size_t align, size_t n) {
  if (n > HK_MAX_SMALL) return HK_NCLASSES;
  if (align <= 16) return hk_class_of(n);
  if (align > HK_PAGE_SIZE) return HK_NCLASSES;
  unsigned c = hk_class_of(n < align ? align : n);
  while (c < HK_NCLASSES && (hk_class_size[c] & (align - 1)) != 0) c++;
  return c;
}

/* align: a power of two. Sizes above PTRDIFF_MAX reach hk_large_alloc,
 * which fails them with ENOMEM and the trace. */
static void *hk_malloc_aligned(size_t align, size_t n) {
  if (align <= 16) return hak_malloc(n);
  size_t want = HK_PADDED(n);
  unsigned c = hk_class_for(align, want);
  if (c < HK_NCLASSES) {
    void *p = hk_heap_malloc(hk_tls_heap, c);
    /* A profiler sample is a large block, 64-byte aligned (prof/sample.c). */
    if (HK_UNLIKELY(((uintptr_t)p & (align - 1)) != 0)) p = hk_prof_realign(p, hk_class_size[c], align);
    return HK_GUARDED(p, n);
  }
  return HK_GUARDED(hk_large_get(want, align, false), n);
}

HK_EXPORT void *hak_aligned_alloc(size_t align, size_t n) {
  if (align == 0 || (align & (align - 1)) != 0) {
    errno = EINVAL;
    return NULL;
  }
  return hk_malloc_aligned(align, n);
}

HK_EXPORT int hak_posix_memalign(void **out, size_t align, size_t n) {
  if (align < sizeof(void *) || (align & (align - 1)) != 0 || align % sizeof(void *) != 0) return EINVAL;
  int saved = errno;
  void *p = hk_malloc_aligned(align, n);
  errno = saved;
  if (p == NULL) return ENOMEM;
  *out = p;
  return 0;
}

HK_EXPORT void *hak_memalign(size_t align, size_t n) {
  /* glibc: a non-power-of-two alignment is rounded up to the next one. */
  if (align > ((size_t)1 << 62)) { /* no such alignment can be satisfied */
    errno = ENOMEM;
    return NULL;
  }
  if (align == 0) align = 1;
  if ((align & (align - 1)) != 0) align = (size_t)1 << (64 - __builtin_clzl(align));
  return hk_malloc_aligned(align, n);
}

HK_EXPORT void *hak_valloc(size_t n) { return hk_malloc_aligned(HK_PAGE_SIZE, n); }

HK_EXPORT void *hak_pvalloc(size_t n) {
  size_t rounded = hk_page_up(n);
  if (rounded < n) {
    errno = ENOMEM;
    return NULL;
  }
  return hk_malloc_aligned(HK_PAGE_SIZE, rounded == 0 ? HK_PAGE_SIZE : rounded);
}

/* ---- maintenance and statistics ----------------------------------------- */

HK_EXPORT void hak_thread_flush(void) {
  hk_heap *h = hk_tls_heap;
  if (!h->live) return;
  HK_QUARANTINE_FLUSH(h);
  hk_heap_tc_flush_all(h); /* an idle thread's cached blocks must not pin their slabs */
  hk_outbox_flush(h);
  hk_remote_collect(h);
  hk_remote_stats_flush(h);
  hk_heap_stats_merge(h);
}

HK_EXPORT void hak_malloc_stats(void) { hk_report_print(); }

HK_EXPORT int hak_mallopt(int param, int value) {
  (void)param;
  (void)value;
  return 1; /* accepted; HAKMEM tunes itself */
}

HK_EXPORT void hak_stats_get(hak_stats_t *out) { hk_report_snapshot(out); }

HK_EXPORT int hak_stats_json(char *buf, size_t len) { return hk_report_json(buf, len); }

HK_EXPORT void hak_testing_inject_map_failures(unsigned per_million) { hk_os_inject_failures(per_million); }
HK_EXPORT void hak_testing_inject_decommit_failures(unsigned per_million) {
  hk_os_inject_decommit_failures(per_million);
}

#ifdef HK_OVERRIDE
#include "api/override.inc"
#include "api/operator_new.inc"
#endif
