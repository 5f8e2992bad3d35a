"""Pressure on the peer port from a process that is not an agent (issue 14,
item 4): random bytes, half a TLS ClientHello or HTTP/2 preface, and idle
connections held open must change nothing for the cluster.

The test process itself plays the stranger: it opens many loopback
connections to one agent's peer port while client threads keep writing
through every agent. During and after the attack every agent must stay up,
every write through every agent must succeed, and the cluster must be
healthy (each shard with one agreed leader and the three voters) once the
stranger has gone.
"""
import random
import socket
import threading
import time

import grpc
from conftest import pb, unique

ATTACK_SECONDS = 8.0
IDLE_CONNS = 100  # held open without a byte
NOISY_CONNS = 150  # each sends one kind of garbage, then closes or lingers

TLS_HELLO_HEAD = bytes.fromhex("160301020001") + b"\x01\x00\x01\xfc\x03\x03"
H2_HALF_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM"


def _garbage(i, rng):
    kind = i % 4
    if kind == 0:
        return rng.randbytes(rng.randint(1, 4096))
    if kind == 1:
        return TLS_HELLO_HEAD + rng.randbytes(32)
    if kind == 2:
        return H2_HALF_PREFACE
    # A plausible length prefix announcing far more than will ever come.
    return b"\xff\xff\xff\x7f" + rng.randbytes(16)


class _Writer(threading.Thread):
    """Puts through one agent in a loop; records every failure."""

    def __init__(self, agent, stop):
        super().__init__(daemon=True)
        self.agent = agent
        self.stop = stop
        self.ok = 0
        self.failures = []

    def run(self):
        prefix = unique(f"user:{self.agent.node_id}pp")
        i = 0
        while not self.stop.is_set():
            key = f"{prefix}:{i}"
            try:
                self.agent.kv.Put(pb.PutRequest(key=key, value=b"p" * 64),
                                  timeout=5.0)
                self.ok += 1
            except grpc.RpcError as e:
                self.failures.append((key, e.code().name, e.details()))
            i += 1
            time.sleep(0.01)


def test_peer_port_garbage_from_a_stranger(healthy):
    """Random bytes, half TLS/HTTP2 prefaces and idle connections on one
    agent's peer port: no agent exits, writes through every agent keep
    succeeding during and after, and the cluster is healthy afterwards."""
    c = healthy
    target = c.agents[0]
    rng = random.Random(1404)
    stop = threading.Event()
    writers = [_Writer(a, stop) for a in c.agents]
    for w in writers:
        w.start()
    held = []
    sent = 0
    try:
        for _ in range(IDLE_CONNS):
            held.append(socket.create_connection(("127.0.0.1", target.peer_port),
                                                 timeout=2.0))
        deadline = time.monotonic() + ATTACK_SECONDS
        i = 0
        while time.monotonic() < deadline:
            for _ in range(NOISY_CONNS // 10):
                try:
                    s = socket.create_connection(
                        ("127.0.0.1", target.peer_port), timeout=2.0)
                    s.sendall(_garbage(i, rng))
                    sent += 1
                    if i % 3 == 0:
                        held.append(s)  # linger after the garbage
                    else:
                        s.close()
                except OSError:
                    pass  # the agent may close on us: that is its right
                i += 1
            time.sleep(0.1)
            assert all(a.alive() for a in c.agents), (
                "an agent exited under peer-port garbage\n" + c.stderr_report())
        during = {w.agent.node_id: w.ok for w in writers}
    finally:
        for s in held:
            s.close()
    # After the stranger has gone: writes keep flowing, cluster healthy.
    time.sleep(2.0)
    stop.set()
    for w in writers:
        w.join(10)
    print(f"\npeer-port garbage: {sent} noisy connections, {IDLE_CONNS} idle; "
          f"writes ok per agent during the attack {during}, in total "
          f"{ {w.agent.node_id: w.ok for w in writers} }")
    for w in writers:
        assert not w.failures, (
            f"writes through {w.agent.node_id} failed under peer-port garbage: "
            f"{len(w.failures)} of {w.ok + len(w.failures)}, first "
            f"{w.failures[:3]}")
        assert during[w.agent.node_id] > 0, (
            f"no write through {w.agent.node_id} completed during the attack")
        assert w.ok > during[w.agent.node_id], (
            f"no write through {w.agent.node_id} completed after the attack")
    assert all(a.alive() for a in c.agents), c.stderr_report()
    c.wait_healthy("the cluster to be healthy after peer-port garbage",
                   timeout=20.0)
    for a in c.agents:
        key = unique("user:after:pp")
        a.put(key, b"after")
        assert a.get(key).value == b"after"
