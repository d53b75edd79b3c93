"""The clients of the replication fault loop (replication_chaos.py) and what they record
for the history checker (history_checker.py): idempotent producers, a transactional
producer that commits or aborts at random, a consumer group reading read_committed, and
the final re-read of every partition. Real confluent-kafka clients against real nodes.

Every value is unique (`p0-17`: producer p0's 17th record) so a read names its send.
A delivery error that may have left the record written (a timeout, anything retried)
is indeterminate, never a failure: only errors refused before any append count as
definite failures. All clients are closed or flushed with timeouts: a librdkafka client
left open can hold the interpreter at exit.
"""

from __future__ import annotations

import logging
import random
import sys
import threading
import traceback
import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition

# Delivery errors that mean the record was refused as such, in every attempt: it was
# never appended. Everything else (timeouts, NOT_ENOUGH_REPLICAS after a retry, purges
# of retried messages) may have been appended and is indeterminate.
DEFINITE_FAILURES = {
    KafkaError.MSG_SIZE_TOO_LARGE,
    KafkaError.INVALID_RECORD,
    KafkaError.RECORD_LIST_TOO_LARGE,
    KafkaError.INVALID_REQUIRED_ACKS,
    KafkaError.TOPIC_AUTHORIZATION_FAILED,
    KafkaError._INVALID_ARG,
    KafkaError._UNKNOWN_PARTITION,
    KafkaError._UNKNOWN_TOPIC,
}
IN_FLIGHT_MAX = 2000
FLUSH_TIMEOUT_S = 60.0
CLOSE_TIMEOUT_S = 30.0
QUIET = {"log_level": 0}  # connection errors during faults are expected; errors are recorded

# librdkafka moves a consumer's position without telling the application (an offset
# out of range, no epoch found in KIP-320 validation, or a seek to the end offset the
# leader gave for the consumer's epoch): its debug lines on offsets, fetches, epoch
# validations and seeks are filtered for these and recorded, so a jump comes with its cause.
RESET_WORDS = ("offset reset", "truncation", "out of range", "no epoch found", "validation", "seek",
               "offsetforleaderepoch", "timed out")


# An idempotent producer renumbers its unacknowledged records when it bumps its epoch
# (KIP-360), so a record whose first send was stored is stored again: its debug lines
# on epoch bumps and sequence errors are recorded with their reason.
BUMP_WORDS = ("bump", "drain", "sequence", "unknown producer", "fatal")


class _WordLog(logging.Handler):
    def __init__(self, history: "History", name: str, words: tuple[str, ...]):
        super().__init__(logging.DEBUG)
        self.history, self.name, self.words = history, name, words

    def emit(self, record: logging.LogRecord) -> None:
        line = record.getMessage()
        if any(word in line.lower() for word in self.words):
            self.history.count_error(f"{self.name} librdkafka: {line[-300:]}")


def word_logger(history: "History", name: str, words: tuple[str, ...]) -> logging.Logger:
    """A logger for a librdkafka client that records its lines holding one of `words`."""
    logger = logging.getLogger(f"chaos.{name}.{uuid.uuid4()}")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    logger.addHandler(_WordLog(history, name, words))
    return logger


