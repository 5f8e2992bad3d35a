#!/usr/bin/env bash
# The end-to-end tests: pods as containers on private Docker networks
# (e2e/README.md), from nothing, as root.
#
#   bash e2e/run.sh [PYTEST ARGS]     e.g. bash e2e/run.sh -k dns
#
# Starts a Docker engine unless one answers (scripts/docker/engine.sh),
# installs Debian's docker-compose if no compose client is there, builds
# what is missing (scripts/docker/compose.sh images: the debian:12-slim
# base, the agent image, the r-nacos, Kafka and Prometheus images), runs
# python3 -m pytest e2e, and stops the engine if this script started it
# (after any other user of it has finished). Prints the figures at the end;
# $MQ_E2E_REPORT keeps them as JSON.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONDONTWRITEBYTECODE=1
run_dir=${MQ_ENGINE_RUN:-/run/memquorum-engine}
t0=$SECONDS
started=0
users_fd=
finish() {
  local rc=$?
  [ -z "$users_fd" ] || exec {users_fd}>&-
  if ((started)); then bash scripts/docker/engine.sh stop || rc=1; fi
  echo "e2e: $( ((rc == 0)) && echo passed || echo FAILED) in $((SECONDS - t0)) s"
  exit "$rc"
}
trap finish EXIT

for mod in pytest websocket; do
  python3 -c "import $mod" 2>/dev/null ||
    python3 -m pip install -q --disable-pip-version-check \
      "$([ $mod = websocket ] && echo websocket-client || echo $mod)"
done

out=$(bash scripts/docker/engine.sh start 2>&1) || { echo "$out"; exit 1; }
echo "$out"
if grep -q '^engine: started:' <<<"$out"; then started=1; fi
# Tells a concurrent run's `engine.sh stop` that this run uses the engine.
exec {users_fd}>"$run_dir/users.lock"
flock -s "$users_fd"

bash scripts/docker/compose.sh install
# The base, the agent image (also tagged memquorum:latest) and the r-nacos,
# Kafka and Prometheus images; each step skips what is built already.
bash scripts/docker/compose.sh images
echo "e2e: images ready after $((SECONDS - t0)) s"
python3 -m pytest -q e2e "$@"
