#!/usr/bin/env python3
"""make_seeds.py -- write the hand-made seeds of tests/fuzz/corpus.

Each seed is a small program in fuzz_hak's input format (decode_op in
fuzz_hak.c), named for the hazard it walks into, so the fuzzer starts from
every path worth mutating: remote frees in bursts, a worker exiting with
blocks live, large blocks grown and shrunk, the aligned family, calloc of
reused blocks, collect in the middle, and every error case. Run it after
changing the input format (then re-merge the rest of the corpus, README.md).
"""
import os
import struct
import sys

(MALLOC, CALLOC, REALLOC, REALLOCARRAY, FREE, POSIX_MEMALIGN, ALIGNED_ALLOC,
 MEMALIGN, VALLOC, PVALLOC, USABLE, SWEEP, FLUSH, COLLECT, BURST_ALLOC,
 BURST_FREE, RESTART_WORKER, BAD_ARGS) = range(18)
W = 0x80  # run on the worker
MAX_SMALL = 128 << 10
EDGE_SIZES = 56  # the length of edge_sizes in fuzz_hak.c


def size(n):
    """rd_size's encoding of exactly n bytes."""
    if n <= 255:
        return bytes([0x00, n])
    if n <= 1024:
        return bytes([0x60]) + struct.pack('<H', n)
    if n <= 8192:
        return bytes([0xA0]) + struct.pack('<H', n)
    if n <= MAX_SMALL:
        return bytes([0xC0]) + struct.pack('<I', n)
    assert n - MAX_SMALL < 1 << 24
    return bytes([0xE0, 7]) + struct.pack('<I', n - MAX_SMALL)


def align(a):
    """rd_align's encoding of the power of two a (1 to 64 KiB)."""
    j = a.bit_length() - 1
    assert a == 1 << j and j <= 16
    if j <= 6:
        return bytes([j])
    if j <= 12:
        return bytes([160 + (j - 160 % 13) % 13])
    return bytes([240 + (j - 240 % 17) % 17])


def slot(s):
    return struct.pack('<H', s)


def op(code, *parts, worker=False):
    return bytes([code | (W if worker else 0)]) + b''.join(parts)


def malloc(s, n, **kw): return op(MALLOC, slot(s), size(n), **kw)
def calloc(s, cnt, n, **kw): return op(CALLOC, slot(s), bytes([cnt]), size(n), **kw)
def realloc(s, n, **kw): return op(REALLOC, slot(s), size(n), **kw)
def reallocarray(s, cnt, n, **kw): return op(REALLOCARRAY, slot(s), bytes([cnt]), size(n), **kw)
def free(s, **kw): return op(FREE, slot(s), **kw)
def posix_memalign(s, a, n, **kw): return op(POSIX_MEMALIGN, slot(s), align(a), size(n), **kw)
def aligned_alloc(s, a, n, **kw): return op(ALIGNED_ALLOC, slot(s), align(a), size(n), **kw)
def memalign(s, a, extra, n, **kw): return op(MEMALIGN, slot(s), align(a), bytes([extra]), size(n), **kw)
def valloc(s, n, **kw): return op(VALLOC, slot(s), size(n), **kw)
def pvalloc(s, n, **kw): return op(PVALLOC, slot(s), size(n), **kw)
def usable(s, **kw): return op(USABLE, slot(s), **kw)
def sweep(**kw): return op(SWEEP, **kw)
def flush(**kw): return op(FLUSH, **kw)
def collect(sub=0, **kw): return op(COLLECT, bytes([sub]), **kw)
def burst_alloc(s, cnt, n, **kw): return op(BURST_ALLOC, slot(s), bytes([cnt - 1]), size(n), **kw)
def burst_free(s, cnt, **kw): return op(BURST_FREE, slot(s), bytes([cnt - 1]), **kw)
def restart_worker(): return op(RESTART_WORKER)
def bad_args(s, sub, k, **kw): return op(BAD_ARGS, slot(s), bytes([sub, k]), **kw)


