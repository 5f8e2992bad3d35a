#!/bin/sh
# Smoke test of mq-echo-server and mqbench together: start the echo server
# on a free port, run 2000 echo calls with 8 in flight, and require that
# all of them were measured and none failed.
#
# usage: echo-smoke.sh MQ_ECHO_SERVER MQBENCH
set -u
server=$1
bench=$2
dir=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; fi
  rm -rf "$dir"
}
trap cleanup EXIT
fail() { echo "echo-smoke: FAIL: $*" >&2; exit 1; }

# The server prints its port once it is listening; read it through a fifo so
# the test waits for exactly that line instead of sleeping.
mkfifo "$dir/out"
"$server" --port 0 --threads 2 >"$dir/out" &
pid=$!
exec 3<"$dir/out"
line=
read -r line <&3 || fail "mq-echo-server exited before printing its port"
port=${line##*:}
case "$line" in
  "listening on 127.0.0.1:"[0-9]*) ;;
  *) fail "unexpected first line from mq-echo-server: '$line'" ;;
esac

report=$("$bench" --endpoint "127.0.0.1:$port" --op echo --count 2000 --inflight 8 --json --quiet)
rc=$?
echo "$report"
ops=$(printf '%s\n' "$report" | sed -n 's/.*"ops":\([0-9]*\).*/\1/p')
errors=$(printf '%s\n' "$report" | sed -n 's/.*"errors":\([0-9]*\).*/\1/p')
[ -n "$ops" ] && [ -n "$errors" ] || fail "no ops/errors in mqbench output (exit $rc)"
[ "$ops" -eq 2000 ] || fail "expected 2000 measured ops, got $ops"
[ "$errors" -eq 0 ] || fail "$errors calls failed"
[ "$rc" -eq 0 ] || fail "mqbench exited with $rc"

# The server must also stop cleanly on SIGTERM.
kill -TERM "$pid"
wait "$pid"
src=$?
pid=
[ "$src" -eq 0 ] || fail "mq-echo-server exited with $src on SIGTERM"
echo "echo-smoke: ok ($ops ops, 0 errors)"
