/* formal/mutants/heap_batch_no_recheck.pml -- the refiller does not look at the batch word again after taking the try-flag.
 *
 * Bug: A finds the batch used up; B takes the flag, installs a fresh batch
 * and releases the flag; A takes the flag and installs another batch over
 * B's, whose untaken heaps are stranded: address space nobody can carve or
 * unmap (`now != w` after the exchange on hk_heap_refilling prevents it:
 * the old word is used up, so no carve can change it, and only the flag's
 * holder installs).
 *
 * @reject asserts (cnt==2)
 */
#define MUT_NO_RECHECK
#include "../heap_batch.pml"
