#!/usr/bin/env bash
# bench/prof_cost.sh -- what the heap profiler costs: the same benchmark with
# HAKMEM_PROF=1 against without, lane by lane, interleaved (docs/PROFILING.md,
# "Cost"). The target is profiling on within 5 % of off on bench_random_mixed
# and the multithreaded lanes.
#
# usage: bench/prof_cost.sh [--quick] [--reps R] [--only REGEX] [--so LIB]
#                           [--baseline LIB] [--sample BYTES] [--no-build]
#
#   --quick          5 lanes (random_mixed ws=256 and 1-32 KiB, mt_remote t=2 at
#                    16-2048 and 16-32768 B, t=8 at 16-2048 B), 3 reps: ~1 min on 2 cores
#                    (default: 12 lanes, 7 reps, ~8-10 min)
#   --reps R         runs per (lane, configuration); the table shows medians
#   --only REGEX     only the lanes whose name matches REGEX (grep -E)
#   --so LIB         the library measured (default build/release/libhakmem.so)
#   --baseline LIB   also run LIB with profiling on (an earlier build, say), in the
#                    same interleaving, and print its on/off beside (off is LIB's own
#                    off: the profiler's cost in each build, the fast paths being the same)
#   --sample BYTES   HAKMEM_PROF_SAMPLE for the "on" runs (default: the library's, 512 KiB)
#   --no-build       do not build the release preset first
#
# Each repetition runs every lane once in every configuration, in an order
# rotated per repetition, so that drift in the machine's load hits them
# alike. Per lane: median M ops/s off and on, on/off (medians), the paired
# ratio (on / off rep by rep: the two ran back to back) as median [lowest-
# highest], and median peak RSS off and on in MiB. The last line lists the
# lanes below 0.95. Exit status 1 when a run failed (it is left out).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
. "$here/stats.sh" # med, paired
root=$(cd "$here/.." && pwd)
usage() { sed -n '7,9p' "$0" | sed 's/^# //' >&2; exit 2; }

quick=0 reps="" only="" so="" baseline="" sample="" build=1
while (($#)); do
  case $1 in
    --quick) quick=1 ;;
    --reps) reps=${2:?--reps needs a count}; shift ;;
    --only) only=${2:?--only needs a pattern}; shift ;;
    --so) so=${2:?--so needs a library}; shift ;;
    --baseline) baseline=${2:?--baseline needs a library}; shift ;;
    --sample) sample=${2:?--sample needs bytes}; shift ;;
    --no-build) build=0 ;;
    -h | --help) sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) usage ;;
  esac
  shift
done
[[ -z $reps ]] && reps=$((quick ? 3 : 7))
[[ $reps =~ ^[1-9][0-9]*$ ]] || { echo "prof_cost.sh: --reps wants a positive count" >&2; exit 2; }

if ((build)); then
  (cd "$root" && cmake --preset release >/dev/null && cmake --build --preset release >/dev/null) ||
    { echo "prof_cost.sh: the release build failed" >&2; exit 2; }
fi
so=${so:-$root/build/release/libhakmem.so}
bdir=$root/build/release/bench
for f in "$so" ${baseline:+"$baseline"} "$bdir/bench_random_mixed" "$bdir/bench_random_mixed_mt_remote" \
  "$bdir/bench_larson" "$bdir/bench_prodcons"; do
  [[ -e $f ]] || { echo "prof_cost.sh: no $f (cmake --build --preset release)" >&2; exit 2; }
done
so=$(realpath "$so")
[[ -n $baseline ]] && baseline=$(realpath "$baseline")

# name|command (run lengths as bench/run.sh --full's, shorter with --quick)
lanes=()
if ((quick)); then
  lanes+=("random_mixed 16-1039 ws=256|bench_random_mixed 4000000 256"
    "random_mixed 1-32768 ws=1024|bench_random_mixed 1000000 1024 1234567 1 32768"
    "mt_remote t=2 16-2048 90%|bench_random_mixed_mt_remote 2 800000 1024 16 2048 90"
    "mt_remote t=2 16-32768 90%|bench_random_mixed_mt_remote 2 400000 400 16 32768 90"
    "mt_remote t=8 16-2048 90%|bench_random_mixed_mt_remote 8 800000 1024 16 2048 90")
else
  lanes+=("random_mixed 16-1039 ws=256|bench_random_mixed 10000000 256"
    "random_mixed 16-1039 ws=8192|bench_random_mixed 10000000 8192"
    "random_mixed 16-1039 ws=65536|bench_random_mixed 10000000 65536"
    "random_mixed 1-32768 ws=1024|bench_random_mixed 3000000 1024 1234567 1 32768"
    "mt_remote t=2 16-2048 50%|bench_random_mixed_mt_remote 2 2000000 1024 16 2048 50"
    "mt_remote t=2 16-2048 90%|bench_random_mixed_mt_remote 2 2000000 1024 16 2048 90"
    "mt_remote t=2 16-32768 90%|bench_random_mixed_mt_remote 2 1000000 400 16 32768 90"
    "mt_remote t=8 16-2048 90%|bench_random_mixed_mt_remote 8 2000000 1024 16 2048 90"
    "mt_remote t=8 16-32768 90%|bench_random_mixed_mt_remote 8 300000 400 16 32768 90"
    "larson t=2 16-128|bench_larson 2 5 1000000 1000 16 128"
    "prodcons 1 pair 16-1024|bench_prodcons 1 4000000 16 1024"
    "prodcons 1 pair 1K-32K|bench_prodcons 1 2000000 1024 32768")
