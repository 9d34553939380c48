/* formal/mutants/pmap_clear_after_set.pml -- registration clears the stale
 * marks of its pages after publishing LIVE.
 *
 * Bug: hk_large_alloc_impl calls hk_pmap_clear(base, map_size) after
 * hk_pmap_set(hdr, HK_PMAP_LIVE): the clear covers the key page and erases
 * the block's own mark.
 *
 * @reject asserts map_ok
 */
#define MUT_CLEAR_AFTER_SET
#include "../pmap.pml"
