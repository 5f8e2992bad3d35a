"""A shard's first moments: each shard is founded by one agent, alone in
its group, which then adds the other replicas. A write acknowledged while
the founder is the only voter would exist on one agent and die with it, so
the leader holds writes back until a majority of the shard's replicas are
voters.

The window is caught as it happens: Cluster Status is polled from the
moment the agents start until some agent leads a shard whose group has it
as the only voter; the other two agents are then stopped (SIGSTOP), which
keeps the window open. A put for that shard must fail UNAVAILABLE, naming
the wait, instead of succeeding on one copy; once the others run again it
succeeds and every replica holds it."""
import signal
import socket
import threading
import time

import grpc
import pytest

from conftest import Cluster, api, normalize_replica, pb, user_in_shard, wait_for


def voters(entry):
    return sorted(node for node, tag in map(normalize_replica, entry.replicas)
                  if not tag)


def listening(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def founder_alone(stubs, deadline):
    """(node id, shard) for a shard led by an agent that is its only voter."""
    while time.monotonic() < deadline:
        for nid, stub in stubs.items():
            try:
                st = stub.Status(pb.StatusRequest(), timeout=1.0)
            except grpc.RpcError:
                continue  # not listening yet
            for s in st.shards:
                if s.leader == nid and voters(s) == [nid]:
                    return nid, s.shard
        time.sleep(0.002)
    return None, None


def test_no_write_is_acknowledged_on_the_founder_alone(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("cluster"), fixed_api_ports=True)
    # The agents print their ready line only once the shards are placed:
    # watch them through their known API ports while they start.
    failed = []

    def start():
        try:
            c.start(wait=False)
        except BaseException as e:  # pytest.fail raises Failed
            failed.append(e)

    starter = threading.Thread(target=start)
    starter.start()
    stopped = []
    channels = {}
    try:
        # Channels made only once the ports listen: a refused first connect
        # would put them in reconnect backoff through the whole window.
        for a in c.agents:
            wait_for(lambda: listening(a.api_port), 15, f"{a.node_id}'s API port")
            channels[a.node_id] = grpc.insecure_channel(
                f"127.0.0.1:{a.api_port}", options=[("grpc.enable_http_proxy", 0)])
        stubs = {nid: api.pb_grpc.ClusterStub(ch) for nid, ch in channels.items()}
        kv = {nid: api.pb_grpc.KVStub(ch) for nid, ch in channels.items()}
        nid, shard = founder_alone(stubs, time.monotonic() + 30)
        if nid is None:
            pytest.fail("never saw a shard with its founder as its only voter")
        for other in c.agents:
            if other.node_id != nid:
                other.proc.send_signal(signal.SIGSTOP)
                stopped.append(other)
        # The window may have closed between the Status and the stop.
        entry = next(s for s in stubs[nid].Status(pb.StatusRequest(), timeout=2).shards
                     if s.shard == shard)
        if voters(entry) != [nid]:
            pytest.skip(f"shard {shard} gained a voter before the others "
                        f"stopped: {list(entry.replicas)}")

        key = f"user:{user_in_shard(shard)}:founding"
        with pytest.raises(grpc.RpcError) as e:
            kv[nid].Put(pb.PutRequest(key=key, value=b"one copy"), timeout=1.5)
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE, (
            f"{e.value.code().name}: {e.value.details()}")
        assert "majority of its replicas" in e.value.details(), e.value.details()
        with pytest.raises(grpc.RpcError) as e:
            kv[nid].Get(pb.GetRequest(key=key), timeout=2.0)
        assert e.value.code() == grpc.StatusCode.NOT_FOUND, (
            f"the refused put must not have been applied: "
            f"{e.value.code().name}: {e.value.details()}")

        for other in stopped:
            other.proc.send_signal(signal.SIGCONT)
        stopped = []
        kv[nid].Put(pb.PutRequest(key=key, value=b"three copies"), timeout=10)
        starter.join()
        assert not failed, failed
        c.wait_healthy("the cluster to finish forming")
        for reader in c.agents:
            # SERIALIZABLE: each agent's own replica answers.
            wait_for(lambda: reader.kv.Get(
                pb.GetRequest(key=key, consistency=pb.SERIALIZABLE),
                timeout=5).kv.value == b"three copies", 10,
                f"{reader.node_id}'s replica of shard {shard} to hold the put")
    finally:
        for other in stopped:
            other.proc.send_signal(signal.SIGCONT)
        starter.join()
        for ch in channels.values():
            ch.close()
        problems = c.close()
    assert not problems, problems
