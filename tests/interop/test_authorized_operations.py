"""Authorized operations (KIP-430) with confluent-kafka's AdminClient.

Strom has no authorizer, so, like Kafka without one, it allows every operation that
applies to a resource type (Kafka 4's `AclEntry.supportedOperations`); a client that
does not ask gets none (Kafka's "not requested" value, which librdkafka reports as
None). Cluster operations travel in DescribeCluster, topic operations in Metadata,
group operations in DescribeGroups (classic groups) and ConsumerGroupDescribe
(KIP-848 groups).
"""

from __future__ import annotations

import pytest
from confluent_kafka.admin import AclOperation as Op
from confluent_kafka import Consumer, ConsumerGroupType, TopicCollection

import ck_util as ck
from group_util import group_name, start_group_broker, wait_until
from records import topic_name

ADMIN_TIMEOUT_S = 30

CLUSTER_OPS = {
    Op.CREATE, Op.CLUSTER_ACTION, Op.DESCRIBE_CONFIGS, Op.ALTER_CONFIGS, Op.IDEMPOTENT_WRITE, Op.ALTER, Op.DESCRIBE,
}
TOPIC_OPS = {Op.READ, Op.WRITE, Op.CREATE, Op.DESCRIBE, Op.DELETE, Op.ALTER, Op.DESCRIBE_CONFIGS, Op.ALTER_CONFIGS}
GROUP_OPS = {Op.READ, Op.DESCRIBE, Op.DELETE, Op.DESCRIBE_CONFIGS, Op.ALTER_CONFIGS}


def operations(ops):
    """The operations a description carries, None when the broker sent none."""
    return None if ops is None else set(ops)


def test_describe_cluster_reports_cluster_operations(broker):
    admin = ck.admin(broker)
    asked = admin.describe_cluster(include_authorized_operations=True, request_timeout=ADMIN_TIMEOUT_S)
    assert operations(asked.result(ADMIN_TIMEOUT_S).authorized_operations) == CLUSTER_OPS
    not_asked = admin.describe_cluster(request_timeout=ADMIN_TIMEOUT_S)
    assert operations(not_asked.result(ADMIN_TIMEOUT_S).authorized_operations) is None


def test_describe_topics_reports_topic_operations(broker):
    topic = topic_name("authz")
    ck.create_topic(broker, topic, partitions=2)
    admin = ck.admin(broker)
    for include, expected in [(True, TOPIC_OPS), (False, None)]:
        fs = admin.describe_topics(
            TopicCollection([topic]), include_authorized_operations=include, request_timeout=ADMIN_TIMEOUT_S
        )
        described = fs[topic].result(ADMIN_TIMEOUT_S)
        assert len(described.partitions) == 2
        assert operations(described.authorized_operations) == expected, f"include={include}"


@pytest.mark.parametrize("protocol", ["classic", "consumer"])
def test_describe_consumer_groups_reports_group_operations(broker_factory, protocol):
    broker = start_group_broker(broker_factory)
    topic = topic_name("authz-group")
    group = group_name(f"authz-{protocol}")
    ck.create_topic(broker, topic)
    consumer = Consumer({
        "bootstrap.servers": broker.bootstrap,
        "group.id": group,
        "group.protocol": protocol,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    })
    try:
        consumer.subscribe([topic])

        def assigned():
            consumer.poll(0.1)
            return bool(consumer.assignment())

        wait_until(assigned, ADMIN_TIMEOUT_S, f"the {protocol} member to get its partition")
        admin = ck.admin(broker)
        for include, expected in [(True, GROUP_OPS), (False, None)]:
            fs = admin.describe_consumer_groups(
                [group], include_authorized_operations=include, request_timeout=ADMIN_TIMEOUT_S
            )
            described = fs[group].result(ADMIN_TIMEOUT_S)
            expected_type = ConsumerGroupType.CONSUMER if protocol == "consumer" else ConsumerGroupType.CLASSIC
            assert described.type == expected_type
            assert len(described.members) == 1
            assert operations(described.authorized_operations) == expected, f"include={include}"
    finally:
        consumer.close()
