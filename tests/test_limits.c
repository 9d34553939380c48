/* test_limits.c -- behaviour under resource limits, and what a review found
 * about memory return and errno (issue 13, items 4 and 5).
 *
 *   growth_under_rlimit_as: a python-like loop of 1 MiB blocks under an
 *     address-space limit (RLIMIT_AS, in a forked child) gets as many as
 *     glibc's mmap'd chunks would (1 MiB + 4 KiB each): large blocks cost
 *     their size in pages, cached ones give their address space back before
 *     a mapping fails. The failing call returns NULL with ENOMEM, as do
 *     small and medium requests and a realloc that cannot grow, every
 *     block already handed out keeps its bytes, and after freeing them all
 *     the same number can be allocated again.
 *   static_address_space_is_small: the object holding HAKMEM (libhakmem.so,
 *     or the test itself when linked statically) takes under 2 MiB of
 *     address space in its segments (text, data, bss): a static bitmap of
 *     the 47-bit space made it 8.6 MiB, 8 fewer 1 MiB blocks under
 *     ulimit -v. Not under sanitizers, whose runtime is in that object.
 *   many_live_blocks: 100,000 live blocks of 200,000 bytes (first byte of
 *     each touched) all succeed, as with glibc: adjacent mappings merge, so
 *     the kernel's map-count limit is not reached.
 *   impossible_sizes_fail_at_the_call: malloc(1 << 45), calloc(2^20, 2^20)
 *     return NULL with ENOMEM (the mapping is charged, not MAP_NORESERVE),
 *     instead of a pointer that kills the process when touched.
 *   a_reused_superslab_is_decommitted_by_trim: a retired SuperSlab taken
 *     back from the cache before its pages were decommitted keeps its dirty
 *     slabs marked, so malloc_trim decommits them (mincore).
 *   memory_the_thread_freed_serves_a_large_block_under_rlimit_as: 192 MiB
 *     of small blocks freed, then under a limit that leaves 4 MiB, a
 *     malloc of 220 MiB succeeds: a refused large mapping has the thread
 *     give back its empty slabs and SuperSlabs (as malloc_trim does) and
 *     is tried once more, as glibc reuses what was freed.
 *   free_keeps_errno / successful_malloc_keeps_errno: under RLIMIT_AS, a
 *     free whose heap cannot be mapped, and a malloc that succeeds after a
 *     failed first mapping, leave errno as it was.
 *
 * The RLIMIT_AS tests are left out under sanitizers, whose shadow memory
 * reserves terabytes of address space. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hk_test.h"

TestSuite(limits, .init = hk_require_override);

static int overcommit_mode(void) {
  FILE *f = fopen("/proc/sys/vm/overcommit_memory", "r");
  int m = 0;
  if (f != NULL) {
    if (fscanf(f, "%d", &m) != 1) m = 0;
    fclose(f);
  }
  return m;
}

/* ---- item 4: many live blocks ------------------------------------------ */

/* Not under TSan: its mmap interceptor's bookkeeping for 100,000 mappings
 * runs out of its own internal memory. */
#ifndef HK_TSAN
Test(limits, many_live_blocks) {
  enum { N = 100000, SIZE = 200000 };
  if (overcommit_mode() == 2) { /* 19 GiB charged: glibc fails there too */
    cr_log_info("skipped: vm.overcommit_memory=2");
    return;
  }
  unsigned char **p = T_MALLOC(N * sizeof *p);
  cr_assert(p != NULL);
  size_t got = 0;
  for (; got < N; got++) {
    p[got] = T_MALLOC(hk_opaque(SIZE));
    if (p[got] == NULL) break;
    p[got][0] = (unsigned char)got;
  }
  size_t bad = SIZE_MAX;
  for (size_t i = 0; i < got && bad == SIZE_MAX; i++)
    if (p[i][0] != (unsigned char)i) bad = i;
  for (size_t i = 0; i < got; i++) T_FREE(p[i]);
  T_FREE(p);
  cr_assert(got == N, "only %zu of %d live blocks of %d bytes (glibc and mimalloc: all)", got, N, SIZE);
  cr_assert(bad == SIZE_MAX, "block %zu lost its first byte", bad);
  T_TRIM();
}
#endif

