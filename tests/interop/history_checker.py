"""The history check of the replication fault loop (replication_chaos.py), after the
Jepsen queue checker: `check(history)` is a pure function of what the clients recorded
and what the final re-read and the replicas' segment files hold; it returns counts and
a few examples of each anomaly. `read_batches(partition_dir)` parses a replica's segment
files for the replica comparison.

The history (plain lists and dicts, so it can be dumped as JSON and checked again):

    {
      "sends": [{"value": "p0-17", "producer": "p0", "seq": 17, "partition": 2,
                 "status": "ok" | "failed" | "indeterminate",
                 "offset": 123 | None,            # from the delivery report when ok
                 "txn": None | "t0-5"}],          # the transaction it was sent in
      "txns": {"t0-5": "committed" | "aborted" | "unknown"},
      "polls": [{"consumer": "c0", "partition": 1, "offset": 5, "value": "p0-3"},
                {"consumer": "c0", "rebalance": "assign"}, ...],   # per consumer in order
      "final": {"high_watermarks": {partition: hw},
                "read_committed": {partition: [[offset, value], ...]},
                "read_uncommitted": {partition: [[offset, value], ...]}},
      "replicas": {partition: {node_id: [[base_offset, last_offset_delta, crc, crc_ok], ...]}},
    }

A send is acknowledged when its delivery report succeeded and, in a transaction, the
transaction committed. `failed` is a definite failure (the record was never accepted);
a timeout or anything else that may have been written is `indeterminate` and is not
checked either way. Consumer polls are read_committed.

Anomalies (counts; each should be zero):

- lost: acknowledged, below the final high watermark, absent from the final re-read;
- unseen_above_hw: acknowledged at an offset at or above the final high watermark and
  absent (the high watermark went below an acknowledged record);
- invisible_committed: acknowledged and committed, in the read_uncommitted re-read but
  not in the read_committed one;
- ack_offset_mismatch: read at another partition or offset than its delivery report said;
- duplicated: one value at two (partition, offset)s, across all reads;
- inconsistent_offsets: two values at one (partition, offset), across all reads;
- reordered: a producer's acknowledged values in one partition not in increasing
  sequence order in the log (counted per adjacent inversion);
- nonmonotonic_polls / skipped_polls: one consumer reading a partition at an offset not
  above its previous one, or jumping over a record the final read_committed re-read has,
  between two rebalances of that consumer;
- aborted_reads: a value of an aborted transaction read by a read_committed reader;
- failed_reads (G1a): a definitely failed send that was read;
- phantom_reads: a value read that nobody sent;
- replica_mismatches: partitions whose replicas differ, batch by batch (base offset,
  last offset delta, CRC), below the high watermark;
- corrupt_batches: a batch whose stored CRC does not match its bytes.
"""

from __future__ import annotations

import bisect
import struct
from collections import defaultdict
from pathlib import Path

import crc32c

EXAMPLES = 5
CATEGORIES = (
    "lost",
    "unseen_above_hw",
    "invisible_committed",
    "ack_offset_mismatch",
    "duplicated",
    "inconsistent_offsets",
    "reordered",
    "nonmonotonic_polls",
    "skipped_polls",
    "aborted_reads",
    "failed_reads",
    "phantom_reads",
    "replica_mismatches",
    "corrupt_batches",
)

# RecordBatch v2 header: baseOffset i64, batchLength i32, partitionLeaderEpoch i32,
# magic i8, crc u32, attributes i16, lastOffsetDelta i32, ... (big-endian). The CRC-32C
# covers everything from attributes to the end of the batch.
BATCH_HEAD = struct.Struct(">qiibIhi")
CRC_FROM = 21
LOG_OVERHEAD = 12  # baseOffset + batchLength
MIN_BATCH_LENGTH = 49  # a batch without records, counted from the leader epoch on


class _Report:
    def __init__(self):
        self.counts = {c: 0 for c in CATEGORIES}
        self.examples: dict[str, list] = {c: [] for c in CATEGORIES}

    def add(self, category: str, example, count: int = 1) -> None:
        self.counts[category] += count
        if len(self.examples[category]) < EXAMPLES:
            self.examples[category].append(example)


def _by_partition(table: dict) -> dict[int, list]:
    """JSON turns partition keys into strings; the checker works with ints."""
    return {int(p): v for p, v in (table or {}).items()}


