"""Fixtures for the end-to-end tests: pods as containers on private Docker
networks (see pods.py). The image, the engine checks and the container and
network helpers are tests/image's (containers.py); e2e/run.sh starts the
engine and builds the images first.

Figures (time to a formed cluster, write gaps, suite time) go to the terminal
summary, and as JSON to $MQ_E2E_REPORT when that is set.
"""
import json
import os
import pathlib
import sys
import time

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "image"))
sys.path.append(str(REPO / "tests" / "cluster"))  # feedfollow.py, after e2e's own conftest

from containers import (FIGURES, RUN_ID, Network, engine, image,  # noqa: E402,F401
                        wait_for)
from pods import Pod, formed  # noqa: E402

NODES = ("n1", "n2", "n3")
T0 = time.monotonic()


def start_cluster(image, net, env, what):
    """Three pods on `net` with `env`; waits until every agent is ready and
    sees the same three members leading every shard. Records the time."""
    pods = [Pod(image, net, n, net.host(11 + i), env) for i, n in enumerate(NODES)]
    t0 = time.monotonic()
    try:
        for p in pods:
            p.start()
        for p in pods:
            p.wait_ready()
        wait_for(lambda: formed(pods, NODES), 60, f"the {what} cluster to form: three "
                 "alive members, every shard led and on three replicas")
    except BaseException:
        for p in pods:
            print(f"---- {p.name}\n{p.agent.logs(40)}")
            p.remove()
        raise
    FIGURES[f"{what}_seconds_to_formed"] = round(time.monotonic() - t0, 1)
    return pods


@pytest.fixture(scope="module")
def network(engine, request):
    net = Network(f"{RUN_ID}-{request.module.__name__.split('_', 1)[-1]}").create()
    yield net
    net.remove()


def pytest_terminal_summary(terminalreporter):
    FIGURES["suite_seconds"] = round(time.monotonic() - T0, 1)
    terminalreporter.section("e2e figures")
    for k, v in FIGURES.items():
        terminalreporter.write_line(f"{k}: {v}")
    path = os.environ.get("MQ_E2E_REPORT")
    if path:
        pathlib.Path(path).write_text(json.dumps(FIGURES, indent=2) + "\n")
