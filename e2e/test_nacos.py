"""Three pods that find each other through Nacos: an r-nacos container built
here (scripts/docker/service-image.sh rnacos) on the pods' network, agents
given only NACOS_SERVER_ADDR (no static peers, no DNS name). Each registers
itself as an instance of memquorum-cluster and lists the others."""
import json
import os
import subprocess
import urllib.request

import pytest

from conftest import NODES, REPO, start_cluster
from containers import FIGURES, RUN_ID, Container, wait_for
from pods import check_write_read

NACOS_PORT = 8848


@pytest.fixture(scope="module")
def nacos(engine, network):
    tag = os.environ.get("MQ_RNACOS_IMAGE") or subprocess.run(
        ["bash", str(REPO / "scripts/docker/service-image.sh"), "rnacos"],
        check=True, capture_output=True, text=True).stdout.strip()
    c = Container(tag, f"{RUN_ID}-nacos", network=network.name, ip=network.host(5)).start()
    addr = f"{c.ip}:{NACOS_PORT}"
    try:
        wait_for(lambda: instances(addr) is not None, 30, f"r-nacos to answer on {addr}")
        yield addr
    finally:
        c.remove()


def instances(addr):
    """The healthy instances of memquorum-cluster, or None if Nacos does not answer."""
    url = f"http://{addr}/nacos/v1/ns/instance/list?serviceName=memquorum-cluster&healthyOnly=true"
    try:
        with urllib.request.urlopen(url, timeout=3) as r:
            return json.loads(r.read())["hosts"]
    except (OSError, ValueError, KeyError):
        return None


@pytest.fixture(scope="module")
def pods(image, network, nacos):
    pods = start_cluster(image, network, {"NACOS_SERVER_ADDR": nacos}, "nacos")
    yield pods
    for p in pods:
        p.remove()


def test_cluster_forms_through_nacos(pods, nacos):
    for p in pods:
        assert "MEMQUORUM_PEERS" not in p.env and "MEMQUORUM_DNS_NAME" not in p.env
    hosts = instances(nacos)
    got = sorted((h["metadata"].get("node_id"), h["ip"], h["port"]) for h in hosts)
    want = sorted((p.node, p.ip, 7070) for p in pods)
    assert got == want, f"Nacos lists {got}, expected {want}"
    FIGURES["nacos_instances"] = len(hosts)
    assert sorted(m["node_id"] for m in pods[0].status()["members"]) == list(NODES)


def test_apps_write_and_read_through_their_own_agents(pods):
    check_write_read(pods, "nacos")