def check(history: dict) -> dict:
    """Counts and examples of every anomaly in `history` (see the module doc)."""
    report = _Report()
    sends = history.get("sends", [])
    txns = history.get("txns", {})
    final = history.get("final", {})
    hws = _by_partition(final.get("high_watermarks"))
    committed_read = _by_partition(final.get("read_committed"))
    uncommitted_read = _by_partition(final.get("read_uncommitted"))
    polls = history.get("polls", [])

    acked = [s for s in sends if _acknowledged(s, txns)]
    aborted = {s["value"] for s in sends if s.get("txn") is not None and txns.get(s["txn"]) == "aborted"}
    final_at = _locations(_index(committed_read), _index(uncommitted_read))
    committed_values = {v for rows in committed_read.values() for _, v in rows}

    _check_acknowledged(report, acked, final_at, committed_values, hws)
    _check_reads(report, sends, aborted, committed_read, uncommitted_read, polls)
    _check_order(report, acked, final_at)
    _check_polls(report, polls, committed_read)
    _check_replicas(report, _by_partition(history.get("replicas")), hws)
    return {
        "counts": report.counts,
        "examples": report.examples,
        "acknowledged": len(acked),
        "read_final": sum(len(r) for r in committed_read.values()),
        "polled": sum(1 for p in polls if "offset" in p),
        # Partitions with two or more replicas on disk: the replica check had work.
        "replicas_compared": sum(1 for by_node in _by_partition(history.get("replicas")).values() if len(by_node) > 1),
    }


def _acknowledged(send: dict, txns: dict) -> bool:
    if send.get("status") != "ok":
        return False
    return send.get("txn") is None or txns.get(send["txn"]) == "committed"


def _index(reads: dict[int, list]) -> dict[str, set]:
    """value → {(partition, offset)} of a set of reads."""
    at = defaultdict(set)
    for partition, rows in reads.items():
        for offset, value in rows:
            at[value].add((partition, offset))
    return at


def _locations(*indexes: dict[str, set]) -> dict[str, set]:
    merged = defaultdict(set)
    for index in indexes:
        for value, places in index.items():
            merged[value] |= places
    return merged


def _check_acknowledged(report, acked, final_at, committed_values, hws) -> None:
    for send in acked:
        value, partition, offset = send["value"], send["partition"], send["offset"]
        places = final_at.get(value)
        if not places:
            hw = hws.get(partition)
            # No offset known: counted as lost, the stricter reading.
            below = hw is not None and (offset is None or offset < hw)
            category = "lost" if below else "unseen_above_hw"
            report.add(category, {"value": value, "partition": partition, "offset": offset, "hw": hw})
            continue
        if offset is None:
            # librdkafka acknowledges without an offset the records of a request that
            # timed out once a later acknowledgement shows they were written: only the
            # partition can be checked.
            if all(p != partition for p, _ in places):
                report.add("ack_offset_mismatch", {"value": value, "acked": (partition, offset), "read": sorted(places)})
        elif (partition, offset) not in places:
            report.add("ack_offset_mismatch", {"value": value, "acked": (partition, offset), "read": sorted(places)})
        if value not in committed_values:
            report.add("invisible_committed", {"value": value, "partition": partition, "offset": offset})


def _all_reads(committed_read, uncommitted_read, polls):
    """(source, isolation, partition, offset, value) of every record read."""
    for partition, rows in committed_read.items():
        for offset, value in rows:
            yield "final", "read_committed", partition, offset, value
    for partition, rows in uncommitted_read.items():
        for offset, value in rows:
            yield "final", "read_uncommitted", partition, offset, value
    for poll in polls:
        if "offset" in poll:
            isolation = poll.get("isolation", "read_committed")
            yield poll["consumer"], isolation, poll["partition"], poll["offset"], poll["value"]


def _check_reads(report, sends, aborted, committed_read, uncommitted_read, polls) -> None:
    sent = {s["value"]: s for s in sends}
    values_at = defaultdict(set)
    places_of = defaultdict(set)
    for source, isolation, partition, offset, value in _all_reads(committed_read, uncommitted_read, polls):
        values_at[partition, offset].add(value)
        places_of[value].add((partition, offset))
        send = sent.get(value)
        where = {"value": value, "partition": partition, "offset": offset, "reader": source}
        if send is None:
            report.add("phantom_reads", where)
        elif send.get("status") == "failed":
            report.add("failed_reads", where)
        if isolation == "read_committed" and value in aborted:
            report.add("aborted_reads", where)
    for (partition, offset), values in sorted(values_at.items()):
        if len(values) > 1:
            report.add("inconsistent_offsets", {"partition": partition, "offset": offset, "values": sorted(values)})
    for value, places in sorted(places_of.items()):
        if len(places) > 1:
            report.add("duplicated", {"value": value, "at": sorted(places)})


