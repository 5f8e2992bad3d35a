#!/usr/bin/env python3
"""Picks a private IPv4 subnet that overlaps nothing on this machine.

    python3 scripts/docker/subnet.py [--prefix 24] [--within 10.0.0.0/8]
                                     [--start 10.213.0.0] [--avoid CIDR ...]

"Nothing" is every address and route of the root network namespace (all
routing tables) and the subnet of every Docker network the engine knows, if
an engine answers. Candidates are the subnets of --prefix length inside
--within, in order from --start (wrapping around), so that runs on the same
machine agree on where to look and different callers can start in different
places. Prints the first free one; exits 1 if there is none.

tests/image imports this file, so the Docker test networks and the engine's
own bridge are chosen by one rule.
"""
import argparse
import ipaddress
import json
import shutil
import subprocess
import sys


def _out(*cmd):
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return r.stdout if r.returncode == 0 else ""


def host_networks():
    """Networks of the root namespace's addresses and routes (not defaults)."""
    nets = []
    for args in (("-4", "-o", "addr", "show"),
                 ("-4", "route", "show", "table", "all")):
        for line in _out("ip", *args).splitlines():
            for tok in line.split():
                if "/" in tok or tok[:1].isdigit():
                    try:
                        nets.append(ipaddress.ip_network(tok, strict=False))
                    except ValueError:
                        pass
    return [n for n in nets if n.prefixlen > 0]


def docker_networks(docker="docker"):
    """Subnets of every network of the engine `docker` talks to, if any."""
    if shutil.which(docker) is None:
        return []
    ids = _out(docker, "network", "ls", "-q").split()
    if not ids:
        return []
    try:
        infos = json.loads(_out(docker, "network", "inspect", *ids) or "[]")
    except ValueError:
        return []
    nets = []
    for info in infos:
        for cfg in ((info.get("IPAM") or {}).get("Config") or []):
            try:
                nets.append(ipaddress.ip_network(cfg.get("Subnet", ""), strict=False))
            except ValueError:
                pass
    return [n for n in nets if n.version == 4]


def taken(extra=()):
    return host_networks() + docker_networks() + list(extra)


def free_subnet(prefix=24, within="10.0.0.0/8", start="10.213.0.0", avoid=()):
    """The first subnet of `prefix` bits in `within`, from `start` on, that
    overlaps nothing taken; None if every candidate is taken."""
    space = ipaddress.ip_network(within)
    if not space.is_private:
        raise ValueError(f"{within} is not a private range")
    used = taken(ipaddress.ip_network(a, strict=False) for a in avoid)
    cands = list(space.subnets(new_prefix=prefix))
    first = ipaddress.ip_network(f"{start}/{prefix}", strict=False)
    i = cands.index(first) if first in cands else 0
    for cand in cands[i:] + cands[:i]:
        if not any(cand.overlaps(u) for u in used):
            return cand
    return None


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--prefix", type=int, default=24)
    p.add_argument("--within", default="10.0.0.0/8")
    p.add_argument("--start", default="10.213.0.0")
    p.add_argument("--avoid", action="append", default=[])
    a = p.parse_args()
    net = free_subnet(a.prefix, a.within, a.start, a.avoid)
    if net is None:
        print(f"subnet: no free /{a.prefix} in {a.within}", file=sys.stderr)
        return 1
    print(net)
    return 0


if __name__ == "__main__":
    sys.exit(main())
