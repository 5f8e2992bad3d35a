"""A member that stays dead has its replicas moved to live agents: four
agents, replication factor 3; after kill -9 of one (never restarted) and
--replace-dead-after, every shard is back to three live voters holding the
same contents, and nothing written is lost."""
import time

import grpc
import pytest

from conftest import (HEALTHY_TIMEOUT, SHARDS, Cluster, normalize_replica, pb,
                      shard_status, user_in_shard)

REPLACE_AFTER = "2s"
PER_SHARD = 20


def placement_problem(c, alive, dead=()):
    """None when every shard has three untagged voters, all alive and none
    dead, one agreed leader among them, and the same digest on each;
    otherwise what is wrong."""
    views = c.statuses()
    for nid, st in views.items():
        if isinstance(st, grpc.RpcError):
            return f"{nid} Cluster/Status failed: {st.code().name} {st.details()}"
    for shard in range(SHARDS):
        seen = {nid: shard_status(st, shard) for nid, st in views.items()}
        leaders = {s.leader for s in seen.values()}
        if len(leaders) != 1 or not leaders <= set(alive):
            return f"shard {shard}: leaders {sorted(leaders)}"
        leader = leaders.pop()
        reps = [normalize_replica(r) for r in seen[leader].replicas]
        nodes = sorted(n for n, _ in reps)
        if any(tag for _, tag in reps) or len(nodes) != 3 or \
                not set(nodes) <= set(alive) or set(nodes) & set(dead):
            return f"shard {shard}: replicas {list(seen[leader].replicas)}"
        digests = {n: seen[n].digest for n in nodes}
        if len(set(digests.values())) != 1:
            return f"shard {shard}: digests differ {digests}"
    return None


def wait_placement(c, alive, dead, what):
    deadline = time.monotonic() + HEALTHY_TIMEOUT
    while (problem := placement_problem(c, alive, dead)) is not None:
        if time.monotonic() > deadline:
            pytest.fail(f"waiting for {what}: {problem}\n{c.status_report()}")
        time.sleep(0.2)


def test_dead_members_replicas_move_to_live_agents(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("cluster"), hosts=("127.0.0.1",) * 4,
                extra_args=["--replace-dead-after", REPLACE_AFTER]).start(wait=False)
    try:
        ids = sorted(c.node_ids)
        wait_placement(c, ids, (), "four agents holding every shard three times")
        written = {}
        for shard in range(SHARDS):
            uid = user_in_shard(shard)
            for i in range(PER_SHARD):
                key = f"user:{uid}:r{i}"
                c.agents[i % 4].kv.Put(pb.PutRequest(key=key, value=key.encode()),
                                       timeout=5.0)
                written[key] = key.encode()
        # The agent holding the most replicas goes away for good.
        held = {nid: 0 for nid in ids}
        for s in c.by_id[ids[0]].status().shards:
            for r in s.replicas:
                held[normalize_replica(r)[0]] += 1
        victim = max(ids, key=lambda n: (held[n], n))
        c.kill9(victim)
        alive = [n for n in ids if n != victim]
        wait_placement(c, alive, [victim],
                       f"the replicas {victim} held to move to live agents")
        # The replicas it held were rebuilt elsewhere: everything is there,
        # read linearizably through every survivor.
        for n, nid in enumerate(alive):
            a = c.by_id[nid]
            for key in sorted(written)[n::len(alive)]:
                got = a.kv.Get(pb.GetRequest(key=key), timeout=5.0)
                assert got.kv.value == written[key], f"{key} via {nid}"
        log = "\n".join(c.by_id[n].stderr_tail(400000) for n in alive)
        assert f"remove {victim}" in log, (
            f"no survivor logged the removal of {victim} from a configuration")
    finally:
        problems = c.close()
        if problems:
            pytest.fail("cluster shutdown: " + "\n".join(problems))
