"""Stored data survives damage around it: a flipped byte in a sealed segment costs
exactly the damaged batch (never the intact records behind it), `strom storage verify`
finds such damage offline and `--repair` cuts it out, and a damaged
`partition.metadata` never deletes a partition."""

from __future__ import annotations

import struct
import subprocess

import pytest

from ck_util import consume, create_topic, produce
from conftest import BrokerCrashed, strom_bin
from records import Rec, base_timestamp_ms, topic_name

RECORDS = 3000
SEGMENT_BYTES = 20000


def fill(broker, topic: str) -> None:
    create_topic(broker, topic, 1, {"segment.bytes": str(SEGMENT_BYTES)})
    ts = base_timestamp_ms()
    recs = [Rec(0, f"k{i}".encode(), bytes([i % 251]) * 100, (), ts + i) for i in range(RECORDS)]
    produce(broker, topic, recs, **{"batch.num.messages": 50, "linger.ms": 50})


def segments(broker, topic: str) -> list:
    return sorted((broker.data_dir / f"{topic}-0").glob("*.log"))


def batches(path) -> list[tuple[int, int, int]]:
    """(position, base offset, record count) of every batch in a segment file."""
    data = path.read_bytes()
    out, pos = [], 0
    while pos + 61 <= len(data):
        base, length = struct.unpack_from(">qi", data, pos)
        last_delta = struct.unpack_from(">i", data, pos + 23)[0]
        out.append((pos, base, last_delta + 1))
        pos += 12 + length
    return out


def flip(path, position: int) -> None:
    with open(path, "r+b") as f:
        f.seek(position)
        byte = f.read(1)
        f.seek(position)
        f.write(bytes([byte[0] ^ 0x5A]))


def verify(broker, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(strom_bin()), "storage", "verify", "--data-dir", str(broker.data_dir), *extra],
        capture_output=True,
        text=True,
        timeout=120,
    )


def damage_one_batch(broker, topic: str, index_too: bool) -> tuple[int, int]:
    """Flips a byte inside the second batch of the third (sealed) segment; returns the
    lost batch's base offset and record count."""
    files = segments(broker, topic)
    assert len(files) >= 5, f"only {len(files)} segments"
    target = files[2]
    position, base, count = batches(target)[1]
    flip(target, position + 70)
    if index_too:
        # A damaged index makes the broker recover the segment instead of trusting it.
        target.with_suffix(".index").write_bytes(b"\xff" * 8)
    return base, count


def offsets_after_restart(broker, topic: str, expected: int) -> list[int]:
    got = consume(broker, topic, [0], expected, with_offsets=True)
    return sorted(offset for offset, _ in got)


def test_damage_in_a_sealed_segment_costs_exactly_the_damaged_batch(broker):
    topic = topic_name("damage")
    fill(broker, topic)
    broker.stop()
    base, count = damage_one_batch(broker, topic, index_too=True)

    found = verify(broker)
    assert found.returncode == 1, found
    assert f"{topic}-0: DAMAGED" in found.stdout, found.stdout
    assert f"offsets {base}..{base + count - 1} lost" in found.stdout, found.stdout

    broker.start()
    offsets = offsets_after_restart(broker, topic, RECORDS - count)
    assert offsets == [o for o in range(RECORDS) if not base <= o < base + count]
    assert "damaged data in a durable segment" in broker.log_path.read_text()
    # Repaired while starting: the running broker's sealed segments check clean.
    clean = verify(broker)
    assert clean.returncode == 0, clean


def test_verify_finds_damage_the_broker_trusts_and_repair_cuts_it_out(broker):
    topic = topic_name("repair")
    fill(broker, topic)
    broker.stop()
    base, count = damage_one_batch(broker, topic, index_too=False)

    found = verify(broker)
    assert found.returncode == 1 and "DAMAGED" in found.stdout, found
    refused = subprocess.run(
        [str(strom_bin()), "storage", "verify", "--repair", "--data-dir", "/nonexistent"],
        capture_output=True,
        text=True,
    )
    assert refused.returncode == 1 and "not a Strom data directory" in refused.stderr
    repaired = verify(broker, "--repair")
    assert repaired.returncode == 0, repaired
    assert "repaired segment" in repaired.stdout
    assert list((broker.data_dir / f"{topic}-0").glob("*.damaged")), "a copy of the damaged bytes is kept"
    assert verify(broker).returncode == 0

    broker.start()
    offsets = offsets_after_restart(broker, topic, RECORDS - count)
    assert offsets == [o for o in range(RECORDS) if not base <= o < base + count]


def test_repair_refuses_while_the_broker_runs(broker):
    topic = topic_name("running")
    create_topic(broker, topic, 1)
    result = verify(broker, "--repair")
    assert result.returncode == 1 and "stop it before --repair" in result.stderr, result


def test_damaged_partition_metadata_never_deletes_the_partition(broker):
    topic = topic_name("marker")
    create_topic(broker, topic, 1)
    ts = base_timestamp_ms()
    produce(broker, topic, [Rec(0, None, b"v%d" % i, (), ts + i) for i in range(1000)])
    broker.stop()
    marker = broker.data_dir / f"{topic}-0" / "partition.metadata"
    original = marker.read_text()

    # One extra newline: the same topic id, so the data is kept.
    marker.write_text(original + "\n")
    broker.start()
    assert len(consume(broker, topic, [0], 1000)) == 1000
    broker.stop()

    # Unparseable: the broker refuses to start and says which file; the data stays.
    marker.write_text("version: 0\ntopic_id: \x00\x01garbage\n")
    with pytest.raises(BrokerCrashed) as crashed:
        broker.start()
    broker._expected_exit = True  # this exit was the point
    assert "partition.metadata" in str(crashed.value) and "does not parse" in str(crashed.value)
    assert segments(broker, topic)[0].stat().st_size > 0

    # The documented fix: remove the damaged file; the data is adopted again.
    marker.unlink()
    broker.start()
    assert len(consume(broker, topic, [0], 1000)) == 1000
