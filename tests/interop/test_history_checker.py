"""The replication fault loop's checker (history_checker.py) on synthetic histories: a
clean one reports nothing, and each injected defect makes exactly its own check fire.
The replica comparison also runs on real segment files (RecordBatch v2 with CRC-32C).
No broker involved."""

from __future__ import annotations

import copy
import struct

import pytest

import kafka_wire
from history_checker import CATEGORIES, check, read_batches

PARTITIONS = (0, 1, 2)


def clean_history() -> dict:
    """Two idempotent producers and a transactional one over three partitions; the log
    holds every acknowledged record once, in order, plus an aborted transaction, the
    transactions' markers, and an indeterminate send that did get written. Consumers
    read along, one with a rebalance after which it reads some records again."""
    sends, txns = [], {}
    log = {p: [] for p in PARTITIONS}  # [offset, value or None for a marker, aborted]

    def write(partition, value, aborted=False):
        offset = len(log[partition])
        log[partition].append([offset, value, aborted])
        return offset

    for seq in range(12):
        for producer in ("p0", "p1"):
            partition = (seq + (producer == "p1")) % 3
            value = f"{producer}-{seq}"
            offset = write(partition, value)
            sends.append({"value": value, "producer": producer, "seq": seq, "partition": partition,
                          "status": "ok", "offset": offset, "txn": None})
    for txn, outcome in (("t0-0", "committed"), ("t0-1", "aborted"), ("t0-2", "unknown")):
        txns[txn] = outcome
        for i in range(2):
            seq = int(txn[-1]) * 2 + i
            value = f"t0-{seq}"
            offset = write(i, value, aborted=outcome == "aborted")
            sends.append({"value": value, "producer": "t0", "seq": seq, "partition": i,
                          "status": "ok", "offset": offset, "txn": txn})
        for i in range(2):
            write(i, None)  # the transaction's marker
    # Timed out, written after all (allowed); failed for sure, never written.
    offset = write(2, "p1-12")
    sends.append({"value": "p1-12", "producer": "p1", "seq": 12, "partition": 2, "status": "indeterminate",
                  "offset": None, "txn": None})
    sends.append({"value": "p1-13", "producer": "p1", "seq": 13, "partition": 2, "status": "failed",
                  "offset": None, "txn": None})
    sends.append({"value": "p0-12", "producer": "p0", "seq": 12, "partition": 0, "status": "indeterminate",
                  "offset": None, "txn": None})

    committed = {p: [[o, v] for o, v, aborted in rows if v is not None and not aborted] for p, rows in log.items()}
    uncommitted = {p: [[o, v] for o, v, _ in rows if v is not None] for p, rows in log.items()}
    polls = []
    for p in (0, 1):
        polls += [{"consumer": "c0", "partition": p, "offset": o, "value": v} for o, v in committed[p]]
    polls.append({"consumer": "c0", "rebalance": "assign"})
    polls += [{"consumer": "c0", "partition": 1, "offset": o, "value": v} for o, v in committed[1][-3:]]
    polls += [{"consumer": "c1", "partition": 2, "offset": o, "value": v} for o, v in committed[2]]
    replicas = {
        p: {node: [[o, 0, 1000 + 7 * o + p, True] for o, _, _ in rows] for node in (1, 2, 3)}
        for p, rows in log.items()
    }
    return {
        "sends": sends,
        "txns": txns,
        "polls": polls,
        "final": {
            "high_watermarks": {p: len(rows) for p, rows in log.items()},
            "read_committed": committed,
            "read_uncommitted": uncommitted,
        },
        "replicas": replicas,
    }


def assert_only(result: dict, expected: dict[str, int]) -> None:
    counts = result["counts"]
    assert set(counts) == set(CATEGORIES)
    wanted = {c: expected.get(c, 0) for c in CATEGORIES}
    assert counts == wanted, result["examples"]
    for category, n in expected.items():
        assert result["examples"][category], category


def send(history, value):
    return next(s for s in history["sends"] if s["value"] == value)


def both_reads(history):
    final = history["final"]
    return final["read_committed"], final["read_uncommitted"]


def test_a_clean_history_reports_nothing():
    history = clean_history()
    result = check(history)
    assert_only(result, {})
    assert result["acknowledged"] == 26  # 24 idempotent + the committed transaction's 2
    assert result["polled"] > 0 and result["read_final"] > 0


def test_a_clean_history_survives_json():
    import json

    assert_only(check(json.loads(json.dumps(clean_history()))), {})


