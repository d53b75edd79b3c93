"""aiokafka: produce/consume every codec, ListOffsets, admin APIs (asyncio)."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic, RecordsToDelete
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import InvalidPartitionsError

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

DEFAULT_CONFIG = 5
DYNAMIC_TOPIC_CONFIG = 1


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, timeout=120))


async def admin(broker) -> AIOKafkaAdminClient:
    a = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=30000)
    await a.start()
    return a


async def create_topic(broker, name, partitions=1, configs=None):
    a = await admin(broker)
    try:
        resp = await a.create_topics([NewTopic(name, partitions, 1, topic_configs=configs or {})])
        errors = [(t[0], t[1]) for t in resp.topic_errors if t[1] != 0]
        assert not errors, errors
        for _ in range(100):
            desc = await a.describe_topics([name])
            if desc and desc[0]["error_code"] == 0 and len(desc[0]["partitions"]) == partitions:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"topic {name} not visible")
    finally:
        await a.close()


async def produce(broker, topic, recs, **conf):
    p = AIOKafkaProducer(
        bootstrap_servers=broker.bootstrap, acks="all", linger_ms=10, enable_idempotence=False, **conf
    )
    await p.start()
    try:
        futs = []
        for r in recs:
            futs.append(
                await p.send(
                    topic,
                    value=r.value,
                    key=r.key,
                    partition=r.partition,
                    timestamp_ms=r.timestamp,
                    headers=list(r.headers),
                )
            )
        metas = await asyncio.gather(*futs)
    finally:
        await p.stop()
    return [(m.partition, m.offset) for m in metas]


async def consume(broker, topic, partitions, expected, with_offsets=False):
    c = AIOKafkaConsumer(
        bootstrap_servers=broker.bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await c.start()
    try:
        tps = [TopicPartition(topic, p) for p in partitions]
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        out = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 90
        while len(out) < expected and loop.time() < deadline:
            batch = await c.getmany(timeout_ms=500, max_records=5000)
            for tp, msgs in batch.items():
                for m in msgs:
                    assert m.timestamp_type == 0
                    rec = Rec(m.partition, m.key, m.value, norm_headers(m.headers), m.timestamp)
                    out.append((m.offset, rec) if with_offsets else rec)
        assert len(out) >= expected, f"timed out: {len(out)}/{expected}"
        extra = await c.getmany(timeout_ms=500)
        assert not any(extra.values()), f"unexpected extra records: {extra}"
        return out
    finally:
        await c.stop()


@pytest.mark.parametrize("codec", CODECS)
def test_produce_consume_roundtrip(broker, codec):
    async def body():
        topic = topic_name(f"aio-{codec}")
        await create_topic(broker, topic, PARTITIONS)
        recs = make_records(RECORD_COUNT)
        delivered = await produce(broker, topic, recs, compression_type=None if codec == "none" else codec)
        for p, items in by_partition(recs).items():
            offs = [delivered[i][1] for i, r in enumerate(recs) if r.partition == p]
            assert offs == list(range(len(items)))
        got = await consume(broker, topic, range(PARTITIONS), expected=len(recs))
        assert_same_records(recs, got)
        assert stored_codecs(broker.data_dir, topic) == {CODEC_IDS[codec]}

    run(body())


def test_list_offsets(broker):
    async def body():
        topic = topic_name("aio-offsets")
        await create_topic(broker, topic, PARTITIONS)
        recs = make_records(3000)
        await produce(broker, topic, recs, max_batch_size=4096)
        parts = by_partition(recs)
        base = recs[0].timestamp
        c = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, enable_auto_commit=False)
        await c.start()
        try:
            tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
            assert await c.beginning_offsets(tps) == {tp: 0 for tp in tps}
            assert await c.end_offsets(tps) == {tp: len(parts[tp.partition]) for tp in tps}
            for ts in (base - 5, base + 1500 * TIMESTAMP_STEP_MS + 7, recs[-1].timestamp):
                res = await c.offsets_for_times({tp: ts for tp in tps})
                for tp in tps:
                    want = first_offset_at_or_after(recs, tp.partition, ts)
                    if want < 0:
                        assert res[tp] is None
                    else:
                        assert res[tp] is not None and res[tp].offset == want, (tp, ts, res[tp], want)
        finally:
            await c.stop()

    run(body())


def _entries(resp, topic):
    obj = resp.to_object()
    for res in obj["resources"]:
        if res["resource_name"] == topic:
            assert res["error_code"] == 0, res
            return {e["config_names"]: e for e in res["config_entries"]}
    raise AssertionError(f"{topic} not in {obj}")


def test_describe_and_alter_configs(broker):
    async def body():
        topic = topic_name("aio-configs")
        await create_topic(broker, topic, 1)
        a = await admin(broker)
        try:
            [resp] = await a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
            cfg = _entries(resp, topic)
            assert cfg["retention.ms"]["config_value"] == "604800000"
            assert cfg["retention.ms"]["config_source"] == DEFAULT_CONFIG

            [resp] = await a.alter_configs(
                [ConfigResource(ConfigResourceType.TOPIC, topic, {"retention.ms": "3600000"})]
            )
            for r in resp.to_object()["resources"]:
                assert r["error_code"] == 0, r
            [resp] = await a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
            cfg = _entries(resp, topic)
            assert cfg["retention.ms"]["config_value"] == "3600000"
            assert cfg["retention.ms"]["config_source"] == DYNAMIC_TOPIC_CONFIG
        finally:
            await a.close()

    run(body())


def test_delete_records_and_partitions(broker):
    async def body():
        topic = topic_name("aio-admin")
        await create_topic(broker, topic, 1)
        recs = make_records(600, partitions=1)
        await produce(broker, topic, recs)
        a = await admin(broker)
        try:
            res = await a.delete_records({TopicPartition(topic, 0): RecordsToDelete(100)})
            assert res == {TopicPartition(topic, 0): 100}

            await a.create_partitions({topic: NewPartitions(3)})
            with pytest.raises(InvalidPartitionsError):
                await a.create_partitions({topic: NewPartitions(2)})
            desc = await a.describe_topics([topic])
            assert len(desc[0]["partitions"]) == 3

            assert topic in await a.list_topics()
            resp = await a.delete_topics([topic])
            assert all(t[1] == 0 for t in resp.topic_error_codes), resp
            for _ in range(100):
                if topic not in await a.list_topics():
                    break
                await asyncio.sleep(0.1)
            assert topic not in await a.list_topics()
        finally:
            await a.close()

    run(body())


def test_delete_records_reads(broker):
    async def body():
        topic = topic_name("aio-delrec")
        await create_topic(broker, topic, 1)
        recs = make_records(600, partitions=1)
        await produce(broker, topic, recs)
        a = await admin(broker)
        try:
            await a.delete_records({TopicPartition(topic, 0): RecordsToDelete(100)})
        finally:
            await a.close()
        got = await consume(broker, topic, [0], expected=500, with_offsets=True)
        assert [o for o, _ in got] == list(range(100, 600))
        assert_same_records(recs[100:], [r for _, r in got])

    run(body())
