/* test_sizeclass.c -- size to class, through the internal headers, linked
 * from libhakmem.a: the 16-byte table (sizes up to HK_TABLE_MAX, malloc's
 * inlined lookup) and the KiB table above it must name the smallest class
 * that fits, for every size; a table entry off by one hands out a
 * block too small (a heap overflow by the allocator) or wastes a class;
 * and the sizes by class times 16 must be the sizes by class. */
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

Test(sizeclass, the_kib_table_serves_only_sizes_where_classes_are_whole_kib) {
  /* hk_class_medium's premise: above the 16-byte table every class is a
   * multiple of 1 KiB, and the table's first size above it is a class. */
  for (unsigned c = 0; c < HK_NCLASSES; c++)
    if (hk_class_size[c] > HK_TABLE_MAX)
      cr_assert(hk_class_size[c] % 1024 == 0, "class %u of %u bytes above the table", c, (unsigned)hk_class_size[c]);
  cr_assert(HK_TABLE_MAX % 1024 == 0 && hk_class_size[hk_class_small(HK_TABLE_MAX)] == HK_TABLE_MAX);
}

Test(sizeclass, the_16_byte_table_holds_whole_thread_cache_offsets) {
  /* The malloc fast path adds the entry to the heap's thread-cache array
   * as it is: an entry that is not the class times 16 would point inside
   * another class's cache. */
  for (size_t n = 0; n <= HK_TABLE_MAX; n++)
    cr_assert(hk_class_x16_small(n) == 16 * hk_class_small(n) && hk_class_x16_small(n) % 16 == 0,
              "size %zu: entry %u", n, hk_class_x16_small(n));
}

/* hk_class_size_x16, indexed by a class times 16 (the hardened fast paths'
 * room, usable_size), holds the same sizes as hk_class_size: an entry off
 * would misplace every canary of its class. */
Test(sizeclass, the_x16_size_table_agrees_with_the_class_sizes) {
  for (unsigned c = 0; c < HK_NCLASSES; c++)
    cr_assert(hk_class_size_of_x16(c * 16) == hk_class_size[c], "class %u: %u by 16, %u by class", c,
              (unsigned)hk_class_size_of_x16(c * 16), (unsigned)hk_class_size[c]);
}
