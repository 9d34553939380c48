#!/usr/bin/env bash
# bench/redis.sh -- a real service under each allocator: redis-server driven by
# redis-benchmark, requests/s per command and the server's peak RSS.
#
# usage: bench/redis.sh [--rounds R] [--requests N] [--allocators LIST] [--out DIR] [--no-build]
#        bench/redis.sh --icount [--requests N] [--allocators LIST] [--out DIR] [--no-build]
#
#   --rounds R        rounds (default 5); each round runs every allocator once, the
#                     order rotated every round; the tables show medians
#   --requests N      redis-benchmark -n (default 200000)
#   --allocators L    comma-separated subset of hakmem,tcmalloc,jemalloc,mimalloc,tbbmalloc,glibc
#   --out DIR         where results.csv and summary.txt go (default: a temporary folder,
#                     summary printed only)
#   --no-build        do not build libhakmem.so first
#   --icount          instead of timing: instructions per request, counted by callgrind
#                     (deterministic to a fraction of a percent; needs valgrind). Each
#                     allocator's redis-server (--io-threads 1: an I/O thread spins, and
#                     callgrind would count the spin) runs under callgrind once, driven
#                     by the same redis-benchmark mix with -n N (default 20000); the
#                     table gives the server's instructions per request, its whole
#                     process, and each against jemalloc's. Two cores shared by server
#                     and client make requests/s noisy; this says what the allocator
#                     costs the server per request.
#
# Each run: redis-server --port P --io-threads 2 --save '' --appendonly no on a free
# local port, started with LD_PRELOAD=the allocator; redis-benchmark -t
# get,set,lpush,lpop,sadd -n N -c 50 -P 8 -d 256 -q --csv against it; then the
# server's VmHWM (peak RSS) from /proc/PID/status, and SHUTDOWN NOSAVE.
#
# Which malloc redis really uses: Debian's redis-server links libjemalloc.so.2
# dynamically and calls the plain malloc/calloc/realloc/free/malloc_usable_size
# names (plus jemalloc's mallctl, nallocx and malloc_stats_print, which no
# preload replaces: they only query jemalloc's own, then idle, state). So the
# preload replaces malloc, and for glibc the "preload" is libc.so.6 itself, or
# jemalloc would serve it. INFO memory's mem_allocator is the string compiled
# in (always jemalloc-5.3.0 here) and proves nothing; instead, before
# measuring, redis-server --version runs under LD_BIND_NOW=1 LD_DEBUG=bindings
# and every one of those five symbols of the redis-server binary must bind to
# the allocator under test (jemalloc: libjemalloc.so.2). An allocator that
# fails the check is skipped with a note.
#
# Output: per command the median requests/s per allocator, "vs best" (HAKMEM's
# median / the fastest peer's, named), and the geometric mean over the commands
# of each allocator's median relative to jemalloc's (redis's own allocator);
# then the median peak RSS per allocator. results.csv: allocator,round,command,rps
# and allocator,round,VmHWM,kib rows.
#
# environment: HAKMEM_SO, TCMALLOC_SO, JEMALLOC_SO, MIMALLOC_SO, TBBMALLOC_SO ("none"
# skips one), REDIS_SERVER, REDIS_BENCHMARK, REDIS_CLI (default: from PATH).
# exit status: 0; 1 when a run failed; 2 on bad arguments or no redis.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
die() { echo "redis.sh: $*" >&2; exit 2; }
note() { echo "redis.sh: $*" >&2; }

ROUNDS=5; REQ=""; ALLOC_SEL=""; OUT=""; DO_BUILD=1; ICOUNT=0
while (( $# )); do
    case "$1" in
        --rounds) [[ $# -ge 2 ]] || die "--rounds needs a value"; ROUNDS="$2"; shift ;;
        --rounds=*) ROUNDS="${1#*=}" ;;
        --requests) [[ $# -ge 2 ]] || die "--requests needs a value"; REQ="$2"; shift ;;
        --requests=*) REQ="${1#*=}" ;;
        --allocators) [[ $# -ge 2 ]] || die "--allocators needs a value"; ALLOC_SEL="$2"; shift ;;
        --allocators=*) ALLOC_SEL="${1#*=}" ;;
        --out) [[ $# -ge 2 ]] || die "--out needs a value"; OUT="$2"; shift ;;
        --out=*) OUT="${1#*=}" ;;
        --no-build) DO_BUILD=0 ;;
        --icount) ICOUNT=1 ;;
        -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
    shift
