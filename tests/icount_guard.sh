#!/usr/bin/env bash
# tests/icount_guard.sh -- the instruction-count regression guard (ctest
# icount_guard, release preset only): instructions per malloc, per free and
# per malloc_usable_size of HAKMEM's fast paths, counted by callgrind through
# bench/icount.sh --usable, must stay within the budgets
# HAKMEM_ICOUNT_MALLOC_MAX, HAKMEM_ICOUNT_FREE_MAX and HAKMEM_ICOUNT_USABLE_MAX
# (CMake cache variables). Instruction counts are deterministic: this is not a
# timing test.
#
# usage: icount_guard.sh ICOUNT_SH DRIVER LIBHAKMEM MALLOC_MAX FREE_MAX USABLE_MAX
#   DRIVER: bench/bench_icount.c linked to libhakmem.so (tests/CMakeLists.txt)
# exit status: 0 within budget, 1 over budget or the count failed, 77 (ctest
# SKIP_RETURN_CODE) when valgrind is not installed.
set -euo pipefail
[[ $# -eq 6 ]] || { echo "usage: $0 ICOUNT_SH DRIVER LIBHAKMEM MALLOC_MAX FREE_MAX USABLE_MAX" >&2; exit 2; }
ICOUNT="$1" DRIVER="$2" LIB="$3" MMAX="$4" FMAX="$5" UMAX="$6"
if ! command -v valgrind >/dev/null 2>&1; then
    echo "icount_guard: SKIPPED: valgrind is not installed (Debian: apt install valgrind, or tools/deps.sh)"
    exit 77
fi
# The working set and sizes of bench/icount.sh's default (bench_random_mixed's
# ws=256 lane), with malloc_usable_size before every free (its call does not
# change what malloc and free count).
json="$("$ICOUNT" --hakmem-only --usable --json --no-build --driver "$DRIVER" --hakmem-so "$LIB")" \
    || { echo "icount_guard: bench/icount.sh failed"; exit 1; }
echo "$json"
m="$(sed -n 's/.*"instr_per_malloc":\([0-9.]*\).*/\1/p' <<<"$json")"
f="$(sed -n 's/.*"instr_per_free":\([0-9.]*\).*/\1/p' <<<"$json")"
u="$(sed -n 's/.*"instr_per_usable_size":\([0-9.]*\).*/\1/p' <<<"$json")"
[[ -n "$m" && -n "$f" && -n "$u" ]] \
    || { echo "icount_guard: no instr_per_malloc / instr_per_free / instr_per_usable_size in icount.sh's output"; exit 1; }
status=0
if awk -v v="$m" -v b="$MMAX" 'BEGIN { exit !(v > b) }'; then
    echo "icount_guard: FAIL: $m instructions per malloc, budget HAKMEM_ICOUNT_MALLOC_MAX=$MMAX"; status=1
else
    echo "icount_guard: malloc $m instructions (budget $MMAX)"
fi
if awk -v v="$f" -v b="$FMAX" 'BEGIN { exit !(v > b) }'; then
    echo "icount_guard: FAIL: $f instructions per free, budget HAKMEM_ICOUNT_FREE_MAX=$FMAX"; status=1
else
    echo "icount_guard: free $f instructions (budget $FMAX)"
fi
if awk -v v="$u" -v b="$UMAX" 'BEGIN { exit !(v > b) }'; then
    echo "icount_guard: FAIL: $u instructions per malloc_usable_size, budget HAKMEM_ICOUNT_USABLE_MAX=$UMAX"; status=1
else
    echo "icount_guard: malloc_usable_size $u instructions (budget $UMAX)"
fi
exit "$status"
