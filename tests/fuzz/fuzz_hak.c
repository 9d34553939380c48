/* fuzz_hak.c -- libFuzzer target: the hak_ API against a shadow model.
 *
 * The fuzz input is a program: a stream of operations, each an opcode byte
 * and its operands (decode_op below). Bit 7 of the opcode runs the
 * operation on a persistent worker thread instead of the main thread, so
 * blocks allocated on one thread are freed, reallocated, measured and
 * flushed on the other (remote frees, outbox flushes, remote reclaim), and
 * a restart operation lets the worker exit with blocks live (abandoned
 * SuperSlabs, adoption, frees after the owner exited). The handoff is
 * synchronous -- the main thread waits for the worker to finish each
 * operation -- so an input replays the same sequence of calls every time.
 *
 * The shadow model holds every live block (up to NSLOTS, LIVE_CAP bytes):
 * its address, request, usable size and a tag; the block's whole usable
 * size is filled with a pattern derived from the tag and the offset.
 * Checked on every call (CONTRACT.md "Required behaviour"):
 *   - a success is aligned to 16 and to the alignment asked; valloc and
 *     pvalloc to a page; memalign to the next power of two;
 *   - hak_usable_size >= the request (pvalloc: the request rounded up to a
 *     page), the same value for the block's whole life, on either thread;
 *     hak_owns is true;
 *   - no two live blocks overlap ([p, p + usable), a sorted interval array);
 *   - every byte of every live block keeps its pattern until the block is
 *     freed (checked before each free and realloc and by sweeps);
 *   - realloc keeps min(old usable, new size) bytes and stays in place when
 *     the block already fits; calloc's request is zero;
 *   - errno is unchanged by every success and by free;
 *   - the error cases (sizes past PTRDIFF_MAX, overflowing products, bad
 *     alignments) give NULL or the error code with errno as glibc, and a
 *     failed realloc leaves its block as it was;
 *   - no call is reported as an invalid free (hak_stats_get).
 * A violation prints one line naming the operation and aborts, which
 * libFuzzer reports as a crash with the input saved. ASan and UBSan check
 * HAKMEM's own code meanwhile (the asan preset).
 *
 * Every input starts with an empty shadow and ends by freeing what is left
 * and flushing both threads; HAKMEM's caches and SuperSlabs carry over from
 * input to input, as they would in a long-running program. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hakmem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum {
  NSLOTS = 1024,           /* live blocks at most */
  PAGE = 4096,
  ERRNO_MARK = 0x4841,     /* errno before every call that must keep it */
  WORKER_BIT = 0x80,
};
#define LIVE_CAP ((size_t)64 << 20) /* usable bytes live at most */
/* Bytes filled or checked per input at most, beyond what frees check:
 * bursts of megabyte blocks or sweeps of a full live set would otherwise
 * make one input run for minutes. */
#define WORK_CAP ((size_t)1 << 30)
#define MAX_SMALL ((size_t)128 << 10) /* HAKMEM's largest slab block (HK_MAX_SMALL) */

/* ---- the input ------------------------------------------------------------ */

typedef struct {
  const uint8_t *d;
  size_t n, i; /* i > n: an operand ran past the end */
} reader;

static uint8_t rd_u8(reader *r) {
  uint8_t v = r->i < r->n ? r->d[r->i] : 0;
  r->i++;
  return v;
}

static uint16_t rd_u16(reader *r) {
  uint16_t lo = rd_u8(r);
  return (uint16_t)(lo | (uint16_t)rd_u8(r) << 8);
}

static uint32_t rd_u32(reader *r) {
  uint32_t lo = rd_u16(r);
  return lo | (uint32_t)rd_u16(r) << 16;
}

