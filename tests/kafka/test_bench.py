"""Ingestion figures for the README, run on demand (MQ_KAFKA_BENCH=1):

  MQ_KAFKA_BENCH=1 python3 -m pytest -q -s tests/kafka/test_bench.py

- backlog drain: 100,000 records of 100 bytes produced before three agents
  start consuming; records/s until the last is committed in Raft, then
  checked record by record;
- lag recovery: records produced at a steady 2,000/s while the agent that
  holds the most partitions is killed, kept down 60 s and restarted with
  empty memory; the time until the topic log holds everything produced.
"""
import os
import threading
import time

import pytest

from conftest import check_exactly_once_in_order, cl, metrics, read_log, record

pytestmark = pytest.mark.skipif(os.environ.get("MQ_KAFKA_BENCH") != "1",
                                reason="figures, not tests: set MQ_KAFKA_BENCH=1")


def ingested(c):
    total = 0
    for a in c.up():
        try:
            total += metrics(a)["memquorum_kafka_records_ingested_total"]
        except OSError:
            pass
    return total


def log_total(a, topic):
    return sum(len(v) for v in read_log(a, topic).values())


def start_cluster(broker, tmp, topic):
    return cl.Cluster(tmp, extra_args=[
        "--kafka-enabled", "--kafka-bootstrap-servers", broker.bootstrap,
        "--kafka-topic", topic, "--kafka-session-timeout", "6s"]).start()


def test_backlog_drain(broker, tmp_path):
    topic, n, users = "bench-backlog", 100000, 1000
    broker.create_topic(topic, 4)
    count, records = {}, []
    for i in range(n):
        u = i % users
        count[u] = count.get(u, 0) + 1
        records.append(record(u, count[u] - 1))
    broker.produce(topic, records)
    c = start_cluster(broker, tmp_path, topic)
    try:
        t0 = time.monotonic()
        cl.wait_for(lambda: ingested(c) >= n, 300, "the backlog ingested", interval=0.05)
        dt = time.monotonic() - t0
        check_exactly_once_in_order(read_log(c.agents[0], topic), count)
        print(f"\nbacklog drain: {n} records of 100 bytes, 3 agents, 4 partitions: "
              f"{dt:.2f} s after the cluster was healthy, {n / dt:.0f} records/s")
    finally:
        c.close()


def test_lag_recovery_after_one_minute_outage(broker, tmp_path):
    topic, rate, users = "bench-outage", 2000, 200
    broker.create_topic(topic, 4)
    c = start_cluster(broker, tmp_path, topic)
    count = {}
    stop = threading.Event()

    def produce():
        i = 0
        while not stop.is_set():
            t = time.monotonic()
            batch = []
            for _ in range(rate // 10):
                u = i % users
                count[u] = count.get(u, 0) + 1
                batch.append(record(u, count[u] - 1))
                i += 1
            broker.produce(topic, batch)
            time.sleep(max(0.0, 0.1 - (time.monotonic() - t)))
    t = threading.Thread(target=produce)
    t.start()
    try:
        time.sleep(10)
        holders = sorted(c.agents, key=lambda a: -len([k for k in metrics(a)
                         if k.startswith("memquorum_kafka_committed_offset{")]))
        victim = holders[0]
        killed = time.monotonic()
        victim.kill9()
        # during the outage: when every partition is owned again, and the
        # largest lag the live agents report
        owned_again, max_lag = None, 0
        while time.monotonic() < killed + 60:
            parts, lag = set(), 0
            for a in c.up():
                try:
                    m = metrics(a)
                except OSError:
                    continue
                for k, v in m.items():
                    if k.startswith("memquorum_kafka_lag{"):
                        parts.add(k)
                        lag += v
            max_lag = max(max_lag, lag)
            if owned_again is None and len(parts) == 4:
                owned_again = time.monotonic() - killed
            time.sleep(0.5)
        c.restart(victim.node_id)
        restarted = time.monotonic()
        time.sleep(10)
        stop.set()
        t.join()
        want = sum(count.values())
        done = cl.wait_for(lambda: log_total(c.up()[0], topic) >= want and time.monotonic(),
                           120, "everything produced ingested", interval=0.2)
        check_exactly_once_in_order(read_log(c.up()[0], topic), count)
        print(f"\nlag recovery: {rate} records/s produced; the agent holding the most "
              f"partitions killed -9, down 60 s, restarted empty; producing stopped 10 s "
              f"after; all {want} records ingested {done - restarted:.1f} s after the "
              f"restart ({done - killed:.1f} s after the kill); its partitions were owned "
              f"again {owned_again or -1:.1f} s after the kill, largest lag seen "
              f"{max_lag:.0f} records")
    finally:
        stop.set()
        t.join()
        c.close()
