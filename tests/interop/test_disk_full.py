"""A full disk: appends fail with KAFKA_STORAGE_ERROR and are logged (rate-limited),
acknowledged records stay readable, the broker restarts and serves reads, and deleting
a topic works and frees the space. The data directory lives on a small tmpfs."""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest
from confluent_kafka import KafkaError

from ck_util import ADMIN_TIMEOUT_S, admin, consume, create_topic, producer
from conftest import Broker
from records import topic_name

DISK_BYTES = 8 << 20


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES}", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        pytest.fail(f"this test mounts a tmpfs and needs root: {result.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill_with_records(broker, topic: str) -> int:
    """Produces 4 KiB records until the broker refuses them; returns how many were
    acknowledged (offsets 0..n)."""
    acked, failed = [], []
    p = producer(broker, **{"acks": "all", "linger.ms": 5, "retries": 0, "message.timeout.ms": 20000})

    def on_delivery(err, msg):
        (failed if err is not None else acked).append(err or msg.offset())

    value = b"x" * 4096
    for _ in range(2 * DISK_BYTES // len(value)):
        p.produce(topic, value=value, partition=0, on_delivery=on_delivery)
        p.poll(0)
        if failed:
            break
    p.flush(30)
    assert failed, "the disk never filled"
    assert all(e.code() == KafkaError.KAFKA_STORAGE_ERROR for e in failed), failed[:3]
    assert sorted(acked) == list(range(len(acked)))
    return len(acked)


def fill_the_rest(mount) -> None:
    try:
        with open(mount / "filler", "wb") as f:
            while True:
                f.write(b"\0" * 4096)
                f.flush()
    except OSError:
        pass
    assert shutil.disk_usage(mount).free < 8192


def test_a_full_disk_keeps_reads_restarts_and_deletes(small_disk, request):
    broker = Broker(small_disk / "data")
    request.node._strom_brokers = [broker]
    broker.start()
    try:
        topic = topic_name("full")
        create_topic(broker, topic, 1)
        acked = fill_with_records(broker, topic)
        fill_the_rest(small_disk)

        # Many more failed appends, few log lines.
        p = producer(broker, **{"retries": 0, "message.timeout.ms": 10000})
        for _ in range(200):
            p.produce(topic, value=b"y" * 4096, partition=0)
        p.flush(30)
        log = broker.log_path.read_text()
        lines = [l for l in log.splitlines() if "append failed" in l]
        assert 1 <= len(lines) <= 3, lines
        assert "No space left on device" in lines[0]

        assert len(consume(broker, topic, [0], acked)) == acked

        # A full broker starts and serves reads.
        broker.restart()
        assert len(consume(broker, topic, [0], acked)) == acked

        # Deleting works on the full disk and gives the space back.
        fs = admin(broker).delete_topics([topic], operation_timeout=ADMIN_TIMEOUT_S)
        fs[topic].result(timeout=ADMIN_TIMEOUT_S)
        deadline = time.monotonic() + 10
        while shutil.disk_usage(small_disk).free < DISK_BYTES // 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert shutil.disk_usage(small_disk).free >= DISK_BYTES // 2
        broker.restart()
        topics = admin(broker).list_topics(timeout=10).topics
        assert topic not in topics
    finally:
        broker.clients.clear()
        if broker.alive():
            broker.stop()
