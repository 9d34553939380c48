/* dump.c -- the profile as files and reports: the heap-profile text format
 * google-pprof and jeprof read, folded stacks for flame graphs, and the
 * at-exit lists of sites (live blocks: HAKMEM_PROF_LEAKS; most bytes
 * allocated: HAKMEM_PROF_TOP); the dump on HAKMEM_PROF_SIGNAL.
 *
 * Heap format (gperftools' heap-profile v1, "@ heapprofile"):
 *   heap profile: <live n>: <live bytes> [<total n>: <total bytes>] @ heapprofile
 *   <live n>: <live bytes> [<total n>: <total bytes>] @ 0xpc 0xpc ...
 *   ...
 *   MAPPED_LIBRARIES:
 *   <a copy of /proc/self/maps>
 * The figures are estimates of the true totals already: each sample
 * counts 1/p allocations of its size, p its exact inclusion probability
 * (sample.c). With "@ heapprofile" pprof takes them as they are; with
 * "heap_v2/<rate>" it would unsample per stack from the stack's average
 * size, which is wrong for a stack that allocates mixed sizes. pprof
 * subtracts 1 from every address but the first to point into the call;
 * the first is written as pc - 1 here for the same reason.
 *
 * Writing the heap format is async-signal-safe (open, read, write,
 * rename; no malloc, no stdio), so a signal's dump runs in the handler, or
 * in whoever held the table's lock when it came (table.c). Folded stacks
 * and the reports name frames with dladdr, so they are not for handlers. */
#define _GNU_SOURCE
#include "prof/prof.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h> /* rename() only: no stdio stream is used */
#include <unistd.h>

#include "hakmem.h"
#include "util/diag.h"
#include "util/options.h"

#define HK_EXPORT __attribute__((visibility("default")))

static pid_t hk_prof_start_pid;
static _Atomic unsigned hk_prof_dump_seq; /* %n of signal dumps */

void hk_prof_note_start_pid(void) { hk_prof_start_pid = getpid(); }

/* ---- a buffered writer on a file descriptor --------------------------------- */

typedef struct hk_w {
  int fd;
  bool failed;
  size_t len;
  char buf[2048];
} hk_w;

static void hk_w_flush(hk_w *w) {
  size_t off = 0;
  while (off < w->len && !w->failed) {
    ssize_t n = write(w->fd, w->buf + off, w->len - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) w->failed = true;
    else off += (size_t)n;
  }
  w->len = 0;
}

static void hk_w_mem(hk_w *w, const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (w->len == sizeof w->buf) hk_w_flush(w);
    w->buf[w->len++] = s[i];
  }
}

static void hk_w_str(hk_w *w, const char *s) {
  size_t n = 0;
  while (s[n] != '\0') n++;
  hk_w_mem(w, s, n);
}

static void hk_w_u64(hk_w *w, uint64_t v) {
  char d[HK_FMT_MAX];
  hk_w_mem(w, d, hk_fmt_dec(d, v));
}

static void hk_w_hex(hk_w *w, uint64_t v) {
  char d[HK_FMT_MAX];
  hk_w_mem(w, d, hk_fmt_hex(d, v));
}

static uint64_t hk_round(double x) { return x <= 0 ? 0 : (uint64_t)(x + 0.5); }

/* ---- file names ---------------------------------------------------------------- */

/* pattern with %p (pid), %n (seq) and %% expanded into out; a fork child's
 * name gets ".<pid>" when the pattern has no %p, so it never overwrites its
 * parent's file. False when it does not fit. */
