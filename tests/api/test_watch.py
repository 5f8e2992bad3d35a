"""Watch: KV and topic events in per-shard revision order, resume after
start_revisions with no gaps and no duplicates, and compacted history
(DESIGN.md sections 2-3)."""
import queue
import threading
import time

import grpc
import pytest

from conftest import SLOW, pb, shard_of, unique, user_in_shard

ET = pb.WatchEvent
EVENT_WAIT = 5.0 * SLOW


class Stream:
    """A Watch call whose events a background thread moves into a queue, so
    a test can wait for the next event with a deadline."""

    def __init__(self, agent, **req):
        self.call = agent.watch.Watch(pb.WatchRequest(**req))
        self.q = queue.Queue()
        self.error = None
        self.t = threading.Thread(target=self._pump, daemon=True)
        self.t.start()

    def _pump(self):
        try:
            for ev in self.call:
                self.q.put(ev)
        except grpc.RpcError as e:
            self.error = e
        self.q.put(None)  # end of stream

    def next(self, timeout=EVENT_WAIT, what="an event"):
        try:
            ev = self.q.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"no watch event within {timeout:.1f}s, waiting for {what}")
        if ev is None:
            self.q.put(None)
            pytest.fail(f"watch stream ended ({self._why()}) waiting for {what}")
        return ev

    def _why(self):
        if self.error is None:
            return "OK"
        return f"{self.error.code().name}: {self.error.details()}"

    def take(self, n, what="events"):
        return [self.next(what=f"{what} ({i + 1} of {n})") for i in range(n)]

    def until(self, pred, what):
        """Events up to and including the first one matching pred."""
        out = []
        while True:
            ev = self.next(what=what)
            out.append(ev)
            if pred(ev):
                return out

    def close(self):
        self.call.cancel()
        self.t.join(5)


def sync_kv(agent, stream, key):
    """Puts `key` until the stream shows it: from then on the watch is
    registered and sees every later change. Returns the events seen."""
    seen = []
    deadline = time.monotonic() + EVENT_WAIT
    while time.monotonic() < deadline:
        rev = agent.put(key, b"sync").revision
        try:
            while True:
                ev = stream.q.get(timeout=0.2)
                if ev is None:
                    pytest.fail(f"watch stream ended ({stream._why()})")
                seen.append(ev)
                if ev.kv.key == key and ev.revision == rev:
                    return seen
        except queue.Empty:
            continue
    pytest.fail("watch never delivered the sync put")


def summary(evs):
    return [(ET.EventType.Name(e.type), e.kv.key, e.revision) for e in evs]


@pytest.fixture
def watcher(agent):
    streams = []

    def open_(**req):
        s = Stream(agent, **req)
        streams.append(s)
        return s
    yield open_
    for s in streams:
        s.close()


def test_kv_events_in_revision_order(agent, watcher):
    user = unique("w")
    prefix = f"user:{user}:w:"
    shard = shard_of(prefix)
    s = watcher(prefix=prefix)
    sync_kv(agent, s, prefix + "sync")

    k1, k2 = prefix + "a", prefix + "b"
    r1 = agent.put(k1, b"v1").revision
    agent.put(f"user:{user}:outside", b"not watched")  # same shard, other prefix
    r2 = agent.put(k1, b"v2").revision
    r3 = agent.delete(k1).revision
    r4 = agent.put(k2, b"short", ttl_ms=200).revision
    evs = s.until(lambda e: e.type == ET.EXPIRE, "the EXPIRE of the ttl key")
    assert summary(evs) == [
        ("PUT", k1, r1), ("PUT", k1, r2), ("DELETE", k1, r3), ("PUT", k2, r4),
        ("EXPIRE", k2, evs[-1].revision)], "events, types or revisions differ"
    assert evs[-1].revision > r4, "an expiry is a mutation with its own revision"
    assert all(e.shard == shard for e in evs)
    put1, put2, dele, put3, exp = evs
    assert (put1.kv.value, put1.kv.version, put1.kv.mod_revision) == (b"v1", 1, r1)
    assert (put2.kv.value, put2.kv.version, put2.kv.create_revision) == (b"v2", 2, r1)
    assert dele.kv.key == k1
    assert put3.kv.expires_at_ms > 0
    assert exp.kv.key == k2

    # Nothing else is pending: the next event is the next change.
    r5 = agent.put(prefix + "last", b"x").revision
    assert summary([s.next(what="the last put")]) == [("PUT", prefix + "last", r5)]


def test_watch_many_shards_each_in_order(agent, watcher):
    tag = unique("m")
    prefix = f"user:{tag}"  # matches user:{tag}* for every suffix user id
    s = watcher(prefix=prefix)
    sync_kv(agent, s, f"user:{tag}sync:x")
    users = [f"{tag}{i}" for i in range(20)]
    want = {}
    for round_ in range(3):
        for u in users:
            k = f"user:{u}:k"
            r = agent.put(k, b"%d" % round_)
            want.setdefault(r.shard, []).append((k, r.revision))
    n = sum(len(v) for v in want.values())
    evs = s.take(n, "puts over many shards")
    got = {}
    for e in evs:
        got.setdefault(e.shard, []).append((e.kv.key, e.revision))
    assert got == want, "per shard, events must arrive in revision order"


