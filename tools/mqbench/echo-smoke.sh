#!/bin/sh
# Smoke test of mq-echo-server and mqbench together: start the echo server
# on a free port, run 2000 echo calls with 8 in flight, and require that
# all of them were measured and none failed; then a paced run (--rate),
# whose rate and latency must be what the calls took.
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

# Paced: 500 calls/s with 8 slots is one start every 2 ms. A slot waiting
# for its turn must not hold up the completions of the others, so an echo
# call's median stays far under the period (when the pacing slept in the
# completion loop it measured about seven periods).
report=$("$bench" --endpoint "127.0.0.1:$port" --op echo --rate 500 --duration 2 --inflight 8 \
  --json --quiet)
rc=$?
echo "$report"
[ "$rc" -eq 0 ] || fail "paced mqbench exited with $rc"
printf '%s\n' "$report" | python3 -c '
import json, sys
r = json.load(sys.stdin)
rate, p50 = r["ops_per_sec"], r["latency_us"]["p50"]
assert 450 <= rate <= 550, "paced at 500 calls/s, measured %.1f" % rate
assert p50 < 2000, "paced echo p50 %.0f us: not under the 2 ms period" % p50
' || fail "paced run"

# The server must also stop cleanly on SIGTERM.
kill -TERM "$pid"
wait "$pid"
src=$?
pid=
[ "$src" -eq 0 ] || fail "mq-echo-server exited with $src on SIGTERM"
echo "echo-smoke: ok ($ops ops, 0 errors)"
