#!/usr/bin/env bash
# Resident memory per key of one MemQuorum agent against a real Redis
# holding the same keys and values, in one run:
#   bench/memory-vs-redis.sh [KEYS...]      (default: 300000 3000000)
#
# For each size: a fresh agent (16 shards, replication factor 1, every other
# setting at its default except a memory budget large enough for the keys)
# and a fresh redis-server (Debian's, persistence off) start empty; their
# resident set (VmRSS) is read; the same keys user:<i>:bench with the same
# 100-byte values are written to both (mqbench's preload, 64 in flight, to
# the agent; a RESP pipe to Redis); after a settle of SETTLE seconds
# (default 3) VmRSS is read again. Bytes per key = (after - before) / keys.
# The agent's own accounting per structure (/metrics
# memquorum_shard_memory_bytes) is printed next to it, summed over shards.
#
# Target (the speed-and-memory issue): agent bytes per key <= 2x Redis's.
# Everything started here is stopped on exit; ports 26379 (Redis) and
# 28080/29090/27070 (agent).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh
SETTLE=${SETTLE:-3}
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(300000 3000000)

command -v redis-server >/dev/null || apt-get install -y -qq redis-server >/dev/null
[ -x build/bin/memquorum ] && [ -x build/bin/mqbench ] || bash scripts/build.sh build >/dev/null

tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

wait_port() { # wait_port PORT
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on 127.0.0.1:$1" >&2
  return 1
}

# The same 100 bytes mqbench writes for --seed 1 (driver_mq.c).
value=$(python3 -c '
x = (1 * 0x9e3779b97f4a7c15 + 1) & (2**64 - 1)
out = []
for _ in range(100):
    x ^= (x << 13) & (2**64 - 1); x ^= x >> 7; x ^= (x << 17) & (2**64 - 1)
    out.append(chr(ord("a") + x % 26))
print("".join(out))')

printf '%-9s %-10s %12s %12s %10s %7s\n' keys system rss_before rss_after bytes/key ratio
for keys in "${sizes[@]}"; do
  # Redis first.
  redis-server --port 26379 --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize no --logfile "$tmp/redis.log" --dir "$tmp" &
  rpid=$!
  pids+=("$rpid")
  wait_port 26379
  r0=$(rss_kb "$rpid")
  python3 - "$keys" "$value" <<'EOF' | redis-cli -p 26379 --pipe >/dev/null
import sys
n, v = int(sys.argv[1]), sys.argv[2].encode()
out = sys.stdout.buffer
for i in range(n):
    k = b"user:%d:bench" % i
    out.write(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(k), k, len(v), v))
EOF
  [ "$(redis-cli -p 26379 dbsize)" = "$keys" ] || { echo "redis holds $(redis-cli -p 26379 dbsize) keys, not $keys" >&2; exit 1; }
  sleep "$SETTLE"
  r1=$(rss_kb "$rpid")
  redis-cli -p 26379 shutdown nosave >/dev/null 2>&1 || true
  wait "$rpid" 2>/dev/null || true

  # Then the agent.
  budget=$(( keys * 2000 + (1 << 30) ))
  build/bin/memquorum --node-id mem1 --port 28080 --http-port 29090 --peer-port 27070 \
    --memory-budget "$budget" --log-level warn >"$tmp/agent.out" 2>"$tmp/agent.err" &
  apid=$!
  pids+=("$apid")
  wait_port 28080
  sleep 1
  a0=$(rss_kb "$apid")
  build/bin/mqbench --endpoint 127.0.0.1:28080 --op get --keys "$keys" --inflight 64 \
    --count 1 --quiet >/dev/null
  sleep "$SETTLE"
  a1=$(rss_kb "$apid")
  breakdown=$(memory_by_structure 29090)
  kill "$apid"
  wait "$apid" 2>/dev/null || true

  rb=$(( (r1 - r0) * 1024 / keys ))
  ab=$(( (a1 - a0) * 1024 / keys ))
  printf '%-9s %-10s %10s kB %10s kB %10s %7s\n' "$keys" redis "$r0" "$r1" "$rb" 1.00
  printf '%-9s %-10s %10s kB %10s kB %10s %7s\n' "$keys" memquorum "$a0" "$a1" "$ab" \
    "$(awk -v a="$ab" -v r="$rb" 'BEGIN { printf "%.2f", a / r }')"
  if [ -n "$breakdown" ]; then
    echo "          agent's own accounting, bytes per key: $(for kv in $breakdown; do
      printf '%s=%s ' "${kv%%=*}" $(( ${kv#*=} / keys )); done)"
  fi
done
