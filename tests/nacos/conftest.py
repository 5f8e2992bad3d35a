"""Fixtures for the Nacos tests: a real r-nacos server and agents that find
each other through it.

The cluster harness of tests/cluster/conftest.py (itself built on the
single-agent harness of tests/api) is loaded as a plain module, so its
agent wrapper, health checks and reports are reused, not copied. What
differs here is how an agent is started: `--nacos ADDR` instead of
`--peers`, no `--bootstrap-expect` (with Nacos it defaults to the
replication factor, 3).

The server is r-nacos 0.8.8 started by scripts/services/nacos.sh in a
temporary directory, on ports it picks. Its open API is also how the tests
check what the agents registered. Without r-nacos installed every test is
skipped and says why.
"""
import importlib.util
import json
import os
import pathlib
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

_HERE = pathlib.Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location(
    "mq_cluster_harness", _HERE.parent / "cluster" / "conftest.py")
cl = importlib.util.module_from_spec(_spec)
sys.modules["mq_cluster_harness"] = cl
_spec.loader.exec_module(cl)

api = cl.api
REPO = api.REPO
SLOW = api.SLOW
NACOS_SH = REPO / "scripts" / "services" / "nacos.sh"
RNACOS_VERSION = os.environ.get("RNACOS_VERSION", "0.8.8")
MQ_CACHE = pathlib.Path(os.environ.get("MQ_CACHE",
                                       pathlib.Path.home() / ".cache" / "memquorum"))
RNACOS_BIN = MQ_CACHE / f"rnacos-{RNACOS_VERSION}" / "bin" / "rnacos"
SERVICE = "memquorum-cluster"
DATA_ID = "memquorum.properties"

# The harness's report hooks, so failures show the agents' stderr here too,
# and the single-agent factory fixture.
pytest_runtest_makereport = cl.pytest_runtest_makereport
pytest_sessionfinish = cl.pytest_sessionfinish
make_agent = api.make_agent
healthy = cl.healthy  # the module's `cluster` fixture (test_nacos.py), healthy

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def require_rnacos():
    if not RNACOS_BIN.exists():
        pytest.skip(f"r-nacos {RNACOS_VERSION} is not installed ({RNACOS_BIN} is missing): "
                    "run bash scripts/install-services.sh")


class NacosServer:
    """One r-nacos process run by nacos.sh in `dir`, and a small client of
    its open API (token added when auth is on)."""

    def __init__(self, dir, auth=False, env=None):
        self.dir = pathlib.Path(dir)
        self.auth = auth
        self.env = dict(env or {})  # RNACOS_* settings for the server
        self.addr = None
        self.user = self.password = None
        self._token = None

    def _run(self, *args):
        r = subprocess.run(["bash", str(NACOS_SH), *args], capture_output=True,
                           text=True, timeout=120, env={**os.environ, **self.env})
        if r.returncode != 0:
            pytest.fail(f"nacos.sh {' '.join(args)} failed ({r.returncode}):\n"
                        f"{r.stdout}\n{r.stderr}")
        return r.stdout

    def start(self):
        out = self._run("start", str(self.dir), *(["--auth"] if self.auth else []))
        env = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        self.addr = env["NACOS_ADDR"]
        self.user = env.get("NACOS_USER")
        self.password = env.get("NACOS_PASSWORD")
        self._token = None
        return self

    def stop(self):
        self._run("stop", str(self.dir))

    def start_fresh(self):
        """Starts again on the same port with the data wiped: a server that
        knows no instance and no config."""
        shutil.rmtree(self.dir / "data", ignore_errors=True)
        return self.start()

    # -- open API --------------------------------------------------------

    def token(self):
        if self._token is None:
            body = urllib.parse.urlencode({"username": self.user,
                                           "password": self.password}).encode()
            status, text = self.call("POST", "/nacos/v1/auth/login", data=body,
                                     with_token=False)
            assert status == 200, f"test login to r-nacos: {status} {text}"
            self._token = json.loads(text)["accessToken"]
        return self._token

    def call(self, method, path, params=None, data=None, with_token=True):
        status, text = self._call(method, path, params, data, with_token)
        if status == 403 and self.auth and with_token:  # our token expired
            self._token = None
            status, text = self._call(method, path, params, data, with_token)
        return status, text

    def _call(self, method, path, params, data, with_token):
        params = dict(params or {})
        if self.auth and with_token:
            params["accessToken"] = self.token()
        url = f"http://{self.addr}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        req = urllib.request.Request(url, data=data, method=method)
        try:
            with _NO_PROXY.open(req, timeout=10) as r:
                return r.status, r.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode("utf-8", "replace")

    def instances(self):
        """Every instance of the service, healthy or not: [host dict]."""
        status, text = self.call("GET", "/nacos/v1/ns/instance/list",
                                 {"serviceName": SERVICE, "healthyOnly": "false"})
        assert status == 200, f"instance list: {status} {text}"
        return json.loads(text)["hosts"]

    def by_node(self):
        """{metadata node_id: host} of the registered instances."""
        return {h["metadata"].get("node_id", ""): h for h in self.instances()}

    def publish(self, content, data_id=DATA_ID):
        body = urllib.parse.urlencode({"dataId": data_id, "group": "DEFAULT_GROUP",
                                       "content": content, "type": "properties"}).encode()
        status, text = self.call("POST", "/nacos/v1/cs/configs", data=body)
        assert status == 200 and text == "true", f"publish config: {status} {text}"


class NacosAgent(cl.ClusterAgent):
    """A cluster agent that knows no peer: it finds the others in Nacos."""

    def argv(self):
        c = self.owner
        args = [*self.prefix, str(cl.AGENT_BIN),
                "--node-id", self.node_id,
                "--port", str(self.api_port), "--http-port", "0",
                "--peer-port", str(self.peer_port),
                "--advertise", self.host,
                "--nacos", c.nacos.addr,
                "--replication-factor", "3",
                "--snapshot-entries", str(c.snapshot_entries)]
        if c.nacos.auth:
            args += ["--nacos-username", c.nacos.user,
                     "--nacos-password", c.nacos.password]
        return args + list(c.extra_args)

    def incarnation(self):
        """The incarnation the agent logged at start, as text."""
        for line in self.stderr().splitlines():
            if "core loop started:" in line and " incarnation " in line:
                return line.split(" incarnation ", 1)[1].split(",", 1)[0].strip()
        raise AssertionError(f"{self.node_id} logged no incarnation")

    def log_has(self, text):
        return text in self.stderr()


class NacosCluster(cl.Cluster):
    def __init__(self, tmpdir, nacos, **kw):
        super().__init__(tmpdir, **kw)
        self.nacos = nacos
        self.agents = [NacosAgent(self, a.node_id, a.host, a.peer_port, a.prefix, self.tmpdir)
                       for a in self.agents]
        self.by_id = {a.node_id: a for a in self.agents}


def wait_until(cond, timeout, what, interval=0.1):
    """Polls cond() until truthy; returns (value, seconds it took)."""
    t0 = time.monotonic()
    v = api.wait_for(cond, timeout, what, interval)
    return v, time.monotonic() - t0


@pytest.fixture(scope="module")
def nacos(tmp_path_factory):
    require_rnacos()
    server = NacosServer(tmp_path_factory.mktemp("nacos") / "server").start()
    yield server
    server.stop()
