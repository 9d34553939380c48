/* formal/mutants/ownership_adopt_no_cas.pml -- adoption without an exclusive pop and with a plain store of the owner.
 *
 * Bug: the pop in hk_adopt_for (HK_TSTACK_POP) peeks the fresh stack's top and unlinks it
 * with a plain store instead of the CAS, and hk_adopt installs itself with a
 * plain store of ss->owner instead of the CAS ABANDONED -> me. Two adopters
 * that peek the same SuperSlab both unlink it: two threads hold it off the
 * stacks (the custody assertion fires at the second unlink), and both would
 * go on to adopt it: two owners.
 *
 * @reject asserts custody<=1
 */
#define MUT_ADOPT_NO_CAS
#include "../ownership.pml"