/* Sizes the allocator treats differently, and their neighbours. */
static const size_t edge_sizes[] = {
  0, 1, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 255, 256, 257,
  511, 512, 513, 1023, 1024, 1025, 2047, 2048, 2049, 4095, 4096, 4097, 8191, 8192,
  8193, 16383, 16384, 16385, 32767, 32768, 32769, 65535, 65536, 65537,
  MAX_SMALL - 16, MAX_SMALL - 1, MAX_SMALL, MAX_SMALL + 1, MAX_SMALL + 4096,
  ((size_t)2 << 20) - 4096, ((size_t)2 << 20) - 1, (size_t)2 << 20, ((size_t)2 << 20) + 1,
  ((size_t)4 << 20) - 4096, (size_t)4 << 20, ((size_t)8 << 20) - 4096, (size_t)8 << 20,
};

/* Mostly small sizes; one in 16 large (128 KiB to 16 MiB + 128 KiB,
 * log-spread: one in 16 of them from 8 MiB, where HAKMEM asks for huge
 * pages); one in 16 from edge_sizes. */
static size_t rd_size(reader *r) {
  uint8_t band = rd_u8(r);
  switch (band >> 4) {
    case 6: case 7: case 8: case 9: return rd_u16(r) % 1025;
    case 10: case 11: return rd_u16(r) % 8193;
    case 12: return rd_u32(r) % (MAX_SMALL + 1);
    case 13: return edge_sizes[rd_u8(r) % (sizeof edge_sizes / sizeof edge_sizes[0])];
    case 14: {
      unsigned shift = 17 + rd_u8(r) % 8;
      return MAX_SMALL + rd_u32(r) % ((uint32_t)1 << shift);
    }
    default: return rd_u8(r);
  }
}

/* Powers of two: mostly up to 64, then up to a page, rarely up to 64 KiB. */
static size_t rd_align(reader *r) {
  uint8_t a = rd_u8(r);
  if (a < 160) return (size_t)1 << (a % 7);
  if (a < 240) return (size_t)1 << (a % 13);
  return (size_t)1 << (a % 17);
}

typedef enum {
  OP_MALLOC,
  OP_CALLOC,
  OP_REALLOC,
  OP_REALLOCARRAY,
  OP_FREE,
  OP_POSIX_MEMALIGN,
  OP_ALIGNED_ALLOC,
  OP_MEMALIGN,
  OP_VALLOC,
  OP_PVALLOC,
  OP_USABLE,
  OP_SWEEP,
  OP_FLUSH,
  OP_COLLECT,
  OP_BURST_ALLOC,
  OP_BURST_FREE,
  OP_RESTART_WORKER,
  OP_BAD_ARGS,
  OP_COUNT
} op_kind;

static const char *const op_names[OP_COUNT] = {
  "malloc", "calloc", "realloc", "reallocarray", "free", "posix_memalign",
  "aligned_alloc", "memalign", "valloc", "pvalloc", "usable_size", "sweep",
  "thread_flush", "collect", "burst_alloc", "burst_free", "restart_worker", "bad_args",
};

typedef struct {
  op_kind kind;
  bool on_worker;
  unsigned slot, count, sub;
  size_t size, align;
} op;

/* One operation, or false when the input ends inside it. Layout:
 *   opcode (bit 7: on the worker; the rest modulo OP_COUNT), then
 *   malloc valloc pvalloc:          slot16 size
 *   calloc reallocarray:            slot16 count8 size (element = size / count)
 *   realloc:                        slot16 size
 *   free usable_size:               slot16
 *   posix_memalign aligned_alloc:   slot16 align size
 *   memalign:                       slot16 align extra8 size (align + extra % align)
 *   burst_alloc:                    slot16 count8 (+1 blocks) size
 *   burst_free:                     slot16 count8 (+1 slots)
 *   collect:                        sub8 (bit 0: hak_malloc_trim)
 *   bad_args:                       slot16 sub8 extra8
 *   sweep thread_flush restart_worker: nothing. */
