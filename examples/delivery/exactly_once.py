"""Exactly once: read, transform and write in one transaction together with the
consumer offsets. A crash aborts the open transaction; a restart with the same
transactional.id fences the old instance and resumes from the committed offsets, so a
read_committed reader of the output sees every input record exactly once.

    python examples/delivery/exactly_once.py --bootstrap 127.0.0.1:9092
"""

from __future__ import annotations

import os
import sys

from confluent_kafka import Consumer, Producer

from common import arguments, ensure_input


def main() -> None:
    args = arguments(__doc__)
    ensure_input(args.bootstrap, args.topic, args.records)
    output = args.topic + "-processed"
    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        # A restarted instance takes over its predecessor's partitions at once
        # (static membership) instead of waiting for its session to time out.
        "group.instance.id": args.group + "-instance",
        "session.timeout.ms": 10000,
        "isolation.level": "read_committed",
    })
    producer = Producer({"bootstrap.servers": args.bootstrap, "transactional.id": args.group + "-processor"})
    producer.init_transactions(30)
    consumer.subscribe([args.topic])
    handled = 0
    idle = 0
    while idle < 6:
        batch = [m for m in consumer.consume(100, timeout=0.5) if not m.error()]
        if not batch:
            idle += 1 if consumer.assignment() else 0
            continue
        idle = 0
        producer.begin_transaction()
        for msg in batch:
            producer.produce(output, key=msg.key(), value=b"processed-" + msg.value())
            handled += 1
            if handled == args.crash_after:
                producer.flush(10)
                os._exit(1)  # a crash inside the transaction
        producer.send_offsets_to_transaction(consumer.position(consumer.assignment()),
                                             consumer.consumer_group_metadata(), 30)
        producer.commit_transaction(30)
    consumer.close()
    print(f"handled {handled}", file=sys.stderr)


if __name__ == "__main__":
    main()
