"""mqctl against a real agent: every command, readable and --json output,
and exit status plus stderr for failed requests and usage errors
(exit 0 success, 1 the request failed, 2 the command line was wrong)."""
import json
import os
import socket
import subprocess

import pytest

from conftest import MQCTL_BIN, SLOW, shard_of, unique


def mqctl(agent, *args, stdin=None, endpoint=None, timeout=20):
    if not MQCTL_BIN.exists():
        pytest.fail(f"mqctl binary {MQCTL_BIN} not built")
    ep = endpoint or agent.address
    try:
        return subprocess.run([str(MQCTL_BIN), "--endpoint", ep, *args],
                              input=stdin, capture_output=True,
                              timeout=timeout * SLOW)
    except subprocess.TimeoutExpired:
        pytest.fail(f"mqctl {' '.join(args)} did not finish in {timeout}s")


def ok(r):
    assert r.returncode == 0, (
        f"exit {r.returncode}\nstdout: {r.stdout.decode(errors='replace')}\n"
        f"stderr: {r.stderr.decode(errors='replace')}")
    return r.stdout.decode()


def failed(r, code, *mentions):
    err = r.stderr.decode(errors="replace")
    assert r.returncode == code, (
        f"expected exit {code}, got {r.returncode}; stderr: {err!r}")
    assert err.strip(), "a failure must say why on stderr"
    for m in mentions:
        assert m.lower() in err.lower(), f"stderr {err!r} does not mention {m!r}"
    return err


def js(out):
    """One JSON document, or JSON lines as a list."""
    out = out.strip()
    try:
        return json.loads(out)
    except json.JSONDecodeError:
        return [json.loads(line) for line in out.splitlines() if line.strip()]


def kv_of(doc):
    return doc.get("kv", doc)


def test_help_lists_commands():
    r = subprocess.run([str(MQCTL_BIN), "--help"], capture_output=True, text=True,
                       timeout=10)
    assert r.returncode == 0, r.stderr
    for cmd in ["put", "get", "del", "scan", "produce", "read", "watch", "status",
                "--endpoint", "--json"]:
        assert cmd in r.stdout, f"mqctl --help lacks {cmd}"


def test_put_get_del_readable(agent):
    k = f"user:123:{unique('cli')}"
    out = ok(mqctl(agent, "put", k, "hello"))
    assert "revision" in out.lower() and "2" in out, out
    assert ok(mqctl(agent, "get", k)).strip() == "hello"
    assert agent.get(k).value == b"hello", "mqctl put reached the agent"
    out = ok(mqctl(agent, "del", k))
    assert "deleted" in out.lower() or "true" in out.lower(), out
    failed(mqctl(agent, "get", k), 1, "NOT_FOUND")


def test_put_get_del_json(agent):
    k = f"user:alice:{unique('cli')}"
    put = js(ok(mqctl(agent, "--json", "put", k, "v1")))
    assert put["shard"] == 0 and put["revision"] > 0
    put2 = js(ok(mqctl(agent, "put", k, "v2", "--json")))
    assert put2["revision"] > put["revision"]
    kv = kv_of(js(ok(mqctl(agent, "--json", "get", k))))
    assert (kv["key"], kv["value"], kv["version"], kv["shard"]) == (k, "v2", 2, 0)
    assert kv["create_revision"] == put["revision"]
    assert kv["mod_revision"] == put2["revision"]
    d = js(ok(mqctl(agent, "--json", "del", k)))
    assert d["deleted"] is True and d["shard"] == 0
    d = js(ok(mqctl(agent, "--json", "del", k)))
    assert d.get("deleted", False) is False


def test_put_value_from_stdin_and_ttl(agent):
    k = f"user:9:{unique('cli')}"
    ok(mqctl(agent, "put", k, "-", "--ttl", "60000", stdin=b"from stdin"))
    kv = agent.get(k)
    assert kv.value == b"from stdin" and kv.expires_at_ms > 0


def test_preconditions(agent):
    k = f"user:9:{unique('cli')}"
    ok(mqctl(agent, "put", k, "a", "--if-absent"))
    failed(mqctl(agent, "put", k, "b", "--if-absent"), 1, "FAILED_PRECONDITION")
    ok(mqctl(agent, "put", k, "b", "--if-version", "1"))
    ok(mqctl(agent, "put", k, "c", "--if-value", "b"))
    failed(mqctl(agent, "del", k, "--if-value", "zzz"), 1, "FAILED_PRECONDITION")
    assert agent.get(k).value == b"c"


def test_prev(agent):
    k = f"user:9:{unique('cli')}"
    agent.put(k, b"old")
    out = js(ok(mqctl(agent, "--json", "put", k, "new", "--prev")))
    assert out["previous"]["value"] == "old"


