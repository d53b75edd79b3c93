"""Helpers for the transaction (exactly-once) interop tests, test_transactions.py.

A transaction test starts its broker with `start_txn_broker(broker_factory)`: no
initial rebalance delay, a low minimum session timeout, and small
`__consumer_offsets` / `__transaction_state` topics. Optional settings the binary
under test does not know (`strom serve --print-config`) are left out.

Reading with `read_topic(..., isolation="read_committed")` follows Kafka: a
read_committed consumer stops at the last stable offset and never returns records
of aborted transactions; transaction markers take an offset but are never
returned to the application.
"""

from __future__ import annotations

import functools
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)

from conftest import strom_bin

TXN_SETTINGS = {
    "group.initial.rebalance.delay.ms": 0,
    "group.min.session.timeout.ms": 1000,
    "offsets.topic.num.partitions": 3,
    "transaction.state.log.num.partitions": 3,
}
# Dropped (not passed with --set) when the binary does not list them.
OPTIONAL_SETTINGS = {"transaction.state.log.num.partitions"}

WORKER = Path(__file__).with_name("txn_worker.py")

# Error codes that mean "another producer with this transactional.id took over".
FENCED_CODES = {KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH}


@functools.lru_cache(maxsize=None)
def known_settings(binary: str) -> frozenset[str] | None:
    """Setting names from `strom serve --print-config`; None when that fails."""
    try:
        out = subprocess.run([binary, "serve", "--print-config"], capture_output=True, timeout=30, text=True)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    names = set()
    for line in out.stdout.splitlines():
        line = line.strip()
        if line.startswith('"'):
            names.add(line.split('"')[1])
    return frozenset(names) or None


def start_txn_broker(broker_factory, **overrides):
    """`overrides` use the broker's dotted names via a dict:
    start_txn_broker(f, **{"transaction.max.timeout.ms": 60000})."""
    settings = dict(TXN_SETTINGS)
    settings.update(overrides)
    known = known_settings(str(strom_bin()))
    if known is not None:
        for key in OPTIONAL_SETTINGS:
            if key not in known and key not in overrides:
                settings.pop(key, None)
    return broker_factory(**settings)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# ---------------------------------------------------------------- producing


def txn_producer(broker, transactional_id: str, **conf) -> Producer:
    base = {
        "bootstrap.servers": broker.bootstrap,
        "transactional.id": transactional_id,
        "acks": "all",
        "linger.ms": 5,
        "transaction.timeout.ms": 60000,
    }
    base.update(conf)
    return Producer(base)


