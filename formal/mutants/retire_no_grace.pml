/* formal/mutants/retire_no_grace.pml -- retirement without a grace period.
 *
 * Bug: the retirer reuses the SuperSlab right after unlinking it and handing
 * it to ck_epoch_call, as if hk_epoch_retire ran the callback at once. A
 * reader that found the SuperSlab before the unlink (a sender between its
 * push and its notification) then dereferences reused memory.
 *
 * @reject asserts assertion violated
 */
#define MUT_NO_GRACE
#include "../retire.pml"
