"""Producer process for test_crash: sends numbered records (acks=all) until killed.

Writes "<number> <offset>\n" to the ack file for every record whose delivery the
broker confirmed, flushing after each line.

usage: crash_producer.py BOOTSTRAP TOPIC ACK_FILE FIRST_NUMBER [CODEC]
"""

import os
import sys

from confluent_kafka import Producer


def main() -> None:
    bootstrap, topic, ack_path, first = sys.argv[1:5]
    codec = sys.argv[5] if len(sys.argv) > 5 else "none"
    ack = open(ack_path, "w", buffering=1)
    p = Producer({
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "linger.ms": 2,
        "enable.idempotence": False,
        "retries": 0,
        "max.in.flight.requests.per.connection": 5,
        "message.timeout.ms": 60000,
        "compression.type": codec,
    })

    def on_delivery(err, msg):
        if err is None:
            ack.write(f"{int(msg.key())} {msg.offset()}\n")
            ack.flush()

    i = int(first)
    while True:
        try:
            p.produce(topic, key=b"%d" % i, value=b"record-%d-" % i + b"x" * (i % 300),
                      partition=0, on_delivery=on_delivery)
            i += 1
        except BufferError:
            p.poll(0.05)
        p.poll(0)
        if i % 1000 == 0:
            os.sched_yield()


if __name__ == "__main__":
    main()
