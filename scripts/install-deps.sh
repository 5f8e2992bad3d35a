#!/usr/bin/env bash
# Installs every build and test dependency of MemQuorum from Debian's
# packages and PyPI. Idempotent: when everything is present it only checks.
set -euo pipefail

pkgs=(
  build-essential cmake ninja-build pkg-config
  libgrpc-dev libgrpc++-dev protobuf-compiler-grpc
  protobuf-compiler libprotobuf-dev protobuf-c-compiler libprotobuf-c-dev
  librdkafka-dev libcurl4-openssl-dev libwebsockets-dev libjsmn-dev
  libssl-dev zlib1g-dev libmimalloc-dev
  iproute2 iptables procps psmisc curl
)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

py=${PYTHON:-python3}
if ! "$py" -c 'import grpc, grpc_tools, grpc_reflection, grpc_health, pytest, websocket' 2>/dev/null; then
  echo "install-deps: installing Python test packages"
  "$py" -m pip install -q --disable-pip-version-check \
    'grpcio>=1.51' 'grpcio-tools>=1.51' 'grpcio-reflection>=1.51' 'grpcio-health-checking>=1.51' \
    'protobuf>=4.21' pytest websocket-client
fi
echo "install-deps: ok"
command -v grpcurl || GOBIN=/usr/local/bin go install github.com/fullstorydev/grpcurl/cmd/grpcurl@latest
