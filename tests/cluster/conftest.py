"""Fixtures for the cluster tests: three real agents replicating every shard.

The single-agent harness of tests/api (binary lookup through MQ_BUILD_DIR,
stubs generated from proto/ at test time, the ready-line parser, the Agent
process wrapper) is loaded from tests/api/conftest.py as a plain module, so
its fixtures are not registered here and its code is not duplicated.

A cluster is started the way DESIGN.md section 4 and issue 4 describe:

    memquorum --node-id nK --port 0 --http-port 0 --peer-port P_K
              --advertise HOST_K --peers n1=HOST_1:P_1,n2=...,n3=...
              --replication-factor 3 --bootstrap-expect 3

Peer ports must be known before any agent starts (every agent needs the
whole list), so they are picked by binding port 0 and closing the socket
just before the agents start. A cluster is "healthy" when every running
agent answers /readyz 200 and Health SERVING, and every agent's Cluster
Status shows each shard with an agreed leader and exactly the three node
ids as voters, with no learner and no old incarnation left.
"""
import concurrent.futures
import importlib.util
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

import grpc
import pytest

_HERE = pathlib.Path(__file__).resolve().parent
_API_CONFTEST = _HERE.parent / "api" / "conftest.py"

_spec = importlib.util.spec_from_file_location("mq_api_harness", _API_CONFTEST)
api = importlib.util.module_from_spec(_spec)
sys.modules["mq_api_harness"] = api
_spec.loader.exec_module(api)

pb = api.pb
health_pb2 = api.health_pb2
health_pb2_grpc = api.health_pb2_grpc
AGENT_BIN = api.AGENT_BIN
SLOW = api.SLOW
SHARDS = api.SHARDS
shard_of = api.shard_of
user_in_shard = api.user_in_shard
unique = api.unique
wait_for = api.wait_for

# Small enough that the tests' writes compact every busy shard's log, so a
# restarted agent can only catch up from a snapshot.
SNAPSHOT_ENTRIES = 100
HEALTHY_TIMEOUT = 45.0 * SLOW
STOP_TIMEOUT = api.STOP_TIMEOUT


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(api._STUB_DIR, ignore_errors=True)


# Fixed peer ports come from below the kernel's ephemeral range: a port the
# kernel hands out (bind to 0) is free only until some outgoing connection
# takes it as its source port, which happened between picking a port and the
# agent's bind. Ports below the range are never chosen by the kernel.
_PORT_LOW = 20000
_next_port = _PORT_LOW + (os.getpid() * 37) % 4000


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_ports(n, host=""):
    """n distinct TCP ports, free on `host` now and outside the range the
    kernel picks source ports from."""
    global _next_port
    high = _ephemeral_low()
    if high - _PORT_LOW < 1000:
        high = 65535  # an unusual range: fall back to the upper ports
    ports = []
    tries = 0
    while len(ports) < n:
        tries += 1
        if tries > 20000:
            raise RuntimeError(f"no {n} free ports in [{_PORT_LOW}, {high})")
        port = _next_port
        _next_port = _PORT_LOW if _next_port + 1 >= high else _next_port + 1
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind((host, port))
        except OSError:
            continue
        finally:
            s.close()
        ports.append(port)
    return ports


def not_sent(err):
    """True when an RPC error proves the request never left the client (so
    it cannot have been applied): the call was refused on a closed channel.
    A status such as UNAVAILABLE "failed to connect to all addresses" proves
    nothing: gRPC retries transparently after a connection dies, and that
    retry can fail so even though the first attempt reached an agent that
    proposed the write before it was killed."""
    return isinstance(err, ValueError)


_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))

_CHANNEL_OPTIONS = [
    ("grpc.enable_http_proxy", 0),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
]


# ---------------------------------------------------------------------------
# One agent of a cluster


