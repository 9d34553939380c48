/* formal/mutants/remote_free_clear_after_xchg.pml -- the owner clears the pending mark AFTER it exchanges the head.
 *
 * Bug: hk_remote_collect_pending reads the summary and word bits, drains the
 * bucket's queues, and only then clears the bits. A push that lands between
 * the exchange and the clear sees an empty queue, sets the (still set) bit
 * and returns; the owner then clears that bit. The queue is non-empty and
 * nobody will look at it: a lost wake-up.
 *
 * @reject no_lost_wakeup assertion violated
 * @reject progress acceptance cycle
 * @reject asserts head[ss]==0
 */
#define MUT_CLEAR_AFTER_XCHG
#include "../remote_free.pml"
