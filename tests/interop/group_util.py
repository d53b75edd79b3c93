"""Helpers for the consumer-group interop tests (test_groups_*.py).

A group test starts its broker with `start_group_broker(broker_factory)`: no
initial rebalance delay by default, a low minimum session timeout (so
session-timeout tests finish in seconds) and a small `__consumer_offsets`.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    Producer,
    TopicPartition,
)

import ck_util as ck

GROUP_SETTINGS = {
    "group.initial.rebalance.delay.ms": 0,
    "group.min.session.timeout.ms": 1000,
    "offsets.topic.num.partitions": 5,
}
ADMIN_TIMEOUT_S = 30
WORKER = Path(__file__).with_name("group_worker.py")


def start_group_broker(broker_factory, **overrides):
    """`overrides` use the broker's dotted names: start_group_broker(f, **{"num.partitions": 3})."""
    settings = dict(GROUP_SETTINGS)
    settings.update(overrides)
    return broker_factory(**settings)


def group_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# ---------------------------------------------------------------- producing


def produce_numbered(broker, topic: str, n: int, partitions: int, first: int = 0) -> dict[tuple[int, int], bytes]:
    """Records with keys b"<i>" (i from `first`), record i to partition i % partitions.

    Returns {(partition, offset): key} of every acknowledged record; fails unless
    all n were acknowledged.
    """
    p = Producer({
        "bootstrap.servers": broker.bootstrap,
        "acks": "all",
        "linger.ms": 5,
        "enable.idempotence": False,
    })
    acked: dict[tuple[int, int], bytes] = {}
    errors: list[str] = []

    def cb(err, msg):
        if err is not None:
            errors.append(str(err))
        else:
            acked[(msg.partition(), msg.offset())] = msg.key()

    for i in range(first, first + n):
        while True:
            try:
                p.produce(topic, key=b"%d" % i, value=b"value-%d" % i, partition=i % partitions, on_delivery=cb)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    assert p.flush(60) == 0, "records not delivered within 60 s"
    assert not errors, errors[:5]
    assert len(acked) == n
    return acked


# ---------------------------------------------------------------- confluent group consumers


def ck_group_consumer(broker, group, **conf) -> Consumer:
    base = {
        "bootstrap.servers": broker.bootstrap,
        "group.id": group,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 500,
    }
    base.update(conf)
    return Consumer(base)


def ck_read_group(c: Consumer, topic: str, parts: int, limit: int | None = None, timeout: float = 40):
    """Records (partition, offset) from a subscribed consumer: `limit` of them, or
    all until every partition reported end-of-partition."""
    out: list[tuple[int, int]] = []
    eof: set[int] = set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = c.poll(0.2)
        if msg is None:
            continue
        if msg.error() is not None:
            if msg.error().code() == KafkaError._PARTITION_EOF:
                eof.add(msg.partition())
                if limit is None and eof >= set(range(parts)):
                    return out
                continue
            raise KafkaException(msg.error())
        eof.discard(msg.partition())
        out.append((msg.partition(), msg.offset()))
        if limit is not None and len(out) >= limit:
            return out
    raise AssertionError(f"timed out: {len(out)} records (limit {limit}), eof on {sorted(eof)}")


# ---------------------------------------------------------------- admin (confluent)


def describe_group(broker, group: str):
    fs = ck.admin(broker).describe_consumer_groups([group], request_timeout=ADMIN_TIMEOUT_S)
    return fs[group].result(timeout=ADMIN_TIMEOUT_S)


def list_groups(broker, states=None) -> dict[str, object]:
    kwargs = {"request_timeout": ADMIN_TIMEOUT_S}
    if states is not None:
        kwargs["states"] = set(states)
    res = ck.admin(broker).list_consumer_groups(**kwargs).result(timeout=ADMIN_TIMEOUT_S)
    assert not res.errors, res.errors
    return {g.group_id: g for g in res.valid}


def committed_offsets(broker, group: str, topic: str, partitions) -> dict[int, tuple[int, str]]:
    """{partition: (committed offset, metadata)} via confluent admin OffsetFetch;
    OFFSET_INVALID (-1001) = none.

    Only for metadata that confluent-kafka committed: confluent-kafka-python sends
    the string with its C terminator (metadata_size = strlen + 1) and librdkafka
    reads metadata back as a C string, past the end when the bytes on the wire
    have no NUL (librdkafka issue #4649), so metadata committed by other clients
    comes back garbled or raises UnicodeDecodeError. Read those with
    `kp_committed_offsets`. An empty string comes back as None; it is returned as "".
    """
    req = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in partitions])
    fs = ck.admin(broker).list_consumer_group_offsets([req], request_timeout=ADMIN_TIMEOUT_S)
    res = fs[group].result(timeout=ADMIN_TIMEOUT_S)
    out = {}
    for tp in res.topic_partitions:
        assert tp.error is None, f"{tp}: {tp.error}"
        out[tp.partition] = (tp.offset, tp.metadata or "")
    return out


