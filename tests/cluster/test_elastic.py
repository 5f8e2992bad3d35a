"""Elastic membership the way a StatefulSet scales: three agents, then two
more join (scale out to five), then the two highest ordinals leave for good
(scale in to three), with writes through every running agent all along.

After the scale-out every shard sits on RF current voters, each agent holds
its fair share of replicas (within one of even) and leads at most its fair
share of shards plus one. After the scale-in every shard is back on RF live
voters among the three that stayed. No acknowledged write is lost.

The new agents list every agent in --peers; the first three list only
themselves and learn of the newcomers over the peer links, as they would
from discovery. Printed (pytest -s): how long the newcomers took to hold
their share, and put latency percentiles before, during and after the
scale-out.

MQ_ELASTIC_PRELOAD=N preloads N keys (100-byte values) first and prints the
snapshot bytes the newcomers received and the rate, for the README."""
import os
import time

import pytest

from conftest import (HEALTHY_TIMEOUT, SHARDS, Cluster, ClusterAgent, free_ports,
                      normalize_replica, pb, unique, wait_no_problem)
from test_rolling import RF, Writers, preload, wait_settled

REPLACE_AFTER = "3s"
PRELOAD = int(os.environ.get("MQ_ELASTIC_PRELOAD", "0"))


def share_problem(c, ids):
    """None when every shard is on RF current voters among ids, each agent
    of ids holds within one of an even share of the replicas, and none leads
    more than its fair share plus one; else what is wrong."""
    st = c.by_id[ids[0]].status()
    held = {nid: 0 for nid in ids}
    led = {nid: 0 for nid in ids}
    for s in st.shards:
        reps = [normalize_replica(r) for r in s.replicas]
        if any(tag for _, tag in reps) or len(reps) != RF:
            return f"shard {s.shard}: replicas {list(s.replicas)}"
        for nid, _ in reps:
            if nid not in held:
                return f"shard {s.shard}: replica on {nid}, not one of {ids}"
            held[nid] += 1
        if s.leader not in led:
            return f"shard {s.shard}: leader {s.leader!r}"
        led[s.leader] += 1
    lo, hi = SHARDS * RF // len(ids), -(-SHARDS * RF // len(ids))
    if min(held.values()) < lo or max(held.values()) > hi:
        return f"replicas per agent {held}, want {lo}..{hi}"
    fair = -(-SHARDS // len(ids))
    if max(led.values()) > fair + 1:
        return f"leaders per agent {led}, want at most {fair + 1}"
    return None


def wait_share(c, ids, what, timeout=HEALTHY_TIMEOUT):
    wait_no_problem(c, lambda: share_problem(c, ids), what, timeout, interval=0.2)


def percentiles(lat):
    if not lat:
        return "no writes"
    lat = sorted(lat)
    pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000
    return f"p50 {pick(0.5):.1f} ms, p99 {pick(0.99):.1f} ms ({len(lat)} puts)"


def test_scale_out_then_in(tmp_path):
    c = Cluster(tmp_path, extra_args=["--replace-dead-after", REPLACE_AFTER,
                                      "--drain-timeout", "8s"]).start(wait=False)
    try:
        wait_settled(c, "the first three agents to settle")
        if PRELOAD:
            preload(c, PRELOAD)
            wait_settled(c, "the cluster to settle after the preload")
        # The two that will join: known to the test now, started later.
        for nid, port in zip(("n4", "n5"), free_ports(2)):
            a = ClusterAgent(c, nid, "127.0.0.1", port, (), c.tmpdir)
            c.agents.append(a)
            c.by_id[nid] = a
            c.node_ids.add(nid)
        with Writers(c, unique("elastic")) as w:
            time.sleep(2.0)
            t_out = time.monotonic()
            for nid in ("n4", "n5"):
                c.by_id[nid].start()
            wait_share(c, ["n1", "n2", "n3", "n4", "n5"],
                       "the new agents to hold their share", timeout=90)
            t_shared = time.monotonic()
            received = sum(c.by_id[nid].metric("memquorum_snapshot_received_bytes_total")
                           for nid in ("n4", "n5"))
            # Leaders wrote those snapshots in forked children, never in
            # their loops (which would hold every shard of the agent).
            ids = ("n1", "n2", "n3", "n4", "n5")
            in_child = sum(c.by_id[nid].metric("memquorum_snapshots_built_in_child_total")
                           for nid in ids)
            in_loop = {nid: c.by_id[nid].metric("memquorum_snapshots_built_in_loop_total")
                       for nid in ids}
            time.sleep(2.0)
            t_in = time.monotonic()
            for nid in ("n5", "n4"):  # a StatefulSet removes the highest first
                a = c.by_id[nid]
                a.up = False
                rc = a.terminate(timeout=20)
                assert rc == 0, f"{nid} exited with {rc} on SIGTERM\n{a.stderr_tail()}"
            wait_share(c, ["n1", "n2", "n3"],
                       "every shard back on the three that stayed", timeout=90)
            t_done = time.monotonic()
            time.sleep(1.0)
        acked = list(w.acked)
        lat = list(w.latencies)

        def window(t0, t1):
            return [d for t, d in lat if t0 <= t <= t1]

        print(f"\nscale 3 -> 5 -> 3 with writes through every agent:")
        print(f"  newcomers held their share {t_shared - t_out:.1f}s after they started "
              f"(preload {PRELOAD} keys); they received {received / 1e6:.1f} MB of snapshots, "
              f"{received / 1e6 / (t_shared - t_out):.1f} MB/s")
        print(f"  snapshots written by forked children: {in_child:.0f}")
        print(f"  scale-in settled {t_done - t_in:.1f}s after the first SIGTERM "
              f"(--replace-dead-after {REPLACE_AFTER})")
        print(f"  puts before the scale-out: {percentiles(window(0, t_out))}")
        print(f"  puts during the scale-out: {percentiles(window(t_out, t_shared))}")
        print(f"  puts during the scale-in:  {percentiles(window(t_in, t_done))}")
        gap, shard = w.longest_gap(t_out, t_done)
        print(f"  longest write gap of a shard: {gap:.2f}s (shard {shard})")
        assert len(acked) > 200, f"only {len(acked)} writes were acknowledged"
        assert not any(in_loop.values()), f"snapshots written in the loop: {in_loop}"
        assert not received or in_child > 0, \
            f"the newcomers received {received} snapshot bytes, none written by a child"

        # Nothing acknowledged is lost: every key reads back through a
        # survivor (reads are linearizable).
        via = c.by_id["n1"]
        missing = []
        for key, _, _, _ in acked:
            got = via.kv.Get(pb.GetRequest(key=key), timeout=5.0)
            if got.kv.value != key.encode():
                missing.append(key)
        assert not missing, f"{len(missing)} acknowledged writes lost, e.g. {missing[:5]}"
    finally:
        problems = c.close()
        if problems:
            pytest.fail("cluster shutdown: " + "\n".join(problems))


def test_two_clusters_that_meet_refuse_each_other(tmp_path):
    """Two clusters founded apart (different seed lists) and an agent whose
    --peers names members of both: it joins the first it hears from, and
    the other cluster's agents are refused loudly; no shard of either ever
    takes a replica on the other's agents."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    drain = ["--drain-timeout", "5s"]
    a = Cluster(tmp_path / "a", extra_args=drain).start(wait=False)
    b = Cluster(tmp_path / "b", id_prefix="m", extra_args=drain).start(wait=False)
    x = None
    try:
        wait_settled(a, "cluster a to settle")
        wait_settled(b, "cluster b to settle")
        port, = free_ports(1)
        x = ClusterAgent(a, "x1", "127.0.0.1", port, (), a.tmpdir)
        x.peers = ",".join(f"{g.node_id}={g.host}:{g.peer_port}"
                           for g in (a.agents[0], b.agents[0], x))
        x.start()  # --bootstrap-expect 3: the three agents of its --peers
        deadline = time.monotonic() + 20
        refused = False
        while not refused and time.monotonic() < deadline:
            refused = any("belongs to another cluster" in g.stderr_tail(200000)
                          for g in a.agents + b.agents + [x])
            time.sleep(0.2)
        assert refused, "no agent refused the other cluster"
        time.sleep(3.0)
        ids = {g.node_id: g.status().cluster_id for g in a.agents + b.agents + [x]}
        assert len({ids[g.node_id] for g in a.agents}) == 1, ids
        assert len({ids[g.node_id] for g in b.agents}) == 1, ids
        assert ids["n1"] != ids["m1"], ids
        assert ids["x1"] in (ids["n1"], ids["m1"]), ids
        joined = a if ids["x1"] == ids["n1"] else b
        members = {c: {g.node_id for g in c.agents} | ({"x1"} if c is joined else set())
                   for c in (a, b)}
        for c in (a, b):
            for s in c.agents[0].status().shards:
                names = {normalize_replica(r)[0] for r in s.replicas}
                assert names <= members[c], (
                    f"shard {s.shard} of the cluster of {c.agents[0].node_id} has replicas "
                    f"{list(s.replicas)}")
    finally:
        problems = []
        if x is not None and x.proc is not None:
            rc = x.terminate(timeout=30)
            if rc != 0:
                problems.append(f"x1 exited with {rc} on SIGTERM\n{x.stderr_tail()}")
            x.close_channels()
        problems += a.close() + b.close()
        if problems:
            pytest.fail("cluster shutdown: " + "\n".join(problems))
