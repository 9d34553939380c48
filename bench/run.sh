#!/usr/bin/env bash
# bench/run.sh -- the benchmark suite: HAKMEM against tcmalloc, jemalloc,
# mimalloc, tbbmalloc and glibc, one command, tables against the best peer,
# a CSV and charts.
#
# usage: bench/run.sh [--quick|--full] [--scaling] [--threads N] [--reps R]
#                     [--only REGEX] [--allocators LIST] [--out DIR]
#                     [--no-build] [--no-install] [--no-chart] [--report DIR]
#
#   --quick        (default) 6 lanes (random_mixed ws=256 and 8192, mt_remote, larson,
#                  prodcons, large churn n=20), short runs, 3 reps: ~1-2 min on 2 cores
#                  (108 runs)
#   --full         every lane, 5 reps, the thread-scaling sweep, then bench/icount.sh --usable
#                  (instructions per malloc/free, ws=256 and 65536) and bench/redis.sh
#                  (redis-server, 5 rounds); their tables are appended to summary.txt.
#                  Lanes besides quick's: random_mixed ws=1024/65536, size lanes,
#                  mt_remote at t=2 and t=8 (4x oversubscription on 2 cores) x remote
#                  50/90% x sizes 16-2048/16-32768, larson 16-4096, prodcons 1K-32K,
#                  large churn n=200 and realloc growth 64 KiB-64 MiB n=160.
#                  ~30-60 min on 2 cores (the lanes ~15-25, redis ~15-20)
#   --scaling      only the thread-scaling sweep: bench_random_mixed_mt_remote, bench_larson
#                  and bench_prodcons at 1, 2, 4, ... N threads (run lengths of --full
#                  unless --quick is given). On a 16-core machine: --scaling --threads 16
#   --threads N    threads of the quick mt_remote lane, the larson and prodcons lanes and top
#                  of the sweep (default: nproc, >= 2); full's mt_remote lanes are t=2 and t=8
#   --reps R       runs per (lane, allocator) (default 3 quick, 5 full); the table shows medians
#   --only REGEX   only the lanes whose "benchmark params" matches REGEX (grep -E)
#   --allocators L comma-separated subset of hakmem,mimalloc,jemalloc,tcmalloc,tbbmalloc,glibc
#   --out DIR      results folder (default bench/results/<timestamp>; bench/results/latest links it)
#   --no-build     do not (re)build build/release (libhakmem.so and the benchmarks)
#   --no-install   do not apt-get missing peers or gnuplot (they are skipped with a note)
#   --no-chart     no PNGs
#   --report DIR   run nothing: redo DIR's table, summary and charts from its results.csv
#
# Every run is one process: the allocator is chosen with LD_PRELOAD (glibc: no
# preload; tbbmalloc: libtbbmalloc_proxy.so.2). Before measuring, a tiny run of each
# benchmark under LD_DEBUG=bindings proves that its malloc and free bind to the
# preloaded library (or to libc for glibc), and for tbbmalloc that the proxy's
# scalable_malloc and __TBB_malloc_safer_free bind to libtbbmalloc.so.2. Runs are interleaved: for each rep, for each lane, every allocator once,
# in an order rotated every rep. A run that fails (non-zero exit: NULL from malloc,
# corruption, timeout) is reported, kept out of the medians, and makes the script
# exit 1 at the end.
#
# Output (DIR):
#   results.csv    allocator,benchmark,params,rep,ops_per_s,peak_rss_kib,start_rss_kib,
#                  free_all_rss_kib,trimmed_rss_kib  (one row per run; the last three are
#                  empty for benchmarks that print no "RSS after free-all" lines)
#   summary.csv    allocator,benchmark,params,runs,median_ops_per_s,ratio_vs_mimalloc,
#                  median_peak_rss_kib,min_ops_per_s,max_ops_per_s,spread_pct,median_start_rss_kib,
#                  median_free_all_rss_kib,median_trimmed_rss_kib,ratio_vs_best,best_peer
#                  (best_peer: the fastest allocator other than hakmem in that lane and run;
#                  ratio_vs_best: this allocator's median / best_peer's; paired_vs_best,
#                  paired_min, paired_max, paired_reps: the same allocator / best_peer rep by
#                  rep (the two ran back to back in each rep, so load that drifts between
#                  reps cancels): the median, lowest and highest of those ratios, and how many)
#   summary.txt    the tables printed at the end: medians per allocator and a "vs best"
#                  column, HAKMEM's median / the best peer's (fastest; for memory, smallest),
#                  naming the peer, and beside the throughput's the paired ratio (median
#                  [lowest-highest]); then every lane where HAKMEM is below 1.0x the best
#                  peer, and whether it was in every rep; in --full, icount.txt's,
#                  redis/summary.txt's and redis-icount/summary.txt's tables
#   throughput.png clustered bars: each lane's median throughput / its best peer's, per allocator
#   icount.txt     bench/icount.sh's tables (--full)
#   redis/         bench/redis.sh's results.csv and summary.txt (--full)
#   redis-icount/  bench/redis.sh --icount's icount.csv and summary.txt (--full, with valgrind)
#   scaling.png    median throughput against threads, one line per allocator (when swept)
#   meta.txt       machine, load, commit, libraries, command line, duration
#   failures.txt   stderr of failed runs (only when some failed)
#   *.dat, *.gp    the charts' data and gnuplot scripts
#
# environment: HAKMEM_SO (default build/release/libhakmem.so), MIMALLOC_SO, JEMALLOC_SO,
# TCMALLOC_SO, TBBMALLOC_SO (default: Debian's libraries; "none" skips one), BENCH_DIR (default
# build/release/bench), RUN_TIMEOUT (seconds per run; default 60 quick, 300 full).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ARGV=("$@")

die() { echo "run.sh: $*" >&2; exit 2; }
note() { echo "run.sh: $*" >&2; }

MODE=""; SCALING_ONLY=0; THREADS=""; REPS=""; ONLY=""; ALLOC_SEL=""; OUTDIR=""; REPORT_DIR=""
DO_BUILD=1; DO_INSTALL=1; DO_CHART=1
while (( $# )); do
    case "$1" in
        --quick) MODE=quick ;;
        --full) MODE=full ;;
        --scaling) SCALING_ONLY=1 ;;
        --threads) [[ $# -ge 2 ]] || die "--threads needs a value"; THREADS="$2"; shift ;;
        --threads=*) THREADS="${1#*=}" ;;
        --reps) [[ $# -ge 2 ]] || die "--reps needs a value"; REPS="$2"; shift ;;
        --reps=*) REPS="${1#*=}" ;;
        --only) [[ $# -ge 2 ]] || die "--only needs a value"; ONLY="$2"; shift ;;
        --only=*) ONLY="${1#*=}" ;;
        --allocators) [[ $# -ge 2 ]] || die "--allocators needs a value"; ALLOC_SEL="$2"; shift ;;
        --allocators=*) ALLOC_SEL="${1#*=}" ;;
        --out) [[ $# -ge 2 ]] || die "--out needs a value"; OUTDIR="$2"; shift ;;
        --out=*) OUTDIR="${1#*=}" ;;
        --report) [[ $# -ge 2 ]] || die "--report needs a folder"; REPORT_DIR="$2"; shift ;;
        --report=*) REPORT_DIR="${1#*=}" ;;
        --no-build) DO_BUILD=0 ;;
        --no-install) DO_INSTALL=0 ;;
        --no-chart) DO_CHART=0 ;;
        -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
    shift
