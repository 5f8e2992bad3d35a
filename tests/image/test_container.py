"""One agent container with the image's defaults (no flags, no environment):
the agent process runs as uid 10001, the container reaches `healthy` by the
image's own HEALTHCHECK, mqctl in the image talks to the agent, and
`docker stop` (SIGTERM, grace period given explicitly) ends it with exit code
0 well within the grace period."""
import time

from conftest import FIGURES, GRACE, STOP_LIMIT, UID, wait_for


def test_agent_process_runs_as_uid_10001(container):
    c = container()
    c.wait_ready()
    status = c.exec("cat", "/proc/1/status").stdout
    comm = c.exec("cat", "/proc/1/comm").stdout.strip()
    assert comm == "memquorum", f"pid 1 is {comm!r}, not the agent"
    uids = next(l.split()[1:] for l in status.splitlines() if l.startswith("Uid:"))
    gids = next(l.split()[1:] for l in status.splitlines() if l.startswith("Gid:"))
    assert uids == [str(UID)] * 4, f"agent uids (real, effective, saved, fs): {uids}"
    assert gids == [str(UID)] * 4, f"agent gids: {gids}"


def test_container_reaches_healthy(container):
    t0 = time.monotonic()
    c = container()

    def healthy():
        st = c.state()
        health = (st.get("Health") or {}).get("Status")
        assert st.get("Running"), f"container exited with {st.get('ExitCode')}:\n{c.logs()}"
        assert health != "unhealthy", (
            f"container is unhealthy: {st['Health'].get('Log')}\n{c.logs()}")
        return health == "healthy"

    # The first check runs one --interval (10 s) after the start.
    wait_for(healthy, 45, f"{c.name} to become healthy")
    FIGURES["seconds_to_healthy"] = round(time.monotonic() - t0, 1)


def test_mqctl_in_the_image_reaches_the_agent(container):
    c = container()
    c.wait_ready()
    out = c.mqctl("put", "user:7:greeting", "hello").stdout
    assert out.startswith("OK revision="), out
    assert c.mqctl("get", "user:7:greeting").stdout.strip() == "hello"


def test_docker_stop_exits_0_within_the_grace_period(container):
    c = container()
    c.wait_ready()
    c.mqctl("put", "user:8:k", "v")
    code, secs = c.stop(GRACE)
    st = c.state()
    FIGURES["docker_stop_seconds_single"] = round(secs, 2)
    assert not st.get("OOMKilled"), "the agent was OOM-killed"
    assert code == 0, (f"exit code {code} after docker stop -t {GRACE} "
                       f"(137 means SIGKILL at the deadline)\n{c.logs()}")
    assert secs < STOP_LIMIT, (
        f"docker stop -t {GRACE} took {secs:.1f}s; the agent must exit within "
        f"{STOP_LIMIT:.0f}s of SIGTERM\n{c.logs()}")
