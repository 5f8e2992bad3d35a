"""Kafka ingestion (issue 10, DESIGN.md section 9) against a real broker.

Three agents share one consumer group on a 4-partition topic and append
each record to the MemQuorum topic log of the same name. The tests of this
module run in order on one cluster and one topic: each adds records and
checks the whole log record by record — every record once, each user's in
the order produced — through steady state, kill -9 of the agents holding
partitions (restarted with empty memory, rejoining the group), and a broker
restart. A lone agent with --kafka-target kv checks puts, tombstones and
bad records (counted, sent to the DLQ topic).
"""
import json
import subprocess
import threading
import time

import grpc
import pytest

from conftest import (Broker, check_exactly_once_in_order, cl, metrics, record,  # noqa: F401
                      wait_log_total, SLOW, require_kafka, pb)

MQCTL = cl.AGENT_BIN.parent / "mqctl"
TOPIC = "events"
PARTITIONS = 4
USERS = 40


@pytest.fixture(scope="module")
def kafka_cluster(broker, tmp_path_factory):
    broker.create_topic(TOPIC, PARTITIONS)
    c = cl.Cluster(tmp_path_factory.mktemp("cluster"), extra_args=[
        "--kafka-enabled", "--kafka-bootstrap-servers", broker.bootstrap,
        "--kafka-topic", TOPIC, "--kafka-session-timeout", "6s"]).start()
    yield c
    problems = c.close()
    if problems:
        pytest.fail("cluster shutdown: " + "\n".join(problems))


class Feed:
    """What the module produced so far: records per user, numbered."""

    def __init__(self, broker):
        self.broker = broker
        self.count = {}

    def batch(self, n, users=USERS):
        out = []
        for i in range(n):
            u = i % users
            s = self.count.get(u, 0)
            self.count[u] = s + 1
            out.append(record(u, s))
        return out

    def produce(self, n, flush=True):
        self.broker.produce(TOPIC, self.batch(n), flush=flush)

    @property
    def total(self):
        return sum(self.count.values())


@pytest.fixture(scope="module")
def feed(broker):
    return Feed(broker)


def assigned(agent):
    """Kafka partitions this agent consumes, from its /metrics."""
    try:
        m = metrics(agent)
    except OSError:
        return set()
    return {int(k.split('"')[1]) for k in m if k.startswith("memquorum_kafka_committed_offset{")}


def any_up(c):
    return c.up()[0]


def test_steady_state_exactly_once_in_order(kafka_cluster, feed):
    c = kafka_cluster
    feed.produce(2000)
    log = wait_log_total(any_up(c), TOPIC, feed.total)
    check_exactly_once_in_order(log, feed.count)
    # one group for the cluster: each partition consumed by exactly one agent
    owners = {}
    for a in c.agents:
        for p in assigned(a):
            assert p not in owners, f"partition {p} consumed by {owners[p]} and {a.node_id}"
            owners[p] = a.node_id
    assert set(owners) == set(range(PARTITIONS)), owners
    # mqctl kafka shows each agent its partitions; once the offsets are
    # committed (every 500 ms), together they cover every record, lag 0
    deadline = time.monotonic() + 15
    while True:
        views = {a.node_id: mqctl_kafka(a) for a in c.agents}
        committed = sum(p["committed"] for v in views.values() for p in v["partitions"])
        lags = [p["lag"] for v in views.values() for p in v["partitions"]]
        if committed == feed.total and not any(lags) or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    for a in c.agents:
        v = views[a.node_id]
        assert v["connected"] and v["bad"] == 0, v
        assert {p["partition"] for p in v["partitions"]} == assigned(a), (a.node_id, v)
    assert committed == feed.total and not any(lags), views
    assert sum(v["ingested"] for v in views.values()) >= feed.total, views
    # the Kafka timestamp is kept
    e = next(e for es in log.values() for e in es)
    assert abs(e.timestamp - time.time() * 1000) < 600000, e.timestamp


