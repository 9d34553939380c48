#!/usr/bin/env bash
# bench/icount.sh -- instructions per malloc and per free (and with --usable per
# malloc_usable_size), HAKMEM against its peers, counted by callgrind
# (deterministic: no timing, no noise).
#
# usage: bench/icount.sh [--ws N] [--sizes MIN-MAX] [--cycles HI,LO] [--allocators LIST] [--usable]
#                        [--hakmem-only] [--json] [--driver PATH] [--hakmem-so PATH] [--no-build]
#
#   --ws N            working set of the driver's random toggle loop (default 256; 65536 is
#                     the set whose slabs drain and refill)
#   --sizes MIN-MAX   request sizes, uniform (default 16-1039: bench_random_mixed's)
#   --cycles HI,LO    the two run lengths (default 3000000,1000000)
#   --allocators L    comma-separated subset of hakmem,tcmalloc,jemalloc,mimalloc,tbbmalloc,glibc
#   --usable          also malloc_usable_size, called on every block before its free (as
#                     redis's zfree does): an instr/usable_size column; instr/pair incl. loop
#                     then includes that call
#   --hakmem-only     --allocators hakmem
#   --json            one JSON object per allocator and line instead of the table
#   --driver PATH     the driver (default build/release/bench/bench_icount)
#   --hakmem-so PATH  HAKMEM's library (default $HAKMEM_SO or build/release/libhakmem.so)
#   --no-build        do not build the driver and libhakmem.so first
#
# How: bench/bench_icount.c makes every malloc and free call from two noinline
# functions, icount_loop and icount_drain. Under callgrind each allocator
# (LD_PRELOAD; glibc: none) runs the driver at HI and at LO cycles; the call
# records out of those two functions give, per callee, the number of calls and
# their inclusive instruction count (the allocator's function and everything
# it called). instr/malloc = (incl(HI) - incl(LO)) / (calls(HI) - calls(LO)),
# the same for free: start-up, the first calls' set-up and the final drain
# cancel. instr/pair incl. loop is the same difference for icount_loop as a
# whole (its own instructions plus its calls) per malloc it made: one
# malloc+free pair and the loop around them.
#
# Which function is counted: the callee of each call record, by the name
# callgrind gives it, and it must lie in the allocator's library (glibc: libc).
# tcmalloc puts malloc and free in a section of their own that valgrind maps
# to no object ("???"); those are accepted only when the function's own calls
# go into libtcmalloc. The "symbols" column lists the library's other
# exported names at the counted address (tcmalloc's malloc is tc_malloc). The
# counted calls must equal the calls the driver itself counted, or the script
# fails.
#
# environment: HAKMEM_SO, TCMALLOC_SO, JEMALLOC_SO, MIMALLOC_SO, TBBMALLOC_SO (a path;
# "none" skips one; default: build/release/libhakmem.so and Debian's libraries).
# exit status: 0; 1 when a run fails or a count does not check; 2 on bad
# arguments or a missing tool (valgrind).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
die() { echo "icount.sh: $*" >&2; exit 2; }
note() { echo "icount.sh: $*" >&2; }

WS=256; SMIN=16; SMAX=1039; HI=3000000; LO=1000000; ALLOC_SEL=""; JSON=0; DO_BUILD=1; USABLE=0
DRIVER="$ROOT/build/release/bench/bench_icount"
HSO="${HAKMEM_SO:-$ROOT/build/release/libhakmem.so}"
DRIVER_SET=0
while (( $# )); do
    case "$1" in
        --ws) [[ $# -ge 2 ]] || die "--ws needs a value"; WS="$2"; shift ;;
        --ws=*) WS="${1#*=}" ;;
        --sizes) [[ $# -ge 2 ]] || die "--sizes needs MIN-MAX"; SZ="$2"; SMIN="${SZ%-*}"; SMAX="${SZ#*-}"; shift ;;
        --sizes=*) SZ="${1#*=}"; SMIN="${SZ%-*}"; SMAX="${SZ#*-}" ;;
        --cycles) [[ $# -ge 2 ]] || die "--cycles needs HI,LO"; HI="${2%,*}"; LO="${2#*,}"; shift ;;
        --cycles=*) C="${1#*=}"; HI="${C%,*}"; LO="${C#*,}" ;;
        --allocators) [[ $# -ge 2 ]] || die "--allocators needs a value"; ALLOC_SEL="$2"; shift ;;
        --allocators=*) ALLOC_SEL="${1#*=}" ;;
        --hakmem-only) ALLOC_SEL=hakmem ;;
        --usable) USABLE=1 ;;
        --json) JSON=1 ;;
        --driver) [[ $# -ge 2 ]] || die "--driver needs a path"; DRIVER="$2"; DRIVER_SET=1; shift ;;
        --driver=*) DRIVER="${1#*=}"; DRIVER_SET=1 ;;
        --hakmem-so) [[ $# -ge 2 ]] || die "--hakmem-so needs a path"; HSO="$2"; shift ;;
        --hakmem-so=*) HSO="${1#*=}" ;;
        --no-build) DO_BUILD=0 ;;
        -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
    shift
