#!/usr/bin/env bash
# tools/demo.sh -- the README's first command: install dependencies, build
# the release preset, then show HAKMEM through its command (build/release/
# hakmem, installed as bin/hakmem): its version and options, a real
# multithreaded program (python3, 8 threads) under `hakmem run`, the same
# under `hakmem stats` with the statistics it prints at exit, and the quick
# benchmark against the system malloc (and mimalloc when installed).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/deps.sh
cmake --preset release >/dev/null
cmake --build --preset release
HAKMEM="$PWD/build/release/hakmem"
PY=$(command -v python3)

# 8 threads building and hashing dicts: a few hundred thousand allocations
# each, freed in bulk by the garbage collector.
read -r -d '' PROGRAM <<'PYEOF' || true
import threading, hashlib, json
def work(i, out):
    d = {}
    for j in range(200000):
        d[f"{i}:{j}"] = [j] * (j % 9)
    out[i] = hashlib.sha256(json.dumps(sorted(d)[:1000]).encode()).hexdigest()[:16]
out = {}
ts = [threading.Thread(target=work, args=(i, out)) for i in range(8)]
[t.start() for t in ts]; [t.join() for t in ts]
print("python3 threads done:", " ".join(out[i] for i in range(8)))
PYEOF

echo
echo "== $HAKMEM version"
"$HAKMEM" version
echo
echo "== hakmem run --verbose=1 --decommit-delay-ms=100 -- python3 (8 threads)"
"$HAKMEM" run --verbose=1 --decommit-delay-ms=100 -- "$PY" -c "$PROGRAM"
echo
echo "== hakmem stats -- python3 (8 threads): the statistics table at exit"
"$HAKMEM" stats -- "$PY" -c "$PROGRAM"

echo
echo "== bench_random_mixed: HAKMEM vs glibc (and mimalloc) =="
REPS="${REPS:-3}" bench/quick.sh "$PWD/build/release/libhakmem.so"