class History:
    """What the clients saw, in the checker's shape (see history_checker.py).

    No lock: the clients' callbacks record here, and confluent-kafka can abandon a
    callback half-way (a fatal error left pending makes the next C call fail), which
    would leave a lock held and every other client stuck on it. Each record is one list
    append or one item assignment, atomic under the GIL."""

    def __init__(self):
        self.sends: list[dict] = []
        self.txns: dict[str, str] = {}
        self.polls: list[dict] = []
        self.errors: list[tuple[float, str]] = []  # (time.monotonic(), what)
        self.fatal: list[str] = []

    def send(self, producer: str, seq: int, partition: int, txn: str | None = None) -> dict:
        record = {"value": f"{producer}-{seq}", "producer": producer, "seq": seq, "partition": partition,
                  "status": "pending", "offset": None, "txn": txn}
        self.sends.append(record)
        return record

    def delivered(self, record: dict, err, msg) -> None:
        if err is None:
            record["offset"] = msg.offset()
            record["status"] = "ok"
            return
        record["status"] = "failed" if err.code() in DEFINITE_FAILURES else "indeterminate"
        self.count_error(err.name())

    def count_error(self, name: str) -> None:
        self.errors.append((time.monotonic(), name))

    def poll(self, consumer: str, msg) -> None:
        self.polls.append({"consumer": consumer, "partition": msg.partition(), "offset": msg.offset(),
                           "value": msg.value().decode()})

    def rebalance(self, consumer: str, kind: str) -> None:
        self.polls.append({"consumer": consumer, "rebalance": kind})

    def settle(self) -> None:
        """Sends still pending after the producers were flushed and closed: unknown."""
        for record in self.sends:
            if record["status"] == "pending":
                record["status"] = "indeterminate"

    def stats(self) -> dict:
        return {"sends": len(self.sends), **_tally(r["status"] for r in self.sends),
                "txns": _tally(self.txns.values()),
                "polls": sum(1 for p in self.polls if "offset" in p),
                "rebalances": sum(1 for p in self.polls if "rebalance" in p),
                "client_errors": _tally(name for _, name in self.errors), "fatal_errors": list(self.fatal)}

    def error_timeline(self, since: float, limit: int = 50) -> list[tuple[float, str]]:
        """When the clients hit errors other than purges (seconds since `since`), to set
        beside the fault log."""
        return [(round(t - since, 1), name) for t, name in self.errors if not name.startswith("_PURGE")][:limit]


def _tally(items) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    return dict(sorted(counts.items()))


def producer_config(bootstrap: str, rng: random.Random, **extra) -> dict:
    return {
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": rng.choice([0, 2, 10]),
        "message.timeout.ms": 20000,
        "request.timeout.ms": 5000,
        "retry.backoff.ms": 100,
        **QUIET,
        **extra,
    }


class Worker(threading.Thread):
    def __init__(self, name: str):
        super().__init__(daemon=True, name=name)
        self.stop = threading.Event()
        self.failure: str | None = None  # an exception that ended the thread

    def run(self) -> None:
        try:
            self.work()
        except Exception as e:  # noqa: BLE001 - reported by the harness
            self.failure = f"{self.name}: {e!r}\n{traceback.format_exc(limit=-3)}"


class IdempotentProducer(Worker):
    """Sends `p{k}-{seq}` to random partitions until stopped; records every delivery."""

    def __init__(self, k: int, bootstrap: str, topic: str, partitions: int, history: History, seed: int):
        super().__init__(f"p{k}")
        self.bootstrap, self.topic, self.partitions, self.history = bootstrap, topic, partitions, history
        self.rng = random.Random(f"{seed}/p{k}")
        self.fatal = threading.Event()

    def _new_producer(self) -> Producer:
        def on_error(err):
            if err.fatal():
                self._fatal(err)

        return Producer(producer_config(self.bootstrap, self.rng, error_cb=on_error, debug="eos", log_level=7,
                                        logger=word_logger(self.history, self.name, BUMP_WORDS)))

    def _fatal(self, err) -> None:
        if not self.fatal.is_set():
            self.history.fatal.append(f"{self.name}: {err}")
            self.fatal.set()

    def work(self) -> None:
        producer = self._new_producer()
        seq = 0
        while not self.stop.is_set():
            if self.fatal.is_set():
                # A fatal idempotence error ends this producer: a new one (new producer id)
                # takes over. Its sequence numbers continue, so the order check holds.
                _finish(producer, 5.0)
                self.fatal.clear()
                producer = self._new_producer()
            record = self.history.send(self.name, seq, self.rng.randrange(self.partitions))
            seq += 1
            try:
                producer.produce(self.topic, value=record["value"], partition=record["partition"],
                                 on_delivery=lambda err, msg, r=record: self.history.delivered(r, err, msg))
            except (BufferError, KafkaException) as e:
                record["status"] = "failed"  # refused by the client: never sent
                self.history.count_error(f"produce {type(e).__name__}")
            self._poll(producer)
            time.sleep(self.rng.uniform(0.002, 0.02))
        _finish(producer, FLUSH_TIMEOUT_S)

    def _poll(self, producer: Producer) -> None:
        """Serves delivery reports, waiting while too many are outstanding. A fatal
        error surfaces here as an exception."""
        try:
            while len(producer) > IN_FLIGHT_MAX and not self.stop.is_set():
                producer.poll(0.1)
            producer.poll(0)
        except KafkaException as e:
            if not e.args[0].fatal():
                raise
            self._fatal(e.args[0])


