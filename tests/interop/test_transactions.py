"""Transactions (exactly-once) with real clients: confluent-kafka (librdkafka),
kafka-python and aiokafka transactional producers; read_committed consumers of all
three; consume-transform-produce across a worker SIGKILL; broker SIGKILL during
transactions; zombie fencing; offsets committed inside transactions; transaction
timeouts; the transaction admin APIs.

Kafka semantics relied on:
- records of an aborted transaction are never returned to read_committed
  consumers; read_uncommitted consumers get them;
- a read_committed consumer reads only up to the last stable offset (the first
  offset of the earliest open transaction);
- every transaction marker (commit/abort control batch) takes one offset per
  partition of the transaction and is never returned to the application;
- InitProducerId for a transactional.id with an open transaction aborts it and
  fences the previous producer (higher epoch);
- offsets sent with send_offsets_to_transaction become the group's committed
  offsets when, and only when, the transaction commits;
- an open transaction older than its transaction.timeout.ms is aborted by the
  coordinator; a timeout above transaction.max.timeout.ms is refused with
  INVALID_TRANSACTION_TIMEOUT.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

import ck_util as ck
import kafka_wire as w
import txn_util as tu
from records import topic_name
from txn_util import at_least, contains_values, read_topic, start_txn_broker

API_ADD_PARTITIONS_TO_TXN = 24
API_ADD_OFFSETS_TO_TXN = 25
API_END_TXN = 26
API_TXN_OFFSET_COMMIT = 28


def spread(prefix: bytes, n: int, partitions: int, first: int = 0):
    """(partition, key, value) for records first..first+n-1, record i to i % partitions."""
    return [(i % partitions, b"k%d" % i, prefix + b"-%d" % i) for i in range(first, first + n)]


def expected_by_partition(records) -> dict[int, list[bytes]]:
    out: dict[int, list[bytes]] = {}
    for partition, _key, value in records:
        out.setdefault(partition, []).append(value)
    return out


def fenced_error(err: KafkaError) -> bool:
    return err.fatal() or err.code() in tu.FENCED_CODES


# ---------------------------------------------------------------- visibility


@pytest.mark.parametrize("partitions", [1, 3])
def test_aborted_records_invisible_to_read_committed(broker_factory, partitions):
    broker = start_txn_broker(broker_factory)
    topic = topic_name("txn-visibility")
    ck.create_topic(broker, topic, partitions=partitions)
    aborted = spread(b"aborted", 100, partitions)
    committed = spread(b"committed", 150, partitions, first=100)
    aborted_tail = spread(b"aborted-tail", 20, partitions, first=250)

    p = tu.txn_producer(broker, tu.unique("txn-vis"))
    tu.init_transactions(p)
    tu.run_txn(p, topic, aborted, commit=False)
    tu.run_txn(p, topic, committed, commit=True)
    # An aborted transaction at the end of the log must not hide the committed one.
    tu.run_txn(p, topic, aborted_tail, commit=False)

    rc = read_topic(broker, topic, range(partitions), "read_committed", until=at_least(len(committed)), settle=1.0)
    got = tu.per_partition(rc)
    want = expected_by_partition(committed)
    for part in range(partitions):
        assert [m.value for m in got.get(part, [])] == want[part], f"read_committed partition {part}"
        n_aborted = sum(1 for r in aborted if r[0] == part)
        # aborted records, then one abort marker, then the committed records.
        first = n_aborted + 1
        assert [m.offset for m in got[part]] == list(range(first, first + len(want[part]))), (
            f"partition {part}: committed records not at the offsets after the aborted ones and the marker"
        )
    assert len(rc) == len(committed)

    ru = read_topic(broker, topic, range(partitions), "read_uncommitted",
                    until=at_least(len(aborted) + len(committed) + len(aborted_tail)), settle=1.0)
    got = tu.per_partition(ru)
    want = expected_by_partition(aborted + committed + aborted_tail)
    for part in range(partitions):
        assert [m.value for m in got.get(part, [])] == want[part], f"read_uncommitted partition {part}"
        # Three markers (abort, commit, abort) take one offset each.
        assert tu.watermarks(broker, topic, part)[1] == len(want[part]) + 3
    p.flush(10)


def test_interleaved_transactions_read_committed_by_every_client(broker_factory):
    """Two transactional producers interleave batches on the same partitions; one
    commits, one aborts. confluent-kafka, kafka-python and aiokafka read_committed
    consumers all return only the committed records, in offset order; the
    aborted batches sit between them (aborted_transactions in Fetch responses)."""
    broker = start_txn_broker(broker_factory)
    topic = topic_name("txn-interleave")
    parts = 2
    ck.create_topic(broker, topic, partitions=parts)
    good = tu.txn_producer(broker, tu.unique("txn-good"), **{"linger.ms": 0})
    bad = tu.txn_producer(broker, tu.unique("txn-bad"), **{"linger.ms": 0})
    tu.init_transactions(good)
    tu.init_transactions(bad)
    good.begin_transaction()
    bad.begin_transaction()
    errors: list = []
    expected: list[tuple[int, bytes]] = []
    for round_ in range(10):
        g = spread(b"good-%d" % round_, 6, parts, first=round_ * 6)
        b = spread(b"bad-%d" % round_, 6, parts, first=round_ * 6)
        tu.produce_in_txn(good, topic, g, errors)
        assert good.flush(30) == 0
        tu.produce_in_txn(bad, topic, b, errors)
        assert bad.flush(30) == 0
        expected += [(pt, v) for pt, _, v in g]
    assert not errors, errors[:5]
    good.commit_transaction(60)
    bad.abort_transaction(60)

    want = {pt: [v for q, v in expected if q == pt] for pt in range(parts)}
    rc = read_topic(broker, topic, range(parts), "read_committed", until=at_least(len(expected)), settle=1.0)
    assert {pt: [m.value for m in ms] for pt, ms in tu.per_partition(rc).items()} == want

    assert kafka_python_read_committed(broker, topic, parts, len(expected)) == want
    assert aiokafka_read_committed(broker, topic, parts, len(expected)) == want

    ru = read_topic(broker, topic, range(parts), "read_uncommitted", until=at_least(2 * len(expected)))
    assert len(ru) == 2 * len(expected)


def kafka_python_read_committed(broker, topic: str, parts: int, expected: int, timeout: float = 60):
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KTP

    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, enable_auto_commit=False,
                      auto_offset_reset="earliest", isolation_level="read_committed")
    try:
        tps = [KTP(topic, pt) for pt in range(parts)]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        out: dict[int, list[bytes]] = {}
        n = 0
        deadline = time.monotonic() + timeout
        while n < expected and time.monotonic() < deadline:
            for tp, msgs in c.poll(timeout_ms=500).items():
                for m in msgs:
                    out.setdefault(tp.partition, []).append(m.value)
                    n += 1
        # Anything more (an aborted record let through) arrives with the next fetch.
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            for tp, msgs in c.poll(timeout_ms=300).items():
                for m in msgs:
                    out.setdefault(tp.partition, []).append(m.value)
        assert n >= expected, f"kafka-python read_committed: {n}/{expected} records in {timeout}s"
        return out
    finally:
        c.close()


def aiokafka_read_committed(broker, topic: str, parts: int, expected: int, timeout: float = 60):
    from aiokafka import AIOKafkaConsumer
    from aiokafka import TopicPartition as ATP

    async def go():
        c = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, enable_auto_commit=False,
                             auto_offset_reset="earliest", isolation_level="read_committed")
        await c.start()
        try:
            tps = [ATP(topic, pt) for pt in range(parts)]
            c.assign(tps)
            await c.seek_to_beginning(*tps)
            out: dict[int, list[bytes]] = {}
            n = 0
            deadline = time.monotonic() + timeout
            while n < expected and time.monotonic() < deadline:
                for tp, msgs in (await c.getmany(timeout_ms=500)).items():
                    for m in msgs:
                        out.setdefault(tp.partition, []).append(m.value)
                        n += 1
            end = time.monotonic() + 1.5
            while time.monotonic() < end:
                for tp, msgs in (await c.getmany(timeout_ms=300)).items():
                    for m in msgs:
                        out.setdefault(tp.partition, []).append(m.value)
            assert n >= expected, f"aiokafka read_committed: {n}/{expected} records in {timeout}s"
            return out
        finally:
            await c.stop()

    return asyncio.run(asyncio.wait_for(go(), timeout=timeout + 30))


def test_open_transaction_holds_back_read_committed(broker_factory):
    """The last stable offset: records after an open transaction's first record are
    not returned to read_committed consumers (even committed, non-transactional
    ones) until it ends; ListOffsets(latest, read_committed) = LSO, read_uncommitted
    = high watermark."""
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KTP

    broker = start_txn_broker(broker_factory)
    topic = topic_name("txn-lso")
    ck.create_topic(broker, topic, partitions=1)
    tu.produce_plain(broker, topic, spread(b"before", 3, 1))
    p = tu.txn_producer(broker, tu.unique("txn-lso"))
    tu.init_transactions(p)
    p.begin_transaction()
    errors: list = []
    tu.produce_in_txn(p, topic, spread(b"open", 5, 1), errors)
    assert p.flush(30) == 0 and not errors
    tu.produce_plain(broker, topic, spread(b"after", 4, 1))

    rc = read_topic(broker, topic, [0], "read_committed")
    assert [m.value for m in rc] == [b"before-%d" % i for i in range(3)]
    ru = read_topic(broker, topic, [0], "read_uncommitted", until=at_least(12))
    assert len(ru) == 12

    def end_offset(isolation):
        c = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, isolation_level=isolation)
        try:
            return c.end_offsets([KTP(topic, 0)])[KTP(topic, 0)]
        finally:
            c.close()

    assert end_offset("read_committed") == 3
    assert end_offset("read_uncommitted") == 12

    p.commit_transaction(60)
    want = [b"before-%d" % i for i in range(3)] + [b"open-%d" % i for i in range(5)] + [b"after-%d" % i for i in range(4)]
    rc = read_topic(broker, topic, [0], "read_committed", until=at_least(12), settle=0.5)
    assert [m.value for m in rc] == want
    tu.wait_until(lambda: end_offset("read_committed") == 13, 30, "LSO past the commit marker")


# ---------------------------------------------------------------- consume-transform-produce


def test_consume_transform_produce_exactly_once_across_worker_kill(broker_factory, tmp_path):
    broker = start_txn_broker(broker_factory)
    k, parts = 2000, 3
    src, dst = topic_name("txn-ctp-in"), topic_name("txn-ctp-out")
    group, txn_id = tu.unique("txn-ctp-group"), tu.unique("txn-ctp")
    ck.create_topic(broker, src, partitions=parts)
    ck.create_topic(broker, dst, partitions=parts)
    inputs = [(i % parts, b"key-%d" % i, b"in-%d" % i) for i in range(k)]
    tu.produce_plain(broker, src, inputs)
    ends = {pt: tu.watermarks(broker, src, pt)[1] for pt in range(parts)}
    assert sum(ends.values()) == k

    def worker(n: int, delay_ms: int) -> tu.WorkerProc:
        return tu.WorkerProc(["ctp", "--bootstrap", broker.bootstrap, "--txn-id", txn_id,
                              "--input", src, "--output", dst, "--group", group, "--partitions", str(parts),
                              "--batch", "50", "--txn-delay-ms", str(delay_ms)],
                             tmp_path / f"ctp-{n}.txt")

    w1 = worker(1, 50)
    try:
        def progressed():
            w1.check_alive()
            lines = w1.lines()
            return int(lines[-1][0]) if lines and int(lines[-1][0]) > 0.3 * k else 0

        done_before_kill = tu.wait_until(progressed, 120, "the first worker to commit > 30% of the input", 0.02)
    finally:
        w1.kill()
    assert done_before_kill < k, "the first worker finished before it was killed"
    print(f"first worker killed after committing {w1.lines()[-1]}")

    w2 = worker(2, 0)
    rc = w2.wait(180)
    assert rc == 0, f"second worker failed:\n{w2.stderr()}"
    print(f"second worker: {w2.lines()[-1] if w2.lines() else 'nothing'}")

    out = read_topic(broker, dst, range(parts), "read_committed", until=at_least(k), timeout=120, settle=1.0)
    want = tu.multiset((key, b"out-" + value) for _, key, value in inputs)
    got = tu.multiset((m.key, m.value) for m in out)
    missing = want - got
    dupes = got - want
    assert not missing and not dupes, (
        f"{len(out)} records; missing {sum(missing.values())} (e.g. {list(missing)[:5]}), "
        f"duplicated/unexpected {sum(dupes.values())} (e.g. {list(dupes)[:5]})"
    )
    committed = tu.wait_until(
        lambda: (lambda c: c if c == ends else None)(tu.committed(broker, group, src, range(parts))),
        30, f"group {group} committed offsets == end offsets {ends}")
    assert committed == ends


# ---------------------------------------------------------------- broker crash


def test_broker_sigkill_during_transactions(broker_factory, tmp_path):
    broker = start_txn_broker(broker_factory)
    topic = topic_name("txn-crash")
    parts, per_txn = 3, 30
    ck.create_topic(broker, topic, partitions=parts)
    txn_id = tu.unique("txn-crash")
    acknowledged: set[int] = set()

    for cycle in range(2):
        w = tu.WorkerProc(["loop", "--bootstrap", broker.bootstrap, "--txn-id", txn_id, "--topic", topic,
                           "--partitions", str(parts), "--per-txn", str(per_txn),
                           "--first", str(cycle * 1_000_000)],
                          tmp_path / f"loop-{cycle}.txt")
        try:
            def commits(n):
                def check():
                    w.check_alive()
                    return len(w.lines()) >= n
                return check

            tu.wait_until(commits(10), 120, f"cycle {cycle}: 10 committed transactions", 0.02)
            # Kill while transactions are still being committed, not at a pause.
            before = len(w.lines())
            tu.wait_until(commits(before + 1), 30, f"cycle {cycle}: another commit", 0.01)
            broker.kill()
            time.sleep(0.5)  # responses already on the wire reach the producer
        finally:
            w.kill()
        done = {int(line[0]) for line in w.lines()}
        acknowledged |= done
        print(f"cycle {cycle}: {len(done)} transactions acknowledged before the broker was killed")
        broker.start()
        ck.wait_for_topic(broker, topic, parts)

    # A new producer with the same transactional.id takes over (aborting whatever
    # was left open) and commits more.
    final = 999_999_999
    p = tu.txn_producer(broker, txn_id)
    tu.init_transactions(p, 120)
    tu.run_txn(p, topic, [(i % parts, b"%d-%d" % (final, i), b"txn-%d-%d" % (final, i)) for i in range(per_txn)])
    p.flush(10)

    final_values = {b"txn-%d-%d" % (final, i) for i in range(per_txn)}
    rc = read_topic(broker, topic, range(parts), "read_committed", until=contains_values(final_values),
                    timeout=120, settle=1.0)
    by_txn: dict[int, list[int]] = {}
    for m in rc:
        _, t, i = m.value.split(b"-")
        by_txn.setdefault(int(t), []).append(int(i))
    torn = {t: len(v) for t, v in by_txn.items() if sorted(v) != list(range(per_txn))}
    assert not torn, f"transactions partly visible or duplicated (txn: records): {dict(list(torn.items())[:10])}"
    lost = sorted(acknowledged - set(by_txn))
    assert not lost, f"committed (acknowledged) transactions not visible after the crash: {lost[:10]}"
    assert final in by_txn
    for part, msgs in tu.per_partition(rc).items():
        txns = [int(m.value.split(b"-")[1]) for m in msgs]
        assert txns == sorted(txns), f"partition {part}: transactions out of order"
    print(f"{len(by_txn)} transactions visible, {len(acknowledged)} acknowledged")


# ---------------------------------------------------------------- fencing


def test_zombie_producer_is_fenced(broker_factory):
    broker = start_txn_broker(broker_factory)
    topic = topic_name("txn-fence")
    ck.create_topic(broker, topic, partitions=2)
    txn_id = tu.unique("txn-fence")

    a = tu.txn_producer(broker, txn_id)
    tu.init_transactions(a)
    a.begin_transaction()
    errors_a: list = []
    tu.produce_in_txn(a, topic, spread(b"a-early", 4, 2), errors_a)
    assert a.flush(30) == 0 and not errors_a

    b = tu.txn_producer(broker, txn_id)
    tu.init_transactions(b, 90)  # aborts A's open transaction, bumps the epoch

    # A does not know yet: its next produce and its commit must fail, fatally.
    seen: list[KafkaError] = []
    # No delivery callbacks here: once librdkafka raises the fatal error from inside a
    # callback dispatch, the Python client reports it as a SystemError.
    for partition, key, value in spread(b"a-late", 2, 2):
        try:
            a.produce(topic, key=key, value=value, partition=partition)
        except KafkaException as e:
            seen.append(e.args[0])
    try:
        a.flush(30)
    except KafkaException as e:
        seen.append(e.args[0])
    try:
        a.commit_transaction(30)
    except KafkaException as e:
        seen.append(e.args[0])
        if not fenced_error(e.args[0]) and e.args[0].txn_requires_abort():
            try:
                a.abort_transaction(30)
            except KafkaException as e2:
                seen.append(e2.args[0])
    else:
        raise AssertionError(f"the fenced producer's commit succeeded (errors seen: {seen})")
    assert any(fenced_error(err) for err in seen), (
        f"no fatal/fenced error for the zombie producer: {[(err.code(), err.str(), err.fatal()) for err in seen]}"
    )

    tu.run_txn(b, topic, spread(b"b", 4, 2))
    b.flush(10)
    rc = read_topic(broker, topic, range(2), "read_committed", until=at_least(4), settle=1.0)
    assert sorted(m.value for m in rc) == sorted(v for _, _, v in spread(b"b", 4, 2))
    ru = read_topic(broker, topic, range(2), "read_uncommitted", until=at_least(8), settle=1.0)
    assert not [m for m in ru if m.value.startswith(b"a-late")], "a produce with the fenced epoch was stored"
    assert sorted(m.value for m in ru) == sorted(v for _, _, v in spread(b"a-early", 4, 2) + spread(b"b", 4, 2))


# ---------------------------------------------------------------- other clients' producers


def test_kafka_python_transactional_producer(broker_factory):
    from kafka import KafkaProducer
    from kafka import TopicPartition as KTP
    from kafka.structs import OffsetAndMetadata

    broker = start_txn_broker(broker_factory)
    topic, src = topic_name("txn-kp"), topic_name("txn-kp-src")
    ck.create_topic(broker, topic, partitions=3)
    ck.create_topic(broker, src, partitions=1)
    tu.produce_plain(broker, src, spread(b"src", 20, 1))
    group = tu.unique("txn-kp-group")

    p = KafkaProducer(bootstrap_servers=broker.bootstrap, transactional_id=tu.unique("txn-kp"),
                      max_block_ms=60000)
    try:
        p.init_transactions()
        p.begin_transaction()
        for part, key, value in spread(b"aborted", 30, 3):
            p.send(topic, key=key, value=value, partition=part)
        p.flush(timeout=30)
        p.send_offsets_to_transaction({KTP(src, 0): OffsetAndMetadata(5, "", -1)}, group)
        p.abort_transaction()

        p.begin_transaction()
        futures = [p.send(topic, key=key, value=value, partition=part)
                   for part, key, value in spread(b"committed", 30, 3, first=30)]
        p.flush(timeout=30)
        p.send_offsets_to_transaction({KTP(src, 0): OffsetAndMetadata(12, "", -1)}, group)
        p.commit_transaction()
        metas = [f.get(timeout=30) for f in futures]
    finally:
        p.close(timeout=10)
    # Each partition: 10 aborted records, the abort marker, then the committed ones.
    assert sorted((m.partition, m.offset) for m in metas) == [(pt, 11 + i) for pt in range(3) for i in range(10)]

    rc = read_topic(broker, topic, range(3), "read_committed", until=at_least(30), settle=1.0)
    want = expected_by_partition(spread(b"committed", 30, 3, first=30))
    assert {pt: [m.value for m in ms] for pt, ms in tu.per_partition(rc).items()} == want
    tu.wait_until(lambda: tu.committed(broker, group, src, [0]) == {0: 12}, 30,
                  "the offset committed in the transaction (12)")


def _aiokafka_txn_versions_or_skip(broker):
    versions = w.api_versions(broker.port)
    for key in (API_ADD_PARTITIONS_TO_TXN, API_ADD_OFFSETS_TO_TXN, API_END_TXN, API_TXN_OFFSET_COMMIT):
        assert key in versions, f"the broker does not advertise API key {key} (ApiVersions: {versions})"
        if versions[key][0] > 0:
            pytest.skip(f"aiokafka 0.14 only speaks v0 of the transaction APIs; the broker's "
                        f"minimum for API key {key} is v{versions[key][0]}")


def test_aiokafka_transactional_producer(broker_factory):
    from aiokafka import AIOKafkaProducer
    from aiokafka import TopicPartition as ATP

    broker = start_txn_broker(broker_factory)
    _aiokafka_txn_versions_or_skip(broker)
    topic, src = topic_name("txn-aio"), topic_name("txn-aio-src")
    ck.create_topic(broker, topic, partitions=2)
    ck.create_topic(broker, src, partitions=1)
    tu.produce_plain(broker, src, spread(b"src", 20, 1))
    group = tu.unique("txn-aio-group")

    class Boom(Exception):
        pass

    async def go():
        p = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, transactional_id=tu.unique("txn-aio"),
                             request_timeout_ms=30000)
        await p.start()
        try:
            try:
                async with p.transaction():
                    for part, key, value in spread(b"aborted", 20, 2):
                        await p.send_and_wait(topic, key=key, value=value, partition=part)
                    await p.send_offsets_to_transaction({ATP(src, 0): 3}, group)
                    raise Boom()  # leaves the context: abort
            except Boom:
                pass
            async with p.transaction():
                for part, key, value in spread(b"committed", 20, 2, first=20):
                    await p.send(topic, key=key, value=value, partition=part)
                await p.send_offsets_to_transaction({ATP(src, 0): 9}, group)
        finally:
            await p.stop()

    asyncio.run(asyncio.wait_for(go(), timeout=120))

    rc = read_topic(broker, topic, range(2), "read_committed", until=at_least(20), settle=1.0)
    want = expected_by_partition(spread(b"committed", 20, 2, first=20))
    assert {pt: [m.value for m in ms] for pt, ms in tu.per_partition(rc).items()} == want
    tu.wait_until(lambda: tu.committed(broker, group, src, [0]) == {0: 9}, 30,
                  "the offset committed in the transaction (9)")


# ---------------------------------------------------------------- offsets in transactions


def test_offsets_in_transaction_visible_only_on_commit(broker_factory):
    from confluent_kafka import Consumer

    broker = start_txn_broker(broker_factory)
    src, dst = topic_name("txn-off-src"), topic_name("txn-off-dst")
    ck.create_topic(broker, src, partitions=1)
    ck.create_topic(broker, dst, partitions=1)
    tu.produce_plain(broker, src, spread(b"src", 100, 1))
    group = tu.unique("txn-off-group")
    gc = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        cgm = gc.consumer_group_metadata()
    finally:
        gc.close()
    none = {0: -1001}

    p = tu.txn_producer(broker, tu.unique("txn-off"))
    tu.init_transactions(p)

    # 1. offsets only, aborted: nothing committed.
    p.begin_transaction()
    p.send_offsets_to_transaction([TopicPartition(src, 0, 40)], cgm, 60)
    p.abort_transaction(60)
    assert tu.committed(broker, group, src, [0]) == none

    # 2. records + offsets: invisible while the transaction is open, visible after commit.
    p.begin_transaction()
    errors: list = []
    tu.produce_in_txn(p, dst, [(0, b"k", b"with-offsets")], errors)
    p.send_offsets_to_transaction([TopicPartition(src, 0, 40)], cgm, 60)
    assert p.flush(30) == 0 and not errors
    assert tu.committed(broker, group, src, [0]) == none, "offsets visible before the commit"
    p.commit_transaction(60)
    tu.wait_until(lambda: tu.committed(broker, group, src, [0]) == {0: 40}, 30, "committed offset 40")

    # 3. another aborted transaction leaves 40 in place.
    p.begin_transaction()
    p.send_offsets_to_transaction([TopicPartition(src, 0, 70)], cgm, 60)
    p.abort_transaction(60)
    assert tu.committed(broker, group, src, [0]) == {0: 40}

    # A member of the group (read_committed: OffsetFetch with require_stable) starts at 40.
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "enable.auto.commit": False,
                  "auto.offset.reset": "earliest", "isolation.level": "read_committed",
                  "session.timeout.ms": 6000})
    try:
        c.subscribe([src])
        deadline = time.monotonic() + 60
        first = None
        while first is None and time.monotonic() < deadline:
            msg = c.poll(0.5)
            if msg is None:
                continue
            if msg.error() is not None:
                raise KafkaException(msg.error())
            first = msg.offset()
    finally:
        c.close()
    assert first == 40
    assert tu.committed(broker, group, src, [0]) == {0: 40}
    rc = read_topic(broker, dst, [0], "read_committed", until=at_least(1))
    assert [m.value for m in rc] == [b"with-offsets"]


# ---------------------------------------------------------------- timeouts


def test_transaction_timeout_aborts_hung_transaction(broker_factory):
    broker = start_txn_broker(broker_factory)
    topic = topic_name("txn-timeout")
    ck.create_topic(broker, topic, partitions=1)
    timeout_ms = 2000

    hung = tu.txn_producer(broker, tu.unique("txn-hung"), **{"transaction.timeout.ms": timeout_ms})
    tu.init_transactions(hung)
    hung.begin_transaction()
    errors: list = []
    tu.produce_in_txn(hung, topic, spread(b"hung", 5, 1), errors)
    assert hung.flush(30) == 0 and not errors
    # ... and then nothing: no commit, no abort, the producer stays alive.

    other = tu.txn_producer(broker, tu.unique("txn-other"))
    tu.init_transactions(other)
    after = spread(b"after", 5, 1, first=5)
    tu.run_txn(other, topic, after)
    other.flush(10)

    # Not blocked forever: once the coordinator aborts the hung transaction, the
    # committed records behind it become readable.
    rc = read_topic(broker, topic, [0], "read_committed", until=contains_values(v for _, _, v in after),
                    timeout=timeout_ms / 1000 + 25, settle=1.0)
    assert [m.value for m in rc] == [v for _, _, v in after]

    # The hung producer was fenced by the abort: its commit fails and its records stay invisible.
    with pytest.raises(KafkaException) as info:
        hung.commit_transaction(30)
    print(f"hung producer's commit: {info.value.args[0]}")
    rc = read_topic(broker, topic, [0], "read_committed", until=at_least(5), settle=1.0)
    assert [m.value for m in rc] == [v for _, _, v in after]
    ru = read_topic(broker, topic, [0], "read_uncommitted", until=at_least(10))
    assert [m.value for m in ru] == [b"hung-%d" % i for i in range(5)] + [v for _, _, v in after]


def test_transaction_timeout_above_max_is_refused(broker_factory):
    # Not through start_txn_broker's filter: the setting is the point of the test.
    broker = start_txn_broker(broker_factory, **{"transaction.max.timeout.ms": 60000})
    topic = topic_name("txn-maxtimeout")
    ck.create_topic(broker, topic, partitions=1)
    too_long = tu.txn_producer(broker, tu.unique("txn-long"), **{"transaction.timeout.ms": 120000})
    with pytest.raises(KafkaException) as info:
        too_long.init_transactions(30)
    err = info.value.args[0]
    assert err.code() == KafkaError.INVALID_TRANSACTION_TIMEOUT or "INVALID_TRANSACTION_TIMEOUT" in err.str(), err

    ok = tu.txn_producer(broker, tu.unique("txn-ok"), **{"transaction.timeout.ms": 60000})
    tu.init_transactions(ok)
    tu.run_txn(ok, topic, spread(b"ok", 3, 1))
    ok.flush(10)
    rc = read_topic(broker, topic, [0], "read_committed", until=at_least(3))
    assert [m.value for m in rc] == [b"ok-%d" % i for i in range(3)]


# ---------------------------------------------------------------- admin


def test_kafka_python_admin_transactions(broker_factory):
    from kafka import TopicPartition as KTP
    from kafka.admin import KafkaAdminClient, TransactionState
    from kafka.errors import TransactionalIdNotFoundError

    broker = start_txn_broker(broker_factory)
    topic = topic_name("txn-kp-admin")
    ck.create_topic(broker, topic, partitions=3)
    tu.produce_plain(broker, topic, [(0, b"k", b"plain-0"), (0, b"k", b"plain-1")])
    txn_id = tu.unique("txn-kp-admin")
    p = tu.txn_producer(broker, txn_id, **{"transaction.timeout.ms": 45000})
    tu.init_transactions(p)
    p.begin_transaction()
    errors: list = []
    tu.produce_in_txn(p, topic, [(0, b"k", b"t-0"), (1, b"k", b"t-1")], errors)
    assert p.flush(30) == 0 and not errors

    a = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=30000)
    try:
        d = a.describe_transactions([txn_id])[txn_id]
        assert d.state == TransactionState.ONGOING, d
        assert d.transaction_timeout_ms == 45000, d
        assert d.topic_partitions == {KTP(topic, 0), KTP(topic, 1)}, d
        assert d.producer_id >= 0 and d.producer_epoch >= 0, d
        assert d.transaction_start_time_ms > 0, d

        listed = [t for ts in a.list_transactions().values() for t in ts]
        mine = [t for t in listed if t.transactional_id == txn_id]
        assert len(mine) == 1 and mine[0].producer_id == d.producer_id, listed
        assert mine[0].state == TransactionState.ONGOING, mine
        ongoing = [t for ts in a.list_transactions(state_filters=["Ongoing"]).values() for t in ts]
        assert txn_id in {t.transactional_id for t in ongoing}

        producers = a.describe_producers([KTP(topic, 0)])[KTP(topic, 0)].active_producers
        active = [x for x in producers if x.producer_id == d.producer_id]
        assert len(active) == 1, producers
        # The open transaction started at offset 2 (after the two plain records).
        assert active[0].current_transaction_start_offset == 2, active
        assert active[0].producer_epoch == d.producer_epoch, active

        p.commit_transaction(60)
        tu.wait_until(
            lambda: (lambda x: x.state == TransactionState.COMPLETE_COMMIT and not x.topic_partitions)(
                a.describe_transactions([txn_id])[txn_id]),
            30, "CompleteCommit with no partitions")
        ongoing = [t for ts in a.list_transactions(state_filters=["Ongoing"]).values() for t in ts]
        assert txn_id not in {t.transactional_id for t in ongoing}
        tu.wait_until(
            lambda: all(x.current_transaction_start_offset == -1
                        for x in a.describe_producers([KTP(topic, 0)])[KTP(topic, 0)].active_producers),
            30, "no open transaction on the partition after the commit")

        with pytest.raises(TransactionalIdNotFoundError):
            a.describe_transactions([tu.unique("txn-never-used")])
    finally:
        a.close()
