"""Committed offsets: a restarted consumer resumes where its group committed; a
restarted broker (SIGTERM and SIGKILL) keeps every acknowledged commit with its
metadata string, and the group; metadata strings round-trip between clients."""

from __future__ import annotations

import asyncio
import time

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from kafka import KafkaConsumer
from kafka import TopicPartition as KTopicPartition
from kafka.admin import KafkaAdminClient
from kafka.structs import OffsetAndMetadata

import ck_util as ck
from group_util import (
    EMPTY,
    ck_group_consumer,
    ck_read_group,
    ck_sent,
    committed_offsets,
    describe_group,
    kp_committed_offsets,
    group_name,
    list_groups,
    produce_numbered,
    start_group_broker,
)
from records import topic_name

PER_PARTITION = 100
# kafka-python members: see README (a short initial delay avoids a client bug).
DELAYED = {"group.initial.rebalance.delay.ms": 500}


def kp_group_consumer(broker, topic, group) -> KafkaConsumer:
    return KafkaConsumer(
        topic,
        bootstrap_servers=broker.bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=6000,
        heartbeat_interval_ms=500,
        request_timeout_ms=30000,
    )


def kp_read(c: KafkaConsumer, want: int, timeout: float = 40) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    deadline = time.monotonic() + timeout
    while len(out) < want and time.monotonic() < deadline:
        for tp, msgs in c.poll(timeout_ms=500, max_records=want - len(out)).items():
            out += [(m.partition, m.offset) for m in msgs]
    assert len(out) >= want, f"kafka-python read {len(out)}/{want} records in {timeout}s"
    return out


# ------------------------------------------------------------------ consumer restart


@pytest.mark.parametrize("client", ["confluent", "kafka-python"])
def test_consumer_restart_resumes_from_committed_offset(broker_factory, client):
    broker = start_group_broker(broker_factory, **DELAYED)
    parts = 2
    topic = topic_name("grp-resume")
    group = group_name(f"resume-{client}")
    ck.create_topic(broker, topic, partitions=parts)
    produce_numbered(broker, topic, parts * PER_PARTITION, parts)

    # First consumer: read 100 records, commit what it has read after 70 of them,
    # process the other 30 without committing, go away.
    if client == "confluent":
        c = ck_group_consumer(broker, group)
        c.subscribe([topic])
        try:
            first = ck_read_group(c, topic, parts, limit=70)
            commit_at = {p: max(o for q, o in first if q == p) + 1 for p in {q for q, _ in first}}
            c.commit(offsets=[TopicPartition(topic, p, o) for p, o in commit_at.items()], asynchronous=False)
            first += ck_read_group(c, topic, parts, limit=30)
        finally:
            c.close()
    else:
        c = kp_group_consumer(broker, topic, group)
        try:
            first = kp_read(c, 70)
            commit_at = {p: max(o for q, o in first if q == p) + 1 for p in {q for q, _ in first}}
            c.commit({KTopicPartition(topic, p): OffsetAndMetadata(o, "", -1) for p, o in commit_at.items()})
            first += kp_read(c, 30)
        finally:
            c.close(autocommit=False)

    assert kp_committed_offsets(broker, group) == {(topic, p): (o, "") for p, o in commit_at.items()}

    # Second consumer, same group, same client: starts exactly at the commits.
    if client == "confluent":
        c = ck_group_consumer(broker, group)
        c.subscribe([topic])
        try:
            second = ck_read_group(c, topic, parts)
        finally:
            c.close()
    else:
        c = kp_group_consumer(broker, topic, group)
        try:
            expected_n = sum(PER_PARTITION - commit_at.get(p, 0) for p in range(parts))
            second = kp_read(c, expected_n)
            time.sleep(0.5)
            second += [(m.partition, m.offset) for ms in c.poll(timeout_ms=500).values() for m in ms]
        finally:
            c.close(autocommit=False)

    for p in range(parts):
        start = commit_at.get(p, 0)
        got = [o for q, o in second if q == p]
        assert got == list(range(start, PER_PARTITION)), (
            f"partition {p}: committed {start}, second consumer read {got[:5]}..{got[-3:]} ({len(got)})")
    committed_records = {(p, o) for p, o in first if o < commit_at.get(p, 0)}
    redelivered = set(second) & set(first)
    assert not (set(second) & committed_records), "committed records were delivered again"
    assert redelivered == {(p, o) for p, o in first if o >= commit_at.get(p, 0)}, (
        "only the records read after the commit are redelivered")


# ------------------------------------------------------------------ broker restart

