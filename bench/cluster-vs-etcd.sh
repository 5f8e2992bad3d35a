#!/usr/bin/env bash
# Side-by-side throughput and latency of a three-agent MemQuorum cluster and
# a three-member etcd cluster on this machine, driven by the same load
# generator (mqbench: same calls in flight, keys and 100-byte values), in
# one run:
#   bench/cluster-vs-etcd.sh [DURATION_S]     (or DURATION=S; default 10)
#
# Puts and linearizable gets at 1 and 64 in flight against each system,
# DURATION seconds each after a 1 s warmup, the two systems taking turns;
# all of it ROUNDS times (default 3). Prints every run, the median
# throughput and median p99 of each row over the rounds, and, from the
# medians, the ratios the replicated-cluster issue targets at 64 in flight:
# MemQuorum put throughput at least 3x etcd's, and MemQuorum put p99 at most
# half of etcd's. (Both systems move 10-20% from run to run on a small
# machine; one run decides little.)
#
# etcd: Debian's etcd-server (installed if missing), three members on
# loopback, data directories in /dev/shm and every other setting at etcd's
# default (fsync stays on; tmpfs makes it cheap, which favours etcd over a
# disk). MemQuorum: scripts/run-cluster.sh (static peers, replication factor
# 3), driven through its first agent, n1, as an application drives its
# sidecar. etcd is driven through its leader. MemQuorum moves the leadership
# of a shard to the agent its requests come through (--leader-follow-window,
# 10 s by default), so before measuring, both systems get the same
# settling load (puts at 64 in flight for SETTLE seconds, default 12), after
# which n1 leads the shards; the table's header says who led what before and
# after. MQ_AGENT_ARGS adds agent flags: MQ_AGENT_ARGS="--leader-follow-window
# 0" measures n1 forwarding to leaders elsewhere instead.
# SPREAD=1 measures what a sidecar deployment looks like instead: three
# clients at once, each through its own agent (and each on its own etcd
# member), 21 calls in flight each, keys over 10,000 users, so most writes
# are forwarded to a leader elsewhere; a row's ops/s is the three clients'
# sum and its latencies the worst client's.
# Everything started here is stopped on exit. It is a benchmark, so
# no test suite runs it. Ports: etcd 23791-23793 (clients) and 23801-23803
# (peers), away from 2379/2380 where the Debian package's own service may
# listen (it is neither used nor stopped); MemQuorum the run-cluster ports
# plus $MQ_PORT_OFFSET (default 400).
# Exit status 0 when every run measured something (whether or not the
# targets were met), 1 when a run or the setup failed.
set -euo pipefail
cd "$(dirname "$0")/.."
dur=${1:-${DURATION:-10}}
[[ $dur =~ ^[0-9]+(\.[0-9]+)?$ ]] ||
  { echo "cluster-vs-etcd: DURATION: expected seconds, got '$dur'" >&2; exit 2; }
offset=${MQ_PORT_OFFSET:-400}
builddir=${MQ_BUILD_DIR:-build}
bin=$builddir/bin

bash scripts/install-deps.sh >/dev/null
if ! command -v etcd >/dev/null || ! command -v etcdctl >/dev/null; then
  for p in etcd-server etcd-client; do
    apt-cache show "$p" >/dev/null 2>&1 || {
      apt-get update -qq
      apt-cache show "$p" >/dev/null 2>&1 || { echo "cluster-vs-etcd: no Debian package $p" >&2; exit 1; }
    }
  done
  echo "cluster-vs-etcd: installing etcd-server and etcd-client"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server etcd-client >/dev/null
fi
bash scripts/build.sh "$builddir" >/dev/null
export ETCDCTL_API=3

tmp=$(mktemp -d)
shm=$(mktemp -d /dev/shm/mq-bench-etcd.XXXXXX)
etcd_pids=()
cluster_pid=
bench_pids=()

