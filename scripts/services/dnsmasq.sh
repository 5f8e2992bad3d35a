#!/usr/bin/env bash
# A real DNS server for the headless-Service discovery tests: dnsmasq
# answering only from files in DIR, the way a Kubernetes headless Service
# name resolves to one A record per pod.
#
#   dnsmasq.sh start DIR LISTEN_ADDR [PORT]
#       listens on LISTEN_ADDR:PORT (53) only, UDP and TCP; no upstream
#       servers, no /etc/hosts: A records come from DIR/hosts, SRV records
#       from DIR/srv.conf; every other name is NXDOMAIN. Prints
#       DNS_SERVER=LISTEN_ADDR:PORT once it answers. Run it under
#       `ip netns exec NS` to serve inside a network namespace.
#   dnsmasq.sh set DIR NAME [IP...]
#       replaces NAME's A records (none: NAME is removed), SIGHUPs dnsmasq
#       so it re-reads DIR/hosts, and waits until it answers with the new set
#   dnsmasq.sh set-srv DIR SRV_NAME PORT TARGET[:PORT]...
#       replaces SRV_NAME's SRV records (one per TARGET, on PORT unless the
#       TARGET names its own) and
#       restarts dnsmasq on the same address: SIGHUP does not re-read SRV
#       records (they are configuration, not a hosts file)
#   dnsmasq.sh query DIR NAME [TYPE]
#       asks DIR's server (from inside its network namespace) with dig
#   dnsmasq.sh stop DIR
#
# Answers carry TTL 0 so resolvers re-ask after every change.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
}

need() {
  command -v dnsmasq >/dev/null || [ -x /usr/sbin/dnsmasq ] ||
    mq_die "dnsmasq is missing: run scripts/install-services.sh"
  command -v dig >/dev/null || mq_die "dig is missing: run scripts/install-services.sh"
}

absdir() { # DIR -> absolute path of an existing DIR
  [ -d "$1" ] || mq_die "no such directory: $1"
  (cd "$1" && pwd)
}

# The pid's command line contains this, so stop never signals another
# dnsmasq (the system's, or one of another test).
match_of() { echo "--addn-hosts=$1/hosts"; }

# dig_in DIR ARGS...: dig against DIR's server from inside the network
# namespace dnsmasq runs in (nsenter when that is not ours).
dig_in() {
  local dir=$1 pid addr port
  shift
  pid=$(mq_pid_alive "$dir/dnsmasq.pid" "$(match_of "$dir")") || mq_die "no dnsmasq runs for $dir"
  read -r addr port <"$dir/listen"
  if [ /proc/self/ns/net -ef "/proc/$pid/ns/net" ]; then
    dig +time=1 +tries=1 -p "$port" "@$addr" "$@"
  else
    nsenter -t "$pid" -n dig +time=1 +tries=1 -p "$port" "@$addr" "$@"
  fi
}

launch() { # DIR ADDR PORT: starts dnsmasq, waits until it answers
  local dir=$1 addr=$2 port=$3 pid deadline
  local bin
  bin=$(command -v dnsmasq || echo /usr/sbin/dnsmasq)
  # --conf-file=/dev/null: not the system's /etc/dnsmasq.conf.
  # --bind-interfaces + --listen-address: bind that address only (no
  #   wildcard socket, no loopback unless asked), so several servers can run
  #   side by side on one machine, each on its own address.
  # --no-resolv --no-poll --no-hosts: no upstream, no /etc/hosts.
  # --local=/#/: every name is ours; unknown names get NXDOMAIN at once
  #   instead of REFUSED (no upstream) that resolvers would retry.
  # --user: stay the caller, so dnsmasq can re-read DIR/hosts on SIGHUP
  #   (as "nobody" it could not read a private temp directory).
  "$bin" --keep-in-foreground --conf-file=/dev/null \
    --listen-address="$addr" --bind-interfaces --port="$port" \
    --no-resolv --no-poll --no-hosts --local=/#/ \
    --addn-hosts="$dir/hosts" --conf-file="$dir/srv.conf" \
    --local-ttl=0 --no-negcache --user="$(id -un)" --group="$(id -gn)" \
    --pid-file="$dir/dnsmasq.ownpid" --log-facility="$dir/dnsmasq.log" \
    ${DNSMASQ_LOG_QUERIES:+--log-queries} \
    </dev/null >>"$dir/dnsmasq.out" 2>&1 &
  pid=$!
  echo "$pid" >"$dir/dnsmasq.pid"
  deadline=$((SECONDS + 10))
  # dig exits 0 on any answer, NXDOMAIN included; 9 when nobody answered.
  until dig +time=1 +tries=1 -p "$port" "@$addr" memquorum-probe.invalid >/dev/null 2>&1; do
    if ! mq_running "$pid" || ((SECONDS >= deadline)); then
      cat "$dir/dnsmasq.out" >&2 || true
      mq_stop_pid "$dir/dnsmasq.pid" "$(match_of "$dir")" 5
      mq_die "dnsmasq on $addr:$port did not start"
    fi
    sleep 0.1
  done
}

