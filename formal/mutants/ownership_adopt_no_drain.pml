/* formal/mutants/ownership_adopt_no_drain.pml -- the adopter does not drain the queue at adoption.
 *
 * Bug: hk_adopt leaves out hk_remote_drain, relying on the pending set.
 * A push onto an abandoned SuperSlab notifies nobody (owner == ABANDONED),
 * so blocks freed while it had no owner are never reclaimed.
 *
 * @reject asserts head==0
 */
#define MUT_ADOPT_NO_DRAIN
#include "../ownership.pml"
