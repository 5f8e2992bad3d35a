#!/usr/bin/env bash
# The memory floor after churn: what one agent keeps once every key it took
# has expired.
#   bench/churn-floor.sh [PUTS] [TTL_MS]        (default 600000 1000)
#
# One agent (16 shards, replication factor 1, every setting at its
# default) starts empty; its resident set (VmRSS) is read. Then PUTS puts of
# 100-byte values with a TTL of TTL_MS, spread over 100 million keys (so
# nearly every put is a new key), 64 in flight. Once the agent reports zero
# keys (every one expired) and SETTLE seconds (default 5) more have passed,
# VmRSS is read again, with the agent's own accounting by structure (summed
# over shards from /metrics memquorum_shard_memory_bytes). What is left is
# bounded by the byte caps (--watch-history-bytes, --raft-log-bytes, per
# shard) and the request-id table, plus what the allocator keeps.
# Target (the speed-and-memory issue): under 40 MB resident.
# Everything started here is stopped on exit; ports 38080/39090/37070.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh
puts=${1:-600000}
ttl=${2:-1000}
settle=${SETTLE:-5}
for v in "$puts" "$ttl" "$settle"; do
  [[ $v =~ ^[0-9]+$ ]] || { echo "churn-floor: expected a whole number, got '$v'" >&2; exit 2; }
done
if [ ! -x build/bin/memquorum ] || [ ! -x build/bin/mqbench ]; then bash scripts/build.sh build >/dev/null; fi

rss_mb() { awk '/^VmRSS:/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
metric_sum() { # metric_sum NAME: the metric summed over its series
  curl -s 127.0.0.1:39090/metrics | awk -v n="$1" '$1 ~ "^" n "({|$)" { s += $2 } END { printf "%.0f", s }'
}

lone_agent_up churn1 38080 39090 37070
start=$(rss_mb "$apid")

t0=$SECONDS
build/bin/mqbench --endpoint 127.0.0.1:38080 --op put --ttl "$ttl" --count "$puts" \
  --keys 100000000 --inflight 64 --quiet >"$tmp/mqbench.out"
peak=$(rss_mb "$apid")
until [ "$(metric_sum memquorum_shard_keys)" = 0 ]; do
  ((SECONDS - t0 < 600)) || { echo "churn-floor: keys left after 600 s: $(metric_sum memquorum_shard_keys)" >&2; exit 1; }
  sleep 1
done
sleep "$settle"
floor=$(rss_mb "$apid")
breakdown=$(for kv in $(memory_by_structure 39090); do
  awk -v k="${kv%%=*}" -v b="${kv#*=}" 'BEGIN { printf "%s=%.1fMB ", k, b / 1048576 }'
done)

echo "churn floor: $puts puts of 100 B with a ${ttl} ms TTL, one agent, 16 shards"
echo "  mqbench: $(grep -m1 '^ops=' "$tmp/mqbench.out")"
echo "  resident: ${start} MB at start, ${peak} MB after the puts, ${floor} MB once every key expired (target < 40 MB)"
echo "  agent's own accounting: $breakdown"
