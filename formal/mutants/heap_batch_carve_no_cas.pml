/* formal/mutants/heap_batch_carve_no_cas.pml -- hk_heap_carve takes a heap with a load and a store instead of the CAS.
 *
 * Bug: two threads load the same word (batch, count) and both store
 * count + 1: both return heap number `count` of the batch, and two threads
 * run on one heap (its thread cache, its slab lists, its pending set).
 *
 * @reject asserts (taken[wb]&(1<<wc))==0
 */
#define MUT_CARVE_NO_CAS
#include "../heap_batch.pml"
