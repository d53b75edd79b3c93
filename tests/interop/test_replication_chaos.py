"""The replication fault loop (replication_chaos.py), five short seeds: three proxied
nodes, idempotent and transactional producers and a consumer group under kills,
pauses, restarts, network partitions, stalled links, lost unflushed writes and a full
disk; nothing acknowledged is lost, duplicated or reordered, no offset holds two values,
no aborted record is read, consumers skip nothing, replicas agree below the high
watermark, and the cluster converges after healing.

Replication factor 3 with min.insync.replicas 2. Run alone with `pytest -m replication_chaos`. The long runs are reported in
docs/reliability.md."""

from __future__ import annotations

import warnings

import pytest

from replication_chaos import run, summary

pytestmark = [pytest.mark.replication_chaos, pytest.mark.timeout(900)]

RF = 3


@pytest.mark.parametrize("seed", [21, 22, 23, 24, 25])
def test_replicated_partitions_survive_a_seeded_fault_schedule(tmp_path, seed):
    result = run(rounds=4, seed=seed, root=tmp_path, rf=RF)
    print(summary(result))
    for note in result["notes"]:
        warnings.warn(f"seed {seed}: {note}")
    for fatal in result["workload"]["fatal_errors"]:
        warnings.warn(f"seed {seed}: a producer failed fatally: {fatal}")
    checks = result["checks"]
    assert checks["acknowledged"] > 0 and checks["read_final"] > 0 and checks["polled"] > 0, summary(result)
    assert sum(f["installed"] for f in result["faults"].values()) > 0, result["fault_log"]
    assert checks["counts"]["lost"] == 0, checks["examples"]["lost"]
    assert checks["counts"]["duplicated"] == 0, checks["examples"]["duplicated"]
    assert checks["counts"]["reordered"] == 0, checks["examples"]["reordered"]
    anomalies = {k: v for k, v in checks["counts"].items() if v}
    assert not anomalies, {k: checks["examples"][k] for k in anomalies}
    assert not result["violations"], result["violations"]
    if result["rf"] > 1:
        assert checks["replicas_compared"] == result["partitions"], summary(result)


def test_the_loop_reports_the_loss_of_a_lone_replicas_unflushed_tail(tmp_path):
    """The whole loop can fail: with one replica, cutting a killed node's segments above
    their recovery point loses acknowledged records, and the final re-read must show it."""
    result = run(rounds=4, seed=3, root=tmp_path, rf=1, faults=("lose-unsynced",), lossy=True, txn=False)
    print(summary(result))
    counts = result["checks"]["counts"]
    assert result["faults"]["lose-unsynced"]["installed"] == 4, result["fault_log"]
    assert counts["lost"] + counts["unseen_above_hw"] > 0, summary(result)
