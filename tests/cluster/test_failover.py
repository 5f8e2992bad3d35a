"""Leader failover under load, and what clients saw meanwhile.

One module-scoped run kills the leader of a chosen shard with kill -9 ten
times (restarting it empty each time and waiting for the cluster to heal)
while client threads keep working:

- two writers put unique keys into the shard whose leader is about to be
  killed, through the surviving agents; the time from each kill to the first
  acknowledged write invoked after it is the failover time;
- four linearizability workers put unique values to, and linearizably get,
  three keys (in the shards being killed) through all agents, recording a
  history for porcupine;
- from each kill until half a second after the first acknowledged write,
  the surviving agents' /readyz is read every few milliseconds: electing a
  new leader must not take them out of their Services.

The tests below then judge that run: failover time, no acknowledged write
lost, and the history linearizable.
"""
import collections
import os
import random
import statistics
import threading
import time

import grpc
import pytest

import history
from conftest import SLOW, not_sent, pb, user_in_shard

ROUNDS = 10
KILL_SHARDS = (2, 7, 12)          # the lin keys live here; rounds cycle them
FAILOVER_BOUND = 15.0             # sanity bound only; the numbers are printed
WRITE_DEADLINE = 2.0
LIN_DEADLINE = 3.0
LIN_WORKERS = 4
LIN_PAUSE = 0.01


class Writers:
    """Threads putting unique keys into the current target shard."""

    def __init__(self, cluster, n=2):
        self.cluster = cluster
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.target = None           # (shard, uid)
        self.acked = []              # (key, value, call, ret, shard)
        self.unknown = 0
        self.codes = collections.Counter()
        self.unexpected = []
        self.threads = [threading.Thread(target=self.run, args=(t,), daemon=True)
                        for t in range(n)]

    def set_target(self, shard):
        with self.lock:
            self.target = (shard, user_in_shard(shard))
        return time.monotonic()

    def run(self, tid):
        rng = random.Random(tid)
        n = 0
        while not self.stop.is_set():
            with self.lock:
                shard, uid = self.target
            up = self.cluster.up()
            if not up:
                time.sleep(0.01)
                continue
            via = rng.choice(up)
            n += 1
            key, value = f"user:{uid}:w{tid}-{n}", f"{tid}-{n}".encode()
            call = time.monotonic()
            try:
                via.kv.Put(pb.PutRequest(key=key, value=value),
                           timeout=WRITE_DEADLINE)
            except (grpc.RpcError, ValueError) as e:
                if not not_sent(e):
                    code = e.code()
                    with self.lock:
                        self.codes[code.name] += 1
                    if code in (grpc.StatusCode.UNAVAILABLE,
                                grpc.StatusCode.DEADLINE_EXCEEDED):
                        with self.lock:
                            self.unknown += 1
                    else:
                        with self.lock:
                            self.unexpected.append(
                                f"Put {key} via {via.node_id}: {code.name} "
                                f"{e.details()}")
                time.sleep(0.01)
                continue
            ret = time.monotonic()
            with self.lock:
                self.acked.append((key, value, call, ret, shard))

    def first_ack_after(self, shard, t):
        """Return time of the first acked write to `shard` invoked at or
        after t, or None."""
        with self.lock:
            rets = [ret for _, _, call, ret, s in self.acked
                    if s == shard and call >= t]
        return min(rets) if rets else None


