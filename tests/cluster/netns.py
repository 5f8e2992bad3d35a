"""A private network of namespaces for partition tests (needs root).

    agent ns mqt-<pid>-1  10.250.X.1 --+
    agent ns mqt-<pid>-2  10.250.X.2 --+-- bridge in ns mqt-<pid>-br
    agent ns mqt-<pid>-3  10.250.X.3 --+
    test process (root ns) 10.250.X.254 on a veth into the bridge

Every 10.250.X.0/24 address lives on an interface created here; X is chosen
so that the subnet overlaps no route or address of the root namespace.
Bridging happens inside the bridge namespace, so the root namespace's
FORWARD policy does not matter. Cutting an agent off drops its traffic to
and from the other agents inside its own namespace, so the test process can
still reach its API and HTTP ports.
"""
import ipaddress
import os
import shutil
import subprocess


def _run(*cmd, check=True):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: exit {r.returncode}: "
                           f"{r.stderr.strip()}")
    return r


def unavailable_reason():
    """None if namespaces can be used here, else why not."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (scripts/install-deps.sh)"
    probe = f"mqt-{os.getpid()}-probe"
    r = _run("ip", "netns", "add", probe, check=False)
    if r.returncode != 0:
        return f"cannot create a network namespace: {r.stderr.strip()}"
    try:
        r = _run("ip", "netns", "exec", probe, "iptables", "-S", check=False)
        if r.returncode != 0:
            return f"iptables does not work in a namespace: {r.stderr.strip()}"
    finally:
        _run("ip", "netns", "del", probe, check=False)
    return None


def qdisc_available(kind, *args):
    """True if the kernel has the tc qdisc `kind` (e.g. netem, which
    needs the sch_netem module), probed on the loopback device of a
    throwaway namespace."""
    probe = f"mqt-{os.getpid()}-qd"
    if _run("ip", "netns", "add", probe, check=False).returncode != 0:
        return False
    try:
        r = _run("ip", "netns", "exec", probe, "tc", "qdisc", "add", "dev",
                 "lo", "root", kind, *args, check=False)
        return r.returncode == 0
    finally:
        _run("ip", "netns", "del", probe, check=False)


def _share(probability):
    """The iptables match for "a random share of the packets" (None: all)."""
    if probability is None:
        return []
    return ["-m", "statistic", "--mode", "random",
            "--probability", f"{probability:.3f}"]


def _taken_networks():
    nets = []
    for args in (("-4", "-o", "addr", "show"), ("-4", "route", "show", "table", "all")):
        out = _run("ip", *args, check=False).stdout
        for line in out.splitlines():
            for tok in line.split():
                if "/" in tok or tok[:1].isdigit():
                    try:
                        nets.append(ipaddress.ip_network(tok, strict=False))
                    except ValueError:
                        pass
    return [n for n in nets if n.prefixlen > 0]


def sweep_stale():
    """Removes namespaces a killed earlier run of this suite left behind
    (named mqt-<pid>-* for a pid that no longer exists), with the agents
    still running inside them."""
    out = _run("ip", "netns", "list", check=False).stdout
    for line in out.splitlines():
        name = line.split()[0] if line.split() else ""
        parts = name.split("-")
        if len(parts) != 3 or parts[0] != "mqt" or not parts[1].isdigit():
            continue
        if os.path.exists(f"/proc/{parts[1]}"):
            continue
        pids = _run("ip", "netns", "pids", name, check=False).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), 9)
            except (ProcessLookupError, ValueError):
                pass
        _run("ip", "netns", "del", name, check=False)


class Topology:
    def __init__(self, n=3):
        pid = os.getpid()
        self.n = n
        self.tag = f"mqt-{pid}"
        self.bridge_ns = f"{self.tag}-br"
        self.agent_ns = [f"{self.tag}-{i + 1}" for i in range(n)]
        self.host_if = f"mq{pid % 10**7}h"
        taken = _taken_networks()
        for k in range(200):
            x = (pid + k) % 200 + 20
            net = ipaddress.ip_network(f"10.250.{x}.0/24")
            if not any(net.overlaps(t) for t in taken):
                break
        else:
            raise RuntimeError("no free 10.250.X.0/24 subnet")
        self.net = net
        self.agent_ip = [str(net.network_address + i + 1) for i in range(n)]
        self.host_ip = str(net.network_address + 254)
        self.created = []

    def setup(self):
        sweep_stale()
        pid = os.getpid() % 10**7
        ip = lambda *a: _run("ip", *a)  # noqa: E731
        ip("netns", "add", self.bridge_ns)
        self.created.append(self.bridge_ns)
        ip("-n", self.bridge_ns, "link", "set", "lo", "up")
        ip("-n", self.bridge_ns, "link", "add", "br0", "type", "bridge")
        ip("-n", self.bridge_ns, "link", "set", "br0", "up")
        for i, ns in enumerate(self.agent_ns):
            ip("netns", "add", ns)
            self.created.append(ns)
            outer, inner = f"mq{pid}b{i + 1}", f"mq{pid}a{i + 1}"
            ip("link", "add", outer, "type", "veth", "peer", "name", inner)
            ip("link", "set", outer, "netns", self.bridge_ns)
            ip("link", "set", inner, "netns", ns)
            ip("-n", self.bridge_ns, "link", "set", outer, "master", "br0", "up")
            ip("-n", ns, "link", "set", "lo", "up")
            ip("-n", ns, "link", "set", inner, "name", "eth0")
            ip("-n", ns, "addr", "add", f"{self.agent_ip[i]}/24", "dev", "eth0")
            ip("-n", ns, "link", "set", "eth0", "up")
        peer = f"mq{pid}r"
        ip("link", "add", self.host_if, "type", "veth", "peer", "name", peer)
        ip("link", "set", peer, "netns", self.bridge_ns)
        ip("-n", self.bridge_ns, "link", "set", peer, "master", "br0", "up")
        ip("addr", "add", f"{self.host_ip}/24", "dev", self.host_if)
        ip("link", "set", self.host_if, "up")
        return self

    def prefix(self, i):
        return ("ip", "netns", "exec", self.agent_ns[i])

    def isolate(self, i):
        """Drops all traffic between agent i and the other agents, in agent
        i's namespace and in both directions; the test process (host_ip)
        still reaches it."""
        for j in range(self.n):
            if j != i:
                self.sever(i, j)

    def _iptables(self, i, *rule):
        _run("ip", "netns", "exec", self.agent_ns[i], "iptables", *rule)

    def drop_from(self, i, j, probability=None):
        """Agent i stops receiving what agent j sends (a one-way cut: i's
        packets still reach j). With probability, only that share of the
        packets is dropped: a lossy link instead of a cut one."""
        self._iptables(i, "-I", "INPUT", "-s", self.agent_ip[j], *_share(probability),
                       "-j", "DROP")

    def drop_to(self, i, j, probability=None):
        """What agent i sends to agent j is dropped (in i's namespace);
        probability as for drop_from."""
        self._iptables(i, "-I", "OUTPUT", "-d", self.agent_ip[j], *_share(probability),
                       "-j", "DROP")

    def sever(self, i, j):
        """Agents i and j cannot reach each other, in both directions; each
        still reaches the third agent and the test process. With three
        agents this is the "bridge": the third agent sees both sides."""
        self.drop_from(i, j)
        self.drop_to(i, j)

    def heal(self, i):
        ns = self.agent_ns[i]
        _run("ip", "netns", "exec", ns, "iptables", "-F", "INPUT")
        _run("ip", "netns", "exec", ns, "iptables", "-F", "OUTPUT")

    def shape(self, i, qdisc):
        """Replaces the root qdisc of agent i's eth0 (its traffic out to
        every other agent and to the test process), e.g.
        ("netem", "delay", "100ms", "20ms") or ("tbf", "rate", "256kbit",
        "burst", "16kb", "latency", "500ms"). Raises RuntimeError when the
        kernel lacks the qdisc."""
        _run("ip", "netns", "exec", self.agent_ns[i], "tc", "qdisc",
             "replace", "dev", "eth0", "root", *qdisc)

    def unshape(self, i):
        """Back to the default qdisc of agent i's eth0 (no error if none
        was set)."""
        _run("ip", "netns", "exec", self.agent_ns[i], "tc", "qdisc", "del",
             "dev", "eth0", "root", check=False)

    def heal_all(self):
        """Removes every cut, drop and qdisc this module set on any agent."""
        for i in range(self.n):
            self.heal(i)
            self.unshape(i)

    def teardown(self):
        """Removes everything setup created; safe to call more than once."""
        errors = []
        for ns in reversed(self.created):
            r = _run("ip", "netns", "del", ns, check=False)
            if r.returncode != 0:
                errors.append(r.stderr.strip())
        self.created = []
        # Interfaces left in the root namespace by a setup that failed half
        # way (deleting a namespace removes the veths inside it).
        pid = os.getpid() % 10**7
        for name in [self.host_if, f"mq{pid}r"] + [
                f"mq{pid}{s}{i + 1}" for i in range(self.n) for s in "ab"]:
            if os.path.exists(f"/sys/class/net/{name}"):
                _run("ip", "link", "del", name, check=False)
        return errors
