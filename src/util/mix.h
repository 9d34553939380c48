/* mix.h -- splitmix64's finaliser: a 64-bit bijection whose every output
 * bit depends on every input bit, for hashing words (the profiler's
 * tables) and for turning seeds into secrets (core/harden.c). */
#ifndef HK_MIX_H
#define HK_MIX_H

#include <stdint.h>

#include "hk_config.h"

HK_INLINE uint64_t hk_mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

#endif /* HK_MIX_H */
