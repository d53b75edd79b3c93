"""confluent-kafka (librdkafka 2.1x): produce/consume every codec, ListOffsets, admin APIs."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import (
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
    OffsetSpec,
    ResourceType,
)

import ck_util as ck
from records import (
    CODEC_IDS,
    stored_codecs,
    CODECS,
    PARTITIONS,
    Rec,
    RECORD_COUNT,
    TIMESTAMP_STEP_MS,
    assert_same_records,
    by_partition,
    first_offset_at_or_after,
    make_records,
    topic_name,
)

# librdkafka decides per broker whether it may compress: its LZ4 feature flag
# depends on FindCoordinator v0 being advertised (rdkafka_feature.c), ZSTD on
# Produce v7 + Fetch v10. Without it, the codec is silently dropped.
LIBRDKAFKA_CODEC_HINT = "stored batches are not compressed as the client was told: check ApiVersions (librdkafka feature map)"

T = ck.ADMIN_TIMEOUT_S


@pytest.mark.parametrize("codec", CODECS)
def test_produce_consume_roundtrip(broker, codec):
    topic = topic_name(f"ck-{codec}")
    ck.create_topic(broker, topic, partitions=PARTITIONS)
    recs = make_records(RECORD_COUNT)

    delivered = ck.produce(broker, topic, recs, **{"compression.type": codec})
    # Offsets handed back to the producer are dense per partition, in send order.
    for p, items in by_partition(recs).items():
        offs = [delivered[i][1] for i, r in enumerate(recs) if r.partition == p]
        assert offs == list(range(len(items))), f"partition {p}: offsets not dense/in order"

    got = ck.consume(broker, topic, range(PARTITIONS), expected=len(recs))
    assert_same_records(recs, got)
    assert stored_codecs(broker.data_dir, topic) == {CODEC_IDS[codec]}, LIBRDKAFKA_CODEC_HINT

    for p, items in by_partition(recs).items():
        assert ck.watermarks(broker, topic, p) == (0, len(items))


def test_list_offsets_by_time_earliest_latest(broker):
    topic = topic_name("ck-offsets")
    ck.create_topic(broker, topic, partitions=PARTITIONS)
    recs = make_records(3000)
    base = recs[0].timestamp
    # Many batches (linger 0 + tiny batch size) so some answers fall inside a batch
    # and some on batch boundaries.
    ck.produce(broker, topic, recs, **{"linger.ms": 50, "batch.num.messages": 97})

    c = ck.consumer(broker)
    a = ck.admin(broker)
    try:
        for p, items in by_partition(recs).items():
            probes = [
                base - 1_000,  # before everything -> offset 0
                base,  # exact first timestamp
                base + 1234 * TIMESTAMP_STEP_MS + 3,  # between two records
                base + 2000 * TIMESTAMP_STEP_MS,  # exact timestamp of some record
                items[-1].timestamp,  # the last record
            ]
            for ts in probes:
                want = first_offset_at_or_after(recs, p, ts)
                res = c.offsets_for_times([TopicPartition(topic, p, ts)], timeout=10)
                assert res[0].error is None, res[0].error
                assert res[0].offset == want, f"offsets_for_times(p{p}, {ts}) = {res[0].offset}, want {want}"
                fut = a.list_offsets({TopicPartition(topic, p): OffsetSpec.for_timestamp(ts)}, request_timeout=T)
                info = fut[TopicPartition(topic, p)].result()
                assert info.offset == want
                assert info.timestamp == items[want].timestamp
            # After the last record: no offset (-1).
            res = c.offsets_for_times([TopicPartition(topic, p, items[-1].timestamp + 1)], timeout=10)
            assert res[0].offset == -1

            fut = a.list_offsets(
                {TopicPartition(topic, p): OffsetSpec.earliest()}, request_timeout=T
            )
            assert fut[TopicPartition(topic, p)].result().offset == 0
            fut = a.list_offsets({TopicPartition(topic, p): OffsetSpec.latest()}, request_timeout=T)
            assert fut[TopicPartition(topic, p)].result().offset == len(items), "latest must be the log end offset"
    finally:
        c.close()


def test_list_offsets_max_timestamp(broker):
    topic = topic_name("ck-maxts")
    ck.create_topic(broker, topic, partitions=1)
    recs = make_records(300, partitions=1)
    # Largest timestamp in the middle of the log.
    recs[150] = recs[150].__class__(0, recs[150].key, recs[150].value, recs[150].headers, recs[-1].timestamp + 5000)
    ck.produce(broker, topic, recs, **{"batch.num.messages": 40})
    a = ck.admin(broker)
    fut = a.list_offsets({TopicPartition(topic, 0): OffsetSpec.max_timestamp()}, request_timeout=T)
    info = fut[TopicPartition(topic, 0)].result()
    assert (info.offset, info.timestamp) == (150, recs[150].timestamp)


def _src(entry) -> int:
    return int(getattr(entry.source, "value", entry.source))


def _describe(a, topic):
    res = ConfigResource(ResourceType.TOPIC, topic)
    return a.describe_configs([res], request_timeout=T)[res].result(timeout=T)


def test_describe_and_alter_configs(broker):
    topic = topic_name("ck-configs")
    ck.create_topic(broker, topic)
    a = ck.admin(broker)

    entries = _describe(a, topic)
    for name in ("retention.ms", "segment.bytes", "cleanup.policy", "max.message.bytes"):
        assert name in entries, f"{name} missing from DescribeConfigs: {sorted(entries)}"
        assert _src(entries[name]) == ConfigSource.DEFAULT_CONFIG.value, (name, _src(entries[name]))
        assert entries[name].is_default
    assert entries["retention.ms"].value == "604800000"
    assert entries["cleanup.policy"].value == "delete"

    # Legacy AlterConfigs: whole-resource replace.
    res = ConfigResource(ResourceType.TOPIC, topic, set_config={"retention.ms": "3600000"})
    a.alter_configs([res], request_timeout=T)[res].result(timeout=T)
    entries = _describe(a, topic)
    assert entries["retention.ms"].value == "3600000"
    assert _src(entries["retention.ms"]) == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert not entries["retention.ms"].is_default
    assert _src(entries["segment.bytes"]) == ConfigSource.DEFAULT_CONFIG.value

    # Unknown config name -> error, nothing changed.
    bad = ConfigResource(ResourceType.TOPIC, topic, set_config={"no.such.config": "1"})
    with pytest.raises(KafkaException):
        a.alter_configs([bad], request_timeout=T)[bad].result(timeout=T)
    assert _describe(a, topic)["retention.ms"].value == "3600000"


def test_incremental_alter_configs(broker):
    topic = topic_name("ck-incr")
    ck.create_topic(broker, topic, config={"segment.bytes": "1048576"})
    a = ck.admin(broker)
    entries = _describe(a, topic)
    assert entries["segment.bytes"].value == "1048576"
    assert _src(entries["segment.bytes"]) == ConfigSource.DYNAMIC_TOPIC_CONFIG.value

    res = ConfigResource(
        ResourceType.TOPIC,
        topic,
        incremental_configs=[
            ConfigEntry("retention.ms", "7200000", incremental_operation=AlterConfigOpType.SET)
        ],
    )
    a.incremental_alter_configs([res], request_timeout=T)[res].result(timeout=T)
    entries = _describe(a, topic)
    assert entries["retention.ms"].value == "7200000"
    assert _src(entries["retention.ms"]) == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    # Incremental: the other override is kept.
    assert entries["segment.bytes"].value == "1048576"

    res = ConfigResource(
        ResourceType.TOPIC,
        topic,
        incremental_configs=[
            ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE)
        ],
    )
    a.incremental_alter_configs([res], request_timeout=T)[res].result(timeout=T)
    entries = _describe(a, topic)
    assert entries["retention.ms"].value == "604800000"
    assert _src(entries["retention.ms"]) == ConfigSource.DEFAULT_CONFIG.value
    assert entries["segment.bytes"].value == "1048576"


def test_delete_records(broker):
    topic = topic_name("ck-delrec")
    ck.create_topic(broker, topic, partitions=1)
    recs = make_records(2000, partitions=1)
    ck.produce(broker, topic, recs)
    a = ck.admin(broker)

    fut = a.delete_records([TopicPartition(topic, 0, 700)], request_timeout=T)
    deleted = fut[TopicPartition(topic, 0)].result(timeout=T)
    assert deleted.low_watermark == 700

    assert ck.watermarks(broker, topic, 0) == (700, 2000)
    info = a.list_offsets({TopicPartition(topic, 0): OffsetSpec.earliest()}, request_timeout=T)
    assert info[TopicPartition(topic, 0)].result().offset == 700

    got = ck.consume(broker, topic, [0], expected=1300, with_offsets=True)
    assert [o for o, _ in got] == list(range(700, 2000))
    assert_same_records(recs[700:], [r for _, r in got])

    # Reading below the log start offset is out of range.
    c = ck.consumer(broker)
    try:
        c.assign([TopicPartition(topic, 0, 10)])
        deadline = time.monotonic() + 20
        err = None
        while time.monotonic() < deadline and err is None:
            msg = c.poll(0.5)
            if msg is not None and msg.error() is not None and msg.error().code() != KafkaError._PARTITION_EOF:
                err = msg.error()
            elif msg is not None and msg.error() is None:
                raise AssertionError(f"read deleted record at offset {msg.offset()}")
        assert err is not None and err.code() in (KafkaError.OFFSET_OUT_OF_RANGE, KafkaError._AUTO_OFFSET_RESET), err
    finally:
        c.close()


def test_topic_create_list_delete(broker):
    a = ck.admin(broker)
    names = [topic_name("ck-admin") for _ in range(3)]
    fs = a.create_topics([NewTopic(n, num_partitions=i + 1, replication_factor=1) for i, n in enumerate(names)],
                         operation_timeout=T)
    for f in fs.values():
        f.result(timeout=T)
    for i, n in enumerate(names):
        ck.wait_for_topic(broker, n, i + 1)

    md = a.list_topics(timeout=10)
    for i, n in enumerate(names):
        assert n in md.topics
        assert sorted(md.topics[n].partitions) == list(range(i + 1))
    assert md.brokers, "metadata lists no brokers"
    assert any(b.port == broker.port for b in md.brokers.values())

    # Creating an existing topic -> TOPIC_ALREADY_EXISTS.
    fs = a.create_topics([NewTopic(names[0], num_partitions=1, replication_factor=1)], operation_timeout=T)
    with pytest.raises(KafkaException) as e:
        fs[names[0]].result(timeout=T)
    assert e.value.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS

    fs = a.delete_topics([names[1]], operation_timeout=T)
    fs[names[1]].result(timeout=T)
    deadline = time.monotonic() + 10
    while names[1] in a.list_topics(timeout=10).topics and time.monotonic() < deadline:
        time.sleep(0.1)
    topics = a.list_topics(timeout=10).topics
    assert names[1] not in topics
    assert names[0] in topics and names[2] in topics

    # Deleting a missing topic -> UNKNOWN_TOPIC_OR_PART.
    fs = a.delete_topics([topic_name("ck-missing")], operation_timeout=T)
    with pytest.raises(KafkaException) as e:
        list(fs.values())[0].result(timeout=T)
    assert e.value.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_create_partitions(broker):
    topic = topic_name("ck-parts")
    ck.create_topic(broker, topic, partitions=2)
    a = ck.admin(broker)

    fs = a.create_partitions([NewPartitions(topic, 5)], operation_timeout=T)
    fs[topic].result(timeout=T)
    ck.wait_for_topic(broker, topic, 5)

    recs = make_records(50, partitions=5)
    ck.produce(broker, topic, recs)
    assert_same_records(recs, ck.consume(broker, topic, range(5), expected=50))

    for count in (3, 5):  # shrinking, and "no change", are both invalid
        fs = a.create_partitions([NewPartitions(topic, count)], operation_timeout=T)
        with pytest.raises(KafkaException) as e:
            fs[topic].result(timeout=T)
        assert e.value.args[0].code() == KafkaError.INVALID_PARTITIONS, e.value
    ck.wait_for_topic(broker, topic, 5)


def test_auto_create_on_produce(broker):
    topic = topic_name("ck-auto")
    p = ck.producer(broker)
    delivered = []
    p.produce(topic, value=b"v", key=b"k", on_delivery=lambda err, msg: delivered.append((err, msg.offset())))
    assert p.flush(30) == 0
    p.close()
    assert delivered == [(None, 0)]
    md = ck.admin(broker).list_topics(topic=topic, timeout=10)
    assert sorted(md.topics[topic].partitions) == [0], "auto-created topic must get num.partitions=1"
    got = ck.consume(broker, topic, [0], expected=1)
    assert [(r.key, r.value) for r in got] == [(b"k", b"v")]


def test_consume_from_offset_and_latest(broker):
    topic = topic_name("ck-seek")
    ck.create_topic(broker, topic, partitions=1)
    recs = make_records(500, partitions=1)
    ck.produce(broker, topic, recs)
    got = ck.consume(broker, topic, [0], expected=100, start=400, with_offsets=True)
    assert [o for o, _ in got] == list(range(400, 500))
    assert_same_records(recs[400:], [r for _, r in got])
    assert ck.consume(broker, topic, [0], expected=0, start=500) == []


def test_offsets_for_times_with_unordered_timestamps(broker):
    """Inside one batch the record timestamps decide, not the batch's max
    timestamp; the answer is the first offset (log order) with ts >= T."""
    topic = topic_name("ck-unordered-ts")
    ck.create_topic(broker, topic, partitions=1)
    base = make_records(1, partitions=1)[0].timestamp
    stamps = [100, 300, 200, 400, 250, 500]
    recs = [Rec(0, b"k%d" % i, b"v", (), base + s)
            for i, s in enumerate(stamps)]
    ck.produce(broker, topic, recs, **{"linger.ms": 200, "batch.num.messages": 100})
    c = ck.consumer(broker)
    try:
        for t, want in [(50, 0), (100, 0), (150, 1), (250, 1), (301, 3), (350, 3), (450, 5), (500, 5), (501, -1)]:
            res = c.offsets_for_times([TopicPartition(topic, 0, base + t)], timeout=10)
            assert res[0].offset == want, f"T=base+{t}: got {res[0].offset}, want {want}"
    finally:
        c.close()
