"""Graceful restart (SIGTERM): every acknowledged record, topic and config survives."""

from __future__ import annotations

from confluent_kafka.admin import ConfigResource, ResourceType

import ck_util as ck
from records import assert_same_records, by_partition, make_records, topic_name

COUNT = 5_000


def _configs(broker, topic):
    res = ConfigResource(ResourceType.TOPIC, topic)
    entries = ck.admin(broker).describe_configs([res], request_timeout=30)[res].result(timeout=30)
    return {name: (e.value, int(getattr(e.source, "value", e.source))) for name, e in entries.items()}


def test_restart_keeps_records_topics_and_configs(broker):
    topic = topic_name("restart")
    other = topic_name("restart-cfg")
    ck.create_topic(broker, topic, partitions=3, config={"retention.ms": "86400000"})
    ck.create_topic(broker, other, partitions=1, config={"cleanup.policy": "delete", "max.message.bytes": "2000000"})
    recs = make_records(COUNT)
    ck.produce(broker, topic, recs, **{"acks": "all", "compression.type": "lz4"})
    before = {t: _configs(broker, t) for t in (topic, other)}
    assert before[topic]["retention.ms"] == ("86400000", 1)

    rc = broker.stop()
    assert rc == 0, f"graceful shutdown exited with {rc}"
    broker.start()

    ck.wait_for_topic(broker, topic, 3)
    ck.wait_for_topic(broker, other, 1)
    got = ck.consume(broker, topic, range(3), expected=COUNT)
    assert_same_records(recs, got)
    for p, items in by_partition(recs).items():
        assert ck.watermarks(broker, topic, p) == (0, len(items))
    after = {t: _configs(broker, t) for t in (topic, other)}
    assert after == before

    # The log keeps going at the right offsets after the restart.
    more = make_records(30, seed=99)
    delivered = ck.produce(broker, topic, more)
    for p, items in by_partition(recs).items():
        offs = [delivered[i][1] for i, r in enumerate(more) if r.partition == p]
        assert offs == list(range(len(items), len(items) + len(offs)))
    assert_same_records(recs + more, ck.consume(broker, topic, range(3), expected=COUNT + 30))


def test_restart_twice_and_deleted_topic_stays_deleted(broker):
    keep, gone = topic_name("restart-keep"), topic_name("restart-gone")
    ck.create_topic(broker, keep, partitions=1)
    ck.create_topic(broker, gone, partitions=1)
    recs = make_records(300, partitions=1)
    ck.produce(broker, keep, recs)
    ck.produce(broker, gone, recs[:10])
    ck.admin(broker).delete_topics([gone], operation_timeout=30)[gone].result(timeout=30)

    for _ in range(2):
        broker.stop()
        broker.start()
    topics = ck.admin(broker).list_topics(timeout=10).topics
    assert keep in topics
    assert gone not in topics
    assert_same_records(recs, ck.consume(broker, keep, [0], expected=300))
