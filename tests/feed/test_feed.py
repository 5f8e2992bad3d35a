"""The HTTP port of a real agent: probes, /metrics, the actuator documents and
the websocket change feed at /v1/watch (DESIGN.md sections 4 and 8).

Each test starts the real binary (MQ_BUILD_DIR, default <repo>/build) with
every port 0, reads the ports from the ready line, drives writes through a
real gRPC client (stubs generated from proto/ at test time into a temporary
directory) and watches with a real websocket client (websocket-client).
"""
import base64
import itertools
import json
import math
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
import urllib.error
import urllib.request

import grpc
import pytest
import websocket

REPO = pathlib.Path(__file__).resolve().parents[2]
BUILD_DIR = pathlib.Path(os.environ.get("MQ_BUILD_DIR", REPO / "build"))
if not BUILD_DIR.is_absolute():
    BUILD_DIR = REPO / BUILD_DIR
AGENT_BIN = BUILD_DIR / "bin" / "memquorum"
SLOW = float(os.environ.get("MQ_TEST_SLOWDOWN", "1"))
TIMEOUT = 10.0 * SLOW
SHARDS = 16

READY_RE = re.compile(r"memquorum ready:.*\bapi=([^ ]+)")
HTTP_RE = re.compile(r"\bhttp=([^ ]+)")

REQUIRED_METRICS = [
    "memquorum_requests_total", "memquorum_request_errors_total",
    "memquorum_shard_keys", "memquorum_shard_bytes", "memquorum_shard_revision",
    "memquorum_shard_applied_index", "memquorum_shard_commit_index",
    "memquorum_shard_term", "memquorum_shard_is_leader",
    "memquorum_memory_used_bytes", "memquorum_memory_budget_bytes",
    "memquorum_expired_keys_total", "memquorum_watches_open",
    "memquorum_watch_events_total", "memquorum_watches_dropped_slow_total",
    "memquorum_requests_forwarded_total", "memquorum_request_retries_total",
    "memquorum_forward_batches_lost_total", "memquorum_snapshots_installed_total",
    "memquorum_leader_handoffs_total",
    "memquorum_feed_connections", "memquorum_ready", "memquorum_build_info",
    "process_resident_memory_bytes", "process_start_time_seconds",
]


# ---------------------------------------------------------------------------
# gRPC stubs, generated at test time


def _generate_stubs():
    from grpc_tools import protoc
    import grpc_tools

    out = tempfile.mkdtemp(prefix="mq-feed-stubs-")
    well_known = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    rc = protoc.main([
        "grpc_tools.protoc", f"-I{REPO / 'proto'}", f"-I{well_known}",
        f"--python_out={out}", f"--grpc_python_out={out}",
        str(REPO / "proto" / "memquorum" / "v1" / "memquorum.proto"),
    ])
    if rc != 0:
        raise RuntimeError(f"grpc_tools.protoc failed with {rc}")
    sys.path.insert(0, out)
    return out


_STUB_DIR = _generate_stubs()
from memquorum.v1 import memquorum_pb2 as pb  # noqa: E402
from memquorum.v1 import memquorum_pb2_grpc as pb_grpc  # noqa: E402


def teardown_module(module):
    shutil.rmtree(_STUB_DIR, ignore_errors=True)


# ---------------------------------------------------------------------------
# Helpers

_counter = itertools.count(1)


def unique(prefix="u"):
    return f"{prefix}{os.getpid()}x{next(_counter)}"


def java_string_hash(s):
    h = 0
    data = s.encode("utf-16-be")
    for i in range(0, len(data), 2):
        h = (31 * h + ((data[i] << 8) | data[i + 1])) & 0xFFFFFFFF
    return h - (1 << 32) if h & 0x80000000 else h


def shard_of_user(uid):
    return java_string_hash(uid) % SHARDS