done
for v in WS SMIN SMAX HI LO; do [[ "${!v}" =~ ^[0-9]+$ ]] || die "bad number '${!v}' (--ws, --sizes, --cycles)"; done
(( WS >= 1 && SMIN >= 8 && SMAX >= SMIN && HI > LO && LO >= 1 )) || die "need ws >= 1, 8 <= min <= max, hi > lo >= 1"
command -v valgrind >/dev/null 2>&1 || die "valgrind not found (Debian: apt install valgrind; tools/deps.sh installs it)"

ALL_ALLOCS=(hakmem tcmalloc jemalloc mimalloc tbbmalloc glibc)
if [[ -n "$ALLOC_SEL" ]]; then
    IFS=, read -r -a WANT <<<"$ALLOC_SEL"
    for a in "${WANT[@]}"; do [[ " ${ALL_ALLOCS[*]} " == *" $a "* ]] || die "unknown allocator '$a' (${ALL_ALLOCS[*]})"; done
else
    WANT=("${ALL_ALLOCS[@]}")
fi

if (( DO_BUILD && ! DRIVER_SET )); then
    command -v cmake >/dev/null 2>&1 || die "cmake not found (or use --no-build)"
    [[ -f "$ROOT/build/release/build.ninja" ]] || (cd "$ROOT" && cmake --preset release >/dev/null) || die "cmake --preset release failed"
    (cd "$ROOT" && cmake --build --preset release --target bench_icount hakmem_shared >/dev/null) \
        || die "build failed: run cmake --build --preset release --target bench to see why"
fi
[[ -x "$DRIVER" ]] || die "no driver $DRIVER (cmake --build --preset release --target bench_icount)"

. "$ROOT/bench/peers.sh" # LIBDIR, find_lib, peer_default
so_of() { # so_of ALLOC -> the library to preload ("" for glibc); fails when absent
    case "$1" in
        hakmem) [[ "$HSO" != none && -f "$HSO" ]] && echo "$(cd "$(dirname "$HSO")" && pwd)/$(basename "$HSO")" ;;
        glibc) echo "" ;;
        *) local var="${1^^}_SO"
           [[ "${!var:-}" != none ]] || return 1
           if [[ -n "${!var:-}" ]]; then [[ -f "${!var}" ]] && echo "${!var}"; return; fi
           peer_default "$1" ;;
    esac
}
LIBC="$(ldd "$DRIVER" 2>/dev/null | awk '$1 ~ /^libc\.so/ { print $3 }')"
[[ -n "$LIBC" ]] || die "cannot find the driver's libc (ldd $DRIVER)"

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

# parse OUT: one line per (caller, callee) of the driver's two functions:
#   call CALLER CALLEE CALLS INCLUSIVE OBJECT CALLEE_CALLS_INTO
# and "loop SELF_PLUS_CALLS" for icount_loop. CALLEE_CALLS_INTO lists the
# objects the callee's own body calls into (for tcmalloc's "???" section).
parse() {
    awk '
        function flush() { if (pend != "") pend = "" }
        /^ob=/  { ob = substr($0, 4); next }
        /^fn=/  { fn = substr($0, 4); cob = ""; pend = ""; next }
        /^cob=/ { cob = substr($0, 5); next }
        /^cfn=/ { cfn = substr($0, 5); next }
        /^calls=/ { split(substr($0, 7), c, " "); pend = c[1] + 0; next }
        /^[0-9]/ {
            if (pend != "") {
                o = (cob != "") ? cob : ob
                into[ob SUBSEP fn] = into[ob SUBSEP fn] " " o
                if (fn == "icount_loop" || fn == "icount_drain") {
                    k = fn SUBSEP cfn; n[k] += pend; incl[k] += $2; obj[k] = o; keys[k] = 1
                    if (fn == "icount_loop") loop += $2
                }
                pend = ""; cob = ""
            } else if (fn == "icount_loop") loop += $2
            next
        }
        END {
            for (k in keys) {
                split(k, p, SUBSEP)
                # where the callee function itself calls (its block is in object obj[k])
                printf "call\t%s\t%s\t%d\t%.0f\t%s\t%s\n", p[1], p[2], n[k], incl[k], obj[k], into[obj[k] SUBSEP p[2]]
            }
            printf "loop\t%.0f\n", loop
        }' "$1"
}

