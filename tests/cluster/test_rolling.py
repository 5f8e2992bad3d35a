"""Rolling restarts the way a Kubernetes StatefulSet rolls its pods: stop the
agent (SIGTERM, or kill -9), start it again at once with empty memory (a new
incarnation), wait for its /readyz to answer 200, then take the next one —
from the highest ordinal down, two full rounds, with writes through every
agent and a websocket subscriber following every change all along.

Afterwards every shard has a leader and replication-factor current voters,
no acknowledged write is lost, and the feed delivered every change of every
shard once, in revision order, with no gap — across reconnects to other
agents. The moment a restarted agent first reports ready, its own Cluster
Status must show it a voter (not a learner) of every shard it hosts, in
groups without an old incarnation or a member that is down: readiness means
the repair of its restart is finished.

MQ_ROLLING_PRELOAD=N preloads N keys (100-byte values) before the first
round; the per-pod times and write gaps are printed (pytest -s) for the
README and the closing note of the rolling-restart work."""
import os
import signal
import subprocess
import threading
import time

import grpc
import pytest

from conftest import (AGENT_BIN, HEALTHY_TIMEOUT, SHARDS, SLOW, Cluster, normalize_replica,
                      pb, unique, user_in_shard, wait_no_problem)
from feedfollow import FeedFollower

RF = 3
READY_TIMEOUT = 60.0 * SLOW
PRELOAD = int(os.environ.get("MQ_ROLLING_PRELOAD", "0"))
# Short enough that a drain that should not wait shows up as a failure of
# the SIGTERM exit-time bound below rather than hanging the suite.
DRAIN_TIMEOUT_S = 8


def settled_problem(c):
    """None when every up agent is ready and every shard has one agreed
    leader and exactly RF voters, all current and live, no learner, as
    every holder of the shard reports it; else what is wrong."""
    views = {}
    for a in c.up():
        code = a.http_status("/readyz")
        if code != 200:
            return f"{a.node_id} /readyz answers {code}: {(a.http_body('/readyz') or '').strip()}"
        try:
            views[a.node_id] = a.status()
        except grpc.RpcError as e:
            return f"{a.node_id} Cluster/Status failed: {e.code().name}"
    for shard in range(SHARDS):
        holders = {nid: st.shards[shard] for nid, st in views.items()
                   if st.shards[shard].role != "none"}
        if len(holders) != RF:
            return f"shard {shard} is held by {sorted(holders)}, want {RF} agents"
        for nid, s in holders.items():
            if not s.healthy:
                return f"{nid}: shard {shard} is unhealthy: {s.health}"
            reps = [normalize_replica(r) for r in s.replicas]
            if sorted(n for n, tag in reps) != sorted(holders) or any(t for _, t in reps):
                return f"{nid}: shard {shard} replicas {list(s.replicas)}"
        leaders = {s.leader for s in holders.values()}
        if len(leaders) != 1 or "" in leaders:
            return f"shard {shard}: leaders {leaders}"
    return None


def wait_settled(c, what, timeout=HEALTHY_TIMEOUT):
    wait_no_problem(c, lambda: settled_problem(c), what, timeout)


