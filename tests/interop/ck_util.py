"""confluent-kafka (librdkafka) producer/consumer/admin routines shared by several tests."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_CREATE_TIME,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

from records import Rec, norm_headers

ADMIN_TIMEOUT_S = 30


def admin(broker) -> AdminClient:
    """One AdminClient per broker, kept alive with it: futures of a client that
    was garbage-collected fail with _DESTROY."""
    client = broker.clients.get("confluent-admin")
    if client is None:
        client = AdminClient({"bootstrap.servers": broker.bootstrap, "socket.timeout.ms": 10000})
        broker.clients["confluent-admin"] = client
    return client


def create_topic(broker, name: str, partitions: int = 1, config: dict | None = None) -> None:
    fs = admin(broker).create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})],
        operation_timeout=ADMIN_TIMEOUT_S,
    )
    fs[name].result(timeout=ADMIN_TIMEOUT_S)
    wait_for_topic(broker, name, partitions)


def wait_for_topic(broker, name: str, partitions: int, timeout: float = 20) -> None:
    a = admin(broker)
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        md = a.list_topics(topic=name, timeout=10)
        t = md.topics.get(name)
        last = t
        if t is not None and t.error is None and len(t.partitions) == partitions and all(
            p.leader >= 0 for p in t.partitions.values()
        ):
            return
        time.sleep(0.1)
    raise AssertionError(f"topic {name} not ready with {partitions} partitions: {last}")


def producer(broker, **conf) -> Producer:
    base = {
        "bootstrap.servers": broker.bootstrap,
        "acks": "all",
        "linger.ms": 10,
        "enable.idempotence": False,
    }
    base.update(conf)
    return Producer(base)


def produce(broker, topic: str, recs: list[Rec], **conf) -> list[tuple[int, int]]:
    """Produce recs (explicit partitions and timestamps); returns (partition, offset) per record.

    Fails on any delivery error.
    """
    p = producer(broker, **conf)
    results: list[tuple[int, int] | None] = [None] * len(recs)
    errors: list[str] = []

    def make_cb(i):
        def cb(err, msg):
            if err is not None:
                errors.append(f"record {i}: {err}")
            else:
                results[i] = (msg.partition(), msg.offset())

        return cb

    for i, r in enumerate(recs):
        while True:
            try:
                p.produce(
                    topic,
                    value=r.value,
                    key=r.key,
                    partition=r.partition,
                    timestamp=r.timestamp,
                    headers=list(r.headers),
                    on_delivery=make_cb(i),
                )
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    try:
        remaining = p.flush(60)
    finally:
        p.close()
    assert remaining == 0, f"{remaining} records not delivered within 60 s"
    assert not errors, f"delivery errors ({len(errors)}): {errors[:5]}"
    assert all(x is not None for x in results)
    return results  # type: ignore[return-value]


def consumer(broker, **conf) -> Consumer:
    base = {
        "bootstrap.servers": broker.bootstrap,
        # confluent-kafka insists on a group.id; it is never used (manual assignment,
        # no commits).
        "group.id": f"interop-unused-{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "error",
    }
    base.update(conf)
    return Consumer(base)


def msg_to_rec(msg) -> Rec:
    ts_type, ts = msg.timestamp()
    assert ts_type == TIMESTAMP_CREATE_TIME, f"timestamp type {ts_type} at offset {msg.offset()}"
    return Rec(msg.partition(), msg.key(), msg.value(), norm_headers(msg.headers()), ts)


def consume(
    broker,
    topic: str,
    partitions,
    expected: int,
    start: int = OFFSET_BEGINNING,
    timeout: float = 90,
    with_offsets: bool = False,
    **conf,
):
    """Assign the partitions from `start`, read until `expected` records arrived and
    every partition reported end-of-partition. Any consumer error fails."""
    c = consumer(broker, **conf)
    parts = list(partitions)
    try:
        c.assign([TopicPartition(topic, p, start) for p in parts])
        out = []
        eof: set[int] = set()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for msg in c.consume(num_messages=1000, timeout=0.5):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        eof.add(msg.partition())
                        continue
                    raise KafkaException(err)
                eof.discard(msg.partition())
                rec = msg_to_rec(msg)
                out.append((msg.offset(), rec) if with_offsets else rec)
            if len(out) >= expected and eof >= set(parts):
                break
        else:
            raise AssertionError(
                f"timed out: got {len(out)}/{expected} records, eof on {sorted(eof)} of {parts}"
            )
        return out
    finally:
        c.close()


def watermarks(broker, topic: str, partition: int) -> tuple[int, int]:
    c = consumer(broker)
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10, cached=False)
    finally:
        c.close()
