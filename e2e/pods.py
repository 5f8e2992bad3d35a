"""Pods as containers: an agent container and the app containers that join
its network namespace (`docker run --network container:<agent>`), the way
the containers of a Kubernetes pod share one. Apps reach their agent on
127.0.0.1:8080 (the API port binds loopback only); peers reach the agent on
its pod address, port 7070.

Also here: the writer app that records every acknowledged write, and the
checks it feeds: no acknowledged write lost, and a change feed without gaps
as the websocket subscriber of tests/cluster/feedfollow.py saw it.
"""
import json
import urllib.error
import urllib.request

import pytest

from containers import LABEL, READY_TIMEOUT, RUN_ID, Container, docker, wait_for
from containers import formed as cluster_formed
from feedfollow import FeedFollower

SHARDS = 16
DNS_ALIAS = "memquorum-peers"

# The writer app: puts user:<P><n % 16>:<n> = the key, through its own
# agent, one request at a time, and prints one line per outcome:
#   ACK <epoch seconds> <key> {"revision":R,"shard":S}
#   ERR <epoch seconds> <key> <message>      (outcome unknown: not checked)
# A SIGTERM ends it after the request in flight.
WRITER = r"""
trap 'exit 0' TERM
n=0
while :; do
  n=$((n + 1))
  k="user:$1$((n % 16)):$n"
  if out=$(mqctl --timeout 3000 --json put "$k" "$k" 2>&1); then
    echo "ACK $EPOCHREALTIME $k $out"
  else
    echo "ERR $EPOCHREALTIME $k ${out//$'\n'/ }"
    sleep 0.1
  fi
done
"""


class Pod:
    """Agent `<name>` on `net` at `ip`; its apps are containers in its
    network namespace. A replaced pod is a new Pod of the same name (the
    old containers removed first), like a StatefulSet's pod."""

    def __init__(self, image, net, node, ip, env):
        self.image = image
        self.net = net
        self.node = node
        self.ip = ip
        self.name = f"{RUN_ID}-{node}"
        self.env = {"MEMQUORUM_NODE_ID": node, "MEMQUORUM_ADVERTISE_ADDR": ip,
                    "MEMQUORUM_REPLICATION_FACTOR": "3", **env}
        alias = ["--network-alias", DNS_ALIAS] if "MEMQUORUM_DNS_NAME" in env else []
        self.agent = Container(image, self.name, network=net.name, ip=ip, env=self.env,
                               options=alias)
        self.writer = None
        self.apps = 0

    def start(self):
        self.agent.start()
        return self

    def app(self, *args, check=True):
        """A one-shot app container in this pod: mqctl ARGS against
        127.0.0.1:8080. Returns the CompletedProcess."""
        self.apps += 1
        return docker("run", "--rm", "--label", f"{LABEL}={RUN_ID}",
                      "--network", f"container:{self.name}", "--entrypoint", "mqctl",
                      self.image, "--timeout", "5000", *args, check=check, timeout=60)

    def http(self, path):
        """(status, body) of GET http://<pod ip>:9090<path>, or (0, why)."""
        try:
            with urllib.request.urlopen(f"http://{self.ip}:9090{path}", timeout=3) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
        except OSError as e:
            return 0, str(e)

    def wait_ready(self, timeout=READY_TIMEOUT):
        """Until /readyz answers 200 (what the chart's readiness probe asks)."""
        def ready():
            st = self.agent.state()
            if not st.get("Running"):
                pytest.fail(f"{self.name} exited with {st.get('ExitCode')}\n{self.agent.logs()}")
            return self.http("/readyz")[0] == 200
        wait_for(ready, timeout, f"{self.name} /readyz 200 (last: {self.http('/readyz')})")

    def status(self):
        r = self.app("--json", "status", check=False)
        return json.loads(r.stdout) if r.returncode == 0 else None

    def start_writer(self, log):
        """A long-running writer app in this pod; its lines go to `log`
        (a WriteLog) when it is stopped."""
        self.stop_writer(log)
        prefix = f"{self.node}w{log.next_id()}-"
        self.writer = Container(self.image, f"{self.name}-writer-{log.ids}",
                                network=f"container:{self.name}", entrypoint="bash",
                                args=["-c", WRITER, "writer", prefix]).start()

    def acked_since(self, t):
        """How many writes the running writer acknowledged after epoch t."""
        if self.writer is None:
            return 0
        out = docker("logs", self.writer.name, check=False).stdout
        return sum(1 for line in out.splitlines()
                   if line.startswith("ACK ") and float(line.split(" ", 2)[1]) > t)

    def stop_writer(self, log):
        if self.writer is None:
            return
        docker("stop", "-t", "5", self.writer.name, check=False, timeout=30)
        log.add(self.writer.name, docker("logs", self.writer.name, check=False).stdout)
        self.writer.remove()
        self.writer = None

    def remove(self, log=None):
        if log is not None:
            self.stop_writer(log)
        elif self.writer is not None:
            self.writer.remove()
        self.agent.remove()


