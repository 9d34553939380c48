"""py_threads.py -- deterministic multithreaded allocation churn for the
LD_PRELOAD end-to-end test (tests/preload/run_preload.sh).

8 threads churn dicts, lists, strings and bytes, hash what they build, and
push objects through queues so they are freed by other threads than the ones
that created them. C extensions are exercised too: json, zlib, hashlib,
struct, sqlite3 (in-memory), re. Everything printed on stdout depends only on
the seeds, never on scheduling.
"""
import hashlib
import json
import queue
import random
import re
import sqlite3
import struct
import sys
import threading
import zlib

NTHREADS = 8
ROUNDS = 6000


def churn(tid, handoff_in, handoff_out, results):
    rng = random.Random(1000 + tid)
    h = hashlib.sha256()  # covers only this thread's own, seeded work
    d = {}
    lst = []
    received = []  # (src, i, md5) of blobs made by another thread
    word_re = re.compile(r"[aeiou]{2,}")
    for i in range(ROUNDS):
        k = "k%d_%d" % (tid, rng.randrange(3000))
        v = "".join(chr(97 + rng.randrange(26)) for _ in range(rng.randrange(1, 48)))
        d[k] = (d.get(k, "")[-64:] + v) * (1 + (i % 3))
        lst.append(v * rng.randrange(1, 9))
        if len(lst) > 400:
            del lst[: rng.randrange(1, 300)]
        if i % 7 == 0 and len(d) > 50:
            for key in sorted(d)[: rng.randrange(1, 20)]:
                del d[key]
        if i % 97 == 0:
            # A big, short-lived object of varied size, handed to another
            # thread, which hashes and drops it (freed by another thread).
            blob = bytes(rng.getrandbits(8) for _ in range(64)) * rng.randrange(1, 4000)
            handoff_out.put((tid, i, blob))
            del blob
        while True:
            try:
                src, j, blob = handoff_in.get_nowait()
            except queue.Empty:
                break
            received.append((src, j, hashlib.md5(blob).hexdigest()))
            del blob
        if i % 500 == 0:
            doc = json.dumps({"tid": tid, "i": i, "d": d, "l": lst[-20:]}, sort_keys=True)
            back = json.loads(doc)
            assert back["i"] == i and back["d"] == d
            comp = zlib.compress(doc.encode(), 6)
            assert zlib.decompress(comp) == doc.encode()
            h.update(struct.pack("<I", len(comp)))
            h.update(hashlib.sha1(doc.encode()).digest())
            h.update(str(len(word_re.findall(doc))).encode())
        h.update(v.encode())
    results[tid] = (h.hexdigest(), d, lst, received)


def main():
    queues = [queue.Queue() for _ in range(NTHREADS)]
    results = [None] * NTHREADS
    threads = [
        threading.Thread(target=churn, args=(t, queues[t], queues[(t + 1) % NTHREADS], results),
                         name="churn-%d" % t)
        for t in range(NTHREADS)
    ]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    total = hashlib.sha256()
    for t in range(NTHREADS):
        hexd, d, lst, received = results[t]
        # Blobs not picked up during the run (that part depends on scheduling)
        # are drained now; the digest covers all of them in sorted order.
        while True:
            try:
                src, j, blob = queues[t].get_nowait()
            except queue.Empty:
                break
            received.append((src, j, hashlib.md5(blob).hexdigest()))
        received.sort()
        blobs = hashlib.sha256(repr(received).encode()).hexdigest()
        state = hashlib.sha256(json.dumps([d, lst], sort_keys=True).encode()).hexdigest()
        print("thread %d: keys=%d list=%d blobs=%d work=%s state=%s recv=%s"
              % (t, len(d), len(lst), len(received), hexd[:24], state[:24], blobs[:24]))
        total.update((hexd + state + blobs).encode())

    # A single-threaded C-extension section with a deterministic result.
    con = sqlite3.connect(":memory:")
    con.execute("create table t (k integer primary key, v text, b blob)")
    rng = random.Random(42)
    rows = [(i, "v%08d" % rng.randrange(10**8),
             zlib.compress(bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 300)))))
            for i in range(5000)]
    con.executemany("insert into t values (?, ?, ?)", rows)
    con.execute("create index tv on t(v)")
    agg = con.execute("select count(*), sum(length(b)), min(v), max(v) from t where k % 3 = 0").fetchone()
    sq = hashlib.sha256()
    for k, v, b in con.execute("select k, v, b from t order by v, k"):
        sq.update(struct.pack("<I", k) + v.encode() + zlib.decompress(b))
    con.close()
    print("sqlite: %s %s" % (agg, sq.hexdigest()[:32]))

    big = "".join(str(i) for i in range(200000))
    print("big: len=%d sha=%s crc=%08x"
          % (len(big), hashlib.sha256(big.encode()).hexdigest()[:32], zlib.crc32(big.encode())))
    print("total: %s" % total.hexdigest())
    return 0


if __name__ == "__main__":
    sys.exit(main())
