"""At least once: process, then commit. A crash between the two re-delivers the
records processed since the last commit; nothing is ever lost.

    python examples/delivery/at_least_once.py --bootstrap 127.0.0.1:9092
"""

from __future__ import annotations

import os
import sys

from confluent_kafka import Consumer

from common import arguments, ensure_input


def main() -> None:
    args = arguments(__doc__)
    ensure_input(args.bootstrap, args.topic, args.records)
    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        # A restarted instance takes over its predecessor's partitions at once
        # (static membership) instead of waiting for its session to time out.
        "group.instance.id": args.group + "-instance",
        "session.timeout.ms": 10000,
    })
    consumer.subscribe([args.topic])
    handled = 0
    idle = 0
    while idle < 6:
        msg = consumer.poll(0.5)
        if msg is None:
            idle += 1 if consumer.assignment() else 0
            continue
        if msg.error():
            continue
        idle = 0
        print(msg.value().decode(), flush=True)  # 1. process
        handled += 1
        if handled == args.crash_after:
            os._exit(1)  # a crash after processing, before the commit
        consumer.commit(message=msg, asynchronous=False)  # 2. commit
    consumer.close()
    print(f"handled {handled}", file=sys.stderr)


if __name__ == "__main__":
    main()
