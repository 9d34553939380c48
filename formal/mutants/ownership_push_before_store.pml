/* formal/mutants/ownership_push_before_store.pml -- abandon publishes the SuperSlab before storing ABANDONED.
 *
 * Bug: hk_abandon_all pushes the SuperSlab on the abandoned stack before its
 * store of HK_OWNER_ABANDONED. An adopter can pop it while the owner word
 * still names the exiting heap; its CAS fails and HK_ASSERT(won) fires (in a
 * release build, without the assertion, it would go on as a second owner).
 *
 * @reject asserts won
 */
#define MUT_PUSH_BEFORE_STORE
#include "../ownership.pml"
