/* formal/mutants/pmap_move_dead_late.pml -- a moved block's old key marked
 * DEAD after the mremap.
 *
 * Bug: hk_large_move sets the old key DEAD after hk_os_remap instead of
 * before: the old range is unmapped by the move, the kernel hands it to
 * another thread's allocation, which registers its block LIVE at the same
 * key, and the late DEAD overwrites that: the map no longer knows a live block.
 *
 * @reject asserts map_ok
 */
#define MUT_MOVE_DEAD_LATE
#include "../pmap.pml"
