"""Three pods that find each other through DNS alone, then survive faults.

Every agent container carries the network alias memquorum-peers; Docker's
embedded DNS answers that name with every such container's address, as a
Kubernetes headless Service answers with its pods'. The agents get
MEMQUORUM_DNS_NAME=memquorum-peers and no static peers.

Then, with a writer app in every pod writing through its own agent and a
websocket subscriber following the feed all along (pods.py), in this order:
`docker kill` of an agent (a new one with empty memory takes its place and
rejoins), `docker pause` / `unpause` of another, `docker network disconnect`
/ `connect` of a third (a partition), and a rolling replacement of every
agent by a new image tag, one pod at a time, each next one only after the
previous one reports ready (/readyz). The last test checks that no
acknowledged write was lost and that the feed has every change without a
gap; the longest write gap of the roll is a figure.
"""
import os
import time

import pytest

from conftest import NODES, start_cluster
from containers import FIGURES, GRACE, RUN_ID, docker, wait_for
from pods import (DNS_ALIAS, SHARDS, Pod, WriteLog, check_feed, check_write_read, follow_feed,
                  formed)

# Short enough to keep a stuck drain from eating the suite's time budget.
ENV = {"MEMQUORUM_DNS_NAME": DNS_ALIAS, "MEMQUORUM_DNS_REFRESH": "1s",
       "MEMQUORUM_DRAIN_TIMEOUT": "10s"}
# MQ_E2E_ROLL_ROUNDS=N rolls every pod N times (a longer soak; CI rolls once).
ROLL_ROUNDS = int(os.environ.get("MQ_E2E_ROLL_ROUNDS", "1"))
# Long enough for the election timeout (1 s) to pass many times over.
FAULT_SECONDS = 3
# Image tags the tests made; removed (untagged) after the pods that use them.
TAGS = []


@pytest.fixture(scope="module")
def pods(image, network):
    pods = start_cluster(image, network, ENV, "dns")
    FIGURES["dns_subnet"] = str(network.subnet)
    yield pods
    for p in pods:
        p.remove()
    for tag in TAGS:
        docker("image", "rm", tag, check=False)


@pytest.fixture(scope="module")
def traffic(pods):
    """The writers and the feed, running from the first test that asks for
    them to the end of the module."""
    log = WriteLog()
    feed = follow_feed(pods).__enter__()
    for p in pods:
        p.start_writer(log)
    yield log, feed
    for p in pods:
        p.stop_writer(log)
    feed.__exit__()


def settle(pods, what):
    for p in pods:
        p.wait_ready()
    wait_for(lambda: formed(pods, NODES), 60, f"the cluster to form again after {what}")


def writes_resume(pod, what, timeout=30):
    """The pod's writer gets a write acknowledged through its own agent."""
    t = time.time()
    wait_for(lambda: pod.acked_since(t) > 0, timeout,
             f"{pod.name}'s writer to get a write acknowledged after {what}")


def replace(pods, i, log, image=None, kill=False):
    """The pod's containers go (docker kill, or docker stop and exit 0) and
    a new pod of the same name, address and settings takes their place."""
    old = pods[i]
    old.stop_writer(log)
    if kill:
        docker("kill", old.name)
    else:
        code, secs = old.agent.stop(GRACE)
        assert code == 0, f"{old.name}: exit {code} after docker stop\n{old.agent.logs(30)}"
    old.remove()
    new = Pod(image or old.image, old.net, old.node, old.ip, ENV).start()
    pods[i] = new
    t0 = time.monotonic()
    new.wait_ready()
    new.start_writer(log)
    return time.monotonic() - t0


def test_cluster_forms_through_dns_alone(pods):
    for p in pods:
        assert "MEMQUORUM_PEERS" not in p.env and "NACOS_SERVER_ADDR" not in p.env
        members = sorted(m["node_id"] for m in p.status()["members"])
        assert members == list(NODES), f"{p.name} sees members {members}"


def test_apps_write_and_read_through_their_own_agents(pods):
    check_write_read(pods, "dns")


def test_docker_kill_then_a_new_empty_agent_rejoins(pods, traffic):
    log, _ = traffic
    writes_resume(pods[2], "the writers started")
    took = replace(pods, 2, log, kill=True)
    FIGURES["kill_to_ready_seconds"] = round(took, 1)
    settle(pods, "docker kill")
    writes_resume(pods[2], "its agent was killed and replaced")


def pause(name):
    """docker pause. runc gives up freezing a busy container's cgroup after
    a while ("unable to freeze") and leaves it running; only that error is
    retried, a few times."""
    for _ in range(4):
        r = docker("pause", name, check=False)
        if r.returncode == 0:
            return
        if "unable to freeze" not in r.stderr:
            break
        time.sleep(1)
    docker("pause", name)  # the last try fails the test the usual way


def test_docker_pause_and_unpause(pods, traffic):
    p = pods[1]
    pause(p.name)
    try:
        time.sleep(FAULT_SECONDS)
        # The other two keep a majority of every shard: their writers go on.
        for q in (pods[0], pods[2]):
            writes_resume(q, f"{p.name} was paused")
    finally:
        docker("unpause", p.name)
    settle(pods, "docker unpause")
    writes_resume(p, "docker unpause")


def test_network_disconnect_and_connect(pods, traffic):
    p = pods[0]
    docker("network", "disconnect", p.net.name, p.name)
    try:
        time.sleep(FAULT_SECONDS)
        for q in (pods[1], pods[2]):
            writes_resume(q, f"{p.name} was cut off")
    finally:
        docker("network", "connect", "--ip", p.ip, "--alias", DNS_ALIAS, p.net.name, p.name)
    settle(pods, "docker network connect")
    writes_resume(p, "docker network connect")


def test_rolling_replacement_by_a_new_image_tag(pods, traffic, image):
    log, _ = traffic
    tag = f"memquorum:e2e-roll-{RUN_ID}"
    docker("tag", image, tag)
    TAGS.append(tag)
    t0 = time.time()
    took = []
    for _ in range(ROLL_ROUNDS):
        for i in reversed(range(len(pods))):  # a StatefulSet rolls n-1 .. 0
            took.append(replace(pods, i, log, image=tag))
            assert docker("inspect", "-f", "{{.Config.Image}}", pods[i].name).stdout.strip() == tag
    writes_resume(pods[0], "the last pod was replaced")
    for p in pods:  # the writers' lines so far, for the gap
        p.stop_writer(log)
        p.start_writer(log)
    gap, writer = log.longest_gap(t0, time.time())
    FIGURES["roll_seconds_to_ready_per_pod"] = [round(t, 1) for t in took]
    FIGURES["roll_longest_write_gap_seconds"] = round(gap, 2)
    FIGURES["roll_longest_write_gap_writer"] = writer
    print(f"\nrolling replacement: ready {', '.join(f'{t:.1f}' for t in took)} s after "
          f"each start; longest write gap {gap:.2f} s ({writer})")
    settle(pods, "the rolling replacement")


def test_no_acknowledged_write_lost_and_the_feed_has_no_gap(pods, traffic):
    log, feed = traffic
    for p in pods:
        p.stop_writer(log)
    FIGURES["acknowledged_writes"] = len(log.acked)
    FIGURES["failed_writes_unknown_outcome"] = log.errors
    FIGURES["feed_reconnects"] = feed.reconnects
    assert feed.reconnects >= 1, "the subscriber never had to move to another agent"
    assert len(log.acked) > 200, f"only {len(log.acked)} writes were acknowledged"
    assert len({s for s, _ in log.acked.values()}) > SHARDS // 2
    log.check_all_readable(pods[0])
    check_feed(feed, log)
