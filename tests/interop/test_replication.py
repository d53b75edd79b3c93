"""Partition replication over three real `strom serve` processes with real clients:
replication factor 3 and min.insync.replicas 2, confluent-kafka producers with
acks=all, leaders SIGKILLed while producing, followers down, two nodes down.

A transaction open while its partition leader or its coordinator is SIGKILLed is read
whole or not at all under read_committed; partitions are reassigned and a node drained
with the CLI while written to.

What must hold: every acknowledged record is read back after the failovers, once and
in the order it was produced; acks=all is refused (NOT_ENOUGH_REPLICAS) while the ISR
is below min.insync.replicas and nothing above the high watermark is visible; acks=1
keeps working on the leader."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import NewTopic

import history_checker
import kafka_wire
from cluster_util import Cluster, Node
from conftest import strom_bin

pytestmark = pytest.mark.timeout(300)

SETTINGS = {
    "replica.lag.time.max.ms": 2000,
    "replica.fetch.backoff.ms": 100,
}
TOPIC = "replicated"


def running(tmp_path, request, nodes: int):
    cluster = Cluster(tmp_path, nodes, SETTINGS)
    request.node._strom_brokers = cluster.nodes
    cluster.start()
    yield cluster
    crashed = [n for n in cluster.nodes if n.crashed()]
    for node in cluster.nodes:
        if node.alive():
            node.stop()
    assert not crashed, "\n".join(n.log_tail() for n in crashed)


@pytest.fixture
def cluster(tmp_path, request):
    yield from running(tmp_path, request, 3)


@pytest.fixture
def cluster5(tmp_path, request):
    """Five nodes (all voters) with the topic on nodes 1-3: two of its replicas can
    go down while the metadata quorum keeps its majority, as with separate
    controllers."""
    yield from running(tmp_path, request, 5)


def create(cluster: Cluster, partitions: int = 1) -> None:
    admin = cluster.admin()
    config = {"min.insync.replicas": "2"}
    if len(cluster.nodes) == 3:
        topic = NewTopic(TOPIC, num_partitions=partitions, replication_factor=3, config=config)
    else:
        topic = NewTopic(TOPIC, num_partitions=partitions, replica_assignment=[[1, 2, 3]] * partitions, config=config)
    futures = admin.create_topics([topic])
    futures[TOPIC].result(timeout=30)
    wait_for(lambda: all(len(isr) == 3 for _, isr in partition_states(cluster).values()), "full ISR")


def partition_states(cluster: Cluster, topic: str = TOPIC) -> dict[int, tuple[int, list[int]]]:
    """Partition → (leader, ISR) as Metadata from a live node says."""
    for node in cluster.live():
        try:
            metadata = cluster.admin(node).list_topics(topic, timeout=5)
            partitions = metadata.topics[topic].partitions
            return {p: (m.leader, list(m.isrs)) for p, m in partitions.items()}
        except Exception:  # noqa: BLE001 - another node may answer
            continue
    return {}


def wait_for(condition, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except Exception:  # noqa: BLE001 - retried until the deadline
            pass
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


class Writer(threading.Thread):
    """An idempotent acks=all producer writing numbered values until stopped,
    recording which were acknowledged at which offset."""

    def __init__(self, bootstrap: str, partitions: int):
        super().__init__(daemon=True)
        self.producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                "message.timeout.ms": 60000,
            }
        )
        self.partitions = partitions
        self.acked: dict[int, list[tuple[int, int]]] = {p: [] for p in range(partitions)}
        self.failed: list[str] = []
        self.stop = threading.Event()
        self.sent = 0

    def delivered(self, err, msg) -> None:
        if err is not None:
            self.failed.append(str(err))
        else:
            self.acked[msg.partition()].append((msg.offset(), int(msg.value())))

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.producer.produce(
                    TOPIC, value=str(self.sent).encode(), partition=self.sent % self.partitions, on_delivery=self.delivered
                )
                self.sent += 1
            except BufferError:
                pass
            self.producer.poll(0.002)
        self.producer.flush(90)

    def count(self) -> int:
        return sum(len(a) for a in self.acked.values())


def read_all(bootstrap: str, partitions: int, expected: int, timeout: float = 60.0) -> dict[int, list[tuple[int, int]]]:
    """Every record from the start, per partition: (offset, value)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{time.monotonic_ns()}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    consumer.assign([TopicPartition(TOPIC, p, 0) for p in range(partitions)])
    seen: dict[int, list[tuple[int, int]]] = {p: [] for p in range(partitions)}
    deadline = time.monotonic() + timeout
    try:
        while sum(len(s) for s in seen.values()) < expected and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            seen[msg.partition()].append((msg.offset(), int(msg.value())))
    finally:
        consumer.close()
    return seen


