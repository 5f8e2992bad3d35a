#!/usr/bin/env bash
# Checks that every C source and header is formatted as .clang-format (and
# the nested ones in agent/core, tests/raft and tools) says. Lists the files
# that are not; `clang-format -i FILE` fixes one.
#   scripts/check-format.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# clang-format is a developer tool, not a build dependency (the image's
# build stage mirrors scripts/install-deps.sh), so it is installed here.
if ! command -v clang-format >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends clang-format >/dev/null ||
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends clang-format >/dev/null; }
fi
bad=()
while IFS= read -r f; do
  clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done < <(git ls-files '*.c' '*.h')
if ((${#bad[@]})); then
  echo "check-format: ${#bad[@]} file(s) differ from .clang-format:" >&2
  printf '  %s\n' "${bad[@]}" >&2
  exit 1
fi
echo "check-format: ok"
