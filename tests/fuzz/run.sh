#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz into build-fuzz (clang,
# ASan + UBSan) and runs each for SECONDS, one after another, starting from
# its committed corpus (tests/fuzz/corpus/<target>, which is replayed
# first). Prints the executions of each target; exits non-zero if any
# target crashed, with the input saved under build-fuzz/artifacts/<target>/.
#   tests/fuzz/run.sh SECONDS [TARGET...]     e.g. tests/fuzz/run.sh 30
#   RUNS=2000000 tests/fuzz/run.sh 3600       stop each at 2M executions
# New inputs the fuzzer finds go to build-fuzz/corpus/<target>, never into
# the tree. To reproduce a crash: build-fuzz/bin/fuzz_<target> <crash file>.
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ $# -lt 1 ] || ! [[ $1 =~ ^[0-9]+$ ]]; then
  echo "usage: tests/fuzz/run.sh SECONDS [TARGET...]" >&2
  exit 2
fi
seconds=$1
shift
all=(cmd snapshot raft_msg raft_frame props subscribe reqcodec api peer nacos)
targets=("${@:-${all[@]}}")
dir=build-fuzz

bash scripts/install-fuzz-deps.sh >/dev/null
if [ ! -f "$dir/CMakeCache.txt" ]; then
  CC=clang CXX=clang++ cmake -S . -B "$dir" -G Ninja -DMQ_FUZZ=ON \
    -DMQ_SANITIZE=address,undefined >/dev/null
fi
cmake --build "$dir" -j "$(nproc)" --target fuzz_targets >/dev/null

# Findings are crashes: stop at the first error of any sanitizer.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# Per target: the largest input worth trying (the subscribe message is
# capped at 64 KiB by the feed; raft_frame seeds are a few KiB of
# operations; the rest are small binary records).
max_len() {
  case $1 in
    subscribe | nacos) echo 65536 ;;
    api | peer) echo 8192 ;;
    snapshot | raft_frame) echo 16384 ;;
    *) echo 4096 ;;
  esac
}

failed=0
rows=()
for t in "${targets[@]}"; do
  bin=$dir/bin/fuzz_$t
  if [ ! -x "$bin" ]; then
    echo "run.sh: no fuzz target $t (have: ${all[*]})" >&2
    exit 2
  fi
  mkdir -p "$dir/corpus/$t" "$dir/artifacts/$t" "$dir/logs"
  log=$dir/logs/$t.log
  args=(-max_total_time="$seconds" -print_final_stats=1 -timeout=10
        -max_len="$(max_len "$t")" -artifact_prefix="$dir/artifacts/$t/")
  [ -n "${RUNS:-}" ] && args+=(-runs="$RUNS")
  echo "=== fuzz $t (${seconds}s${RUNS:+, at most $RUNS runs})"
  t0=$(date +%s.%N)
  rc=0
  "$bin" "${args[@]}" "$dir/corpus/$t" "tests/fuzz/corpus/$t" >"$log" 2>&1 || rc=$?
  t1=$(date +%s.%N)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", b - a }')
  if [ "$rc" -eq 0 ]; then
    result=ok
  else
    result="CRASH (exit $rc): $(ls -t "$dir/artifacts/$t" | head -1), log $log"
    failed=$((failed + 1))
    grep -m3 -E 'ERROR: |runtime error|fuzz check failed' "$log" || true
  fi
  rows+=("$(printf '%-10s %12s execs %6ss  %s' "$t" "${execs:-?}" "$secs" "$result")")
done

echo
printf '%s\n' "${rows[@]}"
[ "$failed" -eq 0 ]
