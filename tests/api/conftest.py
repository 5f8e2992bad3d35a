"""Fixtures for the API tests: the real agent binary and a real gRPC client.

The agent is located through MQ_BUILD_DIR (default <repo>/build), so the same
suite runs against a sanitizer build with MQ_BUILD_DIR=build-asan. Python
stubs are generated from proto/ with grpc_tools.protoc into a per-session
temporary directory; nothing generated is ever written into the tree.

Every agent binds port 0 for all of its ports and announces the ports it got
on one stdout line:
    memquorum ready: node=test-1 api=127.0.0.1:41234 peer=0.0.0.0:40001 http=127.0.0.1:40002
On teardown each agent gets SIGTERM and must exit 0 within 10 s with no
sanitizer report on stderr.
"""
import itertools
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import grpc
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
BUILD_DIR = pathlib.Path(os.environ.get("MQ_BUILD_DIR", REPO / "build"))
if not BUILD_DIR.is_absolute():
    BUILD_DIR = REPO / BUILD_DIR
AGENT_BIN = BUILD_DIR / "bin" / "memquorum"
MQCTL_BIN = BUILD_DIR / "bin" / "mqctl"

# Sanitizer builds start and serve more slowly; every wait scales with this.
SLOW = float(os.environ.get("MQ_TEST_SLOWDOWN", "1"))
START_TIMEOUT = 15.0 * SLOW
STOP_TIMEOUT = 10.0  # graceful shutdown is a requirement, not a tunable
RPC_TIMEOUT = 10.0 * SLOW
SHARDS = 16


def _sanitized(build_dir):
    """The build's MQ_SANITIZE setting ("" for a plain build)."""
    try:
        for line in (build_dir / "CMakeCache.txt").read_text().splitlines():
            if line.startswith("MQ_SANITIZE:"):
                return line.split("=", 1)[1]
    except OSError:
        pass
    return ""


# ASan keeps freed memory in quarantine and maps shadow memory, so resident
# memory says nothing about the agent's own bounds in such a build.
SANITIZED = _sanitized(BUILD_DIR)

SANITIZER_MARKERS = ("AddressSanitizer", "runtime error:", "LeakSanitizer",
                     "UndefinedBehaviorSanitizer")

READY_RE = re.compile(r"memquorum ready:.*\bapi=([^ ]+)")
HTTP_RE = re.compile(r"\bhttp=([^ ]+)")


# ---------------------------------------------------------------------------
# Stubs generated from proto/ at test time


def _generate_stubs():
    from grpc_tools import protoc
    import grpc_tools

    out = tempfile.mkdtemp(prefix="mq-api-stubs-")
    well_known = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    proto_dir = REPO / "proto"
    # Only our own API is generated here. grpc/health and grpc/reflection
    # would shadow the installed `grpc` package if generated under that
    # name; grpcio-health-checking and grpcio-reflection ship the same
    # protos (checked against proto/ in test_health_reflection.py).
    rc = protoc.main([
        "grpc_tools.protoc",
        f"-I{proto_dir}",
        f"-I{well_known}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        str(proto_dir / "memquorum" / "v1" / "memquorum.proto"),
    ])
    if rc != 0:
        raise RuntimeError(f"grpc_tools.protoc failed with {rc}")
    sys.path.insert(0, out)
    return out


_STUB_DIR = _generate_stubs()
from memquorum.v1 import memquorum_pb2 as pb  # noqa: E402
from memquorum.v1 import memquorum_pb2_grpc as pb_grpc  # noqa: E402
from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_STUB_DIR, ignore_errors=True)


# ---------------------------------------------------------------------------
# Helpers shared by the test files


_counter = itertools.count(1)


def unique(prefix="t"):
    """A name no other test of this session uses."""
    return f"{prefix}{os.getpid()}x{next(_counter)}"


def java_string_hash(s):
    h = 0
    data = s.encode("utf-16-be")
    for i in range(0, len(data), 2):
        unit = (data[i] << 8) | data[i + 1]
        h = (31 * h + unit) & 0xFFFFFFFF
    return h - (1 << 32) if h & 0x80000000 else h


def shard_of(key, shards=SHARDS):
    """DESIGN.md section 2: user:{id}[:rest] shards by id, else the whole key."""
    if key.startswith("user:"):
        rest = key[len("user:"):]
        uid = rest.split(":", 1)[0]
    else:
        uid = key
    return java_string_hash(uid) % shards  # Python % is floorMod


def user_in_shard(shard, avoid=(), shards=SHARDS):
    """A fresh user id whose keys land in `shard`."""
    for i in itertools.count():
        uid = f"u{os.getpid()}s{shard}n{i}"
        if uid not in avoid and java_string_hash(uid) % shards == shard:
            return uid


