#!/usr/bin/env bash
# bench/compare_libs.sh -- two builds of libhakmem.so (say, before and after a
# change, or the default and the hardened library) and mimalloc, interleaved,
# on bench_random_mixed and optionally the mt_remote lanes: medians and ratios.
#
#   bench/compare_libs.sh [--remote] BEFORE.so AFTER.so [reps=7] [cycles=20000000] [ws list="256 8192"]
#   bench/compare_libs.sh --hardened [reps] [cycles] [ws list="256 8192 65536"]
#
#   --remote    also bench_random_mixed_mt_remote, 2 threads, 16-2048 B, remote
#               50% and 90% (cycles/5 iterations per thread, as bench/run.sh)
#   --hardened  BEFORE = build/release/libhakmem.so, AFTER =
#               build/release/libhakmem-hardened.so (hardened mode,
#               docs/ARCHITECTURE.md), and --remote: the cost of hardened mode;
#               its ws list adds 65536, where free's canary check loads a
#               block that is no longer in any cache (the default free only
#               stores into it), the largest cost of the mode
#
# Every library runs the same benchmark binaries (build/release/bench), so
# only the allocator differs. Each repetition runs every (lane, library)
# once, in an order rotated per repetition, so that drift in the machine's
# load hits all of them alike. Prints one line per lane: median M ops/s of
# each and the after/before and after/mimalloc ratios.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
usage="usage: $0 [--remote] BEFORE.so AFTER.so [reps] [cycles] [ws list] | $0 --hardened [reps] [cycles] [ws list]"
remote=0
case "${1:-}" in
  --hardened) shift; remote=1; hard_wss="256 8192 65536"; set -- "$here/../build/release/libhakmem.so" "$here/../build/release/libhakmem-hardened.so" "$@" ;;
  --remote) shift; remote=1 ;;
esac
before=${1:?$usage}
after=${2:?$usage}
reps=${3:-7}
cycles=${4:-20000000}
wss=${5:-${hard_wss:-256 8192}}
for f in "$before" "$after"; do [ -f "$f" ] || { echo "compare_libs.sh: no $f (cmake --build --preset release)" >&2; exit 2; }; done
bdir=${BENCH_DIR:-$here/../build/release/bench}
bench=${BENCH:-$bdir/bench_random_mixed}
mi=$(ls /usr/lib/x86_64-linux-gnu/libmimalloc.so.2 2>/dev/null || true)
libs=("$before" "$after")
[ -n "$mi" ] && libs+=("$mi")
lanes=()
for ws in $wss; do lanes+=("random_mixed ws=$ws|$bench $cycles $ws"); done
if (( remote )); then
  for r in 50 90; do lanes+=("mt_remote t=2 remote=$r%|$bdir/bench_random_mixed_mt_remote 2 $((cycles / 5)) 1024 16 2048 $r"); done
fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
for ((r = 0; r < reps; r++)); do
  for ((l = 0; l < ${#lanes[@]}; l++)); do
    cmd=${lanes[$l]#*|}
    for ((k = 0; k < ${#libs[@]}; k++)); do
      i=$(( (k + r) % ${#libs[@]} ))
      # shellcheck disable=SC2086 # the lane's command line is split on purpose
      LD_PRELOAD=${libs[$i]} $cmd | sed -n 's/^Throughput = \([0-9]*\).*/\1/p' >> "$tmp/$l.$i"
    done
  done
  echo "rep $((r + 1))/$reps done" >&2
done
med() { sort -n "$1" | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
printf '%-26s %10s %10s %10s %13s %15s\n' lane before after mimalloc after/before after/mimalloc
for ((l = 0; l < ${#lanes[@]}; l++)); do
  b=$(med "$tmp/$l.0"); a=$(med "$tmp/$l.1"); m=$( [ -n "$mi" ] && med "$tmp/$l.2" || echo 0)
  awk -v lane="${lanes[$l]%%|*}" -v b="$b" -v a="$a" -v m="$m" 'BEGIN { printf "%-26s %10.1f %10.1f %10.1f %13.3f %15s\n", lane, b / 1e6, a / 1e6, m / 1e6, a / b, (m > 0) ? sprintf("%.3f", a / m) : "-" }'
done
echo "before: $before; after: $after"
echo "($reps interleaved runs each, median M ops/s; $(cut -d' ' -f1-3 /proc/loadavg) load average at the end)"
