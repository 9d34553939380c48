#!/usr/bin/env bash
# formal/check.sh -- verify every Spin model in formal/ and reject every
# mutant in formal/mutants/. What CI runs; see formal/README.md.
#
#   formal/check.sh           run everything; exit 1 on any failure
#   formal/check.sh --keep    keep the build directory (pan, logs, trails)
#
# Each check: spin -a, compile pan.c, run pan, in a temporary directory (no
# pan* files land in the repository). A model passes a check when pan
# reports "errors: 0" after a complete search. A mutant names the checks
# that must reject it ("@reject CHECK TEXT" lines in its header): each must
# end with errors > 0, a trail file, and TEXT in pan's first error line.
# A mutant that verifies fails.
set -u

here=$(cd "$(dirname "$0")" && pwd)
keep=0
[ "${1:-}" = "--keep" ] && keep=1
CC=${CC:-gcc}

if ! command -v spin >/dev/null 2>&1; then
  echo "FAIL spin not found (Debian: apt-get install spin)"
  echo "0 passed, 1 failed"
  exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/hakmem-formal.XXXXXX")
if [ "$keep" = 1 ]; then
  echo "build directory: $tmp"
else
  trap 'rm -rf "$tmp"' EXIT
fi
mkdir -p "$tmp/src" "$tmp/run"
cp "$here"/*.pml "$tmp/src/"
cp -r "$here/mutants" "$tmp/src/"

passed=0
failed=0
t_all=$(date +%s.%N)

# How each check is built and run: spin's -D options, the C compiler's,
# pan's. The search depth limit (-m) is far above any model's depth; a
# search that hits it is reported as a failure, not as a pass.
set_flags() {
  case $1 in
    asserts)        SPIN_D="";           CC_D="-DSAFETY -DNOCLAIM"; PAN_F="" ;;
    no_lost_wakeup) SPIN_D="";           CC_D="-DSAFETY";           PAN_F="-N no_lost_wakeup" ;;
    progress)       SPIN_D="-DPROGRESS"; CC_D="-DNFAIR=3";          PAN_F="-a -f -N progress" ;;
    *) return 1 ;;
  esac
}

# The checks each model must pass, one "CHECK [SPIN_DEFINE]" per line: a
# define gives a second configuration of the same model.
model_checks() {
  case $1 in
    remote_free.pml) printf '%s\n' "asserts" "no_lost_wakeup" "progress" \
                                   "asserts TWO_SS" "no_lost_wakeup TWO_SS" "progress TWO_SS" ;;
    ownership.pml)   printf '%s\n' "asserts" ;;
    retire.pml)      printf '%s\n' "asserts" ;;
    purge.pml)       printf '%s\n' "asserts" ;;
    tstack.pml)      printf '%s\n' "asserts" ;;
    heap_batch.pml)  printf '%s\n' "asserts" ;;
    region.pml)      printf '%s\n' "asserts" "asserts COLLECT" "asserts SMALLREG" ;;
    pmap.pml)        printf '%s\n' "asserts" ;;
    *) return 1 ;;
  esac
}

elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

# run_check KIND NAME FILE CHECK DEFINE EXPECT
run_check() {
  local kind=$1 name=$2 file=$3 check=$4 def=$5 expect=$6
  local label="$name [$check${def:+ $def}]"
  local dir="$tmp/run/$name.$check${def:+.$def}"
  if ! set_flags "$check"; then
    echo "FAIL $kind $label: unknown check"; failed=$((failed + 1)); return
  fi
  local spin_d="$SPIN_D${def:+ -D$def}" cc_d="$CC_D"
  # Mutants' safety searches go breadth-first: the shortest counterexample.
  if [ "$kind" = mutant ] && [ "$check" != progress ]; then cc_d="$cc_d -DBFS"; fi
  mkdir -p "$dir"
  local t0; t0=$(date +%s.%N)
  if ! (cd "$dir" && spin $spin_d -a "$tmp/src/$file" >spin.log 2>&1); then
    echo "FAIL $kind $label: spin -a failed: $(grep -m1 -i error "$dir/spin.log")"
    failed=$((failed + 1)); return
  fi
  if ! (cd "$dir" && $CC -O2 -w -DVECTORSZ=512 -DCOLLAPSE $cc_d -o pan pan.c >cc.log 2>&1); then
    echo "FAIL $kind $label: pan.c does not compile (see cc.log)"
    failed=$((failed + 1)); return
  fi
  (cd "$dir" && ./pan $PAN_F -m100000 >pan.log 2>&1)
  local rc=$? t; t=$(elapsed "$t0")
  local log="$dir/pan.log"
  local errors states first
  errors=$(sed -n 's/.*errors: \([0-9][0-9]*\).*/\1/p' "$log" | head -1)
  states=$(awk '/states, stored/ { print $1; exit }' "$log")
  first=$(grep -m1 '^pan:1:' "$log" | sed 's/^pan:1: //')
  if [ -z "$errors" ]; then
    echo "FAIL $kind $label: pan did not finish (rc $rc): $(tail -1 "$log")"
    failed=$((failed + 1)); return
  fi
  if grep -q -e 'max search depth too small' -e 'VECTORSZ is too small' -e 'out of memory' "$log"; then
    echo "FAIL $kind $label: incomplete search: $(grep -m1 -e 'max search depth' -e VECTORSZ -e 'out of memory' "$log")"
    failed=$((failed + 1)); return
  fi
  if [ "$kind" = model ]; then
    if [ "$errors" = 0 ]; then
      echo "PASS model $label ($states states, ${t} s)"
      passed=$((passed + 1))
    else
      echo "FAIL model $label: $errors error(s): $first ($states states, ${t} s)"
      [ "$keep" = 1 ] && echo "     replay: cd $dir && spin -t -p -g $tmp/src/$file"
      failed=$((failed + 1))
    fi
  else
    if [ "$errors" = 0 ]; then
      echo "FAIL mutant $label verified: the check does not catch the bug ($states states, ${t} s)"
      failed=$((failed + 1))
    elif ! ls "$dir"/*.trail >/dev/null 2>&1; then
      echo "FAIL mutant $label: errors but no trail file"
      failed=$((failed + 1))
    elif [ -n "$expect" ] && ! printf '%s\n' "$first" | grep -qF -- "$expect"; then
      echo "FAIL mutant $label rejected for another reason: \"$first\", expected \"$expect\""
      failed=$((failed + 1))
    else
      echo "PASS mutant $label rejected ($first; $states states, ${t} s)"
      [ "$keep" = 1 ] && echo "     replay: cd $dir && spin -t -p -g $tmp/src/$file"
      passed=$((passed + 1))
    fi
  fi
}

for f in "$tmp"/src/*.pml; do
  m=$(basename "$f")
  lines=$(model_checks "$m") || { echo "FAIL model $m: no checks listed in check.sh"; failed=$((failed + 1)); continue; }
  while read -r check def; do
    run_check model "${m%.pml}" "$m" "$check" "${def:-}" ""
  done <<<"$lines"
done

for f in "$tmp"/src/mutants/*.pml; do
  m=$(basename "$f")
  rejects=$(sed -n 's/^ \* @reject //p' "$f")
  if [ -z "$rejects" ]; then
    echo "FAIL mutant ${m%.pml}: no @reject line"; failed=$((failed + 1)); continue
  fi
  while read -r check expect; do
    run_check mutant "${m%.pml}" "mutants/$m" "$check" "" "$expect"
  done <<<"$rejects"
done

echo "$passed passed, $failed failed ($(elapsed "$t_all") s)"
[ "$failed" = 0 ]