done
if [[ -z "$MODE" ]]; then
    if (( SCALING_ONLY )); then MODE=full; else MODE=quick; fi
fi
NCPU="$(nproc 2>/dev/null || echo 2)"
[[ -n "$THREADS" ]] || THREADS=$(( NCPU < 2 ? 2 : NCPU ))
{ [[ "$THREADS" =~ ^[0-9]+$ ]] && (( THREADS >= 1 && THREADS <= 1024 )); } || die "--threads must be 1..1024 (got '$THREADS')"
[[ -n "$REPS" ]] || { [[ $MODE == quick ]] && REPS=3 || REPS=5; }
{ [[ "$REPS" =~ ^[0-9]+$ ]] && (( REPS >= 1 )); } || die "--reps must be a positive integer (got '$REPS')"
RUN_TIMEOUT="${RUN_TIMEOUT:-$([[ $MODE == quick ]] && echo 60 || echo 300)}"

SUDO=""
[[ "$(id -u)" -eq 0 ]] || SUDO="sudo -n"
apt_install() { # apt_install PKG...: best effort; returns non-zero when it could not
    (( DO_INSTALL )) || return 1
    command -v apt-get >/dev/null 2>&1 || return 1
    note "installing $* with apt-get"
    { DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "$@" \
        || { $SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "$@"; }
    } >&2 2>&1 </dev/null
}

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

if [[ -z "$REPORT_DIR" ]]; then # measuring: everything down to "medians, the table"
# --- build ---------------------------------------------------------------------
BENCH_DIR="${BENCH_DIR:-$ROOT/build/release/bench}"
BINS=(bench_random_mixed bench_random_mixed_mt_remote bench_larson bench_prodcons bench_large)
if (( DO_BUILD )); then
    command -v cmake >/dev/null 2>&1 || die "cmake not found (tools/deps.sh installs the build dependencies), or use --no-build"
    if [[ ! -f "$ROOT/build/release/build.ninja" ]]; then
        note "configuring the release preset"
        (cd "$ROOT" && cmake --preset release >/dev/null) || die "cmake --preset release failed"
    fi
    note "building libhakmem.so and the benchmarks (cmake --build --preset release --target bench)"
    (cd "$ROOT" && cmake --build --preset release --target bench >/dev/null) \
        || die "build failed: run cmake --build --preset release --target bench to see why"
fi
for b in "${BINS[@]}"; do
    [[ -x "$BENCH_DIR/$b" ]] || die "no $BENCH_DIR/$b (build: cmake --preset release && cmake --build --preset release)"
done

# --- the allocators --------------------------------------------------------------
ALL_ALLOCS=(hakmem mimalloc jemalloc tcmalloc tbbmalloc glibc)
declare -A SO=() WHY_SKIPPED=() PKG=([mimalloc]=libmimalloc2.0 [jemalloc]=libjemalloc2 [tcmalloc]=libtcmalloc-minimal4 [tbbmalloc]=libtbbmalloc2)
if [[ -n "$ALLOC_SEL" ]]; then
    IFS=, read -r -a WANT <<<"$ALLOC_SEL"
    for a in "${WANT[@]}"; do
        [[ " ${ALL_ALLOCS[*]} " == *" $a "* ]] || die "unknown allocator '$a' (${ALL_ALLOCS[*]})"
    done
else
    WANT=("${ALL_ALLOCS[@]}")
fi
wanted() { [[ " ${WANT[*]} " == *" $1 "* ]]; }

. "$ROOT/bench/peers.sh" # LIBDIR, find_lib, peer_default
exports_malloc() { # the library must define malloc and free, or LD_PRELOAD replaces nothing
    command -v nm >/dev/null 2>&1 || return 0
    nm -D --defined-only "$1" 2>/dev/null | awk '$3 == "malloc" { m = 1 } $3 == "free" { f = 1 } END { exit !(m && f) }'
}

if wanted hakmem; then
    h="${HAKMEM_SO:-$ROOT/build/release/libhakmem.so}"
    if [[ "$h" == none ]]; then WHY_SKIPPED[hakmem]="HAKMEM_SO=none"
    elif [[ ! -f "$h" ]]; then die "no $h: build it (cmake --preset release && cmake --build --preset release) or set HAKMEM_SO (none skips it)"
    else SO[hakmem]="$(cd "$(dirname "$h")" && pwd)/$(basename "$h")"; fi
fi
missing_pkgs=()
for a in mimalloc jemalloc tcmalloc tbbmalloc; do
    wanted "$a" || continue
    var="${a^^}_SO"
    if [[ "${!var:-}" == none ]]; then WHY_SKIPPED[$a]="$var=none"; continue; fi
    if [[ -n "${!var:-}" ]]; then
        [[ -f "${!var}" ]] || die "$var=${!var} does not exist"
        SO[$a]="${!var}"
    elif p="$(peer_default "$a")"; then SO[$a]="$p"
    else missing_pkgs+=("${PKG[$a]}"); fi
