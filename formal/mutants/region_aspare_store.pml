/* formal/mutants/region_aspare_store.pml -- a claimer whose arena lost the
 * install race parks it as the spare arena with a plain store instead of
 * the CAS from empty.
 *
 * Bug: the carver of an arena's middle region has stocked the spare arena
 * (mapped ahead); a claimer that found the arena used up mapped its own,
 * lost the CAS on hk_arena and stores its arena over the stocked one: that
 * one is address space no word or slot names any more, never carved, never
 * unmapped (a leak of 128 MiB of address space each time). Run with
 * 2-chunk regions (SMALLREG), where arenas run out after a few claims.
 *
 * @reject asserts (claimed[gr]|unmapped[gr])==
 */
#define MUT_ASPARE_STORE
#define SMALLREG
#include "../region.pml"
