/* formal/mutants/pmap_clear_load_store.pml -- stale marks cleared with a
 * load and a store of the whole word.
 *
 * Bug: hk_pmap_clear writes `w & ~mask` back with a plain store instead of
 * the atomic AND: a neighbouring block sharing the word that is freed
 * meanwhile (LIVE -> DEAD) gets its LIVE mark back, so a second free of it
 * releases it again; one registered meanwhile loses its mark.
 *
 * @reject asserts map_ok
 */
#define MUT_CLEAR_LOAD_STORE
#include "../pmap.pml"
