"""Rebalances with librdkafka: cooperative-sticky incremental rebalancing, and
static membership (group.instance.id) rejoining without a rebalance."""

from __future__ import annotations

import time

from confluent_kafka import Consumer

import ck_util as ck
from group_util import (
    STABLE,
    Worker,
    described_assignment,
    group_name,
    produce_numbered,
    start_group_broker,
    wait_group_state,
    wait_until,
)
from records import topic_name


class Tracked:
    """A subscribed confluent consumer that records its rebalance callbacks."""

    def __init__(self, broker, topic, group, cooperative: bool, **conf):
        self.cooperative = cooperative
        self.events: list[tuple[str, list[int]]] = []
        self.owned: set[int] = set()
        self.owned_history: list[set[int]] = []
        base = {
            "bootstrap.servers": broker.bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 500,
        }
        if cooperative:
            base["partition.assignment.strategy"] = "cooperative-sticky"
        base.update(conf)
        self.c = Consumer(base)
        self.c.subscribe([topic], on_assign=self._assign, on_revoke=self._revoke, on_lost=self._lost)

    def _assign(self, c, parts):
        ps = sorted(tp.partition for tp in parts)
        self.events.append(("assign", ps))
        if not self.cooperative:
            self.owned = set()
        self.owned |= set(ps)
        self.owned_history.append(set(self.owned))

    def _revoke(self, c, parts):
        ps = sorted(tp.partition for tp in parts)
        self.events.append(("revoke", ps))
        self.owned -= set(ps)
        self.owned_history.append(set(self.owned))

    def _lost(self, c, parts):
        ps = sorted(tp.partition for tp in parts)
        self.events.append(("lost", ps))
        self.owned -= set(ps)
        self.owned_history.append(set(self.owned))

    def poll(self, t=0.05):
        self.c.poll(t)

    def assignment(self) -> list[int]:
        return sorted(tp.partition for tp in self.c.assignment())

    def close(self):
        self.c.close()


def test_cooperative_sticky_second_member_joins_incrementally(broker_factory):
    broker = start_group_broker(broker_factory)
    parts = 6
    topic = topic_name("grp-coop")
    group = group_name("coop")
    ck.create_topic(broker, topic, partitions=parts)
    produce_numbered(broker, topic, 600, parts)

    c1 = Tracked(broker, topic, group, cooperative=True)
    c2 = None
    try:
        wait_until(lambda: (c1.poll(), c1.assignment() == list(range(parts)))[1], 30,
                   "the first consumer to own every partition")
        first_owned = set(c1.assignment())
        events_before = len(c1.events)
        c1_samples: list[list[int]] = []

        c2 = Tracked(broker, topic, group, cooperative=True)

        def balanced():
            c1.poll()
            c2.poll()
            a1, a2 = c1.assignment(), c2.assignment()
            c1_samples.append(a1)
            return len(a1) == 3 and len(a2) == 3 and sorted(a1 + a2) == list(range(parts))

        wait_until(balanced, 40, f"a 3/3 split (now {c1.assignment()} / {c2.assignment() if c2 else None})")
        desc = wait_group_state(broker, group, STABLE, members=2)
        assert sorted(described_assignment(desc).values()) == sorted([c1.assignment(), c2.assignment()])
        assert desc.partition_assignor == "cooperative-sticky", desc.partition_assignor

        # Still balanced a little later: the rebalance is over.
        end = time.monotonic() + 2
        while time.monotonic() < end:
            c1.poll()
            c2.poll()
        assert len(c1.assignment()) == 3 and len(c2.assignment()) == 3

        later = c1.events[events_before:]
        revoked = [p for kind, ps in later if kind == "revoke" for p in ps]
        assert not [e for e in later if e[0] == "lost"], f"partitions lost: {later}"
        # Incremental: only the partitions that moved were revoked, never all of them.
        assert revoked and set(revoked) < first_owned, f"c1 callbacks after c2 joined: {later}"
        assert sorted(revoked) == sorted(set(first_owned) - set(c1.assignment())), later
        assert all(c1.owned_history[i] for i in range(len(c1.owned_history)) if i >= events_before), (
            f"c1 was left with no partitions at some point: {c1.owned_history}")
        assert all(c1_samples), "c1.assignment() was empty during the rebalance"
        # The first member kept what it still owns from the start.
        assert set(c1.assignment()) <= first_owned
        # The newcomer got exactly what c1 gave up, through incremental assigns.
        got = [p for kind, ps in c2.events if kind == "assign" for p in ps]
        assert sorted(got) == sorted(revoked) == c2.assignment(), c2.events
    finally:
        if c2 is not None:
            c2.close()
        c1.close()


