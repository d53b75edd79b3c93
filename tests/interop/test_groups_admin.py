"""Group administration through real admin clients: ListGroups (with a state
filter), DescribeGroups, DeleteGroups, OffsetDelete, and consumer lag computed
the way monitoring tools do (high watermark − committed offset)."""

from __future__ import annotations

import pytest
from confluent_kafka import (
    OFFSET_INVALID,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from kafka import TopicPartition as KTopicPartition
from kafka.admin import KafkaAdminClient

import ck_util as ck
from group_util import (
    ADMIN_TIMEOUT_S,
    ck_group_consumer,
    ck_read_group,
    EMPTY,
    STABLE,
    committed_offsets,
    committed_only,
    described_assignment,
    describe_group,
    group_name,
    list_groups,
    produce_numbered,
    start_group_broker,
    wait_group_state,
    wait_until,
)
from records import topic_name

PER_PARTITION = 30


def commit_and_leave(broker, group, topic, offsets: dict[int, int]) -> None:
    """A member that commits `offsets` and leaves: the group ends up Empty with offsets."""
    c = ck_group_consumer(broker, group)
    c.subscribe([topic])
    try:
        wait_until(lambda: (c.poll(0.1), c.assignment())[1], 30, f"{group} to get an assignment")
        c.commit(offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()], asynchronous=False)
    finally:
        c.close()


class ActiveMembers:
    def __init__(self, broker, group, topic, n):
        self.consumers = [ck_group_consumer(broker, group, **{"client.id": f"active-{i}"}) for i in range(n)]
        for c in self.consumers:
            c.subscribe([topic])

    def pump(self):
        for c in self.consumers:
            c.poll(0.05)

    def close(self):
        for c in self.consumers:
            c.close()


def test_list_describe_delete_groups(broker_factory):
    broker = start_group_broker(broker_factory)
    parts = 3
    topic = topic_name("grp-admin")
    ck.create_topic(broker, topic, partitions=parts)
    produce_numbered(broker, topic, parts * PER_PARTITION, parts)
    g_stable, g_empty = group_name("admin-stable"), group_name("admin-empty")

    commit_and_leave(broker, g_empty, topic, {0: 5, 1: 6, 2: 7})
    active = ActiveMembers(broker, g_stable, topic, 2)
    try:
        def stable():
            active.pump()
            d = describe_group(broker, g_stable)
            return d if d.state == STABLE and len(d.members) == 2 and all(described_assignment(d).values()) else None

        desc = wait_until(stable, 40, f"{g_stable} to be Stable with 2 members")

        # DescribeGroups: members with their assignments, the protocol, the state.
        assignments = described_assignment(desc)
        assert sorted(p for ps in assignments.values() for p in ps) == list(range(parts))
        assert sorted(m.client_id for m in desc.members) == ["active-0", "active-1"]
        assert all(m.host for m in desc.members), [m.host for m in desc.members]
        assert desc.partition_assignor == "range", desc.partition_assignor
        assert {m.member_id for m in desc.members} == {c.memberid() for c in active.consumers}
        empty_desc = describe_group(broker, g_empty)
        assert empty_desc.state == EMPTY and not empty_desc.members

        # ListGroups, unfiltered and with a state filter (KIP-518).
        everything = list_groups(broker)
        assert {g_stable, g_empty} <= set(everything)
        assert everything[g_stable].state == STABLE and everything[g_empty].state == EMPTY
        assert not everything[g_stable].is_simple_consumer_group
        only_stable = list_groups(broker, states=[STABLE])
        assert g_stable in only_stable and g_empty not in only_stable, sorted(only_stable)
        only_empty = list_groups(broker, states=[EMPTY])
        assert g_empty in only_empty and g_stable not in only_empty, sorted(only_empty)
        assert "__consumer_offsets" not in everything

        ka = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=30000)
        try:
            kp_stable = {g["group_id"] if isinstance(g, dict) else g[0] for g in ka.list_groups(states_filter=["Stable"])}
            assert g_stable in kp_stable and g_empty not in kp_stable, kp_stable
        finally:
            ka.close()

        # DeleteGroups: a group with members is refused ...
        fs = ck.admin(broker).delete_consumer_groups([g_stable], request_timeout=ADMIN_TIMEOUT_S)
        with pytest.raises(KafkaException) as info:
            fs[g_stable].result(timeout=ADMIN_TIMEOUT_S)
        assert info.value.args[0].code() == KafkaError.NON_EMPTY_GROUP, info.value
        active.pump()
        assert g_stable in list_groups(broker)

        # ... an empty one is deleted, and its committed offsets with it.
        fs = ck.admin(broker).delete_consumer_groups([g_empty], request_timeout=ADMIN_TIMEOUT_S)
        fs[g_empty].result(timeout=ADMIN_TIMEOUT_S)
        assert g_empty not in list_groups(broker)
        assert committed_only(broker, g_empty, topic, range(parts)) == {p: OFFSET_INVALID for p in range(parts)}
        # Deleting it again: GROUP_ID_NOT_FOUND.
        fs = ck.admin(broker).delete_consumer_groups([g_empty], request_timeout=ADMIN_TIMEOUT_S)
        with pytest.raises(KafkaException) as info:
            fs[g_empty].result(timeout=ADMIN_TIMEOUT_S)
        assert info.value.args[0].code() == KafkaError.GROUP_ID_NOT_FOUND, info.value
    finally:
        active.close()

    # Once its members left, the other group is Empty and can be deleted too.
    wait_group_state(broker, g_stable, EMPTY, members=0)
    fs = ck.admin(broker).delete_consumer_groups([g_stable], request_timeout=ADMIN_TIMEOUT_S)
    fs[g_stable].result(timeout=ADMIN_TIMEOUT_S)
    assert g_stable not in list_groups(broker)


