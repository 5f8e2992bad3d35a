"""The nemesis: a seeded random schedule of faults against three agents in
network namespaces while clients work through every agent, then checks of
what the clients saw.

Clients (all through whichever agents are running, frozen or cut off ones
included, with a short deadline):

- KV workers put unique values to, and linearizably get, a few keys; the
  keys change every KEY_EPOCH seconds so that each key's history stays
  small enough for porcupine whatever the length of the run;
- producers append unique entries to the partitions of one topic;
- two websocket subscribers follow the change feed, one the KV keys, one
  the topic, reconnecting to another agent when theirs goes away.

KV keys live in KV_SHARDS and the topic in TOPIC_SHARDS (a partition is a
shard), so each subscriber sees every revision of the shards it follows.

Faults, one at a time, each for a random FAULT_SECONDS, healed and followed
by a wait until the cluster is healthy again (so a majority always exists):
kill -9 and restart with empty memory, SIGSTOP then SIGCONT, one agent cut
off, one agent deaf or mute (one-way), a bridge (two agents cannot see each
other, both see the third), a lossy link (iptables drops a random share of
one agent's packets), a slow link (tbf), and, when the kernel has netem,
delay, loss, reordering and duplication, and a membership move: a fourth
agent joins (replicas and leaders move to it) and, a few seconds later, in
the middle of those moves, leaves for good, either by SIGTERM (a scale-in:
its drain moves them back) or by kill -9 (lost: --replace-dead-after moves
them back).

Checks, after healing (each can fail, see Run.checks): the KV history is
linearizable (porcupine), every topic partition holds each acknowledged
entry at its acknowledged offset with no gap, duplicate or stray entry,
both feeds delivered every change once, in order, acknowledged ones
included, the replicas converge to equal digests, and the cluster healed
after every fault with no agent dying on its own.
"""
import collections
import os
import random
import signal
import threading
import time

import grpc

import feedfollow
import history
import netns
from mq_cluster_harness import (SHARDS, SLOW, Cluster, ClusterAgent, divergence,
                                free_ports, not_sent, pb, unique, user_in_shard)

SECONDS = float(os.environ.get("NEMESIS_SECONDS", "120"))
DEADLINE = 2.0               # client deadline of every request
FAULT_SECONDS = (2.0, 6.0)   # how long a fault lasts
QUIET_SECONDS = (1.0, 3.0)   # healthy time between faults
HEAL_TIMEOUT = 60.0 * SLOW   # healthy again after a fault, or the run fails
CONVERGE_TIMEOUT = 30.0 * SLOW
FEED_TIMEOUT = 30.0 * SLOW
LIN_TIMEOUT = 300
KEY_EPOCH = 20.0
KEYS_PER_EPOCH = 4
KV_WORKERS = 3
PRODUCERS = 2
KV_SHARDS = tuple(range(0, 12))
TOPIC_SHARDS = tuple(range(12, SHARDS))
AGENTS = 3                   # the cluster; a fourth joins and leaves in moves
REPLACE_DEAD_AFTER = "5s"    # a lost fourth agent's replicas move back after
DRAIN_SECONDS = 30           # a leaving fourth agent's drain (--drain-timeout)
RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def seed_from_env():
    """NEMESIS_SEED, or a fresh random seed (to be printed for replay)."""
    s = os.environ.get("NEMESIS_SEED", "").strip()
    return int(s) if s else random.SystemRandom().randrange(1, 2**31)


class Tally:
    """Thread-safe counters by name."""

    def __init__(self):
        self.lock = threading.Lock()
        self.counts = collections.Counter()

    def add(self, name, n=1):
        with self.lock:
            self.counts[name] += n

    def __getitem__(self, name):
        with self.lock:
            return self.counts[name]


# ---------------------------------------------------------------------------
# Clients


