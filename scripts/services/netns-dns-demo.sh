#!/usr/bin/env bash
# Proves, end to end, the DNS set-up the discovery tests use: agents in
# network namespaces whose /etc/netns/<ns>/resolv.conf points at a dnsmasq
# that serves a headless-Service-style name with one A record per agent.
#
#   ns mqd<pid>-1  10.213.X.2/24 --+
#   ns mqd<pid>-2  10.213.X.3/24 --+-- br0 10.213.X.1/24 in ns mqd<pid>-br,
#                                      dnsmasq listening there on port 53
#
# X is picked so the /24 overlaps no address or route of this machine. The
# bridge lives in its own namespace so the root namespace's firewall (FORWARD
# DROP where Docker is installed) has no say. From inside each agent
# namespace, getent, Python's getaddrinfo and dig (through resolv.conf, no
# server named) must return both agent addresses; after `dnsmasq.sh set`
# changes the records they must return the new set. Then everything this
# script created is removed (only that: namespaces, /etc/netns entries, the
# dnsmasq it started, its temp dir). Needs root. Exit 0 means it all held.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

[ "$(id -u)" -eq 0 ] || mq_die "needs root (network namespaces)"
for t in ip dnsmasq dig getent nsenter; do
  command -v "$t" >/dev/null || [ -x "/usr/sbin/$t" ] || mq_die "$t is missing: run scripts/install-services.sh"
done

tag=mqd$$
brns=$tag-br
agents=("$tag-1" "$tag-2")
name=memquorum-peers.memquorum.svc.cluster.local
work=$(mktemp -d "${TMPDIR:-/tmp}/netns-dns-demo.XXXXXX")
created_ns=()
created_etc=()
etc_netns_existed=false
[ -d /etc/netns ] && etc_netns_existed=true

cleanup() {
  local rc=$? ns
  set +e
  [ -f "$work/dns/dnsmasq.pid" ] && "$here/dnsmasq.sh" stop "$work/dns"
  for ns in "${created_ns[@]}"; do ip netns del "$ns"; done
  for d in "${created_etc[@]}"; do rm -rf "$d"; done
  $etc_netns_existed || rmdir /etc/netns 2>/dev/null
  rm -rf "$work"
  if ((rc == 0)); then echo "netns-dns-demo: PASS (cleaned up)"; else echo "netns-dns-demo: FAIL (cleaned up)" >&2; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A 10.213.X.0/24 that no address or route of the root namespace touches.
subnet=$(python3 - <<'PY'
import ipaddress, subprocess
taken = []
for args in (["-4", "-o", "addr", "show"], ["-4", "route", "show", "table", "all"]):
    out = subprocess.run(["ip", *args], capture_output=True, text=True).stdout
    for tok in out.split():
        try:
            n = ipaddress.ip_network(tok, strict=False)
        except ValueError:
            continue
        if n.prefixlen > 0:
            taken.append(n)
for x in range(0, 256):
    net = ipaddress.ip_network(f"10.213.{x}.0/24")
    if not any(net.overlaps(t) for t in taken):
        print(f"10.213.{x}")
        break
PY
)
[ -n "$subnet" ] || mq_die "no free 10.213.X.0/24"
dns_addr=$subnet.1
echo "netns-dns-demo: subnet $subnet.0/24, namespaces $brns ${agents[*]}"

ip netns add "$brns"
created_ns+=("$brns")
ip -n "$brns" link set lo up
ip -n "$brns" link add br0 type bridge
ip -n "$brns" addr add "$dns_addr/24" dev br0
ip -n "$brns" link set br0 up

want=()
for i in "${!agents[@]}"; do
  ns=${agents[$i]}
  addr=$subnet.$((i + 2))
  want+=("$addr")
  ip netns add "$ns"
  created_ns+=("$ns")
  ip -n "$ns" link set lo up
  # Made inside the bridge namespace, its peer moved straight into the
  # agent's: no interface ever appears in the root namespace.
  ip -n "$brns" link add "veth$i" type veth peer name eth0 netns "$ns"
  ip -n "$brns" link set "veth$i" master br0 up
  ip -n "$ns" addr add "$addr/24" dev eth0
  ip -n "$ns" link set eth0 up
  # `ip netns exec NS` bind-mounts /etc/netns/NS/resolv.conf over
  # /etc/resolv.conf for the command it runs.
  mkdir -p "/etc/netns/$ns"
  created_etc+=("/etc/netns/$ns")
  printf 'nameserver %s\noptions timeout:1 attempts:2\n' "$dns_addr" >"/etc/netns/$ns/resolv.conf"
done

ip netns exec "$brns" "$here/dnsmasq.sh" start "$work/dns" "$dns_addr"
echo "netns-dns-demo: dnsmasq listens on:"
ip netns exec "$brns" ss -H -lnup | awk '{print "  udp " $4}'
ip netns exec "$brns" ss -H -lntp | awk '{print "  tcp " $4}'
"$here/dnsmasq.sh" set "$work/dns" "$name" "${want[@]}"

# lookup NS: the name's IPv4 addresses as seen from inside NS, by three
# resolvers, each sorted on one line.
check_all() {
  local expect ns got how
  expect=$(printf '%s\n' "$@" | sort | tr '\n' ' ')
  for ns in "${agents[@]}"; do
    for how in getent python dig; do
      case $how in
        getent) got=$(ip netns exec "$ns" getent ahostsv4 "$name" | awk '$2 == "STREAM" {print $1}') ;;
        python) got=$(ip netns exec "$ns" python3 -c 'import socket, sys
print("\n".join(sorted({a[4][0] for a in socket.getaddrinfo(sys.argv[1], 7070, socket.AF_INET, socket.SOCK_STREAM)})))' "$name") ;;
        dig) got=$(ip netns exec "$ns" dig +short +search "$name" A) ;;
      esac
      got=$(printf '%s\n' "$got" | sort | tr '\n' ' ')
      echo "  in $ns, $how: $got"
      [ "$got" = "$expect" ] || mq_die "in $ns, $how resolved [$got], want [$expect]"
    done
  done
}

echo "netns-dns-demo: $name should be ${want[*]}"
check_all "${want[@]}"

# The discovery code re-resolves periodically; a changed record set must be
# visible from the namespaces at once (TTL 0, reload by SIGHUP).
changed=("${want[1]}" "$subnet.77")
"$here/dnsmasq.sh" set "$work/dns" "$name" "${changed[@]}"
echo "netns-dns-demo: after set, $name should be ${changed[*]}"
check_all "${changed[@]}"
