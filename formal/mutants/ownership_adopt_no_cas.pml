/* formal/mutants/ownership_adopt_no_cas.pml -- adoption without an exclusive pop and with a plain store of the owner.
 *
 * Bug: hk_adopt_one peeks the abandoned stack's top and unlinks it with a
 * plain store, then installs itself with a plain store of ss->owner instead
 * of the CAS ABANDONED -> me. Two adopters that peek the same SuperSlab both
 * adopt it: two owners.
 *
 * @reject asserts owners<=1
 */
#define MUT_ADOPT_NO_CAS
#include "../ownership.pml"
