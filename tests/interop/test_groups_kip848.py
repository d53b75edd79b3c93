"""KIP-848 consumer groups (`group.protocol=consumer`, ConsumerGroupHeartbeat =
API 68, ConsumerGroupDescribe = API 69) with librdkafka: the broker computes the
assignment. (Written as xfail(strict=True) before the broker served it; the
marker came off when it started passing.)"""

from __future__ import annotations

import time

from confluent_kafka import Consumer, ConsumerGroupType

import ck_util as ck
from group_util import STABLE, describe_group, group_name, produce_numbered, start_group_broker, wait_until
from records import topic_name

DEADLINE_S = 20


def kip848_consumer(broker, group) -> Consumer:
    # The installed librdkafka accepts the setting (KIP-848 is GA in librdkafka 2.12+).
    return Consumer({
        "bootstrap.servers": broker.bootstrap,
        "group.id": group,
        "group.protocol": "consumer",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    })


def test_kip848_consumer_protocol_assigns_and_consumes(broker_factory):
    broker = start_group_broker(broker_factory)
    parts = 2
    topic = topic_name("grp-kip848")
    group = group_name("kip848")
    ck.create_topic(broker, topic, partitions=parts)
    produced = produce_numbered(broker, topic, 20, parts)

    c = kip848_consumer(broker, group)
    c2 = None
    errors = []
    try:
        c.subscribe([topic])
        got = set()
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline and len(got) < len(produced):
            msg = c.poll(0.2)
            if msg is None:
                continue
            if msg.error() is not None:
                errors.append(str(msg.error()))
                if msg.error().fatal():
                    break
                continue
            got.add((msg.partition(), msg.offset()))
        # The broker hands the only member both partitions and it reads every record.
        assert sorted(tp.partition for tp in c.assignment()) == list(range(parts)), errors[-3:]
        assert got == set(produced), f"{len(got)}/{len(produced)} records; errors {errors[-3:]}"
        res = c.commit(asynchronous=False)
        assert all(tp.error is None for tp in res)

        desc = describe_group(broker, group)
        assert desc.type == ConsumerGroupType.CONSUMER, desc.type
        assert desc.state == STABLE and len(desc.members) == 1

        # A second member: the broker moves one partition over, each owns one.
        c2 = kip848_consumer(broker, group)
        c2.subscribe([topic])

        def split():
            c.poll(0.05)
            c2.poll(0.05)
            a1 = sorted(tp.partition for tp in c.assignment())
            a2 = sorted(tp.partition for tp in c2.assignment())
            return len(a1) == 1 and len(a2) == 1 and sorted(a1 + a2) == list(range(parts))

        wait_until(split, DEADLINE_S, "the two KIP-848 members to own one partition each")
        desc = describe_group(broker, group)
        assert desc.type == ConsumerGroupType.CONSUMER and len(desc.members) == 2
    finally:
        if c2 is not None:
            c2.close()
        c.close()