class Producer:
    """Appends unique values to the target shard's partition of one topic
    through surviving agents. Appends are not idempotent, so a write retried
    across a leader change and applied twice shows up as a duplicate."""

    def __init__(self, cluster, writers, topic):
        self.cluster = cluster
        self.writers = writers
        self.topic = topic
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.acked = []              # (partition, offset, value)
        self.sent = set()            # every value that may have been applied
        self.unexpected = []
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        rng = random.Random(77)
        n = 0
        while not self.stop.is_set():
            with self.writers.lock:
                shard, _ = self.writers.target
            up = self.cluster.up()
            if not up:
                time.sleep(0.01)
                continue
            via = rng.choice(up)
            n += 1
            value = f"p{n}".encode()
            try:
                r = via.partition.Produce(pb.ProduceRequest(
                    topic=self.topic, partition=shard,
                    entry=pb.Entry(key=f"k{n}", value=value)),
                    timeout=WRITE_DEADLINE)
            except (grpc.RpcError, ValueError) as e:
                if not not_sent(e):
                    with self.lock:
                        self.sent.add(value)
                        if e.code() not in (grpc.StatusCode.UNAVAILABLE,
                                            grpc.StatusCode.DEADLINE_EXCEEDED):
                            self.unexpected.append(
                                f"Produce via {via.node_id}: {e.code().name} "
                                f"{e.details()}")
                time.sleep(0.01)
                continue
            with self.lock:
                self.sent.add(value)
                self.acked.append((r.partition, r.offset, value))
            time.sleep(0.002)


class LinWorkers:
    """Threads doing puts with unique values and linearizable gets."""

    def __init__(self, cluster, keys, n=LIN_WORKERS):
        self.cluster = cluster
        self.keys = keys
        self.history = history.History()
        self.stop = threading.Event()
        self.unexpected = []
        self.threads = [threading.Thread(target=self.run, args=(w,), daemon=True)
                        for w in range(n)]

    def run(self, w):
        rng = random.Random(1000 + w)
        client = self.history.new_client()
        n = 0
        while not self.stop.is_set():
            up = self.cluster.up()
            if not up:
                time.sleep(0.01)
                continue
            via = rng.choice(up)
            key = rng.choice(self.keys)
            n += 1
            if rng.random() < 0.5:
                value = f"w{w}-{n}"
                call = history.now_ns()
                try:
                    via.kv.Put(pb.PutRequest(key=key, value=value.encode()),
                               timeout=LIN_DEADLINE)
                    self.history.put(client, key, value, call, history.now_ns())
                except (grpc.RpcError, ValueError) as e:
                    if not_sent(e):
                        pass
                    else:
                        if e.code() not in (grpc.StatusCode.UNAVAILABLE,
                                            grpc.StatusCode.DEADLINE_EXCEEDED):
                            self.unexpected.append(
                                f"Put {key} via {via.node_id}: "
                                f"{e.code().name} {e.details()}")
                        # May have been applied, at any time from now on.
                        self.history.put(client, key, value, call, -1)
                        client = self.history.new_client()
            else:
                call = history.now_ns()
                try:
                    kv = via.kv.Get(pb.GetRequest(
                        key=key, consistency=pb.LINEARIZABLE),
                        timeout=LIN_DEADLINE).kv
                    self.history.get(client, key, True, kv.value.decode(),
                                     call, history.now_ns())
                except (grpc.RpcError, ValueError) as e:
                    if not not_sent(e) and e.code() == grpc.StatusCode.NOT_FOUND:
                        self.history.get(client, key, False, "", call,
                                         history.now_ns())
                    elif not not_sent(e) and e.code() not in (
                            grpc.StatusCode.UNAVAILABLE,
                            grpc.StatusCode.DEADLINE_EXCEEDED):
                        self.unexpected.append(
                            f"Get {key} via {via.node_id}: "
                            f"{e.code().name} {e.details()}")
            time.sleep(LIN_PAUSE)


