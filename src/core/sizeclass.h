/* sizeclass.h -- size -> class without a loop: a table for sizes up to
 * 4 KiB (the common case: 257 bytes, five lines), a few bit operations
 * above. Classes: 16-byte steps to 128 B, then 4 per power of two (at most
 * 25% spacing) to 128 KiB. */
#ifndef HK_SIZECLASS_H
#define HK_SIZECLASS_H

#include <stddef.h>
#include <stdint.h>

#include "hk_config.h"

extern const uint8_t hk_class_table[HK_TABLE_MAX / 16 + 1];
extern const uint32_t hk_class_size[HK_NCLASSES];

/* For 0 <= n <= HK_TABLE_MAX. */
HK_INLINE unsigned hk_class_small(size_t n) { return hk_class_table[(n + 15) >> 4]; }

/* For HK_TABLE_MAX < n <= HK_MAX_SMALL: n-1 = 2^p + r, class by the top
 * three bits below the leading one. */
HK_INLINE unsigned hk_class_medium(size_t n) {
  size_t m = n - 1;
  unsigned p = 63u - (unsigned)__builtin_clzl(m);
  return 8u + (p - 7u) * 4u + (unsigned)((m >> (p - 2u)) & 3u);
}

HK_INLINE unsigned hk_class_of(size_t n) {
  return n <= HK_TABLE_MAX ? hk_class_small(n) : hk_class_medium(n);
}

HK_INLINE int hk_class_kind(unsigned c) {
  return hk_class_size[c] <= HK_SMALL_KIND_MAX ? HK_KIND_SMALL : HK_KIND_MEDIUM;
}

/* The thread cache's size for class c (hk_tcache): at most HK_TC_BYTES of
 * blocks, within [HK_TC_MIN, HK_TC_MAX]. Read on slow paths only, so it
 * lives here rather than in hk_tcache, which the fast paths index. */
extern const uint8_t hk_tc_cap_table[HK_NCLASSES];
HK_INLINE uint32_t hk_tc_cap(unsigned c) { return hk_tc_cap_table[c]; }

#endif /* HK_SIZECLASS_H */
