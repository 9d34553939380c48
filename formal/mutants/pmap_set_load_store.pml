/* formal/mutants/pmap_set_load_store.pml -- a page's state set with a load
 * and a store of the whole word.
 *
 * Bug: hk_pmap_set stores the word it read with its own two bits changed,
 * instead of the CAS loop: a neighbour's change in between (a free's
 * LIVE -> DEAD, a registration's LIVE) is undone.
 *
 * @reject asserts map_ok
 */
#define MUT_SET_LOAD_STORE
#include "../pmap.pml"
