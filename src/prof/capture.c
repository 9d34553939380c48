/* capture.c -- setting up a sample's call stack capture (prof.h's
 * hk_prof_capture): glibc's backtrace(), HAKMEM's own frames left out.
 *
 * Why backtrace(): it walks by the unwind tables (.eh_frame), so it works
 * through code built without frame pointers (Debian's libraries, -O2
 * programs), where a frame-pointer walk would stop or wander; and it is in
 * libc.so.6, so libhakmem.so still needs nothing else. Its one hazard is
 * its first call, which dlopen()s libgcc_s and allocates: hk_prof_capture_init
 * makes that call at start-up, in the constructor, with sampling not yet on
 * (and the profiler's reentrancy guard set), so no later call allocates.
 *
 * HAKMEM's frames: the leading frames whose return address lies in the
 * text of the object holding this code (found with dl_iterate_phdr at
 * start-up). When that object is the program itself (libhakmem.a linked
 * in), its text is also the program's, so nothing is left out and the
 * stack starts with HAKMEM's sampling function.
 *
 * The walk itself: libgcc's _Unwind_Backtrace, which backtrace() wraps,
 * called directly (dlsym in the libgcc_s that backtrace()'s warm-up
 * loaded: one frame fewer to unwind) with a callback that can stop early.
 * Each frame costs the unwinder about a thousand instructions (an FDE
 * search and a CFI program), and every stack ends in the same few libc
 * frames: __libc_start_call_main, __libc_start_main, _start in the main
 * thread; start_thread, clone3 in the others. So a walk that ends
 * naturally teaches the run of libc frames it ended with (the outermost
 * run: every frame from its first to the last in libc's text, the last
 * one anywhere), keyed by the return address that starts it. That
 * address lies inside a libc function that only that run calls (a
 * thread's start, the program's), so what follows it is always the same;
 * once two walks have agreed on it (and none disagreed), later walks stop
 * there and copy the run. In a static link libc's text is the program's,
 * and nothing is learned. States of a learned run (hk_prof_run):
 *   EMPTY --a walk claims the slot by CAS on its key, writes the frames,
 *           then publishes (release)-->                        SEEN
 *   SEEN  --another walk ends the same way (CAS)-->            TRUSTED
 *   SEEN  --one ends differently after the key-->              DISTRUSTED
 * Walks cut at TRUSTED keys only; nothing moves back.
 *
 * The stack cache. A service samples the same few call paths over and
 * over, and each walk costs the unwinder a thousand instructions a frame.
 * So each thread keeps the stacks it walked, HK_PROF_STK_ENTRIES of them,
 * keyed by the sampling function's CFA (its stack position: the key is
 * exact, not a hash): with each, where every frame's return address was
 * (just under the stack pointer the caller had at the call, which is
 * what _Unwind_GetCFA reports for the caller's frame: libgcc's context
 * then holds the CFA of the frame it came from) and what it held, and the
 * walk's result. A later sample from the same CFA checks those slots, from the
 * innermost out, and takes the result when every one still holds the same
 * return address. That is the same stack: the sampling function is the
 * same frame at the same place, so its return-address slot is where the
 * walk found it; a slot holding the same address means the same caller at
 * the same call site, whose frame, at that call site, ends where it did
 * (its CFA rule there is fixed: the compiler's CFI); and so on outwards.
 * The one frame this can miss is a caller with a variable frame (alloca)
 * whose frame changed size while every frame inside it kept its place, the
 * slot then read being stale stack that still holds the old address: the
 * sample is attributed to the old path. No frame comes from that, only a
 * wrong one, and it needs a stack of exactly the old depth.
 * Reads: only walks that reached the outermost frames (ended, or were cut
 * at a learned libc start run) are kept, so every slot they read lies on
 * the thread's own stack between the sampling frame and the thread's
 * start; a later sample with the same CFA is on that stack (mappings do
 * not overlap, and a thread's stack stays mapped while it runs), so the
 * slots it reads are mapped. Walks that stopped at max frames, on other
 * stacks (sigaltstack, coroutines: they end elsewhere), through more than
 * HK_PROF_STK_SLOTS frames, or with a slot that does not hold its frame's
 * return address when the walk is kept (a frame a signal interrupted) are
 * not kept. The cache is mapped on the
 * thread's first learned walk and unmapped at its exit; owner-only, and
 * the profiler never samples inside itself (hk_prof_busy), so nothing
 * else writes an entry while one is checked or written. */
#define _GNU_SOURCE
#include "prof/prof.h"

#include <dlfcn.h>
#include <execinfo.h>
#include <link.h>
#include <unistd.h>

