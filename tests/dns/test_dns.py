"""Headless-Service DNS discovery (--dns-name) against a real dnsmasq.

Each agent runs in a network namespace of its own and is given no --peers:
only a name that resolves, like a Kubernetes headless Service with
publishNotReadyAddresses, to one A record per agent (or SRV records naming
the agents and their ports). The cluster must form from that alone, once,
and follow record changes without treating them as membership changes."""
import os
import time

import pytest

from conftest import PEER_PORT, DnsCluster, api, cl, pb

ROUNDS = int(os.environ.get("MQ_DNS_ROUNDS", "5"))
SUFFIX = "test.local"


def ips(c, slots=None):
    agents = c.agents if slots is None else [c.agents[i] for i in slots]
    return [a.host for a in agents]


def assert_one_cluster(c):
    """Exactly one agent founded the cluster and every other joined that
    one; Cluster Status of every agent lists every agent as an alive
    member, names that cluster and DNS as the source in use (wait_healthy
    checked the shards)."""
    ids = c.cluster_ids()
    founders = [nid for nid, (how, _) in ids.items() if how == "founded"]
    assert len(founders) == 1, f"founders {founders}; cluster ids {ids}"
    assert set(ids) == c.node_ids, f"agents without a cluster: {c.node_ids - set(ids)}"
    assert len({cid for _, cid in ids.values()}) == 1, f"more than one cluster: {ids}"
    cluster = next(iter(ids.values()))[1]
    for nid, st in c.statuses().items():
        assert not isinstance(st, Exception), f"{nid}: Status failed: {st}"
        members = {m.node_id: m.state for m in st.members}
        assert members == {n: "alive" for n in c.node_ids}, f"{nid} sees {members}"
        assert st.cluster_id == cluster, f"{nid} Status says cluster {st.cluster_id!r}, log {cluster}"
        assert st.discovery == "dns", f"{nid} Status says discovery {st.discovery!r}"
        dns = {d.name: d for d in st.discovery_sources}["dns"]
        assert dns.configured and dns.answering and dns.found > 0, (
            f"{nid}: dns source {dns}")
    return ids


def assert_from_dns(c):
    for a in c.agents:
        assert "discovery: now from dns" in a.stderr(), (
            f"{a.node_id} never took its peers from DNS")


def writes_cross_read(c, tag):
    """A write through each agent is read back (linearizable) through every
    other."""
    for w in c.agents:
        key = f"user:{api.unique(tag)}:{w.node_id}"
        w.kv.Put(pb.PutRequest(key=key, value=w.node_id.encode()), timeout=10)
        for r in c.agents:
            if r is not w:
                got = r.kv.Get(pb.GetRequest(key=key), timeout=10)
                assert got.kv.value == w.node_id.encode(), (
                    f"{key} written through {w.node_id}, read through {r.node_id}: "
                    f"{got.kv.value!r}")


def placement(a):
    """{shard: sorted replicas, tags included} as agent a reports it."""
    return {s.shard: sorted(s.replicas) for s in a.status().shards}


def settled_placement(c, quiet=3.0):
    """The placement once every shard has three voters, no learner, and
    nothing moved for `quiet` seconds; fails after HEALTHY_TIMEOUT."""
    deadline = time.monotonic() + cl.HEALTHY_TIMEOUT
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        now = placement(c.agents[0])
        clean = all(len(r) == 3 and not any(cl.normalize_replica(x)[1] for x in r)
                    for r in now.values())
        if now != last or not clean:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return now
        time.sleep(0.1)
    pytest.fail(f"the placement never settled; last {last}")


def started(c, what):
    """Starts every agent of c at once; returns seconds until healthy."""
    t0 = time.monotonic()
    c.start(wait=False)
    try:
        c.wait_healthy(what)
    except BaseException:
        c.close()
        raise
    return time.monotonic() - t0


def closed(c):
    problems = c.close()
    assert not problems, "\n".join(problems)


def test_cluster_forms_from_dns_alone(dnsnet, tmp_path):
    name = f"formed.{SUFFIX}"
    c = DnsCluster(tmp_path, dnsnet, [0, 1, 2], name)
    dnsnet.set_a(name, ips(c))
    try:
        took = started(c, "the DNS-discovered cluster to become healthy")
        print(f"3 agents from DNS alone: all ready and healthy {took:.2f}s after start")
        assert_from_dns(c)
        assert_one_cluster(c)
        writes_cross_read(c, "dns")
    finally:
        closed(c)


def test_no_split_when_all_start_at_once(dnsnet, tmp_path):
    """MQ_DNS_ROUNDS rounds (default 5; the figures quoted for this change
    came from MQ_DNS_ROUNDS=20) of three agents started together, each
    seeing the other two in DNS from its first lookup: every round must end
    with one cluster, never two founders."""
    name = f"rounds.{SUFFIX}"
    times = []
    for r in range(ROUNDS):
        (tmp_path / f"round{r}").mkdir()
        c = DnsCluster(tmp_path / f"round{r}", dnsnet, [0, 1, 2], name)
        if r == 0:
            dnsnet.set_a(name, ips(c))
        try:
            times.append(started(c, f"round {r + 1} of {ROUNDS} to become healthy"))
            ids = assert_one_cluster(c)
        finally:
            closed(c)
        founder = next(n for n, (how, _) in ids.items() if how == "founded")
        print(f"round {r + 1}/{ROUNDS}: one cluster {ids[founder][1]} founded by "
              f"{founder}, healthy after {times[-1]:.2f}s")
    print(f"{ROUNDS} rounds, one cluster each; start to healthy min "
          f"{min(times):.2f}s, max {max(times):.2f}s")