class Workload:
    """The client threads and what they recorded."""

    def __init__(self, c, seed):
        self.c = c
        self.seed = seed
        self.tag = unique("nem")
        self.topic = f"nemesis{os.getpid()}"
        self.uids = [user_in_shard(s) for s in KV_SHARDS]
        self.stop = threading.Event()
        self.t0 = time.monotonic()
        self.history = history.History()
        self.ops = Tally()
        self.codes = Tally()
        self.lock = threading.Lock()
        self.keys = set()
        self.acked_puts = []     # (key, shard, revision)
        self.acked_entries = []  # (producer, partition, offset, value, revision)
        self.sent_entries = set()  # values that may be in the log
        self.clients = [self.history.new_client() for _ in range(KV_WORKERS)]
        self.threads = (
            [threading.Thread(target=self.loop, args=("kv", w, self.kv_step),
                              daemon=True) for w in range(KV_WORKERS)]
            + [threading.Thread(target=self.loop,
                                args=("produce", p, self.produce_step),
                                daemon=True) for p in range(PRODUCERS)])

    def start(self):
        for t in self.threads:
            t.start()

    def join(self):
        self.stop.set()
        for t in self.threads:
            t.join(DEADLINE + 10)

    def via(self, rng):
        up = self.c.up()
        return rng.choice(up) if up else None

    def epoch_keys(self):
        e = int((time.monotonic() - self.t0) / KEY_EPOCH)
        keys = [f"user:{self.uids[(e * KEYS_PER_EPOCH + i) % len(self.uids)]}:"
                f"{self.tag}-e{e}-{i}" for i in range(KEYS_PER_EPOCH)]
        with self.lock:
            self.keys.update(keys)
        return keys

    def failed(self, kind, e):
        """Books a failed request: 'failed' when it provably never left the
        client, else 'unknown' (it may have been applied, or may be)."""
        if not_sent(e):
            self.ops.add(f"{kind} failed")
            return False
        self.codes.add(e.code().name)
        self.ops.add(f"{kind} unknown")
        return True

    def put(self, client, via, key, value):
        """One put; returns the client id to continue as."""
        call = history.now_ns()
        try:
            r = via.kv.Put(pb.PutRequest(key=key, value=value.encode()),
                           timeout=DEADLINE)
        except (grpc.RpcError, ValueError) as e:
            if self.failed("put", e):
                # Pending forever: the worker goes on as a new client.
                self.history.put(client, key, value, call, -1)
                return self.history.new_client()
            return client
        self.history.put(client, key, value, call, history.now_ns())
        self.ops.add("put acked")
        with self.lock:
            self.acked_puts.append((key, r.shard, r.revision))
        return client

    def get(self, client, via, key):
        call = history.now_ns()
        try:
            kv = via.kv.Get(pb.GetRequest(key=key, consistency=pb.LINEARIZABLE),
                            timeout=DEADLINE).kv
        except (grpc.RpcError, ValueError) as e:
            if not not_sent(e) and e.code() == grpc.StatusCode.NOT_FOUND:
                self.history.get(client, key, False, "", call, history.now_ns())
                self.ops.add("get ok")
            else:
                self.ops.add("get failed")
                if not not_sent(e):
                    self.codes.add(e.code().name)
            return
        self.history.get(client, key, True, kv.value.decode(), call,
                         history.now_ns())
        self.ops.add("get ok")

    def loop(self, name, w, step):
        """Calls step(w, rng, via, n) for n = 1, 2, ... with a random
        running agent until the workload stops."""
        rng = random.Random(f"{self.seed}-{name}-{w}")
        n = 0
        while not self.stop.is_set():
            via = self.via(rng)
            if via is None:
                time.sleep(0.05)
                continue
            n += 1
            step(w, rng, via, n)
            time.sleep(0.01)

    def kv_step(self, w, rng, via, n):
        key = rng.choice(self.epoch_keys())
        if rng.random() < 0.5:
            self.clients[w] = self.put(self.clients[w], via, key, f"w{w}-{n}")
        else:
            self.get(self.clients[w], via, key)

    def produce_step(self, p, rng, via, n):
        value = f"{self.tag}-p{p}-{n}"
        part = rng.choice(TOPIC_SHARDS)
        try:
            r = via.partition.Produce(pb.ProduceRequest(
                topic=self.topic, partition=part,
                entry=pb.Entry(key=value, value=value.encode())),
                timeout=DEADLINE)
        except (grpc.RpcError, ValueError) as e:
            if self.failed("produce", e):
                with self.lock:
                    self.sent_entries.add(value)
            return
        self.ops.add("produce acked")
        with self.lock:
            self.sent_entries.add(value)
            self.acked_entries.append((p, r.partition, r.offset, value,
                                       r.revision))

    def final_reads(self):
        """After healing: a linearizable get of every key ever used through
        every agent, so a write lost at the end cannot hide."""
        client = self.history.new_client()
        for key in sorted(self.keys):
            for a in self.c.agents:
                self.get(client, a, key)