@pytest.fixture(scope="module")
def run(cluster, tmp_path_factory):
    """Does the kill rounds once; the tests below judge the outcome."""
    cluster.wait_healthy("the cluster to be healthy before the kill rounds")
    lin_keys = [f"user:{user_in_shard(s)}:lin" for s in KILL_SHARDS]
    writers = Writers(cluster)
    lin = LinWorkers(cluster, lin_keys)
    writers.set_target(KILL_SHARDS[0])
    producer = Producer(cluster, writers, f"failover{os.getpid()}")
    for t in writers.threads + lin.threads + [producer.thread]:
        t.start()
    rounds = []
    unready = []
    try:
        for r in range(ROUNDS):
            shard = KILL_SHARDS[r % len(KILL_SHARDS)]
            t_set = writers.set_target(shard)
            wait_ack = time.monotonic() + 10 * SLOW
            while writers.first_ack_after(shard, t_set) is None:
                if time.monotonic() > wait_ack:
                    pytest.fail(f"round {r}: no write to shard {shard} "
                                f"succeeded within 10s on a healthy cluster\n"
                                + cluster.status_report())
                time.sleep(0.01)
            victim = cluster.leader_of(shard)
            t_kill = time.monotonic()
            cluster.kill9(victim)
            survivors = cluster.up()
            deadline = t_kill + FAILOVER_BOUND
            ack = None
            while True:
                for a in survivors:
                    code = a.http_status("/readyz", timeout=0.5)
                    if code != 200:
                        unready.append(f"round {r}: {a.node_id} /readyz {code} "
                                       f"{time.monotonic() - t_kill:.3f}s after the "
                                       f"kill: {(a.http_body('/readyz') or '').strip()}")
                if ack is None:
                    ack = writers.first_ack_after(shard, t_kill)
                if ack is not None and time.monotonic() > ack + 0.5:
                    break
                if ack is None and time.monotonic() > deadline:
                    pytest.fail(
                        f"round {r}: after kill -9 of {victim} (leader of shard "
                        f"{shard}) no write to shard {shard} succeeded through "
                        f"the surviving agents within {FAILOVER_BOUND:.0f}s\n"
                        + cluster.status_report())
                time.sleep(0.005)
            rounds.append({"round": r, "shard": shard, "victim": victim,
                           "failover": ack - t_kill})
            print(f"round {r}: shard {shard} leader {victim} killed; first "
                  f"write acked after {ack - t_kill:.3f}s")
            cluster.restart(victim)
            cluster.wait_healthy(f"the cluster to heal after round {r} "
                                 f"(restart of {victim})")
    finally:
        writers.stop.set()
        lin.stop.set()
        producer.stop.set()
        for t in writers.threads + lin.threads + [producer.thread]:
            t.join(LIN_DEADLINE + WRITE_DEADLINE + 5)
    cluster.wait_healthy("the cluster to be healthy after the kill rounds")
    return {"rounds": rounds, "unready": unready, "writers": writers, "lin": lin,
            "producer": producer,
            "workdir": tmp_path_factory.mktemp("lincheck")}


def test_writes_resume_after_each_leader_kill(run, capsys):
    times = [r["failover"] for r in run["rounds"]]
    assert len(times) == ROUNDS
    with capsys.disabled():
        print(f"\nfailover (kill -9 of a shard leader -> first acked write to "
              f"that shard), {len(times)} rounds: median "
              f"{statistics.median(times):.3f}s, max {max(times):.3f}s, "
              f"all {[round(t, 3) for t in times]}")
    slow = [r for r in run["rounds"] if r["failover"] > FAILOVER_BOUND]
    assert not slow, f"rounds over {FAILOVER_BOUND}s: {slow}"


def test_survivors_stay_ready_through_failover(run):
    """A shard without a leader for less than two election timeouts is
    electing one: the agents that host it stay ready meanwhile."""
    assert not run["unready"], "\n".join(run["unready"][:10])


def test_writers_saw_only_retryable_errors(run, capsys):
    w = run["writers"]
    with capsys.disabled():
        print(f"\nfailed writes during the kill rounds by code: {dict(w.codes)}")
    assert not w.unexpected, (
        f"{len(w.unexpected)} writes failed with a code other than "
        f"UNAVAILABLE/DEADLINE_EXCEEDED:\n" + "\n".join(w.unexpected[:10]))


