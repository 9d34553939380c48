/* diag.c -- the formatter, the bad-free policy and the failure trace. */
#include "util/diag.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include "hk_config.h"
#include "util/options.h"
#include "util/stats.h"

void hk_line_str(hk_line *l, const char *s) {
  while (*s && l->len < sizeof(l->buf) - 1) l->buf[l->len++] = *s++;
}

void hk_line_hex(hk_line *l, unsigned long v) {
  char tmp[2 + 16];
  int n = 0;
  do { tmp[n++] = "0123456789abcdef"[v & 15]; v >>= 4; } while (v);
  hk_line_str(l, "0x");
  while (n > 0 && l->len < sizeof(l->buf) - 1) l->buf[l->len++] = tmp[--n];
}

void hk_line_dec(hk_line *l, unsigned long v) {
  char tmp[24];
  int n = 0;
  do { tmp[n++] = (char)('0' + v % 10); v /= 10; } while (v);
  while (n > 0 && l->len < sizeof(l->buf) - 1) l->buf[l->len++] = tmp[--n];
}

void hk_line_emit(hk_line *l) {
  int saved = errno;
  l->buf[l->len++] = '\n';
  size_t off = 0;
  while (off < l->len) {
    ssize_t w = write(2, l->buf + off, l->len - off);
    if (w <= 0) break;
    off += (size_t)w;
  }
  errno = saved;
}

void hk_bad_free(const void *p, const char *what, int is_double) {
  hk_options_init();
  int policy = is_double ? hk_opt_get(double_free) : hk_opt_get(invalid_free);
  hk_stat_invalid_free();
  if (policy == HK_POLICY_IGNORE) return;
  hk_line l = {.len = 0};
  hk_line_str(&l, is_double ? "hakmem: double free of " : "hakmem: invalid free of ");
  hk_line_hex(&l, (unsigned long)p);
  hk_line_str(&l, " (");
  hk_line_str(&l, what);
  hk_line_str(&l, policy == HK_POLICY_ABORT ? "); aborting" : "); ignored");
  hk_line_emit(&l);
  if (policy == HK_POLICY_ABORT) abort();
}

void hk_fatal(const char *bug, const void *addr) {
  hk_line l = {.len = 0};
  hk_line_str(&l, "hakmem: ");
  hk_line_str(&l, bug);
  hk_line_str(&l, " at ");
  hk_line_hex(&l, (unsigned long)addr);
  hk_line_emit(&l);
  abort();
}

void hk_trace_failure(size_t size, const char *why) {
  hk_options_init();
  if (!hk_opt_get(trace_failures)) return;
  hk_line l = {.len = 0};
  hk_line_str(&l, "hakmem: allocation of ");
  hk_line_dec(&l, size);
  hk_line_str(&l, " bytes failed: ");
  hk_line_str(&l, why);
  hk_line_emit(&l);
}

#ifdef HK_DEBUG
void hk_assert_fail(const char *expr, const char *file, int line) {
  hk_line l = {.len = 0};
  hk_line_str(&l, "hakmem: assertion failed: ");
  hk_line_str(&l, expr);
  hk_line_str(&l, " at ");
  hk_line_str(&l, file);
  hk_line_str(&l, ":");
  hk_line_dec(&l, (unsigned long)line);
  hk_line_emit(&l);
  abort();
}
#endif
