"""Hostile bytes: every method gets malformed protobuf and must answer with
a clean error, never crash, never corrupt a shard (DESIGN.md section 3).
Random payloads come from a seeded PRNG; the seed is printed, and
MQ_GARBAGE_SEED reproduces a run."""
import os
import random

import grpc
import pytest

from conftest import pb

SEED = int(os.environ.get("MQ_GARBAGE_SEED", random.SystemRandom().randrange(1 << 32)))

UNARY = [
    "/memquorum.v1.KV/Put",
    "/memquorum.v1.KV/Get",
    "/memquorum.v1.KV/Delete",
    "/memquorum.v1.KV/Scan",
    "/memquorum.v1.PartitionService/Produce",
    "/memquorum.v1.PartitionService/Read",
    "/memquorum.v1.Cluster/Status",
    "/grpc.health.v1.Health/Check",
]
STREAM = ["/memquorum.v1.Watch/Watch"]

# Payloads no protobuf parser can accept.
MALFORMED = {
    "wire type 7": b"\x0f\x01\x02\x03",
    "wire type 6": b"\x0e",
    "truncated length": b"\x0a\x64abc",
    "length past end": b"\x12\xff\xff\xff\xff\x0fxyz",
    "varint of 11 bytes": b"\x08" + b"\xff" * 10 + b"\x01",
    "truncated varint": b"\x08\xff\xff",
    "truncated fixed64": b"\x09\x01\x02",
    "truncated fixed32": b"\x0d\x01",
    "unterminated group": b"\x0b\x08\x01",
    "stray end group": b"\x0c",
}

# What a random payload may get: it might by chance decode as a valid
# message, so anything orderly is acceptable, but never an internal error.
CLEAN = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT,
         grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION,
         grpc.StatusCode.OUT_OF_RANGE, grpc.StatusCode.RESOURCE_EXHAUSTED}


def call(agent, method, payload, timeout=5):
    """Sends raw bytes; returns the status code and message."""
    try:
        if method in STREAM:
            it = agent.raw_stream(method)(payload, timeout=min(timeout, 1.5))
            for _ in it:  # a valid-by-chance watch just streams: stop there
                it.cancel()
                return grpc.StatusCode.OK, ""
            return grpc.StatusCode.OK, ""
        agent.raw_unary(method)(payload, timeout=timeout)
        return grpc.StatusCode.OK, ""
    except grpc.RpcError as e:
        if e.code() == grpc.StatusCode.CANCELLED and method in STREAM:
            return grpc.StatusCode.OK, ""
        if e.code() == grpc.StatusCode.DEADLINE_EXCEEDED and method in STREAM:
            return grpc.StatusCode.OK, ""  # a valid watch with no events
        return e.code(), e.details() or ""


def still_serving(agent, tag):
    k = f"user:7:after-garbage-{tag}"
    agent.put(k, tag.encode())
    assert agent.get(k).value == tag.encode(), "shard state after garbage"


@pytest.mark.parametrize("method", UNARY + STREAM)
@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_protobuf_is_invalid_argument(agent, method, name):
    code, details = call(agent, method, MALFORMED[name])
    assert agent.alive(), f"agent died on {name} sent to {method}"
    assert code == grpc.StatusCode.INVALID_ARGUMENT, (
        f"{name} to {method}: expected INVALID_ARGUMENT, got {code.name} {details!r}")
    assert details.strip(), "INVALID_ARGUMENT without a message"


@pytest.mark.parametrize("method", UNARY + STREAM)
def test_random_bytes(agent, method):
    print(f"garbage seed {SEED} (MQ_GARBAGE_SEED={SEED} reproduces)")
    rng = random.Random(f"{SEED}/{method}")
    for i in range(40):
        payload = bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 300)))
        code, details = call(agent, method, payload)
        assert agent.alive(), (
            f"agent died on random payload {i} to {method} (seed {SEED}): "
            f"{payload.hex()}")
        assert code in CLEAN, (
            f"payload {i} to {method} (seed {SEED}) got {code.name} "
            f"{details!r}: {payload.hex()}")
    still_serving(agent, method.rsplit("/", 1)[1])


def test_huge_declared_lengths(agent):
    # A length prefix claiming 2 GiB must not make the agent allocate it.
    payload = b"\x0a\xff\xff\xff\xff\x07" + b"a" * 64
    for method in UNARY:
        code, _ = call(agent, method, payload)
        assert code == grpc.StatusCode.INVALID_ARGUMENT, (method, code.name)
    still_serving(agent, "huge")


def test_empty_payload_is_an_empty_message(agent):
    # Zero bytes is a valid empty message: a put without a key is rejected
    # for the key, not for the encoding; Status and Health just answer.
    code, details = call(agent, "/memquorum.v1.KV/Put", b"")
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "key" in details.lower()
    code, _ = call(agent, "/memquorum.v1.Cluster/Status", b"")
    assert code == grpc.StatusCode.OK
    code, _ = call(agent, "/grpc.health.v1.Health/Check", b"")
    assert code == grpc.StatusCode.OK


@pytest.mark.parametrize("method", [
    "/memquorum.v1.KV/NoSuchMethod",
    "/memquorum.v1.Nope/Put",
    "/no.such.Service/Call",
    "/grpc.health.v1.Health/Nope",
])
def test_unknown_method_is_unimplemented(agent, method):
    code, _ = call(agent, method, pb.GetRequest(key="user:1:k").SerializeToString())
    assert code == grpc.StatusCode.UNIMPLEMENTED, code.name
    still_serving(agent, "unknown")


def test_shards_intact_after_garbage(agent):
    """After all the garbage above, every shard still answers and Status
    shows no shard without a leader."""
    st = agent.status()
    assert len(st.shards) == 16
    assert all(s.leader == agent.node_id for s in st.shards)
    for u in range(40):
        k = f"user:{u}:final"
        agent.put(k, b"x")
    keys = agent.kv.Scan(pb.ScanRequest(prefix="user:", limit=1000))
    assert {f"user:{u}:final" for u in range(40)} <= {kv.key for kv in keys.kvs}
