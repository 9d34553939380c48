/* formal/mutants/ownership_revisit_load_store.pml -- hk_revisit takes the visited stack with a load and a plain store instead of a CAS.
 *
 * Bug: hk_revisit reads visited.head and, when it names a node, stores an
 * empty head instead of its CAS (0, ver+1). Two threads whose fresh pops
 * came back empty both read the same chain and both take it: the set-aside
 * SuperSlab is held by two threads at once (the custody assertion fires at
 * the second take). Both then splice it onto fresh: it is linked to itself,
 * popped by one thread while still on the stack, and popped again by another,
 * whose CAS on the owner fails (HK_ASSERT(won)) or which sets it aside a
 * second time.
 *
 * @reject asserts custody<=1
 */
#define MUT_REVISIT_LOAD_STORE
#include "../ownership.pml"