class Agent:
    """One memquorum process with its gRPC stubs and HTTP address."""

    def __init__(self, *extra):
        self.argv = [str(AGENT_BIN), "--port", "0", "--http-port", "0",
                     "--node-id", "feedtest", *extra]
        self.tmp = tempfile.mkdtemp(prefix="mq-feed-")
        self.stderr_path = os.path.join(self.tmp, "stderr")
        self.lines = []
        self.api = self.http = None

    def start(self):
        if not AGENT_BIN.exists():
            pytest.fail(f"agent binary {AGENT_BIN} not built (set MQ_BUILD_DIR)")
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("MEMQUORUM_", "NACOS_", "KAFKA_"))}
        self.stderr_file = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE,
                                     stderr=self.stderr_file, env=env)
        ready = threading.Event()

        def pump():
            for raw in self.proc.stdout:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                self.lines.append(line)
                m = READY_RE.search(line)
                if m and not ready.is_set():
                    self.api = m.group(1)
                    h = HTTP_RE.search(line)
                    self.http = h.group(1) if h else None
                    ready.set()
            ready.set()

        threading.Thread(target=pump, daemon=True).start()
        ready.wait(15 * SLOW)
        if self.api is None:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"agent did not print its ready line\n{self.stderr()}")
        self.channel = grpc.insecure_channel(self.api)
        self.kv = pb_grpc.KVStub(self.channel)
        self.partition = pb_grpc.PartitionServiceStub(self.channel)
        return self

    @property
    def port(self):
        assert self.http, f"no http= in the ready line: {self.lines}"
        host, port = self.http.rsplit(":", 1)
        assert host == "0.0.0.0", f"HTTP should bind every interface, got {self.http}"
        return int(port)

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def ws_url(self, path="/v1/watch"):
        return f"ws://127.0.0.1:{self.port}{path}"

    def stderr(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                pytest.fail(f"agent did not exit within 10 s of SIGTERM\n{self.stderr()}")
        self.channel.close()
        self.stderr_file.close()
        shutil.rmtree(self.tmp, ignore_errors=True)
        return self.proc.returncode

    def put(self, key, value):
        return self.kv.Put(pb.PutRequest(key=key, value=value), timeout=TIMEOUT)

    def delete(self, key):
        return self.kv.Delete(pb.DeleteRequest(key=key), timeout=TIMEOUT)

    def produce(self, topic, key, value, timestamp=0):
        return self.partition.Produce(pb.ProduceRequest(
            topic=topic, partition=-1,
            entry=pb.Entry(key=key, value=value, timestamp=timestamp)), timeout=TIMEOUT)


@pytest.fixture(scope="module")
def agent():
    a = Agent().start()
    yield a
    rc = a.stop()
    assert rc == 0, f"agent exited with {rc}\n{a.stderr()}"


@pytest.fixture
def make_agent():
    started = []

    def make(*extra):
        a = Agent(*extra).start()
        started.append(a)
        return a

    yield make
    for a in started:
        rc = a.stop()
        assert rc == 0, f"agent exited with {rc}\n{a.stderr()[-3000:]}"


def http_get(url, method="GET", data=None):
    req = urllib.request.Request(url, method=method, data=data)
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


class Closed(Exception):
    def __init__(self, code, reason):
        super().__init__(f"closed with {code} {reason!r}")
        self.code, self.reason = code, reason


def ws_connect(a, **kw):
    kw.setdefault("suppress_origin", True)
    return websocket.create_connection(a.ws_url(), timeout=TIMEOUT, **kw)


def recv_frame(ws):
    """The next text message as JSON; raises Closed on a close frame."""
    while True:
        op, frame = ws.recv_data_frame(control_frame=True)
        if op == websocket.ABNF.OPCODE_TEXT:
            return json.loads(frame.data.decode("utf-8"))
        if op == websocket.ABNF.OPCODE_CLOSE:
            data = frame.data
            code = int.from_bytes(data[:2], "big") if len(data) >= 2 else None
            raise Closed(code, data[2:].decode("utf-8", "replace"))


def recv_close(ws):
    """Reads until the close frame; returns (code, reason, messages before)."""
    msgs = []
    while True:
        try:
            msgs.append(recv_frame(ws))
        except Closed as c:
            return c.code, c.reason, msgs


def subscribe(ws, **body):
    ws.send(json.dumps({"subscribe": body}))
    ack = recv_frame(ws)
    assert "subscribed" in ack, f"expected the subscription ack, got {ack}"
    return ack["subscribed"]


# ---------------------------------------------------------------------------
# Probes, metrics, actuator


def test_probes(agent):
    status, _, body = http_get(agent.url("/healthz"))
    assert (status, body.strip()) == (200, "ok")
    status, _, body = http_get(agent.url("/readyz"))
    assert status == 200, body


def test_unknown_path_and_method(agent):
    assert http_get(agent.url("/nope"))[0] == 404
    status, headers, _ = http_get(agent.url("/healthz"), method="POST", data=b"x=1")
    assert status == 405
    assert headers.get("Allow") == "GET"


SAMPLE_RE = re.compile(
    r'^([a-zA-Z_:][a-zA-Z0-9_:]*)'
    r'(?:\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*)\})?'
    r' (\S+)(?: -?\d+)?$')
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\.)*)"')


