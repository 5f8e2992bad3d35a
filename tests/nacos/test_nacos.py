"""Agents that find each other through a real Nacos server (r-nacos 0.8.8,
the v1 open API; README "Nacos").

The tests of this file share one server and one three-agent cluster, in
order: forming, a config change, a Nacos outage and a fresh server, and
last a SIGTERM. The auth tests run their own server with --auth.
"""
import http.server
import re
import signal
import threading
import time

import grpc
import pytest

from conftest import (DATA_ID, SERVICE, NacosCluster, NacosServer, api, cl,
                      require_rnacos, wait_until)

SLOW = api.SLOW


@pytest.fixture(scope="module")
def cluster(nacos, tmp_path_factory):
    # A short drain: after the SIGTERM test two agents of three are left,
    # and leaving together costs their shards the majority either way.
    c = NacosCluster(tmp_path_factory.mktemp("cluster"), nacos,
                     extra_args=["--drain-timeout", "2s"])
    t0 = time.monotonic()
    c.start()  # waits until healthy: every agent ready, every shard led
    c.formed_in = time.monotonic() - t0
    print(f"\n3 agents ready through Nacos {c.formed_in:.1f}s after they started")
    yield c
    problems = c.close()
    assert not problems, "cluster shutdown: " + "\n".join(problems)


def registered_right(nacos, agents):
    """None when Nacos lists each agent with the right address and
    metadata; else what differs."""
    hosts = nacos.by_node()
    for a in agents:
        h = hosts.get(a.node_id)
        if h is None:
            return f"{a.node_id} is not registered (have {sorted(hosts)})"
        meta = h["metadata"]
        api_port = a.address.rsplit(":", 1)[1]
        http_port = a.http_address.rsplit(":", 1)[1]
        want = {"ip": a.host, "port": a.peer_port, "healthy": True, "enabled": True,
                "ephemeral": True}
        got = {k: h.get(k) for k in want}
        if got != want:
            return f"{a.node_id}: {got} != {want}"
        want_meta = {"node_id": a.node_id, "incarnation": a.incarnation(),
                     "api_port": api_port, "http_port": http_port, "shards_total": "16"}
        got_meta = {k: meta.get(k) for k in want_meta}
        if got_meta != want_meta:
            return f"{a.node_id} metadata {meta} != {want_meta}"
        if not re.fullmatch(r"\d+\.\d+\.\d+", meta.get("version", "")):
            return f"{a.node_id} metadata version {meta.get('version')!r}"
    return None


def test_three_agents_form_one_cluster_from_nacos_only(healthy, nacos):
    c = healthy
    for a in c.agents:
        assert "--peers" not in a.argv() and "--bootstrap-expect" not in a.argv()
    # One cluster: every agent sees the same three members and node ids.
    for a in c.agents:
        st = a.status()
        assert sorted(m.node_id for m in st.members) == ["n1", "n2", "n3"], st.members
    # Writes through each agent are read through the others.
    for a in c.agents:
        key = api.unique(f"user:{a.node_id}:")
        a.put(key, a.node_id.encode())
        for b in c.agents:
            assert b.get(key).value == a.node_id.encode(), (a.node_id, b.node_id)
    # What Nacos itself lists: each agent, its peer address and metadata.
    assert registered_right(nacos, c.agents) is None, registered_right(nacos, c.agents)
    assert len(nacos.instances()) == 3
    for a in c.agents:
        assert a.log_has("using the Nacos v1 open API")
    assert c.formed_in < 30 * SLOW