# ---------------------------------------------------------------------------
# Faults


def netem_available():
    return netns.qdisc_available("netem", "delay", "10ms")


class Nemesis:
    """Draws faults from the seed and applies them one at a time."""

    def __init__(self, c, topo, seed, log):
        self.c = c
        self.topo = topo
        self.rng = random.Random(f"{seed}-faults")
        self.log = log
        self.injected = collections.Counter()
        self.frozen = None
        self.joiner = None        # the fourth agent of membership moves
        self.joiner_leaves = None  # "SIGTERM" or "kill -9"
        self.problems = []        # what went wrong in a fault itself
        self.kinds = ["kill", "freeze", "isolate", "oneway", "bridge",
                      "lossy", "slow", "move"]
        self.unavailable = []
        if netem_available():
            self.kinds += ["netem-delay", "netem-loss", "netem-reorder",
                           "netem-duplicate"]
        else:
            self.unavailable.append(
                "netem delay/loss/reordering/duplication (the kernel has no "
                "netem qdisc; loss is covered by 'lossy', delay by 'slow')")

    def move_start(self):
        """Starts the fourth agent, which every other agent learns of over
        the peer links (as from discovery), and decides how it will leave."""
        c = self.c
        if self.joiner is None:
            port, = free_ports(1)
            self.joiner = ClusterAgent(c, f"n{AGENTS + 1}", self.topo.agent_ip[AGENTS],
                                       port, self.topo.prefix(AGENTS), c.tmpdir)
        a = self.joiner
        a.peers = ",".join(f"{x.node_id}={x.host}:{x.peer_port}" for x in c.agents + [a])
        self.joiner_leaves = self.rng.choice(["SIGTERM", "kill -9"])
        a.start()
        c.agents.append(a)
        return (f"scale out: {a.node_id} joins, then leaves by {self.joiner_leaves} "
                f"while replicas move")

    def move_end(self):
        """The fourth agent leaves for good, the way move_start chose."""
        a = self.joiner
        try:
            st = a.status()
            held = sum(a.node_id in " ".join(s.replicas) for s in st.shards)
            led = sum(s.leader == a.node_id for s in st.shards)
            self.log(f"{'':9s}{'':16s}{a.node_id} holds {held} replicas and leads {led} "
                     f"shards as it leaves by {self.joiner_leaves}")
        except grpc.RpcError as e:
            self.log(f"{'':25s}{a.node_id} status unknown as it leaves: {e.code().name}")
        self.c.agents.remove(a)
        if self.joiner_leaves == "kill -9":
            a.kill9()
            return
        rc = a.terminate(timeout=DRAIN_SECONDS + 15)
        if rc != 0:
            self.problems.append(f"{a.node_id} exited with {rc} on SIGTERM in the "
                                 f"middle of its moves\n{a.stderr_tail()}")

    def apply(self, kind, i):
        """Starts fault `kind` on agent index i; returns what it did."""
        c, topo, rng = self.c, self.topo, self.rng
        if kind == "move":
            return self.move_start()
        a = c.agents[i]
        others = [j for j in range(AGENTS) if j != i]
        if kind == "kill":
            c.kill9(a.node_id)
            return f"kill -9 {a.node_id}"
        if kind == "freeze":
            self.frozen = a
            os.kill(a.proc.pid, signal.SIGSTOP)
            return f"SIGSTOP {a.node_id}"
        if kind == "isolate":
            topo.isolate(i)
            return f"cut off {a.node_id} (majority/minority)"
        if kind == "oneway":
            deaf = rng.random() < 0.5
            for j in others:
                (topo.drop_from if deaf else topo.drop_to)(i, j)
            return f"{a.node_id} {'receives' if deaf else 'sends'} nothing (one-way)"
        if kind == "bridge":
            j = rng.choice(others)
            topo.sever(i, j)
            third = c.agents[[k for k in others if k != j][0]].node_id
            return (f"bridge: {a.node_id} and {c.agents[j].node_id} cannot see "
                    f"each other, both see {third}")
        if kind == "lossy":
            share = rng.uniform(0.1, 0.4)
            for j in others:
                topo.drop_from(i, j, share)
                topo.drop_to(i, j, share)
            return f"{a.node_id} loses {share:.0%} of its packets both ways"
        if kind == "slow":
            topo.shape(i, ("tbf", "rate", "256kbit", "burst", "16kb",
                           "latency", "400ms"))
            return f"{a.node_id} sends through a 256 kbit/s link"
        qdisc = {"netem-delay": ("netem", "delay", "100ms", "50ms"),
                 "netem-loss": ("netem", "loss", "20%"),
                 "netem-reorder": ("netem", "delay", "20ms", "reorder",
                                   "25%", "50%"),
                 "netem-duplicate": ("netem", "duplicate", "20%")}[kind]
        topo.shape(i, qdisc)
        return f"{a.node_id} egress {' '.join(qdisc)}"

    def revert(self, kind, i):
        if kind == "move":
            self.move_end()
            return
        a = self.c.agents[i]
        if kind == "kill":
            self.c.restart(a.node_id)
        self.thaw()
        self.topo.heal_all()

    def thaw(self):
        if self.frozen is not None:
            if self.frozen.proc is not None:
                os.kill(self.frozen.proc.pid, signal.SIGCONT)
            self.frozen = None

    def one(self, t0):
        """Injects one fault for a random few seconds and heals it."""
        kind = self.rng.choice(self.kinds)
        i = self.rng.randrange(AGENTS)
        # a move is cut short at any point, down to its first steps
        secs = self.rng.uniform(0.5 if kind == "move" else FAULT_SECONDS[0],
                                FAULT_SECONDS[1])
        what = self.apply(kind, i)
        self.injected[kind] += 1
        self.log(f"t={time.monotonic() - t0:6.1f}s {kind:15s} {what} for {secs:.1f}s")
        time.sleep(secs)
        self.revert(kind, i)
        return kind, what