done
if (( ${#missing_pkgs[@]} )); then
    apt_install "${missing_pkgs[@]}" || note "could not install ${missing_pkgs[*]}"
    for a in mimalloc jemalloc tcmalloc tbbmalloc; do
        { wanted "$a" && [[ -z "${SO[$a]:-}" && -z "${WHY_SKIPPED[$a]:-}" ]]; } || continue
        if p="$(peer_default "$a")"; then SO[$a]="$p"
        else WHY_SKIPPED[$a]="not installed (Debian: apt install ${PKG[$a]})"; fi
    done
fi
LIBC="$(ldd "$BENCH_DIR/bench_random_mixed" 2>/dev/null | awk '$1 ~ /^libc\.so/ { print $3 }')"
[[ -n "$LIBC" ]] || LIBC="libc.so.6"

ALLOCS=()
for a in "${ALL_ALLOCS[@]}"; do
    wanted "$a" || continue
    [[ -z "${WHY_SKIPPED[$a]:-}" ]] || { note "skipping $a: ${WHY_SKIPPED[$a]}"; continue; }
    if [[ $a != glibc ]] && ! exports_malloc "${SO[$a]}"; then
        WHY_SKIPPED[$a]="${SO[$a]} does not export malloc and free"; note "skipping $a: ${WHY_SKIPPED[$a]}"; continue
    fi
    ALLOCS+=("$a")
done
(( ${#ALLOCS[@]} )) || die "no allocator left to run"

# A tiny run of every benchmark under each allocator: must bind malloc and free there.
tiny_args() {
    case "$1" in
        bench_random_mixed) echo "1 1" ;;
        bench_random_mixed_mt_remote) echo "1 1 1 16 16 0 2" ;;
        bench_larson) echo "1 1 1 1 16 16" ;;
        bench_prodcons) echo "1 1 16 16 2" ;;
        bench_large) echo "churn 1 1 1 1" ;;
    esac
}
for a in "${ALLOCS[@]}"; do
    for b in "${BINS[@]}"; do
        bin="$BENCH_DIR/$b"
        # shellcheck disable=SC2046
        if [[ $a == glibc ]]; then
            binds="$(env -u LD_PRELOAD LD_BIND_NOW=1 LD_DEBUG=bindings "$bin" $(tiny_args "$b") 2>&1 >/dev/null || true)"
            target="$LIBC"
        else
            binds="$(env LD_BIND_NOW=1 LD_DEBUG=bindings LD_PRELOAD="${SO[$a]}" "$bin" $(tiny_args "$b") 2>&1 >/dev/null || true)"
            target="${SO[$a]}"
            grep -q "cannot be preloaded" <<<"$binds" && die "$a: LD_PRELOAD of $target fails"
        fi
        for sym in malloc free; do
            # one awk, not grep -q in a pipe: with pipefail, grep -q's early exit fails the pipe (SIGPIPE)
            awk -v f="binding file $bin " -v t=" to $target " -v s="symbol \`$sym'" \
                'index($0, f) && index($0, t) && index($0, s) { found = 1 } END { exit !found }' <<<"$binds" \
                || die "$a: $b's $sym does not bind to $target (LD_DEBUG=bindings)"
        done
        # tbbmalloc's proxy only forwards: its malloc and free must in turn bind to
        # libtbbmalloc.so.2 (scalable_malloc, __TBB_malloc_safer_free), not to libc
        if [[ $a == tbbmalloc ]]; then
            for sym in scalable_malloc __TBB_malloc_safer_free; do
                awk -v f="binding file ${SO[$a]} " -v s="symbol \`$sym'" \
                    'index($0, f) && $0 ~ / to [^ ]*\/libtbbmalloc\.so/ && index($0, s) { found = 1 } END { exit !found }' <<<"$binds" \
                    || die "$a: the proxy's $sym does not bind to libtbbmalloc.so (LD_DEBUG=bindings)"
            done
        fi
    done
done
note "allocators: $(for a in "${ALLOCS[@]}"; do printf '%s=%s ' "$a" "${SO[$a]:-$LIBC (no preload)}"; done)"
note "every benchmark's malloc and free bind to the allocator under test (LD_DEBUG=bindings)"

# --- gnuplot -------------------------------------------------------------------------
if (( DO_CHART )) && ! command -v gnuplot >/dev/null 2>&1; then
    apt_install gnuplot-nox || true
    command -v gnuplot >/dev/null 2>&1 || { note "gnuplot not found (Debian: apt install gnuplot-nox): no charts"; DO_CHART=0; }
fi

# --- the lanes ---------------------------------------------------------------------------
# A lane is one benchmark command; it is run for every allocator and rep.
L_BENCH=(); L_PARAMS=(); L_CMD=(); L_SCALE=(); L_T=()
lane() { # lane BENCHMARK PARAMS SCALE_GROUP THREADS BINARY ARGS...
    local bench="$1" params="$2" group="$3" t="$4"; shift 4
    if [[ -n "$ONLY" ]] && ! grep -qE -- "$ONLY" <<<"$bench $params"; then return 0; fi
    L_BENCH+=("$bench"); L_PARAMS+=("$params"); L_SCALE+=("$group"); L_T+=("$t"); L_CMD+=("$*")
}
T="$THREADS"; P=$(( THREADS / 2 > 0 ? THREADS / 2 : 1 ))
if [[ $MODE == quick ]]; then
    RM=10000000; MT=2000000; LR=5; LI=1000000; PC=4000000; LC=20; LG=0
else
    RM=20000000; MT=4000000; LR=10; LI=2000000; PC=8000000; LC=200; LG=160
fi
oversub() { # oversub T: " (Kx oversub)" when T threads exceed the CPUs
    (( $1 > NCPU )) && echo " ($(( $1 / NCPU ))x oversub)" || true
}
if (( ! SCALING_ONLY )); then
    if [[ $MODE == quick ]]; then WS_LIST=(256 8192); else WS_LIST=(256 1024 8192 65536); fi
    for ws in "${WS_LIST[@]}"; do
        lane random_mixed "ws=$ws" "" 1 bench_random_mixed "$RM" "$ws" 1234567
    done
    if [[ $MODE == full ]]; then
        lane sizes "tiny 16-64 ws=1024" "" 1 bench_random_mixed $(( RM / 2 )) 1024 1234567 16 64
        lane sizes "small 64-1024 ws=1024" "" 1 bench_random_mixed $(( RM / 2 )) 1024 1234567 64 1024
        lane sizes "medium 1K-32K ws=1024" "" 1 bench_random_mixed $(( RM / 2 )) 1024 1234567 1024 32768
        lane sizes "large 32K-4M ws=256" "" 1 bench_random_mixed $(( RM / 100 )) 256 1234567 32768 4194304
        # cross-thread frees (issue 12): 2 threads, and 8 threads (4x oversubscription on 2 cores)
        for t in 2 8; do
            for r in 50 90; do
                for mx in 2048 32768; do
                    lane mt_remote "t=$t 16-$mx remote=$r%$(oversub "$t")" "" "$t" bench_random_mixed_mt_remote "$t" "$MT" 1024 16 "$mx" "$r"
                done
            done
        done
        lane larson "t=$T 16-128 blocks=1000" "" "$T" bench_larson "$T" "$LR" "$LI" 1000 16 128
        lane larson "t=$T 16-4096 blocks=10000" "" "$T" bench_larson "$T" "$LR" $(( LI / 2 )) 10000 16 4096
        lane prodcons "t=$((2 * P)) 16-1024" "" "$((2 * P))" bench_prodcons "$P" "$PC" 16 1024
        lane prodcons "t=$((2 * P)) 1K-32K" "" "$((2 * P))" bench_prodcons "$P" $(( PC / 2 )) 1024 32768
        lane large "churn 20 live 5-25MiB n=$LC" "" 1 bench_large churn "$LC" 20 5 25
        lane large "realloc 64KiB-64MiB x4 n=$LG" "" 1 bench_large realloc "$LG" 4 64 64
    else
        lane mt_remote "t=$T 16-2048 remote=50%" "" "$T" bench_random_mixed_mt_remote "$T" "$MT" 1024 16 2048 50
        lane larson "t=$T 16-128 blocks=1000" "" "$T" bench_larson "$T" "$LR" "$LI" 1000 16 128
        lane prodcons "t=$((2 * P)) 16-1024" "" "$((2 * P))" bench_prodcons "$P" "$PC" 16 1024
        lane large "churn 20 live 5-25MiB n=$LC" "" 1 bench_large churn "$LC" 20 5 25
    fi
fi
if (( SCALING_ONLY )) || [[ $MODE == full ]]; then
    SWEEP=(); for (( t = 1; t < THREADS; t *= 2 )); do SWEEP+=("$t"); done; SWEEP+=("$THREADS")
    for t in "${SWEEP[@]}"; do
        lane scaling_mt_remote "t=$t 16-2048 remote=50%" mt_remote "$t" bench_random_mixed_mt_remote "$t" "$MT" 1024 16 2048 50
    done
    for t in "${SWEEP[@]}"; do
        lane scaling_larson "t=$t 16-128 blocks=1000" larson "$t" bench_larson "$t" "$LR" "$LI" 1000 16 128
    done
    for t in "${SWEEP[@]}"; do
        (( t >= 2 )) || continue # one producer and one consumer at least
        lane scaling_prodcons "t=$(( t / 2 * 2 )) 16-1024" prodcons "$(( t / 2 * 2 ))" bench_prodcons $(( t / 2 )) "$PC" 16 1024
    done
fi
NL=${#L_CMD[@]}
(( NL )) || die "no lane matches --only '$ONLY'"

# --- results folder -------------------------------------------------------------------------
STAMP="$(date +%Y%m%d-%H%M%S)"
RUN_DATE="$(date '+%Y-%m-%d %H:%M')"
OUTDIR="${OUTDIR:-$ROOT/bench/results/$STAMP}"
mkdir -p "$OUTDIR"
OUTDIR="$(cd "$OUTDIR" && pwd)"
if [[ "$OUTDIR" == "$ROOT/bench/results/"* ]]; then ln -sfn "$(basename "$OUTDIR")" "$ROOT/bench/results/latest"; fi
CSV="$OUTDIR/results.csv"
echo "allocator,benchmark,params,rep,ops_per_s,peak_rss_kib,start_rss_kib,free_all_rss_kib,trimmed_rss_kib" > "$CSV"
rm -f "$OUTDIR/failures.txt"
{
    echo "date:       $(date -Is)"
    echo "command:    bench/run.sh ${ARGV[*]}"
    echo "mode:       $MODE$( (( SCALING_ONLY )) && echo ' (scaling only)') threads=$THREADS reps=$REPS lanes=$NL"
    echo "machine:    $(uname -srm), $NCPU CPUs, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null)"
    echo "memory:     $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo 2>/dev/null)"
    echo "load start: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)"
    echo "commit:     $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)$(git -C "$ROOT" diff --quiet HEAD -- src include 2>/dev/null || echo ' (src/ or include/ modified)')"
    for a in "${ALLOCS[@]}"; do
        if [[ $a == glibc ]]; then
            echo "glibc:      $LIBC (no preload), $(ldd --version 2>/dev/null | head -1)"
        else
            v="$(dpkg -S "$(readlink -f "${SO[$a]}")" 2>/dev/null | cut -d: -f1 | head -1 || true)"
            if [[ -n "$v" ]]; then v="$v $(dpkg-query -W -f='${Version}' "$v" 2>/dev/null || true)"; fi
            printf '%-11s %s%s\n' "$a:" "${SO[$a]}" "${v:+ ($v)}"
        fi
    done
    for a in "${!WHY_SKIPPED[@]}"; do printf '%-11s skipped: %s\n' "$a:" "${WHY_SKIPPED[$a]}"; done
} > "$OUTDIR/meta.txt"

if [[ -r /proc/loadavg ]]; then
    read -r load1 _ < /proc/loadavg
    if awk -v l="$load1" -v n="$NCPU" 'BEGIN { exit !(l > n - 0.5) }'; then
        note "warning: load average $load1 on $NCPU CPUs; the numbers will be noisy"
    fi
fi

# --- the runs -------------------------------------------------------------------------------
NA=${#ALLOCS[@]}
TOTAL=$(( REPS * NL * NA ))
declare -A CACHE=()   # "alloc|rep|command" -> "ops rss freeall": a sweep point equal to a lane is run once
N=0; NFAIL=0
T_START=$(date +%s.%N)
note "$MODE mode: $NL lanes x $NA allocators x $REPS reps = $TOTAL runs -> $OUTDIR"

fmt_dur() { awk -v s="$1" 'BEGIN { s = int(s + 0.5); if (s >= 60) printf "%dm%02ds", s / 60, s % 60; else printf "%ds", s }'; }

run_one() { # run_one REP LANE ALLOC
    local rep="$1" i="$2" a="$3" cmd="${L_CMD[$2]}" out rc=0 ops rss freeall key
    key="$a|$rep|$cmd"
    N=$(( N + 1 ))
    if [[ -n "${CACHE[$key]:-}" ]]; then
        read -r ops rss freeall <<<"${CACHE[$key]}"
    else
        local -a argv
        read -r -a argv <<<"$cmd"
        argv[0]="$BENCH_DIR/${argv[0]}"
        if [[ $a == glibc ]]; then
            out="$(env -u LD_PRELOAD timeout -k 5 "$RUN_TIMEOUT" "${argv[@]}" 2>"$TMP/err")" || rc=$?
        else
            out="$(env LD_PRELOAD="${SO[$a]}" timeout -k 5 "$RUN_TIMEOUT" "${argv[@]}" 2>"$TMP/err")" || rc=$?
        fi
        ops="$(sed -n 's/^Throughput = \([0-9][0-9]*\(\.[0-9]*\)\{0,1\}\) ops\/s.*/\1/p' <<<"$out")"
        rss="$(sed -n 's/^Peak RSS = \([0-9][0-9]*\) KiB.*/\1/p' <<<"$out")"
        # start,after free-all,after trim (bench_common.h's b_report_free_all), or ",,"
        freeall="$(awk -F' = ' '/^RSS at start = /{s=$2+0} /^RSS after free-all = /{f=$2+0}
            /^RSS after free-all\+trim = /{t=$2+0} END { if (s != "") printf "%d,%d,%d", s, f, t; else printf ",," }' <<<"$out")"
        if grep -q "cannot be preloaded" "$TMP/err" && (( rc == 0 )); then rc=127; fi
        if (( rc != 0 )) || [[ -z "$ops" || -z "$rss" ]]; then
            NFAIL=$(( NFAIL + 1 ))
            local why="exit status $rc"; (( rc == 124 || rc == 137 )) && why="timed out after ${RUN_TIMEOUT}s"
            (( rc == 0 )) && why="unparsable output"
            {
                echo "== $a ${L_BENCH[$i]} ${L_PARAMS[$i]} rep $rep: $why"
                echo "command: ${argv[*]}"; echo "$out"; tail -n 20 "$TMP/err"; echo
            } >> "$OUTDIR/failures.txt"
            printf '[%4d/%d] FAILED %-9s %-18s %-28s %s (see failures.txt)\n' "$N" "$TOTAL" "$a" \
                "${L_BENCH[$i]}" "${L_PARAMS[$i]}" "$why" >&2
            return 0
        fi
        CACHE[$key]="$ops $rss $freeall"
    fi
    echo "$a,${L_BENCH[$i]},${L_PARAMS[$i]},$rep,$ops,$rss,$freeall" >> "$CSV"
    local now el eta
    now=$(date +%s.%N)
    el=$(awk -v a="$T_START" -v b="$now" 'BEGIN { print b - a }')
    eta=$(awk -v e="$el" -v n="$N" -v t="$TOTAL" 'BEGIN { print e / n * (t - n) }')
    printf '[%4d/%d] rep %d/%d %-9s %-18s %-28s %9s ops/s %8.1f MiB  (%s, ~%s left)\n' \
        "$N" "$TOTAL" "$rep" "$REPS" "$a" "${L_BENCH[$i]}" "${L_PARAMS[$i]}" \
        "$(awk -v t="$ops" 'BEGIN { if (t >= 1e5) printf "%.2f M", t / 1e6; else printf "%.1f", t }')" "$(awk -v r="$rss" 'BEGIN { print r / 1024 }')" \
        "$(fmt_dur "$el")" "$(fmt_dur "$eta")" >&2
}

for (( rep = 1; rep <= REPS; rep++ )); do
    for (( i = 0; i < NL; i++ )); do
        for (( k = 0; k < NA; k++ )); do
            run_one "$rep" "$i" "${ALLOCS[$(( (k + rep - 1 + i) % NA ))]}"
        done
    done
done
T_END=$(date +%s.%N)
ELAPSED="$(awk -v a="$T_START" -v b="$T_END" 'BEGIN { printf "%.1f", b - a }')"
LOAD_END="$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || true)"
echo "load end:   $LOAD_END" >> "$OUTDIR/meta.txt"
echo "runs:       $TOTAL in ${ELAPSED} s, $NFAIL failed" >> "$OUTDIR/meta.txt"

# --- full mode: instruction counts (bench/icount.sh) and the redis lane (bench/redis.sh) ---
if [[ $MODE == full ]] && (( ! SCALING_ONLY )); then
    SEL="$(IFS=,; echo "${ALLOCS[*]}")"
    HSO_ARG=(); [[ -n "${SO[hakmem]:-}" ]] && HSO_ARG=(--hakmem-so "${SO[hakmem]}")
    if ! command -v valgrind >/dev/null 2>&1; then apt_install valgrind || true; fi
    if command -v valgrind >/dev/null 2>&1; then
        note "instructions per malloc, free and malloc_usable_size (bench/icount.sh --usable, callgrind): ws=256, then ws=65536"
        if { "$ROOT/bench/icount.sh" --no-build --usable --allocators "$SEL" "${HSO_ARG[@]}" && echo \
             && "$ROOT/bench/icount.sh" --no-build --usable --allocators "$SEL" "${HSO_ARG[@]}" --ws 65536; } \
                > "$OUTDIR/icount.txt" 2> "$TMP/icount.err"; then
            cat "$TMP/icount.err" >&2
        else
            NFAIL=$(( NFAIL + 1 )); cat "$TMP/icount.err" >&2
            { echo "== bench/icount.sh failed"; cat "$TMP/icount.err"; echo; } >> "$OUTDIR/failures.txt"
            echo "bench/icount.sh FAILED (see failures.txt)" >> "$OUTDIR/icount.txt"
        fi
    else
        echo "instruction counts skipped: valgrind not installed (Debian: apt install valgrind)" > "$OUTDIR/icount.txt"
        note "valgrind not found: no instruction counts"
    fi
    if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-benchmark >/dev/null 2>&1; then
        apt_install redis-server redis-tools || true
    fi
    if command -v redis-server >/dev/null 2>&1 && command -v redis-benchmark >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1; then
        note "redis-server under each allocator (bench/redis.sh, $REPS rounds)"
        HAKMEM_SO="${SO[hakmem]:-none}" "$ROOT/bench/redis.sh" --no-build --allocators "$SEL" --rounds "$REPS" \
            --out "$OUTDIR/redis" > /dev/null || { NFAIL=$(( NFAIL + 1 )); note "bench/redis.sh: some runs failed"; }
        if command -v valgrind >/dev/null 2>&1; then
            note "redis-server's instructions per request under each allocator (bench/redis.sh --icount)"
            HAKMEM_SO="${SO[hakmem]:-none}" "$ROOT/bench/redis.sh" --icount --no-build --allocators "$SEL" \
                --out "$OUTDIR/redis-icount" > /dev/null || { NFAIL=$(( NFAIL + 1 )); note "bench/redis.sh --icount failed"; }
        fi
    else
        note "redis-server / redis-benchmark not found (Debian: apt install redis-server redis-tools): no redis lane"
        mkdir -p "$OUTDIR/redis"; echo "redis lane skipped: redis-server, redis-benchmark or redis-cli not installed" > "$OUTDIR/redis/summary.txt"
    fi
fi

LANES="$OUTDIR/lanes.csv"
declare -A SEEN_CMD=()
for (( i = 0; i < NL; i++ )); do # 5th field: 1 when an earlier lane ran the same command (a sweep point)
    printf '%s,%s,%s,%s,%s\n' "${L_BENCH[$i]}" "${L_PARAMS[$i]}" "${L_SCALE[$i]}" "${L_T[$i]}" "${SEEN_CMD[${L_CMD[$i]}]:-0}"
    SEEN_CMD[${L_CMD[$i]}]=1
done > "$LANES"
{   # what --report needs to redo the table and charts
    printf 'MODE=%q SCALING_ONLY=%q THREADS=%q REPS=%q NCPU=%q\n' "$MODE" "$SCALING_ONLY" "$THREADS" "$REPS" "$NCPU"
    printf 'TOTAL=%q ELAPSED=%q NFAIL=%q RUN_DATE=%q LOAD_END=%q\n' "$TOTAL" "$ELAPSED" "$NFAIL" "$RUN_DATE" "$LOAD_END"
    printf 'ALLOCS=(%s)\n' "${ALLOCS[*]}"
} > "$OUTDIR/run.env"

else # --report DIR
    [[ -f "$REPORT_DIR/run.env" && -f "$REPORT_DIR/results.csv" && -f "$REPORT_DIR/lanes.csv" ]] \
        || die "$REPORT_DIR: no run.env, results.csv and lanes.csv (not a bench/run.sh results folder?)"
    OUTDIR="$(cd "$REPORT_DIR" && pwd)"
    CSV="$OUTDIR/results.csv"; LANES="$OUTDIR/lanes.csv"
    declare -A WHY_SKIPPED=()
    # shellcheck disable=SC1091
    . "$OUTDIR/run.env"
    NA=${#ALLOCS[@]}
    if (( DO_CHART )) && ! command -v gnuplot >/dev/null 2>&1; then note "gnuplot not found: no charts"; DO_CHART=0; fi
fi

# --- medians, the table -------------------------------------------------------------------------
REF=mimalloc
[[ " ${ALLOCS[*]} " == *" mimalloc "* ]] || REF=""

# summary.csv, in lane order, allocators in ALL_ALLOCS order
awk -F, -v allocs="${ALLOCS[*]}" -v ref="$REF" '
    function median(list,   n, v, i, j, x) {
        n = split(list, v, " ")
        for (i = 2; i <= n; i++) { x = v[i] + 0; for (j = i - 1; j >= 1 && v[j] + 0 > x; j--) v[j + 1] = v[j]; v[j + 1] = x }
        if (n == 0) return ""
        return (n % 2) ? v[(n + 1) / 2] + 0 : (v[n / 2] + v[n / 2 + 1]) / 2
    }
    function rate(v) { return (v < 1000) ? sprintf("%.3f", v) : sprintf("%.0f", v) } # bench_large: a few per second
    FNR == NR { nl++; lb[nl] = $1; lp[nl] = $2; next }
    FNR > 1 { k = $1 SUBSEP $2 SUBSEP $3; ops[k] = ops[k] " " $5; rss[k] = rss[k] " " $6; runs[k]++
              opsrep[k, $4] = $5; if (!($4 in isrep)) { isrep[$4] = 1; reps[++nreps] = $4 }
              if ($7 != "") { st[k] = st[k] " " $7; fa[k] = fa[k] " " $8; tr[k] = tr[k] " " $9 } }
    # Paired ratios: k against peer key pk, rep by rep (the two ran next to each
    # other in that rep, so load that drifts between reps cancels): "median,min,max,n"
    function paired(k, pk,   i, list, lo, hi, x, n) {
        list = ""; n = 0
        for (i = 1; i <= nreps; i++) {
            if (!((k, reps[i]) in opsrep) || !((pk, reps[i]) in opsrep) || opsrep[pk, reps[i]] + 0 <= 0) continue
            x = opsrep[k, reps[i]] / opsrep[pk, reps[i]]; list = list " " x; n++
            if (n == 1 || x < lo) lo = x; if (n == 1 || x > hi) hi = x
        }
        return (n == 0) ? ",,," : sprintf("%.3f,%.3f,%.3f,%d", median(list), lo, hi, n)
    }
    END {
        na = split(allocs, A, " ")
        print "allocator,benchmark,params,runs,median_ops_per_s,ratio_vs_mimalloc,median_peak_rss_kib,min_ops_per_s,max_ops_per_s,spread_pct,median_start_rss_kib,median_free_all_rss_kib,median_trimmed_rss_kib,ratio_vs_best,best_peer,paired_vs_best,paired_min,paired_max,paired_reps"
        for (l = 1; l <= nl; l++) {
            rk = ref SUBSEP lb[l] SUBSEP lp[l]; r = (ref != "" && runs[rk]) ? median(ops[rk]) : ""
            # the best peer: the fastest median among the allocators other than hakmem
            best = ""; bp = ""
            for (a = 1; a <= na; a++) {
                k = A[a] SUBSEP lb[l] SUBSEP lp[l]
                if (A[a] == "hakmem" || !runs[k]) continue
                m = median(ops[k]); if (bp == "" || m > best) { best = m; bp = A[a] }
            }
            for (a = 1; a <= na; a++) {
                k = A[a] SUBSEP lb[l] SUBSEP lp[l]
                if (!runs[k]) { printf "%s,%s,%s,0,,,,,,,,,,,%s,,,,\n", A[a], lb[l], lp[l], bp; continue }
                m = median(ops[k])
                n = split(ops[k], v, " "); lo = hi = v[1] + 0
                for (j = 2; j <= n; j++) { if (v[j] + 0 < lo) lo = v[j] + 0; if (v[j] + 0 > hi) hi = v[j] + 0 }
                printf "%s,%s,%s,%d,%s,%s,%.0f,%s,%s,%.0f,%s,%s,%s,%s,%s,%s\n", A[a], lb[l], lp[l], runs[k], rate(m),
                       (r != "" && r > 0) ? sprintf("%.3f", m / r) : "", median(rss[k]), rate(lo), rate(hi), (m > 0) ? 100 * (hi - lo) / m : 0,
                       median(st[k]), median(fa[k]), median(tr[k]), (best != "" && best > 0) ? sprintf("%.3f", m / best) : "", bp,
                       (bp != "" && A[a] != bp) ? paired(k, bp SUBSEP lb[l] SUBSEP lp[l]) : ",,,"
            }
        }
    }' "$LANES" "$CSV" > "$OUTDIR/summary.csv"

# The tables: one row per lane; per allocator the median, and "vs best": HAKMEM's
# median against the best peer's in that lane (the fastest; for memory, the smallest).
{
    echo "HAKMEM benchmark suite: $MODE mode$( (( SCALING_ONLY )) && echo ', scaling only'), threads=$THREADS, reps=$REPS, $RUN_DATE"
    echo "median throughput in M ops/s (prodcons: M objects/s; large: buffers or reallocs per s, not M); vs best = HAKMEM median / fastest peer median (named), >1 = HAKMEM faster"
    awk -F, -v allocs="${ALLOCS[*]}" '
        function fmt(v) { return (v >= 100) ? sprintf("%.0f", v) : (v >= 10) ? sprintf("%.1f", v) : (v >= 1) ? sprintf("%.2f", v) : (v >= 0.01) ? sprintf("%.3f", v) : sprintf("%.5f", v) }
        # vs(l, field, lowest): "xR peer", HAKMEM against the best peer by that field (lowest: smaller is better)
        function vs(l, f, lowest,   a, k, b, bp, h) {
            h = V[f, "hakmem" SUBSEP lb[l] SUBSEP lp[l]]; b = ""; bp = ""
            for (a = 1; a <= na; a++) {
                if (A[a] == "hakmem") continue
                k = A[a] SUBSEP lb[l] SUBSEP lp[l]
                if (V[f, k] == "") continue
                if (b == "" || (lowest ? V[f, k] + 0 < b + 0 : V[f, k] + 0 > b + 0)) { b = V[f, k]; bp = A[a] }
            }
            if (h == "" || b == "" || b + 0 <= 0) return "-"
            return sprintf("x%.2f %s", h / b, bp)
        }
        FNR == NR { if ($5) aliases++; else { nl++; lb[nl] = $1; lp[nl] = $2 } next } # a sweep point run by a lane above: not repeated
        FNR > 1 { k = $1 SUBSEP $2 SUBSEP $3; m[k] = $5; s[k] = $7; n[k] = $4; sp[k] = $10
                  if ($1 == "hakmem" && $16 != "") pr[$2 SUBSEP $3] = sprintf("x%.2f [%.2f-%.2f]", $16, $17, $18)
                  if ($5 != "") V["ops", k] = $5; if ($7 != "") V["rss", k] = $7
                  if ($11 != "") { st[k] = $11; fa[k] = $12; tr[k] = $13; V["tr", k] = $13; anyfa[$2 SUBSEP $3] = 1 } }
        END {
            na = split(allocs, A, " ")
            for (a = 1; a <= na; a++) if (A[a] == "hakmem") hashak = 1
            printf "%-18s %-34s", "benchmark", "params"; for (a = 1; a <= na; a++) printf " %10s ", A[a]; if (hashak) printf " %-16s %s", "vs best", "paired [min-max]"; printf "\n"
            for (l = 1; l <= nl; l++) {
                printf "%-18s %-34s", lb[l], lp[l]
                for (a = 1; a <= na; a++) {
                    k = A[a] SUBSEP lb[l] SUBSEP lp[l]
                    if (m[k] == "") { printf " %10s ", "FAILED"; continue }
                    c = (lb[l] == "large") ? sprintf("%.2f", m[k]) : fmt(m[k] / 1e6) # buffers/s, not millions
                    if (n[k] > 1 && sp[k] + 0 > 25) { c = c "~"; noisy = 1 } else c = c " "
                    printf " %11s", c
                }
                if (hashak) printf " %-16s %s", vs(l, "ops", 0), pr[lb[l] SUBSEP lp[l]]
                printf "\n"
            }
            if (noisy) printf "~ = the runs spread over more than 25%% of the median (max - min): a noisy lane\n"
            if (hashak) printf "paired = HAKMEM / that peer rep by rep (the two ran back to back), median [lowest-highest]: a lane whose whole range sits above (below) 1 leads (trails) in every rep\n"
            if (aliases) printf "(%d scaling points equal to a lane above are not repeated; summary.csv has them)\n", aliases
            printf "\nmedian peak RSS in MiB; vs best = HAKMEM / smallest peer (named), <1 = HAKMEM smaller\n"
            printf "%-18s %-34s", "benchmark", "params"; for (a = 1; a <= na; a++) printf " %10s ", A[a]; if (hashak) printf " %-16s", "vs best"; printf "\n"
            for (l = 1; l <= nl; l++) {
                printf "%-18s %-34s", lb[l], lp[l]
                for (a = 1; a <= na; a++) {
                    k = A[a] SUBSEP lb[l] SUBSEP lp[l]
                    printf " %10s ", (s[k] == "") ? "-" : sprintf("%.1f", s[k] / 1024)
                }
                if (hashak) printf " %-16s", vs(l, "rss", 1)
                printf "\n"
            }
            # What each allocator keeps once the program freed everything: start -> after free-all -> after malloc_trim(0)
            hdr = 0
            for (l = 1; l <= nl; l++) {
                if (!anyfa[lb[l] SUBSEP lp[l]]) continue
                if (!hdr) {
                    printf "\nmedian RSS in MiB: at start / after free-all / after free-all + malloc_trim(0) (+N%% = trimmed vs start)\n"
                    printf "vs best = HAKMEM after free-all + trim / smallest peer (named), <1 = HAKMEM smaller\n"
                    printf "%-18s %-34s", "benchmark", "params"; for (a = 1; a <= na; a++) printf " %22s ", A[a]; if (hashak) printf " %-16s", "vs best"; printf "\n"
                    hdr = 1
                }
                printf "%-18s %-34s", lb[l], lp[l]
                for (a = 1; a <= na; a++) {
                    k = A[a] SUBSEP lb[l] SUBSEP lp[l]
                    if (st[k] == "") { printf " %22s ", "-"; continue }
                    printf " %22s ", sprintf("%.1f/%.1f/%.1f %+.0f%%", st[k] / 1024, fa[k] / 1024, tr[k] / 1024, st[k] > 0 ? 100 * (tr[k] - st[k]) / st[k] : 0)
                }
                if (hashak) printf " %-16s", vs(l, "tr", 1)
                printf "\n"
            }
        }' "$LANES" "$OUTDIR/summary.csv"
    if [[ " ${ALLOCS[*]} " == *" hakmem "* ]]; then
        # every lane where HAKMEM is below the best peer (ratio_vs_best < 1)
        below="$(awk -F, 'FNR == NR { if ($5) alias[$1 SUBSEP $2] = 1; next }
            $1 == "hakmem" && $14 != "" && $14 < 1.0 && !alias[$2 SUBSEP $3] {
                printf "  %-18s %-34s x%.2f of %s%s%s\n", $2, $3, $14, $15, ($10 > 25) ? " (noisy)" : "",
                       ($18 == "") ? "" : ($18 < 1.0) ? sprintf("; below in all %d reps (paired %.2f-%.2f)", $19, $17, $18) : sprintf("; paired %.2f-%.2f over %d reps: not below in every rep", $17, $18, $19) }' "$LANES" "$OUTDIR/summary.csv")"
        if [[ -n "$below" ]]; then
            echo; echo "HAKMEM below the best peer (median / the fastest peer median, same run):"; echo "$below"
        else
            echo; echo "HAKMEM at or above the best peer in every lane"
        fi
    fi
    if [[ -f "$OUTDIR/icount.txt" ]]; then echo; cat "$OUTDIR/icount.txt"; fi
    if [[ -f "$OUTDIR/redis/summary.txt" ]]; then echo; cat "$OUTDIR/redis/summary.txt"; fi
    if [[ -f "$OUTDIR/redis-icount/summary.txt" ]]; then echo; cat "$OUTDIR/redis-icount/summary.txt"; fi
    for a in "${!WHY_SKIPPED[@]}"; do echo "skipped $a: ${WHY_SKIPPED[$a]}"; done
    (( NFAIL == 0 )) || echo "$NFAIL runs FAILED: see $OUTDIR/failures.txt"
    echo "$TOTAL runs in ${ELAPSED} s; load average $LOAD_END at the end (noisy when above $NCPU)"
} > "$OUTDIR/summary.txt"

# --- charts ----------------------------------------------------------------------------------------
declare -A COLOR=([hakmem]="#d62728" [mimalloc]="#1f77b4" [jemalloc]="#2ca02c" [tcmalloc]="#ff7f0e" [tbbmalloc]="#9467bd" [glibc]="#7f7f7f")
if (( DO_CHART )); then
    # throughput.dat: one row per non-sweep lane (and each sweep's top point), ratio to the
    # best peer of the lane (the fastest allocator other than hakmem; with only hakmem, itself)
    NREF="the best peer"
    [[ "${ALLOCS[*]}" != hakmem ]] || NREF=hakmem
    awk -F, -v allocs="${ALLOCS[*]}" -v tmax="$THREADS" '
        FNR == NR { if ($3 == "" || $4 == tmax) { nl++; lb[nl] = $1; lp[nl] = $2 } next }
        FNR > 1 { m[$1 SUBSEP $2 SUBSEP $3] = $5 }
        END {
            na = split(allocs, A, " ")
            printf "lane"; for (a = 1; a <= na; a++) printf " %s", A[a]; printf "\n"
            for (l = 1; l <= nl; l++) {
                name = lb[l] " " lp[l]; gsub(/"/, "", name); sub(/^scaling_/, "", name)
                if (seen[name]++) continue
                r = ""
                for (a = 1; a <= na; a++) {
                    v = m[A[a] SUBSEP lb[l] SUBSEP lp[l]]
                    if (v != "" && (A[a] != "hakmem" || na == 1) && (r == "" || v + 0 > r + 0)) r = v
                }
                printf "\"%s\"", name
                for (a = 1; a <= na; a++) { v = m[A[a] SUBSEP lb[l] SUBSEP lp[l]]; printf " %s", (v != "" && r > 0) ? sprintf("%.4f", v / r) : "NaN" }
                printf "\n"
            }
        }' "$LANES" "$OUTDIR/summary.csv" > "$OUTDIR/throughput.dat"
    NROWS=$(( $(wc -l < "$OUTDIR/throughput.dat") - 1 ))
    # log2 y axis from the power of two below the smallest ratio to the one above the largest
    read -r YMIN YMAX < <(awk -v na="$NA" 'NR > 1 { for (i = NF - na + 1; i <= NF; i++) if ($i != "NaN" && $i > 0) {
                                    if (!lo || $i + 0 < lo) lo = $i + 0; if ($i + 0 > hi) hi = $i + 0 } }
        END { if (!lo) { lo = 1; hi = 1 } a = 0.5; while (a > lo * 0.98) a /= 2; b = 2; while (b < hi * 1.15) b *= 2; print a, b }' "$OUTDIR/throughput.dat")
    W=$(( 320 + NROWS * 26 * (NA + 1) / 2 )); (( W < 900 )) && W=900; (( W > 3000 )) && W=3000
    {
        echo "set terminal pngcairo size $W,720 font 'sans,10'"
        echo "set output '$OUTDIR/throughput.png'"
        echo "set title \"Throughput relative to $NREF (median of $REPS runs; >1 = faster) -- $MODE, threads=$THREADS, ${RUN_DATE% *}\""
        echo "set style data histogram; set style histogram cluster gap 1; set style fill solid 0.9 border -1; set boxwidth 0.9"
        echo "set datafile missing 'NaN'"
        echo "set xtics rotate by -35 left noenhanced; set key outside top center horizontal noenhanced"
        echo "set ylabel 'throughput / best peer (log scale)'; set logscale y 2; set yrange [$YMIN:$YMAX]; set ytics 2; set format y '%g'; set grid ytics"
        echo "set xrange [-0.6:$NROWS - 0.4]"
        echo "set bmargin 11; set rmargin 16"
        echo "set arrow from graph 0, first 1 to graph 1, first 1 nohead dt 2 lw 1.5 lc rgb 'black' front"
        printf "plot "
        for (( a = 0; a < NA; a++ )); do
            (( a )) && printf ", "
            printf "'%s' using %d:xtic(1) title columnheader(%d) lc rgb '%s'" "$OUTDIR/throughput.dat" $(( a + 2 )) $(( a + 2 )) "${COLOR[${ALLOCS[$a]}]}"
        done
        echo
    } > "$OUTDIR/throughput.gp"
    gnuplot "$OUTDIR/throughput.gp" 2>"$TMP/gp.err" || { cat "$TMP/gp.err" >&2; note "gnuplot failed on throughput.gp"; }

    # scaling.png: one panel per swept benchmark, M ops/s against threads
    GROUPS_=()
    for g in mt_remote larson prodcons; do
        awk -F, -v g="$g" '$3 == g { f = 1 } END { exit !f }' "$LANES" && GROUPS_+=("$g")
    done
    if (( ${#GROUPS_[@]} )); then
        for g in "${GROUPS_[@]}"; do
            awk -F, -v allocs="${ALLOCS[*]}" -v g="$g" '
                FNR == NR { if ($3 == g) { nl++; lb[nl] = $1; lp[nl] = $2; lt[nl] = $4 } next }
                FNR > 1 { m[$1 SUBSEP $2 SUBSEP $3] = $5 }
                END {
                    na = split(allocs, A, " ")
                    printf "threads"; for (a = 1; a <= na; a++) printf " %s", A[a]; printf "\n"
                    for (l = 1; l <= nl; l++) {
                        printf "%d", lt[l]
                        for (a = 1; a <= na; a++) { v = m[A[a] SUBSEP lb[l] SUBSEP lp[l]]; printf " %s", (v != "") ? sprintf("%.3f", v / 1e6) : "NaN" }
                        printf "\n"
                    }
                }' "$LANES" "$OUTDIR/summary.csv" > "$OUTDIR/scaling_$g.dat"
        done
        NG=${#GROUPS_[@]}
        {
            echo "set terminal pngcairo size $(( 480 * NG + 80 )),560 font 'sans,10'"
            echo "set output '$OUTDIR/scaling.png'"
            echo "set datafile missing 'NaN'"
            echo "set multiplot layout 1,$NG title \"Thread scaling (median of $REPS runs; $NCPU CPUs) -- ${RUN_DATE% *}\""
            echo "set logscale x 2; set xlabel 'threads'; set grid; set key below horizontal maxrows 1 width -1 noenhanced; set yrange [0:*]"
            echo "set offsets graph 0.05, graph 0.05, 0, 0; set bmargin 6; set xlabel 'threads' offset 0,0.5"
            for g in "${GROUPS_[@]}"; do
                case "$g" in
                    mt_remote) echo "set title 'mt\\_remote 16-2048 B, remote 50%'; set ylabel 'M ops/s'" ;;
                    larson) echo "set title 'larson 16-128 B, 1000 blocks/thread'; set ylabel 'M ops/s'" ;;
                    prodcons) echo "set title 'prodcons 16-1024 B (threads/2 pairs)'; set ylabel 'M objects/s'" ;;
                esac
                printf "plot "
                for (( a = 0; a < NA; a++ )); do
                    (( a )) && printf ", "
                    printf "'%s' using 1:%d title columnheader(%d) with linespoints lw 2 pt 7 lc rgb '%s'" \
                        "$OUTDIR/scaling_$g.dat" $(( a + 2 )) $(( a + 2 )) "${COLOR[${ALLOCS[$a]}]}"
                done
                echo
            done
            echo "unset multiplot"
        } > "$OUTDIR/scaling.gp"
        gnuplot "$OUTDIR/scaling.gp" 2>"$TMP/gp.err" || { cat "$TMP/gp.err" >&2; note "gnuplot failed on scaling.gp"; }
    fi
fi

cat "$OUTDIR/summary.txt"
echo "results: $OUTDIR/ (results.csv, summary.csv, summary.txt$( (( DO_CHART )) && [[ -f "$OUTDIR/throughput.png" ]] && echo ', throughput.png')$( [[ -f "$OUTDIR/scaling.png" ]] && echo ', scaling.png'))"
(( NFAIL == 0 )) || exit 1
