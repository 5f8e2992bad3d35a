"""Process lifecycle: graceful shutdown on SIGTERM/SIGINT with calls in
flight, configuration errors that name the key, --help, and the
flag > env > properties file precedence (DESIGN.md section 4)."""
import re
import signal
import subprocess
import threading
import time

import grpc
import pytest

from conftest import AGENT_BIN, SLOW, STOP_TIMEOUT, pb, shard_of, wait_for


def run_agent(*args, env=None, timeout=10):
    """Runs the agent expecting it to stop by itself (bad config, --help)."""
    import os
    e = {k: v for k, v in os.environ.items()
         if not k.startswith(("MEMQUORUM_", "NACOS_", "KAFKA_"))}
    e.update(env or {})
    try:
        return subprocess.run([str(AGENT_BIN), "--port", "0", "--http-port", "0",
                               "--peer-port", "0", *args],
                              capture_output=True, text=True, env=e,
                              timeout=timeout * SLOW)
    except subprocess.TimeoutExpired:
        pytest.fail(f"agent {' '.join(args)} kept running: expected it to stop")


def load(a, stop, results, tag):
    i = 0
    while not stop.is_set():
        try:
            a.put(f"user:{i % 32}:{tag}-{i}", b"x" * 100)
            results.append("ok")
        except grpc.RpcError as e:
            results.append(e.code())
            if e.code() == grpc.StatusCode.UNAVAILABLE:
                return  # the server is gone: further calls can only fail
        i += 1


