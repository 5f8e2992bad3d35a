"""Fixtures for the DNS discovery tests: agents that find each other only
through a headless-Service-style name served by a real dnsmasq.

The network is the one of the partition tests (tests/cluster/netns.py):
agent namespaces on a bridge in a free 10.250.X.0/24, the test process
reaching them from the root namespace. Added here:

    dnsmasq (scripts/services/dnsmasq.sh) in the bridge namespace on
    10.250.X.253, /etc/netns/<agent ns>/resolv.conf pointing at it

so that each agent's getaddrinfo and res_query ask that server. The agent
process wrapper and the cluster checks come from tests/cluster/conftest.py,
loaded as a plain module (its fixtures are not registered here). An agent
is started with --dns-name and no --peers, on its namespace's address.
Everything made here is removed by name or pid: the namespaces, the
/etc/netns entries, the dnsmasq, its directory.
"""
import importlib.util
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

_HERE = pathlib.Path(__file__).resolve().parent
_REPO = _HERE.parents[1]
DNSMASQ_SH = _REPO / "scripts" / "services" / "dnsmasq.sh"


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


cl = _load("mq_cluster_harness", _HERE.parent / "cluster" / "conftest.py")
netns = _load("mq_cluster_netns", _HERE.parent / "cluster" / "netns.py")
api = cl.api
pb = cl.pb

# Re-resolve often, so the tests wait for changes in fractions of a second.
REFRESH = "200ms"
# Each agent has a namespace of its own, so they can all use the product's
# default peer port: the port an A record implies.
PEER_PORT = 7070


# The cluster suite's hooks: stub clean-up, agents' stderr in failure reports.
pytest_sessionfinish = cl.pytest_sessionfinish
pytest_runtest_makereport = cl.pytest_runtest_makereport


def unavailable_reason():
    """None when the tests can run here, else why not."""
    if os.geteuid() != 0:
        return "network namespaces and /etc/netns need root"
    for tool in ("ip", "dnsmasq", "dig", "nsenter"):
        if shutil.which(tool) is None and not os.path.exists(f"/usr/sbin/{tool}"):
            return f"{tool} is not installed (scripts/install-services.sh)"
    return None


def _run(*cmd):
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True,
                       timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))}: exit {r.returncode}: "
                           f"{r.stderr.strip()}")
    return r.stdout


class DnsNet:
    """Namespaces, a DNS server for them, and the records it serves."""

    def __init__(self, tmpdir, n):
        self.topo = netns.Topology(n)
        self.dns_ip = str(self.topo.net.network_address + 253)
        self.dir = pathlib.Path(tmpdir) / "dnsmasq"
        self.etc_made = []  # /etc/netns/<ns> directories made here
        self.etc_root_made = False
        self.started = False

    def setup(self):
        t = self.topo
        t.setup()
        _run("ip", "-n", t.bridge_ns, "addr", "add", f"{self.dns_ip}/24", "dev", "br0")
        if not os.path.isdir("/etc/netns"):
            os.mkdir("/etc/netns")
            self.etc_root_made = True
        for ns in t.agent_ns:
            d = pathlib.Path("/etc/netns") / ns
            d.mkdir()
            self.etc_made.append(d)
            # `ip netns exec` bind-mounts this over /etc/resolv.conf.
            (d / "resolv.conf").write_text(
                f"nameserver {self.dns_ip}\noptions timeout:1 attempts:2\n")
        self.dir.mkdir(parents=True, exist_ok=True)
        _run("ip", "netns", "exec", t.bridge_ns, DNSMASQ_SH, "start", self.dir, self.dns_ip)
        self.started = True
        return self

    def set_a(self, name, ips):
        """Replaces name's A records; returns once the server answers them."""
        _run(DNSMASQ_SH, "set", self.dir, name, *ips)

    def set_srv(self, srv_name, port, targets):
        """targets: names, or name:port to give one its own port."""
        _run(DNSMASQ_SH, "set-srv", self.dir, srv_name, port, *targets)

    def teardown(self):
        problems = []
        if self.started:
            try:
                _run(DNSMASQ_SH, "stop", self.dir)
            except RuntimeError as e:
                problems.append(str(e))
            self.started = False
        for d in self.etc_made:
            shutil.rmtree(d, ignore_errors=True)
        self.etc_made = []
        if self.etc_root_made:
            try:
                os.rmdir("/etc/netns")
            except OSError:
                pass  # someone else put a namespace's files there meanwhile
            self.etc_root_made = False
        return problems + self.topo.teardown()


class DnsAgent(cl.ClusterAgent):
    """An agent that knows no peer: only --dns-name."""

    def argv(self):
        c = self.owner
        return [*self.prefix, str(cl.AGENT_BIN),
                "--node-id", self.node_id,
                "--port", "0", "--http-port", "0",
                "--peer-port", str(self.peer_port),
                "--advertise", self.host, "--api-bind", self.host,
                "--replication-factor", "3",
                "--dns-name", c.dns_name, "--dns-refresh", REFRESH,
                "--snapshot-entries", str(c.snapshot_entries),
                *c.extra_args]


class DnsCluster(cl.Cluster):
    """Agents in the namespaces `slots` of net, named n<slot+1>, all
    resolving dns_name. peer_ports: one per slot (default PEER_PORT)."""

    def __init__(self, tmpdir, net, slots, dns_name, peer_ports=None, extra_args=()):
        self.net = net
        self.dns_name = dns_name
        t = net.topo
        super().__init__(tmpdir, hosts=[t.agent_ip[i] for i in slots],
                         prefixes=[t.prefix(i) for i in slots], extra_args=extra_args)
        ports = peer_ports or [PEER_PORT] * len(slots)
        self.agents = [DnsAgent(self, f"n{i + 1}", t.agent_ip[i], port, t.prefix(i),
                                self.tmpdir)
                       for i, port in zip(slots, ports)]
        self._reindex()

    def _reindex(self):
        self.by_id = {a.node_id: a for a in self.agents}
        self.node_ids = set(self.by_id)

    def add(self, slot, peer_port=PEER_PORT):
        """Starts one more agent, in namespace `slot`."""
        t = self.net.topo
        a = DnsAgent(self, f"n{slot + 1}", t.agent_ip[slot], peer_port, t.prefix(slot),
                     self.tmpdir)
        self.agents.append(a)
        self._reindex()
        return a.start()

    def cluster_ids(self):
        """{node id: the cluster id it founded or joined, from its log};
        also fails the test if any agent refused one of another cluster."""
        ids = {}
        for a in self.agents:
            for line in a.stderr().splitlines():
                if "belongs to another cluster" in line:
                    pytest.fail(f"{a.node_id}: {line}")
                if "founded the cluster (id " in line:
                    ids[a.node_id] = ("founded",
                                      line.split("founded the cluster (id ", 1)[1][:16])
                elif "joining cluster " in line:
                    ids[a.node_id] = ("joined", line.split("joining cluster ", 1)[1][:16])
        return ids


@pytest.fixture(scope="module")
def dnsnet(tmp_path_factory):
    """Four agent namespaces and the DNS server, for one module."""
    reason = unavailable_reason()
    if reason:
        pytest.skip(f"DNS discovery tests skipped: {reason}")
    net = DnsNet(tmp_path_factory.mktemp("dnsnet"), 4)
    try:
        net.setup()
        yield net
    finally:
        leftovers = net.teardown()
        if leftovers:
            pytest.fail("DNS test network cleanup: " + "\n".join(leftovers))