def test_records_change(dnsnet, tmp_path):
    """A fourth agent added to the records joins and takes replicas; an
    agent whose record disappears while it runs stays a member: discovery
    is a hint."""
    name = f"change.{SUFFIX}"
    c = DnsCluster(tmp_path, dnsnet, [0, 1, 2], name)
    dnsnet.set_a(name, ips(c))
    try:
        started(c, "the first three agents to become healthy")
        dnsnet.set_a(name, ips(c) + [dnsnet.topo.agent_ip[3]])
        n4 = c.add(3)
        everyone = c.node_ids

        def joined():
            for a in c.agents:
                st = a.status()
                if {m.node_id: m.state for m in st.members} != {n: "alive" for n in everyone}:
                    return False
            held = [s.shard for s in n4.status().shards
                    if ("n4", "") in map(cl.normalize_replica, s.replicas)]
            return held and n4.http_status("/readyz") == 200

        api.wait_for(joined, cl.HEALTHY_TIMEOUT,
                     "n4 to be an alive member everywhere, hold replicas and be ready")
        key = f"user:{api.unique('n4')}:x"
        n4.kv.Put(pb.PutRequest(key=key, value=b"through n4"), timeout=10)
        assert c.agents[0].kv.Get(pb.GetRequest(key=key), timeout=10).kv.value == b"through n4"
        # The leaders move replicas to n4 a few at a time: wait until the
        # placement has settled, so that a move after the record change
        # could only be the record change's doing.
        before = settled_placement(c)

        # n2's record goes; n2 keeps running.
        gone = c.by_id["n2"].host
        dnsnet.set_a(name, [ip for ip in ips(c) if ip != gone])
        api.wait_for(lambda: all(f"removed 1 [{gone}:{PEER_PORT}]" in a.stderr()
                                 for a in c.agents if a.node_id != "n2"),
                     10, "every other agent's DNS lookups to drop n2's address")
        # Many refresh rounds (200 ms) later neither the members nor the
        # replicas moved.
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            for a in c.agents:
                states = {m.node_id: m.state for m in a.status().members}
                assert states == {n: "alive" for n in everyone}, (
                    f"{a.node_id} sees {states} after n2's record went")
            time.sleep(0.2)
        after = placement(c.agents[0])
        moved = {s: (before[s], after[s]) for s in before if before[s] != after[s]}
        assert not moved, f"replicas moved after n2's record went: {moved}"
        assert any("n2" in reps for reps in after.values())
    finally:
        closed(c)


def test_srv_records_give_the_ports(dnsnet, tmp_path):
    """Each agent listens on a peer port of its own that only the SRV
    records name. The name's A records are there too, so an agent that
    ignored SRV would try its own port on the others and find nobody."""
    name = f"srv.{SUFFIX}"
    ports = [17101, 17102, 17103]
    c = DnsCluster(tmp_path, dnsnet, [0, 1, 2], name, peer_ports=ports)
    targets = []
    for a in c.agents:
        host = f"{a.node_id}.{name}"
        dnsnet.set_a(host, [a.host])
        targets.append(f"{host}:{a.peer_port}")
    dnsnet.set_a(name, ips(c))
    dnsnet.set_srv(f"_peer._tcp.{name}", PEER_PORT, targets)
    try:
        started(c, "the SRV-discovered cluster to become healthy")
        assert_from_dns(c)
        assert_one_cluster(c)
        for a in c.agents:
            want = [f"{b.host}:{b.peer_port}" for b in c.agents]
            assert f"added 3 [{', '.join(sorted(want))}]" in a.stderr(), (
                f"{a.node_id} did not take the SRV ports")
        writes_cross_read(c, "srv")
    finally:
        closed(c)


def test_dns_when_nacos_does_not_answer(dnsnet, tmp_path):
    """--nacos names an address where nothing listens; DNS still forms the
    cluster."""
    name = f"fallback.{SUFFIX}"
    nowhere = f"{dnsnet.dns_ip}:18848"
    c = DnsCluster(tmp_path, dnsnet, [0, 1, 2], name, extra_args=["--nacos", nowhere])
    dnsnet.set_a(name, ips(c))
    try:
        started(c, "the cluster to form through DNS with Nacos down")
        assert_from_dns(c)
        assert_one_cluster(c)
        writes_cross_read(c, "fallback")
    finally:
        closed(c)


def test_lookup_failures_are_logged_once(dnsnet, tmp_path):
    """A name with no records is a failed round every 200 ms, but one WARN
    line; records that appear later are taken and logged at INFO."""
    name = f"missing.{SUFFIX}"
    c = DnsCluster(tmp_path, dnsnet, [0], name)
    try:
        c.start(wait=False)
        a = c.agents[0]
        warn = f"discovery: dns does not answer: {name}: no such name (NXDOMAIN)"
        api.wait_for(lambda: warn in a.stderr(), 10, "the WARN about the missing name")
        time.sleep(2)  # ten more failed rounds
        lines = [ln for ln in a.stderr().splitlines() if "does not answer" in ln]
        assert len(lines) == 1, "\n".join(lines)
        other = dnsnet.topo.agent_ip[1]
        dnsnet.set_a(name, [a.host, other])
        api.wait_for(lambda: "discovery: dns answers again" in a.stderr()
                     and f"added 2 [{a.host}:{PEER_PORT}, {other}:{PEER_PORT}]" in a.stderr(),
                     10, "the agent to take the records that appeared")
    finally:
        closed(c)
