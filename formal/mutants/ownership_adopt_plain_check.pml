/* formal/mutants/ownership_adopt_plain_check.pml -- the adopter checks the queue with a plain load instead of exchanging it.
 *
 * Bug: hk_adopt does `if (remote_head != NULL) drain` instead of the
 * unconditional exchange. Under sequential consistency this is harmless (a
 * push that the load misses comes after the CAS, so it reads the new owner
 * and notifies it: the model without the stale read verifies). C11 lets the
 * load return a stale NULL, though (store buffering: the sender's CAS on the
 * head then load of the owner, against the adopter's CAS on the owner then
 * load of the head; no seq_cst, so both loads may read the old values). The
 * model lets this load, and only this one, return NIL (see ownership.pml,
 * adopt): a sender pushes onto the abandoned SuperSlab, reads ABANDONED and
 * does not notify, the adopter's load misses the push, and the block stays
 * in the queue of a SuperSlab it owns and never looks at again. The exchange is an RMW: it always reads
 * the latest head, which is why remote.c insists on it.
 *
 * @reject asserts head==0
 */
#define MUT_ADOPT_PLAIN_CHECK
#include "../ownership.pml"
