#!/usr/bin/env bash
# Starts each real service in a temp directory, does one real round trip
# with it, stops it, and checks that nothing it started is left running.
#   Kafka:   3-partition topic, 10 records produced and consumed back;
#            a restart keeps the port and the topic.
#   Nacos:   with auth: login, an unauthenticated call refused, an
#            ephemeral instance registered and listed, then deregistered.
#   dnsmasq: one name with two A records on a loopback address, then a
#            changed set after a reload, then SRV records.
# Exits non-zero if anything fails. Run scripts/install-services.sh first.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/mq-services-selftest.XXXXXX")
summary=()
failed=0

cleanup() {
  set +e
  [ -d "$tmp/kafka" ] && "$here/kafka.sh" stop "$tmp/kafka"
  [ -d "$tmp/nacos" ] && "$here/nacos.sh" stop "$tmp/nacos"
  [ -d "$tmp/dns" ] && "$here/dnsmasq.sh" stop "$tmp/dns"
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() { # step NAME FUNCTION
  local name=$1 t0=$SECONDS pid
  echo "=== $name"
  # In the background and waited for, not in `if`: inside an if condition
  # bash ignores set -e, and a failing command would not end the step.
  "$2" &
  pid=$!
  if wait "$pid"; then
    summary+=("PASS  $name ($((SECONDS - t0)) s)")
  else
    summary+=("FAIL  $name ($((SECONDS - t0)) s)")
    failed=$((failed + 1))
  fi
}

fail() { echo "selftest: $*" >&2; return 1; }

# ---------------------------------------------------------------- Kafka

kafka() {
  local out bootstrap
  out=$("$here/kafka.sh" start "$tmp/kafka")
  echo "$out"
  bootstrap=${out#KAFKA_BOOTSTRAP=}
  [[ $bootstrap =~ ^127\.0\.0\.1:[0-9]+$ ]] || fail "start printed [$out]"
  "$here/kafka.sh" create-topic "$tmp/kafka" selftest 3
  python3 "$here/kafka_client.py" roundtrip "$bootstrap" selftest 10
  out=$("$here/kafka.sh" restart "$tmp/kafka")
  [ "$out" = "KAFKA_BOOTSTRAP=$bootstrap" ] || fail "restart printed [$out], not KAFKA_BOOTSTRAP=$bootstrap"
  # The topic survived with its 3 partitions (an auto-created one would
  # have 1), and records still go round.
  "$here/kafka.sh" create-topic "$tmp/kafka" selftest 3
  python3 "$here/kafka_client.py" roundtrip "$bootstrap" selftest 10
  "$here/kafka.sh" stop "$tmp/kafka"
}

# ---------------------------------------------------------------- Nacos

json_get() { # KEY < JSON: prints the top-level value of KEY
  python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"
}

nacos() {
  local out addr user pass tok base code list
  out=$("$here/nacos.sh" start "$tmp/nacos" --auth)
  echo "$out"
  addr=$(sed -n 's/^NACOS_ADDR=//p' <<<"$out")
  user=$(sed -n 's/^NACOS_USER=//p' <<<"$out")
  pass=$(sed -n 's/^NACOS_PASSWORD=//p' <<<"$out")
  [[ -n $addr && -n $user && -n $pass ]] || fail "start printed [$out]"
  base="http://$addr/nacos/v1"
  code=$(curl -s -o /dev/null -w '%{http_code}' "$base/ns/instance/list?serviceName=selftest")
  [ "$code" = 403 ] || fail "a call without a token answered $code, not 403"
  tok=$(curl -sf -X POST "$base/auth/login" --data-urlencode "username=$user" \
    --data-urlencode "password=$pass" | json_get accessToken)
  [ -n "$tok" ] || fail "login gave no accessToken"
  out=$(curl -sf -X POST "$base/ns/instance?accessToken=$tok" -d serviceName=selftest \
    -d ip=10.9.8.7 -d port=7070 -d ephemeral=true --data-urlencode 'metadata={"node_id":"n1"}')
  [ "$out" = ok ] || fail "register answered [$out]"
  list=$(curl -sf "$base/ns/instance/list?serviceName=selftest&healthyOnly=true&accessToken=$tok")
  echo "list: $list"
  python3 -c '
import json, sys
hosts = json.loads(sys.argv[1])["hosts"]
assert [(h["ip"], h["port"], h["metadata"]["node_id"]) for h in hosts] == [("10.9.8.7", 7070, "n1")], hosts
' "$list" || fail "the registered instance is not listed"
  out=$(curl -sf -X DELETE "$base/ns/instance?serviceName=selftest&ip=10.9.8.7&port=7070&ephemeral=true&accessToken=$tok")
  [ "$out" = ok ] || fail "deregister answered [$out]"
  list=$(curl -sf "$base/ns/instance/list?serviceName=selftest&accessToken=$tok")
  [ "$(json_get hosts <<<"$list")" = "[]" ] || fail "instance still listed after deregister: $list"
  "$here/nacos.sh" stop "$tmp/nacos"
}

# ---------------------------------------------------------------- DNS

dns() {
  local port got name=memquorum-peers.memquorum.svc.cluster.local
  port=$(mq_free_ports 1)
  "$here/dnsmasq.sh" start "$tmp/dns" 127.0.0.1 "$port"
  "$here/dnsmasq.sh" set "$tmp/dns" "$name" 10.9.0.1 10.9.0.2
  got=$(dig +short +time=1 +tries=2 -p "$port" @127.0.0.1 "$name" | sort | tr '\n' ' ')
  echo "$name -> $got"
  [ "$got" = "10.9.0.1 10.9.0.2 " ] || fail "resolved [$got]"
  "$here/dnsmasq.sh" set "$tmp/dns" "$name" 10.9.0.2 10.9.0.3 10.9.0.4
  got=$(dig +short +time=1 +tries=2 -p "$port" @127.0.0.1 "$name" | sort | tr '\n' ' ')
  echo "after set: $name -> $got"
  [ "$got" = "10.9.0.2 10.9.0.3 10.9.0.4 " ] || fail "resolved [$got] after set"
  "$here/dnsmasq.sh" set-srv "$tmp/dns" "_peer._tcp.$name" 7070 "pod-0.$name" "pod-1.$name"
  got=$(dig +short +time=1 +tries=2 -p "$port" @127.0.0.1 "_peer._tcp.$name" SRV | sort | tr '\n' ' ')
  echo "SRV _peer._tcp.$name -> $got"
  [ "$got" = "0 10 7070 pod-0.$name. 0 10 7070 pod-1.$name. " ] || fail "SRV resolved [$got]"
  "$here/dnsmasq.sh" stop "$tmp/dns"
}

# ---------------------------------------------------------------- leftovers

leftovers() {
  # Every process a script here starts names $tmp on its command line.
  local pids
  pids=$(pgrep -f -- "$tmp" || true)
  if [ -n "$pids" ]; then
    # shellcheck disable=SC2086
    ps -o pid,stat,args -p $pids >&2
    fail "processes left running"
  fi
  echo "no process of this run is left"
}

step "kafka: 10 records over 3 partitions, restart" kafka
step "nacos: login, register, list, deregister" nacos
step "dnsmasq: two A records, changed by set; SRV" dns
step "nothing left running" leftovers

echo
printf '%s\n' "${summary[@]}"
echo "$(( ${#summary[@]} - failed )) passed, $failed failed"
[ "$failed" -eq 0 ]
