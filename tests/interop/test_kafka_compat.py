"""Kafka behaviours that admin tools and client test suites rely on: dynamic broker
configs (per broker and cluster-wide, persisted, applied live), per-record produce
errors, and `message.format.version` accepted and ignored as Kafka 3.x does."""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource

import struct

import kafka_wire as kw
from ck_util import ADMIN_TIMEOUT_S, admin, create_topic, producer, watermarks
from records import topic_name


def describe(broker, kind, name) -> dict:
    res = ConfigResource(kind, name)
    return admin(broker).describe_configs([res])[res].result(timeout=ADMIN_TIMEOUT_S)


def alter(broker, kind, name, *ops) -> None:
    entries = [ConfigEntry(key, value, incremental_operation=op) for key, value, op in ops]
    res = ConfigResource(kind, name, incremental_configs=entries)
    admin(broker).incremental_alter_configs([res])[res].result(timeout=ADMIN_TIMEOUT_S)


def alter_error(broker, kind, name, key, value) -> KafkaError:
    try:
        alter(broker, kind, name, (key, value, AlterConfigOpType.SET))
    except KafkaException as e:
        return e.args[0]
    raise AssertionError(f"setting {key} succeeded")


def send(broker, topic: str, size: int) -> KafkaError | None:
    outcome = []
    p = producer(broker, **{"retries": 0, "message.timeout.ms": 10000, "message.max.bytes": 10_000_000})
    p.produce(topic, value=b"x" * size, partition=0, on_delivery=lambda err, msg: outcome.append(err))
    p.flush(20)
    assert len(outcome) == 1
    return outcome[0]


BROKER = ConfigResource.Type.BROKER
TOPIC = ConfigResource.Type.TOPIC


# confluent-kafka refuses the cluster-wide BROKER entity (an empty name), which
# kafka-configs --entity-default uses; these two go over the wire by hand.
def set_cluster_default(broker, key: str, value: str) -> int:
    """IncrementalAlterConfigs v0 on BROKER "": returns the error code."""
    body = kw.array([kw.i8(4) + kw.string("") + kw.array([kw.string(key) + kw.i8(0) + kw.string(value)])]) + kw.i8(0)
    with kw.Conn(broker.port) as c:
        c.send(kw.request(44, 0, 3, body))
        _, resp = c.recv_frame()
    (count,) = struct.unpack_from(">i", resp, 4)
    assert count == 1
    (error,) = struct.unpack_from(">h", resp, 8)
    return error


def describe_cluster_default(broker) -> dict[str, tuple[str, int]]:
    """DescribeConfigs v1 on BROKER "": {name: (value, source)}."""
    body = kw.array([kw.i8(4) + kw.string("") + kw.i32(-1)]) + kw.i8(0)
    with kw.Conn(broker.port) as c:
        c.send(kw.request(32, 1, 4, body))
        _, resp = c.recv_frame()
    at = 4

    def take(fmt):
        nonlocal at
        values = struct.unpack_from(fmt, resp, at)
        at += struct.calcsize(fmt)
        return values[0]

    def text():
        nonlocal at
        n = take(">h")
        if n < 0:
            return None
        value = resp[at : at + n].decode()
        at += n
        return value

    assert take(">i") == 1
    assert take(">h") == 0, "error code"
    text(), take(">b"), text()
    out = {}
    for _ in range(take(">i")):
        name, value = text(), text()
        take(">b")
        source = take(">b")
        take(">b")
        for _ in range(take(">i")):
            text(), text(), take(">b")
        out[name] = (value, source)
    return out


