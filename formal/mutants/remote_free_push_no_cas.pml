/* formal/mutants/remote_free_push_no_cas.pml -- the push stores the new head plainly instead of a CAS.
 *
 * Bug: hk_remote_push loads remote_head, links the chain's tail to it and
 * stores the chain's head with a plain (release) store. Two pushes that load
 * the same head overwrite each other (a chain is lost), and a push that
 * loaded the head before the owner's exchange re-installs blocks the owner
 * already took (a block reclaimed twice).
 *
 * @reject asserts reclaimed[chain]==0
 * @reject progress acceptance cycle
 */
#define MUT_PUSH_NO_CAS
#include "../remote_free.pml"
