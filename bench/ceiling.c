/* ceiling.c -- libceiling.so: the cheapest allocator the single-threaded
 * benchmarks can be run under, to measure how much of their time is the
 * allocator's at all (bench/ceiling.sh). Not an allocator to use: it checks
 * nothing, never returns memory, and is meant for one thread.
 *
 * Per size class a thread-local LIFO of freed blocks (the link in the
 * block's first word: malloc pops the block freed last, still in cache),
 * else a bump of the class's region. Every class has its own region of
 * CEIL_REGION bytes in one reserved range, so free finds the class from the
 * address (a subtract and a shift) with no header and no descriptor. No
 * counter, no double-free or invalid-pointer check, no statistics: what is
 * left is the work any allocator does -- a class lookup, one list pop, one
 * list push -- so a benchmark's time under this library is a floor on its
 * time under any allocator that keeps its own bookkeeping, and its speed a
 * ceiling on what an allocator can reach on that benchmark.
 *
 * Classes: 16-byte steps to 1 KiB, then 8 per power of two to 8 MiB; larger
 * requests, and alignments above 16, are mapped whole and never unmapped
 * (their free is a no-op), which the random_mixed lanes never ask for. */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define CEIL_EXPORT __attribute__((visibility("default")))
#define CEIL_LIKELY(x) __builtin_expect(!!(x), 1)

#define CEIL_SMALL_MAX 1024                             /* 16-byte classes up to here */
#define CEIL_NSMALL (CEIL_SMALL_MAX / 16 + 1)            /* class 0 serves malloc(0) */
#define CEIL_MAX ((size_t)8 << 20)                       /* larger: a mapping of its own */
#define CEIL_NCLASSES (CEIL_NSMALL + 8 * 13)             /* 8 per power of two, 1 KiB to 8 MiB */
#define CEIL_REGION_SHIFT 28                             /* 256 MiB of address space per class */
#define CEIL_REGION ((uintptr_t)1 << CEIL_REGION_SHIFT)

typedef struct ceil_block {
  struct ceil_block *next;
} ceil_block;

/* Class c's region: ceil_base + c x CEIL_REGION. Before the regions exist,
 * a base that puts every user-space address out of range, so free and
 * malloc_usable_size leave ld.so's early blocks alone. */
static uintptr_t ceil_base = (uintptr_t)1 << 63;
static _Atomic uintptr_t ceil_bump[CEIL_NCLASSES]; /* next fresh byte of each region */
static size_t ceil_size[CEIL_NCLASSES];
static __thread ceil_block *ceil_free[CEIL_NCLASSES] __attribute__((tls_model("initial-exec")));

static unsigned ceil_class_of(size_t n) {
  if (n <= CEIL_SMALL_MAX) return (unsigned)((n + 15) >> 4);
  unsigned lg = 63u - (unsigned)__builtin_clzll(n - 1); /* 2^lg < n <= 2^(lg+1) */
  unsigned step = (unsigned)((n - 1 - ((size_t)1 << lg)) >> (lg - 3));
  return CEIL_NSMALL + (lg - 10) * 8 + step;
}

/* Reserve the regions on first use. The benchmarks are single-threaded,
 * but ld.so's and libc's first calls may come before main: a CAS makes a
 * racing second caller use the first one's range. */