def check_history(writer: Writer, seen: dict[int, list[tuple[int, int]]]) -> None:
    for partition, acked in writer.acked.items():
        read = seen[partition]
        offsets = [o for o, _ in read]
        assert offsets == sorted(set(offsets)), f"partition {partition}: offsets repeat or go back"
        values = [v for _, v in read]
        assert len(values) == len(set(values)), f"partition {partition}: a value was stored twice"
        at = dict(read)
        lost = [(o, v) for o, v in acked if at.get(o) != v]
        assert not lost, f"partition {partition}: acknowledged but not read back: {lost[:10]}"
        # One producer, one partition: the log keeps the order it produced in.
        assert values == sorted(values), f"partition {partition}: reordered"


def test_killing_the_leader_five_times_loses_nothing(cluster):
    partitions = 2
    create(cluster, partitions)
    writer = Writer(cluster.bootstrap, partitions)
    writer.start()
    try:
        wait_for(lambda: writer.count() > 200, "first acknowledgements")
        for round_ in range(5):
            leader, _ = partition_states(cluster)[0]
            victim = cluster.node(leader)
            before = writer.count()
            victim.kill()
            wait_for(lambda: partition_states(cluster)[0][0] not in (-1, leader), f"round {round_}: a new leader")
            wait_for(lambda: writer.count() > before + 100, f"round {round_}: acknowledgements after the failover")
            victim.restart()
            wait_for(
                lambda: all(len(isr) == 3 for _, isr in partition_states(cluster).values()),
                f"round {round_}: the restarted node back in every ISR",
            )
    finally:
        writer.stop.set()
        writer.join(120)
    assert not writer.failed, writer.failed[:5]
    seen = read_all(cluster.bootstrap, partitions, writer.count())
    check_history(writer, seen)
    assert writer.count() > 700


