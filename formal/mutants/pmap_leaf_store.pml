/* formal/mutants/pmap_leaf_store.pml -- a page-map leaf installed with a
 * plain store.
 *
 * Bug: hk_leaf stores its fresh leaf into the first level instead of the
 * CAS from NULL: two threads that both found no leaf each install theirs,
 * and the second replaces a leaf in which the first has already marked its
 * block LIVE. The block is then unknown to free (not allocated by hakmem)
 * and to every lookup.
 *
 * @reject asserts map_ok
 */
#define MUT_LEAF_STORE
#include "../pmap.pml"
