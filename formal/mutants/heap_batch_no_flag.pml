/* formal/mutants/heap_batch_no_flag.pml -- every thread that finds the batch used up maps and installs a batch (no try-flag).
 *
 * Bug: A and B both find the batch used up and both look again (it has
 * not changed); both map a batch and store it, the later store over the
 * earlier one, whose heaps carved meanwhile are in use and whose other
 * heaps are stranded. The try-flag (hk_heap_refilling) lets one thread
 * install; the others map one heap alone.
 *
 * @reject asserts (cnt==2)
 */
#define MUT_NO_FLAG
#include "../heap_batch.pml"
