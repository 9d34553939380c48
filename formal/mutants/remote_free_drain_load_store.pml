/* formal/mutants/remote_free_drain_load_store.pml -- the owner drains with a load and a store of NULL instead of an exchange.
 *
 * Bug: hk_remote_drain reads remote_head and then stores NULL. A push that
 * lands between the two is overwritten: its chain is lost.
 *
 * @reject asserts nreclaimed==4
 * @reject progress acceptance cycle
 */
#define MUT_DRAIN_LOAD_STORE
#include "../remote_free.pml"
