"""Three agent containers form a cluster with static peers on a user-defined
network (explicit private subnet, --internal: they reach each other and
nothing else), configured only through the environment the way
docker-compose.yml and the Kubernetes manifests configure it:

    MEMQUORUM_NODE_ID=nK  MEMQUORUM_PEERS=n1=NAME1:7070,n2=NAME2:7070,n3=NAME3:7070
    MEMQUORUM_ADVERTISE_ADDR=<container IP>  MEMQUORUM_REPLICATION_FACTOR=3
    MEMQUORUM_BOOTSTRAP_EXPECT=3

Peers are named by container name (Docker's embedded DNS resolves them), each
agent advertises its IP. The API binds 127.0.0.1, so every client call is
`docker exec <container> mqctl ...`: a key put through one agent is read back
through the others. `docker stop` of one agent of the running cluster exits
0 within the grace period and the other two still serve the data; the last
two stop together, also with 0."""
import concurrent.futures
import json

import pytest

from conftest import (FIGURES, GRACE, READY_TIMEOUT, RUN_ID, STOP_LIMIT, Container,
                      Network, wait_for)
from containers import formed as cluster_formed

NODES = ("n1", "n2", "n3")
SHARDS = 16


@pytest.fixture(scope="module")
def cluster(image):
    net = Network(f"{RUN_ID}-net").create()
    names = {n: f"{RUN_ID}-{n}" for n in NODES}
    peers = ",".join(f"{n}={names[n]}:7070" for n in NODES)
    agents = {}
    try:
        for i, n in enumerate(NODES):
            ip = net.host(11 + i)
            agents[n] = Container(image, names[n], network=net.name, ip=ip, env={
                "MEMQUORUM_NODE_ID": n,
                "MEMQUORUM_PEERS": peers,
                "MEMQUORUM_ADVERTISE_ADDR": ip,
                "MEMQUORUM_REPLICATION_FACTOR": "3",
                "MEMQUORUM_BOOTSTRAP_EXPECT": "3",
            }).start()
        for a in agents.values():
            a.wait_ready(READY_TIMEOUT)
        wait_for(lambda: formed(agents), 30, "every agent to see 3 alive members and "
                 f"{SHARDS} shards led, each on 3 replicas")
        FIGURES["cluster_subnet"] = str(net.subnet)
        yield agents
        # Whatever the tests left running stops together, and must exit 0.
        running = [a for a in agents.values() if a.state().get("Running")]
        with concurrent.futures.ThreadPoolExecutor(len(running) or 1) as ex:
            results = list(ex.map(lambda a: (a, *a.stop(GRACE)), running))
        bad = [f"{a.name}: exit {code} after {secs:.1f}s\n{a.logs(20)}"
               for a, code, secs in results if code != 0 or secs >= STOP_LIMIT]
        if results:
            FIGURES["docker_stop_seconds_rest_of_cluster"] = round(max(s for _, _, s in results), 2)
        if bad:
            pytest.fail("cluster shutdown: " + "\n".join(bad))
    finally:
        for a in agents.values():
            a.remove()
        net.remove()


def status(agent):
    r = agent.mqctl("--json", "status", check=False)
    return json.loads(r.stdout) if r.returncode == 0 else None


def formed(agents):
    return cluster_formed((status(a) for a in agents.values()), NODES, SHARDS)


def test_put_through_one_agent_reads_back_through_the_others(cluster):
    for writer in NODES:
        key = f"user:{writer}42:session"
        value = f"written-through-{writer}"
        out = cluster[writer].mqctl("put", key, value).stdout
        assert out.startswith("OK revision="), f"put via {writer}: {out}"
        for reader in NODES:
            got = cluster[reader].mqctl("get", key, check=False)
            assert got.returncode == 0 and got.stdout.strip() == value, (
                f"{key} put via {writer}, get via {reader}: exit {got.returncode} "
                f"{got.stdout.strip()!r} {got.stderr.strip()!r}")


def test_docker_stop_of_one_agent_leaves_the_others_serving(cluster):
    key, value = "user:leaving:k", "kept"
    cluster["n1"].mqctl("put", key, value)
    code, secs = cluster["n3"].stop(GRACE)
    FIGURES["docker_stop_seconds_one_of_three"] = round(secs, 2)
    assert code == 0, (f"n3 exited with {code} after docker stop -t {GRACE}\n"
                       f"{cluster['n3'].logs()}")
    assert secs < STOP_LIMIT, f"n3 took {secs:.1f}s to stop\n{cluster['n3'].logs()}"
    for n in ("n1", "n2"):
        got = cluster[n].mqctl("get", key, check=False)
        assert got.returncode == 0 and got.stdout.strip() == value, (
            f"get via {n} after n3 left: exit {got.returncode} {got.stderr.strip()!r}")
