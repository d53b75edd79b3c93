"""The coordinators' topics (`__consumer_offsets`, `__transaction_state`) are protected
from clients as in Kafka: no deleting them or their records, no new partitions, no
producing, and their data-keeping configs stay fixed. Committed offsets survive every
attempt."""

from __future__ import annotations

import resource

from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, NewPartitions

from ck_util import ADMIN_TIMEOUT_S, admin, consumer, create_topic, producer
from conftest import Broker
from records import topic_name

OFFSETS = "__consumer_offsets"


def error_code(future) -> int:
    try:
        future.result(timeout=ADMIN_TIMEOUT_S)
    except KafkaException as e:
        return e.args[0].code()
    raise AssertionError("the request succeeded")


def commit_an_offset(broker, group: str, topic: str) -> None:
    c = consumer(broker, **{"group.id": group})
    try:
        c.commit(offsets=[TopicPartition(topic, 0, 7)], asynchronous=False)
    finally:
        c.close()


def committed(broker, group: str, topic: str) -> int:
    c = consumer(broker, **{"group.id": group})
    try:
        return c.committed([TopicPartition(topic, 0)], timeout=10)[0].offset
    finally:
        c.close()


def test_internal_topics_refuse_what_would_lose_committed_offsets(broker):
    topic = topic_name("user")
    group = topic_name("group")
    create_topic(broker, topic, 1)
    commit_an_offset(broker, group, topic)
    a = admin(broker)

    deleted = a.delete_topics([OFFSETS], operation_timeout=ADMIN_TIMEOUT_S)[OFFSETS]
    assert error_code(deleted) == KafkaError.TOPIC_EXCEPTION

    grown = a.create_partitions([NewPartitions(OFFSETS, 60)])[OFFSETS]
    assert error_code(grown) == KafkaError.INVALID_PARTITIONS

    for name, value in [("cleanup.policy", "delete"), ("retention.ms", "1"), ("retention.bytes", "1")]:
        entry = ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)
        res = ConfigResource(ConfigResource.Type.TOPIC, OFFSETS, incremental_configs=[entry])
        altered = a.incremental_alter_configs([res])[res]
        assert error_code(altered) == KafkaError.POLICY_VIOLATION, name
    # Settings that keep no data stay adjustable.
    entry = ConfigEntry("segment.ms", "3600000", incremental_operation=AlterConfigOpType.SET)
    res = ConfigResource(ConfigResource.Type.TOPIC, OFFSETS, incremental_configs=[entry])
    a.incremental_alter_configs([res])[res].result(timeout=ADMIN_TIMEOUT_S)

    trimmed = a.delete_records([TopicPartition(OFFSETS, p, 1) for p in range(50)])
    codes = {error_code(f) for f in trimmed.values() if f is not None}
    assert codes == {KafkaError.TOPIC_EXCEPTION}, codes

    errors = []
    p = producer(broker, **{"message.timeout.ms": 10000, "retries": 0})
    p.produce(OFFSETS, value=b"junk", partition=0, on_delivery=lambda err, msg: errors.append(err))
    p.flush(20)
    assert len(errors) == 1 and errors[0] is not None and errors[0].code() == KafkaError.TOPIC_EXCEPTION, errors

    assert committed(broker, group, topic) == 7
    broker.restart()
    assert committed(broker, group, topic) == 7


def test_a_user_topic_named_with_two_underscores_is_an_ordinary_topic(broker):
    name = "__" + topic_name("mine")
    create_topic(broker, name, 1)
    deleted = admin(broker).delete_topics([name], operation_timeout=ADMIN_TIMEOUT_S)[name]
    deleted.result(timeout=ADMIN_TIMEOUT_S)


def test_a_listener_beyond_loopback_warns_that_there_is_no_authentication(tmp_path):
    b = Broker(tmp_path / "open")
    b.settings["listeners"] = f"PLAINTEXT://0.0.0.0:{b.port}"
    b.settings["advertised.listeners"] = f"PLAINTEXT://127.0.0.1:{b.port}"
    b.start()
    try:
        assert "no authentication" in b.log_path.read_text()
    finally:
        b.stop()
    loopback = Broker(tmp_path / "closed").start()
    try:
        assert "no authentication" not in loopback.log_path.read_text()
    finally:
        loopback.stop()


def test_the_open_file_limit_is_raised_at_start(tmp_path):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    low = min(1024, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))
    try:
        b = Broker(tmp_path / "fds").start()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    try:
        with open(f"/proc/{b.pid()}/limits") as f:
            line = next(l for l in f if l.startswith("Max open files"))
        broker_soft = line.split()[3]
        assert broker_soft == str(hard) or (broker_soft == "unlimited" and hard == resource.RLIM_INFINITY), line
    finally:
        b.stop()