def kp_committed_offsets(broker, group: str) -> dict[tuple[str, int], tuple[int, str | None]]:
    """{(topic, partition): (offset, metadata)} of a group via kafka-python's admin
    OffsetFetch: the metadata bytes exactly as stored."""
    from kafka.admin import KafkaAdminClient

    a = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=30000)
    try:
        res = a.list_group_offsets({group: None})[group]
    finally:
        a.close()
    return {(tp.topic, tp.partition): (om.offset, om.metadata) for tp, om in res.items()}


def ck_sent(metadata: str) -> str:
    """The metadata string confluent-kafka-python puts on the wire for `metadata`:
    with the C string's terminating NUL (metadata_size = strlen + 1)."""
    return metadata + "\x00"


def committed_only(broker, group, topic, partitions) -> dict[int, int]:
    return {p: o for p, (o, _) in committed_offsets(broker, group, topic, partitions).items()}


def high_watermarks(broker, topic: str, partitions) -> dict[int, int]:
    return {p: ck.watermarks(broker, topic, p)[1] for p in partitions}


def wait_group_state(broker, group: str, state, members: int | None = None, timeout: float = 30):
    """Poll DescribeGroups until the group is in `state` (a ConsumerGroupState) with
    `members` members, every one of them with an assignment decoded. Returns the description."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = describe_group(broker, group)
        if last.state == state and (members is None or len(last.members) == members):
            return last
        time.sleep(0.2)
    raise AssertionError(
        f"group {group} not {state} with {members} members within {timeout}s: "
        f"state={getattr(last, 'state', None)} members={[m.member_id for m in getattr(last, 'members', [])]}"
    )


def described_assignment(desc) -> dict[str, list[int]]:
    """member_id -> sorted partitions, from a ConsumerGroupDescription."""
    out = {}
    for m in desc.members:
        parts = m.assignment.topic_partitions if m.assignment is not None else []
        out[m.member_id] = sorted(tp.partition for tp in parts)
    return out


STABLE = ConsumerGroupState.STABLE
EMPTY = ConsumerGroupState.EMPTY


# ---------------------------------------------------------------- assignment shapes


def expected_sizes(partitions: int, consumers: int) -> list[int]:
    base, extra = divmod(partitions, consumers)
    return sorted([base + 1] * extra + [base] * (consumers - extra))


# ---------------------------------------------------------------- worker subprocesses


class Worker:
    """A `group_worker.py` subprocess; its output file has one line per event:
    `A <p,p,...>` (assignment after a rebalance; `A -` for none), `R <partition> <offset> <key>`
    (a processed record), `C <partition> <offset>` (a commit acknowledged)."""

    def __init__(self, broker, topic: str, group: str, out: Path, mode: str = "alo",
                 session_timeout_ms: int = 3000, delay_ms: int = 0, instance_id: str | None = None,
                 extra: list[str] | None = None):
        self.out = Path(out)
        self.out.touch()
        cmd = [sys.executable, str(WORKER), "--bootstrap", broker.bootstrap, "--topic", topic,
               "--group", group, "--out", str(self.out), "--mode", mode,
               "--session-timeout-ms", str(session_timeout_ms), "--delay-ms", str(delay_ms)]
        if instance_id:
            cmd += ["--instance-id", instance_id]
        cmd += extra or []
        self.err_path = self.out.with_suffix(".stderr")
        self._err = open(self.err_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self._err)

    def events(self) -> list[tuple[str, ...]]:
        text = self.out.read_text()
        lines = text.split("\n")
        if not text.endswith("\n"):
            lines = lines[:-1]  # killed mid-line
        return [tuple(line.split(" ")) for line in lines if line]

    def records(self) -> list[tuple[int, int, bytes]]:
        return [(int(e[1]), int(e[2]), e[3].encode()) for e in self.events() if e[0] == "R"]

    def assignment(self) -> list[int] | None:
        """Latest assignment reported, None before the first one."""
        last = None
        for e in self.events():
            if e[0] == "A":
                last = [] if e[1] == "-" else sorted(int(x) for x in e[1].split(","))
        return last

    def assignments(self) -> list[list[int]]:
        return [[] if e[1] == "-" else sorted(int(x) for x in e[1].split(",")) for e in self.events() if e[0] == "A"]

    def check_running(self) -> None:
        if self.proc.poll() is not None:
            raise AssertionError(f"worker exited with {self.proc.returncode}: {self.stderr()}")

    def stderr(self) -> str:
        self._err.flush()
        return self.err_path.read_text(errors="replace")[-3000:]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def terminate(self, timeout: float = 30) -> int:
        """SIGTERM: the worker closes its consumer and exits."""
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"worker ignored SIGTERM for {timeout}s: {self.stderr()}")

    def close(self) -> None:
        self.kill()
        self._err.close()


def wait_until(cond, timeout: float, what: str, interval: float = 0.1, check=None):
    """Call cond() until it returns something truthy (returned), else fail with `what`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check is not None:
            check()
        v = cond()
        if v:
            return v
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