static bool hk_expand(const char *pattern, unsigned seq, char *out, size_t cap) {
  size_t n = 0;
  bool has_pid = false;
  hk_w tmp = {.fd = -1}; /* the digits of a number */
  for (const char *s = pattern; *s != '\0'; s++) {
    const char *piece = s;
    size_t len = 1;
    if (s[0] == '%' && (s[1] == 'p' || s[1] == 'n')) {
      has_pid |= s[1] == 'p';
      tmp.len = 0;
      hk_w_u64(&tmp, s[1] == 'p' ? (uint64_t)getpid() : seq);
      piece = tmp.buf;
      len = tmp.len;
      s++;
    } else if (s[0] == '%' && s[1] == '%') {
      s++;
    }
    if (n + len >= cap) return false;
    for (size_t i = 0; i < len; i++) out[n++] = piece[i];
  }
  if (!has_pid && hk_prof_start_pid != 0 && getpid() != hk_prof_start_pid) {
    tmp.len = 0;
    hk_w_str(&tmp, ".");
    hk_w_u64(&tmp, (uint64_t)getpid());
    if (n + tmp.len >= cap) return false;
    for (size_t i = 0; i < tmp.len; i++) out[n++] = tmp.buf[i];
  }
  out[n] = '\0';
  return true;
}

/* ---- the heap format ------------------------------------------------------------ */

static void hk_w_maps(hk_w *w) {
  hk_w_str(w, "\nMAPPED_LIBRARIES:\n");
  hk_w_flush(w);
  int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  for (;;) {
    ssize_t n = read(fd, w->buf, sizeof w->buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    w->len = (size_t)n;
    hk_w_flush(w);
  }
  close(fd);
}

/* Lock held. */
static void hk_write_heap(hk_w *w) {
  double n = 0, b = 0, tn = 0, tb = 0;
  size_t count = hk_prof_stack_count();
  for (size_t i = 0; i < count; i++) {
    const hk_prof_stack *s = hk_prof_stack_at(i);
    n += s->est_live_count;
    b += s->est_live_bytes;
    tn += s->est_total_count;
    tb += s->est_total_bytes;
  }
  hk_w_str(w, "heap profile: ");
  hk_w_u64(w, hk_round(n));
  hk_w_str(w, ": ");
  hk_w_u64(w, hk_round(b));
  hk_w_str(w, " [");
  hk_w_u64(w, hk_round(tn));
  hk_w_str(w, ": ");
  hk_w_u64(w, hk_round(tb));
  hk_w_str(w, "] @ heapprofile\n");
  for (size_t i = 0; i < count; i++) {
    const hk_prof_stack *s = hk_prof_stack_at(i);
    const uintptr_t *f = hk_prof_frames_of(s);
    hk_w_u64(w, hk_round(s->est_live_count));
    hk_w_str(w, ": ");
    hk_w_u64(w, hk_round(s->est_live_bytes));
    hk_w_str(w, " [");
    hk_w_u64(w, hk_round(s->est_total_count));
    hk_w_str(w, ": ");
    hk_w_u64(w, hk_round(s->est_total_bytes));
    hk_w_str(w, "] @");
    for (unsigned d = 0; d < s->depth; d++) {
      hk_w_str(w, " ");
      hk_w_hex(w, d == 0 ? f[d] - 1 : f[d]);
    }
    hk_w_str(w, "\n");
  }
  hk_w_maps(w);
}

/* Lock held. */
static void hk_write_folded(hk_w *w);

/* Lock held: write one format to the file `path` names (expanded), through
 * a temporary name renamed at the end so that a reader never sees half a
 * profile. 0, or -1 with errno. */
static int hk_dump_to(const char *pattern, unsigned seq, bool folded) {
  char path[PATH_MAX], tmp[PATH_MAX + 8];
  if (!hk_expand(pattern, seq, path, sizeof path)) {
    errno = ENAMETOOLONG;
    return -1;
  }
  size_t n = 0;
  for (; path[n] != '\0'; n++) tmp[n] = path[n];
  for (const char *s = ".tmp"; *s != '\0'; s++) tmp[n++] = *s;
  tmp[n] = '\0';
  hk_w w = {.fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)};
  if (w.fd < 0) return -1;
  if (folded) hk_write_folded(&w);
  else hk_write_heap(&w);
  hk_w_flush(&w);
  int e = w.failed ? errno : 0;
  if (close(w.fd) != 0 && e == 0) e = errno;
  if (e == 0 && rename(tmp, path) != 0) e = errno;
  if (e != 0) {
    unlink(tmp);
    errno = e;
    return -1;
  }
  return 0;
}

