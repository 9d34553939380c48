/* formal/mutants/purge_take_ignores_purging.pml -- the owner's take does
 * not look at the purging bit.
 *
 * Bug: hk_purge_claim_for_use computes `usable = candidates` instead of
 * `candidates & ~(uint32_t)(w >> 32)`, so a slab whose dirty bit a purger
 * has just cleared (DIRTY -> PURGING) looks CLEAN and is taken; the owner
 * then writes pages the purger's madvise is discarding.
 *
 * @reject asserts assertion violated
 */
#define MUT_TAKE_IGNORES_P
#include "../purge.pml"