def parse_prometheus(text):
    """Strict parse of the text exposition format 0.0.4. Returns
    {name: {"type":..., "help":..., "samples": {frozenset(labels): value}}}."""
    families = {}
    assert text.endswith("\n"), "exposition must end with a newline"
    for n, line in enumerate(text.split("\n")[:-1], 1):
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            kind, name, rest = line[2:6], *line[7:].split(" ", 1)
            fam = families.setdefault(name, {"samples": {}})
            assert kind.lower() not in fam, f"line {n}: second {kind} for {name}"
            assert not fam["samples"], f"line {n}: {kind} after samples of {name}"
            if kind == "TYPE":
                assert rest in ("counter", "gauge", "histogram", "summary", "untyped"), line
            fam[kind.lower()] = rest
            continue
        assert line and not line.startswith("#"), f"line {n}: unexpected {line!r}"
        m = SAMPLE_RE.match(line)
        assert m, f"line {n}: not a sample: {line!r}"
        name, labels, value = m.groups()
        assert name in families and "type" in families[name], \
            f"line {n}: sample of {name} without a TYPE line"
        key = frozenset(LABEL_RE.findall(labels or ""))
        assert key not in families[name]["samples"], f"line {n}: duplicate sample"
        v = float(value)
        assert not math.isnan(v), line
        families[name]["samples"][key] = v
    return families


def metrics(agent):
    status, headers, body = http_get(agent.url("/metrics"))
    assert status == 200
    assert headers.get("Content-Type", "").startswith("text/plain; version=0.0.4")
    return parse_prometheus(body)


def test_metrics_exposition(agent):
    fams = metrics(agent)
    for name in REQUIRED_METRICS:
        assert name in fams, f"/metrics lacks {name}"
        assert fams[name].get("help"), f"{name} has no HELP"
        assert fams[name]["samples"], f"{name} has no samples"
    assert fams["memquorum_requests_total"]["type"] == "counter"
    assert fams["memquorum_ready"]["samples"][frozenset()] == 1
    shards = {dict(k)["shard"] for k in fams["memquorum_shard_keys"]["samples"]}
    assert shards == {str(i) for i in range(SHARDS)}
    assert fams["process_resident_memory_bytes"]["samples"][frozenset()] > 1 << 20
    start = fams["process_start_time_seconds"]["samples"][frozenset()]
    assert time.time() - 3600 < start <= time.time() + 1
    (labels,) = fams["memquorum_build_info"]["samples"]
    assert dict(labels).get("version"), "build_info has no version label"


def test_metrics_count_puts(agent):
    put = frozenset({("type", "put")})
    before = metrics(agent)["memquorum_requests_total"]["samples"][put]
    for i in range(3):
        agent.put(f"user:{unique()}:m", b"v")
    after = metrics(agent)["memquorum_requests_total"]["samples"][put]
    assert after == before + 3


