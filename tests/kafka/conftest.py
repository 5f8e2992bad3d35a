"""Fixtures for the Kafka ingestion tests: a real Apache Kafka broker and
agents that consume from it.

The cluster harness of tests/cluster/conftest.py (itself built on the
single-agent harness of tests/api) is loaded as a plain module, so its
agent wrapper, health checks and failure reports are reused, not copied.

The broker is Kafka 4.4.0 in KRaft mode (one broker+controller on loopback
ports it picks), started by scripts/services/kafka.sh in a temporary
directory and stopped at the end of the module. Test records are produced
with confluent-kafka (librdkafka) and read back through the MemQuorum API:
every topic-log partition (one per shard) for --kafka-target log, Get for
kv. Without Java, the broker jars or confluent-kafka every test is skipped
and says why.
"""
import importlib.util
import json
import os
import pathlib
import shutil
import subprocess
import sys
import time
import urllib.request

import pytest

_HERE = pathlib.Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location(
    "mq_cluster_harness", _HERE.parent / "cluster" / "conftest.py")
cl = importlib.util.module_from_spec(_spec)
sys.modules["mq_cluster_harness"] = cl
_spec.loader.exec_module(cl)

api = cl.api
pb = api.pb
REPO = api.REPO
SLOW = api.SLOW
SHARDS = api.SHARDS
KAFKA_SH = REPO / "scripts" / "services" / "kafka.sh"
KAFKA_VERSION = os.environ.get("KAFKA_VERSION", "4.4.0")
MQ_CACHE = pathlib.Path(os.environ.get("MQ_CACHE",
                                       pathlib.Path.home() / ".cache" / "memquorum"))

pytest_runtest_makereport = cl.pytest_runtest_makereport
pytest_sessionfinish = cl.pytest_sessionfinish
make_agent = api.make_agent

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def require_kafka():
    libs = MQ_CACHE / f"kafka-{KAFKA_VERSION}" / "libs"
    if not libs.is_dir() or not any(libs.glob("kafka_2.13-*.jar")):
        pytest.skip(f"Kafka {KAFKA_VERSION} jars are not in {libs}: "
                    "run bash scripts/install-services.sh")
    if not (os.environ.get("JAVA") or shutil.which("java")):
        pytest.skip("no java on PATH: run bash scripts/install-services.sh")
    try:
        import confluent_kafka  # noqa: F401
    except ImportError:
        pytest.skip("confluent-kafka is not installed: run bash scripts/install-services.sh")


class Broker:
    """One Kafka broker run by kafka.sh in `dir`, and the test's producer."""

    def __init__(self, dir):
        self.dir = pathlib.Path(dir)
        self.bootstrap = None
        self._producer = None

    def _run(self, *args, timeout=180):
        r = subprocess.run(["bash", str(KAFKA_SH), *args], capture_output=True,
                           text=True, timeout=timeout)
        if r.returncode != 0:
            pytest.fail(f"kafka.sh {' '.join(args)} failed ({r.returncode}):\n"
                        f"{r.stdout}\n{r.stderr}")
        return r.stdout

    def start(self):
        for line in self._run("start", str(self.dir)).splitlines():
            if line.startswith("KAFKA_BOOTSTRAP="):
                self.bootstrap = line.split("=", 1)[1]
        assert self.bootstrap, "kafka.sh start printed no KAFKA_BOOTSTRAP"
        return self

    def restart(self):
        self._run("restart", str(self.dir))

    def stop(self):
        if self._producer is not None:
            self._producer.flush(5)
            self._producer = None
        self._run("stop", str(self.dir))

    def create_topic(self, topic, partitions):
        self._run("create-topic", str(self.dir), topic, str(partitions))

    def producer(self):
        from confluent_kafka import Producer
        if self._producer is None:
            self._producer = Producer({
                "bootstrap.servers": self.bootstrap, "linger.ms": 5,
                "enable.idempotence": True, "log_level": 0,
                "message.timeout.ms": 120000})
        return self._producer

    def produce(self, topic, records, flush=True):
        """records: (key, value) pairs, value None for a tombstone; in
        order per key (one partition per key, idempotent producer)."""
        p = self.producer()
        errors = []

        def report(err, msg):
            if err is not None:
                errors.append(str(err))
        for i, (key, value) in enumerate(records):
            while True:
                try:
                    p.produce(topic, key=key, value=value, on_delivery=report)
                    break
                except BufferError:
                    p.poll(0.05)
            if i % 1000 == 0:
                p.poll(0)
        if flush:
            left = p.flush(120)
            assert left == 0, f"{left} records not delivered to the broker"
        assert not errors, f"produce failed: {errors[:3]}"

    def consume_all(self, topic, expect, timeout=30):
        """The records of `topic` (key, value, headers), read from the start
        by a fresh group until `expect` of them arrived."""
        from confluent_kafka import Consumer
        c = Consumer({"bootstrap.servers": self.bootstrap, "log_level": 0,
                      "group.id": f"check-{time.monotonic_ns()}",
                      "auto.offset.reset": "earliest", "enable.auto.commit": False})
        c.subscribe([topic])
        got = []
        deadline = time.monotonic() + timeout * SLOW
        try:
            while len(got) < expect and time.monotonic() < deadline:
                m = c.poll(0.5)
                if m is not None and m.error() is None:
                    got.append((m.key(), m.value(), dict(m.headers() or [])))
        finally:
            c.close()
        return got


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    require_kafka()
    b = Broker(tmp_path_factory.mktemp("kafka")).start()
    yield b
    b.stop()


