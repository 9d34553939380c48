/* test_sizeclass.c -- size to class, through the internal headers, linked
 * from libhakmem.a: the table (sizes up to HK_TABLE_MAX, malloc's inlined
 * lookup) and the bit formula above it must name the same class, the
 * smallest that fits, for every size; a table entry off by one hands out a
 * block too small (a heap overflow by the allocator) or wastes a class. */
#include "core/sizeclass.h"
#include "hk_test.h"

TestSuite(sizeclass, .timeout = 60.);

Test(sizeclass, every_size_gets_the_smallest_class_that_fits) {
  for (size_t n = 1; n <= HK_MAX_SMALL; n++) {
    unsigned c = hk_class_of(n);
    cr_assert(c < HK_NCLASSES, "size %zu: class %u", n, c);
    cr_assert(hk_class_size[c] >= n, "size %zu: class %u of %u bytes is too small", n, c, (unsigned)hk_class_size[c]);
    cr_assert(c == 0 || hk_class_size[c - 1] < n, "size %zu: class %u, but class %u (%u bytes) fits", n, c, c - 1,
              (unsigned)hk_class_size[c - 1]);
  }
}

Test(sizeclass, the_table_and_the_formula_agree_where_both_apply) {
  /* The formula is defined above 128 B (it needs p >= 7). */
  for (size_t n = 129; n <= HK_TABLE_MAX; n++)
    cr_assert(hk_class_small(n) == hk_class_medium(n), "size %zu: table says %u, formula %u", n, hk_class_small(n),
              hk_class_medium(n));
}
