"""Group members that die: SIGKILLed consumer subprocesses (group_worker.py).

At-least-once (process, then commit): the dead member's partitions move to the
survivor within the session timeout, and every produced record is processed
(duplicates allowed). At-most-once (commit, then process): after a kill and a
restart no record is processed twice (at most the in-flight one per partition
is skipped).
"""

from __future__ import annotations

import time
from collections import Counter

from group_util import (
    Worker,
    committed_only,
    group_name,
    high_watermarks,
    produce_numbered,
    start_group_broker,
    wait_until,
)
import ck_util as ck
from records import topic_name

SESSION_TIMEOUT_MS = 3000
MARGIN_S = 10


def test_killed_member_partitions_move_to_survivor_at_least_once(broker_factory, tmp_path):
    broker = start_group_broker(broker_factory)
    parts = 4
    topic = topic_name("grp-kill-alo")
    group = group_name("kill-alo")
    ck.create_topic(broker, topic, partitions=parts)
    produced = produce_numbered(broker, topic, 800, parts)

    # 10 ms per record: each worker has seconds of work left when one dies.
    w1 = Worker(broker, topic, group, tmp_path / "w1.txt", mode="alo",
                session_timeout_ms=SESSION_TIMEOUT_MS, delay_ms=10)
    w2 = Worker(broker, topic, group, tmp_path / "w2.txt", mode="alo",
                session_timeout_ms=SESSION_TIMEOUT_MS, delay_ms=10)
    try:
        def both_checked():
            w1.check_running()
            w2.check_running()
            broker.check_alive()

        def split():
            a1, a2 = w1.assignment(), w2.assignment()
            return a1 and a2 and sorted(a1 + a2) == list(range(parts))

        wait_until(split, 30, "both workers to share the partitions", check=both_checked)
        wait_until(lambda: len(w1.records()) >= 40, 30, "worker 1 to process records", check=both_checked)
        victim_parts = w1.assignment()
        w1.kill()
        killed_at = time.monotonic()
        done_by_w1 = len(w1.records())
        print(f"killed worker 1 owning {victim_parts} after {done_by_w1} records")

        wait_until(lambda: w2.assignment() == list(range(parts)),
                   SESSION_TIMEOUT_MS / 1000 + MARGIN_S,
                   f"worker 2 to own all partitions after the kill (has {w2.assignment()})",
                   check=lambda: (w2.check_running(), broker.check_alive()))
        print(f"reassigned after {time.monotonic() - killed_at:.1f} s")

        want = set(produced.items())

        def all_processed():
            got = {((p, o), k) for p, o, k in w1.records() + w2.records()}
            return want <= got

        wait_until(all_processed, 60, "every produced record to be processed", check=w2.check_running)
        wait_until(lambda: committed_only(broker, group, topic, range(parts)) == high_watermarks(broker, topic, range(parts)),
                   20, "committed offsets to reach the end of every partition")
    finally:
        w1.close()
        w2.close()

    processed = [(p, o) for p, o, _ in w1.records() + w2.records()]
    dups = sum(c - 1 for c in Counter(processed).values())
    # At-least-once: at most the records w1 processed but had not committed are
    # repeated, i.e. one per partition it owned.
    assert dups <= len(victim_parts), f"{dups} records processed twice, expected at most {len(victim_parts)}"
    # Per partition, each worker processed a dense, increasing run of offsets.
    for w in (w1, w2):
        last: dict[int, int] = {}
        for p, o, _ in w.records():
            assert o > last.get(p, -1), f"{w.out.name}: partition {p} went back from {last[p]} to {o}"
            last[p] = o


def test_at_most_once_never_processes_twice(broker_factory, tmp_path):
    broker = start_group_broker(broker_factory)
    parts = 3
    topic = topic_name("grp-kill-amo")
    group = group_name("kill-amo")
    ck.create_topic(broker, topic, partitions=parts)
    produced = produce_numbered(broker, topic, 600, parts)

    w1 = Worker(broker, topic, group, tmp_path / "amo-1.txt", mode="amo",
                session_timeout_ms=SESSION_TIMEOUT_MS, delay_ms=5)
    try:
        wait_until(lambda: len(w1.records()) >= 150, 40, "worker 1 to process 150 records",
                   check=lambda: (w1.check_running(), broker.check_alive()))
        w1.kill()
    finally:
        w1.close()
    first_run = w1.records()
    assert len(first_run) < len(produced), "worker 1 finished before it was killed"

    w2 = Worker(broker, topic, group, tmp_path / "amo-2.txt", mode="amo",
                session_timeout_ms=SESSION_TIMEOUT_MS, delay_ms=0)
    try:
        ends = high_watermarks(broker, topic, range(parts))
        wait_until(lambda: committed_only(broker, group, topic, range(parts)) == ends, 60,
                   "the restarted worker to commit the end of every partition",
                   check=lambda: (w2.check_running(), broker.check_alive()), interval=0.5)
    finally:
        w2.close()
    second_run = w2.records()

    processed = [(p, o) for p, o, _ in first_run + second_run]
    twice = [po for po, c in Counter(processed).items() if c > 1]
    assert not twice, f"processed more than once (at-most-once violated): {twice[:10]}"
    skipped = set(produced) - set(processed)
    # Only the record committed but not yet processed when the kill came can be
    # skipped: at most one per partition.
    assert len(skipped) <= parts, f"{len(skipped)} records skipped: {sorted(skipped)[:10]}"
    # The restart picked up right where worker 1 had committed.
    for p in range(parts):
        before = [o for q, o, _ in first_run if q == p]
        after = [o for q, o, _ in second_run if q == p]
        if before and after:
            assert after[0] in (before[-1] + 1, before[-1] + 2), (
                f"partition {p}: first run ended at {before[-1]}, restart began at {after[0]}")
