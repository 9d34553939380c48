#!/usr/bin/env bash
# bench/quick.sh — quick allocator comparison on bench_random_mixed.
#
# usage: bench/quick.sh [path/to/libhakmem.so]
#
# Runs bench_random_mixed at ws=256 and ws=8192 for glibc (no preload),
# HAKMEM (LD_PRELOAD) and mimalloc (LD_PRELOAD, skipped with a note if absent),
# interleaved: for rep in 1..REPS, for ws, for allocator: one run. Prints the
# medians per (allocator, ws) as a table on stdout, progress on stderr, and
# writes every run to a CSV.
#
# environment:
#   HAKMEM_SO    libhakmem.so to preload (default build/release/libhakmem.so;
#                the first argument wins; "none" skips HAKMEM)
#   MIMALLOC_SO  mimalloc to preload (default Debian's libmimalloc.so.2; "none" skips)
#   BENCH        bench_random_mixed binary (default build/release/bench/bench_random_mixed;
#                if that is missing it is compiled with ${CC:-cc} -O2 into a temp dir)
#   REPS=5  CYCLES=10000000  SEED=1234567
#   OUT          CSV path (default bench/results/quick.csv)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REPS="${REPS:-5}"
CYCLES="${CYCLES:-10000000}"
SEED="${SEED:-1234567}"
OUT="${OUT:-$ROOT/bench/results/quick.csv}"
WS_LIST=(256 8192)

die() { echo "quick.sh: $*" >&2; exit 1; }
note() { echo "quick.sh: $*" >&2; }

for v in REPS CYCLES SEED; do
    [[ "${!v}" =~ ^[0-9]+$ ]] || die "$v must be a non-negative integer (got '${!v}')"
done
(( REPS >= 1 )) || die "REPS must be >= 1"
(( CYCLES >= 1 )) || die "CYCLES must be >= 1"

abspath() { # abspath PATH -> absolute path (the file must exist)
    local d; d="$(cd "$(dirname "$1")" && pwd)" || return 1
    echo "$d/$(basename "$1")"
}

# --- the allocators -----------------------------------------------------------
ALLOCS=(glibc)
declare -A PRELOAD=([glibc]="")

check_so() { # check_so NAME PATH: must exist and define malloc
    local name="$1" so="$2"
    if command -v nm >/dev/null 2>&1; then
        nm -D --defined-only "$so" 2>/dev/null | awk '$3 == "malloc" { f = 1 } END { exit !f }' \
            || die "$name: $so does not export malloc; LD_PRELOAD would not replace glibc"
    fi
}

HAKMEM_SO="${1:-${HAKMEM_SO:-$ROOT/build/release/libhakmem.so}}"
if [[ "$HAKMEM_SO" == none ]]; then
    note "HAKMEM_SO=none: skipping HAKMEM"
else
    [[ -f "$HAKMEM_SO" ]] || die "no $HAKMEM_SO — build it first (cmake --preset release && cmake --build --preset release), pass its path as the argument or set HAKMEM_SO (HAKMEM_SO=none skips it)"
    HAKMEM_SO="$(abspath "$HAKMEM_SO")"
    check_so HAKMEM "$HAKMEM_SO"
    ALLOCS+=(hakmem); PRELOAD[hakmem]="$HAKMEM_SO"
fi

MIMALLOC_SO="${MIMALLOC_SO:-/usr/lib/x86_64-linux-gnu/libmimalloc.so.2}"
if [[ "$MIMALLOC_SO" == none ]]; then
    note "MIMALLOC_SO=none: skipping mimalloc"
elif [[ ! -f "$MIMALLOC_SO" ]]; then
    note "note: mimalloc not found at $MIMALLOC_SO (Debian: apt install libmimalloc2.0); skipping it"
else
    MIMALLOC_SO="$(abspath "$MIMALLOC_SO")"
    check_so mimalloc "$MIMALLOC_SO"
    ALLOCS+=(mimalloc); PRELOAD[mimalloc]="$MIMALLOC_SO"
fi

# --- the benchmark binary -----------------------------------------------------
TMPDIR_Q="$(mktemp -d)"
trap 'rm -rf "$TMPDIR_Q"' EXIT
BENCH="${BENCH:-$ROOT/build/release/bench/bench_random_mixed}"
if [[ ! -x "$BENCH" ]]; then
    note "no $BENCH; compiling bench/bench_random_mixed.c with ${CC:-cc} -O2"
    "${CC:-cc}" -std=gnu11 -O2 -fno-builtin-malloc -fno-builtin-free \
        -o "$TMPDIR_Q/bench_random_mixed" "$ROOT/bench/bench_random_mixed.c" \
        || die "could not compile bench_random_mixed"
    BENCH="$TMPDIR_Q/bench_random_mixed"
fi

# One tiny run per preloaded allocator: did the benchmark's malloc really bind to it?
for alloc in "${ALLOCS[@]}"; do
    so="${PRELOAD[$alloc]}"
    [[ -n "$so" ]] || continue
    binds="$(LD_DEBUG=bindings LD_PRELOAD="$so" "$BENCH" 1 1 2>&1 >/dev/null || true)"
    grep -F "to $so" <<<"$binds" | grep -c "symbol \`malloc'" >/dev/null \
        || die "$alloc: bench_random_mixed's malloc does not bind to $so under LD_PRELOAD"
done

# --- the runs -----------------------------------------------------------------
mkdir -p "$(dirname "$OUT")"
echo "rep,allocator,ws,cycles,seed,ops_per_s,peak_rss_kib" > "$OUT"

