#!/usr/bin/env bash
# Installs what is missing, builds, and runs one agent on the embedded
# default: 16 shards, API on 127.0.0.1:8080, HTTP on :9090, no Nacos, no
# Kafka. Extra arguments go to memquorum (see build/bin/memquorum --help).
# Ctrl-C stops it cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh >/dev/null
bash scripts/build.sh build >/dev/null
cat <<'MSG'
Starting memquorum. Try, from another terminal:
  build/bin/mqctl put user:123:session hello
  build/bin/mqctl get user:123:session
  build/bin/mqctl status
  grpcurl -plaintext localhost:8080 list
  curl localhost:9090/metrics
MSG
exec build/bin/memquorum "$@"