start() {
  local dir=$1 addr=$2 port=${3:-53}
  need
  mkdir -p "$dir"
  dir=$(absdir "$dir")
  if mq_pid_alive "$dir/dnsmasq.pid" "$(match_of "$dir")" >/dev/null; then
    mq_die "dnsmasq for $dir still runs (pid $(cat "$dir/dnsmasq.pid")); stop it first"
  fi
  [ -f "$dir/hosts" ] || : >"$dir/hosts"
  [ -f "$dir/srv.conf" ] || : >"$dir/srv.conf"
  echo "$addr $port" >"$dir/listen"
  # Remember the named network namespace we run in (ip netns exec), so a
  # restart by set-srv from elsewhere comes back in the same one.
  rm -f "$dir/netns"
  local ns
  for ns in /run/netns/*; do
    if [ -e "$ns" ] && [ "$ns" -ef /proc/self/ns/net ]; then echo "$ns" >"$dir/netns"; fi
  done
  launch "$dir" "$addr" "$port"
  echo "DNS_SERVER=$addr:$port"
}

# expect DIR NAME TYPE WANT: waits up to 5 s until dig's sorted short answer
# for NAME equals WANT (newline-separated, sorted).
expect() {
  local dir=$1 name=$2 type=$3 want=$4 got deadline=$((SECONDS + 5))
  while :; do
    got=$(dig_in "$dir" +short "$name" "$type" | sort)
    [ "$got" = "$want" ] && return 0
    ((SECONDS < deadline)) || break
    sleep 0.1
  done
  mq_die "after the reload $name $type answers [${got//$'\n'/ }], not [${want//$'\n'/ }]"
}

set_a() {
  local dir name pid ip
  dir=$(absdir "$1")
  name=$2
  shift 2
  pid=$(mq_pid_alive "$dir/dnsmasq.pid" "$(match_of "$dir")") || mq_die "no dnsmasq runs for $dir"
  for ip in "$@"; do
    [[ $ip =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ ]] || mq_die "not an IPv4 address: $ip"
  done
  # Rewrite into a new file and rename it over the old, so a reload never
  # reads a half-written file.
  {
    awk -v n="$name" '$2 != n' "$dir/hosts"
    for ip in "$@"; do echo "$ip $name"; done
  } >"$dir/hosts.new"
  mv "$dir/hosts.new" "$dir/hosts"
  kill -HUP "$pid"
  expect "$dir" "$name" A "$(printf '%s\n' "$@" | sed '/^$/d' | sort)"
}

# TARGET[:PORT] -> TARGET; TARGET[:PORT] DEFAULT -> PORT or DEFAULT.
srv_target() { echo "${1%%:*}"; }
srv_port() {
  local p=$2
  [[ $1 == *:* ]] && p=${1##*:}
  [[ $p =~ ^[0-9]+$ ]] || mq_die "not a port: $p"
  echo "$p"
}

set_srv() {
  local dir srv port target addr lport
  dir=$(absdir "$1")
  if [ -f "$dir/netns" ] && ! [ "$(cat "$dir/netns")" -ef /proc/self/ns/net ]; then
    exec nsenter --net="$(cat "$dir/netns")" "$0" set-srv "$dir" "${@:2}"
  fi
  srv=$2
  port=$3
  shift 3
  [[ $port =~ ^[0-9]+$ ]] || mq_die "not a port: $port"
  for target in "$@"; do srv_port "$target" "$port" >/dev/null; done
  mq_pid_alive "$dir/dnsmasq.pid" "$(match_of "$dir")" >/dev/null || mq_die "no dnsmasq runs for $dir"
  {
    grep -v "^srv-host=$srv," "$dir/srv.conf" || true
    # srv-host=NAME,TARGET,PORT,PRIORITY,WEIGHT
    for target in "$@"; do echo "srv-host=$srv,$(srv_target "$target"),$(srv_port "$target" "$port"),0,10"; done
  } >"$dir/srv.conf.new"
  mv "$dir/srv.conf.new" "$dir/srv.conf"
  read -r addr lport <"$dir/listen"
  mq_stop_pid "$dir/dnsmasq.pid" "$(match_of "$dir")" 5
  launch "$dir" "$addr" "$lport"
  local want=""
  for target in "$@"; do want+="0 10 $(srv_port "$target" "$port") $(srv_target "$target")."$'\n'; done
  expect "$dir" "$srv" SRV "$(printf '%s' "$want" | sed '/^$/d' | sort)"
}

cmd=${1:-}
[ $# -ge 1 ] && shift
case $cmd in
  start) (($# >= 2 && $# <= 3)) || usage; start "$@" ;;
  set) [ $# -ge 2 ] || usage; set_a "$@" ;;
  set-srv) [ $# -ge 4 ] || usage; set_srv "$@" ;;
  query) (($# >= 2 && $# <= 3)) || usage; d=$(absdir "$1"); dig_in "$d" +short "$2" "${3:-A}" ;;
  stop)
    [ $# -eq 1 ] || usage
    d=$(absdir "$1")
    mq_stop_pid "$d/dnsmasq.pid" "$(match_of "$d")" 10
    ;;
  *) usage ;;
esac
