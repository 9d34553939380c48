/* os_linux.c -- mmap-based implementation of os.h for Linux. */
#define _GNU_SOURCE /* mremap, MREMAP_MAYMOVE, MREMAP_FIXED */
#include "os/os.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>
#include <time.h>

#include "hk_atomic.h"
#include "hk_config.h"
#include "util/diag.h"
#include "util/stats.h"

static _Atomic unsigned hk_inject_per_million;
static _Atomic unsigned hk_inject_decommit_per_million;
static _Atomic uint32_t hk_inject_state = 2463534242u;

void hk_os_inject_failures(unsigned per_million) {
  hk_store_relaxed(&hk_inject_per_million, per_million);
}

void hk_os_inject_decommit_failures(unsigned per_million) {
  hk_store_relaxed(&hk_inject_decommit_per_million, per_million);
}

/* True with probability *rate / 1e6 (a test hook's). */
static bool hk_os_injected(_Atomic unsigned *rate) {
  unsigned pm = hk_load_relaxed(rate);
  if (pm == 0) return false;
  /* A racy xorshift is fine here: it only needs to be roughly random. */
  uint32_t x = hk_load_relaxed(&hk_inject_state);
  x ^= x << 13; x ^= x >> 17; x ^= x << 5;
  hk_store_relaxed(&hk_inject_state, x);
  return (x % 1000000u) < pm;
}

/* Called once when a mapping fails, then the mapping is retried if it
 * returned true (os.h). Set at process start-up, before any thread. */
static bool (*hk_os_pressure)(void);
static _Thread_local bool hk_os_in_pressure; /* the hook's own mappings do not call it again */

void hk_os_set_pressure_hook(bool (*hook)(void)) { hk_os_pressure = hook; }

/* flags: MAP_NORESERVE for reservations, 0 for a block's memory (os.h).
 * NULL with *why set on failure. */
static void *hk_os_mmap_once(size_t size, int flags, const char **why) {
  if (hk_os_injected(&hk_inject_per_million)) {
    *why = "injected mapping failure (test hook)";
    return NULL;
  }
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | flags, -1, 0);
  if (p == MAP_FAILED) {
    *why = errno == ENOMEM ? "the OS refused a mapping (address space, map count or overcommit limit)"
                           : "the OS refused a mapping";
    return NULL;
  }
  return p;
}

/* Address space is counted (hk_stat_mapped) as what the callers keep, so a
 * transient over-reservation (the slack of an aligned mapping, an arena the
 * SuperSlab layer counts chunk by chunk as claimed) never raises the peak:
 * the _raw functions count nothing, hk_os_counted counts what is kept. */
static void *hk_os_mmap_raw(size_t size, int flags) {
  int saved = errno;
  const char *why = NULL;
  void *p = hk_os_mmap_once(size, flags, &why);
  if (p == NULL && hk_os_pressure != NULL && !hk_os_in_pressure) {
    hk_os_in_pressure = true;
    bool again = hk_os_pressure();
    hk_os_in_pressure = false;
    if (again) p = hk_os_mmap_once(size, flags, &why);
  }
  if (p == NULL) hk_trace_failure(size, why); /* only a failure the retry did not mend */
  errno = saved;
  return p;
}

static void hk_os_munmap_raw(void *p, size_t size) {
  if (p == NULL || size == 0) return;
  int saved = errno;
  munmap(p, size);
  errno = saved;
}

static void *hk_os_counted(void *p, size_t size) {
  if (p != NULL) hk_stat_mapped(size);
  return p;
}

void *hk_os_map(size_t size) { return hk_os_counted(hk_os_mmap_raw(size, MAP_NORESERVE), size); }

void hk_os_unmap(void *p, size_t size) {
  if (p == NULL || size == 0) return;
  hk_os_munmap_raw(p, size);
  hk_stat_unmapped(size);
}

void hk_os_unreserve(void *p, size_t size) { hk_os_munmap_raw(p, size); }

bool hk_os_decommit(void *p, size_t size) {
  if (size == 0) return true;
  if (hk_os_injected(&hk_inject_decommit_per_million)) return false;
  int saved = errno;
  /* MADV_DONTNEED, not MADV_FREE: the RSS drop is immediate and visible, and
   * the range reads as zeros afterwards, which calloc of a reused large
   * mapping relies on (large.c) -- when it succeeds: a seccomp filter may
   * refuse madvise (EPERM), and then nothing was discarded. */
  bool ok = madvise(p, size, MADV_DONTNEED) == 0;
  errno = saved;
  return ok;
}

void hk_os_hugepage(void *p, size_t size) {
  int saved = errno;
  madvise(p, size, MADV_HUGEPAGE); /* EINVAL where THP is compiled out: nothing to do */
  errno = saved;
}

/* ThreadSanitizer intercepts mmap and munmap, which reset its shadow of a
 * range, but not mremap (google/sanitizers#1099): a move leaves the old
 * range unmapped with its accesses still in the shadow, and the next block
 * placed there is reported as racing with its previous owner's writes
 * (seen in stress_prodcons). Under TSan a move therefore fails before
 * anything happens, dest untouched, and the callers take their fallback
 * (copy, or a fresh mapping); growth in place stays, since what it gains
 * was unmapped through munmap. */
