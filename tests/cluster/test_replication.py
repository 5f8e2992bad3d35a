"""Any agent serves any request: writes through one agent are read back
linearizably through every other; topic logs and scans span shards; a
create-if-absent race across agents has exactly one winner."""
import itertools
import threading

import grpc
import pytest

from conftest import SHARDS, pb, shard_of, unique, user_in_shard


def keys_covering_all_shards(prefix):
    """One key per shard, hashed whole (not user: keys)."""
    found = {}
    for i in itertools.count():
        k = f"{prefix}-{i}"
        found.setdefault(shard_of(k), k)
        if len(found) == SHARDS:
            return [found[s] for s in range(SHARDS)]


def test_writes_through_any_agent_read_back_linearizably_everywhere(healthy):
    agents = healthy.agents
    base = unique("rw")
    keys = keys_covering_all_shards(base)
    problems = []
    for round_ in range(3):
        for i, key in enumerate(keys):
            writer = agents[(i + round_) % 3]
            value = f"{key}@{round_}".encode()
            resp = writer.put(key, value)
            assert resp.shard == shard_of(key), (
                f"Put {key!r} via {writer.node_id}: shard {resp.shard}, "
                f"expected {shard_of(key)}")
            # Linearizable: a read that starts after the write was
            # acknowledged sees it (or something newer), through any agent.
            for reader in agents:
                if reader is writer:
                    continue
                try:
                    kv = reader.get(key)
                except grpc.RpcError as e:
                    problems.append(
                        f"Get {key!r} (shard {shard_of(key)}) via {reader.node_id} "
                        f"after Put via {writer.node_id}: {e.code().name} {e.details()}")
                    continue
                if kv.value != value:
                    problems.append(
                        f"Get {key!r} (shard {shard_of(key)}) via {reader.node_id} "
                        f"after Put {value!r} via {writer.node_id} returned "
                        f"{kv.value!r}")
    assert not problems, (f"{len(problems)} stale or failed reads:\n"
                          + "\n".join(problems[:20]))


def test_delete_through_one_agent_is_seen_by_the_others(healthy):
    a, b, c = healthy.agents
    key = unique("del")
    a.put(key, b"x")
    resp = b.delete(key)
    assert resp.deleted, f"Delete {key!r} via {b.node_id}: deleted=false"
    for reader in (a, c):
        with pytest.raises(grpc.RpcError) as ei:
            reader.get(key)
        assert ei.value.code() == grpc.StatusCode.NOT_FOUND, (
            f"Get of deleted {key!r} via {reader.node_id}: "
            f"{ei.value.code().name} {ei.value.details()}")


def test_produce_and_read_by_key_across_agents(healthy):
    agents = healthy.agents
    topic = unique("topic")
    # Three users in three different shards, each produced to through every
    # agent in turn; each key's partition must hold its entries in order.
    users = [user_in_shard(s) for s in (1, 6, 11)]
    sent = {u: [] for u in users}
    for n in range(12):
        for j, u in enumerate(users):
            key = f"user:{u}:evt"
            via = agents[(n + j) % 3]
            value = f"{u}#{n}".encode()
            r = via.produce(topic, key=key, value=value)
            assert r.partition == shard_of(key), (
                f"Produce {key!r} via {via.node_id}: partition {r.partition}, "
                f"expected {shard_of(key)}")
            sent[u].append((r.offset, value))
    for u in users:
        offsets = [o for o, _ in sent[u]]
        assert offsets == list(range(12)), (
            f"offsets of {u}'s entries in a fresh topic: {offsets}")
        key = f"user:{u}:evt"
        for reader in agents:
            resp = reader.read(topic, partition=-1, key=key, offset=0, count=100)
            got = [(e.offset, e.value) for e in resp.entries]
            assert got == sent[u], (
                f"Read {topic} partition -1 key {key!r} via {reader.node_id}: "
                f"{got} != {sent[u]}")
            assert resp.next_offset == 12 and resp.high_watermark == 12, (
                f"via {reader.node_id}: next_offset {resp.next_offset}, "
                f"high_watermark {resp.high_watermark}, expected 12 and 12")