# A busy machine skews everything (2 cores: one other job halves a run).
if [[ -r /proc/loadavg ]]; then
    read -r load1 _ < /proc/loadavg
    ncpu="$(nproc 2>/dev/null || echo 1)"
    if awk -v l="$load1" -v n="$ncpu" 'BEGIN { exit !(l > n - 0.5) }'; then
        note "warning: load average $load1 on $ncpu CPUs; the numbers will be noisy"
    fi
fi

total=$(( REPS * ${#WS_LIST[@]} * ${#ALLOCS[@]} ))
n=0
t_start=$(date +%s.%N)
note "bench=$BENCH cycles=$CYCLES seed=$SEED reps=$REPS allocators=${ALLOCS[*]} ($total runs)"

run_one() { # run_one REP ALLOC WS
    local rep="$1" alloc="$2" ws="$3" so="${PRELOAD[$2]}" out rc=0 thr rss
    local errf="$TMPDIR_Q/stderr"
    if [[ -z "$so" ]]; then
        out="$(env -u LD_PRELOAD "$BENCH" "$CYCLES" "$ws" "$SEED" 2>"$errf")" || rc=$?
    else
        out="$(env LD_PRELOAD="$so" "$BENCH" "$CYCLES" "$ws" "$SEED" 2>"$errf")" || rc=$?
    fi
    # ld.so only warns and goes on with glibc when a preload fails: catch that.
    if grep -q "cannot be preloaded" "$errf"; then
        cat "$errf" >&2; die "$alloc: LD_PRELOAD of $so failed"
    fi
    if (( rc != 0 )); then
        cat "$errf" >&2; echo "$out" >&2
        die "$alloc ws=$ws rep=$rep: bench_random_mixed exited with status $rc"
    fi
    thr="$(sed -n 's/^Throughput = \([0-9][0-9]*\) ops\/s.*/\1/p' <<<"$out")"
    rss="$(sed -n 's/^Peak RSS = \([0-9][0-9]*\) KiB.*/\1/p' <<<"$out")"
    [[ -n "$thr" && -n "$rss" ]] || { echo "$out" >&2; die "$alloc ws=$ws: could not parse the output"; }
    echo "$rep,$alloc,$ws,$CYCLES,$SEED,$thr,$rss" >> "$OUT"
    n=$(( n + 1 ))
    printf '[%3d/%d] rep %d  %-8s ws=%-5d %8.2f M ops/s  %7d KiB\n' \
        "$n" "$total" "$rep" "$alloc" "$ws" "$(awk -v t="$thr" 'BEGIN { printf "%.2f", t / 1e6 }')" "$rss" >&2
}

for (( rep = 1; rep <= REPS; rep++ )); do
    for ws in "${WS_LIST[@]}"; do
        for alloc in "${ALLOCS[@]}"; do
            run_one "$rep" "$alloc" "$ws"
        done
    done
done
t_end=$(date +%s.%N)

# --- the table ----------------------------------------------------------------
median() { # median ALLOC WS COLUMN -> median of that CSV column over the reps
    awk -F, -v a="$1" -v w="$2" -v c="$3" 'NR > 1 && $2 == a && $3 == w { print $c }' "$OUT" \
        | sort -n \
        | awk '{ v[NR] = $1 } END { if (NR == 0) print ""; else if (NR % 2) printf "%.0f\n", v[(NR + 1) / 2];
                                     else printf "%.0f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
declare -A MED RSS
for alloc in "${ALLOCS[@]}"; do
    for ws in "${WS_LIST[@]}"; do
        MED[$alloc,$ws]="$(median "$alloc" "$ws" 6)"
        RSS[$alloc,$ws]="$(median "$alloc" "$ws" 7)"
    done
done
ratio() { # ratio A B -> A/B with 2 decimals, or n/a
    if [[ -z "$1" || -z "$2" ]]; then echo "n/a"; else awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; fi
}

echo "bench_random_mixed: cycles=$CYCLES seed=$SEED reps=$REPS (medians; ratios >1 = faster than that peer)"
printf '%-9s %5s %16s %9s %12s %14s\n' allocator ws "median ops/s" "vs glibc" "vs mimalloc" "peak RSS KiB"
for ws in "${WS_LIST[@]}"; do
    for alloc in "${ALLOCS[@]}"; do
        m="${MED[$alloc,$ws]}"
        printf '%-9s %5d %16s %9s %12s %14s\n' "$alloc" "$ws" "$m" \
            "$(ratio "$m" "${MED[glibc,$ws]:-}")" "$(ratio "$m" "${MED[mimalloc,$ws]:-}")" "${RSS[$alloc,$ws]}"
    done
done
slow=""
for alloc in "${ALLOCS[@]}"; do
    slow+="$(printf '%s %s, ' "$alloc" "$(ratio "${MED[$alloc,256]}" "${MED[$alloc,8192]}")")"
done
if [[ -n "${MED[hakmem,256]:-}" ]]; then
    echo "HAKMEM ws=8192 slowdown (median ops/s ws=256 / ws=8192): $(ratio "${MED[hakmem,256]}" "${MED[hakmem,8192]}")x  [all: ${slow%, }]"
else
    echo "HAKMEM ws=8192 slowdown: n/a (HAKMEM not run)  [all: ${slow%, }]"
fi
echo "raw runs: $OUT"
note "done: $total runs in $(awk -v a="$t_start" -v b="$t_end" 'BEGIN { printf "%.1f", b - a }') s"