SEEDS = {
    'basic_mix': [
        malloc(0, 0), malloc(1, 1), malloc(2, 24), malloc(3, 100), malloc(4, 1000),
        malloc(5, 5000), malloc(6, 70000), malloc(7, 200000), free(3), usable(4),
        realloc(2, 48), realloc(4, 200), calloc(8, 4, 400), sweep(), free(0), free(7),
    ],
    'remote_free_burst': [
        burst_alloc(0, 256, 48), burst_free(0, 256, worker=True), flush(worker=True),
        burst_alloc(0, 256, 48), sweep(),
        burst_alloc(300, 200, 700, worker=True), burst_free(300, 200), flush(),
        burst_alloc(300, 200, 700, worker=True), burst_free(300, 100), flush(worker=True),
    ],
    'worker_exit_with_live_blocks': [
        burst_alloc(0, 128, 32, worker=True), burst_alloc(200, 64, 3000, worker=True),
        malloc(400, 300000, worker=True), burst_free(0, 64, worker=True),
        restart_worker(), burst_free(64, 64), free(400), burst_alloc(500, 128, 32),
        collect(), burst_free(200, 64, worker=True), restart_worker(), collect(1),
    ],
    'large_grow_shrink': [
        malloc(0, 1 << 20), realloc(0, 3 << 20), realloc(0, 200000), realloc(0, 100),
        realloc(0, 150000), realloc(0, (4 << 20) - 4096, worker=True), free(0, worker=True),
        malloc(1, (2 << 20) + 1), free(1), malloc(2, 2 << 20), calloc(3, 1, 2 << 20),
        realloc(2, 0), sweep(),
    ],
    'aligned_family': [
        posix_memalign(0, 8, 10), posix_memalign(1, 64, 100), posix_memalign(2, 4096, 5000),
        posix_memalign(3, 65536, 70), posix_memalign(4, 4, 10), aligned_alloc(5, 32, 33),
        aligned_alloc(6, 1 << 14, 1 << 17), aligned_alloc(7, 1, 0), memalign(8, 64, 20, 300),
        memalign(9, 2048, 1, 4000), valloc(10, 1), valloc(11, 200000), pvalloc(12, 0),
        pvalloc(13, 5000), free(2, worker=True), posix_memalign(2, 256, 128, worker=True),
        realloc(2, 10000), sweep(),
    ],
    'calloc_reused': [
        malloc(0, 1000), free(0), calloc(0, 10, 1000), malloc(1, 40000), free(1),
        calloc(1, 2, 40000), malloc(2, 500000), free(2), calloc(2, 5, 500000),
        burst_alloc(10, 64, 64), burst_free(10, 64, worker=True), flush(worker=True),
        calloc(100, 1, 64), calloc(101, 0, 64), reallocarray(102, 0, 16), reallocarray(101, 3, 300),
    ],
    'collect_midway': [
        burst_alloc(0, 256, 16), burst_alloc(256, 256, 2000), burst_free(0, 200),
        burst_free(256, 200, worker=True), collect(), collect(1, worker=True),
        burst_alloc(0, 200, 16), sweep(), malloc(600, 1 << 21), free(600), collect(2),
        malloc(600, 1 << 21),
    ],
    'cross_thread_realloc': [
        malloc(0, 100), malloc(1, 5000), malloc(2, 300000), usable(0, worker=True),
        usable(1, worker=True), realloc(0, 2000, worker=True), realloc(1, 100, worker=True),
        realloc(2, 600000, worker=True), free(0), free(1), free(2), flush(worker=True),
        malloc(3, 64, worker=True), realloc(3, 128), realloc(3, 64000), free(3, worker=True),
    ],
    'bad_args_all': [malloc(0, 100)]
    + [bad_args(0, sub, k) for sub in range(11) for k in (0, 7)]
    + [bad_args(1, sub, 3, worker=True) for sub in range(11)] + [sweep()],
    'edge_sizes': [op(MALLOC, slot(i), bytes([0xD0, i])) for i in range(EDGE_SIZES)] + [sweep()]
    + [op(REALLOC, slot(i), bytes([0xD0, (i * 7) % EDGE_SIZES]), worker=(i & 1 == 1))
       for i in range(EDGE_SIZES)],
    'huge_pages': [
        malloc(0, 9 << 20), realloc(0, 12 << 20), realloc(0, 3 << 20), realloc(0, 16 << 20, worker=True),
        free(0), malloc(1, 8 << 20, worker=True), calloc(2, 2, 10 << 20), free(1), collect(),
    ],
}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), 'corpus')
    os.makedirs(out, exist_ok=True)
    for name, ops in SEEDS.items():
        with open(os.path.join(out, 'seed_' + name), 'wb') as f:
            f.write(b''.join(ops))


if __name__ == '__main__':
    main()