def test_read_all_partitions_through_any_agent(healthy):
    agents = healthy.agents
    topic = unique("alltopic")
    keys = keys_covering_all_shards(unique("pk"))
    expected = []
    for n, key in enumerate(keys):
        for m in range(2):
            value = f"{n}.{m}".encode()
            r = agents[(n + m) % 3].produce(topic, key=key, value=value)
            expected.append((r.partition, r.offset, key, value))
    expected.sort()
    for reader in agents:
        resp = reader.read(topic, partition=-1, offset=0, count=1000)
        got = [(e.partition, e.offset, e.key, e.value) for e in resp.entries]
        assert got == expected, (
            f"Read {topic} all partitions via {reader.node_id}: got "
            f"{len(got)} entries, expected {len(expected)} ordered by "
            f"(partition, offset); first difference at "
            f"{next((i for i, (x, y) in enumerate(zip(got, expected)) if x != y), min(len(got), len(expected)))}")


def test_scan_across_shards_through_any_agent(healthy):
    agents = healthy.agents
    prefix = unique("scan") + "/"
    keys = sorted(f"{prefix}{i:03d}" for i in range(60))
    assert len({shard_of(k) for k in keys}) > 8, "keys should span shards"
    for i, k in enumerate(keys):
        agents[i % 3].put(k, k.encode())
    for reader in agents:
        seen, start_after, pages = [], "", 0
        while True:
            resp = reader.kv.Scan(pb.ScanRequest(prefix=prefix,
                                                 start_after=start_after,
                                                 limit=7))
            pages += 1
            assert pages <= 20, f"Scan via {reader.node_id} does not end"
            seen += [(kv.key, kv.value) for kv in resp.kvs]
            if not resp.more:
                break
            assert resp.kvs, f"Scan via {reader.node_id}: more=true, no keys"
            start_after = resp.kvs[-1].key
        assert seen == [(k, k.encode()) for k in keys], (
            f"Scan {prefix!r} via {reader.node_id} (pages of 7): "
            f"{len(seen)} keys, expected {len(keys)} in key order; "
            f"missing {sorted(set(keys) - {k for k, _ in seen})[:5]}")


def test_scan_of_one_user_through_any_agent(healthy):
    agents = healthy.agents
    uid = user_in_shard(5)
    keys = [f"user:{uid}:{i:02d}" for i in range(10)]
    for i, k in enumerate(keys):
        agents[i % 3].put(k, b"v")
    for reader in agents:
        resp = reader.kv.Scan(pb.ScanRequest(prefix=f"user:{uid}:", limit=100))
        assert [kv.key for kv in resp.kvs] == keys and not resp.more, (
            f"Scan user:{uid}: via {reader.node_id}: "
            f"{[kv.key for kv in resp.kvs]}, more={resp.more}")
        assert {kv.shard for kv in resp.kvs} == {5}


def test_create_if_absent_race_has_exactly_one_winner(healthy):
    agents = healthy.agents
    racers_per_agent = 3
    for round_ in range(8):
        key = unique(f"race{round_}-")
        n = racers_per_agent * len(agents)
        barrier = threading.Barrier(n)
        results = [None] * n

        def race(i):
            via = agents[i % len(agents)]
            value = f"racer-{i}".encode()
            barrier.wait(10)
            try:
                via.kv.Put(pb.PutRequest(
                    key=key, value=value,
                    precondition=pb.Precondition(absent=True)), timeout=10)
                results[i] = ("OK", via.node_id)
            except grpc.RpcError as e:
                results[i] = (e.code().name, via.node_id, e.details())

        threads = [threading.Thread(target=race, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert not any(t.is_alive() for t in threads), "a racer hung"
        winners = [i for i, r in enumerate(results) if r[0] == "OK"]
        others = [r for r in results if r[0] != "OK"]
        bad = [r for r in others if r[0] != "FAILED_PRECONDITION"]
        assert len(winners) == 1 and not bad, (
            f"key {key!r} (shard {shard_of(key)}), {n} racers through 3 "
            f"agents: {len(winners)} won, other outcomes {bad or others[:3]}")
        want = f"racer-{winners[0]}".encode()
        for reader in agents:
            got = reader.get(key).value
            assert got == want, (
                f"{key!r} via {reader.node_id} holds {got!r}, winner wrote {want!r}")
