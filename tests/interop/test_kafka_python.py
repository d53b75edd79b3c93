"""kafka-python: produce/consume every codec, ListOffsets, admin APIs."""

from __future__ import annotations

import time

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, KafkaAdminClient
from kafka.errors import InvalidPartitionsError, TopicAlreadyExistsError

from records import (
    CODEC_IDS,
    stored_codecs,
    CODECS,
    PARTITIONS,
    RECORD_COUNT,
    TIMESTAMP_STEP_MS,
    Rec,
    assert_same_records,
    by_partition,
    first_offset_at_or_after,
    make_records,
    norm_headers,
    topic_name,
)

TIMEOUT_MS = 30_000


def admin(broker) -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=TIMEOUT_MS)


def create_topic(broker, name, partitions=1, configs=None):
    a = admin(broker)
    try:
        a.create_topics(
            {name: {"num_partitions": partitions, "replication_factor": 1, "configs": configs or {}}},
            wait_for_metadata=True,
        )
    finally:
        a.close()


def produce(broker, topic, recs, **conf):
    p = KafkaProducer(
        bootstrap_servers=broker.bootstrap,
        acks="all",
        linger_ms=10,
        enable_idempotence=False,
        request_timeout_ms=TIMEOUT_MS,
        **conf,
    )
    try:
        futures = [
            p.send(
                topic,
                value=r.value,
                key=r.key,
                headers=list(r.headers),
                partition=r.partition,
                timestamp_ms=r.timestamp,
            )
            for r in recs
        ]
        p.flush(timeout=60)
        metas = [f.get(timeout=60) for f in futures]
    finally:
        p.close(timeout=10)
    return [(m.partition, m.offset) for m in metas]


def consumer(broker, **conf) -> KafkaConsumer:
    return KafkaConsumer(
        bootstrap_servers=broker.bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=TIMEOUT_MS,
        **conf,
    )


def consume(broker, topic, partitions, expected, start_offsets=None, timeout=90, with_offsets=False):
    c = consumer(broker)
    try:
        tps = [TopicPartition(topic, p) for p in partitions]
        c.assign(tps)
        if start_offsets is None:
            c.seek_to_beginning(*tps)
        else:
            for tp in tps:
                c.seek(tp, start_offsets[tp.partition])
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < expected and time.monotonic() < deadline:
            for tp, msgs in c.poll(timeout_ms=500, max_records=5000).items():
                for m in msgs:
                    assert m.timestamp_type == 0, f"timestamp type {m.timestamp_type}"
                    rec = Rec(m.partition, m.key, m.value, norm_headers(m.headers), m.timestamp)
                    out.append((m.offset, rec) if with_offsets else rec)
        assert len(out) >= expected, f"timed out: {len(out)}/{expected} records"
        # Nothing beyond the expected records.
        extra = c.poll(timeout_ms=500)
        assert not any(extra.values()), f"unexpected extra records: {extra}"
        return out
    finally:
        c.close()


@pytest.mark.parametrize("codec", CODECS)
def test_produce_consume_roundtrip(broker, codec):
    topic = topic_name(f"kp-{codec}")
    create_topic(broker, topic, PARTITIONS)
    recs = make_records(RECORD_COUNT, null_headers=False)
    delivered = produce(broker, topic, recs, compression_type=None if codec == "none" else codec)
    for p, items in by_partition(recs).items():
        offs = [delivered[i][1] for i, r in enumerate(recs) if r.partition == p]
        assert offs == list(range(len(items)))
    got = consume(broker, topic, range(PARTITIONS), expected=len(recs))
    assert_same_records(recs, got)
    # kafka-python sends a batch uncompressed when compressing would not shrink it (a
    # batch of one small record, when the machine is busy and linger cuts batches short).
    stored = stored_codecs(broker.data_dir, topic)
    assert CODEC_IDS[codec] in stored and stored <= {0, CODEC_IDS[codec]}, stored


def test_list_offsets(broker):
    topic = topic_name("kp-offsets")
    create_topic(broker, topic, PARTITIONS)
    recs = make_records(3000, null_headers=False)
    produce(broker, topic, recs, batch_size=2048)
    base = recs[0].timestamp
    c = consumer(broker)
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        parts = by_partition(recs)
        assert c.beginning_offsets(tps) == {tp: 0 for tp in tps}
        assert c.end_offsets(tps) == {tp: len(parts[tp.partition]) for tp in tps}
        for ts in (base - 5, base + 777 * TIMESTAMP_STEP_MS + 1, base + 2500 * TIMESTAMP_STEP_MS):
            res = c.offsets_for_times({tp: ts for tp in tps})
            for tp in tps:
                want = first_offset_at_or_after(recs, tp.partition, ts)
                assert res[tp] is not None and res[tp].offset == want, (tp, ts, res[tp], want)
                assert res[tp].timestamp == parts[tp.partition][want].timestamp
        res = c.offsets_for_times({tp: recs[-1].timestamp + 1000 for tp in tps})
        assert all(v is None for v in res.values()), res
    finally:
        c.close()


