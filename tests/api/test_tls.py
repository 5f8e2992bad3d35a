"""TLS on the API port (--api-tls-cert, --api-tls-key, optionally
--api-tls-ca for client certificates), with a CA and certificates made by
the openssl command at run time: a TLS client that trusts the CA is served,
a plaintext client is not, mqctl speaks TLS with --tls-ca, a client
certificate is required once --api-tls-ca is set, rotated files are taken
for the next connection, and partial settings stop the agent at start."""
import shutil
import subprocess
import time

import grpc
import pytest

from conftest import MQCTL_BIN, pb, pb_grpc, unique

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None,
                                reason="needs the openssl command")


def openssl(d, *args):
    r = subprocess.run(["openssl", *args], cwd=d, capture_output=True, text=True)
    assert r.returncode == 0, f"openssl {' '.join(args)} failed:\n{r.stderr}"


def make_ca(d, name):
    openssl(d, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "2",
            "-subj", f"/CN={name}")


def make_cert(d, ca, name):
    """name.crt and name.key signed by ca, valid for 127.0.0.1 and localhost."""
    (d / f"{name}.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl(d, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}")
    openssl(d, "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext")


@pytest.fixture
def certs(tmp_path):
    d = tmp_path / "certs"
    d.mkdir()
    make_ca(d, "ca")
    make_ca(d, "other")
    make_cert(d, "ca", "server")
    make_cert(d, "ca", "client")
    make_cert(d, "other", "stranger")
    return d


def tls_stub(a, d, client=None, ca="ca"):
    creds = grpc.ssl_channel_credentials(
        root_certificates=(d / f"{ca}.crt").read_bytes(),
        private_key=(d / f"{client}.key").read_bytes() if client else None,
        certificate_chain=(d / f"{client}.crt").read_bytes() if client else None)
    ch = grpc.secure_channel(a.address, creds)
    return ch, pb_grpc.KVStub(ch)


def mqctl(*args):
    return subprocess.run([str(MQCTL_BIN), *args], capture_output=True, text=True, timeout=30)


def server_args(d):
    return ["--api-tls-cert", str(d / "server.crt"), "--api-tls-key", str(d / "server.key")]


def test_tls_api_serves_tls_clients_only(make_agent, certs):
    a = make_agent(*server_args(certs))
    assert "(TLS)" in a.stderr() + a.stdout()
    key = f"user:{unique('tls')}:k"
    ch, kv = tls_stub(a, certs)
    try:
        kv.Put(pb.PutRequest(key=key, value=b"secret"), timeout=10)
        assert kv.Get(pb.GetRequest(key=key), timeout=10).kv.value == b"secret"
    finally:
        ch.close()
    # A plaintext client gets no answer from a TLS port.
    with pytest.raises(grpc.RpcError) as ei:
        a.kv.Get(pb.GetRequest(key=key), timeout=5)
    assert ei.value.code() == grpc.StatusCode.UNAVAILABLE, ei.value
    # A client that trusts another CA refuses the server.
    ch, kv = tls_stub(a, certs, ca="other")
    try:
        with pytest.raises(grpc.RpcError) as ei:
            kv.Get(pb.GetRequest(key=key), timeout=5)
        assert ei.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        ch.close()
    # mqctl speaks TLS with --tls-ca, and says why without it.
    r = mqctl("--endpoint", a.address, "--tls-ca", str(certs / "ca.crt"), "get", key)
    assert r.returncode == 0 and "secret" in r.stdout, r
    r = mqctl("--endpoint", a.address, "--timeout", "2000", "get", key)
    assert r.returncode == 1 and "UNAVAILABLE" in r.stderr, r
    r = mqctl("--endpoint", a.address, "--tls-ca", str(certs / "missing.crt"), "get", key)
    assert r.returncode == 1 and "--tls-ca" in r.stderr and "missing.crt" in r.stderr, r


def test_tls_api_requires_client_certificates_with_ca(make_agent, certs):
    a = make_agent(*server_args(certs), "--api-tls-ca", str(certs / "ca.crt"))
    assert "client certificates required" in a.stderr() + a.stdout()
    key = f"user:{unique('mtls')}:k"
    ch, kv = tls_stub(a, certs, client="client")
    try:
        kv.Put(pb.PutRequest(key=key, value=b"v"), timeout=10)
    finally:
        ch.close()
    for client in (None, "stranger"):
        ch, kv = tls_stub(a, certs, client=client)
        try:
            with pytest.raises(grpc.RpcError) as ei:
                kv.Get(pb.GetRequest(key=key), timeout=5)
            assert ei.value.code() == grpc.StatusCode.UNAVAILABLE, (client, ei.value)
        finally:
            ch.close()
    ca = str(certs / "ca.crt")
    r = mqctl("--endpoint", a.address, "--tls-ca", ca, "--tls-cert", str(certs / "client.crt"),
              "--tls-key", str(certs / "client.key"), "get", key)
    assert r.returncode == 0, r
    r = mqctl("--endpoint", a.address, "--tls-cert", str(certs / "client.crt"),
              "--tls-key", str(certs / "client.key"), "get", key)
    assert r.returncode == 1 and "need --tls-ca" in r.stderr, r


def test_tls_api_takes_rotated_files(make_agent, certs):
    """The certificate and key renamed over with a new pair (as cert-manager
    does) are served to the next connection, without a restart."""
    a = make_agent(*server_args(certs))
    make_ca(certs, "ca2")
    make_cert(certs, "ca2", "server2")
    for part in ("key", "crt"):
        shutil.copy(certs / f"server2.{part}", certs / f"next.{part}")
        (certs / f"next.{part}").rename(certs / f"server.{part}")
    deadline = time.monotonic() + 10
    while True:
        ch, kv = tls_stub(a, certs, ca="ca2")
        try:
            kv.Put(pb.PutRequest(key=f"user:{unique('rot')}:k", value=b"v"), timeout=3)
            break
        except grpc.RpcError as e:
            assert time.monotonic() < deadline, f"the new certificate was not served: {e}"
            time.sleep(0.2)
        finally:
            ch.close()
    assert "API TLS files reloaded" in a.stderr() + a.stdout()


@pytest.mark.parametrize("flags, missing", [
    (["--api-tls-cert"], "--api-tls-key"),
    (["--api-tls-key"], "--api-tls-cert"),
    (["--api-tls-ca"], "--api-tls-cert"),
])
def test_tls_api_partial_settings_stop_the_agent(make_agent, certs, flags, missing):
    files = {"--api-tls-cert": "server.crt", "--api-tls-key": "server.key",
             "--api-tls-ca": "ca.crt"}
    args = [x for f in flags for x in (f, str(certs / files[f]))]
    a = make_agent(*args, start=False)
    r = subprocess.run(a.argv(), capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert missing in r.stderr, r.stderr


def test_tls_api_key_not_matching_stops_the_agent(make_agent, certs):
    a = make_agent("--api-tls-cert", str(certs / "server.crt"),
                   "--api-tls-key", str(certs / "client.key"), start=False)
    r = subprocess.run(a.argv(), capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert "does not match" in r.stderr and "--api-tls-key" in r.stderr, r.stderr