def test_a_lost_acknowledged_record():
    history = clean_history()
    lost = send(history, "p0-4")
    for reads in both_reads(history):
        reads[lost["partition"]] = [r for r in reads[lost["partition"]] if r[1] != "p0-4"]
    assert_only(check(history), {"lost": 1})


def test_an_acknowledged_record_above_the_final_high_watermark():
    history = clean_history()
    last = max((s for s in history["sends"] if s["partition"] == 2 and s["status"] == "ok"), key=lambda s: s["offset"])
    for reads in both_reads(history):
        reads[2] = [r for r in reads[2] if r[0] < last["offset"]]
    history["final"]["high_watermarks"][2] = last["offset"]
    history["replicas"][2] = {n: [b for b in bs if b[0] < last["offset"]] for n, bs in history["replicas"][2].items()}
    assert_only(check(history), {"unseen_above_hw": 1})


def test_a_duplicated_value():
    history = clean_history()
    hw = history["final"]["high_watermarks"]
    dup = send(history, "p1-5")
    p = dup["partition"]
    for reads in both_reads(history):
        reads[p].append([hw[p], "p1-5"])
    hw[p] += 1
    assert_only(check(history), {"duplicated": 1})


def test_two_values_at_one_offset():
    history = clean_history()
    poll = next(p for p in history["polls"] if p.get("consumer") == "c1")
    poll["value"] = "p0-12"  # an indeterminate send, read where another record is
    assert_only(check(history), {"inconsistent_offsets": 1})


def test_a_reordering():
    history = clean_history()
    a, b = send(history, "p0-3"), send(history, "p0-6")
    assert a["partition"] == b["partition"]
    a["offset"], b["offset"] = b["offset"], a["offset"]
    for reads in both_reads(history):
        for row in reads[a["partition"]]:
            row[1] = {"p0-3": "p0-6", "p0-6": "p0-3"}.get(row[1], row[1])
    for poll in history["polls"]:
        if poll.get("value") in ("p0-3", "p0-6"):
            poll["value"] = {"p0-3": "p0-6", "p0-6": "p0-3"}[poll["value"]]
    assert_only(check(history), {"reordered": 1})


def test_an_aborted_read():
    history = clean_history()
    aborted = next(s for s in history["sends"] if s["txn"] == "t0-1")
    polls = history["polls"]
    # c0 reads the aborted record in its place, between its neighbours.
    index = next(
        i for i, p in enumerate(polls)
        if p.get("partition") == aborted["partition"] and p["offset"] > aborted["offset"]
    )
    polls.insert(index, {"consumer": "c0", "partition": aborted["partition"], "offset": aborted["offset"],
                         "value": aborted["value"]})
    assert_only(check(history), {"aborted_reads": 1})


def test_a_failed_send_that_was_read():
    history = clean_history()
    hw = history["final"]["high_watermarks"]
    history["final"]["read_uncommitted"][2].append([hw[2], "p1-13"])
    hw[2] += 1
    assert_only(check(history), {"failed_reads": 1})


def test_a_phantom_read():
    history = clean_history()
    hw = history["final"]["high_watermarks"]
    for reads in both_reads(history):
        reads[1].append([hw[1], "nobody-1"])
    hw[1] += 1
    assert_only(check(history), {"phantom_reads": 2})  # seen by both final readers


def test_an_acknowledgement_at_the_wrong_offset():
    history = clean_history()
    send(history, "p1-7")["offset"] += 1
    assert_only(check(history), {"ack_offset_mismatch": 1})


def test_an_acknowledgement_without_an_offset_is_checked_by_partition():
    history = clean_history()
    send(history, "p0-4")["offset"] = None
    assert_only(check(history), {})
    moved = send(history, "p0-5")
    moved["offset"] = None
    moved["partition"] = (moved["partition"] + 1) % 3
    assert_only(check(history), {"ack_offset_mismatch": 1})


def test_a_lost_record_acknowledged_without_an_offset():
    history = clean_history()
    lost = send(history, "p0-4")
    lost["offset"] = None
    for reads in both_reads(history):
        reads[lost["partition"]] = [r for r in reads[lost["partition"]] if r[1] != "p0-4"]
    assert_only(check(history), {"lost": 1})


def test_a_committed_record_hidden_from_read_committed():
    history = clean_history()
    committed = history["final"]["read_committed"]
    committed[0] = [r for r in committed[0] if r[1] != "t0-0"]
    assert_only(check(history), {"invisible_committed": 1})


