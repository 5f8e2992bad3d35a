#!/usr/bin/env python3
"""Small Kafka client for the service scripts, on librdkafka (confluent-kafka),
the same client library the agent's ingest uses.

  kafka_client.py wait BOOTSTRAP TIMEOUT_S [PID]
      until the broker answers a metadata request and lists itself as a
      broker; fails early if PID (the broker's) exits.
  kafka_client.py create-topic BOOTSTRAP TOPIC PARTITIONS
      creates TOPIC (replication factor 1) and waits until every partition
      has a leader; an existing topic with that many partitions is fine.
  kafka_client.py roundtrip BOOTSTRAP TOPIC COUNT
      produces COUNT keyed records, then reads the topic from the start with
      a new consumer group and checks that exactly those records come back.
"""
import os
import sys
import time
import uuid

from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

QUIET = {"log_level": 0}  # librdkafka's own log lines would go to stderr


def pid_gone(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(") ", 1)[1].startswith("Z")
    except FileNotFoundError:
        return True


def wait(bootstrap, timeout_s, pid=None):
    admin = AdminClient({"bootstrap.servers": bootstrap, **QUIET})
    deadline = time.monotonic() + float(timeout_s)
    last = "no answer"
    while time.monotonic() < deadline:
        if pid and pid_gone(pid):
            sys.exit(f"kafka_client: broker pid {pid} exited")
        try:
            md = admin.list_topics(timeout=2)
            if md.brokers:
                return
            last = "metadata lists no broker"
        except KafkaException as e:
            last = str(e)
        time.sleep(0.2)
    sys.exit(f"kafka_client: {bootstrap} not ready after {timeout_s}s: {last}")


def topic_ready(admin, topic, partitions):
    md = admin.list_topics(topic=topic, timeout=5)
    t = md.topics.get(topic)
    if t is None or t.error is not None or len(t.partitions) != partitions:
        return False
    return all(p.leader >= 0 for p in t.partitions.values())


def create_topic(bootstrap, topic, partitions):
    partitions = int(partitions)
    admin = AdminClient({"bootstrap.servers": bootstrap, **QUIET})
    fut = admin.create_topics([NewTopic(topic, num_partitions=partitions,
                                        replication_factor=1)])[topic]
    try:
        fut.result(timeout=30)
    except KafkaException as e:
        if e.args[0].name() != "TOPIC_ALREADY_EXISTS":
            raise
        md = admin.list_topics(topic=topic, timeout=5)
        have = len(md.topics[topic].partitions)
        if have != partitions:
            sys.exit(f"kafka_client: topic {topic} exists with {have} partitions, not {partitions}")
    deadline = time.monotonic() + 30
    while not topic_ready(admin, topic, partitions):
        if time.monotonic() > deadline:
            sys.exit(f"kafka_client: topic {topic} has no leader for every partition after 30s")
        time.sleep(0.1)


def roundtrip(bootstrap, topic, count):
    count = int(count)
    run = uuid.uuid4().hex[:8]
    sent = {}
    errors = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(str(err))
        else:
            sent[msg.key().decode()] = (msg.partition(), msg.offset())

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                  "enable.idempotence": True, **QUIET})
    for i in range(count):
        p.produce(topic, key=f"user:{i}:{run}", value=f"v{i}-{run}",
                  on_delivery=on_delivery)
    left = p.flush(30)
    if left or errors or len(sent) != count:
        sys.exit(f"kafka_client: produce failed: {left} undelivered, errors {errors[:3]}")

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"selftest-{run}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                  **QUIET})
    c.subscribe([topic])
    got = {}
    deadline = time.monotonic() + 60
    while len(got) < count and time.monotonic() < deadline:
        msg = c.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            sys.exit(f"kafka_client: consume error: {msg.error()}")
        key = msg.key().decode()
        if key.endswith(run):
            got[key] = (msg.partition(), msg.offset())
    c.close()
    if got != sent:
        sys.exit(f"kafka_client: consumed {len(got)} of {count} records "
                 f"(or at other positions than produced)")
    parts = sorted({p for p, _ in got.values()})
    print(f"kafka roundtrip ok: {count} records over partitions {parts}")


def main(argv):
    cmds = {"wait": (wait, 2, 3), "create-topic": (create_topic, 3, 3),
            "roundtrip": (roundtrip, 3, 3)}
    if len(argv) < 2 or argv[1] not in cmds:
        sys.exit(__doc__)
    fn, lo, hi = cmds[argv[1]]
    args = argv[2:]
    if not lo <= len(args) <= hi:
        sys.exit(__doc__)
    fn(*args)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main(sys.argv)