void hk_prof_dump_pending(void) {
  int saved = errno;
  const char *pattern = hk_opt_str(prof_signal_path);
  if (*pattern == '\0') pattern = "/tmp/hakmem.%p.%n.heap";
  hk_dump_to(pattern, hk_add_relaxed(&hk_prof_dump_seq, 1u), false);
  errno = saved;
}

static void hk_prof_on_signal(int sig) {
  (void)sig;
  int saved = errno;
  hk_prof_request_dump();
  errno = saved;
}

void hk_prof_signal_install(void) {
  int sig = (int)hk_opt_get(prof_signal);
  if (sig == 0) return;
  struct sigaction sa = {.sa_handler = hk_prof_on_signal, .sa_flags = SA_RESTART};
  sigemptyset(&sa.sa_mask);
  sigaction(sig, &sa, NULL);
}

static int hk_dump_api(const char *path, bool folded) {
  if (!hk_prof_on()) {
    errno = ENOTSUP;
    return -1;
  }
  if (path == NULL || *path == '\0') {
    errno = EINVAL;
    return -1;
  }
  hk_prof_lock();
  int r = hk_dump_to(path, hk_add_relaxed(&hk_prof_dump_seq, 1u), folded);
  int e = errno;
  hk_prof_unlock();
  errno = e;
  return r;
}

HK_EXPORT int hak_prof_dump(const char *path) { return hk_dump_api(path, false); }
HK_EXPORT int hak_prof_dump_folded(const char *path) { return hk_dump_api(path, true); }

/* ---- names of frames --------------------------------------------------------------- */

/* The frame at return address pc: "function" when dladdr knows its symbol,
 * else "object+0xoffset", else "0xpc". */
static void hk_w_frame(hk_w *w, uintptr_t pc, bool with_object) {
  Dl_info info;
  if (dladdr((void *)(pc - 1), &info) == 0 || info.dli_fname == NULL) {
    hk_w_hex(w, pc);
    return;
  }
  const char *obj = info.dli_fname, *base = obj;
  for (const char *s = obj; *s != '\0'; s++)
    if (*s == '/') base = s + 1;
  if (info.dli_sname != NULL) {
    hk_w_str(w, info.dli_sname);
    if (with_object) {
      hk_w_str(w, "+");
      hk_w_hex(w, pc - (uintptr_t)info.dli_saddr);
      hk_w_str(w, " (");
      hk_w_str(w, *base != '\0' ? base : "program");
      hk_w_str(w, ")");
    }
    return;
  }
  hk_w_str(w, *base != '\0' ? base : "program");
  hk_w_str(w, "+");
  hk_w_hex(w, pc - (uintptr_t)info.dli_fbase);
}

/* Folded stacks, outermost frame first, one line per stack with live
 * blocks: `main;parse;xmalloc_site 123456` (estimated live bytes). */
static void hk_write_folded(hk_w *w) {
  size_t count = hk_prof_stack_count();
  for (size_t i = 0; i < count; i++) {
    const hk_prof_stack *s = hk_prof_stack_at(i);
    uint64_t bytes = hk_round(s->est_live_bytes);
    if (s->live == 0 || bytes == 0) continue;
    const uintptr_t *f = hk_prof_frames_of(s);
    for (unsigned d = s->depth; d-- > 0;) {
      hk_w_frame(w, f[d], false);
      if (d != 0) hk_w_str(w, ";");
    }
    hk_w_str(w, " ");
    hk_w_u64(w, bytes);
    hk_w_str(w, "\n");
  }
}

/* ---- at exit ------------------------------------------------------------------------ */