done
[[ -n "$REQ" ]] || { if (( ICOUNT )); then REQ=20000; else REQ=200000; fi; }
(( ! ICOUNT )) || command -v valgrind >/dev/null 2>&1 || die "--icount needs valgrind (Debian: apt install valgrind; tools/deps.sh)"
{ [[ "$ROUNDS" =~ ^[0-9]+$ ]] && (( ROUNDS >= 1 )); } || die "--rounds must be a positive integer"
{ [[ "$REQ" =~ ^[0-9]+$ ]] && (( REQ >= 1 )); } || die "--requests must be a positive integer"

SERVER="${REDIS_SERVER:-$(command -v redis-server || true)}"
BENCH="${REDIS_BENCHMARK:-$(command -v redis-benchmark || true)}"
CLI="${REDIS_CLI:-$(command -v redis-cli || true)}"
[[ -n "$SERVER" && -n "$BENCH" && -n "$CLI" ]] \
    || die "redis-server, redis-benchmark and redis-cli are needed (Debian: apt install redis-server redis-tools; tools/deps.sh)"
# not readlink -f: Debian's redis-server is a link to redis-check-rdb, which acts on argv[0]

ALL_ALLOCS=(hakmem tcmalloc jemalloc mimalloc tbbmalloc glibc)
if [[ -n "$ALLOC_SEL" ]]; then
    IFS=, read -r -a WANT <<<"$ALLOC_SEL"
    for a in "${WANT[@]}"; do [[ " ${ALL_ALLOCS[*]} " == *" $a "* ]] || die "unknown allocator '$a' (${ALL_ALLOCS[*]})"; done
else
    WANT=("${ALL_ALLOCS[@]}")
fi
wanted() { [[ " ${WANT[*]} " == *" $1 "* ]]; }

HSO="${HAKMEM_SO:-$ROOT/build/release/libhakmem.so}"
if wanted hakmem && (( DO_BUILD )) && [[ -z "${HAKMEM_SO:-}" ]]; then
    [[ -f "$ROOT/build/release/build.ninja" ]] || (cd "$ROOT" && cmake --preset release >/dev/null) || die "cmake --preset release failed"
    (cd "$ROOT" && cmake --build --preset release --target hakmem_shared >/dev/null) || die "building libhakmem.so failed"
fi

. "$ROOT/bench/peers.sh" # LIBDIR, find_lib, peer_default
LIBC="$(ldd "$SERVER" | awk '$1 ~ /^libc\.so/ { print $3 }')"
[[ -n "$LIBC" ]] || die "cannot find redis-server's libc (ldd $SERVER)"
note "$(basename "$SERVER"): $("$SERVER" --version | head -1); links $(ldd "$SERVER" | awk '/jemalloc|tcmalloc|mimalloc/ { printf "%s ", $1 }')"

declare -A SO=()
for a in "${WANT[@]}"; do
    var="${a^^}_SO"; [[ $a == hakmem ]] && var=HAKMEM_SO
    if [[ "${!var:-}" == none ]]; then note "skipping $a: $var=none"; continue; fi
    case "$a" in
        hakmem) p="$HSO"; [[ -f "$p" ]] || { note "skipping hakmem: no $p"; continue; }; p="$(cd "$(dirname "$p")" && pwd)/$(basename "$p")" ;;
        glibc) p="$LIBC" ;;
        *) if [[ -n "${!var:-}" ]]; then p="${!var}"
           elif ! p="$(peer_default "$a")"; then note "skipping $a: not installed"; continue; fi ;;
    esac
    # every allocation entry point redis-server calls must bind to the library under test
    binds="$(env LD_BIND_NOW=1 LD_DEBUG=bindings LD_PRELOAD="$p" "$SERVER" --version 2>&1 >/dev/null || true)"
    ok=1
    for sym in malloc calloc realloc free malloc_usable_size; do
        awk -v f="binding file $SERVER " -v t=" to $p " -v s="symbol \`$sym'" \
            'index($0, f) && index($0, t) && index($0, s) { found = 1 } END { exit !found }' <<<"$binds" \
            || { note "skipping $a: redis-server's $sym does not bind to $p (LD_DEBUG=bindings)"; ok=0; break; }
    done
    (( ok )) && SO[$a]="$p"
