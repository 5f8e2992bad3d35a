"""Containers and networks of the MemQuorum image on the local Docker engine,
always removed: the helpers and fixtures shared by tests/image and e2e/.

The engine must answer already: scripts/docker/test-image.sh and e2e/run.sh
start one (scripts/docker/engine.sh) and build the base image
(scripts/docker/base-image.sh) before they run their suites. The image is
built by imagebuild.py, keyed by a hash of its inputs, or reused when an
image of the same key exists; that image is kept as a cache (one at a time,
see imagebuild.py); MQ_IMAGE_KEEP=0 removes it and its build stage at the end.

Everything a suite creates carries the label org.memquorum.test=mqt-<pid>
and is removed when its test or the session ends, whatever happened; a
session also removes what an earlier session that was killed left behind
(its pid no longer exists). Docker networks get an explicit private subnet
that overlaps nothing on the machine (scripts/docker/subnet.py) and are
--internal: containers on them reach each other and nothing else.

A conftest.py imports the fixtures it uses from here (engine, image,
container) and reports FIGURES in its terminal summary.
"""
import json
import os
import pathlib
import subprocess
import sys
import time

import pytest

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "scripts" / "docker"))

import imagebuild  # noqa: E402
import subnet  # noqa: E402

SLOW = float(os.environ.get("MQ_TEST_SLOWDOWN", "1"))
RUN_ID = f"mqt-{os.getpid()}"
LABEL = "org.memquorum.test"
# docker stop is given this grace period; the agent must exit well within it
# (tests/api's STOP_TIMEOUT: graceful shutdown is a requirement).
GRACE = 20
STOP_LIMIT = 10.0
READY_TIMEOUT = 60.0 * SLOW
UID = 10001

FIGURES = {}


def docker(*args, timeout=60, check=True):
    """Runs the docker client; fails the test with its stderr on error."""
    try:
        r = subprocess.run(["docker", *args], capture_output=True, text=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"docker {' '.join(args)}: no answer within {timeout}s")
    if check and r.returncode != 0:
        pytest.fail(f"docker {' '.join(args)}: exit {r.returncode}: "
                    f"{(r.stderr or r.stdout).strip()[-3000:]}")
    return r


def wait_for(cond, timeout, what, interval=0.2):
    deadline = time.monotonic() + timeout * SLOW
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout * SLOW:.0f}s waiting for {what}")
        time.sleep(interval)


# ---------------------------------------------------------------------------
# Containers and networks


class Container:
    """One container of the image under test, labelled for cleanup."""

    def __init__(self, image, name, env=None, network=None, ip=None, args=(),
                 options=(), entrypoint=None):
        """options: more `docker run` options (--network-alias A, ...);
        network "container:NAME" joins NAME's network namespace, as the
        containers of one pod share theirs (no hostname of its own then)."""
        self.image = image
        self.name = name
        self.env = dict(env or {})
        self.network = network
        self.ip = ip
        self.args = list(args)
        self.options = list(options)
        self.entrypoint = entrypoint

    def start(self):
        cmd = ["run", "-d", "--name", self.name, "--label", f"{LABEL}={RUN_ID}"]
        if not (self.network or "").startswith("container:"):
            cmd += ["--hostname", self.name]
        if self.network:
            cmd += ["--network", self.network]
        if self.ip:
            cmd += ["--ip", self.ip]
        if self.entrypoint:
            cmd += ["--entrypoint", self.entrypoint]
        cmd += self.options
        for k, v in self.env.items():
            cmd += ["-e", f"{k}={v}"]
        docker(*cmd, self.image, *self.args)
        return self

    def exec(self, *cmd, check=True, timeout=30):
        return docker("exec", self.name, *cmd, check=check, timeout=timeout)

    def mqctl(self, *args, check=True, timeout=30):
        return self.exec("mqctl", "--timeout", "5000", *args, check=check, timeout=timeout)

    def inspect(self, fmt):
        return docker("inspect", "-f", fmt, self.name).stdout.strip()

    def state(self):
        return json.loads(self.inspect("{{json .State}}"))

    def logs(self, tail=60):
        r = docker("logs", "--tail", str(tail), self.name, check=False)
        return (r.stdout + r.stderr).strip()

    def wait_ready(self, timeout=READY_TIMEOUT):
        """Until `mqctl health` inside says SERVING (gRPC Health: ready)."""
        def ready():
            st = self.state()
            if not st.get("Running"):
                pytest.fail(f"{self.name} exited with {st.get('ExitCode')}\n{self.logs()}")
            return self.mqctl("health", check=False).returncode == 0
        wait_for(ready, timeout, f"{self.name} to be ready (mqctl health)")

    def stop(self, grace=GRACE):
        """docker stop -t GRACE (SIGTERM, then SIGKILL at the deadline);
        returns (exit code, seconds docker stop took)."""
        t0 = time.monotonic()
        docker("stop", "-t", str(grace), self.name, timeout=grace + 30)
        secs = time.monotonic() - t0
        return self.state()["ExitCode"], secs

    def remove(self):
        docker("rm", "-f", "-v", self.name, check=False)


