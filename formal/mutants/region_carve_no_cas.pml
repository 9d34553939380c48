/* formal/mutants/region_carve_no_cas.pml -- hk_arena_carve takes a region with a load and a store of the count instead of the CAS.
 *
 * Bug: two claimers read the same arena word and both take region `count`:
 * one installs it, the other's install fails and parks it as a spare while
 * it is the current region; a later claimer installs the spare again with
 * its first chunk claimed, which the current region already handed out.
 *
 * @reject asserts ((claimed[gr]|unmapped[gr])&gb)==0
 */
#define MUT_CARVE_NO_CAS
#include "../region.pml"