done
ALLOCS=()
for a in "${ALL_ALLOCS[@]}"; do wanted "$a" && [[ -n "${SO[$a]:-}" ]] && ALLOCS+=("$a"); done
(( ${#ALLOCS[@]} )) || die "no allocator left to run"
note "redis-server's malloc, calloc, realloc, free and malloc_usable_size bind to: $(for a in "${ALLOCS[@]}"; do printf '%s=%s ' "$a" "$(basename "${SO[$a]}")"; done)"

TMP="$(mktemp -d)"
SPID=""
cleanup() {
    if [[ -n "$SPID" ]] && kill -0 "$SPID" 2>/dev/null; then kill "$SPID" 2>/dev/null || true; wait "$SPID" 2>/dev/null || true; fi
    rm -rf "$TMP"
}
trap cleanup EXIT
if [[ -n "$OUT" ]]; then mkdir -p "$OUT"; OUT="$(cd "$OUT" && pwd)"; else OUT="$TMP/out"; mkdir -p "$OUT"; fi
CSV="$OUT/results.csv"
echo "allocator,round,command,rps" > "$CSV"

# Ports below the kernel's ephemeral range: redis-benchmark's 50 client
# sockets (and their TIME_WAIT remains) take ephemeral ports, and one took
# the server's port between this check and its bind once (round 2 mimalloc).
EPH_LO="$(awk '{ print $1 }' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)"
(( EPH_LO > 12000 )) || EPH_LO=32768
free_port() {
    local p i
    for (( i = 0; i < 200; i++ )); do
        p=$(( 10000 + (RANDOM * 32768 + RANDOM) % (EPH_LO - 10000) ))
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return 0; }
    done
    return 1
}

NFAIL=0
run_one() { # run_one ROUND ALLOC
    local r="$1" a="$2" port i hwm out rc=0
    local try
    for (( try = 0; try < 3; try++ )); do # another bind can still win the port: try another
        port="$(free_port)" || { note "no free port"; NFAIL=$(( NFAIL + 1 )); return 0; }
        : > "$TMP/server.log"
        env LD_PRELOAD="${SO[$a]}" "$SERVER" --port "$port" --bind 127.0.0.1 --io-threads 2 --save '' --appendonly no \
            --daemonize no --logfile "$TMP/server.log" --dir "$TMP" &
        SPID=$!
        for (( i = 0; i < 100; i++ )); do
            [[ "$("$CLI" -p "$port" ping 2>/dev/null)" == PONG ]] && break
            kill -0 "$SPID" 2>/dev/null || break
            sleep 0.1
        done
        grep -q "Address already in use" "$TMP/server.log" 2>/dev/null || break
        wait "$SPID" 2>/dev/null || true
        note "round $r $a: port $port taken before redis-server bound it; another port"
    done
    if [[ "$("$CLI" -p "$port" ping 2>/dev/null)" != PONG ]]; then
        note "round $r $a: redis-server did not start (log: $(tail -n 3 "$TMP/server.log" 2>/dev/null | tr '\n' ' '))"
        NFAIL=$(( NFAIL + 1 )); kill "$SPID" 2>/dev/null || true; wait "$SPID" 2>/dev/null || true; SPID=""; return 0
    fi
    out="$(timeout 600 "$BENCH" -p "$port" -t get,set,lpush,lpop,sadd -n "$REQ" -c 50 -P 8 -d 256 -q --csv 2>"$TMP/bench.err")" || rc=$?
    hwm="$(awk '/^VmHWM:/ { print $2 }' "/proc/$SPID/status" 2>/dev/null || true)"
    "$CLI" -p "$port" shutdown nosave >/dev/null 2>&1 || true
    local st=0
    wait "$SPID" 2>/dev/null || st=$?
    SPID=""
    if (( rc != 0 )) || [[ -z "$hwm" ]] || ! grep -q '^"SET"' <<<"$out"; then
        note "round $r $a: failed (redis-benchmark exit $rc, server exit $st): $(tail -n 3 "$TMP/bench.err" | tr '\n' ' ')"
        NFAIL=$(( NFAIL + 1 )); return 0
    fi
    (( st == 0 )) || { note "round $r $a: redis-server exited with status $st"; NFAIL=$(( NFAIL + 1 )); return 0; }
    awk -F'"' -v a="$a" -v r="$r" 'NR > 1 && $2 != "" { printf "%s,%s,%s,%s\n", a, r, $2, $4 }' <<<"$out" >> "$CSV"
    echo "$a,$r,VmHWM,$hwm" >> "$CSV"
    printf 'redis.sh: round %d/%d %-9s %s, peak RSS %.1f MiB\n' "$r" "$ROUNDS" "$a" \
        "$(awk -F'"' 'NR > 1 { o = o sep $2 " " sprintf("%.0fk", $4 / 1000); sep = " " } END { print o }' <<<"$out")" "$(awk -v k="$hwm" 'BEGIN { print k / 1024 }')" >&2
}

# --icount: one callgrind run per allocator; the server's instructions per request
icount_one() { # icount_one ALLOC -> "ALLOC,instructions,requests" on stdout
    local a="$1" port i tot
    port="$(free_port)" || { note "no free port"; return 1; }
    : > "$TMP/server.log"
    env LD_PRELOAD="${SO[$a]}" valgrind --tool=callgrind --callgrind-out-file="$TMP/cg.$a" --log-file="$TMP/vg.$a" \
        "$SERVER" --port "$port" --bind 127.0.0.1 --io-threads 1 --save '' --appendonly no \
        --daemonize no --logfile "$TMP/server.log" --dir "$TMP" &
    SPID=$!
    for (( i = 0; i < 600; i++ )); do # valgrind starts slowly
        [[ "$("$CLI" -p "$port" ping 2>/dev/null)" == PONG ]] && break
        kill -0 "$SPID" 2>/dev/null || break
        sleep 0.1
    done
    if [[ "$("$CLI" -p "$port" ping 2>/dev/null)" != PONG ]]; then
        note "$a: redis-server under callgrind did not start"; kill "$SPID" 2>/dev/null || true; wait "$SPID" 2>/dev/null || true
        SPID=""; return 1
    fi
    timeout 1200 "$BENCH" -p "$port" -t get,set,lpush,lpop,sadd -n "$REQ" -c 50 -P 8 -d 256 -q >/dev/null 2>"$TMP/bench.err" \
        || { note "$a: redis-benchmark failed: $(tail -n 2 "$TMP/bench.err" | tr '\n' ' ')"; }
    "$CLI" -p "$port" shutdown nosave >/dev/null 2>&1 || true
    wait "$SPID" 2>/dev/null || true
    SPID=""
    tot="$(sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$TMP/cg.$a" | head -n 1)"
    [[ -n "$tot" ]] || { note "$a: no totals in the callgrind output"; return 1; }
    echo "$a,$tot,$(( 5 * REQ ))"
}
if (( ICOUNT )); then
    echo "allocator,instructions,requests" > "$OUT/icount.csv"
    for a in "${ALLOCS[@]}"; do
        if row="$(icount_one "$a")"; then echo "$row" >> "$OUT/icount.csv"; note "$a: $(awk -F, '{ printf "%.0f instructions per request", $2 / $3 }' <<<"$row")"
        else NFAIL=$(( NFAIL + 1 )); fi
    done
    awk -F, -v req="$REQ" 'NR > 1 { n++; A[n] = $1; I[$1] = $2 / $3 }
        END {
            printf "redis-server (--io-threads 1) under callgrind, redis-benchmark -t get,set,lpush,lpop,sadd -n %d -c 50 -P 8 -d 256\n", req
            printf "instructions per request, the server process as a whole; vs je = against jemalloc (redis'"'"'s own), <1 = fewer\n"
            printf "%-10s %14s %8s\n", "allocator", "instr/request", "vs je"
            for (i = 1; i <= n; i++) printf "%-10s %14.0f %8s\n", A[i], I[A[i]], ("jemalloc" in I) ? sprintf("x%.3f", I[A[i]] / I["jemalloc"]) : "-"
        }' "$OUT/icount.csv" > "$OUT/summary.txt"
    echo "redis: $("$SERVER" --version | head -1 | cut -d' ' -f1-3); allocators bound by LD_PRELOAD (LD_DEBUG=bindings checked): $(for a in "${ALLOCS[@]}"; do printf '%s=%s ' "$a" "$(basename "${SO[$a]}")"; done)" >> "$OUT/summary.txt"
    (( NFAIL == 0 )) || echo "$NFAIL callgrind runs FAILED" >> "$OUT/summary.txt"
    cat "$OUT/summary.txt"
    (( NFAIL == 0 )) || exit 1
    exit 0