def metrics(agent):
    """The agent's /metrics samples as {name{labels}: value}."""
    with _NO_PROXY.open(f"http://{agent.http_address}/metrics", timeout=3) as r:
        out = {}
        for line in r.read().decode().splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
        return out


def read_log(agent, topic):
    """Every entry of the MemQuorum topic log `topic`, per shard in offset
    order: {shard: [Entry, ...]}."""
    out = {}
    for shard in range(SHARDS):
        entries, offset = [], 0
        while True:
            r = agent.partition.Read(pb.ReadRequest(topic=topic, partition=shard,
                                                    offset=offset, count=10000),
                                     timeout=10)
            entries.extend(r.entries)
            if not r.entries or r.next_offset >= r.high_watermark:
                break
            offset = r.next_offset
        out[shard] = entries
    return out


def record(user, seq, pad=100):
    """A test record of user `user`, number `seq` of that user: key
    user:{user}:ev, a value of `pad` bytes that names both."""
    body = json.dumps({"u": user, "s": seq})
    return f"user:{user}:ev".encode(), body.ljust(pad).encode()


def check_exactly_once_in_order(log, expect):
    """expect: {user: count}. Every record of every user is in the log once,
    in the order it was produced (seq 0, 1, 2, ...), on the user's shard."""
    seen = {}
    for shard, entries in log.items():
        for e in entries:
            v = json.loads(e.value)
            assert api.shard_of(e.key) == shard, f"{e.key} on shard {shard}"
            seen.setdefault(v["u"], []).append(v["s"])
    problems = []
    for user, n in expect.items():
        got = seen.get(user, [])
        if got != list(range(n)):
            dup = len(got) - len(set(got))
            missing = sorted(set(range(n)) - set(got))[:5]
            order = all(a < b for a, b in zip(got, got[1:]))
            problems.append(f"user {user}: {len(got)} of {n} records, {dup} duplicates, "
                            f"missing {missing}, in order {order}")
    extra = set(seen) - set(expect)
    assert not extra, f"records of users never produced: {sorted(extra)[:5]}"
    assert not problems, "\n".join(problems[:10])


def wait_log_total(agent, topic, total, timeout=60, reached=None):
    """Waits until the topic log holds `total` entries in all; returns the
    log. reached (a list) gets the monotonic time that was first seen."""
    deadline = time.monotonic() + timeout * SLOW
    log = None
    while time.monotonic() < deadline:
        try:
            log = read_log(agent, topic)
            n = sum(len(v) for v in log.values())
            if n >= total:
                if reached is not None:
                    reached.append(time.monotonic())
                time.sleep(0.5)  # any duplicate would show up now too
                return read_log(agent, topic)
        except Exception:  # an agent restarting: try again
            pass
        time.sleep(0.05)
    n = sum(len(v) for v in log.values()) if log else 0
    pytest.fail(f"the topic log {topic} holds {n} of {total} entries after {timeout} s")
