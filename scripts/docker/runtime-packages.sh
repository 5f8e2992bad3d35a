#!/usr/bin/env bash
# Prints, one per line, the Debian packages that hold the shared libraries
# the given binaries load (ldd), so an image's runtime stage installs exactly
# those: a library the agent starts linking brings its package along, and one
# it stops linking takes its package out.
#
#   scripts/docker/runtime-packages.sh BINARY...
#
# Run where the binaries were built (the Dockerfile's build stage), against
# the same Debian release as the runtime. Fails if a binary needs a library
# that is not found or that no installed package owns.
set -euo pipefail
(($#)) || { echo "usage: $0 BINARY..." >&2; exit 2; }

out=$(ldd "$@")
if grep -q 'not found' <<<"$out"; then
  echo "runtime-packages: missing libraries:" >&2
  grep 'not found' <<<"$out" >&2
  exit 1
fi

# Bookworm is merged-/usr, but dpkg records each file under the directory its
# package ships it in: ask for the path ldd printed, its /usr twin, and the
# file it resolves to.
owner() {
  local p
  for p in "$1" "/usr$1" "${1#/usr}" "$(readlink -f "$1")" "/usr$(readlink -f "$1")"; do
    [ -n "$p" ] || continue
    dpkg-query -S "$p" 2>/dev/null | awk -F': ' 'NR == 1 { print $1 }' && return 0
  done
  return 1
}

libs=$(awk '$2 == "=>" && $3 ~ /^\// { print $3 }' <<<"$out" | sort -u)
pkgs=()
for lib in $libs; do
  pkg=$(owner "$lib") || true
  [ -n "$pkg" ] || { echo "runtime-packages: no package owns $lib" >&2; exit 1; }
  # One path may be owned by several packages ("a, b"); any of them serves.
  pkgs+=("${pkg%%,*}")
done
printf '%s\n' "${pkgs[@]}" | sort -u
