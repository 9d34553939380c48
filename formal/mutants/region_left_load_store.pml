/* formal/mutants/region_left_load_store.pml -- hk_region_retire swaps the leftover slot by a load and a store instead of an exchange.
 *
 * Bug: between the load of the older leftover and the store of the new
 * one, a claimer of that kind takes a chunk of the older leftover by its
 * CAS; the retirer then releases the older leftover as it loaded it, without
 * that chunk's bit, and unmaps the chunk under the claimer's SuperSlab.
 *
 * @reject asserts ((claimed[gr]|unmapped[gr])&gb)==0
 */
#define MUT_LEFT_LOAD_STORE
#define SMALLREG
#include "../region.pml"
