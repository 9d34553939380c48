/* formal/mutants/region_claim_no_cas.pml -- hk_region_claim_from sets the chunk's bit with a load and a store instead of the CAS.
 *
 * Bug: two claimers of one kind read the same region word, pick the same
 * free chunk and both store the word with its bit set: both return the same
 * 2 MiB chunk as their SuperSlab.
 *
 * @reject asserts ((claimed[gr]|unmapped[gr])&gb)==0
 */
#define MUT_CLAIM_NO_CAS
#include "../region.pml"
