#!/bin/sh
# hakmem_cmd_test.sh HAKMEM VERSION -- the `hakmem` command (tools/hakmem.in),
# run from the build tree: each case checks the exit status and what is
# printed, the bad-input cases included (each must be one line on stderr
# and a non-zero exit, never a shell error or a crash).
set -u
hakmem=$1 version=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failed=0

# check_stream FILE PATTERN: adds to why unless FILE matches PATTERN
# (grep -E over the whole file; '' wants it empty, '*' takes anything).
check_stream() {
  if [ "$2" = "" ]; then
    [ ! -s "$1" ] || why="$why; ${1##*/} not empty"
  elif [ "$2" != "*" ]; then
    grep -Eq -- "$2" "$1" || why="$why; ${1##*/} lacks /$2/"
  fi
}

# expect RC STDOUT_PATTERN STDERR_PATTERN -- ARGS...: runs hakmem ARGS and
# checks its exit status and output. A non-zero RC also wants exactly one
# line on stderr.
expect() {
  want_rc=$1 out_re=$2 err_re=$3
  shift 4
  unset HAKMEM_SHOW_STATS HAKMEM_VERBOSE
  "$hakmem" "$@" >"$tmp/stdout" 2>"$tmp/stderr" </dev/null
  rc=$?
  why=""
  [ "$rc" = "$want_rc" ] || why="exit $rc, expected $want_rc"
  check_stream "$tmp/stdout" "$out_re"
  check_stream "$tmp/stderr" "$err_re"
  if [ "$want_rc" != 0 ] && [ "$(wc -l <"$tmp/stderr")" -ne 1 ]; then why="$why; stderr is not one line"; fi
  if [ -n "$why" ]; then
    echo "FAIL: hakmem $*: ${why#; }"
    sed 's/^/  stdout: /' "$tmp/stdout"
    sed 's/^/  stderr: /' "$tmp/stderr"
    failed=1
  else
    echo "ok: hakmem $* -> exit $rc"
  fi
}

# version, help, options
expect 0 "^hakmem $version \(/.*/libhakmem\.so\.[0-9]+\)$" '' -- version
expect 0 '^usage: hakmem run' '' -- help
expect 0 '^HAKMEM_DECOMMIT_DELAY_MS \(--decommit-delay-ms\)$' '' -- options
expect 0 '^\| `HAKMEM_INVALID_FREE` \| `--invalid-free` \| policy \| abort, warn or ignore \| `warn` \|' '' -- options --markdown
n_opts=$("$hakmem" options --markdown | grep -c '^| `HAKMEM_')
n_verbose=$(HAKMEM_VERBOSE=1 "$hakmem" run -- true 2>&1 | grep -c '^hakmem: HAKMEM_[A-Z_]*=')
if [ "$n_opts" -lt 8 ] || [ "$n_opts" != "$n_verbose" ]; then
  echo "FAIL: hakmem options lists $n_opts options, HAKMEM_VERBOSE=1 prints $n_verbose"
  failed=1
fi

# prof: the profiler on, the top sites at exit; --sample and --top are its
# own names for --prof-sample and --prof-top, checked like every value.
# python3, not sh: dash leaves by _exit, which runs no exit report.
expect 0 '^ran$' '^hakmem: prof \(pid [0-9]+\): bytes allocated, by allocation site \(estimated from samples, 1 per 524288 bytes\)' -- prof -- python3 -c 'print("ran")'
expect 0 '' '1 per 4096 bytes.*' -- prof --sample=4k --top=3 -- python3 -c 'x = [bytes(100) for i in range(20000)]'
expect 0 '' '^hakmem:     #0 ' -- prof --sample=1k --top=1 -- python3 -c 'x = [bytes(1000) for i in range(20000)]'
expect 2 '' '^hakmem: --sample=4q: malformed value \(accepted: bytes, or a size with a k, m or g suffix\)$' -- prof --sample=4q -- true
expect 2 '' '^hakmem: unknown option --sample ' -- run --sample=4k -- true
expect 2 '' '^hakmem: prof: no command given' -- prof --top=3
expect 0 '' '^hakmem: HAKMEM_PROF_SIGNAL=USR2 \(default 0\)$' -- run --prof-signal=SIGUSR2 --verbose=1 -- true
expect 2 '' '^hakmem: --prof-signal=NOPE: malformed value' -- run --prof-signal=NOPE -- true