def test_dynamic_broker_configs_apply_live_and_persist(broker):
    topic = topic_name("dyn")
    create_topic(broker, topic, 1)
    before = describe(broker, BROKER, "1")
    assert before["message.max.bytes"].source == ConfigSource.DEFAULT_CONFIG.value
    assert not before["message.max.bytes"].is_read_only
    assert before["listeners"].is_read_only
    assert send(broker, topic, 5000) is None

    # This broker: beats the static value, applies to topics without an override.
    alter(broker, BROKER, "1", ("message.max.bytes", "2000", AlterConfigOpType.SET))
    entry = describe(broker, BROKER, "1")["message.max.bytes"]
    assert (entry.value, entry.source) == ("2000", ConfigSource.DYNAMIC_BROKER_CONFIG.value)
    topic_entry = describe(broker, TOPIC, topic)["max.message.bytes"]
    assert (topic_entry.value, topic_entry.source) == ("2000", ConfigSource.DYNAMIC_BROKER_CONFIG.value)
    refused = send(broker, topic, 5000)
    assert refused is not None and refused.code() == KafkaError.MSG_SIZE_TOO_LARGE, refused

    # Every broker (""): below this broker's own value, above the static one.
    assert set_cluster_default(broker, "log.retention.ms", "123456") == 0
    assert describe_cluster_default(broker) == {
        "log.retention.ms": ("123456", ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value)
    }
    assert set_cluster_default(broker, "log.dirs", "/x") == KafkaError.INVALID_REQUEST
    retention = describe(broker, TOPIC, topic)["retention.ms"]
    assert (retention.value, retention.source) == ("123456", ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value)

    # Connection limits are dynamic too (the listener checks them at each accept).
    assert not before["max.connections"].is_read_only
    alter(broker, BROKER, "1", ("max.connections", "5000", AlterConfigOpType.SET))
    limit = describe(broker, BROKER, "1")["max.connections"]
    assert (limit.value, limit.source) == ("5000", ConfigSource.DYNAMIC_BROKER_CONFIG.value)

    # Settings read once at start are refused with Kafka's error.
    for key, value in [("listeners", "PLAINTEXT://0.0.0.0:1"), ("log.dirs", "/tmp/elsewhere")]:
        error = alter_error(broker, BROKER, "1", key, value)
        assert error.code() == KafkaError.INVALID_REQUEST, error
        assert "Cannot update these configs dynamically" in error.str()
    error = alter_error(broker, BROKER, "1", "message.max.bytes", "lots")
    assert error.code() == KafkaError.INVALID_CONFIG, error

    broker.restart()
    assert describe(broker, BROKER, "1")["message.max.bytes"].value == "2000"
    assert describe(broker, TOPIC, topic)["retention.ms"].value == "123456"
    assert send(broker, topic, 5000).code() == KafkaError.MSG_SIZE_TOO_LARGE

    alter(broker, BROKER, "1", ("message.max.bytes", "", AlterConfigOpType.DELETE))
    assert describe(broker, BROKER, "1")["message.max.bytes"].source == ConfigSource.DEFAULT_CONFIG.value
    assert send(broker, topic, 5000) is None


def test_message_format_version_is_accepted_and_ignored(broker):
    topic = topic_name("mfv")
    create_topic(broker, topic, 1, {"message.format.version": "2.8"})
    alter(
        broker,
        TOPIC,
        topic,
        ("message.format.version", "0.10.0", AlterConfigOpType.SET),
        ("retention.ms", "5000000", AlterConfigOpType.SET),
    )
    configs = describe(broker, TOPIC, topic)
    assert configs["retention.ms"].value == "5000000"
    assert "message.format.version" not in configs


def test_keyless_records_on_a_compacted_topic_fail_with_invalid_record(broker):
    topic = topic_name("compact")
    create_topic(broker, topic, 1, {"cleanup.policy": "compact"})
    outcomes = {}
    p = producer(broker, **{"linger.ms": 2000, "retries": 0})
    p.list_topics(topic, timeout=10)  # metadata first, so the records go out together
    for i in range(100):
        key = None if i % 10 == 5 else f"k{i}".encode()
        p.produce(topic, key=key, value=b"v", partition=0, on_delivery=lambda err, msg, i=i: outcomes.__setitem__(i, err))
    p.flush(20)
    assert len(outcomes) == 100
    # librdkafka reads the per-record errors: the keyless records fail with the broker's
    # INVALID_RECORD, the others with "an invalid record in the same batch caused the
    # failure of this message too" (without record errors all 100 would be INVALID_RECORD).
    different = getattr(KafkaError, "_INVALID_DIFFERENT_RECORD", -138)
    # (The exact indexes are checked by the wire test. librdkafka may still split the
    # records over batches: a batch without keyless records is stored.)
    codes = {i: err.code() if err is not None else None for i, err in outcomes.items()}
    assert all(codes[i] == KafkaError.INVALID_RECORD for i in range(100) if i % 10 == 5), codes
    assert all(codes[i] in (None, different) for i in range(100) if i % 10 != 5), codes
    assert sum(1 for c in codes.values() if c == different) >= 50, codes
    stored = sum(1 for c in codes.values() if c is None)
    assert watermarks(broker, topic, 0) == (0, stored), "only batches without keyless records are stored"
