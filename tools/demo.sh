#!/usr/bin/env bash
# tools/demo.sh -- the README's first command: install dependencies, build the
# release preset, run a real multithreaded program under LD_PRELOAD, then the
# quick benchmark against the system malloc (and mimalloc when installed).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/deps.sh
cmake --preset release >/dev/null
cmake --build --preset release
SO="$PWD/build/release/libhakmem.so"

echo
echo "== python3 with 8 threads under LD_PRELOAD=$SO (HAKMEM_SHOW_STATS=1) =="
LD_PRELOAD="$SO" HAKMEM_SHOW_STATS=1 python3 - <<'PY'
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
PY

echo
echo "== bench_random_mixed: HAKMEM vs glibc (and mimalloc) =="
REPS="${REPS:-3}" bench/quick.sh "$SO"
