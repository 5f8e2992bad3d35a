#!/usr/bin/env bash
# How long an agent's loop stalls when a follower needs a snapshot of a
# large shard: the leader's, writing it, and the follower's, installing it.
# By default the leader writes it in a forked child and the follower
# decodes it on a thread; with --snapshot-fork false both do it in the loop.
#   bench/snapshot-stall.sh [KEYS]        (default 1000000)
#
# For each mode, three agents with a single shard (so one shard holds every
# key) take KEYS puts of 100-byte values over a space of KEYS keys. Then an
# app next to the shard's leader puts at 2,000/s (4 in flight) while a
# follower is killed (-9) and started again empty: it needs the whole shard
# by snapshot. Printed: the put latencies through the leader meanwhile (max
# is the stall), the same for an app next to the restarted follower (its
# puts are forwarded to the leader by the loop that installs the snapshot;
# started once the follower's probe port answers), and how long the
# follower took to be ready.
# Everything started here is stopped on exit; ports 48080-48082,
# 47070-47072, 49090-49092.
set -euo pipefail
cd "$(dirname "$0")/.."
keys=${1:-1000000}
[[ $keys =~ ^[0-9]+$ ]] || { echo "snapshot-stall: expected a whole number, got '$keys'" >&2; exit 2; }
if [ ! -x build/bin/memquorum ] || [ ! -x build/bin/mqbench ]; then bash scripts/build.sh build >/dev/null; fi

tmp=$(mktemp -d)
pids=(0 0 0)
stop_all() {
  for i in 0 1 2; do
    if [ "${pids[$i]}" != 0 ]; then
      kill -9 "${pids[$i]}" 2>/dev/null || true
      wait "${pids[$i]}" 2>/dev/null || true
      pids[i]=0
    fi
  done
}
cleanup() { stop_all; rm -rf "$tmp"; }
trap cleanup EXIT

peers=n1=127.0.0.1:47070,n2=127.0.0.1:47071,n3=127.0.0.1:47072
start() { # start I MODE
  build/bin/memquorum --node-id "n$(($1 + 1))" --port $((48080 + $1)) --peer-port $((47070 + $1)) \
    --http-port $((49090 + $1)) --advertise 127.0.0.1 --peers "$peers" --shards 1 \
    --replication-factor 3 --bootstrap-expect 3 --memory-budget 8GiB --snapshot-fork "$2" \
    --log-level warn >>"$tmp/n$1.out" 2>>"$tmp/n$1.err" &
  pids[$1]=$!
}
ready() { curl -fs -o /dev/null "127.0.0.1:$((49090 + $1))/readyz"; }
wait_ready() { # wait_ready I
  for _ in $(seq 600); do ready "$1" && return 0; sleep 0.1; done
  echo "snapshot-stall: n$(($1 + 1)) is not ready" >&2
  tail -n 20 "$tmp/n$1.err" >&2
  exit 1
}
leads() { curl -fs "127.0.0.1:$((49090 + $1))/metrics" | grep -q '^memquorum_shard_is_leader{shard="0"} 1'; }
field() { sed -n "s/.* $2=\([0-9.]*\).*/\1/p" "$1" | head -n 1; }

printf '%-6s %-9s %10s %10s %10s %10s %8s %12s\n' mode "app at" "puts/s" "p50 us" "p99 us" "max us" \
  errors "ready after"
for mode in true false; do
  for i in 0 1 2; do start "$i" "$mode"; done
  for i in 0 1 2; do wait_ready "$i"; done
  build/bin/mqbench --endpoint 127.0.0.1:48080 --op put --count "$keys" --keys "$keys" \
    --inflight 64 --quiet >"$tmp/load"
  leader=
  for _ in $(seq 100); do
    for i in 0 1 2; do if leads "$i"; then leader=$i; fi; done
    [ -n "$leader" ] && break
    sleep 0.1
  done
  [ -n "$leader" ] || { echo "snapshot-stall: shard 0 has no leader" >&2; exit 1; }
  victim=$(((leader + 1) % 3))
  build/bin/mqbench --endpoint "127.0.0.1:$((48080 + leader))" --op put --rate 2000 --inflight 4 \
    --keys 10000 --duration 12 --timeout 10000 --quiet >"$tmp/during" &
  bench=$!
  sleep 2
  kill -9 "${pids[$victim]}"
  wait "${pids[$victim]}" 2>/dev/null || true
  t0=$(date +%s.%N)
  start "$victim" "$mode"
  for _ in $(seq 600); do
    curl -fs -o /dev/null "127.0.0.1:$((49090 + victim))/healthz" && break
    sleep 0.05
  done
  build/bin/mqbench --endpoint "127.0.0.1:$((48080 + victim))" --op put --rate 2000 --inflight 4 \
    --keys 10000 --duration 8 --timeout 10000 --seed 2 --quiet >"$tmp/receiver" 2>/dev/null &
  app=$!
  wait_ready "$victim"
  took=$(echo "$(date +%s.%N) - $t0" | bc -l)
  wait "$bench" || true
  wait "$app" || true
  name=$([ "$mode" = true ] && echo fork || echo loop)
  for f in during receiver; do
    printf '%-6s %-9s %10s %10s %10s %10s %8s %10.2f s\n' "$name" \
      "$([ $f = during ] && echo leader || echo follower)" "$(field "$tmp/$f" throughput)" \
      "$(field "$tmp/$f" p50)" "$(field "$tmp/$f" p99)" "$(field "$tmp/$f" max)" \
      "$(field "$tmp/$f" errors)" "$took"
  done
  stop_all
  rm -f "$tmp"/n*.out "$tmp"/n*.err
done
echo "(one shard of $keys puts over $keys keys; a follower restarted empty while the app puts through the leader)"
