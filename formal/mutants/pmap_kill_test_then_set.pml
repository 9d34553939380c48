/* formal/mutants/pmap_kill_test_then_set.pml -- free releases a large
 * block after testing its state, not by a CAS from LIVE.
 *
 * Bug: hk_pmap_kill written as `if (hk_pmap_get(key) == HK_PMAP_LIVE)
 * hk_pmap_set(key, HK_PMAP_DEAD)` (each step atomic, the pair not): two
 * racing frees of one block both see LIVE and both release the mapping
 * (into the cache twice, or unmapped under a later owner) instead of one
 * reporting a double free.
 *
 * @reject asserts released[victim]<=1
 */
#define MUT_KILL_TEST_THEN_SET
#include "../pmap.pml"