def test_config_change_applies_live_and_names_restart_settings(healthy, nacos):
    c = healthy
    nacos.publish("memquorum.log.level=debug\n"
                  "memquorum.raft.leader-follow-window=3s\n"
                  "memquorum.shards.total=32\n")
    for a in c.agents:
        wait_until(lambda: a.log_has(
            "memquorum.raft.leader-follow-window (ms): 10000 -> 3000 (applied live)"),
            15, f"{a.node_id} to apply the leader-follow window live")
        wait_until(lambda: a.log_has("memquorum.log.level changed (applied live)"),
                   5, f"{a.node_id} to apply the log level live")
        assert a.log_has("memquorum.shards.total changed in the Nacos config: "
                         "needs a restart"), a.stderr_tail()
        # The level really changed: DEBUG lines appear after the change.
        wait_until(lambda: " DEBUG " in a.stderr().split("memquorum.log.level changed")[-1],
                   10, f"{a.node_id} to log at DEBUG")
    # A bad value: a WARN naming the key, nothing applied.
    nacos.publish("memquorum.raft.leader-follow-window=soon\nmemquorum.log.level=info\n")
    for a in c.agents:
        wait_until(lambda: re.search(
            r"WARN .*is not applied: memquorum.raft.leader-follow-window .*\"soon\"",
            a.stderr()), 15, f"{a.node_id} to refuse the bad config")
        assert a.stderr().count("memquorum.log.level changed (applied live)") == 1
    # Back to the defaults: the live settings return to their local values.
    nacos.publish("# nothing\n")
    for a in c.agents:
        wait_until(lambda: a.log_has(
            "memquorum.raft.leader-follow-window (ms): 3000 -> 10000 (applied live)"),
            15, f"{a.node_id} to go back to the local leader-follow window")
    assert c.health_problem() is None


def test_nacos_outage_changes_nothing_and_a_fresh_server_gets_everyone_back(healthy, nacos):
    c = healthy
    members_before = {a.node_id: sorted((m.node_id, m.state) for m in a.status().members)
                      for a in c.agents}
    nacos.stop()
    # Discovery fails and says so; the cluster keeps serving, same members.
    for a in c.agents:
        wait_until(lambda: re.search(r"WARN .*discovery: nacos does not answer: .+",
                                     a.stderr()), 15, f"{a.node_id} to log that Nacos is down")
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline:
        for a in c.agents:
            key = api.unique("outage:")
            a.put(key, b"v")
            assert c.agents[(c.agents.index(a) + 1) % 3].get(key).value == b"v"
        time.sleep(0.5)
    for a in c.agents:
        now = sorted((m.node_id, m.state) for m in a.status().members)
        assert now == members_before[a.node_id], (a.node_id, now, members_before[a.node_id])
    assert c.health_problem() is None, c.health_problem()

    # A fresh server on the same port: no instance, no config.
    nacos.start_fresh()
    # Fresh indeed: the config published earlier is gone. (The instances
    # cannot show it: the agents register again within milliseconds.)
    status, _ = nacos.call("GET", "/nacos/v1/cs/configs",
                           {"dataId": DATA_ID, "group": "DEFAULT_GROUP"})
    assert status == 404
    _, took = wait_until(lambda: registered_right(nacos, c.agents) is None, 15,
                         "every agent to register again with its metadata")
    print(f"\nevery agent registered again {took:.1f}s after the fresh server answered")
    for a in c.agents:
        wait_until(lambda: a.log_has("discovery: nacos answers again"), 10,
                   f"{a.node_id} to see Nacos answer again")
    assert c.health_problem() is None, c.health_problem()


def test_sigterm_deregisters_before_the_drain(healthy, nacos):
    c = healthy
    a = c.by_id["n3"]
    assert "n3" in nacos.by_node()
    a.up = False
    t0 = time.monotonic()
    a.proc.send_signal(signal.SIGTERM)
    _, took = wait_until(lambda: "n3" not in nacos.by_node(), 5,
                         "Nacos to stop listing n3 after its SIGTERM")
    rc = a.wait_exit(cl.STOP_TIMEOUT)
    assert rc == 0, a.stderr_tail()
    a._pump.join(5)
    a._stderr_file.close()
    a.proc = None
    log = a.stderr()
    assert "deregistered 127.0.0.1:" in log
    # The DELETE went out before the drain began.
    assert log.index("deregistered 127.0.0.1:") < log.index("stopped cleanly")
    assert took < 5, took
    # And no late beat brought it back.
    time.sleep(6)
    assert "n3" not in nacos.by_node(), nacos.by_node()
    assert sorted(nacos.by_node()) == ["n1", "n2"]


