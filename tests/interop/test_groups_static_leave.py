"""Static members (`group.instance.id`) that close, with librdkafka, as Kafka treats them.

A classic static consumer closes without LeaveGroup; a KIP-848 one leaves with member
epoch -2. Either way the member keeps its place (and its partitions) until its session
runs out, so DeleteGroups answers NON_EMPTY_GROUP until then, and succeeds as soon as
the deadline has passed (the broker expires members at their deadline, and a request
applies the clock before looking at the group).
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException

import ck_util as ck
from group_util import group_name, start_group_broker, wait_until
from records import topic_name

SESSION_MS = 2000
HEARTBEAT_MS = 500
# Time allowed between the deadline and a successful DeleteGroups: one admin round trip.
LATE_S = 0.3
ADMIN_TIMEOUT_S = 10


def delete_group(broker, group: str) -> int:
    """DeleteGroups for one group: 0 or the Kafka error code."""
    future = ck.admin(broker).delete_consumer_groups([group], request_timeout=ADMIN_TIMEOUT_S)[group]
    try:
        future.result(ADMIN_TIMEOUT_S)
        return 0
    except KafkaException as e:
        return e.args[0].code()


@pytest.mark.parametrize("protocol", ["classic", "consumer"])
def test_a_static_member_that_closed_keeps_the_group_until_its_session_deadline(broker_factory, protocol):
    broker = start_group_broker(
        broker_factory,
        **{"group.consumer.session.timeout.ms": SESSION_MS, "group.consumer.heartbeat.interval.ms": HEARTBEAT_MS},
    )
    topic = topic_name("static-leave")
    group = group_name(f"static-leave-{protocol}")
    ck.create_topic(broker, topic, partitions=2)
    conf = {
        "bootstrap.servers": broker.bootstrap,
        "group.id": group,
        "group.protocol": protocol,
        "group.instance.id": "instance-1",
        "enable.auto.commit": False,
    }
    if protocol == "classic":
        # KIP-848 members get these from the broker settings above.
        conf.update({"session.timeout.ms": SESSION_MS, "heartbeat.interval.ms": HEARTBEAT_MS})
    consumer = Consumer(conf)
    try:
        consumer.subscribe([topic])

        def assigned():
            consumer.poll(0.1)
            return len(consumer.assignment()) == 2

        wait_until(assigned, 30, f"the static {protocol} member to own both partitions")
    finally:
        consumer.close()
    closed = time.monotonic()

    assert delete_group(broker, group) == KafkaError.NON_EMPTY_GROUP
    while True:
        code = delete_group(broker, group)
        elapsed = time.monotonic() - closed
        if code == 0:
            break
        assert code == KafkaError.NON_EMPTY_GROUP, code
        assert elapsed < SESSION_MS / 1000 + LATE_S, f"still not deletable {elapsed:.2f}s after close"
        time.sleep(0.02)
    # The last heartbeat came at most one interval before close.
    earliest = (SESSION_MS - HEARTBEAT_MS) / 1000
    assert elapsed >= earliest - 0.05, f"deleted {elapsed:.2f}s after close: the session had not run out"