fi

NA=${#ALLOCS[@]}
for (( r = 1; r <= ROUNDS; r++ )); do
    for (( k = 0; k < NA; k++ )); do run_one "$r" "${ALLOCS[$(( (k + r - 1) % NA ))]}"; done
done

awk -F, -v allocs="${ALLOCS[*]}" -v rounds="$ROUNDS" -v req="$REQ" '
    function median(list,   n, v, i, j, x) {
        n = split(list, v, " ")
        for (i = 2; i <= n; i++) { x = v[i] + 0; for (j = i - 1; j >= 1 && v[j] + 0 > x; j--) v[j + 1] = v[j]; v[j + 1] = x }
        if (n == 0) return ""
        return (n % 2) ? v[(n + 1) / 2] + 0 : (v[n / 2] + v[n / 2 + 1]) / 2
    }
    NR > 1 { k = $1 SUBSEP $3; val[k] = val[k] " " $4; if ($3 != "VmHWM" && !seen[$3]++) cmd[++nc] = $3 }
    END {
        na = split(allocs, A, " ")
        for (a = 1; a <= na; a++) if (A[a] == "hakmem") hashak = 1
        printf "redis-server (--io-threads 2), redis-benchmark -n %d -c 50 -P 8 -d 256; median of %d rounds, allocators interleaved\n", req, rounds
        printf "requests/s in thousands; vs best = HAKMEM / the fastest peer (named), >1 = HAKMEM faster\n"
        printf "%-10s", "command"; for (a = 1; a <= na; a++) printf " %10s", A[a]; if (hashak) printf "  %s", "vs best"; printf "\n"
        for (c = 1; c <= nc; c++) {
            printf "%-10s", cmd[c]; b = ""; bp = ""
            for (a = 1; a <= na; a++) {
                m = median(val[A[a] SUBSEP cmd[c]]); M[A[a], c] = m
                printf " %10s", (m == "") ? "-" : sprintf("%.1f", m / 1000)
                if (A[a] != "hakmem" && m != "" && (b == "" || m > b)) { b = m; bp = A[a] }
            }
            h = M["hakmem", c]
            if (hashak) printf "  %s", (h != "" && b != "" && b > 0) ? sprintf("x%.2f %s", h / b, bp) : "-"
            printf "\n"
        }
        # geometric mean over the commands of median / jemalloc median
        printf "%-10s", "geomean/je"
        for (a = 1; a <= na; a++) {
            s = 0; n = 0
            for (c = 1; c <= nc; c++) if (M[A[a], c] != "" && M["jemalloc", c] > 0) { s += log(M[A[a], c] / M["jemalloc", c]); n++ }
            G[A[a]] = (n == nc && n > 0) ? exp(s / n) : ""
            printf " %10s", (G[A[a]] == "") ? "-" : sprintf("x%.3f", G[A[a]])
        }
        if (hashak) {
            b = ""; bp = ""
            for (a = 1; a <= na; a++) if (A[a] != "hakmem" && G[A[a]] != "" && (b == "" || G[A[a]] > b)) { b = G[A[a]]; bp = A[a] }
            printf "  %s", (G["hakmem"] != "" && b != "") ? sprintf("x%.2f %s", G["hakmem"] / b, bp) : "-"
        }
        printf "\n%-10s", "peak RSS"
        b = ""; bp = ""
        for (a = 1; a <= na; a++) {
            m = median(val[A[a] SUBSEP "VmHWM"]); R[A[a]] = m
            printf " %10s", (m == "") ? "-" : sprintf("%.1fM", m / 1024)
            if (A[a] != "hakmem" && m != "" && (b == "" || m < b)) { b = m; bp = A[a] }
        }
        if (hashak) printf "  %s", (R["hakmem"] != "" && b != "" && b > 0) ? sprintf("x%.2f %s (smallest)", R["hakmem"] / b, bp) : "-"
        printf "\n(peak RSS = the server'"'"'s VmHWM in MiB before SHUTDOWN; geomean/je = geometric mean over the commands of median / jemalloc'"'"'s median%s)\n", (("jemalloc") in G) ? "" : "; jemalloc was not run"
    }' "$CSV" > "$OUT/summary.txt"
{
    echo "redis: $("$SERVER" --version | head -1 | cut -d' ' -f1-3); malloc, calloc, realloc, free, malloc_usable_size bound by LD_PRELOAD (LD_DEBUG=bindings checked): $(for a in "${ALLOCS[@]}"; do printf '%s=%s ' "$a" "$(basename "${SO[$a]}")"; done)"
    (( NFAIL == 0 )) || echo "$NFAIL redis runs FAILED"
} >> "$OUT/summary.txt"
cat "$OUT/summary.txt"
(( NFAIL == 0 )) || exit 1
