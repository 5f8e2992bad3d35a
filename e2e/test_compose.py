"""docker-compose.yml runs here: `docker-compose up -d` of the whole file,
with every image built locally (scripts/docker/compose.sh images, which
e2e/run.sh runs first), brings three ready agents that mqctl reaches through
their published ports, with Nacos listing them, Prometheus scraping them and
the Kafka broker healthy; `down -v` then removes every container, network
and volume the project made. Grafana (profile "grafana", pulled from a
registry) is left out and the test says so.

The project is named mqt-<pid>-compose and every host port is a free one on
127.0.0.1 (the variables of the file's port mappings), so a developer's own
`docker-compose up` on the default ports is not disturbed.
"""
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from conftest import REPO
from containers import FIGURES, RUN_ID, docker, running, wait_for

PROJECT = f"{RUN_ID}-compose"
PORTS = ("MQ_API_PORT_1", "MQ_API_PORT_2", "MQ_API_PORT_3", "MQ_HTTP_PORT_1",
         "MQ_HTTP_PORT_2", "MQ_HTTP_PORT_3", "MQ_NACOS_PORT", "MQ_KAFKA_PORT",
         "MQ_PROMETHEUS_PORT", "MQ_GRAFANA_PORT")
IMAGES = ("memquorum:latest", "memquorum-rnacos:0.8.8", "memquorum-kafka:4.4.0",
          "memquorum-prometheus:debian12")
UP_TIMEOUT = 120


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def compose_client():
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    pytest.fail("no compose client: scripts/docker/compose.sh install")


def http_json(url):
    try:
        with urllib.request.urlopen(url, timeout=3) as r:
            return json.loads(r.read())
    except (OSError, ValueError, urllib.error.HTTPError):
        return None


def http_status(url):
    try:
        with urllib.request.urlopen(url, timeout=3) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return 0


def sweep_stale_projects():
    """Compose projects mqt-<pid>-compose of runs that were killed before
    their `down` (their containers carry compose's labels, not ours)."""
    sel = "label=com.docker.compose.project"
    fmt = '{{index .Labels "com.docker.compose.project"}}'
    found = set(docker("ps", "-a", "--filter", sel, "--format",
                       '{{.Label "com.docker.compose.project"}}', check=False).stdout.split())
    for kind in ("network", "volume"):
        found |= set(docker(kind, "ls", "--filter", sel, "--format", fmt,
                            check=False).stdout.split())
    for project in sorted(found):
        pid = project[len("mqt-"):-len("-compose")]
        if (project.startswith("mqt-") and project.endswith("-compose") and pid.isdigit()
                and project != PROJECT and not running(int(pid))):
            psel = f"label=com.docker.compose.project={project}"
            for ls, rm in ((("ps", "-aq"), ("rm", "-f", "-v")),
                           (("network", "ls", "-q"), ("network", "rm")),
                           (("volume", "ls", "-q"), ("volume", "rm"))):
                ids = docker(*ls, "--filter", psel, check=False).stdout.split()
                if ids:
                    docker(*rm, *ids, check=False)


@pytest.fixture(scope="module")
def compose(engine):
    sweep_stale_projects()
    missing = [i for i in IMAGES if docker("image", "inspect", i, check=False).returncode]
    if missing:
        pytest.fail(f"images missing: {missing}: run scripts/docker/compose.sh images")
    ports = dict(zip(PORTS, free_ports(len(PORTS))))
    env = {"MQ_PUBLISH_ADDR": "127.0.0.1", **{k: str(v) for k, v in ports.items()}}
    cmd = compose_client() + ["-p", PROJECT, "-f", str(REPO / "docker-compose.yml")]

    def run(*args, timeout=180):
        r = subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=timeout,
                           cwd=REPO, env={**os.environ, **env})
        assert r.returncode == 0, f"{' '.join(args)}: exit {r.returncode}\n{r.stderr[-3000:]}"
        return r

    try:
        yield run, ports
    finally:
        r = subprocess.run(cmd + ["down", "-v", "--remove-orphans"], capture_output=True,
                           text=True, timeout=180, cwd=REPO,
                           env={**os.environ, **env})
        if r.returncode != 0:
            print(f"docker-compose down: {r.stderr[-2000:]}")


def left_behind():
    sel = f"label=com.docker.compose.project={PROJECT}"
    return {what: docker(*cmd, "--filter", sel, check=False).stdout.split()
            for what, cmd in (("containers", ("ps", "-aq")), ("networks", ("network", "ls", "-q")),
                              ("volumes", ("volume", "ls", "-q")))}


