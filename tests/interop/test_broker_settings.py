"""Broker settings given with `--set` change what real clients see."""

from __future__ import annotations

import time

from confluent_kafka import KafkaError
from confluent_kafka.admin import ConfigResource, ResourceType

import ck_util as ck
from records import assert_same_records, make_records, topic_name


def test_num_partitions_applies_to_auto_created_topics(broker_factory):
    broker = broker_factory(**{"num.partitions": 3})
    topic = topic_name("settings-auto3")
    p = ck.producer(broker)
    p.produce(topic, key=b"k", value=b"v")
    assert p.flush(30) == 0
    p.close()
    md = ck.admin(broker).list_topics(topic=topic, timeout=10)
    assert sorted(md.topics[topic].partitions) == [0, 1, 2]


def test_auto_create_disabled(broker_factory):
    broker = broker_factory(**{"auto.create.topics.enable": "false"})
    topic = topic_name("settings-noauto")
    p = ck.producer(broker, **{"message.timeout.ms": 3000})
    errors = []
    p.produce(topic, key=b"k", value=b"v", on_delivery=lambda err, msg: errors.append(err))
    p.flush(15)
    p.close()
    assert len(errors) == 1 and errors[0] is not None, errors
    assert errors[0].code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._MSG_TIMED_OUT,
                                KafkaError._UNKNOWN_TOPIC), errors[0]
    assert topic not in ck.admin(broker).list_topics(timeout=10).topics
    # Explicit creation still works.
    ck.create_topic(broker, topic, partitions=1)


def test_broker_default_retention_is_reported(broker_factory):
    broker = broker_factory(**{"log.retention.ms": 3_600_000})
    topic = topic_name("settings-retention")
    ck.create_topic(broker, topic)
    res = ConfigResource(ResourceType.TOPIC, topic)
    entries = ck.admin(broker).describe_configs([res], request_timeout=30)[res].result(timeout=30)
    assert entries["retention.ms"].value == "3600000"
    # A broker-level setting is not the built-in default any more.
    assert int(getattr(entries["retention.ms"].source, "value", entries["retention.ms"].source)) in (4, 5)


def test_time_retention_deletes_old_segments(broker_factory):
    broker = broker_factory(**{"log.retention.check.interval.ms": 300})
    topic = topic_name("settings-expire")
    ck.create_topic(broker, topic, partitions=1, config={"segment.bytes": "1048576"})
    # Timestamps a day old: all of it is past a one-hour retention.
    old = make_records(6000, partitions=1, base_ts=int(time.time() * 1000) - 86_400_000)
    ck.produce(broker, topic, old)
    assert ck.watermarks(broker, topic, 0) == (0, 6000)
    new = make_records(100, partitions=1, seed=5)
    res = ConfigResource(ResourceType.TOPIC, topic, set_config={"retention.ms": "3600000", "segment.bytes": "1048576"})
    ck.admin(broker).alter_configs([res], request_timeout=30)[res].result(timeout=30)
    ck.produce(broker, topic, new)

    deadline = time.monotonic() + 20
    low = 0
    while time.monotonic() < deadline:
        low, high = ck.watermarks(broker, topic, 0)
        if low > 0:
            break
        time.sleep(0.2)
    assert low > 0, "no segment was deleted by time retention"
    assert high == 6100
    # Whatever is left reads back densely from the new log start offset; recent
    # records are all there.
    got = ck.consume(broker, topic, [0], expected=high - low, with_offsets=True)
    assert [o for o, _ in got] == list(range(low, high))
    assert_same_records(new, [r for o, r in got if o >= 6000])
