#!/usr/bin/env bash
# Installs what is missing, builds, and runs a MemQuorum cluster on this
# machine: three agents on loopback with static peers and replication
# factor 3, each with its own API, peer and HTTP port. Prints how to reach
# it, then waits. Ctrl-C (or SIGTERM) stops every agent cleanly and reports
# how each one exited.
#
#   scripts/run-cluster.sh [--agents N] [--port-offset K] [--no-build] [-- AGENT_ARGS...]
#
#   --agents N       agents to run, 1..9 (default 3); replication factor is
#                    min(3, N) and the cluster forms once all N are up
#   --port-offset K  add K to every port (default 0: agent i, from 0, gets API
#                    port 8080+i on 127.0.0.1, peer port 7070+i, HTTP 9090+i)
#   --no-build       skip installing dependencies and building
#   AGENT_ARGS       passed to every agent (see build/bin/memquorum --help)
#
# Logs go to ./run-logs/ (or $MQ_RUN_DIR), one file per agent. The build
# directory is build/ (or $MQ_BUILD_DIR). Readiness is
# GET /readyz answering 200 on every agent, awaited for $MQ_READY_TIMEOUT
# seconds (default 30). Exit status: 0 after a requested stop, 1 when the
# cluster could not start or an agent died on its own, 2 for usage errors.
set -euo pipefail

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }

agents=3 offset=0 build=1
while (($#)); do
  case $1 in
  --agents) agents=${2:-}; shift 2 || { usage >&2; exit 2; } ;;
  --port-offset) offset=${2:-}; shift 2 || { usage >&2; exit 2; } ;;
  --no-build) build=0; shift ;;
  -h | --help) usage; exit 0 ;;
  --) shift; break ;;
  *) echo "run-cluster: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[[ $agents =~ ^[1-9]$ ]] || { echo "run-cluster: --agents: expected 1..9, got '$agents'" >&2; exit 2; }
if ! [[ $offset =~ ^[0-9]+$ ]] || ((offset > 50000)); then
  echo "run-cluster: --port-offset: expected 0..50000, got '$offset'" >&2; exit 2
fi
extra=("$@")

logdir=${MQ_RUN_DIR:-./run-logs}
mkdir -p "$logdir"
logdir=$(cd "$logdir" && pwd)
ready_timeout=${MQ_READY_TIMEOUT:-30}
cd "$(dirname "$0")/.."

builddir=${MQ_BUILD_DIR:-build}
if ((build)); then
  bash scripts/install-deps.sh >/dev/null
  bash scripts/build.sh "$builddir" >/dev/null
fi
bin=$builddir/bin
[ -x "$bin/memquorum" ] || { echo "run-cluster: $bin/memquorum is missing; build first" >&2; exit 1; }

ids=() api=() peer=() http=()
for ((i = 0; i < agents; i++)); do
  ids+=("n$((i + 1))")
  api+=($((8080 + offset + i)))
  peer+=($((7070 + offset + i)))
  http+=($((9090 + offset + i)))
done
peers=$(for ((i = 0; i < agents; i++)); do printf '%s=127.0.0.1:%s,' "${ids[i]}" "${peer[i]}"; done)
peers=${peers%,}
rf=$((agents < 3 ? agents : 3))

# Fail before starting anything if a port is taken: an agent that cannot
# bind would otherwise only say so in its log.
for p in "${api[@]}" "${peer[@]}" "${http[@]}"; do
  if [ -n "$(ss -Hltn "sport = :$p" 2>/dev/null)" ]; then
    echo "run-cluster: port $p is already in use:" >&2
    ss -Hltnp "sport = :$p" >&2 || true
    echo "run-cluster: stop whatever holds it, or pick other ports with --port-offset" >&2
    exit 1
  fi
done

pids=()
declare -A exited=() # pid -> status, for agents already reaped
stopping=0

# SIGTERM to every agent still running, then wait for each and report how
# it ended. An agent that has not exited after 20 s is killed.
stop_all() {
  local i pid rc deadline
  for pid in "${pids[@]}"; do [ -n "${exited[$pid]:-}" ] || kill -TERM "$pid" 2>/dev/null || true; done
  deadline=$((SECONDS + 20))
  for i in "${!pids[@]}"; do
    pid=${pids[i]}
    [ -n "${exited[$pid]:-}" ] && continue
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      kill -KILL "$pid" 2>/dev/null || true
      echo "run-cluster: ${ids[i]} did not stop within 20 s; killed"
    fi
    rc=0
    wait "$pid" 2>/dev/null || rc=$?
    echo "run-cluster: ${ids[i]} (pid $pid) exited with status $rc"
  done
  pids=()
}

