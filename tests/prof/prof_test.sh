#!/bin/sh
# prof_test.sh -- the heap profiler end to end, its profiles read back with
# the real google-pprof (Debian package google-perftools, installed by
# tools/deps.sh; a missing pprof fails the test, it does not skip it).
#
# usage: prof_test.sh pprof PROF_SITES
#        prof_test.sh leak|threads-fork|stash|off PROF_CHECK
#
#   pprof         prof_sites' three sites hold 60/30/10 % of the live bytes;
#                 `google-pprof --text` must list them in that order with
#                 shares within 5 points, and the folded stacks must add up;
#                 again with one site's blocks from the thread cache (tiers)
#   leak          HAKMEM_PROF_LEAKS=1 must name leak_site first and never
#                 freed_site; the at-exit dump (%p expanded) must show it too
#   threads-fork  threads + fork + a dump by signal: every dump readable, the
#                 child's at-exit dump beside (not over) the parent's
#   stash         freed samples' mappings kept per thread and in the shared
#                 spare, bounded, taken by other threads' samples, kept
#                 across a thread's exit, given back by hak_collect, and none
#                 kept with the large cache off (prof_check checks it)
#   off           profiling off behaves as before (prof_check checks it)
set -u
mode=$1
prog=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() {
  printf 'prof_test %s: FAIL: %s\n' "$mode" "$*" >&2
  exit 1
}
command -v google-pprof >/dev/null 2>&1 || fail "google-pprof not found (install google-perftools: tools/deps.sh)"

# pprof_text FILE: the function rows of `google-pprof --text` (flat MB, flat %, name).
pprof_text() {
  google-pprof --text "$prog" "$1" 2>"$dir/pprof.err" | awk '$2 ~ /%$/ && NF >= 6 { print $1, $2, $6 }'
}

# check_sites VARIANT: prof_sites' profile (VARIANT "plain", or "tiers":
# site_thirty's blocks popped from the thread cache, the others' from slab
# lists) read back with google-pprof: the three sites in order, shares within
# 5 points of 60/30/10, and folded stacks that add up to the live bytes.
check_sites() {
  HAKMEM_PROF=1 HAKMEM_PROF_SAMPLE=32k "$prog" "$dir/sites.heap" "$dir/sites.folded" 120 "$1" || fail "prof_sites $1 failed"
  head -n 1 "$dir/sites.heap" | grep -q '^heap profile: [0-9]*: *[0-9]* \[ *[0-9]*: *[0-9]*\] @ heapprofile$' ||
    fail "bad header: $(head -n 1 "$dir/sites.heap")"
  grep -q '^MAPPED_LIBRARIES:' "$dir/sites.heap" || fail "no MAPPED_LIBRARIES section"
  pprof_text "$dir/sites.heap" >"$dir/rows"
  echo "google-pprof --text (flat MB, share, function), $1:"
  cat "$dir/rows"
  # The three sites (gcc may name them site_*.constprop.0; tiers' is site_thirty_cached), in order, with their shares.
  awk '
    { sub(/\..*/, "", $3); sub(/_cached$/, "", $3); if ($3 ~ /^site_/) { n++; name[n] = $3; share[n] = $2 + 0 } }
    END {
      want[1] = "site_sixty"; want[2] = "site_thirty"; want[3] = "site_ten"
      pct[1] = 60; pct[2] = 30; pct[3] = 10
      if (n != 3) { print "expected 3 site rows, got " n; exit 1 }
      for (i = 1; i <= 3; i++) {
        d = share[i] - pct[i]; if (d < 0) d = -d
        if (name[i] != want[i]) { print "row " i " is " name[i] ", expected " want[i]; exit 1 }
        if (d > 5) { print name[i] " has " share[i] "%, expected " pct[i] " +- 5"; exit 1 }
      }
    }' "$dir/rows" || fail "$1: shares or order wrong (pprof stderr: $(cat "$dir/pprof.err"))"
  # Folded stacks: "frame;frame bytes" lines whose bytes add up to the heap profile's live bytes.
  live=$(head -n 1 "$dir/sites.heap" | sed 's/^heap profile: *[0-9]*: *\([0-9]*\).*/\1/')
  awk -v live="$live" '
    !/^[^ ]+(;[^ ;]+)* [0-9]+$/ { print "bad folded line: " $0; bad = 1; exit 1 }
    { sum += $NF }
    END { if (bad) exit 1; d = sum - live; if (d < 0) d = -d; if (d > live / 100) { print "folded " sum " vs live " live; exit 1 } }
  ' "$dir/sites.folded" || fail "$1: folded stacks"
}

