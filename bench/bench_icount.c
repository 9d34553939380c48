/* bench_icount: the driver bench/icount.sh runs under callgrind to count the
 * instructions of one malloc and one free.
 *
 * usage: bench_icount [cycles=1000000] [ws=256] [min=16] [max=1039] [seed=1234567] [usable=0]
 *
 * The loop of bench_random_mixed: each cycle draws r from xorshift32 and
 * toggles slot r % ws (an occupied slot is freed, an empty one gets
 * malloc(min + r % (max - min + 1)) and its first byte written). Then every
 * block still live is freed. The defaults (ws=256, sizes 16..1039) are
 * bench_random_mixed's ws=256 lane; ws=65536 is the one whose slabs drain and
 * refill (PERF-NOTES.md). With usable=1 every free is preceded by a
 * malloc_usable_size of the block, as programs that count their memory by it
 * do (redis's zfree, and its zmalloc after the malloc).
 *
 * Every allocator call is made from icount_loop() or icount_drain(), two
 * noinline functions that call nothing else, so callgrind's call records
 * out of them are exactly the malloc and free calls the loop made, whatever
 * name the allocator gives the function behind the symbol (tcmalloc's
 * malloc is tc_malloc, mimalloc's mi_malloc). bench/icount.sh runs this at
 * two cycle counts and divides the difference of those calls' inclusive
 * costs by the difference of their counts, which cancels start-up, the first
 * calls' set-up and the final drain.
 *
 * Output (parsed by bench/icount.sh):
 *   icount cycles=C ws=W min=A max=B usables=U mallocs=M frees=F
 * Exit status 1 on a NULL from malloc or a block whose first byte changed,
 * 2 on bad arguments. It uses the plain malloc/free symbols and does not link
 * hakmem: the allocator is chosen with LD_PRELOAD. */
#include <malloc.h>

#include "bench_common.h"

#define USAGE "[cycles=1000000] [ws=256] [min=16] [max=1039] [seed=1234567] [usable=0]"

/* Calls made, counted by the driver itself (icount.sh checks them against
 * callgrind's call counts). */
static uint64_t n_malloc, n_free, n_usable;

__attribute__((noinline)) static void icount_loop(void **slots, uint64_t cycles, uint32_t ws, uint32_t seed,
                                                  size_t min, size_t span, int usable)
{
    uint32_t x = seed;
    for (uint64_t i = 0; i < cycles; i++) {
        uint32_t r = b_xorshift32(&x);
        uint32_t slot = r % ws;
        void *p = slots[slot];
        if (p != NULL) {
            if (((char *)p)[0] != (char)slot) b_die("corruption: the block of slot %" PRIu32 " changed", slot);
            if (usable) {
                if (malloc_usable_size(p) == 0) b_die("malloc_usable_size of the block of slot %" PRIu32 " is 0", slot);
                n_usable++;
            }
            free(p);
            n_free++;
            slots[slot] = NULL;
        } else {
            size_t size = min + (size_t)(r % span);
            p = malloc(size);
            if (p == NULL) b_die("malloc(%zu) returned NULL at cycle %" PRIu64, size, i);
            n_malloc++;
            ((char *)p)[0] = (char)slot;
            slots[slot] = p;
        }
    }
}

__attribute__((noinline)) static void icount_drain(void **slots, uint32_t ws)
{
    for (uint32_t s = 0; s < ws; s++) {
        if (slots[s] != NULL) {
            free(slots[s]);
            n_free++;
            slots[s] = NULL;
        }
    }
}

int main(int argc, char **argv)
{
    uint64_t cycles = 1000000;
    uint32_t ws = 256, seed = 1234567;
    size_t min = 16, max = 1039;

    b_prog = "bench_icount";
    b_usage = USAGE;
    int usable = 0;
    if (argc > 7) b_usage_exit();
    if (argc > 1) cycles = b_parse_u64(argv[1], "cycles", 1, UINT64_MAX);
    if (argc > 2) ws = (uint32_t)b_parse_u64(argv[2], "ws", 1, UINT32_MAX);
    if (argc > 3) min = (size_t)b_parse_u64(argv[3], "min", 8, (uint64_t)1 << 40);
    if (argc > 4) max = (size_t)b_parse_u64(argv[4], "max", min, min + UINT32_MAX - 1);
    if (argc > 5) seed = (uint32_t)b_parse_u64(argv[5], "seed", 0, UINT32_MAX);
    if (argc > 6) usable = (int)b_parse_u64(argv[6], "usable", 0, 1);
    if (seed == 0) seed = 1; /* xorshift32 is stuck at 0 */

    void **slots = calloc(ws, sizeof *slots);
    if (slots == NULL) b_die("calloc(%" PRIu32 " slots) failed", ws);
    icount_loop(slots, cycles, ws, seed, min, max - min + 1, usable);
    icount_drain(slots, ws);
    free(slots);
    printf("icount cycles=%" PRIu64 " ws=%" PRIu32 " min=%zu max=%zu usables=%" PRIu64 " mallocs=%" PRIu64 " frees=%" PRIu64
           "\n", cycles, ws, min, max, n_usable, n_malloc, n_free);
    return 0;
}
