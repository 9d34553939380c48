/* diag.h -- diagnostics without stdio or malloc: a tiny formatter writing
 * straight to fd 2, the bad-free policy, and the allocation-failure trace. */
#ifndef HK_DIAG_H
#define HK_DIAG_H

#include <stddef.h>

/* Append-only line builder on the stack. */
typedef struct hk_line {
  char buf[256];
  size_t len;
} hk_line;

/* v's digits (decimal, or hex after "0x") into out, which holds
 * HK_FMT_MAX bytes; how many. For the line builder below and any other
 * writer that cannot use stdio (prof/dump.c). */
#define HK_FMT_MAX 24
size_t hk_fmt_dec(char *out, unsigned long v);
size_t hk_fmt_hex(char *out, unsigned long v);

void hk_line_str(hk_line *l, const char *s);
void hk_line_hex(hk_line *l, unsigned long v);
void hk_line_dec(hk_line *l, unsigned long v);
void hk_line_emit(hk_line *l); /* adds '\n', writes to stderr */

/* A bad free of `p`: `what` says which kind. Applies HAKMEM_INVALID_FREE
 * (is_double == 0) or HAKMEM_DOUBLE_FREE (is_double == 1): abort, or one
 * line on stderr, or nothing. Returns only when the policy says continue. */
void hk_bad_free(const void *p, const char *what, int is_double);

/* A memory error the hardened build caught (heap overflow, corrupted
 * free-list link, write after free): "hakmem: <bug> at <addr>", then abort,
 * whatever the bad-free policies say: the heap can no longer be trusted. */
__attribute__((noreturn, cold)) void hk_fatal(const char *bug, const void *addr);

/* HAKMEM_TRACE_FAILURES=1: say why a request of `size` bytes failed. */
void hk_trace_failure(size_t size, const char *why);

#endif /* HK_DIAG_H */