#include "os/os.h"

uintptr_t hk_prof_self_lo, hk_prof_self_hi; /* our text; 0, 0 in a static link */
int (*hk_prof_unwind)(int (*)(void *, void *), void *);
static uintptr_t (*hk_prof_get_ip)(void *ctx);
static uintptr_t (*hk_prof_get_cfa)(void *ctx);
static uintptr_t hk_prof_libc_lo, hk_prof_libc_hi; /* libc's text; 0, 0: learn nothing */

#define HK_PROF_RUNS    8 /* distinct outermost runs: one per kind of thread start */
#define HK_PROF_RUN_MAX 4 /* frames in a run */
enum { HK_RUN_EMPTY, HK_RUN_SEEN, HK_RUN_TRUSTED, HK_RUN_DISTRUSTED };
typedef struct hk_prof_run {
  _Atomic uintptr_t key;   /* the run's first return address; 0: free slot */
  _Atomic uint32_t state;
  uint32_t n;
  uintptr_t frames[HK_PROF_RUN_MAX];
} hk_prof_run;
static hk_prof_run hk_prof_runs[HK_PROF_RUNS];

/* _Unwind_Reason_Code values (unwind.h): the callback's "go on", and
 * _Unwind_Backtrace's natural end. */
#define HK_URC_NO_REASON    0
#define HK_URC_END_OF_STACK 5

static bool hk_in(uintptr_t a, uintptr_t lo, uintptr_t hi) { return a >= lo && a < hi; }

int hk_prof_walk_frame(void *ctx, void *arg) {
  hk_prof_walk *w = arg;
  uintptr_t ip = hk_prof_get_ip(ctx);
  if (ip == 0) return HK_URC_NO_REASON; /* the outermost context (glibc's backtrace drops it too) */
  if (w->raw_n <= HK_PROF_STK_SLOTS) {
    w->raw_ip[w->raw_n] = ip;
    w->raw_cfa[w->raw_n] = hk_prof_get_cfa(ctx);
  }
  w->raw_n++;
  if (!w->ours_done) {
    if (hk_in(ip, hk_prof_self_lo, hk_prof_self_hi)) return HK_URC_NO_REASON;
    w->ours_done = true;
  }
  if (hk_in(ip, hk_prof_libc_lo, hk_prof_libc_hi)) {
    for (unsigned i = 0; i < HK_PROF_RUNS; i++) {
      hk_prof_run *r = &hk_prof_runs[i];
      /* Acquire: pairs with the release that trusted it (its frames). */
      if (hk_load_relaxed(&r->key) != ip || hk_load_acquire(&r->state) != HK_RUN_TRUSTED) continue;
      if (w->depth < w->max) w->frames[w->depth++] = ip;
      for (unsigned j = 0; j < r->n && w->depth < w->max; j++) w->frames[w->depth++] = r->frames[j];
      w->cut = true;
      return HK_URC_END_OF_STACK;
    }
  }
  if (w->depth == w->max) {
    w->full = true;
    return HK_URC_END_OF_STACK;
  }
  w->frames[w->depth++] = ip;
  return HK_URC_NO_REASON;
}

/* A walk that ended by itself: learn, or check, its outermost libc run. */
static void hk_prof_learn(const uintptr_t *f, unsigned d) {
  unsigned first = d - 1; /* the last frame may lie anywhere (_start is the program's) */
  while (first > 0 && hk_in(f[first - 1], hk_prof_libc_lo, hk_prof_libc_hi)) first--;
  /* The key must be libc's, follow a frame of the program's, and the run be short. */
  if (!hk_in(f[first], hk_prof_libc_lo, hk_prof_libc_hi) || first == 0 || d - first > HK_PROF_RUN_MAX) return;
  uintptr_t key = f[first];
  unsigned n = d - first;
  for (unsigned i = 0; i < HK_PROF_RUNS; i++) {
    hk_prof_run *r = &hk_prof_runs[i];
    uintptr_t k = hk_load_relaxed(&r->key);
    if (k == 0) {
      /* acq_rel: the slot is ours to fill; a rival claim makes us look at its key. */
      if (!hk_cas_strong_acq_rel(&r->key, &k, key)) {
        if (k != key) continue;
      } else {
        r->n = n - 1;
        for (unsigned j = 1; j < n; j++) r->frames[j - 1] = f[first + j];
        hk_store_release(&r->state, HK_RUN_SEEN); /* pairs with the readers' acquire */
        return;
      }
    }
    if (k != key) continue;
    uint32_t st = hk_load_acquire(&r->state); /* pairs with the claimer's release */
    if (st != HK_RUN_SEEN) return; /* still being written, or settled */
    bool same = r->n == n - 1;
    for (unsigned j = 1; same && j < n; j++) same = r->frames[j - 1] == f[first + j];
    /* Release: the frames, read by walks that see TRUSTED with acquire. */
    hk_cas_strong_acq_rel(&r->state, &st, same ? HK_RUN_TRUSTED : HK_RUN_DISTRUSTED);
    return;
  }
}

