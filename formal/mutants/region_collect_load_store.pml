/* formal/mutants/region_collect_load_store.pml -- hak_collect takes the
 * current region with a load and a store of 0 instead of an exchange.
 *
 * Bug: hk_superslab_cache_purge(true) reads hk_region, a claimer takes a
 * chunk of it by its CAS, the collector stores 0 and releases the word as it
 * read it, without that chunk's bit: the chunk is unmapped under the
 * claimer's SuperSlab.
 *
 * @reject asserts ((claimed[gr]|unmapped[gr])&gb)==0
 */
#define MUT_COLLECT_LOAD_STORE
#define COLLECT
#include "../region.pml"