def test_compose_up_gives_a_ready_cluster_that_mqctl_reaches(compose):
    run, ports = compose
    t0 = time.monotonic()
    run("up", "-d")
    readyz = [f"http://127.0.0.1:{ports[f'MQ_HTTP_PORT_{i}']}/readyz" for i in (1, 2, 3)]
    wait_for(lambda: all(http_status(u) == 200 for u in readyz), UP_TIMEOUT,
             "every agent's /readyz 200 through its published port")
    FIGURES["compose_up_to_ready_seconds"] = round(time.monotonic() - t0, 1)

    def mqctl(i, *args):
        return docker("run", "--rm", "--network", "host", "--entrypoint", "mqctl",
                      "memquorum:latest", "--endpoint", f"127.0.0.1:{ports[f'MQ_API_PORT_{i}']}",
                      *args).stdout.strip()

    out = mqctl(1, "put", "user:7:compose", "hello")
    assert out.startswith("OK revision="), out
    assert mqctl(3, "get", "user:7:compose") == "hello"

    nacos = f"http://127.0.0.1:{ports['MQ_NACOS_PORT']}/nacos/v1/ns/instance/list" \
            "?serviceName=memquorum-cluster&healthyOnly=true"
    wait_for(lambda: len((http_json(nacos) or {}).get("hosts", [])) == 3, 30,
             "Nacos to list the three agents")
    targets = f"http://127.0.0.1:{ports['MQ_PROMETHEUS_PORT']}/api/v1/targets"

    def scraped():
        t = http_json(targets) or {}
        up = {a["labels"].get("instance") for a in t.get("data", {}).get("activeTargets", [])
              if a.get("health") == "up"}
        return {"memquorum-1", "memquorum-2", "memquorum-3"} <= up
    wait_for(scraped, 30, "Prometheus to scrape the three agents")
    kafka = f"{PROJECT}_kafka_1"
    wait_for(lambda: docker("inspect", "-f", "{{.State.Health.Status}}", kafka,
                            check=False).stdout.strip() == "healthy", 90,
             "the Kafka broker's healthcheck")
    print("\ngrafana: skipped (profile grafana: its image comes from a registry, "
          "and none can be reached here)")
    FIGURES["compose_grafana"] = "skipped: profile grafana pulls its image"


def test_compose_kafka_records_land_once_in_order(compose):
    """Records produced from the host to the compose broker (published
    port) are ingested by the agent containers into the topic log of the
    same name: each exactly once, each user's in the order produced."""
    try:
        from confluent_kafka import Producer
        from confluent_kafka.admin import AdminClient, NewTopic
    except ImportError:
        pytest.fail("confluent-kafka is missing: bash scripts/install-services.sh")
    _, ports = compose
    bootstrap = f"127.0.0.1:{ports['MQ_KAFKA_PORT']}"
    topic = "memquorum-input"  # MEMQUORUM_KAFKA_TOPIC in docker-compose.yml
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    try:
        futures[topic].result(30)
    except Exception as e:  # already made by an earlier produce: fine
        if "TOPIC_ALREADY_EXISTS" not in str(e):
            raise
    users, per_user = 20, 10
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for seq in range(per_user):
        for u in range(users):
            p.produce(topic, key=f"user:{u}:e2e", value=f"{u}:{seq}")
    assert p.flush(30) == 0, "records not delivered to the broker"

    def landed():
        out = docker("run", "--rm", "--network", "host", "--entrypoint", "mqctl",
                     "memquorum:latest", "--endpoint",
                     f"127.0.0.1:{ports['MQ_API_PORT_2']}", "read", topic, "--count",
                     "100000", check=False).stdout
        seen = {}
        for line in out.splitlines():
            parts = line.split("\t")
            if len(parts) == 5 and parts[3].endswith(":e2e"):
                u, seq = parts[4].split(":")
                seen.setdefault(int(u), []).append(int(seq))
        return seen
    t0 = time.monotonic()
    seen = {}
    while time.monotonic() - t0 < 90:
        seen = landed()
        if sum(map(len, seen.values())) >= users * per_user:
            break
        time.sleep(1)
    want = {u: list(range(per_user)) for u in range(users)}
    assert seen == want, f"per user, the sequence numbers in the log: {seen}"
    FIGURES["compose_kafka_records_to_log_seconds"] = round(time.monotonic() - t0, 1)


def test_compose_down_removes_what_up_made(compose):
    run, _ = compose
    t0 = time.monotonic()
    run("down", "-v", "--remove-orphans")
    FIGURES["compose_down_seconds"] = round(time.monotonic() - t0, 1)
    left = {k: v for k, v in left_behind().items() if v}
    assert not left, f"docker-compose down left {left}"
