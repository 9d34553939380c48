/* formal/mutants/remote_free_summary_first.pml -- the notifier sets the summary bit before the word bit.
 *
 * Bug: hk_remote_notify or-s owner->pend_summary first and the bucket's word
 * second. The owner can exchange the summary (seeing the bit), exchange the
 * word (not yet set: nothing to drain) and leave; the word bit set next has
 * no summary bit above it, so the owner never looks at the bucket again.
 *
 * @reject no_lost_wakeup assertion violated
 * @reject progress acceptance cycle
 * @reject asserts head[ss]==0
 */
#define MUT_SUMMARY_FIRST
#include "../remote_free.pml"