# ---------------------------------------------------------------------------
# Verdicts (pure functions, so test_checks.py can show that each can fail)


def topic_problems(logs, sent, acked):
    """What is wrong with topic partitions read back, [] if nothing.
    logs: {partition: [(offset, value)]} from offset 0; sent: every value
    that may have been applied (acknowledged or unknown outcome); acked:
    [(producer, partition, offset, value, revision)] in the order each
    producer had them acknowledged. Wanted: offsets 0..n-1 (no gap), no
    value twice (so an unknown-outcome produce at most once), no value
    never sent, each acknowledged entry at its acknowledged offset, and
    each producer's acknowledged offsets in a partition increasing."""
    where, problems = {}, []
    for part, entries in sorted(logs.items()):
        offsets = [o for o, _ in entries]
        if offsets != list(range(len(offsets))):
            bad = next(i for i, o in enumerate(offsets) if o != i)
            problems.append(f"partition {part}: offsets not 0..n-1, first bad "
                            f"at index {bad}: {offsets[bad]}")
        for o, v in entries:
            if v in where:
                problems.append(f"{v} twice: at {where[v]} and {(part, o)}")
            where[v] = (part, o)
    stray = sorted(v for v in where if v not in sent)
    if stray:
        problems.append(f"{len(stray)} entries never produced: {stray[:3]}")
    lost = [(p, o, v) for _, p, o, v, _ in acked if where.get(v) != (p, o)]
    if lost:
        problems.append(f"{len(lost)} acknowledged entries missing or not at "
                        f"their acknowledged offset: {lost[:3]} (found at "
                        f"{[where.get(v) for _, _, v in lost[:3]]})")
    last = {}
    for prod, part, off, v, _ in acked:
        if last.get((prod, part), -1) >= off:
            problems.append(f"producer {prod} partition {part}: {v} acknowledged "
                            f"at offset {off} after offset {last[(prod, part)]}")
        last[(prod, part)] = off
    return problems


