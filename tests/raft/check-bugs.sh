#!/bin/sh
# Proves the Raft simulator's checker has teeth: builds mq_core once per
# planted bug (agent/core/bugs.h), each in its own build dir, runs raft-sim
# over seeds 1-500 and expects it to fail. Prints one line per bug with the
# first failing seed and the broken invariant; exits 0 only if every bug
# was caught.
#   tests/raft/check-bugs.sh            (from anywhere; STEPS= to override)
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root" || exit 2
steps=${STEPS:-6000}
missed=0
for n in 1 2 3 4 5 6; do
  case $n in
    1) what="commit a previous-term entry by counting replicas" ;;
    2) what="membership change before a current-term commit" ;;
    3) what="restart under the old incarnation, vote forgotten" ;;
    4) what="snapshot install keeps the conflicting suffix" ;;
    5) what="a command applied twice" ;;
    6) what="recovery from survivors when not provably lossless" ;;
  esac
  dir=build-bug-$n
  if ! cmake -S . -B "$dir" -G Ninja -DMQ_RAFT_BUG=ON -DMQ_RAFT_BUG_ID=$n >"$dir.log" 2>&1 ||
     ! cmake --build "$dir" --target raft-sim >>"$dir.log" 2>&1; then
    echo "bug $n ($what): BUILD FAILED, see $dir.log"
    missed=1
    continue
  fi
  rm -f "$dir.log"
  out=$("$dir/bin/raft-sim" --seeds 1-500 --steps "$steps" --jobs 1 2>&1)
  rc=$?
  line=$(printf '%s\n' "$out" | grep -m1 '^FAIL seed=')
  if [ $rc -ne 0 ] && [ -n "$line" ]; then
    seed=$(printf '%s' "$line" | sed 's/^FAIL seed=\([0-9]*\).*/\1/')
    inv=$(printf '%s' "$line" | sed 's/^[^:]*invariant: //')
    echo "bug $n ($what): caught at seed $seed: $inv"
  else
    echo "bug $n ($what): NOT CAUGHT in seeds 1-500"
    missed=1
  fi
done
exit $missed
