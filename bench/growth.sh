#!/usr/bin/env bash
# Put latency while the data grows, against the same puts once it has grown.
#   bench/growth.sh [KEYS]        (default 5000000)
#
# One agent (16 shards, replication factor 1, --memory-budget 8GiB so the
# keys fit) starts empty. "growth": KEYS puts of 100-byte values through
# the agent, 64 in flight, each to a key drawn from a space of a billion,
# so nearly every put makes a new key and every shard's table grows
# through all its sizes. "steady": the same KEYS puts again (same seed,
# same keys), each now replacing a value. The p999 of growth against that
# of steady is what the speed-and-memory issue bounds (target: within 3x),
# and max shows the worst single stall.
# Everything started here is stopped on exit; ports 38180/39190/37170.
set -euo pipefail
cd "$(dirname "$0")/.."
keys=${1:-5000000}
[[ $keys =~ ^[0-9]+$ ]] || { echo "growth: expected a whole number, got '$keys'" >&2; exit 2; }
if [ ! -x build/bin/memquorum ] || [ ! -x build/bin/mqbench ]; then bash scripts/build.sh build >/dev/null; fi

# shellcheck source=bench/lib.sh
. bench/lib.sh
lone_agent_up growth1 38180 39190 37170 --memory-budget 8GiB

run() { # run NAME: one pass of KEYS puts, report to $tmp/NAME
  build/bin/mqbench --endpoint 127.0.0.1:38180 --op put --count "$keys" --keys 1000000000 \
    --inflight 64 --seed 7 --quiet >"$tmp/$1"
  grep -q '^ops=[0-9]* errors=0 ' "$tmp/$1" || { echo "growth: $1 had errors:" >&2; cat "$tmp/$1" >&2; exit 1; }
}
field() { sed -n "s/.* $2=\([0-9.]*\).*/\1/p" "$tmp/$1" | head -n 1; }

run growth
rss=$(awk '/^VmRSS:/ {printf "%.0f", $2 / 1024}' "/proc/$apid/status")
run steady

echo "growth: $keys puts of 100 B through one agent (16 shards), 64 in flight"
printf '  %-7s %12s %10s %10s %10s %10s\n' phase "puts/s" "p50 us" "p99 us" "p999 us" "max us"
for p in growth steady; do
  printf '  %-7s %12s %10s %10s %10s %10s\n' "$p" "$(field "$p" throughput)" "$(field "$p" p50)" \
    "$(field "$p" p99)" "$(field "$p" p999)" "$(field "$p" max)"
done
awk -v g="$(field growth p999)" -v s="$(field steady p999)" \
  'BEGIN { printf "  p999 growth / steady: %.2fx (target <= 3x)\n", g / s }'
echo "  resident after growth: ${rss} MB"
