/* mini_criterion.h -- the part of Criterion's API the tests use, for builds
 * where Criterion itself cannot run: under ThreadSanitizer Criterion's
 * sandbox fails to start ("Could not initialize inheritable arena",
 * Snaipe/Criterion#274). Same spelling (Test, TestSuite, cr_assert,
 * cr_expect, cr_log_info, cr_skip), same model: every test runs in a child process of
 * its own, a failed cr_assert ends the test, a failed cr_expect marks it
 * failed and lets it go on. Options honoured: .init, .fini, .timeout.
 * Command line: --filter SUITE/NAME-glob, --verbose; --jobs N is accepted
 * and ignored (tests run one at a time). */
#ifndef HK_MINI_CRITERION_H
#define HK_MINI_CRITERION_H

struct hk_mc_opts {
  void (*init)(void);
  void (*fini)(void);
  double timeout;
  const char *description;
  int disabled;
};

void hk_mc_register_suite(const char *suite, const struct hk_mc_opts *opts);
void hk_mc_register_test(const char *suite, const char *name, void (*fn)(void), const struct hk_mc_opts *opts);
void hk_mc_fail(int fatal, const char *file, int line, const char *expr, const char *fmt, ...);
void hk_mc_log(const char *fmt, ...);
/* Ends the test as skipped, saying why (Criterion's cr_skip). */
void hk_mc_skip(const char *fmt, ...) __attribute__((noreturn));

#define TestSuite(suite, ...)                                                              \
  static const struct hk_mc_opts hk_mc_suite_opts_##suite = {__VA_ARGS__};                 \
  __attribute__((constructor)) static void hk_mc_reg_suite_##suite(void) {                 \
    hk_mc_register_suite(#suite, &hk_mc_suite_opts_##suite);                               \
  }                                                                                        \
  struct hk_mc_swallow_semicolon_##suite

#define Test(suite, name, ...)                                                             \
  static void suite##_##name(void);                                                        \
  static const struct hk_mc_opts hk_mc_opts_##suite##_##name = {__VA_ARGS__};              \
  __attribute__((constructor)) static void hk_mc_reg_##suite##_##name(void) {              \
    hk_mc_register_test(#suite, #name, suite##_##name, &hk_mc_opts_##suite##_##name);      \
  }                                                                                        \
  static void suite##_##name(void)

#define cr_assert(cond, ...)                                                   \
  do {                                                                         \
    if (!(cond)) hk_mc_fail(1, __FILE__, __LINE__, #cond, "" __VA_ARGS__);     \
  } while (0)

#define cr_expect(cond, ...)                                                   \
  do {                                                                         \
    if (!(cond)) hk_mc_fail(0, __FILE__, __LINE__, #cond, "" __VA_ARGS__);     \
  } while (0)

#define cr_log_info(...) hk_mc_log(__VA_ARGS__)
#define cr_skip(...) hk_mc_skip(__VA_ARGS__)

#endif /* HK_MINI_CRITERION_H */