def test_memory_by_structure_and_byte_caps(make_agent):
    """/metrics breaks each shard's memory down by structure, and the watch
    history and the Raft log stay within their byte caps however much is
    written, while the records themselves grow."""
    cap = 64 * 1024
    a = make_agent("--watch-history-bytes", "64KiB", "--raft-log-bytes", "64KiB")
    uid = unique()
    value = b"x" * 1000
    for i in range(1500):
        r = a.put(f"user:{uid}:{i}", value)
    shard = str(r.shard)
    fams = metrics(a)
    mem = {}
    for labels, v in fams["memquorum_shard_memory_bytes"]["samples"].items():
        d = dict(labels)
        mem.setdefault(d["shard"], {})[d["structure"]] = v
    assert set(mem) == {str(i) for i in range(SHARDS)}
    structures = {"kv_records", "kv_index", "raft_log", "watch_history", "request_ids",
                  "topic_logs"}
    assert all(set(m) == structures for m in mem.values()), mem[shard]
    m = mem[shard]
    assert m["kv_records"] > 1500 * 1000, m
    assert m["kv_index"] > 0, m
    # The caps bound payload bytes; the history's ring, the log's entry
    # array and the unfilled ends of its chunks are counted on top, and one
    # event or entry may cross the cap before the oldest go.
    assert m["watch_history"] <= cap + 32 * 1024, m
    assert 0 < m["raft_log"] <= cap + 64 * 1024, m
    total = sum(m.values())
    shard_bytes = fams["memquorum_shard_bytes"]["samples"][frozenset({("shard", shard)})]
    assert total - m["raft_log"] <= shard_bytes, (m, shard_bytes)


def test_actuator(agent):
    status, headers, body = http_get(agent.url("/actuator/health"))
    assert status == 200
    assert headers.get("Content-Type") == "application/json"
    health = json.loads(body)
    assert health["status"] == "UP" and health["components"]

    status, _, body = http_get(agent.url("/actuator/info"))
    info = json.loads(body)
    assert info["node"]["id"] == "feedtest"
    assert info["app"]["name"] == "memquorum" and info["app"]["version"]
    assert info["cluster"]["shards_total"] == SHARDS
    assert info["cluster"]["replication_factor"] == 1

    names = json.loads(http_get(agent.url("/actuator/metrics"))[2])["names"]
    assert set(REQUIRED_METRICS) <= set(names)
    status, _, body = http_get(agent.url("/actuator/metrics/memquorum_ready"))
    assert status == 200
    doc = json.loads(body)
    assert doc["name"] == "memquorum_ready"
    assert doc["measurements"] == [{"statistic": "VALUE", "value": 1}]
    assert http_get(agent.url("/actuator/metrics/no_such_metric"))[0] == 404


# ---------------------------------------------------------------------------
# The change feed


def test_prefix_events_in_order(agent):
    uid = unique()
    prefix = f"user:{uid}:"
    before_ms = int(time.time() * 1000)
    ws = ws_connect(agent)
    ack = subscribe(ws, prefix=prefix)
    assert ack["prefix"] == prefix and ack["watches"] == 1
    r1 = agent.put(prefix + "a", b"one")
    agent.put(f"user:{unique()}:a", b"not mine")
    r2 = agent.put(prefix + "a", b"two")
    r3 = agent.delete(prefix + "a")
    evs = [recv_frame(ws) for _ in range(3)]
    ws.close()
    assert [e["type"] for e in evs] == ["PUT", "PUT", "DELETE"]
    assert [e["revision"] for e in evs] == [r1.revision, r2.revision, r3.revision]
    assert all(e["shard"] == shard_of_user(uid) == r1.shard for e in evs)
    assert all(e["key"] == prefix + "a" for e in evs)
    assert [evs[0]["value"], evs[1]["value"]] == ["one", "two"]
    assert evs[0]["create_revision"] == evs[1]["create_revision"] == r1.revision
    assert evs[1]["mod_revision"] == r2.revision
    assert [evs[0]["version"], evs[1]["version"]] == [1, 2]
    assert evs[0]["expires_at_ms"] == 0
    after_ms = int(time.time() * 1000)
    stamps = [e["timestamp"] for e in evs]
    assert stamps == sorted(stamps), stamps
    assert before_ms - 1000 <= stamps[0] and stamps[-1] <= after_ms + 1000, stamps


def test_topic_gets_produce(agent):
    topic = unique("t")
    ws = ws_connect(agent)
    ack = subscribe(ws, topics=[topic])
    assert ack["topics"] == [topic] and ack["prefix"] is None
    key = f"user:{unique()}:e"
    agent.put(key, b"a kv change, not on the topic")
    r = agent.produce(topic, key, b"payload", timestamp=1700000000123)
    ev = recv_frame(ws)
    ws.close()
    assert ev["type"] == "PRODUCE"
    assert (ev["topic"], ev["key"], ev["value"]) == (topic, key, "payload")
    assert (ev["partition"], ev["offset"], ev["revision"]) == (r.partition, r.offset, r.revision)
    assert ev["shard"] == r.partition
    assert ev["timestamp"] == 1700000000123


