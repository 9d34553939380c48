#!/usr/bin/env bash
# stress/soak.sh [SECONDS=600] [PRESET=release]
#
# The long run, by hand: every stress program for SECONDS in total (split
# evenly between them, each program run in rounds of at most 120 s with a
# fresh seed per round), building the preset first if needed.
#   release, debug: the plain programs under LD_PRELOAD=build/PRESET/libhakmem.so
#   tsan, asan:     the hak_ programs, sanitizer reports fatal
# Prints one line per round; a failed round's output is kept in
# build/PRESET/soak-logs/. Exit status 0 only if every round passed.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2

total=${1:-600}
preset=${2:-release}
programs=(prodcons pingpong oversub realloc_aligned fork faults)
case "$preset" in
  release | debug | tsan | asan) ;;
  *) echo "soak.sh: unknown preset $preset (release, debug, tsan, asan)" >&2; exit 2 ;;
esac
if ! [[ "$total" =~ ^[0-9]+$ ]] || [ "$total" -lt "${#programs[@]}" ]; then
  echo "usage: stress/soak.sh [SECONDS >= ${#programs[@]}] [release|debug|tsan|asan]" >&2
  exit 2
fi

build=build/$preset
targets=()
for p in "${programs[@]}"; do targets+=("stress_$p"); done
echo "soak: building the $preset preset" >&2
cmake --preset "$preset" >/dev/null || exit 1
cmake --build --preset "$preset" --target "${targets[@]}" >/dev/null || exit 1

export HAKMEM_INVALID_FREE=abort HAKMEM_DOUBLE_FREE=abort
launcher=()
case "$preset" in
  release | debug) launcher=(env "LD_PRELOAD=$PWD/$build/libhakmem.so") ;;
  tsan) export TSAN_OPTIONS=halt_on_error=1:abort_on_error=1:second_deadlock_stack=1:atexit_sleep_ms=0 ;;
  asan)
    export ASAN_OPTIONS=halt_on_error=1:abort_on_error=1:detect_leaks=0
    export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
    ;;
esac

# Thread counts: the programs' defaults, but the oversubscription test at
# its heaviest (256 threads) outside sanitizers; under ASan and TSan, whose
# runtimes serialise thread start-up and mappings, 128.
declare -A threads=([oversub]=256)
case "$preset" in tsan | asan) threads[oversub]=128 ;; esac

logs=$build/soak-logs
mkdir -p "$logs"
per=$((total / ${#programs[@]}))
failed=0
start=$(date +%s)
for p in "${programs[@]}"; do
  left=$per
  round=0
  while [ "$left" -gt 0 ]; do
    chunk=$((left > 120 ? 120 : left))
    left=$((left - chunk))
    round=$((round + 1))
    seed=$(od -An -N8 -tu8 /dev/urandom | tr -d ' ')
    log=$logs/stress_$p.$round.log
    extra=()
    [ -n "${threads[$p]:-}" ] && extra=("${threads[$p]}")
    "${launcher[@]}" "$build/stress/stress_$p" --seed="$seed" "$chunk" "${extra[@]}" >"$log" 2>&1
    rc=$?
    if [ "$rc" -eq 0 ]; then
      tail -n 1 "$log"
      rm -f "$log"
    else
      failed=$((failed + 1))
      echo "soak: stress_$p round $round FAILED (exit $rc, seed $seed); output in $log:" >&2
      tail -n 40 "$log" >&2
    fi
  done
done
echo "soak: $preset, ${total} s requested, $(($(date +%s) - start)) s taken: $failed failed round(s)"
[ "$failed" -eq 0 ]
