"""Deterministic test records and byte-for-byte comparison, shared by all client tests."""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
RECORD_COUNT = 10_000
PARTITIONS = 3
TIMESTAMP_STEP_MS = 10


def topic_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@dataclass(frozen=True)
class Rec:
    partition: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]
    timestamp: int


def base_timestamp_ms() -> int:
    # Recent enough that the default retention.ms (7 days) never deletes it.
    return int(time.time() * 1000) - 3_600_000


def make_records(
    n: int = RECORD_COUNT,
    partitions: int = PARTITIONS,
    base_ts: int | None = None,
    seed: int = 42,
    null_values: bool = True,
    null_headers: bool = True,
) -> list[Rec]:
    """Keyed records with headers and explicit, increasing timestamps.

    Record i goes to partition i % partitions and has timestamp
    base_ts + i * TIMESTAMP_STEP_MS. Values mix compressible and random bytes
    (0..~300 bytes). Some keys/values are null (when null_values is set) and
    some are empty, which must round-trip as different things; every 11th record
    has a header with a null value (null_headers; kafka-python cannot send those).
    """
    rnd = random.Random(seed)
    base_ts = base_timestamp_ms() if base_ts is None else base_ts
    out = []
    for i in range(n):
        size = rnd.randrange(0, 200)
        value: bytes | None = b"value-%d|" % i + rnd.randbytes(size % 64) + b"z" * size
        key: bytes | None = b"key-%d" % i
        if null_values and i % 1000 == 500:
            value = None
        elif i % 1000 == 600:
            value = b""  # empty is not null
        if null_values and i % 1000 == 250:
            key = None
        elif i % 1000 == 750:
            key = b""
        headers = [("idx", str(i).encode()), ("bin", bytes([i % 256, 0, 255]))]
        if i % 7 == 0:
            headers.append(("seventh", b"\x00\x01\x02" * (i % 5 + 1)))
        if null_headers and i % 11 == 0:
            headers.append(("null-header", None))
        out.append(
            Rec(
                partition=i % partitions,
                key=key,
                value=value,
                headers=tuple(headers),
                timestamp=base_ts + i * TIMESTAMP_STEP_MS,
            )
        )
    return out


def by_partition(recs) -> dict[int, list[Rec]]:
    out: dict[int, list[Rec]] = {}
    for r in recs:
        out.setdefault(r.partition, []).append(r)
    return out


def norm_headers(headers) -> tuple[tuple[str, bytes], ...]:
    if not headers:
        return ()
    return tuple((k.decode() if isinstance(k, bytes) else k, bytes(v) if v is not None else None) for k, v in headers)


def assert_same_records(expected: list[Rec], actual: list[Rec]) -> None:
    """Per partition: same count, same order, same key/value/headers/timestamp."""
    exp = by_partition(expected)
    act = by_partition(actual)
    unexpected = sorted(set(act) - set(exp))
    assert not unexpected, f"records in unexpected partitions: {unexpected}"
    for p, exp_list in exp.items():
        act_list = act.get(p, [])
        for idx, (e, a) in enumerate(zip(exp_list, act_list)):
            if e != a:
                raise AssertionError(
                    f"partition {p} record #{idx} differs\n expected: {e}\n   actual: {a}"
                )
        assert len(act_list) == len(exp_list), (
            f"partition {p}: expected {len(exp_list)} records, got {len(act_list)}"
        )
    assert len(actual) == len(expected)


def first_offset_at_or_after(recs: list[Rec], partition: int, ts: int) -> int:
    """Offset (position in the partition) of the first record with timestamp >= ts, or -1."""
    for off, r in enumerate(by_partition(recs).get(partition, [])):
        if r.timestamp >= ts:
            return off
    return -1


CODEC_IDS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}


def stored_codecs(data_dir, topic: str) -> set[int]:
    """Compression codec ids of the record batches in the topic's segment files.

    Proves the client really compressed (the broker stores batches as they
    arrived). Reads `<data_dir>/<topic>-<partition>/*.log` as concatenated
    RecordBatch v2: baseOffset i64, batchLength i32, leaderEpoch i32, magic i8,
    crc u32, attributes i16, ...
    """
    import struct
    from pathlib import Path

    codecs: set[int] = set()
    for seg in sorted(Path(data_dir).glob(f"{topic}-*/*.log")):
        data = seg.read_bytes()
        pos = 0
        while pos + 23 <= len(data):
            length = struct.unpack_from(">i", data, pos + 8)[0]
            if length <= 0:
                break
            attributes = struct.unpack_from(">h", data, pos + 21)[0]
            codecs.add(attributes & 0x07)
            pos += 12 + length
    return codecs
