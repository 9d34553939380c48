/* formal/mutants/ownership_aside_room_only.pml -- hk_adopt_for sets a SuperSlab aside on its room alone, ignoring its queue.
 *
 * Bug: the set-aside test in hk_adopt_for is `(ss->room & want) == 0`,
 * without `&& remote_head == NULL`. Frees that reached the SuperSlab while
 * it was abandoned notified nobody (the owner word was ABANDONED); only an
 * adopter's exchange reclaims them. A popper that has no use for its room
 * puts it back on visited with its queue full, and so does every later
 * popper that wants another class: the blocks are never reclaimed. The late
 * thread of the model pops it, wants a class it has no room for, sets it
 * aside, and the queue is still non-empty at the end.
 *
 * @reject asserts head==0
 */
#define MUT_ASIDE_ROOM_ONLY
#include "../ownership.pml"
