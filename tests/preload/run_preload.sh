#!/usr/bin/env bash
# run_preload.sh -- HAKMEM's LD_PRELOAD end-to-end test.
#
# usage: run_preload.sh LIBHAKMEM_SO [MT_ECHO_SERVER MT_ECHO_CLIENT]
#        run_preload.sh --glibc-only [MT_ECHO_SERVER MT_ECHO_CLIENT]
#
# Runs real programs twice, once plainly (glibc malloc) and once with
# LD_PRELOAD=LIBHAKMEM_SO, each run in its own temp dir, and compares their
# stdout byte for byte (plus some output files with cmp):
#   python  python3, 8 threads of dict/list/str churn + json/zlib/sqlite3/hashlib
#   git     init, add ~300 files, commits, branch + merge, gc --aggressive,
#           fsck, log --stat, count-objects -v (size fields dropped), archive
#   gcc     compile a generated C file (-O2, and -O2 -g), link, run; cmp objects
#   sort    ~50 MB of generated lines: sort; sort -n --parallel=2 -S 20M;
#           a keyed sort in C.UTF-8; sha256 of each output
#   server  mt_echo_server under the preload, loaded by mt_echo_client (16
#           connections, plain glibc) over 127.0.0.1; digests compared
# In the preloaded run the key command of each case gets HAKMEM_SHOW_STATS=1,
# and a line starting with "hakmem: stats" must appear on stderr, proving the
# preload was active (stderr is never compared). sort closes its stderr before
# exiting, so for it LD_DEBUG=bindings must show sort's malloc bound to the
# preload library instead.
#
# MT_ECHO_SERVER / MT_ECHO_CLIENT default to building tests/preload/*.c with
# ${CC:-cc} into the temp dir. --glibc-only runs both sides without the
# preload (to check the test itself); the stats check is skipped then.
#
# Output: one line per case, "PASS <name>" or "FAIL <name>: <reason>" (details
# go to stderr), then "N passed, N failed". Exit status 1 if any case failed.
#
# Environment: HAKMEM_PRELOAD_CASES="python git ..." runs a subset;
# HAKMEM_PRELOAD_KEEP=1 keeps the temp dir; HAKMEM_PRELOAD_CASE_TIMEOUT
# (seconds, default 150) bounds each run of each case.
set -euo pipefail

die() { echo "run_preload.sh: $*" >&2; exit 2; }