class ClusterAgent(api.Agent):
    """An Agent started with the cluster flags. `up` is the test's own
    bookkeeping: False from the moment the test decides to kill or stop it,
    so client threads stop choosing it before the signal is sent."""

    def __init__(self, cluster, node_id, host, peer_port, prefix, tmpdir):
        super().__init__(node_id, tmpdir=tmpdir)
        self.owner = cluster
        self.host = host
        self.peer_port = peer_port
        self.prefix = list(prefix)
        self.up = False
        self.incarnations = 0
        self.old_channels = []
        self.api_port = 0  # 0: the agent picks one and prints it
        self.peers = None  # --peers; None: every agent of the cluster

    def argv(self):
        c = self.owner
        args = [*self.prefix, str(AGENT_BIN),
                "--node-id", self.node_id,
                "--port", str(self.api_port), "--http-port", "0",
                "--peer-port", str(self.peer_port),
                "--advertise", self.host,
                "--peers", self.peers or c.peers_flag(),
                "--replication-factor", "3",
                "--bootstrap-expect", str(len(c.agents)),
                "--snapshot-entries", str(c.snapshot_entries)]
        if self.host != "127.0.0.1":
            args += ["--api-bind", self.host]
        return args + list(c.extra_args)

    def start(self):
        super().start()
        self.incarnations += 1
        # The harness's channel has default reconnect backoff and honours
        # proxy variables; cluster tests reconnect a lot and never proxy.
        self.channel.close()
        self.channel = grpc.intercept_channel(
            grpc.insecure_channel(self.address, options=_CHANNEL_OPTIONS),
            api._DefaultTimeout())
        self.kv = api.pb_grpc.KVStub(self.channel)
        self.partition = api.pb_grpc.PartitionServiceStub(self.channel)
        self.watch = api.pb_grpc.WatchStub(self.channel)
        self.cluster_stub = api.pb_grpc.ClusterStub(self.channel)
        self.health = health_pb2_grpc.HealthStub(self.channel)
        if self.http_address:
            port = self.http_address.rsplit(":", 1)[1]
            self.http_address = f"{self.host}:{port}"
        self.up = True
        return self

    def status(self, timeout=3.0):
        return self.cluster_stub.Status(pb.StatusRequest(), timeout=timeout)

    def metric(self, name, timeout=2.0):
        """The value of an unlabelled sample of /metrics."""
        with _NO_PROXY.open(f"http://{self.http_address}/metrics",
                            timeout=timeout) as r:
            for line in r.read().decode().splitlines():
                if line.startswith(name + " "):
                    return float(line.split()[1])
        raise AssertionError(f"{self.node_id} /metrics has no {name}")

    def http_status(self, path, timeout=2.0):
        """The HTTP status code of GET path, or None if no answer."""
        try:
            with _NO_PROXY.open(f"http://{self.http_address}{path}",
                                timeout=timeout) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code
        except (OSError, ValueError):
            return None

    def http_body(self, path, timeout=2.0):
        """The body of GET path (also of an error answer), or None."""
        try:
            with _NO_PROXY.open(f"http://{self.http_address}{path}",
                                timeout=timeout) as r:
                return r.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as e:
            return e.read().decode("utf-8", "replace")
        except (OSError, ValueError):
            return None

    def serving(self):
        try:
            r = self.health.Check(health_pb2.HealthCheckRequest(service=""),
                                  timeout=2.0)
            return r.status == health_pb2.HealthCheckResponse.SERVING
        except grpc.RpcError:
            return False

    def kill9(self):
        """kill -9: the agent loses its memory. The client channel is left
        open (calls on it fail with UNAVAILABLE) for threads still using it."""
        self.up = False
        if self.proc is None:
            return
        self.proc.kill()
        self.proc.wait()
        self._pump.join(5)
        self._stderr_file.close()
        self.old_channels.append(self.channel)
        self.proc = None

    def terminate(self, timeout=STOP_TIMEOUT):
        """SIGTERM; returns the exit code, or None if it did not exit."""
        self.up = False
        self.proc.send_signal(signal.SIGTERM)
        rc = self.wait_exit(timeout)
        if rc is None:
            self.proc.kill()
            self.proc.wait()
        self._pump.join(5)
        self._stderr_file.close()
        self.old_channels.append(self.channel)
        self.proc = None
        return rc

    def crashed(self):
        """True if the test thinks it is up but the process has exited."""
        return self.up and (self.proc is None or self.proc.poll() is not None)

    def stderr_tail(self, n=4000):
        return self.stderr()[-n:]

    def close_channels(self):
        for ch in self.old_channels + ([self.channel] if self.channel else []):
            ch.close()
        self.old_channels = []
        self.channel = None


