"""PartitionService: the original client flow, offsets, partition -1 rules,
timestamps, the end of the log and retention (DESIGN.md sections 2-3)."""
import grpc
import pytest

from conftest import expect_error, now_ms, pb, shard_of, unique


def test_original_client_flow(fresh_agent):
    """Produce to "user-sessions" with partition -1 lands in partition 2 at
    offset 0; Read partition -1 offset 0 count 10 returns it."""
    a = fresh_agent
    ts = now_ms()
    resp = a.partition.Produce(pb.ProduceRequest(
        topic="user-sessions", partition=-1,
        entry=pb.Entry(key="user:123:session", value=b"session_data",
                       timestamp=ts)))
    assert (resp.partition, resp.offset) == (2, 0), (
        f"Produce landed at partition {resp.partition} offset {resp.offset}")
    assert resp.revision > 0, "Produce must report the shard revision it got"

    got = a.partition.Read(pb.ReadRequest(
        topic="user-sessions", partition=-1, offset=0, count=10))
    assert len(got.entries) == 1, f"expected the one entry, got {got.entries}"
    e = got.entries[0]
    assert (e.key, e.value, e.offset, e.partition, e.timestamp) == (
        "user:123:session", b"session_data", 0, 2, ts)


def test_offsets_increase_per_topic_and_partition(agent):
    t1, t2 = unique("topic-a"), unique("topic-b")
    offs = [agent.produce(t1, key="user:123:x", value=b"%d" % i).offset
            for i in range(5)]
    assert offs == [0, 1, 2, 3, 4], "offsets of one (topic, partition)"
    # Another partition of the same topic and another topic start at 0.
    other_part = agent.produce(t1, key="user:456:x")
    assert (other_part.partition, other_part.offset) == (5, 0)
    other_topic = agent.produce(t2, key="user:123:x")
    assert (other_topic.partition, other_topic.offset) == (2, 0)
    assert agent.produce(t1, key="user:123:y").offset == 5


def test_produce_revisions_increase_in_a_shard(agent):
    t = unique("topic")
    revs = [agent.produce(t, key="user:789:r").revision for _ in range(4)]
    assert all(b > a for a, b in zip(revs, revs[1:])), revs


def test_read_partition_minus_one_with_key_reads_that_partition(agent):
    t = unique("topic")
    agent.produce(t, key="user:123:a", value=b"p2")
    agent.produce(t, key="user:456:a", value=b"p5")
    agent.produce(t, key="user:123:b", value=b"p2b")
    got = agent.read(t, partition=-1, offset=0, count=10, key="user:123:zzz")
    assert [(e.partition, e.offset, e.value) for e in got.entries] == [
        (2, 0, b"p2"), (2, 1, b"p2b")]
    assert got.high_watermark == 2
    assert got.next_offset == 2


def test_read_partition_minus_one_without_key_reads_all_partitions(agent):
    t = unique("topic")
    layout = {9: 2, 1: 3, 5: 4}  # partition -> entries; produced out of order
    for p, n in layout.items():
        for i in range(n):
            r = agent.produce(t, key=f"k{p}-{i}", value=b"%d/%d" % (p, i),
                              partition=p)
            assert (r.partition, r.offset) == (p, i)
    want = [(p, i) for p in sorted(layout) for i in range(layout[p])]

    got = agent.read(t, partition=-1, offset=0, count=100)
    assert [(e.partition, e.offset) for e in got.entries] == want, (
        "entries must be ordered by (partition, offset)")
    assert [e.value for e in got.entries] == [b"%d/%d" % pi for pi in want]

    few = agent.read(t, partition=-1, offset=0, count=4)
    assert [(e.partition, e.offset) for e in few.entries] == want[:4], (
        "count bounds the entries returned in all")