def _topic_configs(a, topic):
    res = a.describe_configs([ConfigResource("TOPIC", topic)], config_filter="all")
    return res["topic"][topic]


def test_describe_and_alter_configs(broker):
    topic = topic_name("kp-configs")
    create_topic(broker, topic, 1)
    a = admin(broker)
    try:
        cfg = _topic_configs(a, topic)
        assert cfg["retention.ms"]["value"] == "604800000"
        assert cfg["retention.ms"]["config_source"] == "DEFAULT_CONFIG"
        assert cfg["cleanup.policy"]["value"] == "delete"

        res = a.alter_configs([ConfigResource("TOPIC", topic, {"retention.ms": "3600000"})], incremental=False)
        assert res == {"topic": {topic: "OK"}}
        cfg = _topic_configs(a, topic)
        assert cfg["retention.ms"]["value"] == "3600000"
        assert cfg["retention.ms"]["config_source"] == "DYNAMIC_TOPIC_CONFIG"

        res = a.alter_configs([ConfigResource("TOPIC", topic, {"segment.bytes": "2097152"})], incremental=True)
        assert res == {"topic": {topic: "OK"}}
        cfg = _topic_configs(a, topic)
        assert cfg["segment.bytes"]["value"] == "2097152"
        assert cfg["segment.bytes"]["config_source"] == "DYNAMIC_TOPIC_CONFIG"
        assert cfg["retention.ms"]["value"] == "3600000"

        res = a.reset_configs([ConfigResource("TOPIC", topic, ["retention.ms"])], incremental=True)
        assert res == {"topic": {topic: "OK"}}
        cfg = _topic_configs(a, topic)
        assert cfg["retention.ms"]["value"] == "604800000"
        assert cfg["retention.ms"]["config_source"] == "DEFAULT_CONFIG"
        assert cfg["segment.bytes"]["value"] == "2097152"
    finally:
        a.close()


def test_delete_records(broker):
    topic = topic_name("kp-delrec")
    create_topic(broker, topic, 1)
    recs = make_records(1000, partitions=1, null_headers=False)
    produce(broker, topic, recs)
    a = admin(broker)
    try:
        res = a.delete_records({TopicPartition(topic, 0): 250})
        assert res[TopicPartition(topic, 0)]["low_watermark"] == 250
    finally:
        a.close()
    c = consumer(broker)
    try:
        assert c.beginning_offsets([TopicPartition(topic, 0)]) == {TopicPartition(topic, 0): 250}
    finally:
        c.close()
    got = consume(broker, topic, [0], expected=750, with_offsets=True)
    assert [o for o, _ in got] == list(range(250, 1000))
    assert_same_records(recs[250:], [r for _, r in got])


def test_topics_and_partitions(broker):
    a = admin(broker)
    try:
        t1, t2 = topic_name("kp-admin"), topic_name("kp-admin")
        a.create_topics({t1: {"num_partitions": 2, "replication_factor": 1},
                         t2: {"num_partitions": 1, "replication_factor": 1}}, wait_for_metadata=True)
        assert {t1, t2} <= set(a.list_topics())
        with pytest.raises(TopicAlreadyExistsError):
            a.create_topics({t1: {"num_partitions": 2, "replication_factor": 1}})

        a.create_partitions({t1: 4})
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            desc = {t["name"]: t for t in a.describe_topics([t1])}
            if len(desc[t1]["partitions"]) == 4:
                break
            time.sleep(0.1)
        assert sorted(p["partition_index"] for p in desc[t1]["partitions"]) == [0, 1, 2, 3]
        with pytest.raises(InvalidPartitionsError):
            a.create_partitions({t1: 2})

        a.delete_topics([t2])
        deadline = time.monotonic() + 10
        while t2 in a.list_topics() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert t2 not in a.list_topics()
        assert t1 in a.list_topics()
    finally:
        a.close()


def test_auto_create_on_produce(broker):
    topic = topic_name("kp-auto")
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, enable_idempotence=False, acks=1)
    try:
        meta = p.send(topic, key=b"k", value=b"v").get(timeout=30)
    finally:
        p.close(timeout=10)
    assert (meta.partition, meta.offset) == (0, 0)
    a = admin(broker)
    try:
        desc = a.describe_topics([topic])
    finally:
        a.close()
    assert [p["partition_index"] for p in desc[0]["partitions"]] == [0]