# run: the library is preloaded and the options reach it
expect 0 '^ran$' '^hakmem: HAKMEM_DECOMMIT_DELAY_MS=50 \(default 250\)$' -- run --decommit-delay-ms=50 --verbose=1 -- sh -c 'echo ran'
expect 0 '' '^hakmem: HAKMEM_LARGE_CACHE_MB=2048 \(default 64\)$' -- run --large-cache-mb=2g --verbose=1 -- true
expect 0 '' 'HAKMEM_TRACE_FAILURES=1 ' -- run --trace-failures --verbose=1 true
expect 0 '' '^/.*/libhakmem-hardened\.so\.[0-9]+$' -- run --hardened -- sh -c 'echo "$LD_PRELOAD" >&2'
expect 3 '' '^x$' -- run -- sh -c 'echo x >&2; exit 3'
# stats: the statistics at exit (another helper owns their format)
expect 0 '^done$' '^hakmem' -- stats -- sh -c 'echo done; exec true'

# bad input: one line, non-zero exit
expect 2 '' '^hakmem: no command given' --
expect 2 '' "^hakmem: unknown command 'frob'" -- frob
expect 2 '' '^hakmem: run: no command given' -- run
expect 2 '' '^hakmem: stats: no command given' -- stats --
expect 2 '' '^hakmem: unknown option --no-such-option ' -- run --no-such-option=1 -- true
expect 2 '' '^hakmem: unknown option --DECOMMIT_DELAY_MS ' -- run --DECOMMIT_DELAY_MS=1 -- true
expect 2 '' '^hakmem: unknown option -x ' -- run -x -- true
expect 2 '' '^hakmem: --invalid-free=bogus: malformed value \(accepted: abort, warn or ignore\)$' -- run --invalid-free=bogus -- true
expect 2 '' '^hakmem: --large-cache-mb=12q: malformed value \(accepted: MiB, or a size' -- run --large-cache-mb=12q -- true
expect 2 '' '^hakmem: --decommit-delay-ms=: malformed value' -- run --decommit-delay-ms= -- true
expect 2 '' '^hakmem: option --decommit-delay-ms needs a value' -- run --decommit-delay-ms -- true
expect 127 '' '^hakmem: no such program: no-such-program-hk ' -- run -- no-such-program-hk
expect 127 '' '^hakmem: no such program: /no/such/file$' -- run -- /no/such/file
: >"$tmp/plain-file"
chmod 644 "$tmp/plain-file"
expect 126 '' '^hakmem: not an executable file: .*/plain-file$' -- run -- "$tmp/plain-file"
expect 2 '' '^hakmem: options: unknown argument --bogus' -- options --bogus
expect 2 '' '^hakmem: version: takes no arguments$' -- version now
# A malformed value in the environment (not on the command line) is the
# library's business: it warns and the program runs with the default.
if ! HAKMEM_DOUBLE_FREE=sometimes "$hakmem" run -- true 2>"$tmp/env_err" || ! grep -q '^hakmem: HAKMEM_DOUBLE_FREE=sometimes is malformed (accepted: abort, warn or ignore); keeping the default abort$' "$tmp/env_err"; then
  echo "FAIL: a malformed HAKMEM_DOUBLE_FREE in the environment:"; cat "$tmp/env_err"; failed=1
else
  echo "ok: HAKMEM_DOUBLE_FREE=sometimes in the environment -> warning, default kept"
fi

# A copy of the command without its library, then with a broken one.
mkdir "$tmp/alone"
cp "$1" "$tmp/alone/hakmem"
hakmem=$tmp/alone/hakmem
expect 1 '' '^hakmem: libhakmem\.so\.[0-9]+ is neither in .*/alone nor in ' -- version
: >"$tmp/alone/libhakmem.so.${version%%.*}"
expect 1 '' '^hakmem: .*/alone/libhakmem\.so\.[0-9]+ did not load: .*cannot be preloaded' -- run -- true

[ $failed = 0 ] && echo "hakmem_cmd_test: OK"
exit $failed
