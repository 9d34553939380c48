/* formal/mutants/ownership_push_before_store.pml -- abandon publishes the SuperSlab before storing ABANDONED.
 *
 * Bug: hk_abandon_all pushes the SuperSlab on the fresh abandoned stack
 * before its store of HK_OWNER_ABANDONED. Another thread can pop it while the
 * owner word still names the exiting heap. If it has no use for it, it sets
 * aside a SuperSlab that still has an owner (the set-aside assertion "it
 * stays ABANDONED" fires: the shortest counterexample); if it adopts it, its
 * CAS fails and HK_ASSERT(won) fires (in a release build, without the
 * assertion, it would go on as a second owner).
 *
 * @reject asserts owner==0
 */
#define MUT_PUSH_BEFORE_STORE
#include "../ownership.pml"
