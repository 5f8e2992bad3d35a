"""The nemesis runs on the harness of tests/cluster: that directory goes on
sys.path (netns, history, feedfollow import from there) and its conftest.py
is loaded as the plain module mq_cluster_harness, the way it loads the
single-agent harness of tests/api, so no harness code is copied here. Its
reporting hooks (agents' stderr in failure reports, stub cleanup) are
registered for this directory too."""
import importlib.util
import pathlib
import sys

CLUSTER_DIR = pathlib.Path(__file__).resolve().parent.parent / "cluster"
if str(CLUSTER_DIR) not in sys.path:
    sys.path.insert(0, str(CLUSTER_DIR))

_spec = importlib.util.spec_from_file_location("mq_cluster_harness",
                                               CLUSTER_DIR / "conftest.py")
harness = importlib.util.module_from_spec(_spec)
sys.modules["mq_cluster_harness"] = harness
_spec.loader.exec_module(harness)

pytest_sessionfinish = harness.pytest_sessionfinish
pytest_runtest_makereport = harness.pytest_runtest_makereport
