/* formal/mutants/tstack_no_version.pml -- the head word without its
 * version: the pop's CAS compares the node only.
 *
 * Bug (ABA): B reads node 1 on top and its link 2; A pops 1, pops 2 and
 * pushes 1 back (link now NIL); B's CAS finds 1 on top and succeeds,
 * installing the stale link 2, which A holds: 2 is popped a second time.
 * The version bumped by every push and pop makes B's CAS fail instead.
 *
 * @reject asserts heldby[ot]==0
 */
#define MUT_NO_VERSION
#include "../tstack.pml"
