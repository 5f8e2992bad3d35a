"""The nemesis (see nemesis.py): NEMESIS_SECONDS (default 120) of seeded
random faults against three agents in network namespaces while clients
work through every agent, then the checks: a linearizable KV history,
topic logs without gap, duplicate or reordering, a feed that delivered
every change once and in order, replicas with equal digests, and a cluster
that healed after every fault.

The seed is NEMESIS_SEED, else a random one; it is printed at the start and
in the summary and the failure message, so a failing run can be replayed
with NEMESIS_SEED=<seed>. The summary is printed whether the run passes or
fails. Needs root (namespaces); skips otherwise."""
import pytest

import nemesis
import netns


def test_nemesis(tmp_path, capsys):
    reason = netns.unavailable_reason()
    if reason:
        pytest.skip(f"nemesis skipped: {reason}")
    seed = nemesis.seed_from_env()
    with capsys.disabled():
        print(f"\nnemesis: seed {seed}, {nemesis.SECONDS:.0f}s of faults "
              f"(replay with NEMESIS_SEED={seed})", flush=True)
    run = nemesis.Run(seed, nemesis.SECONDS, tmp_path)
    try:
        with capsys.disabled():
            run.execute()
    finally:
        with capsys.disabled():
            print(run.summary(), flush=True)
    failed = run.failed()
    assert not failed, (f"nemesis seed {seed} (replay with NEMESIS_SEED={seed}): "
                        + "; ".join(f"{k}: {v}" for k, v in failed.items())
                        + "\nfaults:\n" + "\n".join(run.lines))
