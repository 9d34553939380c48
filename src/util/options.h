/* options.h -- HAKMEM_* environment options, read once at process init by
 * scanning environ (no getenv: it may run before libc is set up). The
 * options themselves (name, type, default, meaning) are in options.def. */
#ifndef HK_OPTIONS_H
#define HK_OPTIONS_H

#include <stddef.h>

#include "hk_atomic.h"
#include "hk_config.h"

/* What to do about a bad free (HAKMEM_INVALID_FREE, HAKMEM_DOUBLE_FREE). */
enum { HK_POLICY_ABORT = 0, HK_POLICY_WARN = 1, HK_POLICY_IGNORE = 2 };

/* The value in effect of each option of options.def (bytes for sizes).
 * Every field holds its default from the start and its parsed value once
 * hk_options_init has run; each is an independent setting and either value
 * is valid at any moment, so the fields are atomics read relaxed: a thread
 * that reads one while the first init stores it sees the old or the new
 * value, never a torn one (the race issue 13 named). Read on slow paths
 * only: the malloc/free fast paths never look at an option. */
typedef struct hk_options {
#define HK_OPTION(NAME, field, kind, dflt, arg, values, meaning) _Atomic size_t field;
#include "util/options.def"
#undef HK_OPTION
} hk_options;

extern hk_options hk_opt;

/* relaxed: an option orders nothing; see hk_options above. */
#define hk_opt_get(field) hk_load_relaxed(&hk_opt.field)
/* A STRING option's value: "" when unset. */
#define hk_opt_str(field) (hk_opt_get(field) != 0 ? (const char *)hk_opt_get(field) : "")

/* Parse the environment once (the first call that finds environ set does
 * it; later calls are no-ops). It warns on stderr about each malformed value
 * (keeping the default) and, with HAKMEM_VERBOSE, lists the options in
 * effect. Safe from any thread at any time, also inside malloc's init: it
 * neither allocates nor uses stdio. A call that races the first parse
 * returns at once and the caller runs on the defaults meanwhile. */
void hk_options_init(void);

#endif /* HK_OPTIONS_H */
