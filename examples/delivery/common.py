"""Shared setup for the delivery-semantics examples: a topic with records to process."""

from __future__ import annotations

import argparse

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic


def arguments(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--bootstrap", default="127.0.0.1:9092", help="Strom (or any Kafka) bootstrap address")
    parser.add_argument("--topic", default="orders", help="input topic (created and filled if missing)")
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--group", default="example-group")
    parser.add_argument("--crash-after", type=int, default=0,
                        help="exit abruptly after handling this many records (0 = never), to show the guarantee")
    return parser.parse_args()


def ensure_input(bootstrap: str, topic: str, records: int, partitions: int = 3) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    if topic in admin.list_topics(timeout=10).topics:
        return
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result()
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for i in range(records):
        producer.produce(topic, key=b"order-%d" % i, value=b"%d" % i)
    producer.flush(30)
