"""KV Put/Get/Delete: revisions, versions, preconditions, return_previous,
TTL and sharding (DESIGN.md sections 2-3)."""
import grpc
import pytest

from conftest import (expect_error, now_ms, pb, shard_of, unique,
                      user_in_shard, wait_for)

FP = grpc.StatusCode.FAILED_PRECONDITION


def key(suffix="k", user=None):
    return f"user:{user or unique('u')}:{suffix}"


def test_put_get_revisions_and_versions(fresh_agent):
    a = fresh_agent
    k = "user:123:profile"
    r1 = a.put(k, b"one")
    assert r1.shard == 2 and r1.revision > 0
    kv = a.get(k)
    assert (kv.key, kv.value, kv.version, kv.shard) == (k, b"one", 1, 2)
    assert kv.create_revision == kv.mod_revision == r1.revision

    r2 = a.put(k, b"two")
    assert r2.revision == r1.revision + 1, "next revision of the shard"
    kv = a.get(k)
    assert (kv.value, kv.version) == (b"two", 2)
    assert kv.create_revision == r1.revision, "create_revision stays"
    assert kv.mod_revision == r2.revision, "mod_revision moves"

    # Another key of the same shard takes the next revision too.
    r3 = a.put("user:123:other", b"x")
    assert r3.revision == r2.revision + 1
    # A put in another shard does not consume this shard's revisions.
    a.put("user:456:x", b"x")
    assert a.put(k, b"three").revision == r3.revision + 1
    assert a.get(k).version == 3


def test_delete(fresh_agent):
    a = fresh_agent
    k = "user:123:gone"
    p = a.put(k, b"v")
    d = a.delete(k)
    assert d.deleted and d.shard == 2
    assert d.revision == p.revision + 1, "a delete is a mutation with a revision"
    expect_error(grpc.StatusCode.NOT_FOUND, a.get, k, mentions="not found")

    missing = a.delete(k)
    assert not missing.deleted
    # No revision consumed by deleting a missing key.
    again = a.put(k, b"back")
    assert again.revision == d.revision + 1
    kv = a.get(k)
    assert kv.version == 1, "re-created key starts at version 1"
    assert kv.create_revision == again.revision


def test_get_missing_is_not_found(agent):
    expect_error(grpc.StatusCode.NOT_FOUND, agent.get, key("never"),
                 mentions=("not found", "no such", "does not exist"))


def test_delete_missing_is_not_deleted(agent):
    assert agent.delete(key("never")).deleted is False


def test_empty_value_is_a_value(agent):
    k = key()
    agent.put(k, b"")
    kv = agent.get(k)
    assert kv.value == b"" and kv.version == 1


def test_binary_value_round_trips(agent):
    k = key()
    v = bytes(range(256)) * 4
    agent.put(k, v)
    assert agent.get(k).value == v


# -- preconditions ----------------------------------------------------------


def test_put_absent(agent):
    k = key()
    r = agent.put(k, b"first", precondition=pb.Precondition(absent=True))
    assert r.revision > 0
    expect_error(FP, agent.put, k, b"second",
                 precondition=pb.Precondition(absent=True), mentions="exist")
    assert agent.get(k).value == b"first", "a failed put changes nothing"


def test_put_version(agent):
    k = key()
    agent.put(k, b"a")
    agent.put(k, b"b")
    agent.put(k, b"c", precondition=pb.Precondition(version=2))
    assert agent.get(k).version == 3
    expect_error(FP, agent.put, k, b"d", precondition=pb.Precondition(version=2),
                 mentions="version")
    assert agent.get(k).value == b"c"
    expect_error(FP, agent.put, key("missing"), b"x",
                 precondition=pb.Precondition(version=1))


def test_put_mod_revision(agent):
    k = key()
    r = agent.put(k, b"a")
    r2 = agent.put(k, b"b", precondition=pb.Precondition(mod_revision=r.revision))
    expect_error(FP, agent.put, k, b"c",
                 precondition=pb.Precondition(mod_revision=r.revision),
                 mentions="revision")
    kv = agent.get(k)
    assert (kv.value, kv.mod_revision) == (b"b", r2.revision)
    expect_error(FP, agent.put, key("missing"), b"x",
                 precondition=pb.Precondition(mod_revision=r.revision))


def test_put_compare_and_set_value(agent):
    k = key()
    agent.put(k, b"old")
    agent.put(k, b"new", precondition=pb.Precondition(value=b"old"))
    assert agent.get(k).value == b"new"
    expect_error(FP, agent.put, k, b"newer",
                 precondition=pb.Precondition(value=b"old"), mentions="value")
    expect_error(FP, agent.put, k, b"newer",
                 precondition=pb.Precondition(value=b""))
    assert agent.get(k).value == b"new"
    expect_error(FP, agent.put, key("missing"), b"x",
                 precondition=pb.Precondition(value=b"old"))


def test_delete_absent_fails_on_existing_key(agent):
    k = key()
    agent.put(k, b"v")
    expect_error(FP, agent.delete, k, precondition=pb.Precondition(absent=True))
    assert agent.get(k).value == b"v"


def test_delete_version(agent):
    k = key()
    agent.put(k, b"a")
    agent.put(k, b"b")
    expect_error(FP, agent.delete, k, precondition=pb.Precondition(version=1),
                 mentions="version")
    assert agent.get(k).value == b"b", "a failed delete changes nothing"
    assert agent.delete(k, precondition=pb.Precondition(version=2)).deleted
    expect_error(grpc.StatusCode.NOT_FOUND, agent.get, k)