fi
if [[ -n $only ]]; then
  kept=()
  for l in "${lanes[@]}"; do grep -Eq -- "$only" <<<"${l%%|*}" && kept+=("$l"); done
  lanes=("${kept[@]+"${kept[@]}"}")
  ((${#lanes[@]})) || { echo "prof_cost.sh: no lane matches '$only'" >&2; exit 2; }
fi

# Configurations: 0 off, 1 on, 2 the baseline on.
confs=(off on)
[[ -n $baseline ]] && confs+=(baseline)
run_one() { # lane index, configuration index -> appends "ops rss" to its file
  local cmd=${lanes[$1]#*|} lib=$so envs=()
  case ${confs[$2]} in
    on) envs=(HAKMEM_PROF=1) ;;
    baseline) envs=(HAKMEM_PROF=1); lib=$baseline ;;
  esac
  [[ ${confs[$2]} != off && -n $sample ]] && envs+=("HAKMEM_PROF_SAMPLE=$sample")
  local out
  # shellcheck disable=SC2086 # the lane's command line is split on purpose
  if ! out=$(env "${envs[@]+"${envs[@]}"}" LD_PRELOAD="$lib" timeout 300 "$bdir"/$cmd 2>&1); then
    echo "prof_cost.sh: failed: ${confs[$2]} ${lanes[$1]%%|*}: $(tail -n 2 <<<"$out")" >&2
    failed=1
    echo "- -" >>"$tmp/$1.$2"
    return
  fi
  local ops rss
  ops=$(sed -n 's/^Throughput = \([0-9]*\).*/\1/p' <<<"$out")
  rss=$(sed -n 's/^Peak RSS = \([0-9]*\) KiB.*/\1/p' <<<"$out")
  echo "${ops:--} ${rss:--}" >>"$tmp/$1.$2"
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failed=0
for ((r = 0; r < reps; r++)); do
  for ((l = 0; l < ${#lanes[@]}; l++)); do
    for ((k = 0; k < ${#confs[@]}; k++)); do run_one "$l" $(((k + r) % ${#confs[@]})); done
  done
  echo "rep $((r + 1))/$reps done" >&2
done

printf '%-30s %8s %8s %7s %20s %14s' lane "off" "on" on/off "paired [min-max]" "RSS off/on"
[[ -n $baseline ]] && printf ' %14s' "baseline on/off"
printf '\n'
below=()
for ((l = 0; l < ${#lanes[@]}; l++)); do
  name=${lanes[$l]%%|*}
  off=$(med "$tmp/$l.0" 1) on=$(med "$tmp/$l.1" 1)
  roff=$(med "$tmp/$l.0" 2) ron=$(med "$tmp/$l.1" 2)
  read -r pm plo phi < <(paired "$tmp/$l.0" "$tmp/$l.1")
  line=$(awk -v n="$name" -v a="$off" -v b="$on" -v pm="$pm" -v lo="$plo" -v hi="$phi" -v ra="$roff" -v rb="$ron" 'BEGIN {
    f = (a == "-" || b == "-" || a == 0) ? "-" : sprintf("%.3f", b / a)
    p = (pm == "-") ? "-" : sprintf("%.3f [%.2f-%.2f]", pm, lo, hi)
    r = (ra == "-" || rb == "-") ? "-" : sprintf("%.0f/%.0f", ra / 1024, rb / 1024)
    printf "%-30s %8s %8s %7s %20s %14s", n, (a == "-") ? "-" : sprintf("%.2f", a / 1e6), (b == "-") ? "-" : sprintf("%.2f", b / 1e6), f, p, r }')
  if [[ -n $baseline ]]; then
    bon=$(med "$tmp/$l.2" 1)
    line+=$(awk -v a="$off" -v c="$bon" 'BEGIN { printf " %14s", (a == "-" || c == "-" || a == 0) ? "-" : sprintf("%.3f", c / a) }')
  fi
  echo "$line"
  awk -v a="$off" -v b="$on" 'BEGIN { exit !(a != "-" && b != "-" && a > 0 && b / a < 0.95) }' && below+=("$name")
done
echo "($reps interleaved runs each; M ops/s and MiB are medians; library $so;" \
  "$(cut -d' ' -f1-3 /proc/loadavg) load average at the end)"
if ((${#below[@]})); then
  joined=$(IFS=';'; echo "${below[*]}")
  printf 'below 0.95 (profiling on / off): %s\n' "${joined//;/; }"
else
  echo "no lane below 0.95"
fi
exit "$failed"
