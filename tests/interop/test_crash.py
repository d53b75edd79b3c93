"""SIGKILL the broker while a producer streams acks=all records: after restart
every acknowledged record is there, in order, at its acknowledged offset."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

import ck_util as ck
from records import topic_name

PRODUCER = Path(__file__).with_name("crash_producer.py")


def read_acks(path: Path) -> list[tuple[int, int]]:
    text = path.read_text()
    lines = text.split("\n")
    if not text.endswith("\n"):
        lines = lines[:-1]  # the producer died mid-line
    return [tuple(map(int, line.split())) for line in lines if line]


def run_and_kill(broker, topic: str, ack_path: Path, first: int, codec: str,
                 min_acks: int = 5000) -> list[tuple[int, int]]:
    proc = subprocess.Popen([sys.executable, str(PRODUCER), broker.bootstrap, topic, str(ack_path), str(first), codec],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"producer died: {proc.stderr.read().decode(errors='replace')}"
            if ack_path.exists() and ack_path.stat().st_size > 0 and len(read_acks(ack_path)) >= min_acks:
                break
            time.sleep(0.05)
        else:
            raise AssertionError(f"only {len(read_acks(ack_path)) if ack_path.exists() else 0} acks in 60 s")
        # Mid-stream, not at a pause: acknowledgements are still arriving.
        before = len(read_acks(ack_path))
        time.sleep(0.3)
        assert len(read_acks(ack_path)) > before, "producer stalled before the kill"
        broker.kill()
        time.sleep(0.5)  # let acks already on the wire reach the producer
    finally:
        proc.kill()
        proc.wait()
    return read_acks(ack_path)


def check_log(broker, topic: str, acked: dict[int, int]) -> list[tuple[int, int]]:
    low, high = ck.watermarks(broker, topic, 0)
    assert low == 0
    got = ck.consume(broker, topic, [0], expected=high, with_offsets=True)
    offsets = [o for o, _ in got]
    assert offsets == list(range(high)), "offsets are not dense from 0 to the high watermark"
    numbers = [int(r.key) for _, r in got]
    assert all(a < b for a, b in zip(numbers, numbers[1:])), "records out of order or duplicated"
    for n, off in acked.items():
        assert off < high, f"acknowledged record {n} at offset {off} lost (high watermark {high})"
        _, rec = got[off]
        assert int(rec.key) == n, f"offset {off}: acknowledged record {n}, found {rec.key!r}"
        assert rec.value == b"record-%d-" % n + b"x" * (n % 300)
    return got


@pytest.mark.parametrize("codec", ["none", "zstd"])
def test_sigkill_mid_stream_loses_no_acknowledged_record(broker, tmp_path, codec):
    topic = topic_name("crash")
    ck.create_topic(broker, topic, partitions=1)
    acked: dict[int, int] = {}
    for cycle, first in enumerate((0, 10_000_000)):
        acks = run_and_kill(broker, topic, tmp_path / f"acks-{cycle}.txt", first, codec)
        assert len(acks) >= 5000
        acked.update(acks)
        broker.start()
        ck.wait_for_topic(broker, topic, 1)
        got = check_log(broker, topic, acked)
        print(f"cycle {cycle}: {len(acks)} acknowledged, {len(got)} records in the log after restart")

    # Still writable at the right offset after two crashes.
    high = ck.watermarks(broker, topic, 0)[1]
    p = ck.producer(broker)
    res = []
    p.produce(topic, key=b"99999999", value=b"record-99999999-" + b"x" * (99999999 % 300), partition=0,
              on_delivery=lambda err, msg: res.append((err, msg.offset())))
    assert p.flush(30) == 0
    p.close()
    assert res == [(None, high)]