#if defined(__SANITIZE_THREAD__)
#define HK_OS_REMAP_MOVES 0
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define HK_OS_REMAP_MOVES 0
#endif
#endif
#ifndef HK_OS_REMAP_MOVES
#define HK_OS_REMAP_MOVES 1
#endif

void *hk_os_remap_anywhere(void *old, size_t old_size, size_t new_size) {
  int saved = errno;
  void *r = mremap(old, old_size, new_size, HK_OS_REMAP_MOVES ? MREMAP_MAYMOVE : 0);
  errno = saved;
  if (r == MAP_FAILED) return NULL;
  hk_stat_mapped(new_size - old_size);
  return r;
}

void *hk_os_remap(void *old, size_t old_size, size_t new_size, void *dest, bool *dest_lost) {
  if (!HK_OS_REMAP_MOVES && dest != NULL) return NULL;
  int saved = errno;
  void *r = dest == NULL ? mremap(old, old_size, new_size, 0)
                         : mremap(old, old_size, new_size, MREMAP_MAYMOVE | MREMAP_FIXED, dest);
  if (r == MAP_FAILED && dest != NULL) {
    /* The kernel unmaps dest before some of the checks that can still fail
     * (map count, commit charge), and another thread's mmap may land in the
     * gap at once: take the range back only if nobody has, never unmap it
     * blindly. */
    void *again =
        mmap(dest, new_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (again != dest) {
      if (again != MAP_FAILED) munmap(again, new_size); /* a kernel without NOREPLACE placed it elsewhere */
      *dest_lost = true;
      hk_stat_unmapped(new_size);
      hk_trace_failure(new_size, "mremap failed after releasing its target, which is someone else's now");
    }
  }
  errno = saved;
  if (r == MAP_FAILED) return NULL;
  if (dest == NULL) {
    hk_stat_mapped(new_size - old_size);
  } else {
    hk_stat_unmapped(old_size); /* dest's reservation, counted when mapped, now holds the pages */
  }
  return r;
}

/* Over-reserve by `slack`, then give back the head below `start` and the
 * tail, so the slack is wasted only briefly. */
static void *hk_os_map_trimmed(size_t size, size_t slack, size_t align, int parity, int flags) {
  if (size + slack < size) return NULL;
  uint8_t *raw = hk_os_mmap_raw(size + slack, flags);
  if (raw == NULL) return NULL;
  uintptr_t start = ((uintptr_t)raw + align - 1) & ~(uintptr_t)(align - 1);
  if (parity >= 0 && ((start / align) & 1) != (uintptr_t)parity) start += align;
  size_t head = start - (uintptr_t)raw;
  size_t tail = slack - head;
  hk_os_munmap_raw(raw, head);
  hk_os_munmap_raw((uint8_t *)start + size, tail);
  return (void *)start;
}

void *hk_os_reserve_aligned(size_t size, size_t align) {
  if (align <= HK_PAGE_SIZE) return hk_os_mmap_raw(size, MAP_NORESERVE);
  return hk_os_map_trimmed(size, align, align, -1, MAP_NORESERVE);
}

void *hk_os_map_aligned(size_t size, size_t align) { return hk_os_counted(hk_os_reserve_aligned(size, align), size); }

void *hk_os_map_aligned_parity(size_t size, size_t align, unsigned parity) {
  if (2 * align < align) return NULL;
  return hk_os_counted(hk_os_map_trimmed(size, 2 * align, align, (int)parity, MAP_NORESERVE), size);
}

void *hk_os_map_block(size_t size, size_t align) {
  /* No MAP_NORESERVE: the kernel's overcommit policy judges the request now
   * (as it does glibc's mmap), so a size the machine can never back fails
   * here instead of killing the process when it is touched. */
  if (align <= HK_PAGE_SIZE) return hk_os_counted(hk_os_mmap_raw(size, 0), size);
  return hk_os_counted(hk_os_map_trimmed(size, align, align, -1, 0), size);
}

unsigned hk_os_ncpus(void) {
  int saved = errno;
  uint64_t mask[16] = {0}; /* up to 1024 CPUs */
  long n = syscall(SYS_sched_getaffinity, 0, sizeof mask, mask); /* raw: glibc's wrapper may allocate */
  errno = saved;
  if (n <= 0) return 1;
  unsigned c = 0;
  for (size_t i = 0; i < (size_t)n / sizeof mask[0] && i < 16; i++) c += (unsigned)__builtin_popcountll(mask[i]);
  return c != 0 ? c : 1;
}

uint64_t hk_os_now_ms(void) {
  struct timespec ts;
  int saved = errno;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  errno = saved;
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

bool hk_os_read_safe(void *dst, const void *src, size_t n) {
  int saved = errno;
  struct iovec local = {dst, n}, remote = {(void *)(uintptr_t)src, n};
  ssize_t got = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
  bool gone = got < 0 && errno == EFAULT;
  errno = saved;
  if (got == (ssize_t)n) return true;
  if (gone || got >= 0) return false; /* unmapped, or mapped only in part */
  memcpy(dst, src, n); /* not allowed here (EPERM, ENOSYS): as before */
  return true;
}