# ---------------------------------------------------------------------------
# Auth


@pytest.fixture(scope="module")
def auth_nacos(tmp_path_factory):
    require_rnacos()
    server = NacosServer(tmp_path_factory.mktemp("nacos-auth") / "server", auth=True).start()
    yield server
    server.stop()


def lone_agent(factory, nacos, *extra):
    return factory("--nacos", nacos.addr, "--advertise", "127.0.0.1",
                   "--replication-factor", "1", *extra)


def test_auth_logs_in_and_registers(auth_nacos, make_agent):
    # Without a token r-nacos refuses the open API: the check is real.
    status, _ = auth_nacos.call("GET", "/nacos/v1/ns/instance/list",
                                {"serviceName": SERVICE}, with_token=False)
    assert status == 403
    a = lone_agent(make_agent, auth_nacos, "--nacos-username", auth_nacos.user,
                   "--nacos-password", auth_nacos.password)
    wait_until(lambda: a.node_id in auth_nacos.by_node(), 10, "the agent to register")
    meta = auth_nacos.by_node()[a.node_id]["metadata"]
    assert meta["api_port"] == a.address.rsplit(":", 1)[1]
    wait_until(lambda: "using the Nacos v1 open API" in a.stderr(), 10,
               "the agent to list the service")
    assert "ERROR" not in a.stderr() and "403" not in a.stderr(), a.stderr()[-3000:]


def test_auth_wrong_password_is_a_clear_error(auth_nacos, make_agent):
    a = lone_agent(make_agent, auth_nacos, "--nacos-username", auth_nacos.user,
                   "--nacos-password", "wrong")
    wait_until(lambda: re.search(r"ERROR .*login: as admin failed: .*403.*unknown user!.*"
                                 r"check --nacos-username and --nacos-password", a.stderr()),
               10, "a login error naming the cause")
    assert a.node_id not in auth_nacos.by_node()
    # Logged once, not once per attempt.
    time.sleep(6)
    assert len(re.findall(r"login: as admin failed", a.stderr())) == 1, a.stderr()[-3000:]


def test_no_credentials_against_auth_says_what_to_set(auth_nacos, make_agent):
    a = lone_agent(make_agent, auth_nacos)
    wait_until(lambda: "set --nacos-username and --nacos-password" in a.stderr(), 10,
               "a message saying auth is on")


def test_token_is_renewed_before_it_expires(tmp_path, make_agent):
    # Tokens that live 4 s (r-nacos refuses them 4 s after the login): the
    # agent must log in again at 80% of the TTL, never run into a 403.
    require_rnacos()
    server = NacosServer(tmp_path / "short-token", auth=True,
                         env={"RNACOS_API_LOGIN_TIMEOUT": "4"}).start()
    try:
        a = lone_agent(make_agent, server, "--nacos-username", server.user,
                       "--nacos-password", server.password, "--log-level", "debug")
        wait_until(lambda: a.node_id in server.by_node(), 10, "the agent to register")
        t0 = time.monotonic()
        wait_until(lambda: a.stderr().count("token valid for 4 s") >= 4, 20,
                   "three renewals of a 4 s token")
        assert time.monotonic() - t0 > 6  # renewals, not a burst of logins
        assert "refused the access token" not in a.stderr(), a.stderr()[-3000:]
        assert a.node_id in server.by_node()
        a.stop()
        assert a.node_id not in server.by_node()  # deregistered with a live token
    finally:
        server.stop()