/* ---- item 4: what the library itself costs in address space ----------- */

/* Not under sanitizers: their runtime is linked into the test's own
 * object, whose segments then are the runtime's (megabytes of tables). */
#ifndef HK_SANITIZED

typedef struct {
  uintptr_t addr; /* an address inside HAKMEM's code */
  size_t bytes;   /* its object's PT_LOAD segments */
} segments_of;

static int add_segments_of(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)size;
  segments_of *s = arg;
  bool holds = false;
  size_t bytes = 0;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_LOAD) continue;
    uintptr_t start = info->dlpi_addr + ph->p_vaddr;
    if (s->addr >= start && s->addr < start + ph->p_memsz) holds = true;
    bytes += ph->p_memsz;
  }
  if (!holds) return 0;
  s->bytes = bytes;
  return 1;
}

Test(limits, static_address_space_is_small) {
  segments_of s = {.addr = (uintptr_t)&hak_malloc};
  cr_assert(dl_iterate_phdr(add_segments_of, &s) == 1, "no loaded object holds hak_malloc");
  cr_log_info("the object holding hak_malloc: %zu KiB of segments", s.bytes >> 10);
  cr_assert(s.bytes < 2 * HK_MIB, "the object holding HAKMEM takes %zu KiB of address space", s.bytes >> 10);
}
#endif

/* ---- item 5: requests the machine can never back ---------------------- */

Test(limits, impossible_sizes_fail_at_the_call) {
  if (overcommit_mode() == 1) { /* the kernel grants any size, to glibc too */
    cr_log_info("skipped: vm.overcommit_memory=1");
    return;
  }
  errno = 0;
  void *a = T_MALLOC(hk_opaque((size_t)1 << 45));
  int ea = errno;
  errno = 0;
  void *c = T_CALLOC(hk_opaque((size_t)1 << 20), hk_opaque((size_t)1 << 20));
  int ec = errno;
  errno = 0;
  void *al = T_ALIGNED_ALLOC(hk_opaque(1 << 21), hk_opaque((size_t)1 << 45));
  int eal = errno;
  unsigned char *p = T_MALLOC(hk_opaque(300 * HK_KIB));
  cr_assert(p != NULL);
  memset(p, 0x5a, 300 * HK_KIB);
  errno = 0;
  void *r = T_REALLOC(p, hk_opaque((size_t)1 << 45));
  int er = errno;
  cr_assert(a == NULL && ea == ENOMEM, "malloc(1 << 45) = %p, errno %d: a pointer that cannot be backed", a, ea);
  cr_assert(c == NULL && ec == ENOMEM, "calloc(1 << 20, 1 << 20) = %p, errno %d", c, ec);
  cr_assert(al == NULL && eal == ENOMEM, "aligned_alloc(2 MiB, 1 << 45) = %p, errno %d", al, eal);
  cr_assert(r == NULL && er == ENOMEM, "realloc(p, 1 << 45) = %p, errno %d", r, er);
  for (size_t i = 0; i < 300 * HK_KIB; i++) cr_assert(p[i] == 0x5a, "the failed realloc damaged byte %zu", i);
  T_FREE(p);
}

/* ---- item 5: a SuperSlab reused before its pages were decommitted ----- */

#define SS_BYTES ((uintptr_t)2 * HK_MIB)
#define FILL_BLOCKS 1900 /* 1 KiB blocks: most of one small SuperSlab's 31 slabs */

static uintptr_t dirtied[64];
static size_t ndirtied;