def test_delete_mod_revision(agent):
    k = key()
    r1 = agent.put(k, b"a")
    r2 = agent.put(k, b"b")
    expect_error(FP, agent.delete, k,
                 precondition=pb.Precondition(mod_revision=r1.revision),
                 mentions="revision")
    assert agent.get(k).value == b"b"
    d = agent.delete(k, precondition=pb.Precondition(mod_revision=r2.revision))
    assert d.deleted


def test_delete_compare_value(agent):
    k = key()
    agent.put(k, b"a")
    expect_error(FP, agent.delete, k, precondition=pb.Precondition(value=b"x"),
                 mentions="value")
    assert agent.get(k).value == b"a"
    assert agent.delete(k, precondition=pb.Precondition(value=b"a")).deleted


def test_delete_precondition_on_missing_key_fails(agent):
    expect_error(FP, agent.delete, key("missing"),
                 precondition=pb.Precondition(version=1))
    expect_error(FP, agent.delete, key("missing"),
                 precondition=pb.Precondition(value=b"v"))


def test_return_previous(agent):
    k = key()
    first = agent.put(k, b"one", return_previous=True)
    assert not first.HasField("previous"), "no previous for a new key"
    p1 = agent.put(k, b"two")
    assert not p1.HasField("previous"), "previous only when asked for"
    r = agent.put(k, b"three", return_previous=True)
    assert r.HasField("previous")
    prev = r.previous
    assert (prev.key, prev.value, prev.version) == (k, b"two", 2)
    assert prev.mod_revision == p1.revision
    assert prev.create_revision == first.revision


# -- TTL --------------------------------------------------------------------


def _gone(agent, k):
    try:
        agent.get(k)
        return False
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.NOT_FOUND, e
        return True


def test_ttl_expires(agent):
    k = key("ttl")
    before = now_ms()
    agent.put(k, b"short", ttl_ms=300)
    kv = agent.get(k)
    assert kv.value == b"short", "visible before it expires"
    assert before + 300 - 50 <= kv.expires_at_ms <= now_ms() + 300 + 1000, (
        f"expires_at_ms {kv.expires_at_ms} is not about now+300 ms")
    wait_for(lambda: _gone(agent, k), 5, "the key to expire")
    elapsed = now_ms() - before
    assert elapsed >= 250, f"expired after {elapsed} ms, ttl was 300 ms"
    # Expired keys are gone for scans and can be created again with absent.
    scan = agent.kv.Scan(pb.ScanRequest(prefix=k))
    assert list(scan.kvs) == []
    agent.put(k, b"again", precondition=pb.Precondition(absent=True))
    kv = agent.get(k)
    assert (kv.value, kv.version, kv.expires_at_ms) == (b"again", 1, 0)


def test_put_without_ttl_clears_expiry(agent):
    k = key("ttl")
    agent.put(k, b"a", ttl_ms=60_000)
    assert agent.get(k).expires_at_ms > 0
    agent.put(k, b"b")
    assert agent.get(k).expires_at_ms == 0, "a put without ttl keeps the key forever"


def test_no_ttl_means_no_expiry(agent):
    k = key()
    agent.put(k, b"v")
    assert agent.get(k).expires_at_ms == 0


# -- sharding ---------------------------------------------------------------


@pytest.mark.parametrize("k,shard", [
    ("user:123:x", 2), ("user:alice:x", 0), ("user:456", 5), ("user:789:a:b", 8),
    ("user:u7919x:q", 9), ("customer-9001", 7), ("user:\U0001F600:p", 3),
])
def test_keys_land_in_design_shard(agent, k, shard):
    assert shard_of(k) == shard  # the test's own formula agrees with DESIGN
    r = agent.put(k, b"s")
    assert r.shard == shard, f"{k!r} put into shard {r.shard}"
    assert agent.get(k).shard == shard


def test_serializable_reads(agent):
    k = key()
    agent.put(k, b"v")
    kv = agent.get(k, consistency=pb.SERIALIZABLE)
    assert kv.value == b"v"
    scan = agent.kv.Scan(pb.ScanRequest(prefix=k, consistency=pb.SERIALIZABLE))
    assert [x.key for x in scan.kvs] == [k]
    t = unique("topic")
    agent.produce(t, key=k)
    got = agent.read(t, key=k, consistency=pb.SERIALIZABLE)
    assert len(got.entries) == 1


# -- concurrency ------------------------------------------------------------


def test_concurrent_compare_and_set_loses_no_update(agent):
    """Threads increment one counter with version preconditions; a failed
    precondition retries. Every increment must land exactly once."""
    import threading
    k = key("counter")
    agent.put(k, b"0")
    threads, per_thread = 6, 15
    errors = []

    def worker():
        done = 0
        while done < per_thread:
            kv = agent.get(k)
            nxt = str(int(kv.value) + 1).encode()
            try:
                agent.put(k, nxt, precondition=pb.Precondition(version=kv.version))
                done += 1
            except grpc.RpcError as e:
                if e.code() != FP:
                    errors.append(e)
                    return
    ts = [threading.Thread(target=worker) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert not errors, f"unexpected errors: {[e.code().name for e in errors]}"
    kv = agent.get(k)
    assert int(kv.value) == threads * per_thread, "an update was lost or doubled"
    assert kv.version == threads * per_thread + 1


def test_concurrent_create_if_absent_has_one_winner(agent):
    import threading
    k = key("lock")
    results = []
    barrier = threading.Barrier(8)

    def worker(i):
        barrier.wait()
        try:
            agent.put(k, b"owner-%d" % i, precondition=pb.Precondition(absent=True))
            results.append(("ok", i))
        except grpc.RpcError as e:
            results.append((e.code(), i))
    ts = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    winners = [i for r, i in results if r == "ok"]
    assert len(winners) == 1, f"{len(winners)} writers created the same key"
    assert all(r == FP for r, _ in results if r != "ok")
    assert agent.get(k).value == b"owner-%d" % winners[0]
