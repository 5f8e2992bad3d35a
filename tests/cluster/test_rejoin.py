"""A follower killed with kill -9 comes back empty under a new incarnation,
catches up from a snapshot, and every shard returns to three voters."""
import concurrent.futures
import re
import subprocess
import time

import grpc
import pytest

from conftest import (AGENT_BIN, HEALTHY_TIMEOUT, SHARDS, SNAPSHOT_ENTRIES,
                      divergence, pb, unique, user_in_shard)

PER_SHARD = SNAPSHOT_ENTRIES + 50   # every shard's log compacts at least once


def write_per_shard(agents, tag, per_shard):
    """per_shard puts into every shard, spread over `agents`; returns
    {key: value}."""
    items = {}
    for s in range(SHARDS):
        uid = user_in_shard(s)
        for i in range(per_shard):
            items[f"user:{uid}:{tag}{i:04d}"] = f"{tag}-{s}-{i}".encode()
    keys = sorted(items)

    def put(i):
        k = keys[i]
        agents[i % len(agents)].put(k, items[k])

    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        list(ex.map(put, range(len(keys))))
    return items


def test_killed_follower_rejoins_and_catches_up_by_snapshot(healthy):
    c = healthy
    tag = unique("rj")
    # The agent leading the fewest shards: a follower of most of them.
    leaders = c.leaders()
    counts = {nid: sum(1 for l in leaders.values() if l == nid)
              for nid in c.node_ids}
    victim = min(sorted(counts), key=counts.get)
    before = write_per_shard(c.agents, tag + "a", PER_SHARD)

    c.kill9(victim)
    survivors = c.up()
    # The survivors notice the member is gone.
    deadline = time.monotonic() + 15
    while True:
        seen = {a.node_id: {m.node_id: m.state for m in a.status().members}
                .get(victim) for a in survivors}
        if all(state == "dead" for state in seen.values()):
            break
        if time.monotonic() > deadline:
            pytest.fail(f"15s after kill -9 of {victim}, the survivors' Status "
                        f"shows its member state as {seen}, expected 'dead'")
        time.sleep(0.1)
    # Written while it is gone: it can only learn these from the others.
    during = write_per_shard(survivors, tag + "b", PER_SHARD)

    c.restart(victim)
    c.wait_healthy(f"{victim} to rejoin (new incarnation replacing the old, "
                   f"3 voters in every shard)", timeout=HEALTHY_TIMEOUT)

    # Status from the restarted agent itself: it hosts every shard as a
    # voter and knows every member alive.
    st = c.by_id[victim].status()
    assert {m.node_id: m.state for m in st.members} == {
        n: "alive" for n in c.node_ids}, f"{victim} sees members {st.members}"
    for s in st.shards:
        reps = sorted(s.replicas)
        assert reps == sorted(c.node_ids) and s.role in ("leader", "follower"), (
            f"{victim} Status shard {s.shard}: role {s.role!r}, replicas {reps}")

    # Same contents on every replica: poll until the digests agree.
    deadline = time.monotonic() + 30
    while True:
        views = {a.node_id: {s.shard: s for s in a.status().shards}
                 for a in c.agents}
        diff = [sh for sh in range(SHARDS)
                if len({v[sh].digest for v in views.values()}) != 1
                or len({v[sh].keys for v in views.values()}) != 1]
        if not diff:
            break
        if time.monotonic() > deadline:
            sh = diff[0]
            pytest.fail(f"shards {diff} differ after 30s, e.g. shard {sh}: "
                        + ", ".join(f"{n}: keys={v[sh].keys} digest={v[sh].digest} "
                                    f"applied={v[sh].applied_index}"
                                    for n, v in views.items()))
        time.sleep(0.1)
    for sh in range(SHARDS):
        keys = views[victim][sh].keys
        assert keys >= 2 * PER_SHARD, (
            f"{victim} shard {sh} holds {keys} keys after catching up, "
            f"expected at least {2 * PER_SHARD}")

    # It caught up from snapshots: every shard's log was compacted past
    # what it could have replayed (logged per DESIGN.md's one line per event).
    installed = {int(m.group(1)) for m in re.finditer(
        r"shard (\d+): installed snapshot", c.by_id[victim].stderr())}
    assert installed == set(range(SHARDS)), (
        f"{victim} logged 'shard N: installed snapshot' for shards "
        f"{sorted(installed)}, expected all {SHARDS}: with {2 * PER_SHARD} "
        f"writes per shard and --snapshot-entries {SNAPSHOT_ENTRIES} it cannot "
        f"have caught up from the log alone")

    assert c.by_id[victim].metric("memquorum_snapshots_installed_total") >= SHARDS

    # Its own replica serves the data (SERIALIZABLE reads are local).
    a = c.by_id[victim]
    sample = sorted(before)[::97] + sorted(during)[::97]
    wrong = []
    for k in sample:
        want = before.get(k, during.get(k))
        try:
            got = a.get(k, consistency=pb.SERIALIZABLE).value
        except grpc.RpcError as e:
            got = f"{e.code().name}"
        if got != want:
            wrong.append((k, got, want))
    assert not wrong, f"SERIALIZABLE reads at {victim}: {wrong[:5]}"