# With one gRPC thread the core loop serves the API itself; with more, the
# API runs on completion-queue threads of its own.
@pytest.mark.parametrize("grpc_threads", ["1", "3"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_with_calls_in_flight_exits_zero(make_agent, sig, grpc_threads):
    a = make_agent("--grpc-threads", grpc_threads)
    stop = threading.Event()
    results = [[] for _ in range(4)]
    threads = [threading.Thread(target=load, args=(a, stop, results[i], f"w{i}"),
                                daemon=True) for i in range(4)]
    watch_end = []

    def watch():
        try:
            for _ in a.watch.Watch(pb.WatchRequest(prefix="user:"), timeout=30):
                pass
            watch_end.append(grpc.StatusCode.OK)
        except grpc.RpcError as e:
            watch_end.append(e.code())
    wt = threading.Thread(target=watch, daemon=True)
    wt.start()
    for t in threads:
        t.start()
    wait_for(lambda: sum(len(r) for r in results) >= 200, 20,
             "200 puts before the signal")

    a.send_signal(sig)
    rc = a.wait_exit(STOP_TIMEOUT)
    stop.set()
    assert rc is not None, f"no exit within {STOP_TIMEOUT}s of {sig.name}"
    assert rc == 0, f"exit code {rc} after {sig.name}:\n{a.stderr()[-3000:]}"
    for t in threads + [wt]:
        t.join(10 * SLOW)
        assert not t.is_alive(), "a client call hung after the agent exited"
    a.check_sanitizers()
    served_by = ("calls served by the core loop" if grpc_threads == "1"
                 else f"{grpc_threads} completion-queue threads")
    assert served_by in a.stderr(), f"the agent did not log: {served_by}"
    clean = {"ok", grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED}
    codes = {c for r in results for c in r}
    assert codes <= clean, f"in-flight calls ended with {codes - clean}"
    assert watch_end and watch_end[0] in {grpc.StatusCode.OK,
                                          grpc.StatusCode.UNAVAILABLE,
                                          grpc.StatusCode.CANCELLED}, watch_end


def test_idle_sigterm_is_prompt(make_agent):
    a = make_agent()
    a.put("user:1:k", b"v")
    t0 = time.monotonic()
    a.send_signal(signal.SIGTERM)
    rc = a.wait_exit(STOP_TIMEOUT)
    assert rc == 0, f"exit code {rc}:\n{a.stderr()[-3000:]}"
    assert time.monotonic() - t0 < 3 * SLOW, "an idle agent took over 3 s to stop"


@pytest.mark.parametrize("args,env,names", [
    (["--shards", "abc"], {}, "shards"),
    (["--shards", "0"], {}, "shards"),
    (["--port", "80x"], {}, "port"),
    (["--replication-factor", "-1"], {}, "replication-factor"),
    (["--memory-budget", "lots"], {}, "memory-budget"),
    (["--no-such-flag", "1"], {}, "no-such-flag"),
    ([], {"MEMQUORUM_SHARDS_TOTAL": "abc"}, "MEMQUORUM_SHARDS_TOTAL"),
])
def test_bad_config_stops_with_key_named(args, env, names):
    r = run_agent(*args, env=env)
    assert r.returncode != 0, f"agent accepted {args or env}"
    assert names in r.stderr, f"stderr does not name {names!r}:\n{r.stderr}"


def test_bad_properties_file_names_key(tmp_path):
    p = tmp_path / "mq.properties"
    p.write_text("memquorum.shards.total=abc\n")
    r = run_agent("--config", str(p))
    assert r.returncode != 0
    assert "memquorum.shards.total" in r.stderr, r.stderr
    p.write_text("memquorum.no.such.key=1\n")
    r = run_agent("--config", str(p))
    assert r.returncode != 0, "an unknown properties key must stop the agent"
    assert "memquorum.no.such.key" in r.stderr, r.stderr


def test_help_lists_flags():
    r = run_agent("--help")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    for flag in ["--node-id", "--port", "--api-bind", "--peer-port", "--advertise",
                 "--http-port", "--shards", "--replication-factor",
                 "--bootstrap-expect", "--peers", "--nacos", "--dns-name",
                 "--config", "--max-value-bytes", "--max-request-bytes",
                 "--memory-budget", "--retention-entries", "--watch-history"]:
        assert re.search(re.escape(flag) + r"\b", out), f"--help lacks {flag}"
    for env in ["MEMQUORUM_NODE_ID", "MEMQUORUM_NODE_PORT", "MEMQUORUM_SHARDS_TOTAL",
                "NACOS_SERVER_ADDR", "KAFKA_BOOTSTRAP_SERVERS", "MEMQUORUM_CONFIG"]:
        assert env in out, f"--help lacks {env}"
    assert "memquorum.node.port" in out


def test_precedence_flag_env_file(make_agent, tmp_path):
    p = tmp_path / "mq.properties"
    p.write_text("memquorum.node.id=file-node\nmemquorum.shards.total=8\n")
    a = make_agent("--config", str(p), pass_node_id=False)
    st = a.status()
    assert st.node_id == "file-node"
    assert st.shards_total == 8 and len(st.shards) == 8
    assert a.put("user:456:k").shard == shard_of("user:456:k", 8)

    b = make_agent("--config", str(p), pass_node_id=False,
                   env={"MEMQUORUM_NODE_ID": "env-node"})
    assert b.status().node_id == "env-node", "env wins over the file"

    c = make_agent("--config", str(p), "--node-id", "flag-node", pass_node_id=False,
                   env={"MEMQUORUM_NODE_ID": "env-node"})
    assert c.status().node_id == "flag-node", "a flag wins over env and file"


def test_restart_loses_memory(make_agent):
    """An agent holds data in memory only: a restart starts empty."""
    a = make_agent()
    a.put("user:1:k", b"v")
    a.restart()
    with pytest.raises(grpc.RpcError) as ei:
        a.get("user:1:k")
    assert ei.value.code() == grpc.StatusCode.NOT_FOUND


def test_startup_names_its_memory_allocator(make_agent):
    """A build that links mimalloc (util/alloc.h) must actually run on it:
    the agent checks that malloc() hands out mimalloc's memory and says so;
    a sanitizer build runs on the C library's malloc and says that."""
    needed = subprocess.run(["readelf", "-d", str(AGENT_BIN)], capture_output=True,
                            text=True, check=True).stdout
    a = make_agent()
    log = a.stderr()
    assert "is linked but malloc() is not served by it" not in log, log
    if "libmimalloc" in needed:
        assert re.search(r"memory allocator: mimalloc \d+\.\d+\.\d+", log), log
    else:
        assert "memory allocator: the C library's malloc" in log, log
