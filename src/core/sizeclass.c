/* sizeclass.c -- the class tables (generated; checked by tests/test_sizeclass.c). */
#include "core/sizeclass.h"

const uint8_t hk_class_table[HK_TABLE_MAX / 16 + 1] = {
  0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 12, 12, 13, 13, 13, 13, 14, 14, 14, 14, 15, 15, 15,
  15, 16, 16, 16, 16, 16, 16, 16, 16, 17, 17, 17, 17, 17, 17, 17, 17, 18, 18, 18, 18, 18, 18, 18, 18, 19, 19, 19, 19, 19, 19, 19,
  19, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 21, 21, 21, 21, 21, 21, 21, 21, 21, 21, 21, 21, 21, 21, 21,
  21, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 23, 23, 23, 23, 23, 23, 23, 23, 23, 23, 23, 23, 23, 23, 23,
  23, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24,
  24, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25,
  25, 26, 26, 26, 26, 26, 26, 26, 26, 26, 26, 26, 26, 26, 26, 26, 26, 26, 26, 26, 26, 26, 26, 26, 26, 26, 26, 26, 26, 26, 26, 26,
  26, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27,
  27
};

/* Sizes above HK_TABLE_MAX by KiB: every class from 4 KiB up is a multiple
 * of 1 KiB, so there the smallest class of at least ceil(n / 1 KiB) KiB is
 * n's (the entries up to 4 KiB fit but are not the smallest: unused). */
const uint8_t hk_class_kib_table[HK_MAX_SMALL / 1024 + 1] = {
  0, 19, 23, 25, 27, 28, 29, 30, 31, 32, 32, 33, 33, 34, 34, 35, 35, 36, 36, 36, 36, 37, 37, 37, 37, 38, 38, 38, 38, 39, 39, 39,
  39, 40, 40, 40, 40, 40, 40, 40, 40, 41, 41, 41, 41, 41, 41, 41, 41, 42, 42, 42, 42, 42, 42, 42, 42, 43, 43, 43, 43, 43, 43, 43,
  43, 44, 44, 44, 44, 44, 44, 44, 44, 44, 44, 44, 44, 44, 44, 44, 44, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45, 45,
  45, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 46, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47, 47,
  47
};

/* Every class size, in class order: both tables below come from it. */
#define HK_CLASS_SIZES(X) \
  X(16) X(32) X(48) X(64) X(80) X(96) X(112) X(128) \
  X(160) X(192) X(224) X(256) X(320) X(384) X(448) X(512) \
  X(640) X(768) X(896) X(1024) X(1280) X(1536) X(1792) X(2048) \
  X(2560) X(3072) X(3584) X(4096) X(5120) X(6144) X(7168) X(8192) \
  X(10240) X(12288) X(14336) X(16384) X(20480) X(24576) X(28672) X(32768) \
  X(40960) X(49152) X(57344) X(65536) X(81920) X(98304) X(114688) X(131072)

#define HK_SIZE_ENTRY(sz) sz,
const uint32_t hk_class_size[HK_NCLASSES] = {HK_CLASS_SIZES(HK_SIZE_ENTRY)};

/* hk_tc_cap: at most HK_TC_BYTES of blocks, within [HK_TC_MIN, HK_TC_MAX]. */
#define HK_TC_FIT(sz)    (HK_TC_BYTES / (sz) < HK_TC_MIN ? HK_TC_MIN : HK_TC_BYTES / (sz) > HK_TC_MAX ? HK_TC_MAX : HK_TC_BYTES / (sz))
#define HK_CAP_ENTRY(sz) (uint8_t)HK_TC_FIT(sz),
const uint8_t hk_tc_cap_table[HK_NCLASSES] = {HK_CLASS_SIZES(HK_CAP_ENTRY)};
_Static_assert(HK_TC_MAX <= UINT8_MAX, "hk_tc_cap_table holds bytes");
