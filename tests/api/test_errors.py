"""Every error of DESIGN.md section 3 with a status code and a message a
person can act on: keys, topics, partitions, sizes, limits, memory."""
import grpc
import pytest

from conftest import expect_error, pb, unique

IA = grpc.StatusCode.INVALID_ARGUMENT
RE = grpc.StatusCode.RESOURCE_EXHAUSTED


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field_bytes(number, data):
    """A length-delimited protobuf field, encoded by hand."""
    return varint(number << 3 | 2) + varint(len(data)) + data


# -- keys -------------------------------------------------------------------


def test_empty_key(agent):
    expect_error(IA, agent.put, "", b"v", mentions="key")
    expect_error(IA, agent.get, "", mentions="key")
    expect_error(IA, agent.delete, "", mentions="key")


def test_oversized_key(agent):
    ok = "user:1:" + "k" * (4096 - len("user:1:"))
    assert len(ok.encode()) == 4096
    agent.put(ok, b"v")  # exactly at the limit is allowed
    assert agent.get(ok).value == b"v"
    big = ok + "k"
    expect_error(IA, agent.put, big, b"v", mentions="key")
    expect_error(IA, agent.get, big, mentions="key")
    expect_error(IA, agent.delete, big, mentions="key")


@pytest.mark.parametrize("method", ["Put", "Get", "Delete"])
def test_invalid_utf8_key(agent, method):
    # Python str cannot hold invalid UTF-8, so the request is encoded by hand:
    # field 1 (key) of PutRequest, GetRequest and DeleteRequest.
    req = field_bytes(1, b"user:1:\xff\xfe\xc0")
    if method == "Put":
        req += field_bytes(2, b"value")
    call = agent.raw_unary(f"/memquorum.v1.KV/{method}")
    expect_error(IA, call, req, mentions=("utf", "key"))
    assert agent.put("user:1:after-bad-utf8", b"ok").revision > 0


def test_invalid_utf8_topic_and_entry_key(agent):
    call = agent.raw_unary("/memquorum.v1.PartitionService/Produce")
    bad_topic = field_bytes(1, b"t\xff") + field_bytes(
        3, field_bytes(1, b"user:1:k") + field_bytes(2, b"v"))
    expect_error(IA, call, bad_topic, mentions=("utf", "topic"))
    bad_key = field_bytes(1, b"topic") + field_bytes(
        3, field_bytes(1, b"user:1:\xff") + field_bytes(2, b"v"))
    expect_error(IA, call, bad_key, mentions=("utf", "key"))


@pytest.mark.parametrize("method", ["Put", "Get", "Delete"])
def test_nul_byte_in_key(agent, method):
    # Refused, not cut at the NUL: "user:1:a\0b" must not become "user:1:a".
    agent.put("user:1:a", b"untouched")
    req = field_bytes(1, b"user:1:a\x00b")
    if method == "Put":
        req += field_bytes(2, b"value")
    call = agent.raw_unary(f"/memquorum.v1.KV/{method}")
    expect_error(IA, call, req, mentions=("nul", "key"))
    assert agent.get("user:1:a").value == b"untouched"


def test_nul_byte_in_topic_entry_key_and_prefix(agent):
    produce = agent.raw_unary("/memquorum.v1.PartitionService/Produce")
    expect_error(IA, produce, field_bytes(1, b"t\x00x") + field_bytes(
        3, field_bytes(1, b"user:1:k") + field_bytes(2, b"v")),
        mentions=("nul", "topic"))
    expect_error(IA, produce, field_bytes(1, b"topic") + field_bytes(
        3, field_bytes(1, b"user:1:k\x00") + field_bytes(2, b"v")),
        mentions=("nul", "key"))
    scan = agent.raw_unary("/memquorum.v1.KV/Scan")
    expect_error(IA, scan, field_bytes(1, b"user:\x001"), mentions=("nul", "prefix"))
    # Bytes fields may hold NUL bytes: a value is not a string.
    agent.put("user:1:nul-value", b"a\x00b")
    assert agent.get("user:1:nul-value").value == b"a\x00b"


def test_invalid_utf8_scan_prefix(agent):
    call = agent.raw_unary("/memquorum.v1.KV/Scan")
    expect_error(IA, call, field_bytes(1, b"user:\xff"),
                 mentions=("utf", "prefix"))


# -- topics and partitions --------------------------------------------------


@pytest.mark.parametrize("topic", ["bad topic!", ""])
def test_bad_topic_name(agent, topic):
    expect_error(IA, agent.produce, topic, key="user:1:k", mentions="topic")
    expect_error(IA, agent.read, topic, partition=0, mentions="topic")


def test_overlong_topic_name(agent):
    expect_error(IA, agent.produce, "t" * 10000, key="user:1:k",
                 mentions="topic")


