#!/usr/bin/env bash
# Builds the MemQuorum image on a local Docker engine and tests it
# (tests/image), from nothing: what CI runs on a fresh clone, as root.
#
#   scripts/docker/test-image.sh
#
# Steps, each timed:
#   engine      scripts/docker/engine.sh start (installs docker.io, starts
#               dockerd) unless an engine already answers
#   base image  scripts/docker/base-image.sh: debian:12-slim by debootstrap,
#               skipped when it exists
#   image       tests/image/imagebuild.py: docker build, skipped when an image
#               of the same inputs exists
#   tests       python3 -m pytest tests/image
# then stops the engine if this script started it (after any other user of
# it has finished; see engine.sh), and prints a summary with the timings and
# the image's figures. Exit status 0 only if every step passed.
#
# MQ_IMAGE_KEEP=0 removes the built image at the end (default: kept as the
# cache of the next run). Build log: $MQ_IMAGE_BUILD_LOG (default a file in
# the run's temporary directory, printed on failure).
set -euo pipefail
cd "$(dirname "$0")/../.."

run_dir=${MQ_ENGINE_RUN:-/run/memquorum-engine}
tmp=$(mktemp -d /tmp/mq-test-image.XXXXXX)
export MQ_IMAGE_REPORT=$tmp/figures.json
export MQ_IMAGE_BUILD_LOG=${MQ_IMAGE_BUILD_LOG:-$tmp/build.log}
export PYTHONDONTWRITEBYTECODE=1

summary=()
failed=0
blocked=
t_all=$SECONDS
step() { # step NAME COMMAND...: runs it unless an earlier step it needs failed
  local name=$1; shift
  echo "=== $name"
  if [ -n "$blocked" ]; then
    summary+=("FAIL  $name (not run: $blocked failed)")
    failed=$((failed + 1))
    return 1
  fi
  local t0=$SECONDS
  if "$@"; then
    summary+=("PASS  $name ($((SECONDS - t0)) s)")
  else
    summary+=("FAIL  $name ($((SECONDS - t0)) s)")
    failed=$((failed + 1))
    return 1
  fi
}

started=0
users_fd=
finish() {
  local rc=$?
  [ -z "$users_fd" ] || exec {users_fd}>&-
  if ((started)); then
    local t0=$SECONDS
    if bash scripts/docker/engine.sh stop; then
      summary+=("PASS  engine stop ($((SECONDS - t0)) s)")
    else
      summary+=("FAIL  engine stop ($((SECONDS - t0)) s)")
      failed=$((failed + 1))
    fi
  fi
  echo
  echo "---- test-image summary"
  printf '%s\n' "${summary[@]}"
  if [ -s "$MQ_IMAGE_REPORT" ]; then
    python3 - "$MQ_IMAGE_REPORT" <<'EOF' || true
import json, sys
f = json.load(open(sys.argv[1]))
mb = f.get("image_bytes", 0) / 1e6
built = f.get("build_seconds")
print(f"image        {f.get('image')}: {mb:.1f} MB, "
      + (f"built in {built} s (build network {f.get('build_network')})" if built is not None
         else "reused (built earlier from the same inputs)"))
print(f"engine       docker {f.get('engine')}")
for key, what in (("seconds_to_healthy", "start to healthy"),
                  ("docker_stop_seconds_single", "docker stop -t 20, lone agent"),
                  ("docker_stop_seconds_one_of_three", "docker stop -t 20, one agent leaving a cluster"),
                  ("docker_stop_seconds_rest_of_cluster", "docker stop -t 20, last two agents together")):
    if key in f:
        print(f"{what:47s} {f[key]} s")
EOF
  fi
  echo "total $((SECONDS - t_all)) s"
  local pass=$((${#summary[@]} - failed))
  echo "$pass passed, $failed failed"
  rm -rf "$tmp"
  ((failed == 0)) && exit "$rc" || exit 1
}
trap finish EXIT

if ! python3 -c 'import pytest' 2>/dev/null; then
  python3 -m pip install -q --disable-pip-version-check pytest
fi

engine_start() {
  local out
  out=$(bash scripts/docker/engine.sh start 2>&1) || { echo "$out"; return 1; }
  echo "$out"
  if grep -q '^engine: started:' <<<"$out"; then started=1; fi
  # Tell a concurrent run's `engine.sh stop` that this run uses the engine.
  exec {users_fd}>"$run_dir/users.lock"
  flock -s "$users_fd"
}
step "engine" engine_start || blocked=engine
step "base image" bash scripts/docker/base-image.sh || blocked=${blocked:-"base image"}
image_build() {
  python3 tests/image/imagebuild.py || { tail -n 40 "$MQ_IMAGE_BUILD_LOG" 2>/dev/null; return 1; }
}
step "image build" image_build || blocked=${blocked:-"image build"}
step "tests/image" python3 -m pytest -q tests/image || true
