/* test_slab_key.c -- the block-start test of core/slab.h: one multiply
 * and one compare against a key (a block count times the slab's unit)
 * must say exactly what the division says, for every class, at every
 * offset a pointer into a SuperSlab can have. Through the internal
 * headers, linked from libhakmem.a.
 *   keys_agree_with_the_division: descriptors of each class with 0, 1,
 *     some and all blocks carved; every offset within 4 KiB of the slab
 *     (below its start included) byte by byte, and 200,000 random ones
 *     within 2 MiB either side: hk_slab_is_block is "a multiple of the
 *     block size below the carved bytes", hk_slab_is_boundary the same
 *     below the slab's whole blocks.
 *   units_leave_room_for_the_keys: 1 <= unit <= block size, and a whole
 *     slab's key stays below what a non-start offset can give (magic).
 *   carved_bytes_follow_the_carving: in real slabs, the blocks malloc
 *     hands out pass, the carved bytes are whole blocks covering them,
 *     and the first block past them fails until it is carved. */
#include <stdint.h>
#include <stdlib.h>

#include "core/sizeclass.h"
#include "core/slab.h"
#include "core/superslab.h"
#include "hk_test.h"

TestSuite(slab_key, .timeout = 60.);

#define HK_TEST_BASE ((uintptr_t)0x7f1234400000ull) /* an address like a slab's: never dereferenced */

static uint32_t slab_bytes(unsigned c) {
  return hk_class_kind(c) == HK_KIND_MEDIUM ? 1u << HK_SLAB_SHIFT_MEDIUM : 1u << HK_SLAB_SHIFT_SMALL;
}

/* A descriptor as hk_slab_init leaves it after `carved` blocks (no memory behind it). */
static hk_slab fake_slab(unsigned c, uint32_t whole, uint32_t carved) {
  hk_slab s = {0};
  uint32_t b = hk_class_size[c];
  s.start = (uint8_t *)HK_TEST_BASE;
  s.tc_off = (uint16_t)(c * sizeof(hk_tcache));
  s.magic = hk_slab_magic(b);
  s.carved_key = carved * hk_slab_unit(&s, b);
  s.limit_key = whole * hk_slab_unit(&s, b);
  return s;
}

static void check_offset(const hk_slab *s, uint32_t b, uint32_t whole, uint32_t carved, int64_t off) {
  const void *p = (const void *)(HK_TEST_BASE + (uintptr_t)off);
  bool start = off >= 0 && off % b == 0;
  bool want_block = start && off / b < carved, want_boundary = start && off / b < whole;
  if (hk_slab_is_block(s, p) != want_block)
    cr_assert(false, "class %u (%u B), %u of %u carved: offset %lld is_block says %d", hk_slab_class(s), b, carved, whole,
              (long long)off, !want_block);
  if (hk_slab_is_boundary(s, p) != want_boundary)
    cr_assert(false, "class %u (%u B), %u whole blocks: offset %lld is_boundary says %d", hk_slab_class(s), b, whole,
              (long long)off, !want_boundary);
}

Test(slab_key, keys_agree_with_the_division) {
  uint64_t rng = 0x9e3779b97f4a7c15ull;
  for (unsigned c = 0; c < HK_NCLASSES; c++) {
    uint32_t b = hk_class_size[c], bytes = slab_bytes(c), whole = bytes / b;
    uint32_t counts[] = {0, 1, whole / 2 + 1, whole};
    for (unsigned k = 0; k < sizeof counts / sizeof counts[0]; k++) {
      hk_slab s = fake_slab(c, whole, counts[k]);
      for (int64_t off = -4096; off < (int64_t)bytes + 4096; off++) check_offset(&s, b, whole, counts[k], off);
      for (int i = 0; i < 200000 / (int)(sizeof counts / sizeof counts[0]); i++) {
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        check_offset(&s, b, whole, counts[k], (int64_t)(rng % (4u << 20)) - (2 << 20));
      }
    }
  }
}

Test(slab_key, units_leave_room_for_the_keys) {
  for (unsigned c = 0; c < HK_NCLASSES; c++) {
    uint32_t b = hk_class_size[c];
    hk_slab s = fake_slab(c, 0, 0);
    uint32_t u = hk_slab_unit(&s, b);
    cr_assert(u >= 1 && u <= b, "class %u (%u B): unit %u", c, b, u);
    uint64_t whole_key = (uint64_t)(slab_bytes(c) / b) * u;
    cr_assert(whole_key < (1u << 20), "class %u: a whole slab's key %llu does not fit", c, (unsigned long long)whole_key);
    /* A non-start offset gives at least magic - unit - 2^21 (core/slab.h). */
    cr_assert(s.magic > whole_key + u + (2u << 20), "class %u: magic %llu too small", c, (unsigned long long)s.magic);
  }
}

Test(slab_key, carved_bytes_follow_the_carving) {
  for (unsigned c = 0; c < HK_NCLASSES; c++) {
    enum { N = 40 };
    void *p[N];
    for (int i = 0; i < N; i++) cr_assert((p[i] = hak_malloc(hk_class_size[c] / 2 + 1)) != NULL);
    for (int i = 0; i < N; i++) {
      hk_slab *s = hk_slab_of_block(p[i]);
      uint32_t b = hk_class_size[hk_slab_class(s)]; /* c's, or (hardened: the canary's room) the next */
      cr_assert(hk_slab_is_block(s, p[i]), "class %u: a block malloc handed out fails", c);
      uint32_t carved = hk_slab_carved_bytes(s);
      cr_assert(carved % b == 0 && (uint8_t *)p[i] + b <= s->start + carved, "class %u: carved %u", c, carved);
      uint32_t whole = hk_slab_blocks(s, s->limit_key);
      if (carved / b < whole) cr_assert(!hk_slab_is_block(s, s->start + carved), "class %u: an uncarved block passes", c);
    }
    for (int i = 0; i < N; i++) hak_free(p[i]);
  }
}