def _check_order(report, acked, final_at) -> None:
    """A producer's acknowledged records of one partition appear in the log in the
    order it sent them (idempotence keeps the order across retries)."""
    by_stream = defaultdict(list)
    for send in acked:
        places = final_at.get(send["value"], set())
        offsets = [o for p, o in places if p == send["partition"]]
        if offsets:
            by_stream[send["producer"], send["partition"]].append((min(offsets), send["seq"], send["value"]))
    for (producer, partition), rows in sorted(by_stream.items()):
        rows.sort()
        for before, after in zip(rows, rows[1:]):
            if after[1] <= before[1]:
                report.add(
                    "reordered",
                    {"producer": producer, "partition": partition, "log_order": [before[2], after[2]],
                     "offsets": [before[0], after[0]]},
                )


def _check_polls(report, polls, committed_read) -> None:
    """Within one consumer's run between rebalances, each partition's offsets rise and
    skip no record that read_committed readers see."""
    visible = {p: sorted(o for o, _ in rows) for p, rows in committed_read.items()}
    last: dict[tuple[str, int], int] = {}
    for poll in polls:
        consumer = poll["consumer"]
        if "rebalance" in poll:
            for key in [k for k in last if k[0] == consumer]:
                del last[key]
            continue
        key = (consumer, poll["partition"])
        offset = poll["offset"]
        previous = last.get(key)
        # The highest offset read so far: after a step back, reading on is not a skip.
        last[key] = offset if previous is None else max(previous, offset)
        if previous is None:
            continue
        where = {"consumer": consumer, "partition": poll["partition"], "previous": previous, "offset": offset}
        if offset <= previous:
            report.add("nonmonotonic_polls", where)
            continue
        skipped = _between(visible.get(poll["partition"], []), previous, offset)
        if skipped:
            report.add("skipped_polls", {**where, "skipped": skipped[:5]})


def _between(sorted_offsets: list[int], low: int, high: int) -> list[int]:
    start = bisect.bisect_right(sorted_offsets, low)
    end = bisect.bisect_left(sorted_offsets, high)
    return sorted_offsets[start:end]


def _check_replicas(report, replicas: dict[int, dict], hws: dict[int, int]) -> None:
    """Every replica holds the same batches below the high watermark."""
    for partition, by_node in sorted(replicas.items()):
        for node, batches in sorted(by_node.items(), key=lambda kv: str(kv[0])):
            for batch in batches:
                if not batch[3]:
                    report.add("corrupt_batches", {"partition": partition, "node": node, "base_offset": batch[0]})
        hw = hws.get(partition)
        if hw is None or len(by_node) < 2:
            continue
        below = {
            str(node): [tuple(b[:3]) for b in batches if b[0] + b[1] < hw]
            for node, batches in by_node.items()
        }
        nodes = sorted(below)
        reference = below[nodes[0]]
        for node in nodes[1:]:
            if below[node] != reference:
                report.add("replica_mismatches", _divergence(partition, hw, nodes[0], reference, node, below[node]))
                break


def _divergence(partition, hw, node_a, batches_a, node_b, batches_b) -> dict:
    index = next(
        (i for i, (a, b) in enumerate(zip(batches_a, batches_b)) if a != b),
        min(len(batches_a), len(batches_b)),
    )

    def at(batches):
        return batches[index] if index < len(batches) else None

    return {
        "partition": partition,
        "hw": hw,
        "batch_index": index,
        node_a: at(batches_a),
        node_b: at(batches_b),
        "batches_below_hw": {node_a: len(batches_a), node_b: len(batches_b)},
    }


def read_batches(partition_dir: Path) -> list[list]:
    """[base_offset, last_offset_delta, crc, crc_ok, partition_leader_epoch] of every whole
    batch in a replica's segment files, in offset order (the epoch, outside the CRC, is
    kept for tracing a consumer's epoch validation). A torn or zero-filled tail ends a
    segment."""
    batches = []
    segments = sorted(Path(partition_dir).glob("*.log"), key=lambda p: int(p.stem))
    for segment in segments:
        data = segment.read_bytes()
        pos = 0
        while pos + BATCH_HEAD.size <= len(data):
            base, length, epoch, magic, crc, _attributes, delta = BATCH_HEAD.unpack_from(data, pos)
            end = pos + LOG_OVERHEAD + length
            if length < MIN_BATCH_LENGTH or end > len(data) or magic != 2:
                break
            ok = crc32c.crc32c(data[pos + CRC_FROM : end]) == crc
            batches.append([base, delta, crc, ok, epoch])
            pos = end
    return batches