METADATA = {0: "checkpoint-0", 1: "ünïcödé ✓ {\"json\": [1, 2]}", 2: ""}


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_broker_restart_keeps_committed_offsets_and_group(broker_factory, how):
    broker = start_group_broker(broker_factory, **DELAYED)
    parts = 3
    topic = topic_name(f"grp-restart-{how}")
    group = group_name(f"restart-{how}")
    kp_group = group_name(f"restart-kp-{how}")
    ck.create_topic(broker, topic, partitions=parts)
    produce_numbered(broker, topic, parts * PER_PARTITION, parts)

    c = ck_group_consumer(broker, group)
    c.subscribe([topic])
    try:
        ck_read_group(c, topic, parts, limit=60)
        commits = {0: 17, 1: 42, 2: PER_PARTITION}
        c.commit(offsets=[TopicPartition(topic, p, o, metadata=METADATA[p]) for p, o in commits.items()],
                 asynchronous=False)
        # The last commit is acknowledged immediately before the broker goes down.
        commits[0] = 23
        c.commit(offsets=[TopicPartition(topic, 0, 23, metadata="late commit")], asynchronous=False)
    finally:
        c.close()
    expected = {0: (23, "late commit"), 1: (42, METADATA[1]), 2: (PER_PARTITION, "")}
    assert committed_offsets(broker, group, topic, range(parts)) == expected

    # A second group, committed by kafka-python.
    kc = kp_group_consumer(broker, topic, kp_group)
    try:
        kp_read(kc, 10)
        kc.commit({KTopicPartition(topic, 1): OffsetAndMetadata(7, "kafka-python meta", -1)})
    finally:
        kc.close(autocommit=False)

    # Empty groups (nobody is a member any more) right before the restart.
    before = list_groups(broker)
    assert group in before and kp_group in before

    broker.clients.clear()
    if how == "sigterm":
        broker.stop()
    else:
        broker.kill()
    broker.start()
    ck.wait_for_topic(broker, topic, parts)

    groups = list_groups(broker)
    assert group in groups and kp_group in groups, f"groups after restart: {sorted(groups)}"
    assert groups[group].state == EMPTY, groups[group].state
    desc = describe_group(broker, group)
    assert desc.state == EMPTY and not desc.members

    # Admin OffsetFetch, the consumer's committed(), and kafka-python all agree.
    assert committed_offsets(broker, group, topic, range(parts)) == expected
    assert kp_committed_offsets(broker, kp_group) == {(topic, 1): (7, "kafka-python meta")}
    assert kp_committed_offsets(broker, group) == {(topic, p): (o, ck_sent(m)) for p, (o, m) in expected.items()}
    c = ck_group_consumer(broker, group)
    try:
        got = c.committed([TopicPartition(topic, p) for p in range(parts)], timeout=20)
        assert {tp.partition: (tp.offset, tp.metadata or "") for tp in got} == expected
    finally:
        c.close()

    # A consumer in the group continues from the committed offsets.
    c = ck_group_consumer(broker, group)
    c.subscribe([topic])
    try:
        rest = ck_read_group(c, topic, parts)
    finally:
        c.close()
    for p in range(parts):
        got = [o for q, o in rest if q == p]
        assert got == list(range(expected[p][0], PER_PARTITION)), (
            f"partition {p}: committed {expected[p][0]}, read {got[:3]}... ({len(got)})")


# ------------------------------------------------------------------ metadata strings


def test_commit_metadata_round_trips_between_clients(broker_factory):
    broker = start_group_broker(broker_factory)
    parts = 3
    topic = topic_name("grp-meta")
    ck.create_topic(broker, topic, partitions=parts)
    produce_numbered(broker, topic, 30, parts)
    g_ck, g_kp, g_aio = group_name("meta-ck"), group_name("meta-kp"), group_name("meta-aio")
    long_meta = "x" * 4000  # under offset.metadata.max.bytes (4096)

    # confluent-kafka commits (manual assignment, no subscription) ...
    c = ck_group_consumer(broker, g_ck)
    try:
        res = c.commit(offsets=[
            TopicPartition(topic, 0, 3, metadata="ck-meta-0"),
            TopicPartition(topic, 1, 5, metadata=long_meta),
            TopicPartition(topic, 2, 7, metadata=""),
        ], asynchronous=False)
        assert all(tp.error is None for tp in res), res
        got = c.committed([TopicPartition(topic, p) for p in range(parts)], timeout=20)
        assert [(tp.offset, tp.metadata or "") for tp in got] == [(3, "ck-meta-0"), (5, long_meta), (7, "")]

        # ... and a metadata string over the limit is refused: OFFSET_METADATA_TOO_LARGE.
        with pytest.raises(KafkaException) as info:
            c.commit(offsets=[TopicPartition(topic, 0, 9, metadata="y" * 5000)], asynchronous=False)
        assert info.value.args[0].code() == KafkaError.OFFSET_METADATA_TOO_LARGE, info.value
        assert c.committed([TopicPartition(topic, 0)], timeout=20)[0].offset == 3
    finally:
        c.close()

    # kafka-python reads confluent's metadata, and commits its own.
    kc = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=g_kp, enable_auto_commit=False,
                       request_timeout_ms=30000)
    ka = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=30000)
    try:
        kc.assign([KTopicPartition(topic, p) for p in range(parts)])
        kc.commit({KTopicPartition(topic, 0): OffsetAndMetadata(4, "kp-meta ✓", -1),
                   KTopicPartition(topic, 2): OffsetAndMetadata(9, "", -1)})
        om = kc.committed(KTopicPartition(topic, 0), metadata=True)
        assert (om.offset, om.metadata) == (4, "kp-meta ✓")
        from_ck = ka.list_group_offsets({g_ck: None})[g_ck]
        # Byte for byte what confluent-kafka-python sent (see ck_sent).
        assert {tp.partition: (o.offset, o.metadata) for tp, o in from_ck.items()} == {
            0: (3, ck_sent("ck-meta-0")), 1: (5, ck_sent(long_meta)), 2: (7, ck_sent(""))}
    finally:
        kc.close(autocommit=False)
        ka.close()
    assert kp_committed_offsets(broker, g_kp) == {(topic, 0): (4, "kp-meta ✓"), (topic, 2): (9, "")}

    # aiokafka commits (offset, metadata) tuples.
    async def aio_commit():
        from aiokafka import AIOKafkaConsumer
        from aiokafka.structs import TopicPartition as ATopicPartition

        ac = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=g_aio, enable_auto_commit=False)
        await ac.start()
        try:
            ac.assign([ATopicPartition(topic, 1)])
            await ac.commit({ATopicPartition(topic, 1): (6, "aio-meta")})
            return await ac.committed(ATopicPartition(topic, 1))
        finally:
            await ac.stop()

    assert asyncio.run(asyncio.wait_for(aio_commit(), 60)) == 6
    assert kp_committed_offsets(broker, g_aio) == {(topic, 1): (6, "aio-meta")}