static void ceil_init(void) {
  static _Atomic uintptr_t once;
  if (atomic_load_explicit(&once, memory_order_acquire) != 0) return; /* pairs with the release CAS below */
  void *r = mmap(NULL, (size_t)CEIL_NCLASSES << CEIL_REGION_SHIFT, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (r == MAP_FAILED) return;
  uintptr_t expected = 0;
  /* Release: the sizes and bumps written here are visible to whoever sees the base. */
  for (unsigned c = 0; c < CEIL_NCLASSES; c++) {
    ceil_size[c] = c < CEIL_NSMALL ? (c == 0 ? 16 : (size_t)c * 16)
                                   : ((size_t)1024 << ((c - CEIL_NSMALL) / 8)) / 8 * (8 + (c - CEIL_NSMALL) % 8 + 1);
    atomic_store_explicit(&ceil_bump[c], (uintptr_t)r + ((uintptr_t)c << CEIL_REGION_SHIFT), memory_order_relaxed);
  }
  ceil_base = (uintptr_t)r;
  if (!atomic_compare_exchange_strong_explicit(&once, &expected, 1, memory_order_release, memory_order_relaxed))
    munmap(r, (size_t)CEIL_NCLASSES << CEIL_REGION_SHIFT);
}

/* A block of its own mapping, its size in the word before it (realloc). */
static void *ceil_map(size_t n, size_t align) {
  size_t len = n + align + 16;
  if (len < n) return NULL;
  void *r = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (r == MAP_FAILED) return NULL;
  uintptr_t p = ((uintptr_t)r + 16 + align - 1) & ~(uintptr_t)(align - 1);
  ((size_t *)p)[-1] = n;
  return (void *)p;
}

static __attribute__((noinline)) void *ceil_fresh(unsigned c) {
  ceil_init();
  if (ceil_base == (uintptr_t)1 << 63) {
    errno = ENOMEM;
    return NULL;
  }
  uintptr_t b = atomic_fetch_add_explicit(&ceil_bump[c], ceil_size[c], memory_order_relaxed);
  if (b + ceil_size[c] > ceil_base + ((uintptr_t)(c + 1) << CEIL_REGION_SHIFT)) {
    errno = ENOMEM;
    return NULL;
  }
  return (void *)b;
}

CEIL_EXPORT void *malloc(size_t n) {
  if (CEIL_LIKELY(n <= CEIL_MAX)) {
    unsigned c = ceil_class_of(n);
    ceil_block *b = ceil_free[c];
    if (CEIL_LIKELY(b != NULL)) {
      ceil_free[c] = b->next;
      return b;
    }
    return ceil_fresh(c);
  }
  void *p = ceil_map(n, 16);
  if (p == NULL) errno = ENOMEM;
  return p;
}

CEIL_EXPORT void free(void *p) {
  uintptr_t c = ((uintptr_t)p - ceil_base) >> CEIL_REGION_SHIFT;
  if (CEIL_LIKELY(c < CEIL_NCLASSES)) { /* NULL and foreign pointers: nothing */
    ceil_block *b = p;
    b->next = ceil_free[c];
    ceil_free[c] = b;
  }
}

CEIL_EXPORT size_t malloc_usable_size(void *p) {
  uintptr_t c = ((uintptr_t)p - ceil_base) >> CEIL_REGION_SHIFT;
  return p != NULL && c < CEIL_NCLASSES ? ceil_size[c] : 0;
}

CEIL_EXPORT void *calloc(size_t k, size_t n) {
  size_t t;
  if (__builtin_mul_overflow(k, n, &t)) {
    errno = ENOMEM;
    return NULL;
  }
  void *p = malloc(t);
  if (p != NULL) memset(p, 0, t);
  return p;
}

CEIL_EXPORT void *realloc(void *p, size_t n) {
  if (p == NULL) return malloc(n);
  size_t room = malloc_usable_size(p);
  /* Not in a class region: a mapping of its own, which keeps its size.
   * (ld.so's blocks from before the first call are not: the benchmarks
   * never hand one to realloc.) */
  if (room == 0) room = ((size_t *)p)[-1];
  if (n <= room) return p;
  void *q = malloc(n);
  if (q == NULL) return NULL;
  memcpy(q, p, room);
  free(p);
  return q;
}

CEIL_EXPORT void *aligned_alloc(size_t align, size_t n) {
  if (align == 0 || (align & (align - 1)) != 0) {
    errno = EINVAL;
    return NULL;
  }
  if (align <= 16) return malloc(n);
  void *p = ceil_map(n, align);
  if (p == NULL) errno = ENOMEM;
  return p;
}
CEIL_EXPORT void *memalign(size_t align, size_t n) { return aligned_alloc(align, n); }
CEIL_EXPORT int posix_memalign(void **out, size_t align, size_t n) {
  if (align < sizeof(void *) || (align & (align - 1)) != 0) return EINVAL;
  void *p = aligned_alloc(align, n);
  if (p == NULL) return ENOMEM;
  *out = p;
  return 0;
}
CEIL_EXPORT void *valloc(size_t n) { return aligned_alloc(4096, n); }
CEIL_EXPORT void *pvalloc(size_t n) { return aligned_alloc(4096, (n + 4095) & ~(size_t)4095); }
