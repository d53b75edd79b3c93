"""The metadata quorum's fault loop (metadata_chaos.py), two short seeds: controller and
node kills, pauses and restarts while topics are created; nothing acknowledged is lost
and every node converges. The long runs are reported in docs/reliability.md."""

from __future__ import annotations

import pytest

from metadata_chaos import run

pytestmark = pytest.mark.timeout(400)


@pytest.mark.parametrize("seed", [7, 8])
def test_metadata_survives_a_seeded_fault_schedule(tmp_path, seed):
    result = run(rounds=4, seed=seed, root=tmp_path)
    assert result["acknowledged_topics"] > 0, result
    assert not result["violations"], result