def test_prefix_and_topics_together(agent):
    uid = unique()
    t1, t2 = unique("t"), unique("t")
    ws = ws_connect(agent)
    assert subscribe(ws, prefix=f"user:{uid}:", topics=[t1, t2])["watches"] == 3
    agent.put(f"user:{uid}:k", b"v")
    agent.produce(t1, f"user:{uid}:k", b"1")
    agent.produce(t2, f"user:{uid}:k", b"2")
    got = sorted((e["type"], e.get("topic", "")) for e in (recv_frame(ws) for _ in range(3)))
    ws.close()
    assert got == sorted([("PUT", ""), ("PRODUCE", t1), ("PRODUCE", t2)])


def test_resume_from(agent):
    uid = unique()
    prefix = f"user:{uid}:"
    revs = [agent.put(prefix + str(i), str(i).encode()) for i in range(4)]
    shard = revs[0].shard
    ws = ws_connect(agent)
    subscribe(ws, prefix=prefix, **{"from": {str(shard): revs[1].revision}})
    replayed = [recv_frame(ws) for _ in range(2)]
    assert [e["revision"] for e in replayed] == [revs[2].revision, revs[3].revision]
    live = agent.put(prefix + "live", b"x")
    assert recv_frame(ws)["revision"] == live.revision
    ws.close()


def test_non_utf8_value_is_base64(agent):
    prefix = f"user:{unique()}:"
    raw = b"\xff\xfe\x00bin\x80"
    ws = ws_connect(agent)
    subscribe(ws, prefix=prefix)
    agent.put(prefix + "b", raw)
    agent.put(prefix + "t", "héllo ✓".encode())
    ev, ev2 = recv_frame(ws), recv_frame(ws)
    ws.close()
    assert ev["value_encoding"] == "base64"
    assert base64.b64decode(ev["value"]) == raw
    assert ev2["value"] == "héllo ✓" and "value_encoding" not in ev2


def test_compacted_revision(make_agent):
    a = make_agent("--watch-history", "5")
    prefix = f"user:{unique()}:"
    revs = [a.put(prefix + str(i), b"v") for i in range(20)]
    ws = ws_connect(a)
    ws.send(json.dumps({"subscribe": {"prefix": prefix,
                                      "from": {str(revs[0].shard): revs[0].revision}}}))
    code, reason, msgs = recv_close(ws)
    errors = [m for m in msgs if "error" in m]
    assert errors, f"no error message before the close; got {msgs}"
    err = errors[-1]
    assert err["error"] == "compacted" and err["shard"] == revs[0].shard
    assert "KV.Scan" in err["snapshot_then_resume"] and err["message"]
    assert code == 4000 and reason


def test_resume_from_the_future(agent):
    ws = ws_connect(agent)
    ws.send(json.dumps({"subscribe": {"prefix": "user:f:", "from": {"3": 10 ** 12}}}))
    code, _, msgs = recv_close(ws)
    errors = [m for m in msgs if "error" in m]
    assert errors and errors[-1]["error"] == "out_of_range", msgs
    assert "ahead" in errors[-1]["message"]
    assert code == 1008


@pytest.mark.parametrize("payload, code", [
    ("not json", 1008),
    ('{"subscribe": {"prefix": 7}}', 1008),
    ('{"subscribe": {"topic": "x"}}', 1008),
    ('{"subscribe": {"from": {"7": -1}}}', 1008),
    ('{"subscribe": {"from": {"999": 1}}}', 1008),
    # past INT64_MAX: once wrapped around (tests/fuzz found it); the shard
    # 2^63 + 7 read as shard 7
    ('{"subscribe": {"from": {"7": 9322203736854775807}}}', 1008),
    ('{"subscribe": {"from": {"9223372036854775815": 1}}}', 1008),
    # a key without its value: read past the tokens (tests/fuzz)
    ('{"subscribe": {"prefix""user:123:"}}', 1008),
    ('{"watch": {}}', 1008),
])
def test_malformed_subscription(agent, payload, code):
    ws = ws_connect(agent)
    ws.send(payload)
    got, reason, msgs = recv_close(ws)
    assert msgs and msgs[0].get("error") == "bad_request" and msgs[0]["message"], msgs
    assert got == code, f"closed with {got} {reason!r}"


