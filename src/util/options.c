/* options.c -- the option table and its environ scan. */
#include "util/options.h"

#include <stddef.h>
#include <string.h>

#include "hk_atomic.h"

extern char **environ;

hk_options hk_opt = {HK_POLICY_WARN, HK_POLICY_ABORT, false, false, HK_DECOMMIT_DELAY_MS,
                     (size_t)HK_LARGE_CACHE_MB << 20, true, 0};
static _Atomic int hk_options_done;

static const char *hk_env(const char *name) {
  size_t n = strlen(name);
  if (environ == NULL) return NULL;
  for (char **e = environ; *e != NULL; e++)
    if (strncmp(*e, name, n) == 0 && (*e)[n] == '=') return *e + n + 1;
  return NULL;
}

static int hk_parse_policy(const char *v, int dflt) {
  if (v == NULL) return dflt;
  if (strcmp(v, "abort") == 0) return HK_POLICY_ABORT;
  if (strcmp(v, "warn") == 0) return HK_POLICY_WARN;
  if (strcmp(v, "ignore") == 0) return HK_POLICY_IGNORE;
  return dflt;
}

static bool hk_parse_bool(const char *v) {
  return v != NULL && (strcmp(v, "1") == 0 || strcmp(v, "yes") == 0 || strcmp(v, "true") == 0 || strcmp(v, "on") == 0);
}

/* A decimal below 2^31, or dflt. */
static unsigned hk_parse_uint(const char *v, unsigned dflt) {
  if (v == NULL || *v == '\0') return dflt;
  unsigned long n = 0;
  for (; *v != '\0'; v++) {
    if (*v < '0' || *v > '9' || n > 0x7fffffffu / 10) return dflt;
    n = n * 10 + (unsigned long)(*v - '0');
  }
  return n > 0x7fffffffu ? dflt : (unsigned)n;
}

/* The table: one row per option, each with its default above. */
void hk_options_init(void) {
  if (hk_load_acquire(&hk_options_done)) return; /* pairs with the release below */
  if (environ == NULL) return;                   /* too early: defaults until environ exists */
  hk_opt.invalid_free = hk_parse_policy(hk_env("HAKMEM_INVALID_FREE"), HK_POLICY_WARN);
  hk_opt.double_free = hk_parse_policy(hk_env("HAKMEM_DOUBLE_FREE"), HK_POLICY_ABORT);
  hk_opt.trace_failures = hk_parse_bool(hk_env("HAKMEM_TRACE_FAILURES"));
  hk_opt.show_stats = hk_parse_bool(hk_env("HAKMEM_SHOW_STATS"));
  hk_opt.decommit_delay_ms = hk_parse_uint(hk_env("HAKMEM_DECOMMIT_DELAY_MS"), HK_DECOMMIT_DELAY_MS);
  hk_opt.large_cache_bytes = (size_t)hk_parse_uint(hk_env("HAKMEM_LARGE_CACHE_MB"), HK_LARGE_CACHE_MB) << 20;
  hk_opt.large_hugepages = hk_parse_uint(hk_env("HAKMEM_LARGE_HUGEPAGES"), 1) != 0;
  hk_opt.quarantine_bytes = hk_parse_uint(hk_env("HAKMEM_QUARANTINE"), 0);
  hk_store_release(&hk_options_done, 1); /* pairs with the acquire above: hk_opt is written */
}