on_signal() {
  ((stopping)) && return
  stopping=1
  echo
  echo "run-cluster: stopping ${agents} agents"
  stop_all
  exit 0
}
trap on_signal INT TERM
# Whatever else ends this script (an error, a failed start) takes the agents
# with it.
trap '((${#pids[@]})) && stop_all >/dev/null 2>&1 || true' EXIT

tails() {
  local i
  for i in "${!ids[@]}"; do
    echo "---- ${ids[i]}: last lines of $logdir/${ids[i]}.log" >&2
    tail -n 15 "$logdir/${ids[i]}.log" >&2 2>/dev/null || true
  done
}

for ((i = 0; i < agents; i++)); do
  # Each agent gets its own session, so Ctrl-C reaches only this script and
  # the agents stop in the order stop_all gives, with their status reported.
  setsid "$bin/memquorum" \
    --node-id "${ids[i]}" --port "${api[i]}" --api-bind 127.0.0.1 \
    --peer-port "${peer[i]}" --http-port "${http[i]}" --advertise 127.0.0.1 \
    --peers "$peers" --replication-factor "$rf" --bootstrap-expect "$agents" \
    "${extra[@]}" >"$logdir/${ids[i]}.log" 2>&1 </dev/null &
  pids+=($!)
done

echo "run-cluster: started ${agents} agents (logs in $logdir), waiting up to ${ready_timeout}s for /readyz"
deadline=$((SECONDS + ready_timeout))
for ((i = 0; i < agents; i++)); do
  until curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:${http[i]}/readyz" 2>/dev/null; do
    if ! kill -0 "${pids[i]}" 2>/dev/null; then
      rc=0
      wait "${pids[i]}" || rc=$?
      exited[${pids[i]}]=$rc
      echo "run-cluster: ${ids[i]} exited with status $rc before it was ready" >&2
      tails
      exit 1
    fi
    if ((SECONDS >= deadline)); then
      echo "run-cluster: not ready after ${ready_timeout}s: ${ids[i]} (http://127.0.0.1:${http[i]}/readyz):" >&2
      curl -sS --max-time 1 "http://127.0.0.1:${http[i]}/readyz" >&2 2>&1 || true
      echo >&2
      tails
      exit 1
    fi
    sleep 0.2
  done
done

echo "run-cluster: ready"
echo
printf '  %-4s %-8s %-17s %-17s %s\n' node pid api peer http
for ((i = 0; i < agents; i++)); do
  printf '  %-4s %-8s %-17s %-17s %s\n' "${ids[i]}" "${pids[i]}" "127.0.0.1:${api[i]}" \
    "127.0.0.1:${peer[i]}" "127.0.0.1:${http[i]}"
done
cat <<MSG

Any agent serves any key. Try, from another terminal:
  $bin/mqctl --endpoint 127.0.0.1:${api[0]} put user:123:session hello
  $bin/mqctl --endpoint 127.0.0.1:${api[agents - 1]} get user:123:session
  $bin/mqctl --endpoint 127.0.0.1:${api[0]} status        (leader and replicas of every shard)
  $bin/mqctl --endpoint 127.0.0.1:${api[agents - 1]} watch --prefix user:
  grpcurl -plaintext 127.0.0.1:${api[0]} list
  curl -s 127.0.0.1:${http[0]}/metrics
  curl -s 127.0.0.1:${http[0]}/readyz
  tail -f $logdir/*.log
Ctrl-C stops all ${agents}.
MSG

# Wake on a signal (the trap stops everything and exits 0) or when an agent
# exits on its own, which is reported and ends the run with status 1.
while :; do
  rc=0
  dead=
  wait -n -p dead "${pids[@]}" || rc=$?
  [ -n "$dead" ] || continue # woken by a signal whose trap did not exit
  stopping=1
  exited[$dead]=$rc
  for i in "${!pids[@]}"; do
    [ "${pids[i]}" = "$dead" ] &&
      echo "run-cluster: ${ids[i]} (pid $dead) exited on its own with status $rc; stopping the rest" >&2
  done
  tails
  stop_all
  exit 1
done