case $mode in
  pprof)
    check_sites plain
    check_sites tiers
    ;;
  leak)
    HAKMEM_PROF=1 HAKMEM_PROF_LEAKS=1 HAKMEM_PROF_DUMP_AT_EXIT="$dir/leak.%p.heap" "$prog" leak >"$dir/out" 2>"$dir/err" ||
      fail "prof_check leak failed: $(cat "$dir/err")"
    cat "$dir/err"
    # The first site listed must be leak_site's (frame #0 of the first entry).
    first=$(grep -A1 'in [0-9]* blocks from' "$dir/err" | sed -n 2p)
    case $first in *leak_site*) ;; *) fail "the first leak is not leak_site: $first" ;; esac
    grep -q 'freed_site' "$dir/err" && fail "freed_site reported as a leak"
    set -- "$dir"/leak.*.heap
    [ -f "$1" ] || fail "no at-exit dump leak.<pid>.heap"
    pprof_text "$1" | head -n 1 | grep -q ' leak_site$' || fail "pprof does not put leak_site first: $(pprof_text "$1")"
    ;;
  threads-fork)
    HAKMEM_PROF=1 HAKMEM_PROF_SAMPLE=4k HAKMEM_PROF_SIGNAL=USR2 HAKMEM_PROF_SIGNAL_PATH="$dir/sig.%p.%n.heap" \
      HAKMEM_PROF_DUMP_AT_EXIT="$dir/exit.heap" "$prog" threads-fork "$dir" >"$dir/out" 2>"$dir/err" ||
      fail "prof_check threads-fork failed: $(cat "$dir/err")"
    for f in "$dir/after.heap" "$dir/exit.heap" "$dir"/sig.*.heap "$dir"/child.*.heap "$dir"/exit.heap.*; do
      [ -f "$f" ] || fail "missing dump $f ($(ls "$dir"))"
      head -n 1 "$f" | grep -q '^heap profile: .* @ heapprofile$' || fail "$f: bad header"
      google-pprof --text "$prog" "$f" >/dev/null 2>&1 || fail "google-pprof cannot read $f"
    done
    [ "$(ls "$dir"/exit.heap.* | wc -l)" -eq 1 ] || fail "expected one child at-exit dump"
    child=$(ls "$dir"/exit.heap.*)
    [ "${child##*.}" != "" ] && [ "$(ls "$dir"/child.*.heap)" = "$dir/child.${child##*.}.heap" ] ||
      fail "the child's files do not carry its pid"
    ;;
  stash)
    HAKMEM_PROF=1 HAKMEM_PROF_SAMPLE=4k "$prog" stash >"$dir/out" 2>"$dir/err" ||
      fail "prof_check stash failed: $(cat "$dir/err")"
    HAKMEM_PROF=1 HAKMEM_PROF_SAMPLE=4k HAKMEM_LARGE_CACHE_MB=0 "$prog" no-stash >"$dir/out" 2>"$dir/err" ||
      fail "prof_check no-stash failed: $(cat "$dir/err")"
    ;;
  off)
    HAKMEM_PROF=0 HAKMEM_PROF_DUMP_AT_EXIT="$dir/never.heap" HAKMEM_PROF_LEAKS=1 "$prog" off >"$dir/out" 2>"$dir/err" ||
      fail "prof_check off failed: $(cat "$dir/err")"
    [ ! -e "$dir/never.heap" ] || fail "a dump was written with HAKMEM_PROF=0"
    [ ! -s "$dir/err" ] || fail "stderr not empty: $(cat "$dir/err")"
    ;;
  *) fail "unknown mode" ;;
esac
echo "prof_test $mode: ok"