static void *dirty_and_exit(void *arg) {
  (void)arg;
  static void *b[FILL_BLOCKS];
  for (size_t i = 0; i < FILL_BLOCKS; i++) {
    b[i] = T_MALLOC(hk_opaque(1024));
    cr_assert(b[i] != NULL);
    memset(b[i], 0x77, 1024);
  }
  for (size_t i = 0; i < FILL_BLOCKS; i++) {
    uintptr_t ss = (uintptr_t)b[i] & ~(SS_BYTES - 1);
    bool seen = false;
    for (size_t k = 0; k < ndirtied; k++) seen |= dirtied[k] == ss;
    if (!seen && ndirtied < 64) dirtied[ndirtied++] = ss;
  }
  for (size_t i = 0; i < FILL_BLOCKS; i++) T_FREE(b[i]);
  return NULL; /* exit: its empty SuperSlabs are retired, pages committed */
}

static void *first_block;

static void *take_one_and_exit(void *arg) {
  (void)arg;
  first_block = T_MALLOC(hk_opaque(1024)); /* a fresh heap: a SuperSlab from the cache */
  return NULL; /* exits with it live: the SuperSlab is abandoned, not retired */
}

static size_t resident_pages(uintptr_t start, size_t len) {
  unsigned char vec[512];
  size_t pages = len / 4096, n = 0;
  cr_assert(pages <= sizeof vec && mincore((void *)start, len, vec) == 0);
  for (size_t i = 0; i < pages; i++) n += vec[i] & 1;
  return n;
}

Test(limits, a_reused_superslab_is_decommitted_by_trim) {
  uintptr_t ss = 0;
  for (int round = 0; round < 20 && ss == 0; round++) {
    pthread_t t;
    cr_assert(pthread_create(&t, NULL, dirty_and_exit, NULL) == 0);
    cr_assert(pthread_join(t, NULL) == 0);
    cr_assert(pthread_create(&t, NULL, take_one_and_exit, NULL) == 0);
    cr_assert(pthread_join(t, NULL) == 0);
    cr_assert(first_block != NULL);
    uintptr_t got = (uintptr_t)first_block & ~(SS_BYTES - 1);
    for (size_t k = 0; k < ndirtied; k++)
      if (dirtied[k] == got) ss = got;
    if (ss == 0) T_FREE(first_block); /* a fresh SuperSlab: try again */
  }
  cr_assert(ss != 0, "no retired SuperSlab was reused in 20 rounds");
  T_TRIM();
  /* The header page, the one slab holding first_block (16 pages) and its
   * neighbours' first pages at most; the bug left the other 30 slabs'
   * 480 pages committed. */
  size_t res = resident_pages(ss, SS_BYTES);
  cr_log_info("reused SuperSlab %p: %zu of 512 pages resident after malloc_trim", (void *)ss, res);
  cr_assert(res <= 64, "a SuperSlab reused from the cache keeps %zu of its 512 pages after malloc_trim", res);
  T_FREE(first_block);
}

/* ---- under RLIMIT_AS (not with sanitizers: their shadow reserves terabytes
 * of address space) ------------------------------------------------------ */
#ifndef HK_SANITIZED

/* The process's address space in bytes (/proc/self/statm, first field). */
static size_t vm_bytes(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  unsigned long size = 0;
  if (f != NULL) {
    if (fscanf(f, "%lu", &size) != 1) size = 0;
    fclose(f);
  }
  return (size_t)size * (size_t)sysconf(_SC_PAGESIZE);
}

static bool limit_as(size_t bytes) {
  struct rlimit r = {bytes, bytes};
  return setrlimit(RLIMIT_AS, &r) == 0;
}

/* Run fn in a forked child; it writes up to n longs of results into out
 * through a pipe. Returns the child's exit status (-1: killed). */