def normalize_replica(entry):
    """'n2' -> ('n2', ''); 'n2 (learner)' -> ('n2', 'learner');
    'n2(old incarnation)' -> ('n2', 'old incarnation')."""
    entry = entry.strip()
    if "(" in entry:
        node, tag = entry.split("(", 1)
        return node.strip(), tag.rstrip(")").strip()
    return entry, ""


# ---------------------------------------------------------------------------
# The cluster


_LIVE = []  # clusters whose agents' stderr goes into failure reports


class Cluster:
    def __init__(self, tmpdir, hosts=("127.0.0.1",) * 3, prefixes=None,
                 extra_args=(), snapshot_entries=SNAPSHOT_ENTRIES,
                 fixed_api_ports=False, id_prefix="n"):
        self.tmpdir = pathlib.Path(tmpdir)
        self.extra_args = list(extra_args)
        self.snapshot_entries = snapshot_entries
        prefixes = prefixes or [()] * len(hosts)
        n = len(hosts)
        ports = free_ports(2 * n if fixed_api_ports else n)
        self.agents = [ClusterAgent(self, f"{id_prefix}{i + 1}", host, port, prefix,
                                    self.tmpdir)
                       for i, (host, port, prefix)
                       in enumerate(zip(hosts, ports, prefixes))]
        if fixed_api_ports:
            # Known before the ready line, for tests that watch the start.
            for a, port in zip(self.agents, ports[n:]):
                a.api_port = port
        self.by_id = {a.node_id: a for a in self.agents}
        self.node_ids = set(self.by_id)
        self.last_unhealthy = ""

    def peers_flag(self):
        return ",".join(f"{a.node_id}={a.host}:{a.peer_port}"
                        for a in self.agents)

    # -- lifecycle ---------------------------------------------------------

    def start(self, wait=True):
        """Starts every agent at once (each waits for the others before it
        can bootstrap) and, with wait, until the cluster is healthy (every
        agent holding every shard: as many agents as replicas)."""
        _LIVE.append(self)
        with concurrent.futures.ThreadPoolExecutor(len(self.agents)) as ex:
            futs = [ex.submit(a.start) for a in self.agents]
            errors = []
            for f in futs:
                try:
                    f.result()
                except BaseException as e:  # pytest.fail raises Failed
                    errors.append(str(e))
        if errors:
            self.close()
            pytest.fail("cluster did not start:\n" + "\n".join(errors))
        if wait:
            try:
                self.wait_healthy("the new cluster to become healthy")
            except BaseException:
                self.close()  # no agent outlives a cluster that never formed
                raise
        return self

    def up(self):
        return [a for a in self.agents if a.up]

    def kill9(self, node_id):
        self.by_id[node_id].kill9()

    def restart(self, node_id):
        """Starts a stopped or killed agent again: same node id and peer
        port, empty memory."""
        a = self.by_id[node_id]
        assert a.proc is None, f"{node_id} is still running"
        a.start()
        return a

    def close(self):
        """SIGTERMs every running agent at once; returns a list of problems
        (non-zero exit, no exit, sanitizer reports)."""
        problems = []
        running = [a for a in self.agents if a.proc is not None]
        for a in running:
            a.up = False
            if a.proc.poll() is None:
                a.proc.send_signal(signal.SIGTERM)
        for a in running:
            rc = a.wait_exit(STOP_TIMEOUT)
            if rc is None:
                a.proc.kill()
                a.proc.wait()
                problems.append(f"{a.node_id} did not exit within "
                                f"{STOP_TIMEOUT:.0f}s of SIGTERM")
            elif rc != 0:
                problems.append(f"{a.node_id} exited with {rc} on SIGTERM")
            a._pump.join(5)
            a._stderr_file.close()
            a.proc = None
            try:
                a.check_sanitizers()
            except AssertionError as e:
                problems.append(str(e))
        for a in self.agents:
            a.close_channels()
        if self in _LIVE:
            _LIVE.remove(self)
        if problems:
            problems.append(self.stderr_report())
        return problems

    def crashed(self):
        return [a for a in self.agents if a.crashed()]

    # -- observation -------------------------------------------------------

    def statuses(self):
        """{node_id: StatusResponse or the RpcError} for every up agent."""
        out = {}
        for a in self.up():
            try:
                out[a.node_id] = a.status()
            except grpc.RpcError as e:
                out[a.node_id] = e
        return out

    def health_problem(self, want=None):
        """None when healthy; otherwise what is wrong, for the report.
        `want` is the set of agents that must be up (default: all)."""
        want = want if want is not None else self.node_ids
        for nid in sorted(want):
            a = self.by_id[nid]
            if a.crashed():
                return f"{nid} exited with {a.proc.returncode}"
            if not a.up:
                return f"{nid} is not running"
            code = a.http_status("/readyz")
            if code != 200:
                return f"{nid} /readyz answers {code}"
            if not a.serving():
                return f"{nid} Health/Check is not SERVING"
        views = {}
        for nid in sorted(want):
            try:
                views[nid] = self.by_id[nid].status()
            except grpc.RpcError as e:
                return f"{nid} Cluster/Status failed: {e.code().name} {e.details()}"
        voters = set(want)
        for nid, st in views.items():
            if len(st.shards) != SHARDS:
                return f"{nid} Status lists {len(st.shards)} shards, not {SHARDS}"
            for m in st.members:
                if m.node_id in want and m.state != "alive":
                    return f"{nid} sees member {m.node_id} as {m.state!r}"
            for s in st.shards:
                reps = [normalize_replica(r) for r in s.replicas]
                tagged = [r for r in s.replicas if normalize_replica(r)[1]]
                if tagged:
                    return f"{nid}: shard {s.shard} replicas {list(s.replicas)}"
                if sorted(n for n, _ in reps) != sorted(voters):
                    return f"{nid}: shard {s.shard} replicas {list(s.replicas)}"
                if s.leader not in voters:
                    return f"{nid}: shard {s.shard} leader {s.leader!r}"
        for shard in range(SHARDS):
            leaders = {nid: shard_status(st, shard).leader
                       for nid, st in views.items()}
            if len(set(leaders.values())) != 1:
                return f"shard {shard}: agents disagree on the leader {leaders}"
            leader = next(iter(leaders.values()))
            role = shard_status(views[leader], shard).role
            if role != "leader":
                return (f"shard {shard}: leader {leader} reports role "
                        f"{role!r} for itself")
        return None

    def wait_healthy(self, what, timeout=HEALTHY_TIMEOUT, want=None):
        deadline = time.monotonic() + timeout
        while True:
            problem = self.health_problem(want)
            if problem is None:
                return
            self.last_unhealthy = problem
            crashed = self.crashed()
            if crashed or time.monotonic() > deadline:
                why = (f"{crashed[0].node_id} crashed" if crashed
                       else f"timed out after {timeout:.0f}s")
                pytest.fail(f"waiting for {what}: {why}; last problem: "
                            f"{problem}\n{self.status_report()}")
            time.sleep(0.1)

    def leader_of(self, shard, settle=5.0):
        """The leader of `shard` as the up agents' Status reports it; fails
        the test if they still disagree, or none is known, after `settle`
        seconds. The agents are asked one after another, so a hand-over
        between two answers shows as a disagreement that is not one."""
        deadline = time.monotonic() + settle
        while True:
            seen = {}
            for nid, st in self.statuses().items():
                if isinstance(st, grpc.RpcError):
                    continue
                seen[nid] = shard_status(st, shard).leader
            leaders = set(seen.values())
            if len(leaders) == 1 and "" not in leaders:
                return leaders.pop()
            if time.monotonic() > deadline:
                pytest.fail(f"shard {shard}: no agreed leader for {settle:.0f}s: "
                            f"{seen}")
            time.sleep(0.1)

    def leaders(self, via=None):
        """{shard: leader node id} from one agent's Status."""
        a = via or self.up()[0]
        return {s.shard: s.leader for s in a.status().shards}

    def status_report(self):
        lines = []
        for nid, st in self.statuses().items():
            if isinstance(st, grpc.RpcError):
                lines.append(f"{nid}: Status failed: {st.code().name} {st.details()}")
                continue
            lines.append(f"{nid}: members "
                         + ", ".join(f"{m.node_id}={m.state}" for m in st.members))
            for s in st.shards:
                lines.append(f"  shard {s.shard:2d} leader={s.leader or '-':3s} "
                             f"role={s.role:9s} term={s.term} "
                             f"commit={s.commit_index} applied={s.applied_index} "
                             f"keys={s.keys} digest={s.digest} "
                             f"replicas={list(s.replicas)}")
        return "\n".join(lines)

    def stderr_report(self, n=3000):
        parts = []
        for a in self.agents:
            parts.append(f"--- {a.node_id} stderr tail "
                         f"(incarnation {a.incarnations}) ---\n{a.stderr_tail(n)}")
        return "\n".join(parts)