MQBENCH_BIN = AGENT_BIN.parent / "mqbench"
LOAD_KEYS = 160_000     # 10,000 per shard: decoding each takes a while


def test_writes_while_snapshots_install_apply_after_them(healthy):
    """A restarted agent decodes the leaders' snapshots off its loop; the
    entries its groups commit meanwhile wait and apply after them. Writes
    go on at full speed through a survivor the whole time; afterwards every
    replica of every shard holds the same contents."""
    c = healthy
    subprocess.run([str(MQBENCH_BIN), "--endpoint", c.agents[0].address,
                    "--op", "put", "--count", str(LOAD_KEYS), "--keys",
                    str(LOAD_KEYS), "--inflight", "64", "--quiet"],
                   check=True, stdout=subprocess.DEVNULL, timeout=300)
    leaders = c.leaders()
    counts = {nid: sum(1 for l in leaders.values() if l == nid)
              for nid in c.node_ids}
    victim = min(sorted(counts), key=counts.get)
    writer = next(a for a in c.agents if a.node_id != victim)

    c.kill9(victim)
    load = subprocess.Popen(
        [str(MQBENCH_BIN), "--endpoint", writer.address, "--op", "put",
         "--keys", "50000", "--inflight", "32", "--duration", "60",
         "--seed", "7", "--quiet"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1)
        c.restart(victim)
        c.wait_healthy(f"{victim} to rejoin while writes go on",
                       timeout=HEALTHY_TIMEOUT)
    finally:
        load.terminate()
        load.wait(30)

    text = c.by_id[victim].stderr()
    installs = [(int(m.group(1)), int(m.group(2))) for m in re.finditer(
        r"shard (\d+): installed snapshot at index \d+ term \d+ \(\d+ bytes, "
        r"decoded in \d+ ms; (\d+) entries committed meanwhile follow\)", text)]
    assert {s for s, _ in installs} == set(range(SHARDS)), (
        f"{victim} installed snapshots of shards {sorted({s for s, _ in installs})}, "
        f"expected all {SHARDS}")
    assert "off the loop" in text, f"{victim} did not decode a snapshot off its loop"
    kept = sum(k for _, k in installs)
    assert kept > 0, (
        f"no entry committed while {victim} decoded its {len(installs)} snapshots: "
        f"the writes did not overlap the installs, nothing was tested")

    problem = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        problem = divergence(c)
        if problem is None:
            break
        time.sleep(0.2)
    assert problem is None, (
        f"{kept} entries were committed while {victim} installed snapshots; "
        f"afterwards: {problem}")
    # mqbench draws keys with repeats: about 1 - 1/e of the space is written.
    total = sum(s.keys for s in c.by_id[victim].status().shards)
    assert total >= LOAD_KEYS // 2, (
        f"{victim} holds {total} keys after catching up, expected most of the "
        f"{LOAD_KEYS} the load drew from")
