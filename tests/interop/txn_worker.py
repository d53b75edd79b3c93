"""Transactional confluent-kafka worker processes for test_transactions.py.

Modes:

ctp   consume-transform-produce, exactly once. A group consumer (isolation
      read_committed, no auto commit) reads --input; every --batch records (or
      when the input is drained) one transaction produces (key, b"out-" + value)
      to --output and commits the consumer's positions with
      send_offsets_to_transaction. After each commit the progress file gets
      "<records processed by this process> <transactions committed>\n".
      Exits 0 once it owns every partition of --input and has reached the end
      of each with nothing pending. --txn-delay-ms sleeps between producing and
      committing (so a SIGKILL usually lands inside an open transaction).

loop  begin / produce --per-txn records / commit, forever. Transaction t
      (counting from --first) has records key b"<t>-<i>", value b"txn-<t>-<i>",
      record i to partition i % --partitions. After each commit returns the
      progress file gets "<t>\n".

Any error ends the process with a traceback on stderr (exit 1).
"""

from __future__ import annotations

import argparse
import sys
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition


def make_producer(args) -> Producer:
    return Producer({
        "bootstrap.servers": args.bootstrap,
        "transactional.id": args.txn_id,
        "acks": "all",
        "linger.ms": 5,
        "transaction.timeout.ms": args.txn_timeout_ms,
    })


def init(p: Producer, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            p.init_transactions(max(1.0, deadline - time.monotonic()))
            return
        except KafkaException as e:
            if e.args[0].retriable() and time.monotonic() < deadline:
                time.sleep(0.5)
                continue
            raise


def produce_all(p: Producer, topic: str, records, errors: list) -> None:
    def cb(err, msg):
        if err is not None:
            errors.append(err)

    for partition, key, value in records:
        while True:
            try:
                if partition is None:
                    p.produce(topic, key=key, value=value, on_delivery=cb)
                else:
                    p.produce(topic, key=key, value=value, partition=partition, on_delivery=cb)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)


def run_ctp(args, progress) -> None:
    p = make_producer(args)
    # First: fence any earlier instance and abort its open transaction, so the
    # committed offsets the consumer starts from are stable.
    init(p)
    c = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        "session.timeout.ms": args.session_timeout_ms,
        "heartbeat.interval.ms": 500,
    })
    batch = []
    eof: set[int] = set()
    assigned: set[int] = set()
    processed = 0
    txns = 0

    def on_assign(consumer, parts):
        assigned.clear()
        assigned.update(tp.partition for tp in parts)
        eof.clear()

    def on_revoke(consumer, parts):
        # Eager protocol: everything is revoked; unprocessed records are read again
        # from the committed offsets by whoever gets the partitions.
        batch.clear()
        assigned.clear()
        eof.clear()

    c.subscribe([args.input], on_assign=on_assign, on_revoke=on_revoke)
    n_partitions = len(c.list_topics(args.input, timeout=30).topics[args.input].partitions)

    def flush_batch():
        nonlocal processed, txns
        if not batch:
            return
        p.begin_transaction()
        errors: list = []
        produce_all(p, args.output, [(None, m.key(), b"out-" + (m.value() or b"")) for m in batch], errors)
        if args.txn_delay_ms:
            time.sleep(args.txn_delay_ms / 1000)
        positions = [tp for tp in c.position([TopicPartition(args.input, q) for q in sorted(assigned)])
                     if tp.offset >= 0]
        p.send_offsets_to_transaction(positions, c.consumer_group_metadata(), 60)
        if p.flush(60) != 0 or errors:
            raise RuntimeError(f"delivery failed: {errors[:5]}")
        p.commit_transaction(60)
        processed += len(batch)
        txns += 1
        batch.clear()
        progress.write(f"{processed} {txns}\n")
        progress.flush()

    while True:
        msg = c.poll(0.2)
        if msg is None:
            flush_batch()
        elif msg.error() is not None:
            if msg.error().code() != KafkaError._PARTITION_EOF:
                raise KafkaException(msg.error())
            eof.add(msg.partition())
            flush_batch()
        else:
            eof.discard(msg.partition())
            batch.append(msg)
            if len(batch) >= args.batch:
                flush_batch()
        if not batch and assigned and len(assigned) == n_partitions and eof >= assigned:
            break
    c.close()
    p.flush(30)


def run_loop(args, progress) -> None:
    p = make_producer(args)
    init(p)
    t = args.first
    while True:
        p.begin_transaction()
        errors: list = []
        produce_all(p, args.topic, [(i % args.partitions, b"%d-%d" % (t, i), b"txn-%d-%d" % (t, i))
                                    for i in range(args.per_txn)], errors)
        if p.flush(60) != 0 or errors:
            raise RuntimeError(f"delivery failed in transaction {t}: {errors[:5]}")
        p.commit_transaction(60)
        progress.write(f"{t}\n")
        progress.flush()
        t += 1


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["ctp", "loop"])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--txn-id", required=True)
    ap.add_argument("--progress", required=True)
    ap.add_argument("--txn-timeout-ms", type=int, default=60000)
    ap.add_argument("--partitions", type=int, default=3)
    # ctp
    ap.add_argument("--input")
    ap.add_argument("--output")
    ap.add_argument("--group")
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--txn-delay-ms", type=int, default=0)
    ap.add_argument("--session-timeout-ms", type=int, default=6000)
    # loop
    ap.add_argument("--topic")
    ap.add_argument("--first", type=int, default=0)
    ap.add_argument("--per-txn", type=int, default=30)
    args = ap.parse_args()
    with open(args.progress, "a", buffering=1) as progress:
        if args.mode == "ctp":
            run_ctp(args, progress)
        else:
            run_loop(args, progress)


if __name__ == "__main__":
    try:
        main()
    except Exception:
        import traceback

        traceback.print_exc()
        sys.stderr.flush()
        sys.exit(1)