@pytest.mark.parametrize("partition", [16, -2, 1 << 30])
def test_partition_out_of_range(agent, partition):
    t = unique("topic")
    expect_error(IA, agent.produce, t, key="user:1:k", partition=partition,
                 mentions="partition")
    expect_error(IA, agent.read, t, partition=partition, mentions="partition")


def test_produce_partition_minus_one_without_key(agent):
    expect_error(IA, agent.produce, unique("topic"), key="", partition=-1,
                 mentions="key")


def test_produce_without_entry(agent):
    expect_error(IA, agent.partition.Produce,
                 pb.ProduceRequest(topic=unique("topic"), partition=-1),
                 mentions=("entry", "key"))


# -- negative numbers -------------------------------------------------------


def test_negative_ttl(agent):
    expect_error(IA, agent.put, "user:1:neg", b"v", ttl_ms=-5, mentions="ttl")


def test_negative_offset(agent):
    expect_error(IA, agent.read, unique("topic"), partition=0, offset=-1,
                 mentions="offset")


def test_negative_count(agent):
    expect_error(IA, agent.read, unique("topic"), partition=0, count=-1,
                 mentions="count")


def test_negative_scan_limit(agent):
    expect_error(IA, agent.kv.Scan, pb.ScanRequest(prefix="user:", limit=-1),
                 mentions="limit")


def test_watch_bad_arguments(agent):
    def first(req):
        for _ in agent.watch.Watch(req, timeout=10):
            return
    expect_error(IA, first, pb.WatchRequest(topic="bad topic!"), mentions="topic")
    expect_error(IA, first, pb.WatchRequest(prefix="", start_revisions={99: 1}),
                 mentions="shard")
    expect_error(IA, first, pb.WatchRequest(prefix="", start_revisions={-1: 1}),
                 mentions="shard")


# -- sizes and limits -------------------------------------------------------


def test_value_over_limit(make_agent):
    a = make_agent("--max-value-bytes", "1000")
    a.put("user:1:fits", b"x" * 1000)
    expect_error(IA, a.put, "user:1:big", b"x" * 1001, mentions="value")
    expect_error(IA, a.produce, unique("topic"), key="user:1:big",
                 value=b"x" * 1001, mentions="value")
    expect_error(grpc.StatusCode.NOT_FOUND, a.get, "user:1:big")


def test_message_over_grpc_receive_limit(make_agent):
    # The agent insists the largest key plus value fit a request, so the
    # value limit comes down with the request limit.
    a = make_agent("--max-request-bytes", "65536", "--max-value-bytes", "32KiB")
    a.put("user:1:small", b"x" * 1000)
    expect_error(RE, a.put, "user:1:huge", b"x" * 100_000,
                 mentions=("larger", "limit", "max", "size", "65536"))
    # The agent survives and still serves.
    assert a.get("user:1:small").value == b"x" * 1000


def test_memory_budget(make_agent):
    a = make_agent("--memory-budget", "4MiB")
    value = b"m" * 16 * 1024
    written = []
    err = None
    for i in range(1000):  # 16 MiB at most: far beyond a 1 MiB budget
        k = f"user:{i % 50}:mem{i}"
        try:
            a.put(k, value)
        except grpc.RpcError as e:
            err = e
            break
        written.append(k)
    assert err is not None, (
        f"wrote {len(written) * 16} KiB into a 4 MiB budget without an error")
    assert err.code() == RE, f"expected RESOURCE_EXHAUSTED, got {err.code().name}"
    assert "memory" in (err.details() or "").lower(), (
        f"message {err.details()!r} does not say memory is the problem")
    assert written, "the first 16 KiB put already failed in a 4 MiB budget"
    # Reads still work and the agent is alive.
    assert a.get(written[0]).value == value
    assert a.get(written[-1]).value == value
    scan = a.kv.Scan(pb.ScanRequest(prefix="user:0:", keys_only=True))
    assert len(scan.kvs) >= 1
    assert a.status().node_id == a.node_id
    # Topic logs share the budget.
    expect_error(RE, a.produce, unique("topic"), key="user:1:k", value=value,
                 mentions="memory")
    assert a.alive()


def test_smallest_memory_budget_still_stores_data(make_agent):
    """1 MiB is the smallest budget the agent accepts; an agent started with
    it must hold some data, not refuse every write of an empty store."""
    a = make_agent("--memory-budget", "1MiB")
    try:
        a.put("user:1:small", b"x" * 1024)
    except grpc.RpcError as e:
        pytest.fail(f"a 1 KiB put into an empty agent with the smallest accepted "
                    f"budget failed: {e.code().name}: {e.details()}")
    assert a.get("user:1:small").value == b"x" * 1024
