"""KV Scan across shards: byte-wise key order, pagination with start_after,
single-user prefixes, keys_only and the default limit (DESIGN.md section 3)."""
import grpc
import pytest

from conftest import AgentFactory, pb, shard_of

USERS = 60
PER_USER = 5
OTHER_KEYS = ["alpha", "zeta", "Zebra", "\u00fcmlaut", "a\u00e9", "aa", "user",
              "users:1", "customer-9001"]


def user_keys():
    return [f"user:{u}:k{j}" for u in range(USERS) for j in range(PER_USER)]


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """A fresh agent holding exactly the keys of this module."""
    f = AgentFactory(tmp_path_factory.mktemp("scan"))
    a = f()
    keys = user_keys() + OTHER_KEYS
    for k in keys:
        a.put(k, k.encode() + b"-value")
    yield a, keys
    f.close()


def byte_order(keys):
    return sorted(keys, key=lambda k: k.encode("utf-8"))


def scan_all(a, prefix, limit, keys_only=False):
    out, cursor, pages = [], "", 0
    while True:
        r = a.kv.Scan(pb.ScanRequest(prefix=prefix, start_after=cursor,
                                     limit=limit, keys_only=keys_only))
        pages += 1
        assert pages < 1000, "pagination does not terminate"
        assert len(r.kvs) <= limit, f"page of {len(r.kvs)} > limit {limit}"
        if r.more:
            assert len(r.kvs) == limit, (
                f"page of {len(r.kvs)} keys with more=true (limit {limit})")
        out.extend(r.kvs)
        if not r.more:
            return out
        cursor = r.kvs[-1].key


def test_keys_span_many_shards(loaded):
    _, keys = loaded
    assert len({shard_of(k) for k in keys}) >= 14


@pytest.mark.parametrize("prefix", ["", "user:"])
def test_paginated_scan_returns_every_key_once_in_order(loaded, prefix):
    a, keys = loaded
    want = byte_order([k for k in keys if k.startswith(prefix)])
    got = scan_all(a, prefix, 7)
    got_keys = [kv.key for kv in got]
    assert len(got_keys) == len(set(got_keys)), "a key was returned twice"
    assert set(got_keys) == set(want), (
        f"missing {sorted(set(want) - set(got_keys))[:5]}, "
        f"extra {sorted(set(got_keys) - set(want))[:5]}")
    assert got_keys == want, "keys are not in byte-wise order"
    for kv in got:
        assert kv.value == kv.key.encode() + b"-value"
        assert kv.shard == shard_of(kv.key)
        assert kv.version == 1 and kv.mod_revision > 0


def test_single_user_prefix(loaded):
    a, _ = loaded
    r = a.kv.Scan(pb.ScanRequest(prefix="user:42:"))
    assert [kv.key for kv in r.kvs] == [f"user:42:k{j}" for j in range(PER_USER)]
    assert not r.more
    assert {kv.shard for kv in r.kvs} == {shard_of("user:42:")}


def test_prefix_spanning_users(loaded):
    a, keys = loaded
    want = byte_order([k for k in keys if k.startswith("user:4")])
    got = [kv.key for kv in scan_all(a, "user:4", 3)]
    assert got == want  # user:4:, user:40: .. user:49: in byte order


def test_start_after_a_key_that_does_not_exist(loaded):
    a, keys = loaded
    cursor = "user:10:k2x"
    want = [k for k in byte_order(keys) if k.encode() > cursor.encode()
            and k.startswith("user:")][:5]
    r = a.kv.Scan(pb.ScanRequest(prefix="user:", start_after=cursor, limit=5))
    assert [kv.key for kv in r.kvs] == want
    assert r.more


def test_keys_only(loaded):
    a, _ = loaded
    r = a.kv.Scan(pb.ScanRequest(prefix="user:7:", keys_only=True))
    assert [kv.key for kv in r.kvs] == [f"user:7:k{j}" for j in range(PER_USER)]
    assert all(kv.value == b"" for kv in r.kvs), "keys_only must drop values"
    assert all(kv.version == 1 for kv in r.kvs), "metadata is still returned"


def test_default_limit_is_100(loaded):
    a, keys = loaded
    r = a.kv.Scan(pb.ScanRequest(prefix=""))
    assert len(r.kvs) == 100
    assert r.more
    assert [kv.key for kv in r.kvs] == byte_order(keys)[:100]


def test_exact_limit_at_end_reports_no_more(loaded):
    a, _ = loaded
    r = a.kv.Scan(pb.ScanRequest(prefix="user:42:", limit=PER_USER))
    assert len(r.kvs) == PER_USER
    assert not r.more, "more=true although no key follows"


def test_prefix_with_no_keys(loaded):
    a, _ = loaded
    r = a.kv.Scan(pb.ScanRequest(prefix="nothing-here:"))
    assert list(r.kvs) == [] and not r.more


def test_scan_sees_deletes(loaded):
    a, _ = loaded
    a.put("user:999:tmp1", b"x")
    a.put("user:999:tmp2", b"x")
    a.delete("user:999:tmp1")
    r = a.kv.Scan(pb.ScanRequest(prefix="user:999:"))
    assert [kv.key for kv in r.kvs] == ["user:999:tmp2"]
    a.delete("user:999:tmp2")