static bool decode_op(reader *r, op *o) {
  uint8_t code = rd_u8(r);
  memset(o, 0, sizeof *o);
  o->kind = (op_kind)((code & ~WORKER_BIT) % OP_COUNT);
  o->on_worker = (code & WORKER_BIT) != 0;
  switch (o->kind) {
    case OP_MALLOC: case OP_VALLOC: case OP_PVALLOC: case OP_REALLOC:
      o->slot = rd_u16(r) % NSLOTS;
      o->size = rd_size(r);
      break;
    case OP_CALLOC: case OP_REALLOCARRAY: case OP_BURST_ALLOC:
      o->slot = rd_u16(r) % NSLOTS;
      o->count = rd_u8(r);
      o->size = rd_size(r);
      break;
    case OP_FREE: case OP_USABLE:
      o->slot = rd_u16(r) % NSLOTS;
      break;
    case OP_POSIX_MEMALIGN: case OP_ALIGNED_ALLOC:
      o->slot = rd_u16(r) % NSLOTS;
      o->align = rd_align(r);
      o->size = rd_size(r);
      break;
    case OP_MEMALIGN:
      o->slot = rd_u16(r) % NSLOTS;
      o->align = rd_align(r);
      o->align += rd_u8(r) % o->align; /* not always a power of two */
      o->size = rd_size(r);
      break;
    case OP_BURST_FREE:
      o->slot = rd_u16(r) % NSLOTS;
      o->count = rd_u8(r);
      break;
    case OP_COLLECT:
      o->sub = rd_u8(r);
      break;
    case OP_BAD_ARGS:
      o->slot = rd_u16(r) % NSLOTS;
      o->sub = rd_u8(r);
      o->count = rd_u8(r);
      break;
    case OP_SWEEP: case OP_FLUSH: case OP_RESTART_WORKER: case OP_COUNT:
      break;
  }
  return r->i <= r->n;
}

/* ---- failures ------------------------------------------------------------- */

static size_t op_index;      /* of the operation running, for the report */
static const op *op_running;

__attribute__((noreturn, format(printf, 1, 2))) static void fail(const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  const op *o = op_running;
  fprintf(stderr, "fuzz_hak: FAILED at operation %zu (%s%s, slot %u, size %zu, align %zu): %s\n", op_index,
          o != NULL ? op_names[o->kind] : "end of input", o != NULL && o->on_worker ? " on the worker" : "",
          o != NULL ? o->slot : 0, o != NULL ? o->size : 0, o != NULL ? o->align : 0, msg);
  abort();
}

/* The compiler must not reason about a block's size from the allocation
 * call's alloc_size attribute: the whole usable size is ours to write. */
static uint8_t *launder(void *p) {
  __asm__("" : "+r"(p));
  return p;
}

/* ---- the shadow ----------------------------------------------------------- */

typedef struct {
  uint8_t *p; /* NULL: the slot is empty */
  size_t req, usable;
  uint64_t tag;
} block;

static block slots[NSLOTS];
static uint16_t by_addr[NSLOTS]; /* the live slots, by ascending address */
static size_t nlive, live_bytes, work_bytes;
static uint64_t next_tag = 1;

/* Byte i of a block tagged t is byte i % 8 of word(t, i / 8): a shifted,
 * swapped or foreign byte shows. */
static inline __attribute__((always_inline)) uint64_t pattern_word(uint64_t tag, size_t k) {
  uint64_t x = tag * 0x9E3779B97F4A7C15ull + k * 0xD1B54A32D192ED03ull;
  return x ^ (x >> 29);
}

/* The loops over megabytes carry no instrumentation: HAKMEM's memory is not
 * ASan-poisoned, and their compares are no coverage worth steering by (with
 * them, the fuzzer spent most of its time in __sanitizer_cov_trace_cmp8). */
#define HK_PLAIN_LOOP __attribute__((no_sanitize("address", "coverage")))
typedef uint64_t __attribute__((may_alias)) word_alias; /* -fno-builtin: no memcpy for a word */

static inline __attribute__((always_inline)) uint8_t pattern_byte(uint64_t tag, size_t i) {
  return (uint8_t)(pattern_word(tag, i >> 3) >> ((i & 7) * 8));
}

HK_PLAIN_LOOP static void fill(const block *b, size_t from, size_t to) {
  size_t i = from;
  for (; i < to && (i & 7) != 0; i++) b->p[i] = pattern_byte(b->tag, i);
  for (; i + 8 <= to; i += 8) *(word_alias *)(b->p + i) = pattern_word(b->tag, i >> 3);
  for (; i < to; i++) b->p[i] = pattern_byte(b->tag, i);
}

