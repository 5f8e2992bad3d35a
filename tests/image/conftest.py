"""Fixtures for the image tests: the Dockerfile built on the local engine, and
containers and networks of that image that are always removed (containers.py,
shared with e2e/).

Figures (build time, image size, time to healthy, stop times) go to the
terminal summary, and as JSON to $MQ_IMAGE_REPORT when that is set.
"""
import os

from containers import (FIGURES, GRACE, HERE, READY_TIMEOUT, RUN_ID, STOP_LIMIT, UID,  # noqa: F401
                        Container, Network, container, docker, engine, image, imagebuild,
                        wait_for)


def pytest_terminal_summary(terminalreporter):
    if not FIGURES:
        return
    terminalreporter.section("image figures")
    for k, v in FIGURES.items():
        terminalreporter.write_line(f"{k}: {v}")
    path = os.environ.get("MQ_IMAGE_REPORT")
    if path:
        imagebuild.merge_report(path, FIGURES)
