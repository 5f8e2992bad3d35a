#!/usr/bin/env bash
# What a MemQuorum sidecar costs its pod, measured in one run:
#   bench/sidecar-cost.sh [SECONDS]        (or DURATION=S; default 30)
#
# Three agents on loopback (scripts/run-cluster.sh: 16 shards, replication
# factor 3, every setting at its default), formed and left alone for SETTLE
# seconds (default 10), then:
#   1. idle: nothing calls them for SECONDS;
#   2. serving: one application drives its agent (n1) at RATE calls per
#      second (default 1000; mqbench --rate, 4 in flight, 100-byte puts over
#      10,000 users, so some are forwarded to leaders on the other agents)
#      for SECONDS;
#   3. spread: three applications, each driving its own agent at RATE
#      calls per second the same way, for SECONDS (what a deployment with
#      an app in every pod looks like: two thirds of each agent's puts are
#      forwarded, and each agent leads some of the others' shards).
# For each phase and agent: CPU as a percentage of one core (user + system
# time from /proc/PID/stat over the phase, divided by its wall time) and
# the resident set (VmRSS) at the end. The serving agent's figure is the
# one to compare with other sidecars; the other two show what replicating
# its writes costs their pods. mqbench's own CPU is not counted.
# Everything started here is stopped on exit; ports are run-cluster's plus
# $MQ_PORT_OFFSET (default 500).
set -euo pipefail
cd "$(dirname "$0")/.."
dur=${1:-${DURATION:-30}}
rate=${RATE:-1000}
settle=${SETTLE:-10}
offset=${MQ_PORT_OFFSET:-500}
builddir=${MQ_BUILD_DIR:-build}
bin=$builddir/bin
for v in "$dur" "$rate" "$settle"; do
  [[ $v =~ ^[0-9]+$ ]] || { echo "sidecar-cost: expected a whole number, got '$v'" >&2; exit 2; }
done

# shellcheck source=bench/lib.sh
. bench/lib.sh
bench_setup "$builddir"

cluster_up "$tmp" "$offset" "$builddir"
sleep "$settle"

hz=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; } # utime + stime
rss_mb() { awk '/^VmRSS:/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }

# measure LABEL CMD...: runs CMD (or sleeps) for the phase, then prints a row per agent.
measure() {
  local label=$1 a pid t0 w0 w1
  shift
  declare -A before=()
  for a in "${agents[@]}"; do pid=${a#* }; before[$pid]=$(cpu_ticks "$pid"); done
  w0=$(date +%s.%N)
  "$@"
  w1=$(date +%s.%N)
  for a in "${agents[@]}"; do
    pid=${a#* }
    t0=${before[$pid]}
    printf '%-34s %-3s %6.2f %%  %7s MB\n' "$label" "${a% *}" \
      "$(echo "($(cpu_ticks "$pid") - $t0) / $hz / ($w1 - $w0) * 100" | bc -l)" "$(rss_mb "$pid")"
  done
}

# drive [I [OUT]]: one application at RATE puts/s through agent nI (default
# n1), its report in $tmp/OUT (default serving.out).
drive() {
  local i=${1:-1} out=${2:-serving.out}
  "$bin/mqbench" --endpoint "127.0.0.1:$((8080 + i - 1 + offset))" --op put --rate "$rate" \
    --inflight 4 --keys 10000 --duration "$dur" --quiet >"$tmp/$out"
}

drive_all() {
  local pids=() i
  for i in 1 2 3; do drive "$i" "spread$i.out" & pids+=($!); done
  for i in "${pids[@]}"; do wait "$i"; done
}

echo "sidecar cost: 3 agents, 16 shards, RF 3, ${dur} s per phase ($(nproc) cores)"
printf '%-34s %-3s %8s  %10s\n' phase "" "CPU" "RSS"
measure "idle" sleep "$dur"
measure "n1 serving $rate puts/s" drive
measure "each serving $rate puts/s" drive_all
echo "mqbench (n1 serving): $(head -n 3 "$tmp/serving.out" | tr '\n' ' ')"
for i in 1 2 3; do
  echo "mqbench (each serving, through n$i): $(head -n 3 "$tmp/spread$i.out" | tr '\n' ' ')"
done