[[ $# -ge 1 && $# -le 3 ]] || die "usage: $0 LIBHAKMEM_SO|--glibc-only [MT_ECHO_SERVER MT_ECHO_CLIENT]"
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
GLIBC_ONLY=0
SO=
if [[ $1 == --glibc-only ]]; then
  GLIBC_ONLY=1
else
  [[ -f $1 ]] || die "no such preload library: $1"
  SO=$(realpath "$1")
fi
MT_SERVER=${2:-}
MT_CLIENT=${3:-}
CASES=${HAKMEM_PRELOAD_CASES:-python git gcc sort server}
CASE_TIMEOUT=${HAKMEM_PRELOAD_CASE_TIMEOUT:-150}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/hakmem-preload.XXXXXX")
cleanup() {
  if [[ ${HAKMEM_PRELOAD_KEEP:-0} == 1 ]]; then
    echo "run_preload.sh: kept $WORK" >&2
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT

# ---------------------------------------------------------------- cases ----
# Each case is a function run (via bash -c) with the case's run dir as cwd,
# under "set -Eeuo pipefail", with LD_PRELOAD exported in the preloaded run,
# so that every program it starts runs under HAKMEM. Its stdout is compared.

case_python() {
  export PYTHONHASHSEED=0 PYTHONDONTWRITEBYTECODE=1 LC_ALL=C.UTF-8
  HAKMEM_SHOW_STATS=1 "$PRELOAD_PY" "$PRELOAD_SCRIPT_DIR/py_threads.py"
}

# gen_tree DIR SEED COUNT FIRST: COUNT files DIR/dNN/fileNNNN.txt (numbers
# from FIRST) with deterministic contents of varied length.
gen_tree() {
  awk -v dir="$1" -v seed="$2" -v count="$3" -v first="$4" 'BEGIN {
    x = seed
    for (f = first; f < first + count; f++) {
      d = sprintf("%s/d%02d", dir, f % 12)
      system("mkdir -p " d)
      path = sprintf("%s/file%04d.txt", d, f)
      x = (x * 16807) % 2147483647; n = 5 + x % 120
      for (i = 0; i < n; i++) {
        x = (x * 16807) % 2147483647
        printf "%04d:%03d %d line of file %d, value %x %s\n", f, i, x, f, x % 65521,
               (x % 5 == 0) ? "the quick brown fox jumps over the lazy dog" : "" > path
      }
      close(path)
    }
  }'
}

case_git() {
  export HOME=$PWD GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null LC_ALL=C TZ=UTC
  export GIT_AUTHOR_NAME="Hak Mem" GIT_AUTHOR_EMAIL=hakmem@example.invalid
  export GIT_COMMITTER_NAME="Hak Mem" GIT_COMMITTER_EMAIL=hakmem@example.invalid
  export GIT_AUTHOR_DATE="2024-01-02T03:04:05+0000" GIT_COMMITTER_DATE="2024-01-02T03:04:05+0000"
  git init -q -b main repo
  cd repo
  git config gc.auto 0
  git config gc.autoDetach false
  gen_tree . 11 320 0
  git add -A
  git commit -q -m "initial: 320 generated files"

  export GIT_AUTHOR_DATE="2024-01-03T10:00:00+0000" GIT_COMMITTER_DATE="2024-01-03T10:00:00+0000"
  git rm -q d03/*.txt
  for f in d0*/file0*[05].txt; do echo "appended to $f" >> "$f"; done
  gen_tree . 23 40 400
  git mv d01/file0001.txt d01/renamed0001.txt
  git add -A
  git commit -q -m "second: edit, delete, add, rename"

  export GIT_AUTHOR_DATE="2024-01-04T10:00:00+0000" GIT_COMMITTER_DATE="2024-01-04T10:00:00+0000"
  git checkout -q -b topic
  gen_tree topic 37 60 500
  sed -i 's/quick/slow/' d05/*.txt
  git add -A
  git commit -q -m "topic: more files, sed edits"
  git checkout -q main
  export GIT_AUTHOR_DATE="2024-01-05T10:00:00+0000" GIT_COMMITTER_DATE="2024-01-05T10:00:00+0000"
  sed -i 's/lazy/sleepy/' d07/*.txt
  git commit -q -a -m "main: sed edits"
  git merge -q --no-ff -m "merge topic" topic

  HAKMEM_SHOW_STATS=1 git gc -q --aggressive
  git fsck --full --strict --no-progress
  echo "fsck ok"
  git verify-pack .git/objects/pack/*.idx
  echo "verify-pack ok"
  git count-objects -v | grep -v '^size'
  git rev-parse HEAD 'HEAD^{tree}' topic
  git log --stat --format='commit %H%nparents %P%nauthor %an <%ae> %ad%ncommitter %cn %cd%n%n    %s%n' --date=iso-strict
  git cat-file --batch-all-objects --batch-check | sha256sum
  git archive --format=tar HEAD | sha256sum
  git log -p --all | sha256sum
  git ls-files | wc -l
}

# gen_c N: a C program with N functions (loops, switches, malloc/snprintf).
gen_c() {
  awk -v n="$1" 'BEGIN {
    x = 777
    print "#include <stdio.h>"
    print "#include <stdlib.h>"
    print "#include <string.h>"
    print "struct rec { unsigned k; char name[24]; double w; };"
    for (f = 0; f < n; f++) {
      x = (x * 16807) % 2147483647; c1 = x % 65536
      x = (x * 16807) % 2147483647; c2 = x % 97 + 1
      x = (x * 16807) % 2147483647; len = x % 24 + 8
      printf "static unsigned f%d(unsigned x) {\n", f
      printf "  unsigned a[%d]; unsigned r = x ^ %uu; int i;\n", len, c1
      printf "  for (i = 0; i < %d; i++) a[i] = r * (unsigned)(i + %d) + (r >> (i %% 7));\n", len, c2
      printf "  switch (r %% 6) {\n"
      for (k = 0; k < 5; k++) {
        x = (x * 16807) % 2147483647
        printf "  case %d: r += a[%d] * %uu; r ^= r >> %d; break;\n", k, x % len, x % 1000 + 1, x % 13 + 1
      }
      printf "  default: r -= a[(r >> 3) %% %d]; break;\n  }\n", len
      printf "  for (i = 0; i < %d; i++) r = r * 33u + a[i];\n", len
      if (f > 0) printf "  if ((r & 3) == 0) r += f%d(r >> 1);\n", f - 1
      if (f % 5 == 0) {
        printf "  { struct rec *v = malloc(sizeof *v * %d); double s = 0;\n", len
        printf "    if (!v) abort();\n"
        printf "    for (i = 0; i < %d; i++) { v[i].k = a[i]; snprintf(v[i].name, sizeof v[i].name, \"n%%u\", a[i] %% 1000u); v[i].w = (double)(a[i] %% 4096u) / 8.0; }\n", len
        printf "    for (i = 0; i < %d; i++) { s += v[i].w; r += (unsigned)strlen(v[i].name); }\n", len
        printf "    r ^= (unsigned)s; free(v); }\n"
      }
      printf "  return r;\n}\n"
    }
    print "int main(void) {"
    print "  unsigned long long total = 0; unsigned i;"
    print "  unsigned (*const tab[])(unsigned) = {"
    for (f = 0; f < n; f++) printf "    f%d,\n", f
    print "  };"
    print "  for (unsigned j = 0; j < sizeof tab / sizeof tab[0]; j++) {"
    print "    unsigned h = 0;"
    print "    for (i = 0; i < 500; i++) h = h * 31u + tab[j](i * 2654435761u);"
    print "    total += h;"
    print "    if (j % 25 == 0) printf(\"f%u %08x\\n\", j, h);"
    print "  }"
    print "  printf(\"total %llu\\n\", total);"
    print "  return 0;"
    print "}"
  }'
}

case_gcc() {
  export LC_ALL=C
  gen_c 300 > gen.c
  HAKMEM_SHOW_STATS=1 gcc -std=gnu11 -O2 -Wall -c gen.c -o gen.o
  gcc -std=gnu11 -O2 -g -fdebug-prefix-map="$PWD"=. -c gen.c -o gen_g.o
  gcc -o gen gen.o
  gcc -o gen_g gen_g.o
  ./gen > run.out
  ./gen_g > run_g.out
  cmp run.out run_g.out
  cat run.out
  sha256sum gen.c gen.o gen_g.o gen gen_g
}

case_sort() {
  local in=$PRELOAD_SORT_INPUT
  mkdir -p tmp
  export LC_ALL=C
  # sort closes stderr before exit (gnulib close_stdout), so it can never
  # print the stats line; ld.so's binding log shows where malloc went.
  LD_DEBUG=bindings LD_DEBUG_OUTPUT="$PWD/ld-debug" sort "$in" > s1
  sort -c s1
  sha256sum < s1
  rm s1
  sort -n --parallel=2 -S 20M -T "$PWD/tmp" "$in" > s2
  sort -c -n s2
  sha256sum < s2
  wc -l < s2
  rm s2
  LC_ALL=C.UTF-8 sort -t ' ' -k2,2 -k3,3gr --parallel=2 -S 8M -T "$PWD/tmp" "$in" > s3
  LC_ALL=C.UTF-8 sort -c -t ' ' -k2,2 -k3,3gr s3
  sha256sum < s3
  rm s3
  [[ -z $(ls tmp) ]]
}

case_server() {
  rm -f port
  timeout -k 5 90 env HAKMEM_SHOW_STATS=1 "$PRELOAD_MT_SERVER" "$PWD/port" 80 > server.out &
  local spid=$! i port crc=0 src=0
  for ((i = 0; i < 400; i++)); do
    [[ -s port ]] && break
    kill -0 "$spid" 2> /dev/null || break
    sleep 0.05
  done
  if [[ ! -s port ]]; then
    echo "run_preload: server did not write its port file" >&2
    kill "$spid" 2> /dev/null || true
    wait "$spid" || true
    return 1
  fi
  port=$(< port)
  # The client always runs on plain glibc.
  env -u LD_PRELOAD timeout -k 5 60 "$PRELOAD_MT_CLIENT" "$port" 16 400 > client.out || crc=$?
  if ((crc != 0)); then
    sleep 2
    kill "$spid" 2> /dev/null || true
  fi
  wait "$spid" || src=$?
  cat client.out server.out
  if ((crc != 0 || src != 0)); then
    local sig=
    ((src > 128 && src < 160)) && sig=" (SIG$(kill -l $((src - 128))))"
    echo "run_preload: client exit status $crc, server exit status $src$sig" >&2
    return 1
  fi
}

# -------------------------------------------------------------- driver ----
describe_rc() {
  local rc=$1
  if ((rc == 124)); then
    echo "timed out after ${CASE_TIMEOUT}s"
  elif ((rc > 128 && rc < 160)); then
    echo "killed by SIG$(kill -l $((rc - 128)) 2> /dev/null || echo $((rc - 128))) (exit status $rc)"
  else
    echo "exit status $rc"
  fi
}

# run_variant MODE DIR FUNC: run FUNC in DIR; stdout/stderr to DIR/../MODE.*
run_variant() {
  local mode=$1 dir=$2 fn=$3
  local -a envs=()
  if [[ $mode == hakmem && $GLIBC_ONLY == 0 ]]; then envs+=("LD_PRELOAD=$SO"); fi
  mkdir -p "$dir"
  local rc=0
  (cd "$dir" && exec timeout -k 10 "$CASE_TIMEOUT" env ${envs[@]+"${envs[@]}"} bash -c \
    "set -Eeuo pipefail; trap 'echo \"run_preload: command failed (status \$?): \$BASH_COMMAND\" >&2' ERR; $fn") \
    > "$dir.stdout" 2> "$dir.stderr" < /dev/null || rc=$?
  echo "$rc"
}

# first_note FILE: "; <text>" for the first "run_preload: <text>" line in FILE.
first_note() {
  local l
  l=$(grep -m1 '^run_preload: ' "$1" 2> /dev/null) || return 0
  echo "; ${l#run_preload: }"
}

show_tail() { # FILE TITLE
  echo "---- $2 (last 30 lines) ----" >&2
  tail -n 30 "$1" >&2 || true
}

PASSED=0
FAILED=0
pass() { echo "PASS $1"; PASSED=$((PASSED + 1)); }
fail() { echo "FAIL $1: $2"; FAILED=$((FAILED + 1)); }

# run_case NAME FUNC EVIDENCE [FILE...]: FILEs (relative to the run dir) must
# also be identical between the two runs. EVIDENCE says how the preloaded run
# proves the preload was active: "stats" (a "hakmem: stats" line on stderr) or
# "bind:PROG" (ld-debug.* in the run dir, written with LD_DEBUG=bindings, shows
# PROG's malloc bound to the preload library).
run_case() {
  local name=$1 fn=$2 evidence=$3
  shift 3
  local base=$WORK/$name g h rc_g rc_h f
  g=$base/glibc
  h=$base/hakmem
  rc_g=$(run_variant glibc "$g" "$fn")
  rc_h=$(run_variant hakmem "$h" "$fn")
  echo "==== $name: glibc $(describe_rc "$rc_g"), hakmem $(describe_rc "$rc_h")" >&2
  if ((rc_g != 0)); then
    show_tail "$g.stderr" "$name glibc stderr"
    fail "$name" "reference run without the preload failed: $(describe_rc "$rc_g")$(first_note "$g.stderr")"
    return
  fi
  if grep -q 'cannot be preloaded' "$h.stderr"; then
    show_tail "$h.stderr" "$name hakmem stderr"
    fail "$name" "ld.so could not preload $SO"
    return
  fi
  if ((rc_h != 0)); then
    show_tail "$h.stderr" "$name hakmem stderr"
    fail "$name" "preloaded run failed: $(describe_rc "$rc_h")$(first_note "$h.stderr")"
    return
  fi
  if ! cmp -s "$g.stdout" "$h.stdout"; then
    echo "---- $name: diff glibc hakmem (stdout) ----" >&2
    diff -u "$g.stdout" "$h.stdout" | head -n 40 >&2 || true
    show_tail "$h.stderr" "$name hakmem stderr"
    fail "$name" "stdout differs from glibc's"
    return
  fi
  for f in "$@"; do
    if ! cmp "$g/$f" "$h/$f" >&2; then
      fail "$name" "$f differs from glibc's"
      return
    fi
  done
  if ((GLIBC_ONLY == 0)); then
    case $evidence in
      stats)
        if ! grep -q '^hakmem: stats' "$h.stderr"; then
          show_tail "$h.stderr" "$name hakmem stderr"
          fail "$name" "no 'hakmem: stats' line on stderr with HAKMEM_SHOW_STATS=1 (preload not active?)"
          return
        fi
        ;;
      bind:*)
        if ! cat "$h"/ld-debug.* 2> /dev/null |
          grep -qF "binding file ${evidence#bind:} [0] to $SO [0]: normal symbol \`malloc'"; then
          fail "$name" "LD_DEBUG=bindings does not show ${evidence#bind:}'s malloc bound to $SO (preload not active?)"
          return
        fi
        ;;
    esac
  fi
  pass "$name"
}

# Checks that a prerequisite exists; fails the case otherwise (never skips).
need() { # NAME TOOL...
  local name=$1 t
  shift
  for t in "$@"; do
    if ! command -v "$t" > /dev/null 2>&1; then
      fail "$name" "required program '$t' not found"
      return 1
    fi
  done
}

export -f case_python case_git case_gcc case_sort case_server gen_tree gen_c
export PRELOAD_SCRIPT_DIR=$SCRIPT_DIR

for c in $CASES; do
  case $c in
    python)
      need python python3 || continue
      # Resolve the real interpreter (python3 may be a pyenv shim script).
      PRELOAD_PY=$(python3 -c 'import sys; print(sys.executable)')
      export PRELOAD_PY
      run_case python case_python stats
      ;;
    git)
      need git git awk sed sha256sum || continue
      run_case git case_git stats
      ;;
    gcc)
      need gcc gcc awk cmp sha256sum || continue
      run_case gcc case_gcc stats gen.o gen_g.o gen gen_g
      ;;
    sort)
      need sort sort awk sha256sum || continue
      # ~50 MB of deterministic lines "<signed int> <word> <decimal>", made
      # once (without the preload) and read by both runs.
      PRELOAD_SORT_INPUT=$WORK/sort-input.txt
      export PRELOAD_SORT_INPUT
      awk 'BEGIN {
        x = 12345; a = "abcdefghijklmnopqrstuvwxyz"; n = 0
        while (n < 50000000) {
          x = (x * 16807) % 2147483647; p = x
          x = (x * 16807) % 2147483647; q = x
          x = (x * 16807) % 2147483647; r = x
          x = (x * 16807) % 2147483647; s = x
          w = substr(a, p % 26 + 1, 1 + q % 12) substr(a, r % 20 + 1, 1 + s % 6)
          line = sprintf("%d %s %d.%03d", (p % 1000) * 1000003 + q % 1000003 - 500000000, w, r % 100000, s % 1000)
          print line
          n += length(line) + 1
        }
      }' > "$PRELOAD_SORT_INPUT"
      run_case sort case_sort bind:sort
      rm -f "$PRELOAD_SORT_INPUT"
      ;;
    server)
      need server timeout || continue
      if [[ -z $MT_SERVER || -z $MT_CLIENT ]]; then
        need server "${CC:-cc}" || continue
        mkdir -p "$WORK/bin"
        MT_SERVER=$WORK/bin/mt_echo_server
        MT_CLIENT=$WORK/bin/mt_echo_client
        if ! "${CC:-cc}" -std=gnu11 -O2 -pthread -o "$MT_SERVER" "$SCRIPT_DIR/mt_echo_server.c" >&2 ||
          ! "${CC:-cc}" -std=gnu11 -O2 -pthread -o "$MT_CLIENT" "$SCRIPT_DIR/mt_echo_client.c" >&2; then
          fail server "could not build mt_echo_server/mt_echo_client"
          continue
        fi
      fi
      PRELOAD_MT_SERVER=$(realpath "$MT_SERVER")
      PRELOAD_MT_CLIENT=$(realpath "$MT_CLIENT")
      export PRELOAD_MT_SERVER PRELOAD_MT_CLIENT
      run_case server case_server stats
      ;;
    *) die "unknown case '$c' in HAKMEM_PRELOAD_CASES" ;;
  esac
done

echo "$PASSED passed, $FAILED failed"
((FAILED == 0))
