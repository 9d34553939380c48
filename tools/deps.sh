#!/usr/bin/env bash
# tools/deps.sh -- install what building, testing and benchmarking HAKMEM
# needs on Debian 12 (idempotent; uses sudo when not root).
set -euo pipefail
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
PKGS=(build-essential cmake ninja-build pkg-config clang libclang-rt-14-dev libcriterion-dev
      libck-dev spin python3 git gnuplot-nox libmimalloc-dev libjemalloc-dev libgoogle-perftools-dev
      google-perftools libtbbmalloc2 valgrind redis-server redis-tools)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "deps.sh: installing ${missing[*]}" >&2
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}"
fi
