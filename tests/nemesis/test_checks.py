"""The nemesis' verdicts have teeth: planted faults in made-up topic logs,
feeds and replica views are caught, and clean ones pass. These run without
agents (the linearizability checker has its own such tests in
tests/cluster/test_lincheck.py)."""
from types import SimpleNamespace

import nemesis
from feedfollow import FeedFollower
from mq_cluster_harness import SHARDS, divergence

# Two producers, one partition (12): p0 acked a@0 and c@2, p1 acked b@1;
# d had an unknown outcome.
SENT = {"a", "b", "c", "d"}
ACKED = [(0, 12, 0, "a", 1), (1, 12, 1, "b", 2), (0, 12, 2, "c", 3)]


def topic(entries):
    return nemesis.topic_problems({12: list(enumerate(entries))}, SENT, ACKED)


def test_clean_topic_log_passes_with_or_without_the_unknown_produce():
    assert topic(["a", "b", "c"]) == []
    assert topic(["a", "b", "c", "d"]) == []


def test_topic_gap_is_caught():
    logs = {12: [(0, "a"), (1, "b"), (3, "c")]}
    assert any("offsets not 0..n-1" in p
               for p in nemesis.topic_problems(logs, SENT, ACKED))


def test_duplicate_entry_is_caught_also_for_an_unknown_produce():
    assert any("twice" in p for p in topic(["a", "b", "c", "c"]))
    assert any("twice" in p for p in topic(["a", "b", "c", "d", "d"]))


def test_lost_stray_and_reordered_entries_are_caught():
    assert any("missing or not at" in p for p in topic(["a", "b"]))
    assert any("never produced" in p for p in topic(["a", "b", "c", "x"]))
    assert any("missing or not at" in p for p in topic(["a", "c", "b"]))


def test_acknowledgements_out_of_order_are_caught():
    acked = [(0, 12, 1, "a", 2), (0, 12, 0, "b", 1)]
    problems = nemesis.topic_problems({12: [(0, "b"), (1, "a")]}, SENT, acked)
    assert any("acknowledged at offset 0 after offset 1" in p for p in problems)


def feed(events, start=0):
    f = FeedFollower(lambda n: None, {0: start})
    f.events[0] = list(events)
    f.last[0] = max([start] + [r for r, _ in events])
    return f


def test_clean_feed_passes():
    acked = [("k1", 0, 1), ("k3", 0, 3)]
    assert nemesis.feed_problems(feed([(1, "k1"), (2, "k2"), (3, "k3")]), acked) == []


def test_feed_gap_duplicate_and_reordering_are_caught():
    for events in ([(1, "k1"), (3, "k3")], [(1, "k1"), (1, "k1"), (2, "k2")],
                   [(2, "k2"), (1, "k1")]):
        assert any("out of order, twice or with a gap" in p
                   for p in nemesis.feed_problems(feed(events), [])), events


def test_feed_behind_or_wrong_key_is_caught():
    acked = [("k1", 0, 1), ("k2", 0, 2)]
    assert any("behind" in p for p in nemesis.feed_problems(feed([(1, "k1")]), acked))
    assert any("lacks 1" in p
               for p in nemesis.feed_problems(feed([(1, "k1"), (2, "other")]), acked))


def replicas(*digests):
    def agent(nid, digest):
        shards = [SimpleNamespace(shard=s, digest=digest if s == 3 else "d",
                                  keys=1, applied_index=7) for s in range(SHARDS)]
        return SimpleNamespace(node_id=nid,
                               status=lambda: SimpleNamespace(shards=shards))
    return SimpleNamespace(agents=[agent(f"n{i + 1}", d)
                                   for i, d in enumerate(digests)])


def test_divergent_replicas_are_caught():
    assert divergence(replicas("x", "x", "x")) is None
    problem = divergence(replicas("x", "y", "x"))
    assert problem and "shards [3]" in problem
