"""Consumer-group member process for the group tests (confluent-kafka).

Subscribes to TOPIC in GROUP and processes records one at a time, writing one
line per event to OUT and flushing after each line (a SIGKILL loses nothing that
was written):

    A <p,p,...>               assignment after a rebalance ("A -" when empty)
    R <partition> <offset> <key>  a record processed
    C <partition> <offset>    a synchronous commit of <offset> acknowledged

--mode alo (at-least-once): process, then commit offset+1 synchronously.
--mode amo (at-most-once):  commit offset+1 synchronously, then process.
--mode none: process, never commit.

SIGTERM closes the consumer (LeaveGroup unless static) and exits 0.
"""

import argparse
import signal
import sys
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--mode", choices=["alo", "amo", "none"], default="alo")
    ap.add_argument("--session-timeout-ms", type=int, default=3000)
    ap.add_argument("--delay-ms", type=int, default=0, help="processing time per record")
    ap.add_argument("--instance-id", default=None)
    ap.add_argument("--strategy", default="range,roundrobin")
    args = ap.parse_args()

    out = open(args.out, "a", buffering=1)

    def emit(line: str) -> None:
        out.write(line + "\n")
        out.flush()

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))

    conf = {
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": args.session_timeout_ms,
        "heartbeat.interval.ms": max(100, args.session_timeout_ms // 6),
        "partition.assignment.strategy": args.strategy,
        "fetch.wait.max.ms": 100,
    }
    if args.instance_id:
        conf["group.instance.id"] = args.instance_id
    c = Consumer(conf)

    owned: set[int] = set()
    # confluent-kafka does not expose rd_kafka_rebalance_protocol(); the strategy decides.
    cooperative = args.strategy == "cooperative-sticky"

    def report():
        emit("A " + (",".join(str(p) for p in sorted(owned)) if owned else "-"))

    def on_assign(consumer, parts):
        if cooperative:
            owned.update(tp.partition for tp in parts)
        else:
            owned.clear()
            owned.update(tp.partition for tp in parts)
        report()

    def on_revoke(consumer, parts):
        if cooperative:
            owned.difference_update(tp.partition for tp in parts)
        else:
            owned.clear()

    def on_lost(consumer, parts):
        owned.difference_update(tp.partition for tp in parts)

    c.subscribe([args.topic], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost)

    def commit(msg):
        tp = TopicPartition(msg.topic(), msg.partition(), msg.offset() + 1)
        res = c.commit(offsets=[tp], asynchronous=False)
        for r in res:
            if r.error is not None:
                raise KafkaException(r.error)
        emit(f"C {msg.partition()} {msg.offset() + 1}")

    try:
        while not stop:
            msg = c.poll(0.2)
            if msg is None:
                continue
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    continue
                print(f"consumer error: {err}", file=sys.stderr, flush=True)
                continue
            if args.mode == "amo":
                try:
                    commit(msg)
                except KafkaException as e:
                    # Not committed (e.g. the partition was revoked): do not process.
                    print(f"commit failed, skipping: {e}", file=sys.stderr, flush=True)
                    continue
            if args.delay_ms:
                time.sleep(args.delay_ms / 1000)
            key = msg.key().decode() if msg.key() is not None else "-"
            emit(f"R {msg.partition()} {msg.offset()} {key}")
            if args.mode == "alo":
                try:
                    commit(msg)
                except KafkaException as e:
                    # The record is redelivered to whoever owns the partition next.
                    print(f"commit failed: {e}", file=sys.stderr, flush=True)
    finally:
        c.close()


if __name__ == "__main__":
    main()
