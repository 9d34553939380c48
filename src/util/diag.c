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

/* The digits of v in `base` (10 or 16), most significant first. */
static size_t hk_fmt(char *out, unsigned long v, unsigned base) {
  char tmp[HK_FMT_MAX];
  size_t n = 0, len = 0;
  do { tmp[n++] = "0123456789abcdef"[v % base]; v /= base; } while (v);
  while (n > 0) out[len++] = tmp[--n];
  return len;
}

size_t hk_fmt_dec(char *out, unsigned long v) { return hk_fmt(out, v, 10); }

size_t hk_fmt_hex(char *out, unsigned long v) {
  out[0] = '0';
  out[1] = 'x';
  return 2 + hk_fmt(out + 2, v, 16);
}

/* Appends n bytes of s, as many as fit. */
static void hk_line_mem(hk_line *l, const char *s, size_t n) {
  for (size_t i = 0; i < n && l->len < sizeof(l->buf) - 1; i++) l->buf[l->len++] = s[i];
}

void hk_line_hex(hk_line *l, unsigned long v) {
  char d[HK_FMT_MAX];
  hk_line_mem(l, d, hk_fmt_hex(d, v));
}

void hk_line_dec(hk_line *l, unsigned long v) {
  char d[HK_FMT_MAX];
  hk_line_mem(l, d, hk_fmt_dec(d, v));
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
