#!/usr/bin/env bash
# tools/test.sh -- the README's second command and what CI runs: install
# dependencies, check the Spin models (formal/check.sh), then build and test
# each preset named (default: debug, release, tsan, asan). Output ends with
# ctest's own summary of the last preset.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/deps.sh
presets=("$@")
[ "${#presets[@]}" -gt 0 ] || presets=(debug release tsan asan)
status=0
echo "== formal models (formal/check.sh) ==" >&2
formal/check.sh || status=1
for p in "${presets[@]}"; do
  echo "== preset $p ==" >&2
  cmake --preset "$p" >/dev/null
  cmake --build --preset "$p"
  ctest --preset "$p" || status=1
done
exit $status