def test_read_explicit_partition(agent):
    t = unique("topic")
    agent.produce(t, key="a", value=b"x", partition=7)
    agent.produce(t, key="b", value=b"y", partition=7)
    agent.produce(t, key="c", value=b"z", partition=8)
    got = agent.read(t, partition=7, offset=0, count=10)
    assert [(e.key, e.value, e.offset, e.partition) for e in got.entries] == [
        ("a", b"x", 0, 7), ("b", b"y", 1, 7)]
    assert (got.high_watermark, got.log_start_offset, got.next_offset) == (2, 0, 2)
    second = agent.read(t, partition=7, offset=1, count=10)
    assert [e.key for e in second.entries] == ["b"]


def test_explicit_partition_wins_over_key(agent):
    t = unique("topic")
    r = agent.produce(t, key="user:123:k", partition=11)
    assert r.partition == 11, "an explicit partition is not re-routed by key"
    assert shard_of("user:123:k") == 2


def test_read_count_limits_single_partition(agent):
    t = unique("topic")
    for i in range(6):
        agent.produce(t, key="user:123:c", value=b"%d" % i)
    got = agent.read(t, partition=2, offset=1, count=3)
    assert [e.offset for e in got.entries] == [1, 2, 3]
    assert got.next_offset == 4
    assert got.high_watermark == 6


def test_timestamp_zero_means_now(agent):
    t = unique("topic")
    before = now_ms()
    agent.produce(t, key="user:123:ts", timestamp=0)
    after = now_ms()
    e = agent.read(t, partition=2, offset=0, count=1).entries[0]
    assert before - 1000 <= e.timestamp <= after + 1000, (
        f"timestamp {e.timestamp} is not the wall clock ({before}..{after})")


def test_read_at_end_returns_nothing(agent):
    t = unique("topic")
    for _ in range(3):
        agent.produce(t, key="user:123:e")
    got = agent.read(t, partition=2, offset=3, count=10)
    assert list(got.entries) == []
    assert got.high_watermark == 3
    assert got.next_offset == 3


def test_read_beyond_end_is_out_of_range(agent):
    t = unique("topic")
    for _ in range(3):
        agent.produce(t, key="user:123:e")
    expect_error(grpc.StatusCode.OUT_OF_RANGE, agent.read, t, partition=2,
                 offset=4, count=10, mentions="offset")


def test_read_unknown_topic_from_zero_is_empty(agent):
    got = agent.read(unique("never-produced"), partition=3, offset=0, count=5)
    assert list(got.entries) == []
    assert got.high_watermark == 0


def test_retention_entries(make_agent):
    a = make_agent("--retention-entries", "5")
    t = unique("topic")
    for i in range(12):
        assert a.produce(t, key="user:123:r", value=b"%d" % i).offset == i
    got = a.read(t, partition=2, offset=11, count=1)
    start, hw = got.log_start_offset, got.high_watermark
    assert hw == 12
    assert 7 <= start <= 11 and hw - start <= 5, (
        f"retention 5 keeps at most 5 entries: log_start_offset={start} hw={hw}")

    tail = a.read(t, partition=2, offset=start, count=100)
    assert [e.offset for e in tail.entries] == list(range(start, 12))
    assert [e.value for e in tail.entries] == [b"%d" % i for i in range(start, 12)]

    expect_error(grpc.StatusCode.OUT_OF_RANGE, a.read, t, partition=2,
                 offset=start - 1, count=1, mentions="offset")
    expect_error(grpc.StatusCode.OUT_OF_RANGE, a.read, t, partition=2,
                 offset=0, count=1, mentions="offset")


def test_concurrent_produce_gets_distinct_contiguous_offsets(agent):
    import threading
    t = unique("topic")
    got = []
    lock = threading.Lock()

    def worker(i):
        for j in range(20):
            r = agent.produce(t, key="user:123:c", value=b"%d-%d" % (i, j))
            with lock:
                got.append((r.offset, b"%d-%d" % (i, j)))
    ts = [threading.Thread(target=worker, args=(i,)) for i in range(5)]
    for th in ts:
        th.start()
    for th in ts:
        th.join(60)
    offsets = sorted(o for o, _ in got)
    assert offsets == list(range(100)), "offsets must be unique and contiguous"
    entries = agent.read(t, partition=2, offset=0, count=100).entries
    assert {e.offset: e.value for e in entries} == dict(got), (
        "each offset must hold the entry its Produce was told")
