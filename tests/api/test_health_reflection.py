"""Standard services (grpc.health.v1.Health, server reflection) and
Cluster Status on a single agent (DESIGN.md section 3)."""
import os
import shutil
import subprocess
import tempfile

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase)

from conftest import REPO, pb, shard_of

OUR_SERVICES = {"memquorum.v1.KV", "memquorum.v1.PartitionService",
                "memquorum.v1.Watch", "memquorum.v1.Cluster",
                "grpc.health.v1.Health"}


def test_health_stubs_match_repo_proto():
    """The suite uses grpcio-health-checking's stubs for Health; they must
    describe the same API as proto/grpc/health/v1/health.proto."""
    from grpc_tools import protoc
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "health.pb")
        assert protoc.main(["protoc", f"-I{REPO / 'proto'}",
                            f"--descriptor_set_out={out}",
                            "grpc/health/v1/health.proto"]) == 0
        fds = descriptor_pb2.FileDescriptorSet.FromString(open(out, "rb").read())
    ours = fds.file[0]
    theirs = descriptor_pb2.FileDescriptorProto()
    health_pb2.DESCRIPTOR.CopyToProto(theirs)

    def shape(f):
        return (f.package,
                {m.name: [(x.name, x.number, x.type) for x in m.field]
                 for m in f.message_type},
                {s.name: [(m.name, m.input_type, m.output_type,
                           m.server_streaming) for m in s.method]
                 for s in f.service})
    o, t = shape(ours), shape(theirs)
    assert o[0] == t[0]
    # The installed package may be newer (more messages and methods); what
    # the repo's proto declares must be identical there.
    for name, fields in o[1].items():
        assert t[1].get(name) == fields, f"message {name} differs"
    for name, methods in o[2].items():
        assert set(methods) <= set(t[2].get(name, [])), f"service {name} differs"


def test_health_serving(agent):
    r = agent.health.Check(health_pb2.HealthCheckRequest(service=""))
    assert r.status == health_pb2.HealthCheckResponse.SERVING


def test_health_unknown_service_is_not_found(agent):
    with pytest.raises(grpc.RpcError) as ei:
        agent.health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"))
    assert ei.value.code() == grpc.StatusCode.NOT_FOUND, ei.value.code().name


def test_reflection_lists_services(agent):
    db = ProtoReflectionDescriptorDatabase(agent.channel)
    services = set(db.get_services())
    missing = OUR_SERVICES - services
    assert not missing, f"reflection does not list {sorted(missing)}: {sorted(services)}"


def test_reflection_describes_kv(agent):
    db = ProtoReflectionDescriptorDatabase(agent.channel)
    fdp = db.FindFileContainingSymbol("memquorum.v1.KV")
    assert fdp.package == "memquorum.v1"
    kv = next(s for s in fdp.service if s.name == "KV")
    assert {m.name for m in kv.method} == {"Put", "Get", "Delete", "Scan"}
    pool = descriptor_pool.DescriptorPool(db)
    put = pool.FindServiceByName("memquorum.v1.KV").methods_by_name["Put"]
    assert put.input_type.full_name == "memquorum.v1.PutRequest"
    assert "precondition" in put.input_type.fields_by_name
    watch = pool.FindServiceByName("memquorum.v1.Watch").methods_by_name["Watch"]
    assert watch.server_streaming
    # The served descriptor is the repo's API, field for field.
    served = pool.FindMessageTypeByName("memquorum.v1.KeyValue")
    local = pb.KeyValue.DESCRIPTOR
    assert {(f.name, f.number) for f in served.fields} == {
        (f.name, f.number) for f in local.fields}


def test_reflection_unknown_symbol_is_not_found(agent):
    stub = reflection_pb2_grpc.ServerReflectionStub(agent.channel)
    reqs = iter([reflection_pb2.ServerReflectionRequest(
        file_containing_symbol="no.such.Symbol")])
    resps = list(stub.ServerReflectionInfo(reqs, timeout=10))
    assert len(resps) == 1
    assert resps[0].HasField("error_response")
    assert resps[0].error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]


def grpcurl(*args):
    exe = shutil.which("grpcurl")
    if exe is None:
        pytest.skip("grpcurl is not on PATH (scripts/install-deps.sh installs it)")
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=30)


def test_grpcurl_list_and_describe(agent):
    r = grpcurl("-plaintext", agent.address, "list")
    assert r.returncode == 0, r.stderr
    assert OUR_SERVICES <= set(r.stdout.split()), r.stdout
    r = grpcurl("-plaintext", agent.address, "describe", "memquorum.v1.KV")
    assert r.returncode == 0, r.stderr
    for m in ("Put", "Get", "Delete", "Scan"):
        assert f"rpc {m} (" in r.stdout, r.stdout
    r = grpcurl("-plaintext", "-d", '{"key": "user:123:grpcurl", "value": "aGk="}',
                agent.address, "memquorum.v1.KV/Put")
    assert r.returncode == 0, r.stderr
    assert agent.get("user:123:grpcurl").value == b"hi"


# -- Cluster Status ---------------------------------------------------------


def test_cluster_status(fresh_agent):
    a = fresh_agent
    puts = {"user:123:a": b"1", "user:123:b": b"22", "user:123:c": b"333",
            "user:456:a": b"x", "customer-9001": b"y"}
    last_rev = {}
    for k, v in puts.items():
        last_rev[shard_of(k)] = a.put(k, v).revision
    a.delete("user:123:c")
    st = a.status()
    assert st.node_id == a.node_id
    assert st.shards_total == 16
    assert any(m.node_id == a.node_id and m.state == "alive" for m in st.members), (
        f"this agent is not an alive member: {st.members}")
    assert sorted(s.shard for s in st.shards) == list(range(16))
    for s in st.shards:
        assert s.leader == a.node_id, f"shard {s.shard} leader {s.leader!r}"
        assert s.role == "leader", f"shard {s.shard} role {s.role!r}"
        assert a.node_id in s.replicas
        assert s.term >= 1
        assert s.applied_index <= s.commit_index
    keys = {s.shard: s.keys for s in st.shards}
    want = {i: 0 for i in range(16)}
    want.update({2: 2, 5: 1, 7: 1})
    assert keys == want, "keys per shard after 5 puts and 1 delete"
    by = {s.shard: s for s in st.shards}
    assert by[2].bytes > 0 and by[0].bytes >= 0
    assert by[5].revision == last_rev[5]
    assert by[2].revision > last_rev[2], "the delete moved shard 2's revision"


def test_status_digest_follows_contents(fresh_agent):
    a = fresh_agent
    d0 = {s.shard: s.digest for s in a.status().shards}
    a.put("user:123:d", b"v")
    d1 = {s.shard: s.digest for s in a.status().shards}
    assert d1[2] != d0[2], "shard 2 changed but its digest did not"
    assert all(d1[i] == d0[i] for i in range(16) if i != 2)