/* ---- the stack cache ------------------------------------------------------ */

#define HK_PROF_STK_ENTRIES 16
#define HK_PROF_STK_FRAMES  32 /* frames of a result kept: deeper stacks are not learned */
typedef struct hk_prof_stk_entry {
  uintptr_t cfa; /* the key; 0: empty */
  uint32_t nslots, depth;
  /* The stack's number in the side table plus 1, filled by the first
   * record (prof/table.c); 0: not known. Stacks are never removed from the
   * table, so a number stays right for as long as the entry holds these
   * frames (a fork child's table and cache are the parent's copies). */
  uint32_t stack_no;
  uint32_t off[HK_PROF_STK_SLOTS];  /* slot address - (cfa - 8): the first is 0 */
  uintptr_t val[HK_PROF_STK_SLOTS]; /* the return address it held */
  uintptr_t frames[HK_PROF_STK_FRAMES];
} hk_prof_stk_entry;
typedef struct hk_prof_stk {
  hk_prof_stk_entry e[HK_PROF_STK_ENTRIES];
  uint64_t hits; /* samples taken from the cache (hk_prof_stack_hits, for tests) */
} hk_prof_stk;
#define HK_PROF_STK_BYTES ((sizeof(hk_prof_stk) + HK_PAGE_SIZE - 1) & ~(size_t)(HK_PAGE_SIZE - 1))
#define HK_PROF_STK_NONE ((hk_prof_stk *)1) /* exited, or the mapping failed: no cache */

/* Initial-exec TLS: no allocation on first use. */
static __thread hk_prof_stk *hk_prof_stk_tls __attribute__((tls_model("initial-exec")));

/* Stacks are 16-byte aligned at calls: the CFA's low bits are always 0. */
static hk_prof_stk_entry *hk_prof_stk_slot(hk_prof_stk *t, uintptr_t cfa) {
  return &t->e[(cfa >> 4) & (HK_PROF_STK_ENTRIES - 1)];
}

/* A word of this thread's stack above the caller's frame: a return-address
 * slot, which no sanitizer has poisoned or tracks. */
__attribute__((no_sanitize("address", "thread"))) static uintptr_t hk_prof_stack_word(uintptr_t at) {
  return *(const volatile uintptr_t *)at;
}

unsigned hk_prof_stack_hit(uintptr_t cfa, uintptr_t *frames, unsigned max, uint32_t **stack_no) {
  hk_prof_stk *t = hk_prof_stk_tls;
  if (t == NULL || t == HK_PROF_STK_NONE) return 0;
  hk_prof_stk_entry *e = hk_prof_stk_slot(t, cfa);
  if (e->cfa != cfa) return 0;
  for (uint32_t j = 0; j < e->nslots; j++)
    if (hk_prof_stack_word(cfa - sizeof(uintptr_t) + e->off[j]) != e->val[j]) return 0;
  unsigned n = e->depth < max ? e->depth : max;
  for (unsigned i = 0; i < n; i++) frames[i] = e->frames[i];
  if (n == e->depth) *stack_no = &e->stack_no; /* a cut stack is another one */
  t->hits++;
  return n;
}