def _finish(producer: Producer, timeout: float) -> None:
    """Flushes, then purges what is left: its delivery reports fire (indeterminate).
    A producer in a fatal state may raise instead (its records stay pending, hence
    indeterminate): finishing must not fail."""
    try:
        producer.flush(timeout)
        producer.purge()
        producer.flush(5.0)
    except Exception:  # noqa: BLE001 - KafkaException, or SystemError from a callback
        pass


class TransactionalProducer(Worker):
    """Transactions of 1–5 records (`t0-{seq}`) over random partitions, committed or
    aborted at random. A transaction whose end was not confirmed is `unknown`."""

    def __init__(self, bootstrap: str, topic: str, partitions: int, history: History, seed: int):
        super().__init__("t0")
        self.bootstrap, self.topic, self.partitions, self.history = bootstrap, topic, partitions, history
        self.rng = random.Random(f"{seed}/t0")
        self.transactional_id = f"chaos-{seed}-t0"
        self.seq = 0

    def _new_producer(self) -> Producer | None:
        """A producer with its transactions initialized (which fences the previous one
        and ends what it left open), or None once stopped."""
        while not self.stop.is_set():
            producer = Producer(producer_config(
                self.bootstrap, self.rng,
                **{"transactional.id": self.transactional_id, "transaction.timeout.ms": 10000,
                   "message.timeout.ms": 10000}))
            try:
                producer.init_transactions(15)
                return producer
            except KafkaException as e:
                self.history.count_error(f"init_transactions {e.args[0].name()}: {e.args[0].str()}")
                _finish(producer, 5.0)
                time.sleep(0.5)
        return None

    def work(self) -> None:
        producer = self._new_producer()
        n = 0
        while producer is not None and not self.stop.is_set():
            txn = f"t0-txn{n}"
            n += 1
            if self._transaction(producer, txn):
                time.sleep(self.rng.uniform(0.01, 0.2))
                continue
            # The producer cannot go on (fatal, or an end it could not confirm): a new
            # one fences it and ends whatever it left open.
            _finish(producer, 5.0)
            producer = self._new_producer()
        if producer is not None:
            _finish(producer, FLUSH_TIMEOUT_S)

    def _transaction(self, producer: Producer, txn: str) -> bool:
        """One transaction; False when the producer must be replaced."""
        self.history.txns[txn] = "unknown"
        try:
            producer.begin_transaction()
            for _ in range(self.rng.randint(1, 5)):
                record = self.history.send(self.name, self.seq, self.rng.randrange(self.partitions), txn)
                self.seq += 1
                producer.produce(self.topic, value=record["value"], partition=record["partition"],
                                 on_delivery=lambda err, msg, r=record: self.history.delivered(r, err, msg))
            producer.poll(0)
            if self.rng.random() < 0.3:
                producer.abort_transaction(20)
                self.history.txns[txn] = "aborted"
            else:
                producer.commit_transaction(20)
                self.history.txns[txn] = "committed"
            return True
        except KafkaException as e:
            err = e.args[0]
            self.history.count_error(f"txn {err.name()}: {err.str()}")
            if err.txn_requires_abort() and not err.fatal():
                try:
                    producer.abort_transaction(20)
                    self.history.txns[txn] = "aborted"
                    return True
                except KafkaException as abort_error:
                    err = abort_error.args[0]
                    self.history.count_error(f"txn abort {err.name()}: {err.str()}")
            if err.fatal():
                self.history.fatal.append(f"{self.name}: {err}")
            return False