# run_cg ALLOC SO CYCLES: callgrind of the driver; writes $TMP/ALLOC.CYCLES.{out,cg,parsed}
run_cg() {
    local a="$1" so="$2" cyc="$3" base="$TMP/$1.$3" rc=0
    local -a envp=(env -u LD_PRELOAD LD_BIND_NOW=1)
    [[ -n "$so" ]] && envp=(env LD_BIND_NOW=1 LD_PRELOAD="$so")
    "${envp[@]}" valgrind --tool=callgrind --callgrind-out-file="$base.cg" --compress-strings=no --compress-pos=no \
        --dump-instr=no "$DRIVER" "$cyc" "$WS" "$SMIN" "$SMAX" 1234567 "$USABLE" >"$base.out" 2>"$base.err" || rc=$?
    if (( rc != 0 )); then note "$a: callgrind run of $cyc cycles failed (exit $rc):"; tail -n 5 "$base.err" >&2; return 1; fi
    parse "$base.cg" > "$base.parsed"
}

# exported names at the address of the library's NAME (tcmalloc: malloc = tc_malloc = __libc_malloc)
aliases() { # aliases SO NAME
    command -v nm >/dev/null 2>&1 || { echo "$2"; return; }
    nm -D --defined-only "$1" 2>/dev/null | awk -v s="$2" '{ addr[$3] = $1; name[NR] = $3; a[NR] = $1 }
        END { t = addr[s]; if (t == "") { print s; exit } out = s
              for (i = 1; i <= NR; i++) if (a[i] == t && name[i] != s && name[i] !~ /@/) { if (name[i] !~ /^_Z/) out = out "=" name[i] }; print out }'
}

calls_into() { # calls_into WANT OBJECT...: one of the objects is WANT
    local w="$1" x; shift
    for x in "$@"; do [[ "$x" != "???" && "$(readlink -f "$x")" == "$w" ]] && return 0; done
    return 1
}