def test_with_both_followers_down_acks_all_is_refused_and_nothing_new_is_visible(cluster5):
    cluster = cluster5
    create(cluster)
    bootstrap = cluster.bootstrap
    strict = Producer({"bootstrap.servers": bootstrap, "acks": "all", "retries": 0, "message.timeout.ms": 10000})
    outcomes: list = []
    strict.produce(TOPIC, value=b"0", on_delivery=lambda err, msg: outcomes.append((err, msg.offset())))
    strict.flush(30)
    assert outcomes[0][0] is None, outcomes
    leader, _ = partition_states(cluster)[0]
    followers = [cluster.node(n) for n in (1, 2, 3) if n != leader]
    for node in followers:
        node.kill()
    wait_for(lambda: partition_states(cluster)[0] == (leader, [leader]), "the ISR shrunk to the leader")
    # The CLI shows it: under-replicated in the cluster's counts and the topic's rows.
    status = json.loads(strom(cluster, "--output", "json", "cluster", "status"))
    assert status["partitions"]["under_replicated"] >= 1, status["partitions"]
    described = json.loads(strom(cluster, "--output", "json", "topic", "describe", TOPIC))
    assert described["partitions"][0]["under_replicated"] is True

    outcomes.clear()
    strict.produce(TOPIC, value=b"refused", on_delivery=lambda err, msg: outcomes.append(err))
    strict.flush(30)
    assert outcomes and outcomes[0] is not None, "acks=all was accepted with one in-sync replica"
    assert outcomes[0].code() == KafkaError.NOT_ENOUGH_REPLICAS, outcomes[0]

    leader_only = Producer({"bootstrap.servers": bootstrap, "acks": 1, "retries": 0})
    taken: list = []
    leader_only.produce(TOPIC, value=b"one", on_delivery=lambda err, msg: taken.append((err, msg.offset())))
    leader_only.flush(30)
    assert taken[0][0] is None, taken
    assert taken[0][1] == 1, "acks=1 appends on the leader"

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "watch"})
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(TOPIC, 0), timeout=10)
        assert (low, high) == (0, 1), "the high watermark does not advance below min.insync.replicas"
        for node in followers:
            node.restart()
        wait_for(lambda: len(partition_states(cluster)[0][1]) == 3, "the followers back in the ISR")
        described = json.loads(strom(cluster, "--output", "json", "topic", "describe", TOPIC))
        row = described["partitions"][0]
        assert row["under_replicated"] is False
        assert sorted(row["replica_lag"]) == ["1", "2", "3"], row
        wait_for(
            lambda: all(
                lag == 0
                for lag in json.loads(strom(cluster, "--output", "json", "topic", "describe", TOPIC))["partitions"][0][
                    "replica_lag"
                ].values()
            ),
            "the followers' lag back to 0",
        )
        wait_for(
            lambda: consumer.get_watermark_offsets(TopicPartition(TOPIC, 0), timeout=5)[1] == 2,
            "the acks=1 record committed once the ISR is back",
        )
    finally:
        consumer.close()


def test_two_nodes_killed_keeps_acknowledged_records_and_refuses_writes(cluster5):
    cluster = cluster5
    create(cluster)
    writer = Writer(cluster.bootstrap, 1)
    writer.start()
    try:
        wait_for(lambda: writer.count() > 300, "acknowledgements")
    finally:
        writer.stop.set()
        writer.join(120)
    acked = writer.count()
    leader, isr = partition_states(cluster)[0]
    survivor = next(n for n in isr if n != leader)
    killed = [cluster.node(n) for n in (1, 2, 3) if n != survivor]
    for node in killed:
        node.kill()
    # The other two are fenced as their sessions expire (perhaps one after the other).
    wait_for(lambda: partition_states(cluster)[0] == (survivor, [survivor]), "the survivor leads alone")
    # One in-sync replica: acks=all writes are refused, nothing acknowledged is lost.
    strict = Producer({"bootstrap.servers": cluster.node(survivor).bootstrap, "acks": "all", "retries": 0})
    outcomes: list = []
    strict.produce(TOPIC, value=b"x", on_delivery=lambda err, msg: outcomes.append(err))
    strict.flush(30)
    assert outcomes and outcomes[0] is not None and outcomes[0].code() == KafkaError.NOT_ENOUGH_REPLICAS, outcomes
    # A second replica back: the high watermark covers every acknowledged record.
    killed[0].restart()
    wait_for(lambda: len(partition_states(cluster)[0][1]) >= 2, "a second in-sync replica")
    seen = read_all(cluster.bootstrap, 1, acked)
    check_history(writer, seen)


