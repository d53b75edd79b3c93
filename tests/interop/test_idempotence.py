"""Idempotent producers, and producers with their library's default settings
(kafka-python 3.x, like the Java client, turns idempotence on by default)."""

from __future__ import annotations

import pytest
from kafka import KafkaProducer

import ck_util as ck
from records import assert_same_records, make_records, topic_name

NEEDS_INIT_PRODUCER_ID = pytest.mark.xfail(
    strict=True,
    reason="InitProducerId (API 22) is not served yet; remove this marker when it is",
)


@NEEDS_INIT_PRODUCER_ID
def test_kafka_python_producer_with_default_settings(broker):
    topic = topic_name("idem-kp-default")
    p = KafkaProducer(bootstrap_servers=broker.bootstrap)
    try:
        meta = p.send(topic, key=b"k", value=b"v").get(timeout=30)
    finally:
        p.close(timeout=10)
    assert (meta.partition, meta.offset) == (0, 0)


@NEEDS_INIT_PRODUCER_ID
def test_confluent_idempotent_producer(broker):
    topic = topic_name("idem-ck")
    ck.create_topic(broker, topic, partitions=3)
    recs = make_records(3000)
    ck.produce(broker, topic, recs, **{"enable.idempotence": True, "max.in.flight.requests.per.connection": 5})
    assert_same_records(recs, ck.consume(broker, topic, range(3), expected=len(recs)))