def remove_labelled(value=None):
    """Removes containers, then networks, with our label (any value if None)."""
    sel = f"label={LABEL}" if value is None else f"label={LABEL}={value}"
    ids = docker("ps", "-aq", "--filter", sel, check=False).stdout.split()
    if ids:
        docker("rm", "-f", "-v", *ids, check=False)
    nets = docker("network", "ls", "-q", "--filter", sel, check=False).stdout.split()
    if nets:
        docker("network", "rm", *nets, check=False)


def running(pid):
    """True while pid runs; a zombie does not (PID 1 here reaps late)."""
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def sweep_stale():
    """What killed earlier sessions left: labelled mqt-<pid> for a dead pid."""
    out = docker("ps", "-a", "--format", f'{{{{.Label "{LABEL}"}}}}',
                 "--filter", f"label={LABEL}", check=False).stdout.split()
    out += docker("network", "ls", "--format", f'{{{{.Label "{LABEL}"}}}}',
                  "--filter", f"label={LABEL}", check=False).stdout.split()
    for value in sorted(set(out)):
        pid = value.rsplit("-", 1)[-1]
        if value != RUN_ID and pid.isdigit() and not running(int(pid)):
            remove_labelled(value)


class Network:
    """A user-defined bridge network with an explicit free private subnet."""

    def __init__(self, name):
        self.name = name
        self.subnet = None

    def create(self, tries=5):
        avoid = []
        for _ in range(tries):
            net = subnet.free_subnet(prefix=24, start="10.214.0.0", avoid=avoid)
            if net is None:
                pytest.fail("no free private /24 for a test network")
            r = docker("network", "create", "--driver", "bridge", "--internal",
                       "--subnet", str(net), "--gateway", str(net.network_address + 1),
                       "--label", f"{LABEL}={RUN_ID}", self.name, check=False)
            if r.returncode == 0:
                self.subnet = net
                return self
            if "overlap" not in r.stderr:
                pytest.fail(f"docker network create {self.name} --subnet {net}: "
                            f"{r.stderr.strip()}")
            avoid.append(str(net))  # taken between our look and the create
        pytest.fail(f"no subnet for {self.name} after {tries} tries")

    def host(self, n):
        return str(self.subnet.network_address + n)

    def remove(self):
        docker("network", "rm", self.name, check=False)


def formed(statuses, nodes, shards=16):
    """True when every status (`mqctl --json status` decoded; None for no
    answer), one per agent, lists exactly `nodes` alive, and every one of
    `shards` shards with a leader and `nodes` as its replicas."""
    want = sorted(nodes)
    for st in statuses:
        if st is None:
            return False
        alive = sorted(m["node_id"] for m in st["members"] if m["state"] == "alive")
        if alive != want or len(st["shards"]) != shards:
            return False
        for s in st["shards"]:
            if not s["leader"] or sorted(s["replicas"]) != want:
                return False
    return True


# ---------------------------------------------------------------------------
# Session fixtures


@pytest.fixture(scope="session")
def engine():
    r = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"],
                       capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        pytest.fail("no Docker engine answers; scripts/docker/test-image.sh starts one "
                    f"(scripts/docker/engine.sh start): {r.stderr.strip()}")
    FIGURES["engine"] = r.stdout.strip()
    sweep_stale()
    yield
    remove_labelled(RUN_ID)


@pytest.fixture(scope="session")
def image(engine):
    log = os.environ.get("MQ_IMAGE_BUILD_LOG") or str(
        pathlib.Path(os.environ.get("TMPDIR", "/tmp")) / f"{RUN_ID}-build.log")
    try:
        tag, secs, net = imagebuild.ensure_image(log=log)
    except imagebuild.BuildError as e:
        pytest.fail(f"image build failed: {e}")
    FIGURES["image"] = tag
    FIGURES["image_bytes"] = int(docker("image", "inspect", "-f", "{{.Size}}", tag).stdout)
    if secs is not None:  # else imagebuild.py's own run may have said
        FIGURES["build_seconds"] = round(secs, 1)
        FIGURES["build_network"] = net
    yield tag
    if os.environ.get("MQ_IMAGE_KEEP", "1") == "0":
        build_tag = tag.replace(f":{imagebuild.TAG_PREFIX}", f":{imagebuild.BUILD_TAG_PREFIX}", 1)
        docker("image", "rm", tag, build_tag, check=False)


@pytest.fixture
def container(image, request):
    """Factory: container(env=..., ...) -> a started Container, removed after
    the test."""
    made = []

    def make(suffix="c", **kw):
        c = Container(image, f"{RUN_ID}-{request.node.name[:40]}-{suffix}".replace("[", "-")
                      .replace("]", ""), **kw)
        made.append(c)
        return c.start()

    yield make
    for c in made:
        c.remove()