def test_a_poll_that_skips_a_record():
    history = clean_history()
    index = next(i for i, p in enumerate(history["polls"]) if p.get("consumer") == "c1" and p["offset"] == 3)
    del history["polls"][index]
    assert_only(check(history), {"skipped_polls": 1})


def test_a_poll_that_goes_back_without_a_rebalance():
    history = clean_history()
    polls = history["polls"]
    index = next(i for i, p in enumerate(polls) if p.get("consumer") == "c1" and p["offset"] == 5)
    polls.insert(index + 1, dict(polls[index - 2]))
    assert_only(check(history), {"nonmonotonic_polls": 1})


def test_a_replica_crc_mismatch():
    history = clean_history()
    history["replicas"][1][2][3][2] ^= 0xFF
    result = check(history)
    assert_only(result, {"replica_mismatches": 1})
    assert result["examples"]["replica_mismatches"][0]["batch_index"] == 3


def test_a_replica_missing_a_batch_below_the_high_watermark():
    history = clean_history()
    del history["replicas"][0][3][5]
    assert_only(check(history), {"replica_mismatches": 1})


def test_replicas_may_differ_above_the_high_watermark():
    history = clean_history()
    hw = history["final"]["high_watermarks"][0]
    history["replicas"][0][2].append([hw, 0, 42, True])
    assert_only(check(history), {})


def test_a_corrupt_batch():
    history = clean_history()
    history["replicas"][2][3][1][3] = False
    assert_only(check(history), {"corrupt_batches": 1})


# Real segment files.


def batch_at(base_offset: int, values: list[bytes]) -> bytes:
    batch = bytearray(kafka_wire.record_batch([(None, v) for v in values], base_timestamp=1_700_000_000_000))
    struct.pack_into(">q", batch, 0, base_offset)  # not covered by the CRC
    struct.pack_into(">i", batch, 12, 5)  # partitionLeaderEpoch, not covered either
    return bytes(batch)


def write_replica(directory, segments: dict[int, list[bytes]]) -> None:
    directory.mkdir(parents=True)
    for base, batches in segments.items():
        (directory / f"{base:020d}.log").write_bytes(b"".join(batches))


def test_segment_files_are_parsed_batch_by_batch(tmp_path):
    first = [batch_at(0, [b"a", b"b"]), batch_at(2, [b"c"])]
    second = [batch_at(3, [b"d", b"e", b"f"])]
    write_replica(tmp_path / "r", {0: first, 3: second})
    batches = read_batches(tmp_path / "r")
    assert [(b[0], b[1]) for b in batches] == [(0, 1), (2, 0), (3, 2)]
    assert all(b[3] for b in batches)
    # A torn tail (a batch cut short) and zero padding end the segment.
    with open(tmp_path / "r" / f"{3:020d}.log", "ab") as f:
        f.write(batch_at(6, [b"g"])[:-3])
    with open(tmp_path / "r" / f"{0:020d}.log", "ab") as f:
        f.write(b"\0" * 64)
    assert [b[0] for b in read_batches(tmp_path / "r")] == [0, 2, 3]


def test_a_flipped_byte_in_a_segment_is_a_corrupt_batch(tmp_path):
    data = bytearray(batch_at(0, [b"hello"]) + batch_at(1, [b"world"]))
    data[len(data) - 3] ^= 0x01
    write_replica(tmp_path / "r", {0: [bytes(data)]})
    assert [b[3] for b in read_batches(tmp_path / "r")] == [True, False]


@pytest.mark.parametrize("diverge", [False, True])
def test_replicas_compared_from_segment_files(tmp_path, diverge):
    common = [batch_at(0, [b"a"]), batch_at(1, [b"b", b"c"])]
    tail = batch_at(3, [b"other"] if diverge else [b"d"])
    write_replica(tmp_path / "n1", {0: common + [batch_at(3, [b"d"])]})
    write_replica(tmp_path / "n2", {0: common, 3: [tail]})  # rolled at 3: same batches
    history = copy.deepcopy(clean_history())
    history["replicas"] = {0: {1: read_batches(tmp_path / "n1"), 2: read_batches(tmp_path / "n2")}}
    history["final"]["high_watermarks"][0] = 4
    result = check(history)
    assert result["counts"]["replica_mismatches"] == int(diverge), result["examples"]
    assert result["counts"]["corrupt_batches"] == 0