def test_static_member_rejoins_without_rebalance(broker_factory, tmp_path):
    broker = start_group_broker(broker_factory)
    parts = 4
    topic = topic_name("grp-static")
    group = group_name("static")
    ck.create_topic(broker, topic, partitions=parts)
    produce_numbered(broker, topic, 40, parts)
    session_ms = 15000

    b = Tracked(broker, topic, group, cooperative=False,
                **{"group.instance.id": "static-b", "session.timeout.ms": session_ms})
    a1 = Worker(broker, topic, group, tmp_path / "a1.txt", mode="none",
                session_timeout_ms=session_ms, instance_id="static-a")
    a2 = None
    try:
        def split():
            b.poll()
            a = a1.assignment()
            return a and b.assignment() and sorted(a + b.assignment()) == list(range(parts))

        wait_until(split, 40, "static members a and b to split the partitions",
                   check=lambda: (a1.check_running(), broker.check_alive()))
        desc = wait_group_state(broker, group, STABLE, members=2)
        by_instance = {m.group_instance_id: m for m in desc.members}
        assert set(by_instance) == {"static-a", "static-b"}, by_instance
        a_parts, b_parts = a1.assignment(), b.assignment()
        old_a_member = by_instance["static-a"].member_id
        b_events = list(b.events)

        # Settle, then replace a: a closing static member does not leave the group,
        # and the new process with the same instance id takes its place.
        end = time.monotonic() + 1
        while time.monotonic() < end:
            b.poll()
        assert a1.terminate() == 0, a1.stderr()
        b_events = list(b.events)
        gone_at = time.monotonic()
        a2 = Worker(broker, topic, group, tmp_path / "a2.txt", mode="none",
                    session_timeout_ms=session_ms, instance_id="static-a")

        def a2_assigned():
            b.poll()
            return a2.assignment() is not None

        wait_until(a2_assigned, session_ms / 1000, "the new static-a to get an assignment",
                   check=a2.check_running)
        assert time.monotonic() - gone_at < session_ms / 1000
        assert a2.assignment() == a_parts, f"static-a had {a_parts}, the new process got {a2.assignment()}"

        # b saw nothing: no revoke/assign callbacks, same partitions, and it keeps them.
        end = time.monotonic() + 3
        while time.monotonic() < end:
            b.poll()
        assert b.events == b_events, f"b saw a rebalance: {b.events[len(b_events):]}"
        assert b.assignment() == b_parts
        assert a2.assignments() == [a_parts], f"new static-a saw several assignments: {a2.assignments()}"

        desc = wait_group_state(broker, group, STABLE, members=2)
        by_instance = {m.group_instance_id: m for m in desc.members}
        assert set(by_instance) == {"static-a", "static-b"}
        assert by_instance["static-a"].member_id != old_a_member, "the new process got a new member id"
        assert sorted(tp.partition for tp in by_instance["static-a"].assignment.topic_partitions) == a_parts
        assert sorted(tp.partition for tp in by_instance["static-b"].assignment.topic_partitions) == b_parts
    finally:
        a1.close()
        if a2 is not None:
            a2.close()
        b.close()
