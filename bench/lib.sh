# shellcheck shell=bash
# Helpers shared by the bench/ scripts (sourced, not run).

# memory_by_structure HTTP_PORT: the agent's own memory accounting,
# memquorum_shard_memory_bytes summed over shards, as "structure=bytes ..."
# on one line.
memory_by_structure() {
  curl -s "127.0.0.1:$1/metrics" |
    sed -n 's/^memquorum_shard_memory_bytes{.*structure="\([a-z_]*\)"} \([0-9.e+]*\)$/\1 \2/p' |
    awk '{ sum[$1] += $2 } END { for (s in sum) printf "%s=%.0f ", s, sum[s] }'
}

# cluster_up DIR OFFSET BUILDDIR [AGENT_ARGS...]: starts scripts/run-cluster.sh
# (three agents on loopback, ports + OFFSET, logs in DIR) in the background
# and waits until it prints its table of ready agents. Sets cluster_pid and
# agents ("n1 PID" per agent); exits the script if the cluster does not
# come up within 60 s. cluster_down stops it (run-cluster stops its agents
# on SIGTERM).
cluster_up() {
  local dir=$1 offset=$2 builddir=$3 deadline=$((SECONDS + 60))
  shift 3
  MQ_RUN_DIR="$dir" MQ_BUILD_DIR="$builddir" \
    bash scripts/run-cluster.sh --no-build --port-offset "$offset" -- "$@" \
    >"$dir/run-cluster.out" 2>&1 &
  cluster_pid=$!
  agents=()
  # Ready once run-cluster prints its table: "  n1   12345    127.0.0.1:8080 ..."
  until [ ${#agents[@]} -eq 3 ]; do
    if ! kill -0 "$cluster_pid" 2>/dev/null || ((SECONDS > deadline)); then
      echo "$(basename "$0"): the cluster did not become ready" >&2
      tail -n 20 "$dir/run-cluster.out" >&2
      exit 1
    fi
    sleep 0.5
    mapfile -t agents < <(awk '$1 ~ /^n[0-9]+$/ && $2 ~ /^[0-9]+$/ {print $1 " " $2}' \
      "$dir/run-cluster.out")
  done
}

cluster_down() {
  if [ -n "${cluster_pid:-}" ]; then
    kill -TERM "$cluster_pid" 2>/dev/null || true
    wait "$cluster_pid" 2>/dev/null || true
    cluster_pid=
  fi
}

# bench_setup BUILDDIR: installs what is missing and builds, makes the
# scratch directory $tmp, and on exit stops the cluster and removes $tmp.
bench_setup() {
  bash scripts/install-deps.sh >/dev/null
  bash scripts/build.sh "$1" >/dev/null
  tmp=$(mktemp -d)
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
}

bench_cleanup() {
  trap - EXIT INT TERM
  cluster_down
  rm -rf "$tmp"
}

# lone_agent_up NAME PORT HTTP_PORT PEER_PORT [AGENT_ARGS...]: makes $tmp,
# starts one agent (node id NAME, output in $tmp) in the background and
# waits for its /readyz; sets apid. On exit the agent is stopped and $tmp
# removed. Exits the script if the agent is not ready within 10 s.
lone_agent_up() {
  local name=$1 port=$2 http=$3 peer=$4
  shift 4
  tmp=$(mktemp -d)
  apid=
  trap lone_agent_cleanup EXIT
  build/bin/memquorum --node-id "$name" --port "$port" --http-port "$http" --peer-port "$peer" \
    --log-level warn "$@" >"$tmp/agent.out" 2>"$tmp/agent.err" &
  apid=$!
  for _ in $(seq 100); do
    curl -fs -o /dev/null "127.0.0.1:$http/readyz" && return 0
    sleep 0.1
  done
  echo "$(basename "$0" .sh): the agent is not ready" >&2
  cat "$tmp/agent.err" >&2
  exit 1
}

lone_agent_cleanup() {
  if [ -n "$apid" ]; then
    kill "$apid" 2>/dev/null || true
    wait "$apid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