def test_no_acknowledged_write_is_lost(run, cluster):
    w = run["writers"]
    acked = {key: value for key, value, _, _, _ in w.acked}
    assert len(acked) > ROUNDS * 10, f"only {len(acked)} writes were acked"
    prefixes = sorted({key.rsplit(":", 1)[0] + ":" for key in acked})
    found = {}
    via = cluster.agents[0]
    for prefix in prefixes:
        start_after = ""
        for _ in range(10000):
            resp = via.kv.Scan(pb.ScanRequest(prefix=prefix,
                                              start_after=start_after,
                                              limit=500))
            found.update((kv.key, kv.value) for kv in resp.kvs)
            if not resp.more or not resp.kvs:
                break
            start_after = resp.kvs[-1].key
    lost = sorted(k for k in acked if k not in found)
    wrong = sorted(k for k in acked if k in found and found[k] != acked[k])
    print(f"{len(acked)} acked writes, {w.unknown} with unknown outcome")
    assert not lost and not wrong, (
        f"of {len(acked)} acknowledged writes, {len(lost)} are missing "
        f"(e.g. {lost[:5]}) and {len(wrong)} hold another value "
        f"(e.g. {wrong[:5]}) in a linearizable Scan via {via.node_id}")


def test_appends_retried_across_failover_are_applied_once(run, cluster):
    p = run["producer"]
    assert not p.unexpected, (
        f"{len(p.unexpected)} appends failed with a code other than "
        f"UNAVAILABLE/DEADLINE_EXCEEDED:\n" + "\n".join(p.unexpected[:10]))
    assert len(p.acked) > ROUNDS * 10, f"only {len(p.acked)} appends acked"
    via = cluster.agents[1]
    log = {}                         # partition -> [(offset, value)]
    for part in KILL_SHARDS:
        offset, entries = 0, []
        for _ in range(10000):
            resp = via.read(p.topic, partition=part, offset=offset, count=1000)
            entries += [(e.offset, e.value) for e in resp.entries]
            if not resp.entries or resp.next_offset >= resp.high_watermark:
                break
            offset = resp.next_offset
        log[part] = entries
    where = {}
    dups = []
    for part, entries in log.items():
        offsets = [o for o, _ in entries]
        assert offsets == list(range(len(offsets))), (
            f"partition {part} of {p.topic}: offsets are not 0..n-1 without "
            f"gaps (first bad at index "
            f"{next(i for i, o in enumerate(offsets) if o != i)})")
        for o, v in entries:
            if v in where:
                dups.append((v, where[v], (part, o)))
            where[v] = (part, o)
    stray = sorted(v for v in where if v not in p.sent)
    lost = [(pt, o, v) for pt, o, v in p.acked if where.get(v) != (pt, o)]
    print(f"{len(p.acked)} acked appends, {len(p.sent) - len(p.acked)} with "
          f"unknown outcome, {sum(len(e) for e in log.values())} in the log")
    assert not dups, (
        f"{len(dups)} appends applied more than once (value, first at, again "
        f"at): {dups[:5]}")
    assert not lost, (
        f"{len(lost)} acked appends are missing or at another offset than "
        f"acked (partition, offset, value): {lost[:5]}")
    assert not stray, f"log holds values never sent: {stray[:5]}"


def test_lin_workers_saw_only_retryable_errors(run):
    lin = run["lin"]
    assert not lin.unexpected, (
        f"{len(lin.unexpected)} operations failed with a code other than "
        f"UNAVAILABLE/DEADLINE_EXCEEDED/NOT_FOUND:\n"
        + "\n".join(lin.unexpected[:10]))


def test_history_during_kills_is_linearizable(run, capsys):
    lin = run["lin"]
    counts = lin.history.counts()
    assert counts["puts"] > 50 and counts["gets"] > 50, (
        f"history too thin to mean anything: {counts}")
    result, out = history.check(lin.history.ops, run["workdir"], timeout_s=120)
    with capsys.disabled():
        print(f"\nlinearizability: {counts}; {out.splitlines()[0]}")
    assert result != "Unknown", f"porcupine could not decide in 120s: {out}"
    assert result == "Ok", f"history is not linearizable: {out}"