def offset_delete_errors(broker, group, topic, partitions) -> dict[int, int]:
    """OffsetDelete through kafka-python (confluent-kafka 2.16's AdminClient has no
    delete_consumer_group_offsets) → {partition: Kafka error code, 0 = deleted}."""
    from kafka.errors import KafkaError as KError

    ka = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=30000)
    try:
        res = ka.delete_group_offsets(group, [KTopicPartition(topic, p) for p in partitions])
    except KError as e:  # top-level error
        return {p: e.errno for p in partitions}
    finally:
        ka.close()
    return {tp.partition: err.errno for tp, err in res.items()}


def test_offset_delete(broker_factory):
    broker = start_group_broker(broker_factory)
    parts = 3
    topic = topic_name("grp-offdel")
    ck.create_topic(broker, topic, partitions=parts)
    produce_numbered(broker, topic, parts * PER_PARTITION, parts)
    group = group_name("offdel")

    commit_and_leave(broker, group, topic, {0: 3, 1: 4, 2: 5})
    assert offset_delete_errors(broker, group, topic, [1]) == {1: 0}
    assert committed_only(broker, group, topic, range(parts)) == {0: 3, 1: OFFSET_INVALID, 2: 5}
    assert offset_delete_errors(broker, group, topic, [2]) == {2: 0}
    assert committed_only(broker, group, topic, range(parts)) == {0: 3, 1: OFFSET_INVALID, 2: OFFSET_INVALID}

    # A member subscribed to the topic: GROUP_SUBSCRIBED_TO_TOPIC, the offset stays.
    active = ActiveMembers(broker, group, topic, 1)
    try:
        wait_until(lambda: (active.pump(), active.consumers[0].assignment())[1], 30, "the member's assignment")
        errors = offset_delete_errors(broker, group, topic, [0])
        assert errors == {0: KafkaError.GROUP_SUBSCRIBED_TO_TOPIC}, errors
        assert committed_only(broker, group, topic, [0]) == {0: 3}
    finally:
        active.close()

    # Offsets of a group that does not exist: GROUP_ID_NOT_FOUND.
    errors = offset_delete_errors(broker, group_name("offdel-none"), topic, [0])
    assert errors == {0: KafkaError.GROUP_ID_NOT_FOUND}, errors


def test_consumer_lag_matches_unconsumed_records(broker_factory):
    broker = start_group_broker(broker_factory)
    parts = 3
    topic = topic_name("grp-lag")
    ck.create_topic(broker, topic, partitions=parts)
    produce_numbered(broker, topic, parts * PER_PARTITION, parts)
    group = group_name("lag")

    # Partition 0 fully consumed, 1 partly, 2 never committed.
    commit_and_leave(broker, group, topic, {0: PER_PARTITION, 1: 10})
    produce_numbered(broker, topic, parts * 5, parts, first=10_000)  # 5 more per partition

    def lag() -> dict[int, int]:
        out = {}
        committed = committed_offsets(broker, group, topic, range(parts))
        for p in range(parts):
            low, high = ck.watermarks(broker, topic, p)
            off = committed[p][0]
            out[p] = high - (off if off != OFFSET_INVALID else low)
        return out

    expected = {0: 5, 1: PER_PARTITION - 10 + 5, 2: PER_PARTITION + 5}
    assert lag() == expected

    # The same group's consumer reads exactly `lag` records per partition ...
    c = ck_group_consumer(broker, group)
    c.subscribe([topic])
    try:
        got = ck_read_group(c, topic, parts)
        per_partition = {p: sum(1 for q, _ in got if q == p) for p in range(parts)}
        assert per_partition == expected
        # ... and once it commits its position, the lag is zero.
        c.commit(offsets=c.position(c.assignment()), asynchronous=False)
    finally:
        c.close()
    wait_until(lambda: lag() == {p: 0 for p in range(parts)}, 10, "lag to drop to zero")