def wait_for(cond, timeout, what, interval=0.01):
    """Polls cond() until it returns a truthy value; fails naming `what`."""
    deadline = time.monotonic() + timeout * SLOW
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout * SLOW:.1f}s waiting for {what}")
        time.sleep(interval)


def now_ms():
    return int(time.time() * 1000)


def expect_error(code, fn, *args, mentions=None, **kwargs):
    """Calls fn, asserts it fails with `code`, a non-empty message, and (if
    given) a message mentioning one of `mentions` (case-insensitive)."""
    with pytest.raises(grpc.RpcError) as ei:
        fn(*args, **kwargs)
    err = ei.value
    assert err.code() == code, (
        f"expected {code.name}, got {err.code().name}: {err.details()!r}")
    details = err.details() or ""
    assert details.strip(), f"{code.name} without a message"
    if mentions:
        if isinstance(mentions, str):
            mentions = (mentions,)
        low = details.lower()
        assert any(m.lower() in low for m in mentions), (
            f"message {details!r} mentions none of {mentions}")
    return err


class _DefaultTimeout(grpc.UnaryUnaryClientInterceptor,
                      grpc.UnaryStreamClientInterceptor):
    """Gives every unary call a deadline so a hung agent fails a test
    instead of hanging the suite. Streams keep whatever the test chose."""

    def intercept_unary_unary(self, continuation, details, request):
        if details.timeout is None:
            details = details._replace(timeout=RPC_TIMEOUT)
        return continuation(details, request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(details, request)


# ---------------------------------------------------------------------------
# The agent process


class Agent:
    """One running memquorum process and a client connected to it."""

    def __init__(self, node_id, extra_args=(), env=None, tmpdir=None,
                 pass_node_id=True):
        self.node_id = node_id
        self.pass_node_id = pass_node_id
        self.extra_args = list(extra_args)
        self.env_extra = dict(env or {})
        self.tmpdir = pathlib.Path(tmpdir or tempfile.mkdtemp(prefix="mq-agent-"))
        self.proc = None
        self.channel = None
        self.address = None
        self.http_address = None
        self._stdout_lines = []
        self._stderr_path = None
        self._starts = 0

    # -- lifecycle ---------------------------------------------------------

    def argv(self):
        node = ["--node-id", self.node_id] if self.pass_node_id else []
        return [str(AGENT_BIN), "--port", "0", "--http-port", "0",
                "--peer-port", "0", *node, *self.extra_args]

    def start(self):
        if not AGENT_BIN.exists():
            pytest.fail(f"agent binary {AGENT_BIN} not built (set MQ_BUILD_DIR)")
        self._starts += 1
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("MEMQUORUM_", "NACOS_", "KAFKA_"))}
        env.update(self.env_extra)
        self._stderr_path = self.tmpdir / f"{self.node_id}.{self._starts}.stderr"
        self._stderr_file = open(self._stderr_path, "wb")
        self._stdout_lines = []
        ready = threading.Event()
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE,
                                     stderr=self._stderr_file, env=env)

        def pump(proc=self.proc, lines=self._stdout_lines):
            for raw in proc.stdout:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                lines.append(line)
                m = READY_RE.search(line)
                if m and not ready.is_set():
                    self.address = m.group(1)
                    h = HTTP_RE.search(line)
                    self.http_address = h.group(1) if h else None
                    ready.set()
            ready.set()  # EOF: the process closed stdout or died

        self._pump = threading.Thread(target=pump, daemon=True)
        self._pump.start()
        ready.wait(START_TIMEOUT)
        if self.address is None:
            died = self.proc.poll() is not None
            if not died:
                self.proc.kill()
                self.proc.wait()
            why = (f"exited with {self.proc.returncode}" if died
                   else f"printed no ready line within {START_TIMEOUT:.0f}s")
            pytest.fail(f"agent {' '.join(self.argv())} {why}\n"
                        f"--- stdout ---\n{self.stdout()}\n"
                        f"--- stderr ---\n{self.stderr()}")
        self.channel = grpc.intercept_channel(
            grpc.insecure_channel(self.address), _DefaultTimeout())
        self.kv = pb_grpc.KVStub(self.channel)
        self.partition = pb_grpc.PartitionServiceStub(self.channel)
        self.watch = pb_grpc.WatchStub(self.channel)
        self.cluster = pb_grpc.ClusterStub(self.channel)
        self.health = health_pb2_grpc.HealthStub(self.channel)
        return self

    def stdout(self):
        return "\n".join(self._stdout_lines)

    def stderr(self):
        if self._stderr_path and self._stderr_path.exists():
            return self._stderr_path.read_text("utf-8", "replace")
        return ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def wait_exit(self, timeout=STOP_TIMEOUT):
        """Waits for the process to exit; returns its exit code or None."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, sig=signal.SIGTERM, check=True):
        """Stops the agent gracefully and checks it exited 0, cleanly."""
        if self.proc is None:
            return
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        rc = self.wait_exit(STOP_TIMEOUT)
        if rc is None:
            self.proc.kill()
            self.proc.wait()
        self._pump.join(5)
        self._stderr_file.close()
        proc, self.proc = self.proc, None
        if not check:
            return
        err = self.stderr()
        assert rc is not None, (
            f"agent {self.node_id} did not exit within {STOP_TIMEOUT:.0f}s of "
            f"{signal.Signals(sig).name}\n--- stderr tail ---\n{err[-4000:]}")
        assert rc == 0, (
            f"agent {self.node_id} exited with {rc} after "
            f"{signal.Signals(sig).name}\n--- stderr tail ---\n{err[-4000:]}")
        self.check_sanitizers()

    def check_sanitizers(self):
        err = self.stderr()
        for marker in SANITIZER_MARKERS:
            assert marker not in err, (
                f"agent {self.node_id} stderr has a sanitizer report "
                f"({marker!r}):\n{err[-8000:]}")

    def restart(self, extra_args=None, env=None):
        """Stops (checked) and starts again, optionally with other flags."""
        self.stop()
        if extra_args is not None:
            self.extra_args = list(extra_args)
        if env is not None:
            self.env_extra = dict(env)
        return self.start()

    # -- convenience -------------------------------------------------------

    def put(self, key, value=b"v", **kw):
        return self.kv.Put(pb.PutRequest(key=key, value=value, **kw))

    def get(self, key, **kw):
        return self.kv.Get(pb.GetRequest(key=key, **kw)).kv

    def delete(self, key, **kw):
        return self.kv.Delete(pb.DeleteRequest(key=key, **kw))

    def produce(self, topic, key="", value=b"v", partition=-1, timestamp=0):
        return self.partition.Produce(pb.ProduceRequest(
            topic=topic, partition=partition,
            entry=pb.Entry(key=key, value=value, timestamp=timestamp)))

    def read(self, topic, partition=-1, offset=0, count=0, key="", **kw):
        return self.partition.Read(pb.ReadRequest(
            topic=topic, partition=partition, offset=offset, count=count,
            key=key, **kw))

    def status(self):
        return self.cluster.Status(pb.StatusRequest())

    def raw_unary(self, method):
        """A unary call on `method` that sends and receives raw bytes."""
        return self.channel.unary_unary(method, request_serializer=None,
                                        response_deserializer=None)

    def raw_stream(self, method):
        return self.channel.unary_stream(method, request_serializer=None,
                                         response_deserializer=None)


_node_counter = itertools.count(1)


class AgentFactory:
    """Starts agents with chosen flags; stops and checks all of them at the
    end of the test (or module)."""

    def __init__(self, tmpdir):
        self.tmpdir = tmpdir
        self.agents = []

    def __call__(self, *extra_args, env=None, start=True, pass_node_id=True):
        a = Agent(f"test-{next(_node_counter)}", extra_args, env=env,
                  tmpdir=self.tmpdir, pass_node_id=pass_node_id)
        self.agents.append(a)
        return a.start() if start else a

    def close(self):
        errors = []
        for a in self.agents:
            try:
                a.stop()
            except AssertionError as e:  # stop every agent, then report
                errors.append(str(e))
        if errors:
            pytest.fail("\n\n".join(errors))


@pytest.fixture
def make_agent(tmp_path):
    """Factory: make_agent("--retention-entries", "5") -> a started Agent."""
    f = AgentFactory(tmp_path)
    yield f
    f.close()


@pytest.fixture(scope="module")
def agent(tmp_path_factory):
    """One agent with default settings shared by the tests of a module.
    Tests use unique key and topic names, so they do not see each other."""
    f = AgentFactory(tmp_path_factory.mktemp("agent"))
    a = f()
    yield a
    f.close()


@pytest.fixture(autouse=True)
def _shared_agent_survives(request):
    """A test that kills the module's shared agent is reported with the
    agent's stderr, and the agent is started again so that the rest of the
    module tests what it is meant to, not the aftermath."""
    if "agent" not in request.fixturenames:
        yield
        return
    a = request.getfixturevalue("agent")
    yield
    if a.alive():
        return
    rc = a.proc.returncode
    err = a.stderr()
    a.stop(check=False)
    a.start()
    pytest.fail(f"the agent died during this test (exit {rc}); restarted it\n"
                f"--- stderr tail ---\n{err[-4000:]}")


@pytest.fixture
def fresh_agent(make_agent):
    """A new agent with default settings for this test alone."""
    return make_agent()
