/* sizeclass.h -- size -> class without a loop: a table by 16 bytes for
 * sizes up to 4 KiB (the common case: 257 entries of 2 bytes, nine lines),
 * one by KiB above (129 bytes). Classes: 16-byte steps to 128 B, then 4
 * per power of two (at most 25% spacing) to 128 KiB. */
#ifndef HK_SIZECLASS_H
#define HK_SIZECLASS_H

#include <stddef.h>
#include <stdint.h>

#include "hk_config.h"

/* By 16 bytes: the class times 16, sizeof(hk_tcache), so the malloc fast
 * path indexes the thread cache with it as it is (two instructions fewer
 * than scaling a class index by 16: the addressing modes scale by 8 at most). */
extern const uint16_t hk_class_table[HK_TABLE_MAX / 16 + 1];
extern const uint8_t hk_class_kib_table[HK_MAX_SMALL / 1024 + 1];
extern const uint32_t hk_class_size[HK_NCLASSES];
/* The same sizes, one per 16 bytes, so that a class times 16 (a thread
 * cache's offset: hk_class_table's entries, hk_slab.tc_off) indexes them as
 * it is, with no shift: the hardened fast paths' room, and usable_size. */
extern const uint32_t hk_class_size_x16[HK_NCLASSES][4];
HK_INLINE uint32_t hk_class_size_of_x16(unsigned cls_x16) {
  return *(const uint32_t *)((const char *)hk_class_size_x16 + cls_x16);
}

/* For 0 <= n <= HK_TABLE_MAX: the class times 16, and the class. */
HK_INLINE unsigned hk_class_x16_small(size_t n) { return hk_class_table[(n + 15) >> 4]; }
HK_INLINE unsigned hk_class_small(size_t n) { return hk_class_x16_small(n) >> 4; }

/* For HK_TABLE_MAX < n <= HK_MAX_SMALL. One load, where the leading-bit
 * formula it replaced took eight dependent instructions (callgrind, random
 * 1-32 KiB churn: 35.9 -> 29.6 instructions per malloc). */
HK_INLINE unsigned hk_class_medium(size_t n) { return hk_class_kib_table[(n + 1023) >> 10]; }

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
