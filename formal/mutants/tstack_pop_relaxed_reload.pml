/* formal/mutants/tstack_pop_relaxed_reload.pml -- HK_TSTACK_POP reloads the
 * head with relaxed order when its CAS fails (the code before the fix:
 * hk_cas_weak_acq_rel, whose failure order is relaxed).
 *
 * Bug: after a failed CAS the pop reads the link of the reloaded head's node
 * without being ordered after that node's pusher: its link store need not
 * be visible, and the read may return the link the node had on its previous
 * stay on the stack. Thread A pops 1, pops 2, pushes 1 (link now NIL); B's
 * CAS fails, its relaxed reload sees 1 on top, its link read returns 2 (the
 * old link), and its CAS succeeds (the head is unchanged since the reload):
 * 2, which A holds, is on top again and is popped a second time.
 *
 * @reject asserts heldby[ot]==0
 */
#define MUT_POP_RELAXED_RELOAD
#include "../tstack.pml"