FAIL=0
declare -a ROWS=()
for a in "${WANT[@]}"; do
    if ! so="$(so_of "$a")"; then note "skipping $a: library not installed (or its *_SO=none)"; continue; fi
    if [[ $a != glibc && -z "$so" ]]; then note "skipping $a: no library"; continue; fi
    want_obj="$(readlink -f "${so:-$LIBC}")"
    ok=1
    for cyc in "$HI" "$LO"; do run_cg "$a" "$so" "$cyc" || { ok=0; break; }; done
    (( ok )) || { FAIL=1; continue; }
    # per callee: calls and inclusive instructions, both functions together; checks
    declare -A C=() I=() O=() INTO=()
    L=()
    for cyc in "$HI" "$LO"; do
        while IFS=$'\t' read -r kind caller callee ncalls incl obj into; do
            if [[ $kind == loop ]]; then L+=("$caller"); continue; fi
            C[$cyc,$callee]=$(( ${C[$cyc,$callee]:-0} + ncalls )); I[$cyc,$callee]=$(( ${I[$cyc,$callee]:-0} + incl ))
            [[ $caller == icount_loop ]] && C[$cyc,loop,$callee]=$(( ${C[$cyc,loop,$callee]:-0} + ncalls ))
            O[$callee]="$obj"; INTO[$callee]="$into"
        done < "$TMP/$a.$cyc.parsed"
    done
    mfn=""; ffn=""; ufn=""
    for k in "${!O[@]}"; do
        case "$k" in
            # malloc_usable_size, mi_usable_size, tc_malloc_size, scalable_msize...: before *alloc*
            *usable*|*_size|*msize*) [[ -z "$ufn" ]] || { note "$a: two usable-size-like callees ($ufn, $k)"; ok=0; }; ufn="$k" ;;
            *free*) [[ -z "$ffn" ]] || { note "$a: two free-like callees ($ffn, $k)"; ok=0; }; ffn="$k" ;;
            *alloc*) [[ -z "$mfn" ]] || { note "$a: two malloc-like callees ($mfn, $k)"; ok=0; }; mfn="$k" ;;
            *) note "$a: the driver called '$k', neither malloc nor free (a failure path?)"; ok=0 ;;
        esac
    done
    [[ -n "$mfn" && -n "$ffn" ]] || { note "$a: no malloc or free call records from icount_loop (callgrind output changed?)"; ok=0; }
    (( USABLE )) && [[ -z "$ufn" ]] && { note "$a: no malloc_usable_size call records from icount_loop"; ok=0; }
    symnote=""
    for f in "$mfn" "$ffn" "$ufn"; do
        [[ -n "$f" ]] || continue
        o="${O[$f]}"
        if [[ "$o" == "???" ]]; then
            # a section valgrind maps to no object: accept it only when the
            # function's own calls go into the library under test
            if calls_into "$want_obj" ${INTO[$f]}; then
                symnote=" (object ??? to valgrind; calls into $(basename "$want_obj"))"
            else
                note "$a: $f is in no object valgrind knows and does not call into $want_obj"; ok=0
            fi
        elif [[ "$(readlink -f "$o")" != "$want_obj" ]]; then
            note "$a: the counted $f is in $o, not in $want_obj: the preload did not replace it"; ok=0
        fi
    done
    # the driver's own counts must match the call records
    for cyc in "$HI" "$LO"; do
        read -r du dm df < <(sed -n 's/^icount .* usables=\([0-9]*\) mallocs=\([0-9]*\) frees=\([0-9]*\)$/\1 \2 \3/p' "$TMP/$a.$cyc.out")
        if [[ "${dm:-}" != "${C[$cyc,$mfn]:-x}" || "${df:-}" != "${C[$cyc,$ffn]:-x}" ]]; then
            note "$a: callgrind counted ${C[$cyc,$mfn]:-?} malloc and ${C[$cyc,$ffn]:-?} free calls at $cyc cycles, the driver made ${dm:-?} and ${df:-?}"; ok=0
        fi
        if (( USABLE )) && [[ "${du:-}" != "${C[$cyc,$ufn]:-x}" ]]; then
            note "$a: callgrind counted ${C[$cyc,$ufn]:-?} malloc_usable_size calls at $cyc cycles, the driver made ${du:-?}"; ok=0
        fi
    done
    if (( ! ok )); then FAIL=1; unset C I O INTO; continue; fi
    pm="$(awk -v a="${I[$HI,$mfn]}" -v b="${I[$LO,$mfn]}" -v x="${C[$HI,$mfn]}" -v y="${C[$LO,$mfn]}" 'BEGIN { printf "%.2f", (a - b) / (x - y) }')"
    pf="$(awk -v a="${I[$HI,$ffn]}" -v b="${I[$LO,$ffn]}" -v x="${C[$HI,$ffn]}" -v y="${C[$LO,$ffn]}" 'BEGIN { printf "%.2f", (a - b) / (x - y) }')"
    pp="$(awk -v a="${L[0]}" -v b="${L[1]}" -v x="${C[$HI,loop,$mfn]}" -v y="${C[$LO,loop,$mfn]}" 'BEGIN { printf "%.2f", (a - b) / (x - y) }')"
    pu=""
    (( USABLE )) && pu="$(awk -v a="${I[$HI,$ufn]}" -v b="${I[$LO,$ufn]}" -v x="${C[$HI,$ufn]}" -v y="${C[$LO,$ufn]}" 'BEGIN { printf "%.2f", (a - b) / (x - y) }')"
    lib="${so:-$LIBC}"
    syms="$(aliases "$lib" "$mfn"), $(aliases "$lib" "$ffn")$( (( USABLE )) && echo ", $(aliases "$lib" "$ufn")") in $(basename "$want_obj")$symnote"
    if (( JSON )); then
        ROWS+=("$(printf '{"allocator":"%s","ws":%d,"min":%d,"max":%d,"cycles":[%d,%d],"instr_per_malloc":%s,"instr_per_free":%s,%s"instr_per_pair_incl_loop":%s,"malloc_fn":"%s","free_fn":"%s",%s"object":"%s"}' \
            "$a" "$WS" "$SMIN" "$SMAX" "$HI" "$LO" "$pm" "$pf" "$( (( USABLE )) && echo "\"instr_per_usable_size\":$pu,")" "$pp" "$mfn" "$ffn" \
            "$( (( USABLE )) && echo "\"usable_size_fn\":\"$ufn\",")" "$want_obj")")
    elif (( USABLE )); then
        ROWS+=("$(printf '%-10s %13s %11s %18s %22s   %s' "$a" "$pm" "$pf" "$pu" "$pp" "$syms")")
    else
        ROWS+=("$(printf '%-10s %13s %11s %22s   %s' "$a" "$pm" "$pf" "$pp" "$syms")")
    fi
    unset C I O INTO
done

if (( JSON )); then
    for r in "${ROWS[@]}"; do echo "$r"; done
else
    echo "instructions per call: callgrind, ($HI - $LO cycles) differential, ws=$WS, sizes $SMIN-$SMAX, inclusive of callees$( (( USABLE )) && echo "; malloc_usable_size before every free")"
    if (( USABLE )); then
        printf '%-10s %13s %11s %18s %22s   %s\n' allocator instr/malloc instr/free instr/usable_size "instr/pair incl. loop" "functions counted (= aliases at the same address)"
    else
        printf '%-10s %13s %11s %22s   %s\n' allocator instr/malloc instr/free "instr/pair incl. loop" "functions counted (= aliases at the same address)"
    fi
    for r in "${ROWS[@]}"; do echo "$r"; done
fi
exit "$FAIL"