def formed(pods, nodes):
    """Every pod sees exactly `nodes` alive and every shard led, on them."""
    return cluster_formed((p.status() for p in pods), nodes, SHARDS)


def check_write_read(pods, tag):
    """A key put by each pod's app reads back through every pod's app."""
    for w in pods:
        key, value = f"user:{tag}{w.node}:greeting", f"from-{w.node}"
        out = w.app("put", key, value).stdout
        assert out.startswith("OK revision="), f"put via {w.node}'s app: {out}"
        for r in pods:
            got = r.app("get", key, check=False)
            assert got.returncode == 0 and got.stdout.strip() == value, (
                f"{key} put via {w.node}, get via {r.node}'s app: exit {got.returncode} "
                f"{got.stdout.strip()!r} {got.stderr.strip()!r}")


class WriteLog:
    """What the writer apps acknowledged: key -> (shard, revision), and per
    writer the times of its acknowledged writes, in order."""

    def __init__(self):
        self.ids = 0
        self.acked = {}
        self.times = {}  # writer -> [epoch seconds]
        self.errors = 0

    def next_id(self):
        self.ids += 1
        return self.ids

    def add(self, writer, text):
        ts = self.times.setdefault(writer, [])
        for line in text.splitlines():
            parts = line.split(" ", 3)
            if len(parts) < 3:
                continue
            if parts[0] == "ACK" and len(parts) == 4:
                r = json.loads(parts[3])
                self.acked[parts[2]] = (r["shard"], r["revision"])
                ts.append(float(parts[1]))
            elif parts[0] == "ERR":
                self.errors += 1

    def longest_gap(self, t0, t1):
        """The longest time one writer went without an acknowledged write
        between two of its acknowledged writes, within [t0, t1]; and which."""
        worst, which = 0.0, None
        for w, ts in self.times.items():
            inside = [t for t in ts if t0 <= t <= t1]
            for a, b in zip(inside, inside[1:]):
                if b - a > worst:
                    worst, which = b - a, w
        return worst, which

    def check_all_readable(self, pod):
        """Every acknowledged key is there with its value: one linearizable
        scan of "user:" through `pod`'s app."""
        r = pod.app("--timeout", "20000", "scan", "user:", "--all")
        found = dict(line.split("\t", 1) for line in r.stdout.splitlines() if "\t" in line)
        lost = sorted(k for k in self.acked if found.get(k) != k)
        assert not lost, (f"{len(lost)} of {len(self.acked)} acknowledged writes are lost "
                          f"or wrong, e.g. {[(k, found.get(k)) for k in lost[:5]]}")


def follow_feed(pods):
    """A FeedFollower (tests/cluster/feedfollow.py) of every "user:" change
    from the start, moving along `pods` (a list the tests update as they
    replace pods) when its agent goes away."""
    return FeedFollower(lambda n: f"{pods[n % len(pods)].ip}:9090",
                        {s: 0 for s in range(SHARDS)})


def check_feed(feed, log, timeout=30):
    """Every shard's changes once, in revision order, no gap, and every
    acknowledged write among them as acknowledged."""
    want = {}
    for shard, rev in log.acked.values():
        want[shard] = max(want.get(shard, 0), rev)
    wait_for(lambda: feed.caught_up(want), timeout,
             f"the feed to reach the last acknowledged revisions {want} "
             f"(it is at {feed.last}, {feed.reconnects} reconnects)")
    assert not feed.errors, f"the feed reported {feed.errors[:3]}"
    gap = feed.first_gap()
    assert gap is None, gap
    missing = feed.missing((k, s, r) for k, (s, r) in log.acked.items())
    assert not missing, (f"{len(missing)} acknowledged writes are not in the feed as "
                         f"acknowledged, e.g. {missing[:3]}")
