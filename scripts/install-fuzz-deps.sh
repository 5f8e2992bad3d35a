#!/usr/bin/env bash
# Installs what the libFuzzer build (tests/fuzz, -DMQ_FUZZ=ON) needs on top
# of scripts/install-deps.sh: Debian's clang and its compiler runtime, which
# holds libFuzzer and the sanitizer runtimes clang links. Idempotent: when
# everything is present it only checks.
set -euo pipefail

# Debian 12 (bookworm) ships clang 14; libclang-rt-14-dev carries
# libclang_rt.fuzzer*.a (without it, -fsanitize=fuzzer fails at link time).
pkgs=(clang libclang-rt-14-dev)

# What counts is that clang links a fuzzer with the sanitizers, so that is
# the check, before installing and after.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '%s\n' '#include <stddef.h>' '#include <stdint.h>' \
  'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }' \
  >"$tmp/t.c"
links() { clang -fsanitize=fuzzer,address,undefined "$tmp/t.c" -o "$tmp/t" 2>"$tmp/err"; }

if ! command -v clang >/dev/null || ! links; then
  echo "install-fuzz-deps: installing ${pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
fi
if ! links; then
  echo "install-fuzz-deps: clang cannot link a libFuzzer target:" >&2
  cat "$tmp/err" >&2
  exit 1
fi
echo "install-fuzz-deps: ok ($(clang --version | head -1))"