class Writers:
    """Puts of fresh keys through every up agent, two threads per agent,
    spread over all shards. Records every acknowledged write (key, shard,
    revision, time); failures are unknown outcomes and not recorded."""

    def __init__(self, c, tag):
        self.c = c
        self.uids = {s: user_in_shard(s) for s in range(SHARDS)}
        self.tag = tag
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.acked = []  # (key, shard, revision, monotonic time)
        self.latencies = []  # (monotonic time, seconds) of acknowledged puts
        self.threads = [threading.Thread(target=self.run, args=(a, k), daemon=True)
                        for a in c.agents for k in range(2)]

    def run(self, agent, k):
        n = 0
        while not self.stop.is_set():
            if not agent.up or agent.channel is None:
                time.sleep(0.05)
                continue
            shard = (n * 7 + k) % SHARDS
            n += 1
            key = f"user:{self.uids[shard]}:{self.tag}-{agent.node_id}-{k}-{n}"
            t0 = time.monotonic()
            try:
                r = agent.kv.Put(pb.PutRequest(key=key, value=key.encode()), timeout=2.0)
            except (grpc.RpcError, ValueError):
                time.sleep(0.01)
                continue
            t1 = time.monotonic()
            with self.lock:
                self.acked.append((key, r.shard, r.revision, t1))
                self.latencies.append((t1, t1 - t0))

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(10)

    def longest_gap(self, t0, t1):
        """The longest time any shard went without an acknowledged write
        within [t0, t1], and that shard."""
        with self.lock:
            times = {}
            for _, shard, _, t in self.acked:
                times.setdefault(shard, []).append(t)
        worst, which = 0.0, None
        for shard in range(SHARDS):
            ts = sorted(t for t in times.get(shard, []) if t0 <= t <= t1)
            points = [t0] + ts + [t1]
            gap = max(b - a for a, b in zip(points, points[1:]))
            if gap > worst:
                worst, which = gap, shard
        return worst, which


def restart_cycle(c, a, mode):
    """Stops agent a as `mode` says, starts it again empty, waits for
    /readyz 200. Returns (seconds from the stop to ready, the restarted
    agent's Status at that moment)."""
    t0 = time.monotonic()
    if mode == "term":
        rc = a.terminate(timeout=DRAIN_TIMEOUT_S + 10)
        assert rc == 0, f"{a.node_id} exited with {rc} on SIGTERM\n{a.stderr_tail()}"
    else:
        a.kill9()
    a.start()
    a.up = False  # writers and the feed wait until it reports ready
    deadline = time.monotonic() + READY_TIMEOUT
    while a.http_status("/readyz", timeout=1.0) != 200:
        assert a.proc.poll() is None, f"{a.node_id} exited\n{a.stderr_tail()}"
        if time.monotonic() > deadline:
            pytest.fail(f"{a.node_id} not ready {READY_TIMEOUT:.0f}s after its restart: "
                        f"{a.http_body('/readyz')}\n{c.status_report()}")
        time.sleep(0.05)
    took = time.monotonic() - t0
    st = a.status()
    a.up = True
    return took, st


def check_ready_meant_repaired(nid, st):
    """The agent's own view when it first said ready: a voter of every
    shard it hosts (with RF agents or fewer: all of them), no learner, no
    old incarnation, no member down. (Under writes a replica may be an
    entry behind its commit index at any moment: that is not a problem.)"""
    for s in st.shards:
        if s.role == "none":
            continue
        assert s.role in ("leader", "follower"), (
            f"{nid} reported ready while its role in shard {s.shard} is {s.role!r}")
        problems = [p for p in s.health.split("; ")
                    if p != "ok" and not p.startswith("this replica applied")]
        tags = [r for r in s.replicas if normalize_replica(r)[1]]
        assert not problems and not tags and len(s.replicas) == RF, (
            f"{nid} reported ready while shard {s.shard} is unhealthy: {s.health} "
            f"(replicas {list(s.replicas)})")


def preload(c, n):
    """n keys with 100-byte values, written with mqbench through n1."""
    bench = AGENT_BIN.parent / "mqbench"
    # A get run writes every key of its key space first.
    subprocess.run([str(bench), "--endpoint", c.agents[0].address, "--op", "get",
                    "--keys", str(n), "--value-size", "100", "--inflight", "64",
                    "--count", "1", "--quiet"], check=True, timeout=600,
                   stdout=subprocess.DEVNULL)


@pytest.mark.parametrize("agents,mode", [(3, "term"), (3, "kill"), (5, "term"), (5, "kill")],
                         ids=["3-sigterm", "3-kill9", "5-sigterm", "5-kill9"])