/* The first offset in [from, to) that lost its pattern, or SIZE_MAX. */
HK_PLAIN_LOOP static size_t first_bad(const block *b, size_t from, size_t to) {
  size_t i = from;
  for (; i < to && (i & 7) != 0; i++)
    if (b->p[i] != pattern_byte(b->tag, i)) return i;
  for (; i + 8 <= to; i += 8)
    if (*(const word_alias *)(b->p + i) != pattern_word(b->tag, i >> 3)) break; /* the byte loop finds it */
  for (; i < to; i++)
    if (b->p[i] != pattern_byte(b->tag, i)) return i;
  return SIZE_MAX;
}

/* The first nonzero offset of p[0, n), or SIZE_MAX. */
HK_PLAIN_LOOP static size_t first_nonzero(const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != 0) return i;
  return SIZE_MAX;
}

static void verify(const block *b, size_t from, size_t to, const char *when) {
  size_t bad = first_bad(b, from, to);
  if (bad != SIZE_MAX)
    fail("%s: block %p (request %zu, usable %zu) changed at offset %zu: 0x%02x, expected 0x%02x", when,
         (void *)b->p, b->req, b->usable, bad, b->p[bad], pattern_byte(b->tag, bad));
}

/* Position of the first live block at or above p. */
static size_t addr_lower_bound(const uint8_t *p) {
  size_t lo = 0, hi = nlive;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if ((uintptr_t)slots[by_addr[mid]].p < (uintptr_t)p) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/* Enter slot s (p, usable filled in) into the address order; it must not
 * overlap its neighbours. */
static void shadow_insert(unsigned s) {
  const block *b = &slots[s];
  size_t at = addr_lower_bound(b->p);
  if (at > 0) {
    const block *prev = &slots[by_addr[at - 1]];
    if ((uintptr_t)prev->p + prev->usable > (uintptr_t)b->p)
      fail("new block [%p, +%zu) overlaps live block [%p, +%zu)", (void *)b->p, b->usable, (void *)prev->p,
           prev->usable);
  }
  if (at < nlive) {
    const block *next = &slots[by_addr[at]];
    if ((uintptr_t)b->p + b->usable > (uintptr_t)next->p)
      fail("new block [%p, +%zu) overlaps live block [%p, +%zu)", (void *)b->p, b->usable, (void *)next->p,
           next->usable);
  }
  memmove(&by_addr[at + 1], &by_addr[at], (nlive - at) * sizeof by_addr[0]);
  by_addr[at] = (uint16_t)s;
  nlive++;
  live_bytes += b->usable;
}

static void shadow_remove(unsigned s) {
  size_t at = addr_lower_bound(slots[s].p);
  if (at >= nlive || by_addr[at] != s) fail("shadow lost slot %u", s);
  memmove(&by_addr[at], &by_addr[at + 1], (nlive - at - 1) * sizeof by_addr[0]);
  nlive--;
  live_bytes -= slots[s].usable;
}

static void check_errno_kept(const char *call) {
  if (errno != ERRNO_MARK) fail("%s succeeded but changed errno to %d", call, errno);
}

/* The usable size HAKMEM reports for a live block now, against the shadow. */
static void check_usable(const block *b) {
  errno = ERRNO_MARK;
  size_t u = hak_usable_size(b->p);
  check_errno_kept("hak_usable_size");
  if (u != b->usable) fail("usable size of %p changed from %zu to %zu", (void *)b->p, b->usable, u);
  if (!hak_owns(b->p)) fail("hak_owns(%p) is false for a live block", (void *)b->p);
}

/* A block just returned by a successful allocation (errno still ERRNO_MARK
 * expected): check it, give it a fresh tag and pattern, enter it in slot s.
 * min_usable: the least usable size the call promises; align: the alignment
 * it promises (16 at least). */
static void adopt(unsigned s, void *ret, const char *call, size_t req, size_t min_usable, size_t align,
                  bool zeroed) {
  if (ret == NULL) fail("%s(%zu) returned NULL (errno %d)", call, req, errno);
  check_errno_kept(call);
  uint8_t *p = launder(ret);
  if (align < 16) align = 16;
  if (((uintptr_t)p & (align - 1)) != 0) fail("%s(%zu) returned %p, not aligned to %zu", call, req, (void *)p, align);
  if (!hak_owns(p)) fail("%s(%zu) returned %p, which hak_owns denies", call, req, (void *)p);
  size_t usable = hak_usable_size(p);
  if (usable < min_usable) fail("%s(%zu): usable size %zu < %zu", call, req, usable, min_usable);
  size_t nz = zeroed ? first_nonzero(p, req) : SIZE_MAX;
  if (nz != SIZE_MAX) fail("%s(%zu): byte %zu is 0x%02x, not zero", call, req, nz, p[nz]);
  block *b = &slots[s];
  *b = (block){.p = p, .req = req, .usable = usable, .tag = next_tag++};
  shadow_insert(s);
  fill(b, 0, usable);
}

/* ---- operations ------------------------------------------------------------- */

/* Whether the input may still touch `bytes` more; counts them. */
static bool spend(size_t bytes) {
  if (work_bytes + bytes > WORK_CAP) return false;
  work_bytes += bytes;
  return true;
}

/* Whether an allocation of about `need` bytes stays within LIVE_CAP and the
 * input's WORK_CAP. */
static bool room_for(size_t need) {
  return live_bytes + need <= LIVE_CAP && spend(need);
}

static void free_slot(unsigned s) {
  block *b = &slots[s];
  if (b->p == NULL) return;
  check_usable(b);
  verify(b, 0, b->usable, "before free");
  shadow_remove(s);
  errno = ERRNO_MARK;
  hak_free(b->p);
  check_errno_kept("hak_free");
  b->p = NULL;
}

/* Make room in slot s for a block of about `need` bytes; false: the live
 * set would pass LIVE_CAP, skip the allocation. */
static bool make_room(unsigned s, size_t need) {
  free_slot(s);
  return room_for(need);
}

static void do_alloc(const op *o, unsigned s, size_t size) {
  size_t align = o->align;
  if (!make_room(s, size + align + PAGE)) return;
  errno = ERRNO_MARK;
  switch (o->kind) {
    case OP_MALLOC: case OP_BURST_ALLOC:
      adopt(s, hak_malloc(size), "hak_malloc", size, size, 16, false);
      break;
    case OP_CALLOC: {
      size_t n = o->count, elem = n != 0 ? size / n : size;
      adopt(s, hak_calloc(n, elem), "hak_calloc", n * elem, n * elem, 16, true);
      break;
    }
    case OP_POSIX_MEMALIGN: {
      void *out = (void *)&out; /* must stay untouched on EINVAL */
      int rc = hak_posix_memalign(&out, align, size);
      if (align < sizeof(void *)) {
        if (rc != EINVAL || out != (void *)&out)
          fail("hak_posix_memalign(%zu): rc %d, not EINVAL with *out untouched", align, rc);
        return;
      }
      if (rc != 0) fail("hak_posix_memalign(%zu, %zu) failed: %d", align, size, rc);
      adopt(s, out, "hak_posix_memalign", size, size, align, false);
      break;
    }
    case OP_ALIGNED_ALLOC:
      adopt(s, hak_aligned_alloc(align, size), "hak_aligned_alloc", size, size, align, false);
      break;
    case OP_MEMALIGN: {
      size_t pow2 = align;
      while ((pow2 & (pow2 - 1)) != 0) pow2 += pow2 & -pow2; /* glibc rounds up to a power of two */
      adopt(s, hak_memalign(align, size), "hak_memalign", size, size, pow2, false);
      break;
    }
    case OP_VALLOC:
      adopt(s, hak_valloc(size), "hak_valloc", size, size, PAGE, false);
      break;
    case OP_PVALLOC: {
      size_t rounded = (size + PAGE - 1) & ~(size_t)(PAGE - 1);
      adopt(s, hak_pvalloc(size), "hak_pvalloc", size, rounded == 0 ? PAGE : rounded, PAGE, false);
      break;
    }
    default:
      fail("do_alloc: not an allocation");
  }
}

static void do_realloc(unsigned s, size_t n, bool array, unsigned count) {
  block *b = &slots[s];
  const char *call = array ? "hak_reallocarray" : "hak_realloc";
  size_t elem = n, cnt = 1;
  if (array) {
    cnt = count;
    elem = cnt != 0 ? n / cnt : n;
    n = cnt * elem;
  }
  if (b->p == NULL) { /* realloc(NULL, n) is malloc(n); reallocarray(NULL, 0, m) is non-NULL too */
    if (!room_for(n + PAGE)) return;
    errno = ERRNO_MARK;
    void *q = array ? hak_reallocarray(NULL, cnt, elem) : hak_realloc(NULL, n);
    adopt(s, q, call, n, n, 16, false);
    return;
  }
  if (!spend(b->usable)) return;
  check_usable(b);
  verify(b, 0, b->usable, "before realloc");
  if (n == 0) { /* glibc: frees, returns NULL (reallocarray(p, 0, m) too) */
    shadow_remove(s);
    errno = ERRNO_MARK;
    void *q = array ? hak_reallocarray(b->p, cnt, elem) : hak_realloc(b->p, 0);
    if (q != NULL) fail("%s(p, 0) returned %p, not NULL", call, q);
    check_errno_kept(call);
    b->p = NULL;
    return;
  }
  if (n > b->usable && !room_for(n + PAGE)) return;
  shadow_remove(s);
  block old = *b;
  errno = ERRNO_MARK;
  void *ret = array ? hak_reallocarray(old.p, cnt, elem) : hak_realloc(old.p, n);
  if (ret == NULL) fail("%s(%p, %zu) returned NULL (errno %d)", call, (void *)old.p, n, errno);
  check_errno_kept(call);
  uint8_t *q = launder(ret);
  if (((uintptr_t)q & 15) != 0) fail("%s returned %p, not aligned to 16", call, (void *)q);
  if (n <= old.usable && q != old.p)
    fail("%s(%p, %zu) moved the block to %p although %zu bytes fit", call, (void *)old.p, n, (void *)q, old.usable);
  if (!hak_owns(q)) fail("%s returned %p, which hak_owns denies", call, (void *)q);
  size_t usable = hak_usable_size(q);
  if (usable < n) fail("%s(%zu): usable size %zu", call, n, usable);
  *b = (block){.p = q, .req = n, .usable = usable, .tag = old.tag};
  shadow_insert(s);
  size_t kept = n < old.usable ? n : old.usable;
  verify(b, 0, kept, "after realloc");
  fill(b, kept, usable);
}

static void do_sweep(void) {
  if (!spend(live_bytes)) return;
  for (size_t i = 0; i < nlive; i++) {
    const block *b = &slots[by_addr[i]];
    if (i > 0) {
      const block *prev = &slots[by_addr[i - 1]];
      if ((uintptr_t)prev->p + prev->usable > (uintptr_t)b->p) fail("shadow out of order at %zu", i);
    }
    check_usable(b);
    verify(b, 0, b->usable, "sweep");
  }
}

/* Calls that must fail, each with the error glibc gives; a block in the
 * slot given to a failing realloc must come out as it went in. */
static void do_bad_args(const op *o) {
  size_t k = o->count;
  size_t past = (size_t)PTRDIFF_MAX + 1 + k;
  size_t near_max = SIZE_MAX - k;
  block *b = &slots[o->slot];
  void *r = NULL;
  int want = ENOMEM;
  const char *call;
  errno = ERRNO_MARK;
  switch (o->sub % 11) {
    case 0: call = "hak_malloc(> PTRDIFF_MAX)"; r = hak_malloc(past); break;
    case 1: call = "hak_malloc(SIZE_MAX - k)"; r = hak_malloc(near_max); break;
    case 2: {
      size_t m = 2 + k;
      call = "hak_calloc(overflowing)";
      r = hak_calloc(SIZE_MAX / m + 1 + k, m);
      break;
    }
    case 3:
      call = "hak_realloc(p, > PTRDIFF_MAX)";
      if (b->p != NULL) verify(b, 0, b->usable, "before a failing realloc");
      r = hak_realloc(b->p, (k & 1) ? near_max : past);
      break;
    case 4:
      call = "hak_reallocarray(p, overflowing)";
      if (b->p != NULL) verify(b, 0, b->usable, "before a failing reallocarray");
      r = hak_reallocarray(b->p, SIZE_MAX / (16 + k) + 1, 16 + k);
      break;
    case 5: {
      static const size_t bad_align[] = {0, 1, 2, 4, 12, 24, 48, 4097, 65535, (size_t)3 << 20};
      void *out = (void *)&out;
      size_t a = bad_align[k % (sizeof bad_align / sizeof bad_align[0])];
      int rc = hak_posix_memalign(&out, a, 16 + k);
      if (rc != EINVAL || out != (void *)&out)
        fail("hak_posix_memalign(%zu, %zu): rc %d, not EINVAL with *out untouched", a, 16 + k, rc);
      return;
    }
    case 6: {
      void *out = (void *)&out;
      size_t a = (size_t)16 << (k % 13);
      int rc = hak_posix_memalign(&out, a, past);
      if (rc != ENOMEM || out != (void *)&out)
        fail("hak_posix_memalign(%zu, > PTRDIFF_MAX): rc %d, not ENOMEM with *out untouched", a, rc);
      return;
    }
    case 7:
      call = "hak_aligned_alloc(not a power of two)";
      want = EINVAL;
      r = hak_aligned_alloc(k == 0 ? 0 : ((size_t)(k | 1) * 3) << (k % 8), 64); /* 0, or 3 * odd * 2^j */
      break;
    case 8: call = "hak_memalign(> 2^62)"; r = hak_memalign(((size_t)1 << 62) + 1 + k, 64); break;
    case 9: call = "hak_pvalloc(SIZE_MAX - k)"; r = hak_pvalloc(near_max); break;
    default:
      call = "hak_aligned_alloc(a, SIZE_MAX - k)";
      r = hak_aligned_alloc((size_t)16 << (k % 13), near_max);
      break;
  }
  if (r != NULL) fail("%s returned %p, not NULL", call, r);
  if (errno != want) fail("%s: errno %d, not %d", call, errno, want);
  if (b->p != NULL && (o->sub % 11 == 3 || o->sub % 11 == 4)) {
    check_usable(b);
    verify(b, 0, b->usable, "after a failing realloc");
  }
  /* The NULL and foreign-pointer answers. */
  int local;
  if (hak_usable_size(NULL) != 0) fail("hak_usable_size(NULL) != 0");
  if (hak_owns(NULL) || hak_owns(&local)) fail("hak_owns claims NULL or the stack");
  errno = ERRNO_MARK;
  hak_free(NULL);
  check_errno_kept("hak_free(NULL)");
}

static void restart_worker(void);

static void execute(const op *o) {
  switch (o->kind) {
    case OP_MALLOC: case OP_CALLOC: case OP_POSIX_MEMALIGN: case OP_ALIGNED_ALLOC: case OP_MEMALIGN:
    case OP_VALLOC: case OP_PVALLOC:
      do_alloc(o, o->slot, o->size);
      break;
    case OP_REALLOC: do_realloc(o->slot, o->size, false, 0); break;
    case OP_REALLOCARRAY: do_realloc(o->slot, o->size, true, o->count); break;
    case OP_FREE: free_slot(o->slot); break;
    case OP_USABLE:
      if (slots[o->slot].p != NULL && spend(slots[o->slot].usable)) {
        check_usable(&slots[o->slot]);
        verify(&slots[o->slot], 0, slots[o->slot].usable, "usable_size");
      }
      break;
    case OP_SWEEP: do_sweep(); break;
    case OP_FLUSH:
      errno = ERRNO_MARK;
      hak_thread_flush();
      check_errno_kept("hak_thread_flush");
      break;
    case OP_COLLECT:
      errno = ERRNO_MARK;
      if (o->sub & 1) (void)hak_malloc_trim(0);
      else hak_collect(o->sub & 2);
      check_errno_kept("hak_collect");
      do_sweep(); /* nothing live may have been given back */
      break;
    case OP_BURST_ALLOC:
      for (unsigned i = 0; i <= o->count; i++) do_alloc(o, (o->slot + i) % NSLOTS, o->size);
      break;
    case OP_BURST_FREE:
      for (unsigned i = 0; i <= o->count; i++) free_slot((o->slot + i) % NSLOTS);
      break;
    case OP_RESTART_WORKER: restart_worker(); break;
    case OP_BAD_ARGS: do_bad_args(o); break;
    case OP_COUNT: break;
  }
}

/* ---- the worker thread ---------------------------------------------------- */

/* Synchronous handoff: main posts `go` and waits on `done`, so exactly one
 * thread touches the shadow at a time (the semaphores order the accesses). */
static pthread_t worker;
static sem_t go, done;
static const op *handed;
static bool worker_quit;

static void sem_wait_intr(sem_t *s) {
  while (sem_wait(s) != 0)
    if (errno != EINTR) fail("sem_wait: errno %d", errno);
}

static void *worker_main(void *arg) {
  (void)arg;
  for (;;) {
    sem_wait_intr(&go);
    if (worker_quit) return NULL; /* exits with its blocks live: its SuperSlabs are abandoned */
    execute(handed);
    sem_post(&done);
  }
}

static void start_worker(void) {
  worker_quit = false;
  if (pthread_create(&worker, NULL, worker_main, NULL) != 0) fail("pthread_create failed");
}

static void restart_worker(void) {
  worker_quit = true;
  sem_post(&go);
  pthread_join(worker, NULL);
  start_worker();
}

/* FUZZ_HAK_TRACE=1: one line per operation on stderr, to read what a
 * crashing input does. */
static bool tracing;

static void run(const op *o) {
  op_running = o;
  if (tracing)
    fprintf(stderr, "fuzz_hak: %zu %s%s slot %u count %u size %zu align %zu sub %u (live %zu, %zu bytes)\n", op_index,
            op_names[o->kind], o->on_worker ? " on the worker" : "", o->slot, o->count, o->size, o->align, o->sub,
            nlive, live_bytes);
  if (o->on_worker && o->kind != OP_RESTART_WORKER) {
    handed = o;
    sem_post(&go);
    sem_wait_intr(&done);
  } else {
    execute(o);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static bool started;
  if (!started) {
    if (sem_init(&go, 0, 0) != 0 || sem_init(&done, 0, 0) != 0) fail("sem_init failed");
    start_worker();
    const char *t = getenv("FUZZ_HAK_TRACE");
    tracing = t != NULL && *t == '1';
    started = true;
  }
  reader r = {data, size, 0};
  work_bytes = 0;
  op o;
  op_index = 0;
  while (r.i < r.n && decode_op(&r, &o)) {
    run(&o);
    op_index++;
  }
  /* Free what is left, half on each thread, and leave both with nothing
   * cached, so that every input starts from a quiet heap. */
  static const op flush_worker = {.kind = OP_FLUSH, .on_worker = true};
  op sweep = {.kind = OP_SWEEP};
  run(&sweep);
  for (unsigned s = 0; s < NSLOTS; s++) {
    if (slots[s].p == NULL) continue;
    op f = {.kind = OP_FREE, .slot = s, .on_worker = (s & 1) != 0};
    run(&f);
  }
  run(&flush_worker);
  op flush_main = {.kind = OP_FLUSH};
  run(&flush_main);
  op_running = NULL;
  if (nlive != 0 || live_bytes != 0) fail("shadow not empty after freeing everything");
  hak_stats_t st;
  hak_stats_get(&st);
  if (st.invalid_frees != 0) fail("HAKMEM counted %zu invalid frees", st.invalid_frees);
  return 0;
}