def last_revisions(acked):
    """{shard: highest revision} of acknowledged (key, shard, revision)."""
    revisions = {}
    for _, s, rev in acked:
        revisions[s] = max(revisions.get(s, 0), rev)
    return revisions


def feed_problems(feed, acked):
    """What is wrong with what a FeedFollower received, [] if nothing:
    behind the last acknowledged revision of a shard, an error from the
    agent, a revision out of order, twice or missing (first_gap), or an
    acknowledged (key, shard, revision) not delivered as such (missing)."""
    problems = []
    behind = {s: (feed.last[s], r) for s, r in last_revisions(acked).items()
              if feed.last[s] < r}
    if behind:
        problems.append(f"behind {{shard: (seen, acked)}}: {behind}")
    if feed.errors:
        problems.append(f"errors: {feed.errors[:3]}")
    gap = feed.first_gap()
    if gap:
        problems.append(gap)
    missing = feed.missing(acked)
    if missing:
        problems.append(f"lacks {len(missing)} acknowledged changes, "
                        f"e.g. {missing[:3]}")
    return problems


# ---------------------------------------------------------------------------
# The run and its checks


class Run:
    """One nemesis run on a fresh cluster in fresh namespaces."""

    def __init__(self, seed, seconds, workdir):
        self.seed = seed
        self.seconds = seconds
        self.workdir = workdir
        self.lines = []          # the fault log
        self.failures = []       # (check, message) found during the run
        self.results = {}        # check -> "PASS" or what failed
        self.topo = None
        self.c = None
        self.w = None
        self.nem = None
        self.feeds = []
        self.elapsed = 0.0

    def log(self, line):
        self.lines.append(line)
        print(line, flush=True)

    def execute(self):
        """Sets up, runs the schedule, heals, checks; always tears down."""
        self.topo = netns.Topology(AGENTS + 1)
        try:
            self.topo.setup()
            (self.workdir / "agents").mkdir(parents=True, exist_ok=True)
            self.c = Cluster(self.workdir / "agents", hosts=self.topo.agent_ip[:AGENTS],
                             prefixes=[self.topo.prefix(i) for i in range(AGENTS)],
                             extra_args=["--replace-dead-after", REPLACE_DEAD_AFTER,
                                         "--drain-timeout", f"{DRAIN_SECONDS}s"])
            self.c.start()
            self.schedule()
            self.checks()
        except BaseException as e:  # pytest.fail raises Failed
            self.results["run"] = f"aborted: {type(e).__name__}: {str(e)[:1500]}"
            raise
        finally:
            self.teardown()

    def feed_address(self, n):
        ups = [a.http_address for a in self.c.up() if a.http_address]
        return ups[n % len(ups)] if ups else None

    def schedule(self):
        c = self.c
        st = c.agents[0].status()
        start = {s.shard: s.revision for s in st.shards}
        self.w = Workload(c, self.seed)
        self.feeds = [
            feedfollow.FeedFollower(self.feed_address,
                                    {s: start[s] for s in KV_SHARDS}),
            feedfollow.FeedFollower(self.feed_address,
                                    {s: start[s] for s in TOPIC_SHARDS},
                                    prefix=None, topics=[self.w.topic])]
        self.nem = Nemesis(c, self.topo, self.seed, self.log)
        for f in self.feeds:
            f.__enter__()
        t0 = time.monotonic()
        self.w.start()
        try:
            time.sleep(1.0)
            while time.monotonic() - t0 < self.seconds:
                kind, what = self.nem.one(t0)
                if self.nem.problems:
                    self.failures.append(("healing", self.nem.problems[0]))
                    break
                problem = self.wait_healthy()
                if problem:
                    self.failures.append(
                        ("healing", f"after '{what}' the cluster was not healthy "
                                    f"within {HEAL_TIMEOUT:.0f}s: {problem}"))
                    break
                time.sleep(self.nem.rng.uniform(*QUIET_SECONDS))
        finally:
            self.elapsed = time.monotonic() - t0
            self.nem.thaw()
            self.topo.heal_all()
            self.w.join()

    def wait_healthy(self):
        """None once the cluster is healthy again, else the last problem
        (after HEAL_TIMEOUT, or at once when an agent died on its own)."""
        deadline = time.monotonic() + HEAL_TIMEOUT
        while True:
            problem = self.c.health_problem()
            if problem is None:
                return None
            crashed = self.c.crashed()
            if crashed:
                return (f"{crashed[0].node_id} died (exit "
                        f"{crashed[0].proc.returncode})")
            if time.monotonic() > deadline:
                return f"{problem}\n{self.c.status_report()}"
            time.sleep(0.2)

    # -- checks ------------------------------------------------------------

    def checks(self):
        failed = dict(self.failures)
        if "healing" not in failed:
            problem = self.wait_healthy()
            if problem:
                failed["healing"] = f"not healthy after the run: {problem}"
        healed = "healing" not in failed
        self.results["healing"] = failed.get(
            "healing", f"PASS (healthy again after each of "
                       f"{sum(self.nem.injected.values())} faults)")
        if healed:
            self.w.final_reads()
        self.results["linearizable KV history"] = self.check_history()
        self.results["topic logs"] = self.check_topics() if healed else "not checked (no healthy cluster)"
        self.results["feed"] = self.check_feeds()
        self.results["convergence"] = self.check_convergence() if healed else "not checked (no healthy cluster)"
        enough = self.w.ops["put acked"] >= 50 and self.w.ops["produce acked"] >= 50
        self.results["progress"] = "PASS" if enough else (
            f"too few acknowledged operations to mean anything: "
            f"{self.w.ops['put acked']} puts, {self.w.ops['produce acked']} produces")

    def check_history(self):
        counts = self.w.history.counts()
        result, out = history.check(self.w.history.ops, self.workdir / "lincheck",
                                    timeout_s=LIN_TIMEOUT)
        if result == "Ok":
            return f"PASS ({counts['ops']} ops, {counts['unknown']} pending forever)"
        return f"{result}: {out}"

    def read_partition(self, via, part):
        """[(offset, value)] of one partition, read from offset 0."""
        offset, entries = 0, []
        while True:
            r = via.read(self.w.topic, partition=part, offset=offset, count=1000)
            if r.log_start_offset != 0:
                raise AssertionError(f"partition {part} starts at "
                                     f"{r.log_start_offset}, not 0")
            entries += [(e.offset, e.value.decode()) for e in r.entries]
            if not r.entries or r.next_offset >= r.high_watermark:
                return entries
            offset = r.next_offset

    def check_topics(self):
        """Each partition read back linearizably through one agent, judged
        by topic_problems()."""
        w = self.w
        try:
            logs = {part: self.read_partition(self.c.agents[0], part)
                    for part in TOPIC_SHARDS}
        except (grpc.RpcError, AssertionError) as e:
            return f"reading the topic back failed: {e}"
        problems = topic_problems(logs, w.sent_entries, w.acked_entries)
        if problems:
            return "; ".join(problems[:6])
        return (f"PASS ({sum(len(e) for e in logs.values())} entries, "
                f"{len(w.acked_entries)} acknowledged)")

    def check_feeds(self):
        """Both subscribers, once caught up with the last acknowledged
        revision of each shard (or FEED_TIMEOUT), judged by feed_problems()."""
        w = self.w
        wanted = [(self.feeds[0], list(w.acked_puts), "KV"),
                  (self.feeds[1], [(v, p, rev) for _, p, _, v, rev in w.acked_entries],
                   "topic")]
        problems = []
        for feed, acked, name in wanted:
            revisions = last_revisions(acked)
            deadline = time.monotonic() + FEED_TIMEOUT
            while not feed.caught_up(revisions) and time.monotonic() < deadline:
                time.sleep(0.1)
            problems += [f"{name} feed: {p}" for p in feed_problems(feed, acked)]
        for f in self.feeds:
            f.__exit__(None, None, None)
        if problems:
            return "; ".join(problems)
        return (f"PASS ({sum(len(e) for e in self.feeds[0].events.values())} KV + "
                f"{sum(len(e) for e in self.feeds[1].events.values())} topic events, "
                f"{sum(f.reconnects for f in self.feeds)} reconnects)")

    def check_convergence(self):
        deadline = time.monotonic() + CONVERGE_TIMEOUT
        while True:
            problem = divergence(self.c)
            if problem is None:
                return "PASS (every shard: equal digest, keys, applied index)"
            if time.monotonic() > deadline:
                return f"{CONVERGE_TIMEOUT:.0f}s after healing, {problem}"
            time.sleep(0.2)

    def teardown(self):
        for f in self.feeds:
            f.stop.set()
        if self.nem:
            self.nem.thaw()
            j = self.nem.joiner
            if j is not None:
                if j.proc is not None:
                    j.kill9()
                j.close_channels()
        problems = self.c.close() if self.c else []
        if problems:
            self.results["clean shutdown"] = "; ".join(problems)[:2000]
        errors = self.topo.teardown()
        if errors:
            self.results["namespace cleanup"] = "; ".join(errors)

    # -- report ------------------------------------------------------------

    def failed(self):
        return {k: v for k, v in self.results.items() if not v.startswith("PASS")}

    def summary(self):
        w, nem = self.w, self.nem
        ops = w.ops if w else Tally()
        out = ["", "nemesis summary",
               f"  seed: {self.seed} (replay: NEMESIS_SEED={self.seed} "
               f"NEMESIS_SECONDS={self.seconds:.0f})",
               f"  minutes: {self.elapsed / 60:.1f} of faults and clients "
               f"(asked for {self.seconds / 60:.1f})"]
        for kind, outcomes in (("puts", ("acked", "unknown", "failed")),
                               ("gets", ("ok", "failed")),
                               ("produces", ("acked", "unknown", "failed"))):
            parts = [f"{o} {ops[f'{kind[:-1]} {o}']}" for o in outcomes]
            total = sum(ops[f"{kind[:-1]} {o}"] for o in outcomes)
            out.append(f"  {kind}: {total} ({', '.join(parts)})")
        if w:
            out.append("  error codes of unknown/failed requests: "
                       + (", ".join(f"{k} {v}" for k, v in sorted(w.codes.counts.items()))
                          or "none"))
        if nem:
            out.append(f"  faults injected: {sum(nem.injected.values())} ("
                       + ", ".join(f"{k} {nem.injected[k]}" for k in nem.kinds) + ")")
            for u in nem.unavailable:
                out.append(f"  not available here: {u}")
        out.append("  checks:")
        for k, v in self.results.items():
            out.append(f"    {k}: {v}")
        out.append(f"  verdict: {'FAIL' if self.failed() else 'PASS'} (seed {self.seed})")
        return "\n".join(out)
