#!/usr/bin/env bash
# bench/ceiling.sh -- how much of a single-threaded lane's time is the
# allocator's: each lane under HAKMEM, the peers and libceiling.so (bench/
# ceiling.c: a per-class LIFO with no checks and no counters, the least work
# an allocator can do), interleaved.
#
# usage: bench/ceiling.sh [--reps R] [--only REGEX] [--allocators LIST] [--hakmem-so LIB] [--no-build]
#
#   --reps R          runs per (lane, allocator) (default 5); the table shows medians
#   --only REGEX      only the lanes whose name matches REGEX (grep -E)
#   --allocators L    peers, comma-separated (default tcmalloc,mimalloc,jemalloc,glibc)
#   --hakmem-so LIB   the HAKMEM library measured (default build/release/libhakmem.so)
#   --no-build        do not build the release preset's library and benchmarks first
#
# Lanes: bench/run.sh's single-threaded ones (random_mixed at ws 256, 1024,
# 8192 and 65536; the tiny, small and medium size lanes), with run.sh
# --full's run lengths. Each repetition runs every lane once under every
# allocator, in an order rotated per repetition.
#
# Per lane, medians in M ops/s, then: best peer (the fastest of the peers),
# HAKMEM / best peer, ceiling / best peer (the most that any allocator can
# gain over the best peer on this lane: the benchmark's own loop, its
# memory traffic and the lookup-pop-push that every allocator does are left
# when the allocator does nothing else), and the share of HAKMEM's time that
# is above the ceiling's (1 - HAKMEM / ceiling: the time its checks,
# counters and layout cost). Exit status 1 when a run failed.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
usage() { sed -n '7p' "$0" | sed 's/^# //' >&2; exit 2; }

reps=5 only="" peers="tcmalloc,mimalloc,jemalloc,glibc" hso="" build=1
while (($#)); do
  case $1 in
    --reps) reps=${2:?--reps needs a count}; shift ;;
    --only) only=${2:?--only needs a pattern}; shift ;;
    --allocators) peers=${2:?--allocators needs a list}; shift ;;
    --hakmem-so) hso=${2:?--hakmem-so needs a library}; shift ;;
    --no-build) build=0 ;;
    -h | --help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) usage ;;
  esac
  shift
done
[[ $reps =~ ^[1-9][0-9]*$ ]] || { echo "ceiling.sh: --reps wants a positive count" >&2; exit 2; }

if ((build)); then
  (cd "$root" && cmake --preset release >/dev/null && cmake --build --preset release --target bench >/dev/null) ||
    { echo "ceiling.sh: the release build failed" >&2; exit 2; }
fi
bdir=$root/build/release/bench
hso=${hso:-$root/build/release/libhakmem.so}
for f in "$hso" "$bdir/libceiling.so" "$bdir/bench_random_mixed"; do
  [[ -e $f ]] || { echo "ceiling.sh: no $f (cmake --build --preset release --target bench)" >&2; exit 2; }
done

. "$here/peers.sh"
. "$here/stats.sh" # med
names=(hakmem ceiling) libs=("$hso" "$bdir/libceiling.so") npeers=0
IFS=, read -ra want <<<"$peers"
for a in "${want[@]}"; do
  if [[ $a == glibc ]]; then lib=""
  elif ! lib=$(peer_default "$a"); then echo "ceiling.sh: $a is not installed, left out" >&2; continue
  fi
  names+=("$a") libs+=("$lib") npeers=$((npeers + 1))
done
((npeers)) || { echo "ceiling.sh: no peer to compare with" >&2; exit 2; }

# name|arguments of bench_random_mixed (bench/run.sh --full's lanes)
lanes=(
  "ws=256|20000000 256 1234567"
  "ws=1024|20000000 1024 1234567"
  "ws=8192|20000000 8192 1234567"
  "ws=65536|20000000 65536 1234567"
  "tiny 16-64 ws=1024|10000000 1024 1234567 16 64"
  "small 64-1024 ws=1024|10000000 1024 1234567 64 1024"
  "medium 1K-32K ws=1024|10000000 1024 1234567 1024 32768"
)
if [[ -n $only ]]; then
  kept=()
  for l in "${lanes[@]}"; do grep -qE -- "$only" <<<"${l%%|*}" && kept+=("$l"); done
  lanes=(${kept[@]+"${kept[@]}"})
fi
((${#lanes[@]})) || { echo "ceiling.sh: no lane matches '$only'" >&2; exit 2; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failed=0 na=${#names[@]}
for ((r = 0; r < reps; r++)); do
  for ((li = 0; li < ${#lanes[@]}; li++)); do
    read -ra args <<<"${lanes[li]#*|}"
    for ((k = 0; k < na; k++)); do
      i=$(((k + r + li) % na))
      if out=$(LD_PRELOAD=${libs[i]} "$bdir/bench_random_mixed" "${args[@]}" 2>&1) &&
        t=$(grep -o 'Throughput = [0-9]*' <<<"$out" | awk '{print $3}') && [[ -n $t ]]; then
        echo "$t" >>"$tmp/$li.${names[i]}"
      else
        echo "ceiling.sh: ${names[i]} failed on ${lanes[li]%%|*}" >&2
        failed=1
      fi
    done
  done
done

median() { # M ops/s, "nan" when every run failed
  local m
  m=$(if [[ -s $1 ]]; then med "$1" 1; else echo -; fi)
  if [[ $m == - ]]; then echo nan; else awk -v m="$m" 'BEGIN {printf "%.2f", m / 1e6}'; fi
}
printf '%-22s' lane
for n in "${names[@]}"; do printf '%10s' "$n"; done
printf '  %-9s %9s %9s %9s\n' best "hk/best" "ceil/best" "hk>ceil"
for ((li = 0; li < ${#lanes[@]}; li++)); do
  printf '%-22s' "${lanes[li]%%|*}"
  declare -A med=()
  for n in "${names[@]}"; do med[$n]=$(median "$tmp/$li.$n"); printf '%10s' "${med[$n]}"; done
  best="" bv=0
  for n in "${names[@]:2}"; do
    [[ ${med[$n]} != nan ]] && awk -v a="${med[$n]}" -v b="$bv" 'BEGIN {exit !(a > b)}' && { best=$n; bv=${med[$n]}; }
  done
  awk -v h="${med[hakmem]}" -v c="${med[ceiling]}" -v b="$bv" -v n="${best:-none}" \
    'BEGIN {if (b == 0 || h == "nan" || c == "nan") {printf "  %-9s\n", n; exit}
            printf "  %-9s %9.3f %9.3f %8.1f%%\n", n, h / b, c / b, 100 * (1 - h / c)}'
  unset med
done
exit "$failed"