def strom(cluster: Cluster, *args: str) -> str:
    out = subprocess.run(
        [str(strom_bin()), "--brokers", cluster.bootstrap, *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr + out.stdout
    return out.stdout


def test_reassignment_moves_replicas_and_drain_empties_a_node(cluster, tmp_path):
    admin = cluster.admin()
    topic = NewTopic(TOPIC, num_partitions=2, replica_assignment=[[1, 2], [2, 1]], config={"min.insync.replicas": "1"})
    admin.create_topics([topic])[TOPIC].result(timeout=30)
    writer = Writer(cluster.bootstrap, 2)
    writer.start()
    try:
        wait_for(lambda: writer.count() > 400, "acknowledgements")
        # Moved while written to: node 3 catches up, node 1 leaves.
        out = strom(cluster, "topic", "reassign", TOPIC, "--partition", "0", "--replicas", "2,3", "--wait")
        assert "done" in out
        assert partition_states(cluster)[0][0] in (2, 3)
        assert sorted(partition_states(cluster)[0][1]) == [2, 3]
        metadata = admin.list_topics(TOPIC, timeout=10).topics[TOPIC].partitions
        assert sorted(metadata[0].replicas) == [2, 3]
        wait_for(lambda: not (tmp_path / "node-1" / f"{TOPIC}-0").exists(), "node 1's copy deleted")
        assert (tmp_path / "node-3" / f"{TOPIC}-0").exists()
        # Nothing left in progress; cancelling now is refused.
        assert strom(cluster, "--output", "json", "topic", "reassignments").strip() == "[]"
        cancel = subprocess.run(
            [str(strom_bin()), "--brokers", cluster.bootstrap, "topic", "reassign", TOPIC, "--partition", "0", "--cancel"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert cancel.returncode != 0 and "NO_REASSIGNMENT_IN_PROGRESS" in cancel.stderr, cancel.stderr
        # Drain node 2: every replica it holds moves to the others.
        strom(cluster, "cluster", "drain", "--id", "2", "--wait")
        metadata = admin.list_topics(TOPIC, timeout=10).topics[TOPIC].partitions
        assert all(2 not in p.replicas for p in metadata.values()), {k: p.replicas for k, p in metadata.items()}
        wait_for(lambda: writer.count() > 900, "acknowledgements after the moves")
    finally:
        writer.stop.set()
        writer.join(120)
    assert not writer.failed, writer.failed[:5]
    check_history(writer, read_all(cluster.bootstrap, 2, writer.count()))


def coordinator_of(cluster: Cluster, transactional_id: str) -> int:
    def ask():
        for node in cluster.live():
            error, coordinator, _ = kafka_wire.find_coordinator(node.port, transactional_id, 1)
            if error == 0:
                return coordinator
        return None

    found: list[int] = []
    wait_for(lambda: found.append(ask()) or found[-1] is not None, "the transaction coordinator")
    return found[-1]


@pytest.mark.parametrize("victim", ["partition-leader", "coordinator"])
def test_a_transaction_survives_its_leader_or_coordinator_being_killed_whole_or_not_at_all(cluster, victim):
    create(cluster, partitions=2)
    txn_id = f"txn-{victim}"
    producer = Producer({"bootstrap.servers": cluster.bootstrap, "transactional.id": txn_id, "transaction.timeout.ms": 20000})
    producer.init_transactions(30)
    outcomes: dict[int, str] = {}
    killed = None
    for txn in range(6):
        producer.begin_transaction()
        for i in range(10):
            producer.produce(TOPIC, value=f"{txn}-{i}".encode(), partition=i % 2)
        producer.flush(30)
        if txn == 2:
            # Mid-transaction: records written on both partitions, not yet committed.
            target = partition_states(cluster)[0][0] if victim == "partition-leader" else coordinator_of(cluster, txn_id)
            killed = cluster.node(target)
            killed.kill()
        try:
            producer.commit_transaction(60)
            outcomes[txn] = "committed"
        except KafkaException as e:
            error = e.args[0]
            if error.txn_requires_abort():
                producer.abort_transaction(60)
                outcomes[txn] = "aborted"
            else:
                outcomes[txn] = "unknown"
                producer = Producer(
                    {"bootstrap.servers": cluster.bootstrap, "transactional.id": txn_id, "transaction.timeout.ms": 20000}
                )
                producer.init_transactions(60)
    producer.flush(10)
    assert killed is not None
    killed.restart()
    wait_for(lambda: all(len(isr) == 3 for _, isr in partition_states(cluster).values()), "full ISRs again")
    consumer = Consumer(
        {
            "bootstrap.servers": cluster.bootstrap,
            "group.id": f"check-{victim}",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(TOPIC, p, 0) for p in range(2)])
    seen: dict[int, set[str]] = {}
    committed_records = sum(10 for o in outcomes.values() if o == "committed")
    deadline = time.monotonic() + 60
    idle = 0
    try:
        while time.monotonic() < deadline and idle < 10:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                idle += 1 if sum(len(v) for v in seen.values()) >= committed_records else 0
                continue
            txn, _ = msg.value().decode().split("-")
            seen.setdefault(int(txn), set()).add(msg.value().decode())
    finally:
        consumer.close()
    for txn, outcome in outcomes.items():
        records = seen.get(txn, set())
        if outcome == "committed":
            assert len(records) == 10, f"transaction {txn} committed but {len(records)} of 10 records read"
        elif outcome == "aborted":
            assert not records, f"transaction {txn} aborted but {len(records)} records read"
        else:
            assert len(records) in (0, 10), f"transaction {txn} torn: {len(records)} of 10 records read"
    assert sum(1 for o in outcomes.values() if o == "committed") >= 3, outcomes


def test_sigterm_moves_leadership_first_and_the_preferred_leader_gets_it_back(tmp_path, request):
    # Sessions that outlast the test: only a controlled shutdown can move leadership.
    settings = dict(SETTINGS, **{"broker.session.timeout.ms": 120000, "leader.imbalance.check.interval.seconds": 1})
    cluster = Cluster(tmp_path, 3, settings)
    request.node._strom_brokers = cluster.nodes
    cluster.start()
    try:
        create(cluster, partitions=3)
        before = partition_states(cluster)
        victim = before[0][0]
        led = sorted(p for p, (leader, _) in before.items() if leader == victim)
        writer = Writer(cluster.bootstrap, 3)
        writer.start()
        try:
            wait_for(lambda: writer.count() > 200, "acknowledgements")
            assert cluster.node(victim).stop() == 0
            # Well within the two-minute session: moved by the controlled shutdown.
            wait_for(
                lambda: all(partition_states(cluster)[p][0] not in (victim, -1) for p in led),
                "leadership moved away by the controlled shutdown",
                timeout=30,
            )
            wait_for(lambda: writer.count() > 400, "acknowledgements on the new leaders")
            cluster.node(victim).restart()
            wait_for(
                lambda: all(partition_states(cluster)[p][0] == victim for p in led),
                "leadership back on the preferred replica",
            )
        finally:
            writer.stop.set()
            writer.join(120)
        assert not writer.failed, writer.failed[:5]
        check_history(writer, read_all(cluster.bootstrap, 3, writer.count()))
    finally:
        for node in cluster.nodes:
            if node.alive():
                node.stop()


def test_an_isolated_leader_acknowledges_nothing_and_truncates_its_tail_after_healing(tmp_path, request):
    cluster = Cluster(tmp_path, 3, SETTINGS, proxied=True)
    request.node._strom_brokers = cluster.nodes
    cluster.start()
    try:
        create(cluster)
        writer = Writer(cluster.bootstrap, 1)
        writer.start()
        try:
            wait_for(lambda: writer.count() > 200, "acknowledgements")
        finally:
            writer.stop.set()
            writer.join(120)
        leader, _ = partition_states(cluster)[0]
        old = cluster.node(leader)
        others = [n for n in cluster.nodes if n.node_id != leader]
        # A producer that only knows the old leader keeps writing to it.
        stale = Producer(
            {
                "bootstrap.servers": old.bootstrap,
                "acks": "all",
                "retries": 0,
                "request.timeout.ms": 3000,
                "message.timeout.ms": 5000,
            }
        )
        stale.list_topics(TOPIC, timeout=10)
        cluster.isolate(leader)
        outcomes: list = []
        for i in range(5):
            stale.produce(TOPIC, value=f"zombie-{i}".encode(), on_delivery=lambda err, msg: outcomes.append(err))
        stale.flush(30)
        assert len(outcomes) == 5 and all(err is not None for err in outcomes), outcomes
        # acks=1 is answered after the leader's own append: a record surely in its tail.
        leader_only = Producer({"bootstrap.servers": old.bootstrap, "acks": 1, "retries": 0})
        taken: list = []
        leader_only.produce(TOPIC, value=b"zombie-acks1", on_delivery=lambda err, msg: taken.append(err))
        leader_only.flush(30)
        assert taken == [None], taken
        # The majority side elects a leader and goes on.
        majority = ",".join(n.bootstrap for n in others)

        def new_leader() -> bool:
            metadata = cluster.admin(others[0]).list_topics(TOPIC, timeout=5).topics[TOPIC].partitions[0]
            return metadata.leader in [n.node_id for n in others]

        wait_for(new_leader, "a leader on the majority side")
        after = Writer(majority, 1)
        after.start()
        try:
            wait_for(lambda: after.count() > 100, "acknowledgements on the majority side")
        finally:
            after.stop.set()
            after.join(120)
        cluster.heal()
        wait_for(lambda: len(partition_states(cluster)[0][1]) == 3, "the old leader back in the ISR as a follower")
        seen = read_all(cluster.bootstrap, 1, writer.count() + after.count())
        values = [v for _, v in seen[0]]
        assert len(values) == writer.count() + after.count(), "every acknowledged record, nothing else"
        # It had appended records the others never got, and cut them when it learned of
        # the new leader's epoch (the zombie records are not read back: see above).
        assert "follower truncates where its log diverges" in old.log_path.read_text(errors="replace")
        # Its unacknowledged tail is gone: every replica holds the same batches.
        copies = [history_checker.read_batches(tmp_path / f"node-{n.node_id}" / f"{TOPIC}-0") for n in cluster.nodes]
        assert copies[0] == copies[1] == copies[2]
    finally:
        cluster.stop()


def produce_numbers(bootstrap: str, topic: str, first: int, count: int) -> None:
    """`count` acks=all records numbered from `first`; every one must be acknowledged."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
    errors: list[str] = []
    for n in range(first, first + count):
        producer.produce(topic, value=str(n).encode(), on_delivery=lambda err, _: err and errors.append(str(err)))
    assert producer.flush(60) == 0 and not errors, errors[:3]


def led(cluster: Cluster, topic: str = TOPIC) -> tuple[int, list[int]]:
    """Partition 0's leader and sorted ISR."""
    leader, isr = partition_states(cluster, topic)[0]
    return leader, sorted(isr)


def test_an_eligible_replica_leads_and_a_wiped_disk_leads_nothing(tmp_path, request):
    """KIP-966 with voters apart from the data: three controllers (nodes 1-3) and three
    broker-only nodes (4-6) holding the topic, min.insync.replicas=2. Node 6 dies (ISR
    4,5), then node 5 (ISR 4: the high watermark stops, so 5 keeps every committed
    record and becomes an eligible leader replica), then node 4. When 5 comes back it
    leads, though it is not in the ISR; the records are all there once 6 has caught up
    from it. A node whose disk was wiped holds nothing: as the last in-sync replica of
    a partition it does not lead it again (the partition stays offline instead of
    serving an empty log)."""
    cluster = Cluster(tmp_path, 3, SETTINGS)
    request.node._strom_brokers = cluster.nodes
    cluster.start()
    try:
        for node_id in (4, 5, 6):
            settings = dict(cluster.node(1).settings)
            settings["process.roles"] = "broker"
            node = Node(tmp_path / f"node-{node_id}", node_id, settings)
            node.voters = cluster.node(1).voters
            cluster.nodes.append(node)
            node.start(timeout=60)
        cluster.wait_for_brokers(6)
        admin = cluster.admin()
        topics = [
            NewTopic(TOPIC, num_partitions=1, replica_assignment=[[4, 5, 6]], config={"min.insync.replicas": "2"}),
            NewTopic("solo", num_partitions=1, replica_assignment=[[4]]),
        ]
        for future in admin.create_topics(topics).values():
            future.result(timeout=30)
        wait_for(lambda: led(cluster) == (4, [4, 5, 6]), "the full ISR")
        produce_numbers(cluster.bootstrap, TOPIC, 0, 200)
        produce_numbers(cluster.bootstrap, "solo", 0, 50)

        cluster.node(6).kill()
        wait_for(lambda: led(cluster) == (4, [4, 5]), "6 out of the ISR")
        produce_numbers(cluster.bootstrap, TOPIC, 200, 100)
        cluster.node(5).kill()
        wait_for(lambda: led(cluster) == (4, [4]), "5 out of the ISR")
        cluster.node(4).kill()
        wait_for(lambda: led(cluster)[0] == -1, "the partition offline")

        # 5 is not in the ISR, but eligible: it leads when it returns.
        cluster.node(5).start(timeout=60)
        wait_for(lambda: led(cluster) == (5, [5]), "the eligible replica leading")
        cluster.node(6).start(timeout=60)
        wait_for(lambda: led(cluster) == (5, [5, 6]), "6 caught up from 5")
        seen = read_all(cluster.bootstrap, 1, 300)[0]
        assert [value for _, value in seen] == list(range(300)), "every acknowledged record, in order"

        # Node 4 comes back with an empty disk: the last in-sync replica of `solo` lost
        # what it held, so `solo` stays offline; of the other topic it is a follower
        # catching up like any other.
        shutil.rmtree(cluster.node(4).data_dir)
        cluster.node(4).start(timeout=60)
        wait_for(lambda: led(cluster) == (5, [4, 5, 6]), "4 caught up as a follower")
        assert led(cluster, "solo")[0] == -1, led(cluster, "solo")
        assert [value for _, value in read_all(cluster.bootstrap, 1, 300)[0]] == list(range(300))
    finally:
        for node in cluster.nodes:
            if node.alive():
                node.stop()


def test_a_consumer_reads_from_an_in_sync_replica_in_its_rack(tmp_path, request):
    """KIP-392: with the rack-aware replica selector, a leader sends a consumer whose
    `client.rack` names another broker's rack to that in-sync replica, and the consumer
    reads everything from it (librdkafka's statistics show which broker it fetches
    from), records produced after the switch included."""
    selector = {"replica.selector.class": "org.apache.kafka.common.replica.RackAwareReplicaSelector"}
    cluster = Cluster(tmp_path, 3, {**SETTINGS, **selector})
    for node in cluster.nodes:
        node.settings["broker.rack"] = f"rack-{node.node_id}"
    request.node._strom_brokers = cluster.nodes
    cluster.start()
    try:
        create(cluster)
        leader = partition_states(cluster)[0][0]
        follower = next(n for n in (1, 2, 3) if n != leader)
        produce_numbers(cluster.bootstrap, TOPIC, 0, 300)
        fetched_from: set[int] = set()

        def stats(raw: str) -> None:
            partition = json.loads(raw).get("topics", {}).get(TOPIC, {}).get("partitions", {}).get("0")
            if partition and partition.get("broker", -1) >= 0:
                fetched_from.add(partition["broker"])

        consumer = Consumer(
            {
                "bootstrap.servers": cluster.bootstrap,
                "group.id": "by-rack",
                "client.rack": f"rack-{follower}",
                "enable.auto.commit": False,
                "statistics.interval.ms": 200,
                "stats_cb": stats,
            }
        )
        consumer.assign([TopicPartition(TOPIC, 0, 0)])
        values: list[int] = []

        def read_until(count: int) -> None:
            deadline = time.monotonic() + 60
            while len(values) < count and time.monotonic() < deadline:
                msg = consumer.poll(0.2)
                if msg is not None and not msg.error():
                    values.append(int(msg.value()))

        try:
            read_until(300)
            produce_numbers(cluster.bootstrap, TOPIC, 300, 100)
            read_until(400)
            deadline = time.monotonic() + 10
            while follower not in fetched_from and time.monotonic() < deadline:
                consumer.poll(0.2)
        finally:
            consumer.close()
        assert values == list(range(400)), values[-5:]
        assert follower in fetched_from, f"fetched from {fetched_from}, the follower in the rack is {follower}"
    finally:
        for node in cluster.nodes:
            if node.alive():
                node.stop()