def test_binary_message_rejected(agent):
    ws = ws_connect(agent)
    ws.send_binary(b'{"subscribe": {}}')
    code, _, msgs = recv_close(ws)
    assert code == 1003
    assert msgs and msgs[0]["error"] == "bad_request"


def test_second_subscription_rejected(agent):
    ws = ws_connect(agent)
    subscribe(ws, prefix="user:x:")
    ws.send(json.dumps({"subscribe": {"prefix": "user:y:"}}))
    code, _, msgs = recv_close(ws)
    assert code == 1008 and msgs[-1]["error"] == "bad_request"


def test_wrong_websocket_path(agent):
    with pytest.raises(websocket.WebSocketBadStatusException) as ei:
        websocket.create_connection(agent.ws_url("/v1/other"), timeout=TIMEOUT)
    assert ei.value.status_code == 404


def test_token_required(make_agent):
    a = make_agent("--feed-token", "s3cret")
    with pytest.raises(websocket.WebSocketBadStatusException) as ei:
        ws_connect(a)
    assert ei.value.status_code == 401
    with pytest.raises(websocket.WebSocketBadStatusException) as ei:
        ws_connect(a, header=["Authorization: Bearer wrong"])
    assert ei.value.status_code == 401
    ws = ws_connect(a, header=["Authorization: Bearer s3cret"])
    subscribe(ws, prefix="user:tok:")
    ws.close()
    ws = websocket.create_connection(a.ws_url("/v1/watch?token=s3cret"), timeout=TIMEOUT)
    subscribe(ws, prefix="user:tok:")
    ws.close()
    # Probes and metrics stay open to the kubelet and Prometheus.
    assert http_get(a.url("/readyz"))[0] == 200
    assert http_get(a.url("/metrics"))[0] == 200


def test_origin_checked(make_agent):
    a = make_agent("--feed-allowed-origins", "https://app.example, https://admin.example")
    with pytest.raises(websocket.WebSocketBadStatusException) as ei:
        ws_connect(a, suppress_origin=False, origin="https://evil.example")
    assert ei.value.status_code == 403
    for origin in ("https://app.example", "https://admin.example"):
        ws = ws_connect(a, suppress_origin=False, origin=origin)
        subscribe(ws)
        ws.close()


def test_slow_subscriber_cut_off(make_agent):
    a = make_agent()
    uid = unique()
    prefix = f"user:{uid}:"
    ws = ws_connect(a)
    subscribe(ws, prefix=prefix)
    big = b"x" * 65536
    # Fill the socket buffers with large events the client does not read,
    # then queue more events than the watch bound (10000).
    def put_many(n, key, value, window=256):
        pending = []
        for i in range(n):
            pending.append(a.kv.Put.future(pb.PutRequest(key=key(i), value=value),
                                           timeout=6 * TIMEOUT))
            if len(pending) >= window:
                [f.result() for f in pending]
                pending = []
        [f.result() for f in pending]

    put_many(400, lambda i: f"{prefix}big{i % 4}", big)
    put_many(10050, lambda i: f"{prefix}s", b"y")
    code, reason, msgs = recv_close(ws)
    assert code == 4008, f"closed with {code} {reason!r}"
    assert "slow" in reason
    fams = metrics(a)
    assert fams["memquorum_watches_dropped_slow_total"]["samples"][frozenset()] >= 1
    assert http_get(a.url("/readyz"))[0] == 200


def test_http_port_off(make_agent):
    a = make_agent("--http-port", "-1")
    assert a.http is None
    assert "http=" not in a.lines[-1]


def test_sigterm_closes_websockets(make_agent):
    a = make_agent()
    ws = ws_connect(a)
    subscribe(ws, prefix="user:bye:")
    assert metrics(a)["memquorum_feed_connections"]["samples"][frozenset()] == 1
    a.proc.send_signal(signal.SIGTERM)
    code, reason, _ = recv_close(ws)
    assert (code, reason) == (1001, "agent shutting down")
    assert a.proc.wait(10) == 0, a.stderr()
