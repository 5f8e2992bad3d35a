#!/usr/bin/env bash
# Builds MemQuorum and runs every test: unit tests, Raft scenarios and the
# deterministic Raft and cluster simulators, their planted-bug checks, the
# API and feed suites against the real agent, then the whole suite again
# under ASan/UBSan, and a short libFuzzer run of every decoder.
#   scripts/test.sh            everything (what CI runs)
#   QUICK=1 scripts/test.sh    skip the sanitizer pass and the bug checks
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh

summary=()
failed=0
step() { # step NAME COMMAND...
  local name=$1; shift
  echo "=== $name"
  local t0=$SECONDS
  if "$@"; then
    summary+=("PASS  $name ($((SECONDS - t0)) s)")
  else
    summary+=("FAIL  $name ($((SECONDS - t0)) s)")
    failed=$((failed + 1))
  fi
}

# The real servers the discovery (and Kafka) tests start: r-nacos,
# dnsmasq, the Kafka broker jars. Cached after the first run.
step "services (r-nacos, dnsmasq, Kafka)" bash scripts/install-services.sh
step "build" bash scripts/build.sh build
step "format (clang-format)" bash scripts/check-format.sh
step "ctest (build)" ctest --test-dir build --output-on-failure --timeout 900
if [ -x build/bin/raft-sim ]; then
  step "raft-sim 2000 seeds" build/bin/raft-sim --seeds 1-2000
fi
if [ -x build/bin/cluster-sim ]; then
  step "cluster-sim 300 seeds" build/bin/cluster-sim --seeds 1-300
  step "cluster-sim founding 1000 seeds" build/bin/cluster-sim --founding --seeds 1-1000
fi
if [ -f k8s/validate.sh ]; then
  # helm, promtool, shellcheck and the API type checker: validate.sh fails
  # without them, so install (or, when warm, just check) them first.
  step "deployment files (helm, mqcheck, promtool, shellcheck)" \
    bash -c 'bash scripts/install-k8s-tools.sh >/dev/null && bash k8s/validate.sh'
fi
# The image, built on a local Docker engine and tested (tests/image).
step "image (docker)" bash scripts/docker/test-image.sh
# Pods as containers: clusters formed through DNS and through Nacos, faults
# and a rolling image replacement (e2e/README.md).
step "e2e (docker)" bash e2e/run.sh
if [ -z "${QUICK:-}" ]; then
  step "build (asan+ubsan)" bash scripts/build.sh build-asan -DMQ_SANITIZE=address,undefined
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  # The sanitizer pass rolls three agents only (tests/cluster/test_rolling.py)
  # and runs the nemesis for one minute instead of two; the two simulators
  # run right after it over more seeds than their ctest entries.
  step "ctest (asan+ubsan)" env MQ_ROLLING_QUICK=1 NEMESIS_SECONDS=60 \
    ctest --test-dir build-asan --output-on-failure --timeout 1200 -E '^(raft-sim-200|cluster-sim)$'
  if [ -x build-asan/bin/raft-sim ]; then
    step "raft-sim 500 seeds (asan+ubsan)" build-asan/bin/raft-sim --seeds 1-500
  fi
  if [ -x build-asan/bin/cluster-sim ]; then
    step "cluster-sim 100 seeds (asan+ubsan)" build-asan/bin/cluster-sim --seeds 1-100
  fi
  if [ -f tests/raft/check-bugs.sh ]; then
    step "raft planted bugs caught" bash tests/raft/check-bugs.sh
  fi
  if [ -f tests/cluster-sim/check-bugs.sh ]; then
    step "cluster planted bugs caught" bash tests/cluster-sim/check-bugs.sh
  fi
  # libFuzzer over every decoder, briefly; ctest already replays the corpus.
  if [ -f tests/fuzz/run.sh ]; then
    step "fuzz (libFuzzer, 20 s per target)" bash tests/fuzz/run.sh 20
  fi
fi

echo
printf '%s\n' "${summary[@]}"
pass=$(( ${#summary[@]} - failed ))
echo "$pass passed, $failed failed"
[ "$failed" -eq 0 ]
