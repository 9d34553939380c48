#!/usr/bin/env bash
# expect_report.sh PATTERN COMMAND [ARGS...]
#
# The sanitizer self-test's ctest wrapper: passes only when COMMAND exits
# non-zero AND its output carries a report matching PATTERN (an extended
# regular expression). Proves that, with the preset's *SAN_OPTIONS, a
# sanitizer report really fails a stress test rather than warning and passing.
set -u
pattern=$1
shift
out=$("$@" 2>&1)
rc=$?
printf '%s\n' "$out" | head -n 30
if [ "$rc" -eq 0 ]; then
  echo "expect_report: FAIL: '$*' exited 0: a sanitizer report would not fail a test"
  exit 1
fi
if ! grep -qE -- "$pattern" <<<"$out"; then
  echo "expect_report: FAIL: '$*' exited $rc without a report matching /$pattern/"
  exit 1
fi
echo "expect_report: ok: exit status $rc with a report matching /$pattern/"
