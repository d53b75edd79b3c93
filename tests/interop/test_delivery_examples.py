"""The delivery-semantics examples in examples/delivery/ run against the broker and
keep their promises: at most once never repeats, at least once never loses, exactly
once gives each input record once in the output (read_committed)."""

from __future__ import annotations

import collections
import pathlib
import subprocess
import sys

import ck_util as ck
from records import topic_name

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples" / "delivery"
RECORDS = 300


def run(example: str, broker, topic: str, group: str, crash_after: int = 0) -> list[str]:
    cmd = [sys.executable, str(EXAMPLES / example), "--bootstrap", broker.bootstrap, "--topic", topic,
           "--records", str(RECORDS), "--group", group, "--crash-after", str(crash_after)]
    out = subprocess.run(cmd, cwd=EXAMPLES, capture_output=True, timeout=180, check=False)
    assert out.returncode == (1 if crash_after else 0), out.stderr.decode()[-2000:]
    return out.stdout.decode().split()


def start(broker_factory):
    return broker_factory(**{"group.initial.rebalance.delay.ms": "0", "offsets.topic.num.partitions": "3",
                             "transaction.state.log.num.partitions": "3"})


def test_at_most_once_never_repeats(broker_factory):
    broker = start(broker_factory)
    topic, group = topic_name("amo"), topic_name("amo-g")
    first = run("at_most_once.py", broker, topic, group, crash_after=100)
    second = run("at_most_once.py", broker, topic, group)
    handled = first + second
    assert len(handled) == len(set(handled)), "a record was handled twice"
    assert len(handled) >= RECORDS - 3, "at most one skipped record per partition"


def test_at_least_once_never_loses(broker_factory):
    broker = start(broker_factory)
    topic, group = topic_name("alo"), topic_name("alo-g")
    first = run("at_least_once.py", broker, topic, group, crash_after=100)
    second = run("at_least_once.py", broker, topic, group)
    handled = first + second
    assert set(handled) == {str(i) for i in range(RECORDS)}, "a record was lost"
    repeats = sum(n - 1 for n in collections.Counter(handled).values())
    assert repeats <= 1, "only the record processed before the crash is repeated"


def test_exactly_once_output(broker_factory):
    broker = start(broker_factory)
    topic, group = topic_name("eos"), topic_name("eos-g")
    run("exactly_once.py", broker, topic, group, crash_after=150)
    run("exactly_once.py", broker, topic, group)
    c = ck.consumer(broker, **{"isolation.level": "read_committed"})
    from confluent_kafka import TopicPartition
    output = topic + "-processed"
    partitions = len(c.list_topics(output, timeout=10).topics[output].partitions)
    c.assign([TopicPartition(output, p, 0) for p in range(partitions)])
    values, eof = [], set()
    while len(eof) < partitions:
        msg = c.poll(5)
        assert msg is not None, f"stalled after {len(values)} records"
        if msg.error():
            eof.add(msg.partition())
            continue
        values.append(msg.value())
    c.close()
    assert sorted(values) == sorted(b"processed-%d" % i for i in range(RECORDS))
