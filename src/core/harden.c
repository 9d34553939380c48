/* harden.c -- the hardened build's secrets, canaries and carving order
 * (core/harden.h, core/block.h). Empty in the default build. */
#include "core/harden.h"

#ifdef HK_HARDENED

#include <string.h>
#include <sys/auxv.h>

#include "core/block.h"
#include "util/diag.h"
#include "util/mix.h"

_Atomic uint64_t hk_harden_secret_word;
static _Atomic uint64_t hk_harden_counter;

void hk_harden_init(void) {
  if (hk_load_relaxed(&hk_harden_secret_word) != 0) return;
  uint64_t r[2] = {0, 0};
  const void *at = (const void *)getauxval(AT_RANDOM); /* 16 random bytes from the kernel, no system call */
  if (at != NULL) memcpy(r, at, sizeof r);
  /* AT_RANDOM is also the stack protector's and pointer guard's source:
   * mixed, so the secret does not equal either. */
  uint64_t s = hk_mix64(r[0] ^ hk_mix64(r[1] ^ 0x48414b4d454d4844ull)) | 1;
  hk_store_relaxed(&hk_harden_secret_word, s); /* every thread computes the same value */
}

uint64_t hk_harden_random(void) {
  hk_harden_init(); /* a no-op after process init */
  uint64_t n = hk_add_relaxed(&hk_harden_counter, 1); /* distinct inputs only; orders nothing */
  return hk_mix64(hk_harden_secret() + n * 0x9e3779b97f4a7c15ull) | 1;
}

uint32_t hk_harden_rand_below(uint32_t n) {
  static __thread uint64_t state __attribute__((tls_model("initial-exec")));
  if (HK_UNLIKELY(state == 0)) state = hk_harden_random();
  state ^= state << 13; /* xorshift64: cheap, and only shuffles addresses */
  state ^= state >> 7;
  state ^= state << 17;
  return (uint32_t)(((state >> 32) * (uint64_t)n) >> 32);
}

void hk_block_corrupt(const void *b) { hk_fatal("forged or overwritten free-list link", b); }

/* hk_canary_check found a difference: name the first changed byte. A tail
 * whose gap is out of range was overwritten (an overflow that ran through
 * the canary word into it): n is lost, the tail is named. */
void hk_canary_fail(const void *p, size_t room) {
  const uint8_t *b = p;
  uint64_t mask = hk_canary_mask(p, hk_harden_secret()), t, w = hk_canary_word(mask);
  memcpy(&t, b + room - 8, 8);
  size_t gap = hk_canary_gap(t, mask);
  if (hk_canary_gap_ok(gap ^ HK_CANARY_FREED, room)) hk_fatal("use of a freed block", b); /* realloc, usable_size */
  if (!hk_canary_gap_ok(gap, room)) hk_fatal("heap overflow", b + room - 8);
  size_t n = room - gap;
  for (size_t i = 0; i < 8; i++)
    if (b[n + i] != (uint8_t)(w >> (8 * i))) hk_fatal("heap overflow", b + n + i);
  hk_fatal("heap overflow", b + n); /* not reached: the check saw a difference */
}

void hk_canary_free_fail(const void *p, size_t room) {
  if (!hk_canary_says_freed(p, room)) hk_canary_fail(p, room);
  hk_bad_free(p, "block already free", 1);
}

#else
typedef int hk_harden_unused; /* ISO C: a translation unit is not empty */
#endif /* HK_HARDENED */