def test_topic_watch_gets_produce_events(agent, watcher):
    topic = unique("wt")
    user = unique("tu")
    s = watcher(topic=topic)
    # Sync on the topic itself: produce until the stream shows an entry.
    deadline = time.monotonic() + EVENT_WAIT
    first = None
    while first is None and time.monotonic() < deadline:
        agent.produce(topic, key=f"user:{user}:sync")
        try:
            first = s.q.get(timeout=0.2)
        except queue.Empty:
            pass
    assert first is not None, "topic watch never delivered a PRODUCE"
    # Drain the remaining sync produces: they are all for key ...:sync.
    k = f"user:{user}:e"
    produced = []
    for i in range(3):
        r = agent.produce(topic, key=k, value=b"e%d" % i)
        produced.append(r)
    agent.put(k, b"kv change")  # a KV change is not a topic event
    r_last = agent.produce(topic, key=k, value=b"last")
    evs = s.until(lambda e: e.entry.value == b"last", "the last PRODUCE")
    evs = [e for e in evs if e.entry.key == k]
    assert [ET.EventType.Name(e.type) for e in evs] == ["PRODUCE"] * 4
    assert [(e.entry.offset, e.entry.partition, e.revision) for e in evs] == [
        (r.offset, r.partition, r.revision) for r in produced + [r_last]]
    assert all(e.topic == topic and e.shard == shard_of(k) for e in evs)
    assert [e.entry.value for e in evs] == [b"e0", b"e1", b"e2", b"last"]
    assert all(e.entry.timestamp > 0 for e in evs)


def test_resume_after_start_revisions(agent, watcher):
    # Two users in two shards, both under one watched prefix.
    tag = unique("r")
    ua = next(u for u in (f"{tag}a{i}" for i in range(10000))
              if shard_of(f"user:{u}:") == 4)
    ub = next(u for u in (f"{tag}b{i}" for i in range(10000))
              if shard_of(f"user:{u}:") == 11)
    prefix = f"user:{tag}"
    s = watcher(prefix=prefix)
    sync_kv(agent, s, f"user:{ua}:sync")
    agent.put(f"user:{ua}:x", b"1")
    agent.put(f"user:{ub}:x", b"1")
    before = s.take(2, "the two puts before the disconnect")
    last = {e.shard: e.revision for e in before}
    assert set(last) == {4, 11}
    s.close()

    missed = [
        ("PUT", f"user:{ua}:y", agent.put(f"user:{ua}:y", b"2").revision),
        ("DELETE", f"user:{ua}:x", agent.delete(f"user:{ua}:x").revision),
        ("PUT", f"user:{ub}:y", agent.put(f"user:{ub}:y", b"2").revision),
        ("PUT", f"user:{ua}:x", agent.put(f"user:{ua}:x", b"3").revision),
        ("PUT", f"user:{ub}:x", agent.put(f"user:{ub}:x", b"4").revision),
    ]
    s2 = watcher(prefix=prefix, start_revisions=last)
    evs = s2.take(len(missed), "the missed events")
    by_shard = {}
    for e in evs:
        by_shard.setdefault(e.shard, []).append(summary([e])[0])
    assert by_shard == {
        4: [m for m in missed if shard_of(m[1]) == 4],
        11: [m for m in missed if shard_of(m[1]) == 11],
    }, "resume must deliver exactly the missed events, in order"

    # No duplicates after the catch-up: the next event per shard is new.
    ra = agent.put(f"user:{ua}:z", b"5").revision
    assert summary([s2.next(what="a new put")]) == [("PUT", f"user:{ua}:z", ra)]
    rb = agent.put(f"user:{ub}:z", b"5").revision
    assert summary([s2.next(what="a new put")]) == [("PUT", f"user:{ub}:z", rb)]


def test_resume_from_current_revision_sees_only_new_events(agent, watcher):
    user = unique("c")
    k = f"user:{user}:k"
    rev = agent.put(k, b"old").revision
    s = watcher(prefix=f"user:{user}:", start_revisions={shard_of(k): rev})
    r2 = agent.put(k, b"new").revision
    assert summary([s.next(what="the put after the start revision")]) == [
        ("PUT", k, r2)]


def test_compacted_revision_is_out_of_range(make_agent):
    a = make_agent("--watch-history", "10")
    user = user_in_shard(6)
    for i in range(50):
        a.put(f"user:{user}:k{i % 5}", b"%d" % i)
    call = a.watch.Watch(pb.WatchRequest(prefix="", start_revisions={6: 1}),
                         timeout=10 * SLOW)
    events = []
    with pytest.raises(grpc.RpcError) as ei:
        for ev in call:
            events.append(ev)
    err = ei.value
    assert err.code() == grpc.StatusCode.OUT_OF_RANGE, (
        f"expected OUT_OF_RANGE, got {err.code().name}: {err.details()}")
    assert "compact" in (err.details() or "").lower(), (
        f"message {err.details()!r} does not mention compaction")
    assert events == [], "no events may be sent across a compacted gap"
