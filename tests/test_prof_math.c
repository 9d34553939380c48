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
