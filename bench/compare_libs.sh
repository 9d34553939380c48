#!/usr/bin/env bash
# bench/compare_libs.sh -- two builds of libhakmem.so (say, before and after a
# change) and mimalloc, interleaved, on bench_random_mixed: medians and ratios.
#
#   bench/compare_libs.sh BEFORE.so AFTER.so [reps=7] [cycles=20000000] [ws list="256 8192"]
#
# Both libraries run the same benchmark binary (build/release/bench), so only
# the allocator differs. Each repetition runs every (ws, library) once, in an
# order rotated per repetition, so that drift in the machine's load hits all
# of them alike. Prints one line per ws: median M ops/s of each and the
# after/before and after/mimalloc ratios.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
before=${1:?usage: $0 BEFORE.so AFTER.so [reps] [cycles] [ws list]}
after=${2:?usage: $0 BEFORE.so AFTER.so [reps] [cycles] [ws list]}
reps=${3:-7}
cycles=${4:-20000000}
wss=${5:-256 8192}
bench=${BENCH:-$here/../build/release/bench/bench_random_mixed}
mi=$(ls /usr/lib/x86_64-linux-gnu/libmimalloc.so.2 2>/dev/null || true)
libs=("$before" "$after")
[ -n "$mi" ] && libs+=("$mi")
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
for ((r = 0; r < reps; r++)); do
  for ws in $wss; do
    for ((k = 0; k < ${#libs[@]}; k++)); do
      i=$(( (k + r) % ${#libs[@]} ))
      LD_PRELOAD=${libs[$i]} "$bench" "$cycles" "$ws" | sed -n 's/^Throughput = \([0-9]*\).*/\1/p' >> "$tmp/$ws.$i"
    done
  done
  echo "rep $((r + 1))/$reps done" >&2
done
med() { sort -n "$1" | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
printf '%-6s %14s %14s %14s %13s %15s\n' ws before after mimalloc after/before after/mimalloc
for ws in $wss; do
  b=$(med "$tmp/$ws.0"); a=$(med "$tmp/$ws.1"); m=$( [ -n "$mi" ] && med "$tmp/$ws.2" || echo 0)
  awk -v ws="$ws" -v b="$b" -v a="$a" -v m="$m" 'BEGIN { printf "%-6s %14.1f %14.1f %14.1f %13.3f %15s\n", ws, b / 1e6, a / 1e6, m / 1e6, a / b, (m > 0) ? sprintf("%.3f", a / m) : "-" }'
done
echo "($reps interleaved runs each, median M ops/s; $(cut -d' ' -f1-3 /proc/loadavg) load average at the end)"
