/* test_prof_math.c -- the profiler's arithmetic without libm (prof/sample.c),
 * through the internal headers, linked from libhakmem.a, against libm:
 * a sample of s bytes stands for 1 / (1 - exp(-s/R)) allocations of its
 * size (R = HAKMEM_PROF_SAMPLE); a series cut short, or one that cancels
 * for small s/R, skews every estimate in every profile. */
#include <math.h>

#include "hk_test.h"
#include "prof/prof.h"

TestSuite(prof_math, .timeout = 60.);

Test(prof_math, sample_weights_match_libm_from_one_byte_to_a_terabyte) {
  double rate = (double)hk_prof_rate();
  double worst = 0;
  size_t worst_at = 0;
  for (double s = 1; s < 0x1p40; s *= 1.01) {
    size_t size = (size_t)s;
    double want = 1.0 / -expm1(-(double)size / rate), got = hk_prof_weight(size);
    double err = fabs(got - want) / want;
    if (err > worst) {
      worst = err;
      worst_at = size;
    }
  }
  cr_log_info("worst relative error %.3g at %zu bytes (rate %.0f)", worst, worst_at, rate);
  cr_assert(worst < 1e-12, "hk_prof_weight(%zu) is off by %.3g of libm's", worst_at, worst);
}

/* The draws' -ln u (u uniform in (0, 1]): intervals between samples that
 * are exponential only as far as the logarithm is right. */
Test(prof_math, ln_matches_libm_from_2_to_the_minus_53_to_1) {
  double worst = 0, worst_at = 0;
  for (double u = 0x1p-53; u <= 1; u *= 1.00001) {
    double want = log(u), got = hk_prof_ln(u);
    double err = want == 0 ? fabs(got) : fabs(got - want) / fabs(want);
    if (err > worst) {
      worst = err;
      worst_at = u;
    }
  }
  cr_log_info("worst relative error %.3g at %.17g", worst, worst_at);
  cr_assert(worst < 1e-13, "hk_prof_ln(%.17g) is off by %.3g of libm's", worst_at, worst);
  cr_assert(hk_prof_ln(1.0) == 0.0, "ln 1 = %g", hk_prof_ln(1.0));
}