static void hk_w_size(hk_w *w, double bytes) {
  static const char *const unit[] = {" B", " KiB", " MiB", " GiB", " TiB"};
  unsigned u = 0;
  while (bytes >= 1024 && u < 4) {
    bytes /= 1024;
    u++;
  }
  uint64_t tenths = hk_round(bytes * 10);
  hk_w_u64(w, tenths / 10);
  if (u != 0) {
    hk_w_str(w, ".");
    hk_w_u64(w, tenths % 10);
  }
  hk_w_str(w, unit[u]);
}

/* On stderr, lock held: the `limit` sites with the most estimated live
 * bytes (live) or bytes allocated (!live), largest first, each with its
 * innermost frames. */
static void hk_report(bool live, size_t limit) {
  static uint64_t shown[HK_PROF_STACKS / 64]; /* at exit, one thread: no need for the stack */
  for (size_t i = 0; i < HK_PROF_STACKS / 64; i++) shown[i] = 0;
  hk_w w = {.fd = 2};
  size_t count = hk_prof_stack_count(), listed = 0;
  double all = 0;
  for (size_t i = 0; i < count; i++) {
    const hk_prof_stack *s = hk_prof_stack_at(i);
    all += live ? s->est_live_bytes : s->est_total_bytes;
  }
  hk_w_str(&w, "hakmem: prof (pid ");
  hk_w_u64(&w, (uint64_t)getpid());
  hk_w_str(&w, live ? "): still live at exit, by allocation site (estimated from samples, 1 per " :
                      "): bytes allocated, by allocation site (estimated from samples, 1 per ");
  hk_w_u64(&w, hk_prof_rate());
  hk_w_str(&w, " bytes): ");
  hk_w_size(&w, all);
  hk_w_str(&w, " in all\n");
  while (listed < limit) {
    size_t best = count;
    double best_bytes = 0;
    for (size_t i = 0; i < count; i++) {
      const hk_prof_stack *s = hk_prof_stack_at(i);
      double b = live ? s->est_live_bytes : s->est_total_bytes;
      if ((live && s->live == 0) || b <= best_bytes || (shown[i / 64] >> (i % 64) & 1)) continue;
      best = i;
      best_bytes = b;
    }
    if (best == count) break;
    shown[best / 64] |= (uint64_t)1 << (best % 64);
    const hk_prof_stack *s = hk_prof_stack_at(best);
    hk_w_str(&w, "hakmem:   ");
    hk_w_size(&w, best_bytes);
    hk_w_str(&w, " (");
    hk_w_u64(&w, all > 0 ? hk_round(100 * best_bytes / all) : 0);
    hk_w_str(&w, "%) in ");
    hk_w_u64(&w, hk_round(live ? s->est_live_count : s->est_total_count));
    hk_w_str(&w, live ? " blocks from\n" : " allocations from\n");
    const uintptr_t *f = hk_prof_frames_of(s);
    for (unsigned d = 0; d < s->depth && d < 8; d++) {
      hk_w_str(&w, "hakmem:     #");
      hk_w_u64(&w, d);
      hk_w_str(&w, " ");
      hk_w_frame(&w, f[d], true);
      hk_w_str(&w, "\n");
    }
    listed++;
  }
  if (listed == 0) hk_w_str(&w, "hakmem:   (none)\n");
  hk_w_flush(&w);
}

void hk_prof_at_exit(void) {
  if (!hk_prof_on()) return;
  int saved = errno;
  const char *path = hk_opt_str(prof_dump_at_exit);
  hk_prof_lock();
  if (*path != '\0' && hk_dump_to(path, hk_add_relaxed(&hk_prof_dump_seq, 1u), false) != 0) {
    hk_w w = {.fd = 2};
    hk_w_str(&w, "hakmem: HAKMEM_PROF_DUMP_AT_EXIT: cannot write ");
    hk_w_str(&w, path);
    hk_w_str(&w, "\n");
    hk_w_flush(&w);
  }
  if (hk_opt_get(prof_top) != 0) hk_report(false, hk_opt_get(prof_top));
  if (hk_opt_get(prof_leaks)) hk_report(true, 20);
  hk_prof_unlock();
  errno = saved;
}