def test_rolling_restart(tmp_path, agents, mode):
    if os.environ.get("MQ_ROLLING_QUICK") and agents == 5:
        pytest.skip("MQ_ROLLING_QUICK: the sanitizer pass rolls three agents only")
    c = Cluster(tmp_path, hosts=("127.0.0.1",) * agents,
                extra_args=["--drain-timeout", f"{DRAIN_TIMEOUT_S}s"]).start(wait=False)
    try:
        wait_settled(c, "the new cluster to settle")
        if PRELOAD:
            preload(c, PRELOAD)
            wait_settled(c, "the cluster to settle after the preload")
        report = []
        # The subscriber starts from the revisions of now (a preload would
        # be too much for one Python client to replay).
        now = {s.shard: s.revision for s in c.agents[0].status().shards if s.role != "none"}
        def address(n):
            ups = [a.http_address for a in c.up() if a.http_address]
            return ups[(n * 2) % len(ups)] if ups else None

        with FeedFollower(address, {s: now.get(s, 0) for s in range(SHARDS)}) as feed:
            with Writers(c, unique("roll")) as w:
                time.sleep(1.0)
                for rnd in (1, 2):
                    for a in reversed(c.agents):  # a StatefulSet rolls n-1 .. 0
                        t0 = time.monotonic()
                        took, st = restart_cycle(c, a, mode)
                        check_ready_meant_repaired(a.node_id, st)
                        time.sleep(0.3)  # acked writes after ready count in the gap
                        gap, shard = w.longest_gap(t0, time.monotonic())
                        report.append((rnd, a.node_id, took, gap, shard))
                time.sleep(1.0)
            wait_settled(c, "every shard back on RF current voters after two rounds")
            acked = list(w.acked)
            revisions = {}
            for _, shard, rev, _ in acked:
                revisions[shard] = max(revisions.get(shard, 0), rev)
            deadline = time.monotonic() + 20
            while not feed.caught_up(revisions) and time.monotonic() < deadline:
                time.sleep(0.1)

        print(f"\nrolling restart, {agents} agents, {mode}, preload {PRELOAD} keys:")
        for rnd, nid, took, gap, shard in report:
            print(f"  round {rnd} {nid}: ready {took:5.2f}s after the stop; longest write "
                  f"gap {gap:5.2f}s (shard {shard})")
        assert len(acked) > 50 * agents, f"only {len(acked)} writes were acknowledged"

        # No acknowledged write lost: every key reads back, from a scan of
        # each user's prefix through some agent (linearizable).
        via = c.up()[0]
        want = {}
        for key, shard, rev, _ in acked:
            want[key] = (shard, rev)
        found = set()
        for shard, uid in w.uids.items():
            start = ""
            while True:
                r = via.kv.Scan(pb.ScanRequest(prefix=f"user:{uid}:{w.tag}",
                                               start_after=start, limit=1000), timeout=10)
                for kv in r.kvs:
                    found.add(kv.key)
                    if kv.key in want:
                        assert kv.value == kv.key.encode(), f"{kv.key} has {kv.value!r}"
                if not r.more or not r.kvs:
                    break
                start = r.kvs[-1].key
        lost = sorted(set(want) - found)
        assert not lost, f"{len(lost)} acknowledged writes lost, e.g. {lost[:5]}"

        # The feed: every change of every shard once, in order, no gap, and
        # every acknowledged write among them.
        assert not feed.errors, f"the feed reported {feed.errors[:3]}"
        behind = {s: (feed.last[s], r) for s, r in revisions.items() if feed.last[s] < r}
        assert not behind, (
            f"20s after the last write the feed (via {feed.via}, "
            f"{feed.reconnects} reconnects) is behind in shards {{shard: (seen, acked)}} "
            f"{behind}")
        gap = feed.first_gap()
        assert gap is None, gap
        missing = feed.missing((k, s, r) for k, s, r, _ in acked)
        assert not missing, (f"{len(missing)} acknowledged writes are not in the feed as "
                             f"acknowledged, e.g. {missing[:3]}")
        assert feed.reconnects >= 1, "the subscriber never had to reconnect"
    finally:
        problems = c.close()
    assert not problems, "\n".join(problems)
