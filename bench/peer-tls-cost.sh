#!/usr/bin/env bash
# What mutual TLS on the peer links costs the put benchmark:
#   bench/peer-tls-cost.sh [SECONDS]        (or DURATION=S; default 20)
#
# Makes a CA and one agent certificate (subjectAltName DNS:memquorum-peer)
# with openssl, then, ROUNDS times (default 3), plaintext and TLS taking
# turns: three agents on loopback (scripts/run-cluster.sh: 16 shards, RF 3,
# every other setting at its default; with TLS all three present the same
# certificate), SETTLE seconds (default 5) to form, then mqbench puts
# through n1 for SECONDS: 64 in flight, 100-byte values over 10,000 users
# (most shards are led elsewhere at first, so writes are forwarded and
# every write is replicated over the peer links). Prints each round and
# the medians of puts/s and p99 per mode, and how long the agents took to
# report ready (the TLS handshakes of the peer links are part of it).
# Everything started here is stopped on exit; ports are run-cluster's plus
# $MQ_PORT_OFFSET (default 700).
set -euo pipefail
cd "$(dirname "$0")/.."
dur=${1:-${DURATION:-20}}
rounds=${ROUNDS:-3}
settle=${SETTLE:-5}
offset=${MQ_PORT_OFFSET:-700}
builddir=${MQ_BUILD_DIR:-build}
for v in "$dur" "$rounds" "$settle"; do
  [[ $v =~ ^[0-9]+$ ]] || { echo "peer-tls-cost: expected a whole number, got '$v'" >&2; exit 2; }
done
command -v openssl >/dev/null || { echo "peer-tls-cost: needs the openssl command" >&2; exit 2; }

# shellcheck source=bench/lib.sh
. bench/lib.sh
bench_setup "$builddir"

(
  cd "$tmp"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout ca.key -out ca.crt -days 2 -subj /CN=bench-ca 2>/dev/null
  echo "subjectAltName=DNS:memquorum-peer" >san.ext
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout agent.key -out agent.csr -subj /CN=agent 2>/dev/null
  openssl x509 -req -in agent.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
    -out agent.crt -days 2 -extfile san.ext 2>/dev/null
)
tls_args=(--peer-tls-cert "$tmp/agent.crt" --peer-tls-key "$tmp/agent.key"
  --peer-tls-ca "$tmp/ca.crt")

# round MODE N: one cluster, one mqbench run; appends "MODE puts/s p99_us ready_s".
round() {
  local mode=$1 n=$2 dir="$tmp/$1-$2" t0 ready
  mkdir -p "$dir"
  t0=$SECONDS
  if [ "$mode" = tls ]; then
    cluster_up "$dir" "$offset" "$builddir" "${tls_args[@]}"
  else
    cluster_up "$dir" "$offset" "$builddir"
  fi
  ready=$((SECONDS - t0))
  # an agent without TLS warns that its peer traffic is not encrypted
  if grep -q "peer traffic is not encrypted" "$dir/n1.log"; then
    [ "$mode" = plain ] || { echo "peer-tls-cost: n1 runs without TLS" >&2; exit 1; }
  elif [ "$mode" = plain ]; then
    echo "peer-tls-cost: n1 did not warn about plaintext peer links" >&2; exit 1
  fi
  sleep "$settle"
  "$builddir/bin/mqbench" --endpoint "127.0.0.1:$((8080 + offset))" --op put --inflight 64 \
    --keys 10000 --duration "$dur" --quiet >"$dir/mqbench.out"
  cluster_down
  local tput p99
  tput=$(sed -n 's/.*throughput=\([0-9.]*\) ops\/s.*/\1/p' "$dir/mqbench.out")
  p99=$(sed -n 's/.*p99=\([0-9.]*\).*/\1/p' "$dir/mqbench.out")
  printf '%-6s round %d: %9.0f puts/s  p99 %8.0f us  ready after %d s\n' \
    "$mode" "$n" "$tput" "$p99" "$ready"
  echo "$mode $tput $p99" >>"$tmp/results"
}

echo "peer TLS cost: 3 agents, 16 shards, RF 3, mqbench through n1, 64 in flight," \
  "${dur} s x ${rounds} rounds per mode ($(nproc) cores)"
for n in $(seq 1 "$rounds"); do
  round plain "$n"
  round tls "$n"
done
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
for mode in plain tls; do
  t=$(awk -v m="$mode" '$1 == m { print $2 }' "$tmp/results" | median)
  p=$(awk -v m="$mode" '$1 == m { print $3 }' "$tmp/results" | median)
  printf 'median %-6s %9.0f puts/s  p99 %8.0f us\n' "$mode" "$t" "$p"
done
