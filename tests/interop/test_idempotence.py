"""Idempotent producers: librdkafka and kafka-python with idempotence (kafka-python 3.x,
like the Java client, turns it on by default), and a raw-wire replay of a produce
request with the same producer id and sequence, which must be stored once."""

from __future__ import annotations

import struct

import pytest
from kafka import KafkaProducer

import ck_util as ck
import kafka_wire as w
from records import assert_same_records, make_records, topic_name

API_INIT_PRODUCER_ID = 22


def test_kafka_python_producer_with_default_settings(broker):
    topic = topic_name("idem-kp-default")
    p = KafkaProducer(bootstrap_servers=broker.bootstrap)
    try:
        metas = [p.send(topic, key=b"k%d" % i, value=b"v").get(timeout=30) for i in range(5)]
    finally:
        p.close(timeout=10)
    assert [(m.partition, m.offset) for m in metas] == [(0, i) for i in range(5)]


def test_confluent_idempotent_producer(broker):
    topic = topic_name("idem-ck")
    ck.create_topic(broker, topic, partitions=3)
    recs = make_records(3000)
    ck.produce(broker, topic, recs, **{"enable.idempotence": True, "max.in.flight.requests.per.connection": 5})
    assert_same_records(recs, ck.consume(broker, topic, range(3), expected=len(recs)))


def _init_producer_id(port: int) -> tuple[int, int]:
    # InitProducerId v1 (non-flexible): transactional_id null, timeout, -> error, pid, epoch.
    body = w.string(None) + w.i32(60000)
    with w.Conn(port) as c:
        c.send(w.request(API_INIT_PRODUCER_ID, 1, 5, body))
        cid, resp = c.recv_frame()
    assert cid == 5
    r = w.Reader(resp)
    r.i32()  # throttle
    error, pid, epoch = r.i16(), r.i64(), r.i16()
    assert error == 0
    return pid, epoch


def _produce(port: int, topic: str, batch: bytes) -> tuple[int, int]:
    with w.Conn(port) as c:
        c.send(w.produce_request(topic, 0, batch, version=8, correlation_id=9))
        _, body = c.recv_frame()
    [(_, _, error, base_offset)] = w.parse_produce_response(body, 8)
    return error, base_offset


def test_replayed_produce_is_stored_once(broker):
    topic = topic_name("idem-raw")
    ck.create_topic(broker, topic, partitions=1)
    pid, epoch = _init_producer_id(broker.port)
    assert pid >= 0 and epoch == 0
    first = w.record_batch([(b"a", b"1"), (b"b", b"2")], producer_id=pid, producer_epoch=epoch, base_sequence=0)
    second = w.record_batch([(b"c", b"3")], producer_id=pid, producer_epoch=epoch, base_sequence=2)
    assert _produce(broker.port, topic, first) == (0, 0)
    # The same request again (a retry after a lost response): the original offset, no copy.
    assert _produce(broker.port, topic, first) == (0, 0)
    assert _produce(broker.port, topic, second) == (0, 2)
    assert _produce(broker.port, topic, second) == (0, 2)
    # A gap in the sequence and an old epoch are refused with Kafka's codes.
    gap = w.record_batch([(b"d", b"4")], producer_id=pid, producer_epoch=epoch, base_sequence=7)
    assert _produce(broker.port, topic, gap)[0] == 45  # OUT_OF_ORDER_SEQUENCE_NUMBER
    bumped = w.record_batch([(b"e", b"5")], producer_id=pid, producer_epoch=epoch + 1, base_sequence=0)
    assert _produce(broker.port, topic, bumped) == (0, 3)
    stale = w.record_batch([(b"f", b"6")], producer_id=pid, producer_epoch=epoch, base_sequence=3)
    assert _produce(broker.port, topic, stale)[0] == 47  # INVALID_PRODUCER_EPOCH
    got = ck.consume(broker, topic, [0], expected=4)
    assert [r.key for r in got] == [b"a", b"b", b"c", b"e"]


def test_duplicates_are_detected_after_a_restart(broker):
    """Producer state survives restarts (snapshot at shutdown, log replay after a crash)."""
    topic = topic_name("idem-restart")
    ck.create_topic(broker, topic, partitions=1)
    pid, epoch = _init_producer_id(broker.port)
    batch = w.record_batch([(b"x", b"1")], producer_id=pid, producer_epoch=epoch, base_sequence=0)
    assert _produce(broker.port, topic, batch) == (0, 0)
    broker.stop()
    broker.start()
    assert _produce(broker.port, topic, batch) == (0, 0)
    broker.kill()
    broker.start()
    assert _produce(broker.port, topic, batch) == (0, 0)
    nxt = w.record_batch([(b"y", b"2")], producer_id=pid, producer_epoch=epoch, base_sequence=1)
    assert _produce(broker.port, topic, nxt) == (0, 1)
    got = ck.consume(broker, topic, [0], expected=2)
    assert [r.key for r in got] == [b"x", b"y"]


def test_producer_ids_are_unique_across_restarts(broker):
    seen = {_init_producer_id(broker.port)[0] for _ in range(3)}
    broker.kill()
    broker.start()
    seen.add(_init_producer_id(broker.port)[0])
    assert len(seen) == 4
