"""A fetch parked on an empty partition wakes up when data arrives."""

from __future__ import annotations

import threading
import time

from confluent_kafka import TopicPartition

import ck_util as ck
from records import topic_name

WAIT_MS = 5000
BOUND_S = 2.0


def test_long_poll_wakes_on_produce(broker):
    topic = topic_name("longpoll")
    ck.create_topic(broker, topic, partitions=1)
    c = ck.consumer(broker, **{"fetch.wait.max.ms": WAIT_MS, "enable.partition.eof": False})
    received: list[float] = []
    stop = threading.Event()

    def poll_loop():
        while not stop.is_set() and not received:
            msg = c.poll(0.1)
            if msg is not None and msg.error() is None:
                received.append(time.monotonic())

    c.assign([TopicPartition(topic, 0, 0)])
    t = threading.Thread(target=poll_loop)
    t.start()
    try:
        # Let the consumer get its first (empty) fetch parked on the broker.
        time.sleep(1.5)
        p = ck.producer(broker, **{"linger.ms": 0, "acks": 1})
        p.produce(topic, key=b"k", value=b"wake up", partition=0)
        sent = time.monotonic()
        assert p.flush(10) == 0
        p.close()
        t.join(timeout=WAIT_MS / 1000 + 5)
    finally:
        stop.set()
        t.join()
        c.close()
    assert received, "consumer never received the record"
    latency = received[0] - sent
    assert latency < BOUND_S, f"fetch woke {latency:.2f}s after the produce (fetch.wait.max.ms={WAIT_MS})"


def test_long_poll_times_out_empty(broker):
    """With nothing to read the fetch waits (roughly) fetch.wait.max.ms, not forever
    and not in a busy loop: the broker stays responsive meanwhile."""
    import kafka_wire as w

    topic = topic_name("longpoll-empty")
    ck.create_topic(broker, topic, partitions=1)
    c = ck.consumer(broker, **{"fetch.wait.max.ms": 1000, "enable.partition.eof": True})
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        deadline = time.monotonic() + 10
        eof = False
        while time.monotonic() < deadline and not eof:
            msg = c.poll(0.2)
            eof = msg is not None and msg.error() is not None
        assert eof, "no end-of-partition event for an empty partition"
        t0 = time.monotonic()
        assert w.API_API_VERSIONS in w.api_versions(broker.port)
        assert time.monotonic() - t0 < 1.0
    finally:
        c.close()