cleanup() {
  local pid
  trap - EXIT INT TERM
  for pid in "${bench_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${bench_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  # run-cluster.sh stops its agents itself on SIGTERM.
  if [ -n "$cluster_pid" ]; then
    kill -TERM "$cluster_pid" 2>/dev/null || true
    wait "$cluster_pid" 2>/dev/null || true
  fi
  for pid in "${etcd_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${etcd_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$tmp" "$shm"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

e_names=(e1 e2 e3)
e_client=(23791 23792 23793)
e_peer=(23801 23802 23803)
for p in "${e_client[@]}" "${e_peer[@]}"; do
  if [ -n "$(ss -Hltn "sport = :$p" 2>/dev/null)" ]; then
    echo "cluster-vs-etcd: port $p (etcd) is already in use" >&2
    exit 1
  fi
done
initial=$(for i in 0 1 2; do printf '%s=http://127.0.0.1:%s,' "${e_names[i]}" "${e_peer[i]}"; done)
initial=${initial%,}
e_eps=$(for i in 0 1 2; do printf '127.0.0.1:%s,' "${e_client[i]}"; done)
e_eps=${e_eps%,}

# Each server process gets its own session, as run-cluster.sh gives each
# agent: with the kernel's autogroup scheduling a session is a scheduling
# group, so both systems get the CPU on the same terms.
for i in 0 1 2; do
  setsid etcd --name "${e_names[i]}" --data-dir "$shm/${e_names[i]}" \
    --listen-client-urls "http://127.0.0.1:${e_client[i]}" \
    --advertise-client-urls "http://127.0.0.1:${e_client[i]}" \
    --listen-peer-urls "http://127.0.0.1:${e_peer[i]}" \
    --initial-advertise-peer-urls "http://127.0.0.1:${e_peer[i]}" \
    --initial-cluster "$initial" --initial-cluster-token mq-bench \
    --initial-cluster-state new >"$tmp/${e_names[i]}.log" 2>&1 </dev/null &
  etcd_pids+=($!)
done

mkdir -p "$tmp/mq"
MQ_RUN_DIR="$tmp/mq" MQ_BUILD_DIR="$builddir" \
  bash scripts/run-cluster.sh --no-build --port-offset "$offset" -- ${MQ_AGENT_ARGS:-} \
  >"$tmp/run-cluster.out" 2>&1 &
cluster_pid=$!
mq_ep=127.0.0.1:$((8080 + offset))
spread=${SPREAD:-0}

fail() { # fail MESSAGE LOG...
  echo "cluster-vs-etcd: $1" >&2
  shift
  for f in "$@"; do
    echo "---- $f" >&2
    tail -n 20 "$f" >&2 || true
  done
  exit 1
}

deadline=$((SECONDS + 30))
until etcdctl --endpoints "$e_eps" --command-timeout 2s endpoint health >/dev/null 2>&1; do
  for i in 0 1 2; do
    kill -0 "${etcd_pids[i]}" 2>/dev/null ||
      fail "etcd member ${e_names[i]} exited" "$tmp/${e_names[i]}.log"
  done
  ((SECONDS < deadline)) || fail "etcd not healthy after 30 s" "$tmp"/e?.log
  sleep 0.5
done
until grep -q '^run-cluster: ready' "$tmp/run-cluster.out"; do
  kill -0 "$cluster_pid" 2>/dev/null || fail "the MemQuorum cluster did not start" "$tmp/run-cluster.out"
  ((SECONDS < deadline + 30)) || fail "the MemQuorum cluster is not ready" "$tmp/run-cluster.out"
  sleep 0.5
done

e_leader=$(etcdctl --endpoints "$e_eps" endpoint status -w json | python3 -c '
import json, sys
for s in json.load(sys.stdin):
    if s["Status"]["leader"] == s["Status"]["header"]["member_id"]:
        print(s["Endpoint"])')
[ -n "$e_leader" ] || fail "etcd reports no leader" "$tmp"/e?.log
# Which agent leads which shard: requests through n1 for shards another
# agent leads are forwarded there.
mq_leaders() {
  local st
  st=$("$bin/mqctl" --endpoint "$mq_ep" --json status 2>&1) || { echo "(mqctl status failed)"; return; }
  python3 -c '
import json, sys
by = {}
for s in json.loads(sys.argv[1])["shards"]:
    by.setdefault(s.get("leader") or "(none)", []).append(str(s["shard"]))
print("; ".join(n + " leads %d [%s]" % (len(v), " ".join(v)) for n, v in sorted(by.items())))
' "$st"
}
leaders_before=$(mq_leaders)
settle=${SETTLE:-12}
rounds=${ROUNDS:-3}
[[ $rounds =~ ^[1-9][0-9]*$ ]] || { echo "cluster-vs-etcd: ROUNDS: expected a count, got '$rounds'" >&2; exit 2; }
[[ $settle =~ ^[0-9]+$ ]] || { echo "cluster-vs-etcd: SETTLE: expected seconds, got '$settle'" >&2; exit 2; }
if [ "$spread" = 1 ]; then
  mq_eps=() e_eps_each=()
  for i in 0 1 2; do
    mq_eps+=("127.0.0.1:$((8080 + offset + i))")
    e_eps_each+=("127.0.0.1:${e_client[i]}")
  done
  keys=10000
  big=63 big_label=3x21
else
  mq_eps=("$mq_ep") e_eps_each=("$e_leader")
  keys=1000
  big=64 big_label=64
fi
for target in memquorum etcd; do
  settle_pids=()
  if [ "$target" = memquorum ]; then eps=("${mq_eps[@]}"); else eps=("${e_eps_each[@]}"); fi
  for ep in "${eps[@]}"; do
    "$bin/mqbench" --target "$target" --endpoint "$ep" --op put --inflight $((64 / ${#eps[@]})) \
      --threads 1 --duration "$settle" --value-size 100 --keys "$keys" --quiet \
      >/dev/null 2>>"$tmp/settle.err" &
    settle_pids+=($!)
  done
  for pid in "${settle_pids[@]}"; do
    wait "$pid" || fail "the settling run failed ($target)" "$tmp/settle.err"
  done
done
leaders_after=$(mq_leaders)

# One client completion-queue thread: on two cores a second one only takes
# CPU from the servers (measured: more throughput for both systems).
common=(--threads 1 --warmup 1 --duration "$dur" --value-size 100 --keys "$keys" --quiet --json)
cat <<EOF
MemQuorum: 3 agents, RF 3, static peers${MQ_AGENT_ARGS:+, agent flags: $MQ_AGENT_ARGS}; mqbench -> $mq_ep (n1)
  shard leaders at the start: $leaders_before
  after ${settle} s of settling puts (both systems): $leaders_after
etcd $(etcd --version | sed -n 's/^etcd Version: //p'): 3 members, data dirs in /dev/shm (tmpfs), etcd defaults otherwise (fsync on, no --unsafe-no-fsync); mqbench -> $e_leader (leader)
commands: $bin/mqbench --endpoint $mq_ep --op put|get --inflight 1|64 ${common[*]}
          $bin/mqbench --target etcd --endpoint $e_leader --op put|get --inflight 1|64 ${common[*]}
gets are linearizable on both (MemQuorum ReadIndex at the shard leader; etcd Range without serializable)

EOF

if [ "$spread" = 1 ]; then
  echo "SPREAD=1: each row runs three such clients at once, one per agent (${mq_eps[*]}) and one"
  echo "per etcd member (${e_eps_each[*]}), 21 in flight each; ops/s summed, latencies the worst client's"
  echo
fi

# mqbench runs in the background and is awaited, so that a signal to this
# script stops it (and everything else) at once rather than after the run.
run() { # run SYSTEM OP INFLIGHT ENDPOINT...
  local sys=$1 op=$2 n=$3 row ep i=0 per
  shift 3
  local target=(--target "$sys")
  [ "$sys" = memquorum ] && target=()
  per=$((n / $#))
  bench_pids=()
  rm -f "$tmp"/mqbench.*.json
  for ep in "$@"; do
    "$bin/mqbench" "${target[@]}" --endpoint "$ep" --op "$op" --inflight "$per" "${common[@]}" \
      >"$tmp/mqbench.$i.json" 2>"$tmp/mqbench.err" &
    bench_pids+=($!)
    i=$((i + 1))
  done
  for pid in "${bench_pids[@]}"; do wait "$pid" || true; done # a failed run still reports
  bench_pids=()
  local label=$n
  [ $# -gt 1 ] && label="$#x$per"
  if ! python3 -c 'import json, sys; [json.load(open(p)) for p in sys.argv[1:]]' \
    "$tmp"/mqbench.*.json 2>/dev/null; then
    row=$(printf '%-9s %-4s %8s %12s %9s %9s %9s %7s   (%s)' "$sys" "$op" "$label" - - - - - \
      "$(tail -n 1 "$tmp/mqbench.err")")
  else
    row=$(python3 - "$sys" "$op" "$label" "$tmp"/mqbench.*.json <<'PY'
import json, sys
sysname, op, n, *paths = sys.argv[1:]
rs = [json.load(open(p)) for p in paths]
ops = sum(r["ops_per_sec"] for r in rs)
worst = {k: max(r["latency_us"][k] for r in rs) for k in ("p50", "p99", "p999")}
errors = sum(r["errors"] for r in rs)
first = next((r["first_error"] for r in rs if r["errors"]), "")
note = f"   ({first})" if errors else ""
print(f"{sysname:<9} {op:<4} {n:>8} {ops:>12.0f} {worst['p50']:>9.0f} "
      f"{worst['p99']:>9.0f} {worst['p999']:>9.0f} {errors:>7}{note}")
PY
)
  fi
  printf '%s\n' "$row" | tee -a "$tmp/table"
}

printf '%-9s %-4s %8s %12s %9s %9s %9s %7s\n' system op inflight ops/s p50_us p99_us p999_us errors
for ((round = 1; round <= rounds; round++)); do
  [ "$rounds" -gt 1 ] && echo "round $round of $rounds"
  for op in put get; do
    for n in 1 64; do
      if [ "$spread" = 1 ] && [ "$n" = 1 ]; then continue; fi
      if [ "$n" = 1 ]; then
        run memquorum "$op" 1 "$mq_ep"
        run etcd "$op" 1 "$e_leader"
      else
        run memquorum "$op" "$big" "${mq_eps[@]}"
        run etcd "$op" "$big" "${e_eps_each[@]}"
      fi
    done
  done
done

python3 - "$tmp/table" "$rounds" "$big_label" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    f = line.split()
    if len(f) >= 8 and f[3] != "-":
        runs.setdefault((f[0], f[1], f[2]), []).append((float(f[3]), float(f[5])))
rounds = int(sys.argv[2])
big = sys.argv[3]
rows = {k: (statistics.median(t for t, _ in v), statistics.median(p for _, p in v))
        for k, v in runs.items() if len(v) == rounds}
if rounds > 1:
    print(f"\nmedians of {rounds} rounds:")
    print(f"{'system':<9} {'op':<4} {'inflight':>8} {'ops/s':>12} {'p99_us':>9}")
    for (sysname, op, n), (t, p) in rows.items():
        print(f"{sysname:<9} {op:<4} {n:>8} {t:>12.0f} {p:>9.0f}")
def ratio(op, i):
    m, e = rows.get(("memquorum", op, big)), rows.get(("etcd", op, big))
    return m[i] / e[i] if m and e and e[i] else None
def show(label, v, goal, ok):
    if v is None:
        print(f"{label}: n/a (a run failed)")
    else:
        print(f"{label}: {v:.2f} (target {goal}: {'met' if ok(v) else 'NOT met'})")
print()
show(f"put throughput at {big} in flight, MemQuorum / etcd", ratio("put", 0), ">= 3x", lambda v: v >= 3)
show(f"put p99 at {big} in flight, MemQuorum / etcd", ratio("put", 1), "<= 0.5", lambda v: v <= 0.5)
g, gp = ratio("get", 0), ratio("get", 1)
if g is not None and gp is not None:
    print(f"(for reference, linearizable get at {big} in flight: throughput {g:.2f}x, p99 {gp:.2f}x)")
sys.exit(0 if len(rows) == (4 if big != "64" else 8) and all(len(v) == rounds for v in runs.values()) else 1)
PY