/* Keep w's stack, if it reached the outermost frames (see the header). */
static void hk_prof_stack_learn(hk_prof_walk *w) {
  unsigned nslots = w->raw_n - 1;
  if (w->cfa0 == 0 || w->raw_n < 2 || nslots > HK_PROF_STK_SLOTS || w->depth > HK_PROF_STK_FRAMES ||
      w->depth == 0 || w->raw_cfa[1] != w->cfa0)
    return;
  hk_prof_stk *t = hk_prof_stk_tls;
  if (t == HK_PROF_STK_NONE) return;
  if (t == NULL) {
    t = hk_os_map(HK_PROF_STK_BYTES); /* zeroed: every entry empty */
    hk_prof_stk_tls = t != NULL ? t : HK_PROF_STK_NONE;
    if (t == NULL) return;
  }
  hk_prof_stk_entry *e = hk_prof_stk_slot(t, w->cfa0);
  e->cfa = 0;
  uintptr_t base = w->cfa0 - sizeof(uintptr_t); /* the sampling function's own return-address slot */
  for (unsigned j = 0; j < nslots; j++) {
    /* Frame j+1's ip, pushed by its call just under the stack pointer it
     * had then, which libgcc reports as its CFA (the callee's CFA: for
     * frame 1, the sampling function's own, checked above). Frame 0 is
     * the sampling function itself, its ip a slot in the unwinder's frame. */
    uintptr_t slot = w->raw_cfa[j + 1] - sizeof(uintptr_t);
    if (slot < base || slot - base > UINT32_MAX) return; /* outward only: a stack grows down */
    /* Where a frame's ip is not a pushed return address (the frame a
     * signal interrupted: its ip is in the signal frame's saved context),
     * the slot does not hold it: such a stack is not kept. */
    if (hk_prof_stack_word(slot) != w->raw_ip[j + 1]) return;
    e->off[j] = (uint32_t)(slot - base);
    e->val[j] = w->raw_ip[j + 1];
  }
  for (unsigned i = 0; i < w->depth; i++) e->frames[i] = w->frames[i];
  e->nslots = nslots;
  e->depth = w->depth;
  e->stack_no = 0;
  e->cfa = w->cfa0;
  w->stack_no = &e->stack_no;
}

uint64_t hk_prof_stack_hits(void) {
  hk_prof_stk *t = hk_prof_stk_tls;
  return t == NULL || t == HK_PROF_STK_NONE ? 0 : t->hits;
}

void hk_prof_thread_exit(void) {
  hk_prof_stk *t = hk_prof_stk_tls;
  hk_prof_stk_tls = HK_PROF_STK_NONE;
  if (t != NULL && t != HK_PROF_STK_NONE) hk_os_unmap(t, HK_PROF_STK_BYTES);
}

void hk_prof_walk_end(hk_prof_walk *w, int rc) {
  if (rc == HK_URC_END_OF_STACK && !w->cut && !w->full && w->depth >= 2 && hk_prof_libc_hi != 0)
    hk_prof_learn(w->frames, w->depth);
  /* Ended at the outermost frame or cut at a learned start run (the
   * callback's stop makes _Unwind_Backtrace report an error): keep it. */
  if (!w->full && (w->cut || rc == HK_URC_END_OF_STACK)) hk_prof_stack_learn(w);
}

/* The text segment holding addr, unless it is the program's (0, 0). */
typedef struct hk_find_self {
  uintptr_t addr;
  bool first;
  uintptr_t lo, hi;
} hk_find_self;

static int hk_find_self_cb(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)size;
  hk_find_self *f = arg;
  bool is_program = f->first; /* dl_iterate_phdr lists the program first */
  f->first = false;
  for (unsigned i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X)) continue;
    uintptr_t lo = info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;
    if (f->addr < lo || f->addr >= hi) continue;
    if (!is_program) {
      f->lo = lo;
      f->hi = hi;
    }
    return 1;
  }
  return 0;
}

void hk_prof_capture_init(void) {
  hk_find_self f = {(uintptr_t)&hk_prof_capture_init, true, 0, 0};
  dl_iterate_phdr(hk_find_self_cb, &f);
  hk_prof_self_lo = f.lo;
  hk_prof_self_hi = f.hi;
  void *warm[4];
  backtrace(warm, 4); /* loads libgcc_s now, allocating outside any malloc */
  /* libc's text, unless libc is the program (a static link): learn nothing.
   * Found by getpid, which no sanitizer intercepts (ASan's backtrace is its
   * own, in the program). */
  hk_find_self c = {(uintptr_t)&getpid, true, 0, 0};
  dl_iterate_phdr(hk_find_self_cb, &c);
  /* The unwinder backtrace() just loaded; RTLD_NOLOAD: never a new load. */
  void *gcc = dlopen("libgcc_s.so.1", RTLD_NOW | RTLD_NOLOAD);
  if (gcc == NULL) return;
  void *bt = dlsym(gcc, "_Unwind_Backtrace"), *ip = dlsym(gcc, "_Unwind_GetIP"), *cfa = dlsym(gcc, "_Unwind_GetCFA");
  if (bt == NULL || ip == NULL || cfa == NULL) return;
  hk_prof_libc_lo = c.lo;
  hk_prof_libc_hi = c.hi;
  hk_prof_get_ip = (uintptr_t(*)(void *))ip;
  hk_prof_get_cfa = (uintptr_t(*)(void *))cfa;
  hk_prof_unwind = (int (*)(int (*)(void *, void *), void *))bt;
}