def test_config_read_at_start_under_flags(auth_nacos, make_agent):
    auth_nacos.publish("memquorum.raft.leader-follow-window=4s\n"
                       "memquorum.limits.max-key-bytes=2KiB\n")
    a = lone_agent(make_agent, auth_nacos, "--nacos-username", auth_nacos.user,
                   "--nacos-password", auth_nacos.password, "--max-key-bytes", "1KiB")
    assert "config memquorum.properties (group DEFAULT_GROUP) read: 1 settings differ" \
        in a.stderr(), a.stderr()[-3000:]
    # The flag wins over Nacos: a 1.5 KiB key is refused.
    api.expect_error(grpc.StatusCode.INVALID_ARGUMENT, a.put, "k" * 1536, b"v")
    a.put("k" * 1000, b"v")


# ---------------------------------------------------------------------------
# A server that answers garbage (no r-nacos needed)


class _GarbageNacos(http.server.BaseHTTPRequestHandler):
    """Answers registration, beats and config like r-nacos; the instance
    list as server.mode says."""

    def log_message(self, *args):
        pass

    def _send(self, code, body, ctype=None):
        self.send_response(code)
        if ctype:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except OSError:
            pass  # the agent gave up first (the slow and huge answers)

    def _route(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        path = self.path.split("?", 1)[0]
        mode = self.server.mode
        if path == "/nacos/v1/ns/instance/list":
            self.server.lists += 1
            if mode == "500":
                return self._send(500, b"boom")
            if mode == "html":
                return self._send(200, b"<html>gateway</html>", "text/html")
            if mode == "badjson":
                return self._send(200, b'{"hosts":[{"ip":', "application/json")
            if mode == "huge":
                return self._send(200, b'{"hosts":[' + b" " * (5 << 20) + b"]}",
                                  "application/json")
            if mode == "slow":
                time.sleep(7)
            return self._send(200, b'{"name":"DEFAULT_GROUP@@memquorum-cluster","hosts":[]}',
                              "application/json")
        if path == "/nacos/v1/ns/instance/beat":
            return self._send(200, b'{"code":10200,"clientBeatInterval":5000}',
                              "application/json")
        if path == "/nacos/v1/cs/configs":
            return self._send(404, b"config data not exist")
        if path == "/nacos/v1/cs/configs/listener":
            time.sleep(1)
            return self._send(200, b"")
        return self._send(200, b"ok")

    do_GET = do_POST = do_PUT = do_DELETE = _route


@pytest.fixture
def garbage_nacos():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _GarbageNacos)
    server.daemon_threads = True
    server.mode = "ok"
    server.lists = 0
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield server
    server.shutdown()
    server.server_close()


def test_garbage_answers_are_one_warning_each_and_change_nothing(garbage_nacos, make_agent):
    srv = garbage_nacos
    addr = f"127.0.0.1:{srv.server_address[1]}"
    a = make_agent("--nacos", addr, "--advertise", "127.0.0.1", "--replication-factor", "1")
    wait_until(lambda: "using the Nacos v1 open API" in a.stderr(), 10, "a first good list")
    cases = [("500", "answered 500: boom"),
             ("html", "answer is text/html, not JSON"),
             ("badjson", "instance list: answer is truncated JSON"),
             ("huge", "answer larger than 4194304 bytes"),
             ("slow", "Timeout was reached")]
    for mode, why in cases:
        srv.mode = mode
        line = "discovery: nacos does not answer: "
        wait_until(lambda: re.search(f"WARN .*{re.escape(line)}.*{re.escape(why)}", a.stderr()),
                   15, f"a WARN for the {mode} answer")
        seen = srv.lists
        wait_until(lambda: srv.lists >= seen + 2, 20, f"two more {mode} rounds")
        assert len(re.findall(re.escape(why), a.stderr())) == 1, a.stderr()[-3000:]
        a.put(api.unique("garbage:"), b"v")  # serving all along
        srv.mode = "ok"
        n = a.stderr().count("discovery: nacos answers again")
        wait_until(lambda: a.stderr().count("discovery: nacos answers again") > n, 15,
                   f"the list to work again after {mode}")
    assert a.alive()