class GroupConsumer(Worker):
    """One member of the group, read_committed; records each record read and each
    rebalance (the checker compares polls only between two rebalances)."""

    def __init__(self, k: int, bootstrap: str, topic: str, group: str, history: History):
        super().__init__(f"c{k}")
        self.bootstrap, self.topic, self.group, self.history = bootstrap, topic, group, history
        self.closed = threading.Event()

    def work(self) -> None:
        consumer = Consumer({
            "bootstrap.servers": self.bootstrap,
            "group.id": self.group,
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": True,
            "auto.commit.interval.ms": 1000,
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 1000,
            "debug": "topic,fetch,broker",
        }, logger=word_logger(self.history, self.name, RESET_WORDS))
        consumer.subscribe(
            [self.topic],
            on_assign=lambda c, parts: self.history.rebalance(self.name, "assign"),
            on_revoke=lambda c, parts: self.history.rebalance(self.name, "revoke"),
            on_lost=lambda c, parts: self.history.rebalance(self.name, "lost"),
        )
        try:
            while not self.stop.is_set():
                for msg in consumer.consume(200, 0.5):
                    if msg.error():
                        # The text says why (librdkafka's offset resets name the
                        # position and the broker's answer), for anomalies to be traced.
                        self.history.count_error(
                            f"consume {msg.error().name()} p{msg.partition()}: {msg.error().str()}")
                    else:
                        self.history.poll(self.name, msg)
        finally:
            consumer.close()
            self.closed.set()


def stop_all(workers: list[Worker], timeout: float) -> list[str]:
    """Stops and joins the workers; returns what went wrong (a hang, a crash)."""
    for worker in workers:
        worker.stop.set()
    problems = []
    deadline = time.monotonic() + timeout
    for worker in workers:
        worker.join(max(0.1, deadline - time.monotonic()))
        if worker.is_alive():
            problems.append(f"{worker.name} did not stop within {timeout:.0f}s; it is at:\n{_stack(worker)}")
            problems.append("all threads:\n" + "\n".join(
                f"{t.name} ({t.ident}):\n{_stack(t)}" for t in threading.enumerate()))
        if worker.failure:
            problems.append(worker.failure)
    return problems


def _stack(thread: threading.Thread) -> str:
    """Where a thread is (the last frames), for a worker that does not stop."""
    frame = sys._current_frames().get(thread.ident)
    return "".join(traceback.format_stack(frame)[-4:]) if frame is not None else "(no frame)"


def end_offsets(bootstrap: str, topic: str, partitions: int, isolation: str) -> dict[int, int]:
    """Each partition's end from its leader (ListOffsets latest): the high watermark
    read_uncommitted, the last stable offset read_committed (librdkafka's default)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"hw-{uuid.uuid4()}",
                         "isolation.level": isolation, **QUIET})
    try:
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)[1]
            for p in range(partitions)
        }
    finally:
        consumer.close()


def read_all(bootstrap: str, topic: str, hws: dict[int, int], isolation: str, timeout: float) -> tuple[dict, dict]:
    """Reads every partition from the start up to its high watermark. Returns
    ({partition: [[offset, value], ...]}, {partition: where the read stopped} for the
    partitions it could not finish, e.g. read_committed held below the high watermark
    by a transaction left open)."""
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"final-{uuid.uuid4()}",
        "isolation.level": isolation,
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        **QUIET,
    })
    rows: dict[int, list] = {p: [] for p in hws}
    ends = {p: -1 for p in hws}
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in hws])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(ends[p] < hws[p] for p in hws):
            for msg in consumer.consume(500, 0.5):
                err = msg.error()
                if err is None:
                    rows[msg.partition()].append([msg.offset(), msg.value().decode()])
                    ends[msg.partition()] = max(ends[msg.partition()], msg.offset() + 1)
                elif err.code() == KafkaError._PARTITION_EOF:
                    ends[msg.partition()] = max(ends[msg.partition()], msg.offset())
    finally:
        consumer.close()
    return rows, {p: ends[p] for p in hws if ends[p] < hws[p]}
