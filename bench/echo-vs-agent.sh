#!/usr/bin/env bash
# Side-by-side throughput and latency of a single agent and of a bare echo
# server built on the same gRPC C-core API, with the same payload, in one run.
#   bench/echo-vs-agent.sh [DURATION_S]        (default 10)
# Prints one table; the agent's Put at 64 in flight is compared with the
# echo's at 64 in flight (the goal is at least 70%).
set -euo pipefail
cd "$(dirname "$0")/.."
dur=${1:-10}
bin=${MQ_BUILD_DIR:-build}/bin
[ -x "$bin/memquorum" ] || bash scripts/build.sh "${MQ_BUILD_DIR:-build}" >/dev/null

tmp=$(mktemp -d)
cleanup() {
  [ -n "${echo_pid:-}" ] && kill "$echo_pid" 2>/dev/null || true
  [ -n "${agent_pid:-}" ] && kill "$agent_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

wait_line() { # wait_line FILE REGEX
  for _ in $(seq 100); do
    grep -Eo "$2" "$1" 2>/dev/null | head -1 && return 0
    sleep 0.1
  done
  echo "timed out waiting for $2 in $1" >&2
  return 1
}

"$bin/mq-echo-server" --port 0 --threads 2 >"$tmp/echo.out" 2>"$tmp/echo.err" &
echo_pid=$!
echo_addr=$(wait_line "$tmp/echo.out" '127\.0\.0\.1:[0-9]+')

"$bin/memquorum" --port 0 --http-port -1 --peer-port 0 --node-id bench \
  --memory-budget 8GiB >"$tmp/agent.out" 2>"$tmp/agent.err" &
agent_pid=$!
agent_addr=$(wait_line "$tmp/agent.out" 'api=[^ ]+' | cut -d= -f2)

run() { # run LABEL ENDPOINT OP INFLIGHT
  local out
  local threads=2
  [ "$4" -lt 2 ] && threads=1
  out=$("$bin/mqbench" --endpoint "$2" --op "$3" --inflight "$4" --threads "$threads" \
    --duration "$dur" --warmup 1 --value-size 100 --keys 10000 --quiet --json)
  python3 - "$1" "$3" "$4" "$out" <<'PY'
import json, sys
label, op, inflight, out = sys.argv[1:]
r = json.loads(out)
l = r["latency_us"]
print(f"{label:<8} {op:<8} {inflight:>8} {r['ops_per_sec']:>12.0f} {l['p50']:>9.0f} "
      f"{l['p99']:>9.0f} {l['p999']:>9.0f} {r['errors']:>7}")
PY
}

printf '%-8s %-8s %8s %12s %9s %9s %9s %7s\n' target op inflight ops/s p50_us p99_us p999_us errors
{
  run echo "$echo_addr" echo 1
  run echo "$echo_addr" echo 64
  run agent "$agent_addr" put 1
  run agent "$agent_addr" put 64
  run agent "$agent_addr" get 1
  run agent "$agent_addr" get 64
  run agent "$agent_addr" produce 1
  run agent "$agent_addr" produce 64
} | tee "$tmp/table"
python3 - "$tmp/table" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1])]
echo = next(float(r[3]) for r in rows if r[0] == "echo" and r[2] == "64")
put = next(float(r[3]) for r in rows if r[0] == "agent" and r[1] == "put" and r[2] == "64")
print(f"agent put / echo at 64 in flight: {100 * put / echo:.0f}% (goal: at least 70%)")
PY
