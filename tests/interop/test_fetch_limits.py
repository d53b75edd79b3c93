"""Fetch size limits: a consumer always makes progress (KIP-74: at least one
whole batch, even when it is larger than the fetch limits)."""

from __future__ import annotations

from confluent_kafka import TopicPartition

import ck_util as ck
from records import Rec, assert_same_records, topic_name


def test_batch_larger_than_fetch_limits_is_still_returned(broker):
    topic = topic_name("fetch-big")
    ck.create_topic(broker, topic, partitions=1)
    recs = [Rec(0, b"k%d" % i, bytes([i]) * 300_000, (), 1_700_000_000_000 + i) for i in range(3)]
    ck.produce(broker, topic, recs, **{"linger.ms": 0})
    got = ck.consume(broker, topic, [0], expected=3,
                     **{"fetch.max.bytes": 1024, "max.partition.fetch.bytes": 1024, "message.max.bytes": 1000,
                        "receive.message.max.bytes": 2_000_000})
    assert_same_records(recs, got)


def test_small_fetches_read_everything_in_order(broker):
    topic = topic_name("fetch-small")
    ck.create_topic(broker, topic, partitions=2)
    recs = [Rec(i % 2, b"k%d" % i, b"v" * (i % 500), (("h", b"%d" % i),), 1_700_000_000_000 + i)
            for i in range(4000)]
    ck.produce(broker, topic, recs, **{"linger.ms": 5, "batch.num.messages": 50})
    got = ck.consume(broker, topic, [0, 1], expected=4000,
                     **{"fetch.max.bytes": 5000, "max.partition.fetch.bytes": 3000, "message.max.bytes": 1000})
    assert_same_records(recs, got)


def test_fetch_from_middle_of_batch(broker):
    """Starting inside a batch: the broker returns the whole batch, the client
    skips the records before the requested offset."""
    topic = topic_name("fetch-mid")
    ck.create_topic(broker, topic, partitions=1)
    recs = [Rec(0, b"k%d" % i, b"v%d" % i, (), 1_700_000_000_000 + i) for i in range(1000)]
    ck.produce(broker, topic, recs, **{"linger.ms": 100, "batch.num.messages": 1000})
    c = ck.consumer(broker)
    try:
        c.assign([TopicPartition(topic, 0, 517)])
        msgs = []
        while len(msgs) < 483:
            for m in c.consume(500, timeout=1):
                if m.error() is None:
                    msgs.append(m)
        assert [m.offset() for m in msgs] == list(range(517, 1000))
        assert msgs[0].value() == b"v517"
    finally:
        c.close()
