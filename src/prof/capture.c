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
 * stack starts with HAKMEM's sampling function. */
#define _GNU_SOURCE
#include "prof/prof.h"

#include <dlfcn.h>
#include <execinfo.h>
#include <link.h>

uintptr_t hk_prof_self_lo, hk_prof_self_hi; /* our text; 0, 0 in a static link */

typedef struct hk_find_self {
  uintptr_t addr;
  bool first;
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
      hk_prof_self_lo = lo;
      hk_prof_self_hi = hi;
    }
    return 1;
  }
  return 0;
}

void hk_prof_capture_init(void) {
  hk_find_self f = {(uintptr_t)&hk_prof_capture_init, true};
  dl_iterate_phdr(hk_find_self_cb, &f);
  void *warm[4];
  backtrace(warm, 4); /* loads libgcc_s now, allocating outside any malloc */
}