static int in_child(int (*fn)(long *out), long *out, size_t n) {
  int fd[2];
  cr_assert(pipe(fd) == 0);
  pid_t pid = fork();
  cr_assert(pid >= 0);
  if (pid == 0) {
    close(fd[0]);
    long res[8] = {0};
    int rc = fn(res);
    ssize_t w = write(fd[1], res, sizeof res);
    _exit(w == (ssize_t)sizeof res ? rc : 99);
  }
  close(fd[1]);
  long res[8] = {0};
  ssize_t got = read(fd[0], res, sizeof res);
  close(fd[0]);
  int st = 0;
  cr_assert(waitpid(pid, &st, 0) == pid);
  if (got == (ssize_t)sizeof res) memcpy(out, res, n * sizeof *out);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* ---- item 4: address space -------------------------------------------- */

#define GROW_HEADROOM (256 * HK_MIB)
#define GROW_BLOCK    (HK_MIB + 1) /* python: bytearray(1 << 20) */
#define GROW_MAX      1024

static unsigned char *grow_blocks[GROW_MAX];

/* Allocate GROW_BLOCK blocks until one fails; the count, or -1 when the
 * failure was not ENOMEM, or -2 when a block lost its marks. */
static long grow_until_full(void) {
  long n = 0;
  for (; n < GROW_MAX; n++) {
    errno = 0;
    unsigned char *p = T_MALLOC(hk_opaque(GROW_BLOCK));
    if (p == NULL) {
      if (errno != ENOMEM) return -1;
      break;
    }
    p[0] = (unsigned char)n;
    p[GROW_BLOCK - 1] = (unsigned char)~n;
    grow_blocks[n] = p;
  }
  for (long i = 0; i < n; i++)
    if (grow_blocks[i][0] != (unsigned char)i || grow_blocks[i][GROW_BLOCK - 1] != (unsigned char)~i) return -2;
  return n;
}

#define FILL_MAX 400000
static void *fill[FILL_MAX];

/* Blocks of `size` until one fails: how many, or -1 when that failure was
 * not ENOMEM, or -2 when none failed (the limit did not hold). */
static long fill_until_full(size_t size) {
  long n = 0;
  for (; n < FILL_MAX; n++) {
    errno = 0;
    if ((fill[n] = T_MALLOC(hk_opaque(size))) == NULL) break;
    memset(fill[n], 0x3c, size < 64 ? size : 64);
  }
  long r = n == FILL_MAX ? -2 : errno != ENOMEM ? -1 : n;
  for (long i = 0; i < n; i++) T_FREE(fill[i]);
  return r;
}

static int grow_child(long *out) {
  T_TRIM(); /* the unclaimed SuperSlab arena goes back: the baseline is what is used */
  if (!limit_as(vm_bytes() + GROW_HEADROOM)) return 2;
  out[0] = grow_until_full();
  if (out[0] <= 0) return 3;
  /* Address space used up: small and medium requests fail too, with
   * ENOMEM, and the large blocks keep their bytes. */
  out[2] = fill_until_full(64);
  out[3] = fill_until_full(40 * HK_KIB);
  errno = 0;
  void *r = T_REALLOC(grow_blocks[0], hk_opaque(64 * HK_MIB)); /* no room to grow or move: the block stays */
  if (r != NULL || errno != ENOMEM) return 7;
  for (long i = 0; i < out[0]; i++)
    if (grow_blocks[i][0] != (unsigned char)i || grow_blocks[i][GROW_BLOCK - 1] != (unsigned char)~i) return 5;
  if (out[2] < 0 || out[3] < 0) return 6;
  /* Free them all (into the cache of large mappings), then again: the
   * cache gives its address space back when a mapping fails. */
  for (long i = 0; i < out[0]; i++) T_FREE(grow_blocks[i]);
  out[1] = grow_until_full();
  for (long i = 0; i < out[1]; i++) T_FREE(grow_blocks[i]);
  return 0;
}

Test(limits, growth_under_rlimit_as) {
  long res[4] = {0, 0, 0, 0};
  int rc = in_child(grow_child, res, 4);
  /* glibc: 256 MiB / (1 MiB + 4 KiB) = 255 blocks, less what its own
   * bookkeeping takes; we ask for all but 4 of that. */
  long glibc = (long)(GROW_HEADROOM / (HK_MIB + 4 * HK_KIB));
  cr_log_info("1 MiB blocks in 256 MiB of address space: %ld, then %ld after freeing them (glibc's bound %ld); "
              "then %ld blocks of 64 B and %ld of 40 KiB before ENOMEM", res[0], res[1], glibc, res[2], res[3]);
  cr_assert(rc == 0,
            "child failed (%d: 5 a large block damaged, 6 a small/medium failure not ENOMEM or none, 7 realloc of a "
            "large block did not fail with ENOMEM): first round "
            "%ld (-1: not ENOMEM, -2: a block was damaged), small %ld, medium %ld (-1: not ENOMEM, -2: never failed)",
            rc, res[0], res[2], res[3]);
  cr_assert(res[0] >= glibc - 4, "only %ld blocks of 1 MiB in 256 MiB of address space (glibc: %ld)", res[0], glibc);
  cr_assert(res[1] >= res[0] - 1, "after freeing %ld blocks only %ld could be allocated again: the cache kept "
            "address space", res[0], res[1]);
}

/* ---- item 5: errno on success ----------------------------------------- */

#define ERRNO_MARK EDOM

static sem_t go;
static void *remote_block;
static int errno_after_free;

static void *hold_a_heap(void *arg) {
  void *p = T_MALLOC(hk_opaque(32)); /* takes a heap from the current batch */
  sem_wait((sem_t *)arg);
  T_FREE(p);
  return NULL;
}

static void *free_without_heap(void *arg) {
  (void)arg;
  sem_wait(&go);
  errno = ERRNO_MARK;
  T_FREE(remote_block); /* another thread's block, and this thread has no heap */
  errno_after_free = errno;
  return NULL;
}

static int free_errno_child(long *out) {
  T_TRIM(); /* no pooled heaps: the next heap comes from the batch */
  remote_block = T_MALLOC(hk_opaque(48));
  if (remote_block == NULL) return 2;
  /* Take the rest of the current batch of 64 heaps (api: heaps_created
   * counts every one; the first of a batch is taken by its mapper). */
  size_t left = (64 - hk_stats().heaps_created % 64) % 64;
  static pthread_t holders[64];
  static sem_t release;
  sem_init(&release, 0, 0);
  sem_init(&go, 0, 0);
  pthread_attr_t small;
  pthread_attr_init(&small);
  pthread_attr_setstacksize(&small, 64 * 1024);
  for (size_t i = 0; i < left; i++)
    if (pthread_create(&holders[i], &small, hold_a_heap, &release) != 0) return 3;
  pthread_t t;
  if (pthread_create(&t, &small, free_without_heap, NULL) != 0) return 3;
  for (int i = 0; i < 200 && hk_stats().heaps_created % 64 != 0; i++) usleep(10000); /* the holders got theirs */
  out[1] = (long)(hk_stats().heaps_created % 64);
  if (!limit_as(vm_bytes())) return 4; /* no mapping of any size from now on */
  sem_post(&go);
  pthread_join(t, NULL);
  out[0] = errno_after_free;
  for (size_t i = 0; i < left; i++) sem_post(&release);
  for (size_t i = 0; i < left; i++) pthread_join(holders[i], NULL);
  return 0;
}

Test(limits, free_keeps_errno) {
  long res[2] = {0, -1};
  int rc = in_child(free_errno_child, res, 2);
  cr_assert(rc == 0, "child failed (%d)", rc);
  cr_assert(res[1] == 0, "the heap batch was not used up (%ld taken of 64): the test proves nothing", res[1]);
  cr_assert(res[0] == ERRNO_MARK, "free changed errno from %d to %ld when no heap could be mapped", ERRNO_MARK,
            res[0]);
}

static int malloc_errno_child(long *out) {
  /* Large: a mapping cached, a request it cannot serve (over twice its
   * size), room for the request only once the cache gives it back. */
  T_TRIM(); /* no SuperSlab region or arena left: the next SuperSlab needs a mapping */
  unsigned char *big = T_MALLOC(hk_opaque(48 * HK_MIB));
  if (big == NULL) return 2;
  T_FREE(big); /* cached */
  if (!limit_as(vm_bytes() + 8 * HK_MIB)) return 4;
  errno = ERRNO_MARK;
  unsigned char *p = T_MALLOC(hk_opaque(20 * HK_MIB));
  out[0] = errno;
  out[1] = p != NULL;
  if (p != NULL) T_FREE(p);
  /* SuperSlabs: the region arena (192 MiB) cannot be mapped, a single
   * SuperSlab can: medium blocks until a new SuperSlab was needed. */
  errno = ERRNO_MARK;
  out[2] = 0;
  for (int i = 0; i < 40; i++) {
    void *q = T_MALLOC(hk_opaque(100 * HK_KIB));
    if (q == NULL) break;
    out[2]++;
    if (errno != ERRNO_MARK) break;
  }
  out[3] = errno;
  return 0;
}

Test(limits, successful_malloc_keeps_errno) {
  long res[4] = {0, 0, 0, 0};
  int rc = in_child(malloc_errno_child, res, 4);
  cr_assert(rc == 0, "child failed (%d)", rc);
  cr_assert(res[1] == 1, "malloc(20 MiB) failed although the cache held 48 MiB of address space");
  cr_assert(res[0] == ERRNO_MARK, "a malloc(20 MiB) that succeeded after a failed mapping left errno %ld", res[0]);
  cr_assert(res[2] == 40, "only %ld medium blocks under the limit", res[2]);
  cr_assert(res[3] == ERRNO_MARK, "medium mallocs that succeeded left errno %ld", res[3]);
}

/* Small blocks over many SuperSlabs, all freed: their SuperSlabs are
 * empty but still mapped (they wait out the decommit delay; the thread's
 * cache holds some of the blocks). Then, with no address space left but
 * what they hold and what the pressure hook gives back anyway (the caches,
 * the unclaimed part of the SuperSlab arenas: at most 64 MiB here), a large
 * block bigger than that. */
#define FREED_SMALL (192 * HK_MIB)
#define FREED_LARGE (220 * HK_MIB)
static void *freed_small[FREED_SMALL / (4 * HK_KIB)];

static int freed_then_large_child(long *out) {
  T_TRIM();
  size_t n = sizeof freed_small / sizeof freed_small[0];
  for (size_t i = 0; i < n; i++)
    if ((freed_small[i] = T_MALLOC(hk_opaque(4 * HK_KIB - 64))) == NULL) return 2;
  for (size_t i = 0; i < n; i++) T_FREE(freed_small[i]);
  if (!limit_as(vm_bytes() + 4 * HK_MIB)) return 4;
  errno = ERRNO_MARK;
  unsigned char *p = T_MALLOC(hk_opaque(FREED_LARGE));
  out[0] = p != NULL;
  out[1] = errno;
  if (p != NULL) {
    p[0] = 1;
    p[FREED_LARGE - 1] = 2;
    T_FREE(p);
  }
  return 0;
}

Test(limits, memory_the_thread_freed_serves_a_large_block_under_rlimit_as) {
  long res[2] = {0, 0};
  int rc = in_child(freed_then_large_child, res, 2);
  cr_assert(rc == 0, "child failed (%d)", rc);
  cr_assert(res[0] == 1, "malloc(220 MiB) failed under RLIMIT_AS although the thread had just freed 192 MiB of "
            "small blocks (their empty SuperSlabs kept the address space)");
  cr_assert(res[1] == ERRNO_MARK, "the malloc succeeded but left errno %ld", res[1]);
}

#endif /* !HK_SANITIZED */
