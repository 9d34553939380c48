/* options.c -- the scanner of options.def: parse, warn, list. */
#include "util/options.h"

#include <stdbool.h>
#include <string.h>

#include "hakmem.h"
#include "util/diag.h"

#ifndef HK_VERSION
#error "HK_VERSION (the project version) is set by CMakeLists.txt"
#endif

extern char **environ;

enum { HK_KIND_BOOL, HK_KIND_POLICY, HK_KIND_UINT, HK_KIND_SIZE, HK_KIND_STRING, HK_KIND_SIGNAL };

typedef struct hk_option_row {
  const char *name;    /* "HAKMEM_..." */
  int kind;
  size_t dflt;         /* in the stored unit */
  size_t arg;          /* UINT: the largest value; SIZE: the unit of a plain number */
  const char *values;
  const char *meaning;
  _Atomic size_t *slot;
} hk_option_row;

hk_options hk_opt = {
#define HK_OPTION(NAME, field, kind, dflt, arg, values, meaning) .field = (dflt),
#include "util/options.def"
#undef HK_OPTION
};

static const hk_option_row hk_rows[] = {
#define HK_OPTION(NAME, field, kind, dflt, arg, values, meaning) \
  {"HAKMEM_" #NAME, HK_KIND_##kind, (dflt), (arg), values, meaning, &hk_opt.field},
#include "util/options.def"
#undef HK_OPTION
};
#define HK_OPTION_COUNT (sizeof(hk_rows) / sizeof(hk_rows[0]))

/* A HAKMEM_VERBOSE=2 line ("hakmem: option", name, type, value, default,
 * values, meaning; a value or default is at most 20 digits) must fit one hk_line:
 * a longer one would be cut, and the listing would lose its end. */
#define HK_OPTION(NAME, field, kind, dflt, arg, values, meaning)                                      \
  _Static_assert(sizeof("hakmem: option\tHAKMEM_" #NAME "\tpolicy") + 2 * 21 + sizeof(values) + sizeof(meaning) < \
                     sizeof(((hk_line *)0)->buf),                                                      \
                 "HAKMEM_" #NAME ": the listing line is too long; shorten its meaning");
#include "util/options.def"
#undef HK_OPTION

static const char *const hk_policy_names[] = {"abort", "warn", "ignore"};
_Static_assert(HK_POLICY_ABORT == 0 && HK_POLICY_WARN == 1 && HK_POLICY_IGNORE == 2,
               "hk_policy_names is indexed by the policy");
static const char *const hk_kind_names[] = {"bool", "policy", "uint", "size", "string", "signal"};

/* SIGNAL options: the names accepted besides numbers (Linux numbering,
 * index = signal number; "" where a name is not worth accepting). */
static const char *const hk_signal_names[] = {
    "", "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV", "USR2", "PIPE",
    "ALRM", "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU", "URG", "XCPU", "XFSZ",
    "VTALRM", "PROF", "WINCH", "IO", "PWR", "SYS"};
#define HK_SIGNAL_NAMES (sizeof(hk_signal_names) / sizeof(hk_signal_names[0]))

/* STRING options' values: copied here by the one parse (options are read
 * once), so they do not depend on environ staying as it was. */
static char hk_str_pool[HK_OPT_STR_POOL];
static size_t hk_str_used;

static const char *hk_env(const char *name) {
  size_t n = strlen(name);
  for (char **e = environ; *e != NULL; e++)
    if (strncmp(*e, name, n) == 0 && (*e)[n] == '=') return *e + n + 1;
  return NULL;
}

static bool hk_in(const char *v, const char *const *names, size_t n, size_t *idx) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(v, names[i]) == 0) {
      *idx = i;
      return true;
    }
  return false;
}

/* A decimal (at least one digit) that fits a size_t; *end is what follows. */
static bool hk_parse_dec(const char *v, size_t *out, const char **end) {
  size_t n = 0;
  const char *s = v;
  for (; *s >= '0' && *s <= '9'; s++)
    if (__builtin_mul_overflow(n, 10, &n) || __builtin_add_overflow(n, (size_t)(*s - '0'), &n)) return false;
  *out = n;
  *end = s;
  return s != v;
}

/* Parses v for row r into *out; false when v is malformed. */
static bool hk_parse(const hk_option_row *r, const char *v, size_t *out) {
  /* Index i of this list is the value i & 1: "0" is 0, "1" is 1, ... */
  static const char *const bools[] = {"0", "1", "no", "yes", "false", "true", "off", "on"};
  const char *end;
  size_t n;
  switch (r->kind) {
    case HK_KIND_BOOL:
      if (!hk_in(v, bools, 8, &n)) return false;
      *out = n & 1;
      return true;
    case HK_KIND_POLICY:
      return hk_in(v, hk_policy_names, 3, out);
    case HK_KIND_UINT:
      return hk_parse_dec(v, out, &end) && *end == '\0' && *out <= r->arg;
    case HK_KIND_STRING: {
      size_t len = strlen(v);
      if (len > r->arg || len + 1 > sizeof hk_str_pool - hk_str_used) return false;
      if (len == 0) {
        *out = 0;
        return true;
      }
      char *copy = hk_str_pool + hk_str_used;
      memcpy(copy, v, len + 1);
      hk_str_used += len + 1;
      *out = (uintptr_t)copy;
      return true;
    }
    case HK_KIND_SIGNAL:
      if (hk_parse_dec(v, out, &end)) return *end == '\0' && *out <= r->arg;
      if (strncmp(v, "SIG", 3) == 0) v += 3;
      return *v != '\0' && hk_in(v, hk_signal_names, HK_SIGNAL_NAMES, out);
    default: { /* HK_KIND_SIZE */
      if (!hk_parse_dec(v, &n, &end)) return false;
      size_t unit = r->arg;
      if (*end != '\0') {
        const char *sfx = strchr("kKmMgG", *end);
        if (sfx == NULL || end[1] != '\0') return false;
        unit = (size_t)1 << (10 * (1 + (sfx - "kKmMgG") / 2));
      }
      return !__builtin_mul_overflow(n, unit, out);
    }
  }
}

/* The value as the option's own syntax writes it: sizes in their unit when
 * they are a whole number of it, else with the largest suffix that divides. */
static void hk_format(hk_line *l, const hk_option_row *r, size_t v) {
  if (r->kind == HK_KIND_POLICY) {
    hk_line_str(l, v < 3 ? hk_policy_names[v] : "?");
    return;
  }
  if (r->kind == HK_KIND_STRING) {
    if (v != 0) hk_line_str(l, (const char *)v);
    return;
  }
  if (r->kind == HK_KIND_SIGNAL && v != 0 && v < HK_SIGNAL_NAMES) {
    hk_line_str(l, hk_signal_names[v]);
    return;
  }
  if (r->kind == HK_KIND_SIZE && v % r->arg != 0) {
    for (int shift = 30; shift >= 10; shift -= 10)
      if (v % ((size_t)1 << shift) == 0) {
        hk_line_dec(l, v >> shift);
        hk_line_str(l, shift == 30 ? "g" : shift == 20 ? "m" : "k");
        return;
      }
  }
  hk_line_dec(l, r->kind == HK_KIND_SIZE ? v / r->arg : v);
}

static void hk_warn_malformed(const hk_option_row *r, const char *v) {
  hk_line l = {.len = 0};
  hk_line_str(&l, "hakmem: ");
  hk_line_str(&l, r->name);
  hk_line_str(&l, "=");
  /* The value as given, cut at 40 bytes and with control characters as
   * '?', so the warning stays one line that ends with what is accepted. */
  char shown[41];
  size_t n = 0;
  for (; v[n] != '\0' && n < 40; n++) shown[n] = (unsigned char)v[n] < 0x20 || v[n] == 0x7f ? '?' : v[n];
  if (v[n] != '\0') memcpy(shown + 37, "...", 3);
  shown[n] = '\0';
  hk_line_str(&l, shown);
  hk_line_str(&l, " is malformed (accepted: ");
  hk_line_str(&l, r->values);
  hk_line_str(&l, "); keeping the default ");
  hk_format(&l, r, r->dflt);
  hk_line_emit(&l);
}

/* HAKMEM_VERBOSE: level 1, one "hakmem: NAME=value" line per option (with
 * its default when it differs); level 2, the whole table row, tab-separated
 * after "hakmem: option": name, type, value in effect, default, accepted
 * values, meaning. That is what `hakmem options` reads. */
static void hk_options_list(const size_t *v, size_t level) {
  hk_line l = {.len = 0};
  hk_line_str(&l, "hakmem: version " HK_VERSION);
  hk_line_emit(&l);
  for (size_t i = 0; i < HK_OPTION_COUNT; i++) {
    const hk_option_row *r = &hk_rows[i];
    l.len = 0;
    if (level >= 2) {
      hk_line_str(&l, "hakmem: option\t");
      hk_line_str(&l, r->name);
      hk_line_str(&l, "\t");
      hk_line_str(&l, hk_kind_names[r->kind]);
      hk_line_str(&l, "\t");
      hk_format(&l, r, v[i]);
      hk_line_str(&l, "\t");
      hk_format(&l, r, r->dflt);
      hk_line_str(&l, "\t");
      hk_line_str(&l, r->values);
      hk_line_str(&l, "\t");
      hk_line_str(&l, r->meaning);
    } else {
      hk_line_str(&l, "hakmem: ");
      hk_line_str(&l, r->name);
      hk_line_str(&l, "=");
      hk_format(&l, r, v[i]);
      if (v[i] != r->dflt) {
        hk_line_str(&l, " (default ");
        hk_format(&l, r, r->dflt);
        hk_line_str(&l, ")");
      }
    }
    hk_line_emit(&l);
  }
}

/* The one-time parse, a claim on hk_opt_state:
 *   UNSET   --CAS by the first caller that finds environ set-->  CLAIMED
 *   CLAIMED --that caller, once every parsed value is stored-->  DONE
 * Only the claimer parses, warns, lists and stores, so each warning and the
 * listing appear once however many threads make their first call at the
 * same time; the others return at once and run on the defaults until DONE
 * (the fields are atomics, see options.h). No formal/ model: a single
 * writer claimed by one CAS, with no retry and nothing to reclaim. */
enum { HK_OPT_UNSET, HK_OPT_CLAIMED, HK_OPT_DONE };
static _Atomic int hk_opt_state;

void hk_options_init(void) {
  /* acquire: pairs with the release of DONE below, so a caller that sees
   * DONE also sees every parsed value (e.g. hk_bad_free's policy). */
  if (hk_load_acquire(&hk_opt_state) == HK_OPT_DONE) return;
  if (environ == NULL) return; /* too early (ld.so's own calls): defaults until environ exists */
  int st = HK_OPT_UNSET;
  /* relaxed: the claim only elects the one writer; what it writes is
   * published by the release of DONE below. */
  if (!atomic_compare_exchange_strong_explicit(&hk_opt_state, &st, HK_OPT_CLAIMED, memory_order_relaxed,
                                               memory_order_relaxed))
    return;
  size_t v[HK_OPTION_COUNT];
  for (size_t i = 0; i < HK_OPTION_COUNT; i++) {
    const hk_option_row *r = &hk_rows[i];
    const char *s = hk_env(r->name);
    v[i] = r->dflt;
    if (s != NULL && !hk_parse(r, s, &v[i])) {
      v[i] = r->dflt;
      hk_warn_malformed(r, s);
    }
    hk_store_relaxed(r->slot, v[i]);
  }
  hk_store_release(&hk_opt_state, HK_OPT_DONE); /* pairs with the acquire above: the values are stored */
  size_t level = hk_opt_get(verbose);
  if (level > 0) hk_options_list(v, level);
}

HAK_API const char *hak_version(void) { return HK_VERSION; }