def mqctl_kafka(agent):
    """`mqctl kafka --json` against the agent's HTTP port."""
    out = subprocess.run([str(MQCTL), "kafka", "--http", agent.http_address, "--json"],
                         capture_output=True, text=True, timeout=10)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def produce_slowly(feed, n, chunk, pause, done):
    try:
        for _ in range(n // chunk):
            feed.produce(chunk)
            time.sleep(pause)
    finally:
        done.set()


def test_kill9_of_partition_holders_and_empty_restart(kafka_cluster, feed):
    c = kafka_cluster
    done = threading.Event()
    t = threading.Thread(target=produce_slowly, args=(feed, 3000, 100, 0.1, done))
    t.start()
    try:
        for _ in range(2):
            # after a kill the group rebalances once the session times out
            holders = cl.wait_for(lambda: [a for a in c.up() if assigned(a)], 40,
                                  "an agent holding partitions")
            victim = holders[0]
            victim.kill9()
            time.sleep(1.0)
            c.restart(victim.node_id)
            c.wait_healthy(f"{victim.node_id} back with empty memory")
    finally:
        t.join(120)
    assert done.is_set()
    # the group rebalances after the session timeout; the restarted agents
    # rejoin it
    log = wait_log_total(any_up(c), TOPIC, feed.total, timeout=90)
    check_exactly_once_in_order(log, feed.count)
    cl.wait_for(lambda: set().union(*(assigned(a) for a in c.agents)) == set(range(PARTITIONS)),
                30, "every partition assigned again")


def test_broker_restart(kafka_cluster, feed, broker):
    c = kafka_cluster
    feed.produce(1000)
    broker.stop()
    # the API keeps serving and readiness does not depend on Kafka
    time.sleep(2.0)
    for a in c.agents:
        assert a.http_status("/readyz") == 200, a.node_id
        a.put("user:1:while-kafka-down", b"x")
    broker._run("start", str(broker.dir))
    feed.produce(1000)
    log = wait_log_total(any_up(c), TOPIC, feed.total, timeout=90)
    check_exactly_once_in_order(log, feed.count)
    cl.wait_for(lambda: all(metrics(a).get("memquorum_kafka_connected") == 1 for a in c.agents),
                30, "every agent reconnected")


def test_ingestion_rate(kafka_cluster, feed, capsys):
    """End-to-end: records produced to the broker -> visible through the
    API, 100-byte values, three agents. Prints the figure."""
    c = kafka_cluster
    n = 20000
    before = feed.total
    t0 = time.monotonic()
    feed.produce(n)
    produced = time.monotonic() - t0
    reached = []
    log = wait_log_total(any_up(c), TOPIC, before + n, timeout=120, reached=reached)
    elapsed = reached[0] - t0
    check_exactly_once_in_order(log, feed.count)
    with capsys.disabled():
        print(f"\nkafka ingestion: {n} records of 100 bytes, 3 agents, {PARTITIONS} partitions: "
              f"{elapsed:.2f} s produce->visible ({n / elapsed:.0f} records/s; "
              f"producing took {produced:.2f} s)")


# ---------------------------------------------------------------------------
# Lost proposals: the shard refuses the records after a gap


def test_lost_proposals_are_resent_not_skipped(broker, make_agent):
    """One record request in 7 (pseudo-random, fixed sequence) is lost on
    its way to the node (as a proposal lost in a leader change). Later
    records of the same shard name the lost one as their predecessor, so
    the shard refuses them instead of recording a position past the lost
    one (after which the resent record would be skipped forever as a
    duplicate); the consumer resends from the gap. Every record must land
    once, in order."""
    topic = "gaps"
    broker.create_topic(topic, 2)
    a = make_agent("--kafka-enabled", "--kafka-bootstrap-servers", broker.bootstrap,
                   "--kafka-topic", topic, env={"MEMQUORUM_TEST_KAFKA_DROP_EVERY": "7"})
    count = {}
    records = []
    for i in range(1500):
        u = i % 10  # few users: the records after a lost one share its shard
        s = count.get(u, 0)
        count[u] = s + 1
        records.append(record(u, s))
    broker.produce(topic, records)
    log = wait_log_total(a, topic, len(records), timeout=90)
    check_exactly_once_in_order(log, count)
    m = metrics(a)
    assert m["memquorum_kafka_refused_total"] > 0, "no record was refused after a gap"
    assert m["memquorum_kafka_rewinds_total"] > 0


# ---------------------------------------------------------------------------
# kv target, tombstones, bad records and the DLQ


def test_kv_target_tombstones_and_bad_records(broker, make_agent):
    topic, dlq = "kv-in", "kv-dlq"
    broker.create_topic(topic, 2)
    broker.create_topic(dlq, 1)
    a = make_agent("--kafka-enabled", "--kafka-bootstrap-servers", broker.bootstrap,
                   "--kafka-topic", topic, "--kafka-target", "kv", "--kafka-dlq-topic", dlq,
                   "--max-value-bytes", "1000")
    good = [(f"user:{u}:profile".encode(), f"v{u}-{i}".encode()) for i in range(3)
            for u in range(20)]
    tombstones = [(f"user:{u}:profile".encode(), None) for u in range(0, 20, 2)]
    bad = [(b"", b"no key"), (b"user:7:\xff\xfe", b"not utf-8"),
           (b"user:8:big", b"x" * 2000)]
    broker.produce(topic, good + bad + tombstones)

    def settled():
        try:
            return metrics(a).get("memquorum_kafka_bad_records_total") == len(bad) and \
                all(_get(a, f"user:{u}:profile") == (None if u % 2 == 0 else f"v{u}-2".encode())
                    for u in range(20))
        except OSError:
            return False
    cl.wait_for(settled, 60, "puts, tombstones and bad records applied")
    # a bad record blocks nothing: records after it were applied (above),
    # and each went to the DLQ with where it came from
    got = broker.consume_all(dlq, len(bad))
    assert sorted(k for k, _, _ in got) == sorted(k for k, _ in bad), got
    for key, value, headers in got:
        assert headers["memquorum.source.topic"] == topic.encode()
        assert int(headers["memquorum.source.offset"]) >= 0
        assert headers["memquorum.error"]
    # the delivery reports come after the broker made the records readable
    cl.wait_for(lambda: metrics(a)["memquorum_kafka_dlq_records_total"] == len(bad), 10,
                "the DLQ delivery reports")


def _get(agent, key):
    try:
        return agent.get(key).value
    except grpc.RpcError as e:
        if e.code() == grpc.StatusCode.NOT_FOUND:
            return None
        raise