def test_binary_value_json_is_marked(agent):
    k = f"user:9:{unique('cli')}"
    agent.put(k, b"\xff\x00\xfe")
    kv = kv_of(js(ok(mqctl(agent, "--json", "get", k))))
    text = json.dumps(kv)
    assert "base64" in text.lower(), f"binary value not flagged as base64: {kv}"


def test_scan(agent):
    u = unique("sc")
    keys = [f"user:{u}:{c}" for c in "cab"]
    for k in keys:
        agent.put(k, k[-1].encode() * 2)
    out = ok(mqctl(agent, "scan", f"user:{u}:"))
    lines = [line.split("\t") for line in out.strip().splitlines()]
    assert lines == [[k, k[-1] * 2] for k in sorted(keys)], out
    doc = js(ok(mqctl(agent, "--json", "scan", f"user:{u}:", "--limit", "2")))
    page = doc[0] if isinstance(doc, list) else doc
    assert [kv["key"] for kv in page["kvs"]] == sorted(keys)[:2]
    assert page["more"] is True
    out = ok(mqctl(agent, "scan", f"user:{u}:", "--limit", "1", "--all", "--keys-only"))
    assert [line.split("\t")[0] for line in out.strip().splitlines()] == sorted(keys)


def test_produce_and_read(agent):
    t = unique("clitopic")
    r = js(ok(mqctl(agent, "--json", "produce", t, "user:123:session", "session_data")))
    assert (r["partition"], r["offset"]) == (2, 0)
    ok(mqctl(agent, "produce", t, "user:456:x", "second"))
    out = ok(mqctl(agent, "read", t, "--count", "10"))
    rows = [line.split("\t") for line in out.strip().splitlines()]
    assert [(p, o, k, v) for p, o, _, k, v in rows] == [
        ("2", "0", "user:123:session", "session_data"), ("5", "0", "user:456:x", "second")]
    assert int(rows[0][2]) > 0, "timestamp column"
    doc = js(ok(mqctl(agent, "--json", "read", t, "--key", "user:456:q")))
    entries = doc["entries"] if isinstance(doc, dict) else doc
    assert [(e["partition"], e["offset"], e["value"]) for e in entries] == [(5, 0, "second")]


def test_read_out_of_range(agent):
    t = unique("clitopic")
    agent.produce(t, key="user:1:x")
    failed(mqctl(agent, "read", t, "--partition", str(shard_of("user:1:x")),
                 "--offset", "5"), 1, "OUT_OF_RANGE")


def test_status(agent):
    out = ok(mqctl(agent, "status"))
    assert agent.node_id in out and "leader" in out
    st = js(ok(mqctl(agent, "--json", "status")))
    assert st["node_id"] == agent.node_id
    assert len(st["shards"]) == 16
    assert all(s["leader"] == agent.node_id for s in st["shards"])


def test_watch_count_resumes(agent):
    u = unique("cw")
    k = f"user:{u}:k"
    shard = shard_of(k)
    rev = agent.put(k, b"0").revision
    r1 = agent.put(k, b"1").revision
    r2 = agent.delete(k).revision
    out = ok(mqctl(agent, "--json", "watch", "--prefix", f"user:{u}:",
                   "--from", f"{shard}={rev}", "--count", "2"))
    evs = js(out)
    evs = evs if isinstance(evs, list) else [evs]
    assert [(e["type"], e["revision"], e["kv"]["key"]) for e in evs] == [
        ("PUT", r1, k), ("DELETE", r2, k)]
    out = ok(mqctl(agent, "watch", "--prefix", f"user:{u}:",
                   "--from", f"{shard}={rev}", "--count", "1"))
    assert out.startswith("PUT") and f"revision={r1}" in out and k in out, out


def test_watch_topic(agent):
    t = unique("cwt")
    r = agent.produce(t, key="user:5:x", value=b"payload")
    out = ok(mqctl(agent, "--json", "watch", "--topic", t,
                   "--from", f"{r.partition}={r.revision - 1}", "--count", "1"))
    ev = js(out)
    ev = ev[0] if isinstance(ev, list) else ev
    assert ev["type"] == "PRODUCE" and ev["topic"] == t
    assert ev["entry"]["offset"] == 0 and ev["entry"]["value"] == "payload"


@pytest.mark.parametrize("args", [
    [], ["put"], ["put", "only-key"], ["frobnicate"], ["get", "k", "--no-such-option"],
    ["read", "t", "--count", "abc"], ["watch", "--from", "garbage"],
])
def test_usage_errors_exit_2(agent, args):
    failed(mqctl(agent, *args), 2)


def test_server_rejects_bad_request(agent):
    failed(mqctl(agent, "put", "", "v"), 1, "INVALID_ARGUMENT", "key")


def test_unreachable_endpoint(agent):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    r = mqctl(agent, "--timeout", "2000", "get", "user:1:k",
              endpoint=f"127.0.0.1:{port}")
    err = failed(r, 1)
    assert any(w in err for w in ("UNAVAILABLE", "DEADLINE_EXCEEDED")), err