def wait_no_problem(c, problem, what, timeout=HEALTHY_TIMEOUT, interval=0.1):
    """Polls problem() (None when all is well, else what is wrong) until it
    returns None; fails the test on a crashed agent or after timeout, with
    the last problem and every agent's view."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = problem()
        if last is None:
            return
        crashed = c.crashed()
        assert not crashed, f"{crashed[0].node_id} crashed waiting for {what}"
        time.sleep(interval)
    pytest.fail(f"waiting for {what}: timed out after {timeout:.0f}s; last problem: "
                f"{last}\n{c.status_report()}")


def divergence(c, agents=None):
    """None when every replica of every shard, on `agents` (default: all
    of the cluster), reports the same digest, key count and applied index
    in its Cluster Status; else the first shards that differ and each
    agent's figures. Replicas equal only once writes stop."""
    agents = agents or c.agents
    try:
        views = {a.node_id: {s.shard: s for s in a.status().shards}
                 for a in agents}
    except grpc.RpcError as e:
        return f"Cluster/Status failed: {e.code().name} {e.details()}"
    diff = [sh for sh in range(SHARDS)
            if len({(v[sh].digest, v[sh].keys, v[sh].applied_index)
                    for v in views.values()}) != 1]
    if not diff:
        return None
    sh = diff[0]
    return (f"shards {diff} differ between replicas, e.g. shard {sh}: "
            + ", ".join(f"{n}: digest={v[sh].digest} keys={v[sh].keys} "
                        f"applied={v[sh].applied_index}"
                        for n, v in views.items()))


def shard_status(st, shard):
    for s in st.shards:
        if s.shard == shard:
            return s
    raise AssertionError(f"{st.node_id} Status has no shard {shard}")


# ---------------------------------------------------------------------------
# Fixtures and reporting


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Three agents on loopback for the tests of one module."""
    c = Cluster(tmp_path_factory.mktemp("cluster")).start()
    yield c
    problems = c.close()
    if problems:
        pytest.fail("cluster shutdown: " + "\n".join(problems))


@pytest.fixture
def healthy(cluster):
    """The module's cluster, healthy when the test starts; after the test,
    an agent that died without being killed by the test fails it."""
    cluster.wait_healthy("the cluster to be healthy at the start of the test")
    yield cluster
    crashed = cluster.crashed()
    if crashed:
        pytest.fail("agent(s) died during the test: "
                    + ", ".join(f"{a.node_id} (exit {a.proc.returncode})"
                                for a in crashed)
                    + "\n" + cluster.stderr_report())


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for c in list(_LIVE):
            for a in c.agents:
                rep.sections.append(
                    (f"agent {a.node_id} stderr tail (incarnation {a.incarnations})",
                     a.stderr_tail()))
