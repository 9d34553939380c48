#!/usr/bin/env bash
# run_fuzz.sh FUZZ_HAK SECONDS WORKDIR SEEDS [libFuzzer options...]
# Fuzz for SECONDS from the seeds in SEEDS (read only), growing a scratch
# corpus in WORKDIR/corpus (emptied first); crashes land in WORKDIR
# (crash-*, timeout-*, oom-*). Exit status: libFuzzer's (0: nothing found).
set -euo pipefail
[ $# -ge 4 ] || { echo "usage: $0 FUZZ_HAK SECONDS WORKDIR SEEDS [options...]" >&2; exit 2; }
bin=$1 secs=$2 work=$3 seeds=$4
shift 4
rm -rf "$work"
mkdir -p "$work/corpus"
cd "$work"
exec "$bin" -max_total_time="$secs" -rss_limit_mb=4096 -timeout=60 -print_final_stats=1 \
  -artifact_prefix="$work/" "$@" "$work/corpus" "$seeds"