def init_transactions(p: Producer, timeout: float = 60) -> None:
    """init_transactions, retrying retriable errors (a coordinator still loading
    after a restart) until `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            p.init_transactions(max(1.0, deadline - time.monotonic()))
            return
        except KafkaException as e:
            err = e.args[0]
            if err.retriable() and time.monotonic() < deadline:
                time.sleep(0.5)
                continue
            raise


def produce_in_txn(p: Producer, topic: str, records, errors: list | None = None) -> None:
    """records: iterable of (partition, key, value). Produces inside the current
    transaction (the caller begins/commits). Delivery errors go to `errors`."""
    errs = errors if errors is not None else []

    def cb(err, msg):
        if err is not None:
            errs.append(err)

    for partition, key, value in records:
        while True:
            try:
                p.produce(topic, key=key, value=value, partition=partition, on_delivery=cb)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)


def run_txn(p: Producer, topic: str, records, commit: bool = True, timeout: float = 60) -> None:
    """begin, produce, flush, commit (or abort); fails on any delivery error."""
    errors: list = []
    p.begin_transaction()
    produce_in_txn(p, topic, records, errors)
    assert p.flush(timeout) == 0, "records not delivered"
    assert not errors, f"delivery errors in transaction: {errors[:5]}"
    if commit:
        p.commit_transaction(timeout)
    else:
        p.abort_transaction(timeout)


def produce_plain(broker, topic: str, records) -> None:
    """Non-transactional acks=all produce of (partition, key, value)."""
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 5,
                  "enable.idempotence": False})
    errors: list = []

    def cb(err, msg):
        if err is not None:
            errors.append(err)

    for partition, key, value in records:
        while True:
            try:
                p.produce(topic, key=key, value=value, partition=partition, on_delivery=cb)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    assert p.flush(60) == 0, "records not delivered within 60 s"
    assert not errors, errors[:5]


# ---------------------------------------------------------------- consuming


@dataclass(frozen=True)
class Msg:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def consumer(broker, isolation: str, **conf) -> Consumer:
    base = {
        "bootstrap.servers": broker.bootstrap,
        "group.id": f"txn-reader-{uuid.uuid4().hex[:8]}",  # never committed to
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "earliest",
        "isolation.level": isolation,
    }
    base.update(conf)
    return Consumer(base)


def read_topic(broker, topic: str, partitions, isolation: str = "read_committed",
               until=None, timeout: float = 60, settle: float = 0.0) -> list[Msg]:
    """Everything readable from the beginning of `partitions` with `isolation`.

    Reads until every partition reported end-of-partition (for read_committed: the
    last stable offset) after its last record AND `until(msgs)` is true (default:
    always). While `until` is false it keeps reading (new records, or an open
    transaction that completes, move the end). `settle` seconds more are read after
    that, so late extra records would show up. Any consumer error fails."""
    parts = list(partitions)
    c = consumer(broker, isolation)
    out: list[Msg] = []
    eof: set[int] = set()
    try:
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        deadline = time.monotonic() + timeout
        settle_until = None
        while True:
            now = time.monotonic()
            if settle_until is not None and now >= settle_until:
                return out
            if now >= deadline:
                raise AssertionError(
                    f"{topic} ({isolation}): timed out after {timeout}s with {len(out)} records, "
                    f"eof on {sorted(eof)} of {parts}; condition not met. "
                    f"Last records: {out[-5:]}"
                )
            for msg in c.consume(num_messages=1000, timeout=0.2):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        eof.add(msg.partition())
                        continue
                    raise KafkaException(err)
                eof.discard(msg.partition())
                out.append(Msg(msg.partition(), msg.offset(), msg.key(), msg.value()))
            if settle_until is None and eof >= set(parts) and (until is None or until(out)):
                if settle <= 0:
                    return out
                settle_until = time.monotonic() + settle
    finally:
        c.close()


def values(msgs: list[Msg]) -> list[bytes | None]:
    return [m.value for m in msgs]


def per_partition(msgs: list[Msg]) -> dict[int, list[Msg]]:
    out: dict[int, list[Msg]] = {}
    for m in msgs:
        out.setdefault(m.partition, []).append(m)
    return out


def at_least(n: int):
    return lambda msgs: len(msgs) >= n


def contains_values(wanted) -> "callable":
    wanted = set(wanted)
    return lambda msgs: wanted <= {m.value for m in msgs}


def watermarks(broker, topic: str, partition: int) -> tuple[int, int]:
    c = consumer(broker, "read_uncommitted")
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10, cached=False)
    finally:
        c.close()


def committed(broker, group: str, topic: str, partitions, timeout: float = 30) -> dict[int, int]:
    """{partition: committed offset} of `group` (OffsetFetch without require_stable,
    so pending transactional offsets are not waited for); -1001 = none."""
    c = Consumer({
        "bootstrap.servers": broker.bootstrap,
        "group.id": group,
        "enable.auto.commit": False,
        "isolation.level": "read_uncommitted",
    })
    try:
        res = c.committed([TopicPartition(topic, p) for p in partitions], timeout=timeout)
    finally:
        c.close()
    out = {}
    for tp in res:
        assert tp.error is None, f"{tp}: {tp.error}"
        out[tp.partition] = tp.offset
    return out


def wait_until(cond, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = cond()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def multiset(items) -> Counter:
    return Counter(items)


# ---------------------------------------------------------------- worker subprocesses


class WorkerProc:
    """A `txn_worker.py` subprocess; its progress file gets one line per committed
    transaction (see txn_worker.py)."""

    def __init__(self, args: list[str], progress: Path):
        self.progress = Path(progress)
        self.progress.touch()
        self.err_path = self.progress.with_suffix(".stderr")
        self._err = open(self.err_path, "ab")
        self.proc = subprocess.Popen([sys.executable, str(WORKER), *args, "--progress", str(self.progress)],
                                     stdout=subprocess.DEVNULL, stderr=self._err)

    def lines(self) -> list[list[str]]:
        text = self.progress.read_text()
        lines = text.split("\n")
        if not text.endswith("\n"):
            lines = lines[:-1]  # killed mid-line
        return [line.split(" ") for line in lines if line]

    def stderr(self) -> str:
        if not self._err.closed:
            self._err.flush()
        return self.err_path.read_text(errors="replace")[-4000:]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def check_alive(self) -> None:
        assert self.alive(), f"worker exited with {self.proc.returncode}:\n{self.stderr()}"

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._err.close()

    def wait(self, timeout: float) -> int:
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"worker did not finish within {timeout}s:\n{self.stderr()}")
        self._err.close()
        return rc
