"""Mutual TLS on the peer port, with certificates made by the openssl
command at test time: a CA, three agent certificates it signs (each with
the subjectAltName DNS:memquorum-peer every agent verifies) and an agent
certificate from another CA.

One module-wide cluster of three TLS agents serves the tests in order:
they form a cluster and replicate; a fourth agent whose certificate the CA
did not sign never becomes a member and both sides log the refused
handshake; the peer port speaks TLS and asks for a client certificate; a
certificate rotated in place (atomic rename) is reloaded and the cluster
stays healthy across a restart. A partial flag set stops an agent at start.
"""
import os
import pathlib
import re
import shutil
import subprocess
import time

import pytest

from conftest import AGENT_BIN, Cluster, ClusterAgent, free_ports, unique

PEER_NAME = "memquorum-peer"

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None,
                                reason="needs the openssl command")


def openssl(*args, cwd):
    r = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    assert r.returncode == 0, f"openssl {' '.join(args)} failed:\n{r.stderr}"


def make_ca(d, name):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "2",
            "-subj", f"/CN={name}", cwd=d)


def make_cert(d, ca, name, cn=None):
    """name.crt and name.key, signed by ca, with the peer SAN."""
    (d / "san.ext").write_text(f"subjectAltName=DNS:{PEER_NAME}\n")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn or name}",
            cwd=d)
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", "san.ext",
            cwd=d)


def tls_args(d, name, ca="ca"):
    return ["--peer-tls-cert", str(d / f"{name}.crt"), "--peer-tls-key", str(d / f"{name}.key"),
            "--peer-tls-ca", str(d / f"{ca}.crt")]


def with_tls(agent, d, name, ca="ca"):
    plain = agent.argv
    agent.argv = lambda: plain() + tls_args(d, name, ca)
    return agent


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    make_ca(d, "ca")
    make_ca(d, "other-ca")
    for n in ("n1", "n2", "n3"):
        make_cert(d, "ca", n)
    make_cert(d, "other-ca", "n4")
    return d


@pytest.fixture(scope="module")
def tls_cluster(pki, tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("tls"))
    for a in c.agents:
        with_tls(a, pki, a.node_id)
    c.start()
    yield c
    problems = c.close()
    assert not problems, "cluster shutdown: " + "\n".join(problems)


def wait_log(agent, text, what, timeout=10):
    deadline = time.monotonic() + timeout
    while text not in agent.stderr():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what} ({text!r}):\n"
                        f"{agent.stderr_tail()}")
        time.sleep(0.1)


def s_client(port):
    r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}",
                        "-alpn", "h2", "-servername", PEER_NAME],
                       input="", capture_output=True, text=True, timeout=10)
    return r.stdout + r.stderr


def test_three_tls_agents_form_a_cluster_and_replicate(tls_cluster):
    agents = tls_cluster.agents
    for a in agents:
        assert "mutual TLS" in a.stderr(), f"{a.node_id} did not start TLS:\n{a.stderr_tail()}"
        assert "peer traffic is not encrypted" not in a.stderr()
    for writer in agents:
        key = unique(f"tls-{writer.node_id}")
        writer.put(key, key.encode())
        for reader in agents:
            if reader is not writer:
                got = reader.get(key)
                assert got.value == key.encode(), (
                    f"Get {key!r} via {reader.node_id} after Put via {writer.node_id}: "
                    f"{got.value!r}")


def test_agent_with_a_certificate_from_another_ca_is_refused(tls_cluster, pki):
    c = tls_cluster
    (port,) = free_ports(1)
    x = ClusterAgent(c, "n4", "127.0.0.1", port, (), c.tmpdir)
    x.peers = c.peers_flag() + f",n4=127.0.0.1:{port}"
    # It trusts the cluster's CA, so only the cluster can refuse it.
    with_tls(x, pki, "n4")
    x.start()
    try:
        # Refused at the handshake: it dials, and the first agent sees it
        # try, for as long as we watch.
        wait_log(x, "cannot reach peer", "n4 to log that it cannot reach the cluster")
        wait_log(c.agents[0], "[grpc] WARN [n1] TLS Handshake failed",
                 "n1 to log the refused handshake")
        time.sleep(1.0)
        for a in c.agents:
            states = {m.node_id: m.state for m in a.status().members}
            assert states.get("n4") != "alive", f"{a.node_id} lists n4 as alive: {states}"
        refusals = c.agents[0].stderr().count("Handshake failed")
        assert refusals == 1, (
            f"n1 logged {refusals} refused handshakes in a few seconds: not one per 30 s")
        log = x.stderr()
        assert "does not verify against --peer-tls-ca" in log, (
            f"n4 did not warn at start that the CA does not sign its certificate:\n"
            f"{log[-3000:]}")
        assert re.search(r"cannot reach peer .*certificate either side refused", log), (
            f"n4's log does not show the handshake failure:\n{log[-3000:]}")
    finally:
        x.terminate()


def test_peer_port_speaks_tls_and_asks_for_a_client_certificate(tls_cluster):
    out = s_client(tls_cluster.agents[0].peer_port)
    assert "BEGIN CERTIFICATE" in out, f"no TLS server certificate:\n{out}"
    assert "Acceptable client certificate CA names" in out and "CN = ca" in out, (
        f"the peer port did not ask for a client certificate from our CA:\n{out}")


def test_rotated_certificate_is_reloaded_and_the_cluster_stays_healthy(tls_cluster, pki):
    c = tls_cluster
    n1, n2 = c.by_id["n1"], c.by_id["n2"]
    new = pki / "rotated"
    new.mkdir()
    shutil.copy(pki / "ca.crt", new)
    shutil.copy(pki / "ca.key", new)
    make_cert(new, "ca", "n1", cn="n1-rotated")
    # As cert-manager does: each file replaced by a rename.
    os.replace(new / "n1.crt", pki / "n1.crt")
    os.replace(new / "n1.key", pki / "n1.key")
    n2.up = False
    assert n2.terminate() == 0, f"n2 did not stop cleanly:\n{n2.stderr_tail()}"
    c.restart("n2")
    c.wait_healthy("the cluster to heal after n1's rotation and n2's restart")
    wait_log(n1, "peer TLS files reloaded", "n1 to log the reload")
    out = s_client(n1.peer_port)
    assert "CN = n1-rotated" in out, f"n1 still serves its old certificate:\n{out}"
    key = unique("rotated")
    n2.put(key, b"v")
    assert n1.get(key).value == b"v"


def run_agent(*args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMQUORUM_")}
    return subprocess.run([str(AGENT_BIN), "--port", "0", "--http-port", "0", "--peer-port", "0",
                           *args], capture_output=True, text=True, env=env, timeout=10)


def test_partial_or_broken_tls_settings_stop_the_agent(pki):
    r = run_agent("--peer-tls-cert", str(pki / "n1.crt"))
    assert r.returncode != 0
    assert "--peer-tls-key and --peer-tls-ca are missing" in r.stderr, r.stderr
    r = run_agent(*tls_args(pki, "n1")[:2], "--peer-tls-key", str(pki / "n2.key"),
                  "--peer-tls-ca", str(pki / "ca.crt"))
    assert r.returncode != 0
    assert "the key does not match the certificate" in r.stderr, r.stderr
    r = run_agent(*tls_args(pki, "n1")[:4], "--peer-tls-ca", str(pki / "missing.crt"))
    assert r.returncode != 0
    assert "--peer-tls-ca" in r.stderr and "No such file" in r.stderr, r.stderr
