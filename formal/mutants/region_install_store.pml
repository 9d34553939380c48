/* formal/mutants/region_install_store.pml -- hk_region_claim installs a fresh region by a plain store instead of the CAS loop.
 *
 * Bug: the installer's view of the exhausted word may be stale: a claimer
 * of the other kind takes a chunk of it meanwhile, and the installer's
 * store then retires the word as it read it, without that chunk: the
 * leftover slot offers the chunk again (claimed twice) or its release
 * unmaps it under the SuperSlab. Two installers that both store lose the
 * first one's region (a leak, or its chunks claimed from a region nobody
 * accounts for).
 *
 * @reject asserts ((claimed[gr]|unmapped[gr])&gb)==0
 */
#define MUT_INSTALL_STORE
#include "../region.pml"
