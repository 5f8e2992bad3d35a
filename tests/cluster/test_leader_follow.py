"""Leadership follows the requests: a shard whose requests come (mostly)
through one other agent gets that agent as its leader, so the application
behind it writes without a forwarding hop; requests spread over the agents
move nothing; --leader-follow-window 0 turns it off."""
import itertools
import threading
import time

import grpc
import pytest

from conftest import SLOW, Cluster, pb, user_in_shard

WINDOW = "1s"
# Generous: the leader judges at the end of a whole window, and the handed-
# over replica must catch up and win the election it is handed.
MOVE_BOUND = 10.0 * SLOW
RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def start_cluster(tmp_path_factory, window):
    c = Cluster(tmp_path_factory.mktemp("cluster"),
                extra_args=["--leader-follow-window", window]).start()
    c.wait_healthy("the cluster to be healthy")
    return c


def stop_cluster(c):
    problems = c.close()
    if problems:
        pytest.fail("cluster shutdown: " + "\n".join(problems))


@pytest.fixture(scope="module")
def following(tmp_path_factory):
    c = start_cluster(tmp_path_factory, WINDOW)
    yield c
    stop_cluster(c)


class Writer:
    """Puts to one shard through the given agents in turn, ~200 per second,
    until stopped; counts acks and keeps every non-retryable error."""

    def __init__(self, agents, shard):
        self.agents = agents
        self.uid = user_in_shard(shard)
        self.stop = threading.Event()
        self.acked = 0
        self.unexpected = []
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        for n in itertools.count():
            if self.stop.is_set():
                return
            via = self.agents[n % len(self.agents)]
            try:
                via.kv.Put(pb.PutRequest(key=f"user:{self.uid}:k{n % 50}",
                                         value=b"v%d" % n), timeout=3.0)
                self.acked += 1
            except grpc.RpcError as e:
                if e.code() not in RETRYABLE:
                    self.unexpected.append(f"{e.code().name} {e.details()}")
            time.sleep(0.005)

    def finish(self):
        self.stop.set()
        self.thread.join(10)
        assert not self.unexpected, (
            f"puts failed with non-retryable codes: {self.unexpected[:5]}")


def moved_lines(agent, shard):
    return [l for l in agent.stderr_tail(200000).splitlines()
            if f"shard {shard}: handing leadership to" in l and "forwarded" in l]


def test_leadership_moves_to_the_agent_the_requests_come_through(following):
    c = following
    shard = 3
    old = c.leader_of(shard)
    via = next(a for a in c.agents if a.node_id != old)
    w = Writer([via], shard)
    deadline = time.monotonic() + MOVE_BOUND
    try:
        while c.leader_of(shard) != via.node_id:
            if time.monotonic() > deadline:
                pytest.fail(f"shard {shard} still led by {c.leader_of(shard)} "
                            f"{MOVE_BOUND:.0f}s after its requests started to "
                            f"come through {via.node_id} only\n"
                            + c.status_report())
            time.sleep(0.1)
        # Requests keep being served after the move.
        acked = w.acked
        time.sleep(0.5)
        assert w.acked > acked, "no put acked after the leadership moved"
    finally:
        w.finish()
    lines = moved_lines(c.by_id[old], shard)
    assert lines and via.node_id in lines[-1], (
        f"{old} logged no hand-over of shard {shard} to {via.node_id}: "
        f"{lines}")
    assert c.by_id[old].metric("memquorum_leader_handoffs_total") >= 1
    assert via.metric("memquorum_requests_forwarded_total") > 0
    # Every agent agrees, and the new leader runs the requests itself now.
    c.wait_healthy("the cluster to be healthy after the move")
    assert c.leader_of(shard) == via.node_id


def write_and_expect_no_move(c, shard, agents, seconds, why):
    """Writes to shard through agents for a while; the leader must not
    change, nor log a hand-over for load."""
    old = c.leader_of(shard)
    before = len(moved_lines(c.by_id[old], shard))
    w = Writer(agents, shard)
    try:
        time.sleep(seconds)
    finally:
        w.finish()
    assert w.acked > 100, f"only {w.acked} puts acked"
    assert c.leader_of(shard) == old, (
        f"shard {shard} moved from {old} to {c.leader_of(shard)} {why}")
    assert len(moved_lines(c.by_id[old], shard)) == before


def test_requests_spread_over_agents_move_nothing(following):
    # A third through each agent, for four windows.
    write_and_expect_no_move(following, 9, following.agents, 4.0,
                             "although its requests came through every "
                             "agent alike")


def test_window_zero_never_moves_leadership(tmp_path_factory):
    c = start_cluster(tmp_path_factory, "0")
    try:
        shard = 5
        via = next(a for a in c.agents if a.node_id != c.leader_of(shard))
        write_and_expect_no_move(c, shard, [via], 3.0,
                                 "with --leader-follow-window 0")
    finally:
        stop_cluster(c)
