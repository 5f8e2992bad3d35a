#!/usr/bin/env bash
# Runs the nemesis (tests/nemesis/test_nemesis.py) for MINUTES minutes of
# faults with SEED (default: a random one), against the agent of
# MQ_BUILD_DIR (default: build/), and prints its summary: the seed, the
# operations by kind and outcome, the faults injected by kind and the
# result of each check. Needs root (network namespaces).
#   bash tests/nemesis/soak.sh MINUTES [SEED]
set -euo pipefail
if (($# < 1 || $# > 2)) || ! [[ $1 =~ ^[0-9]+$ ]] || (($1 < 1)); then
  echo "usage: bash tests/nemesis/soak.sh MINUTES [SEED]" >&2
  exit 2
fi
minutes=$1
seed=${2:-$((RANDOM * 32768 + RANDOM + 1))}
here=$(cd "$(dirname "$0")" && pwd)
export MQ_BUILD_DIR=${MQ_BUILD_DIR:-$here/../../build}
export NEMESIS_SECONDS=$((minutes * 60))
export NEMESIS_SEED=$seed
export PYTHONDONTWRITEBYTECODE=1
echo "soak: $minutes minutes of nemesis, seed $seed"
cd "$here"
rc=0
python3 -m pytest -q -s test_nemesis.py || rc=$?
echo "soak: seed $seed, $minutes minutes: $([[ $rc == 0 ]] && echo PASS || echo "FAIL (pytest exit $rc)")"
exit "$rc"
