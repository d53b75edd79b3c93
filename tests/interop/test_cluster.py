"""Three Strom nodes on localhost (separate processes, ports and data directories)
serving one cluster to real clients: placement over every node, clients that
bootstrap from one node, coordinators on other nodes, controller failover,
fencing of a killed broker, and refusal of a data directory of another cluster."""

from __future__ import annotations

import subprocess
import threading
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import NewTopic
from kafka import KafkaConsumer, KafkaProducer

import kafka_wire
from cluster_util import Cluster, Node
from conftest import strom_bin

pytestmark = pytest.mark.timeout(240)


def running_cluster(tmp_path, request, settings=None):
    """Three nodes for one test; any that died on its own fails the test."""
    cluster = Cluster(tmp_path, 3, settings)
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
    yield from running_cluster(tmp_path, request)


def create(cluster: Cluster, name: str, partitions: int, via=None) -> None:
    admin = cluster.admin(via)  # kept alive until the result is in
    futures = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    futures[name].result(timeout=30)


def find_coordinator(port: int, key: str, key_type: int) -> int:
    """The coordinator's node id, asking again while it is not available yet (the
    internal topic being created or loaded), as clients do."""
    deadline = time.monotonic() + 30
    while True:
        error, node, _ = kafka_wire.find_coordinator(port, key, key_type)
        if error == 0:
            return node
        assert time.monotonic() < deadline, f"FindCoordinator kept failing with {error}"
        time.sleep(0.2)


def leaders(cluster: Cluster, topic: str, via=None) -> dict[int, int]:
    metadata = cluster.admin(via).list_topics(topic, timeout=10)
    return {p.id: p.leader for p in metadata.topics[topic].partitions.values()}


def wait_leaders(cluster: Cluster, topic: str, predicate, via=None, timeout: float = 30.0) -> dict[int, int]:
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        try:
            seen = leaders(cluster, topic, via)
            if predicate(seen):
                return seen
        except Exception as e:  # noqa: BLE001 - retried until the deadline
            seen = repr(e)
        time.sleep(0.2)
    raise AssertionError(f"leaders of {topic} never matched; last {seen}")


def produce_confluent(bootstrap: str, topic: str, count: int, prefix: str) -> list:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})
    delivered = []

    def on_delivery(error, message):
        assert error is None, error
        delivered.append((message.partition(), message.offset()))

    for i in range(count):
        producer.produce(topic, key=f"{prefix}{i}".encode(), value=f"{prefix}{i}".encode(), on_delivery=on_delivery)
    assert producer.flush(30) == 0
    return delivered


def consume_confluent(bootstrap: str, topic: str, count: int, group: str) -> list[bytes]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    values = []
    deadline = time.monotonic() + 60
    try:
        while len(values) < count and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            assert message.error() is None, message.error()
            values.append(message.value())
        consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    return values


def test_topics_spread_over_every_node_and_clients_use_all_of_them(cluster):
    create(cluster, "spread", 6)
    placed = leaders(cluster, "spread", cluster.node(2))
    assert sorted(set(placed.values())) == [1, 2, 3], placed
    # Every node describes the same brokers and leaders.
    for node in cluster.nodes:
        metadata = cluster.admin(node).list_topics("spread", timeout=10)
        assert sorted(metadata.brokers) == [1, 2, 3]
        assert {p.id: p.leader for p in metadata.topics["spread"].partitions.values()} == placed
        assert {b.port for b in metadata.brokers.values()} == {n.port for n in cluster.nodes}

    # confluent-kafka through one bootstrap node reaches every partition's leader.
    delivered = produce_confluent(cluster.node(1).bootstrap, "spread", 300, "c")
    assert {p for p, _ in delivered} == set(range(6))
    # kafka-python likewise, bootstrapping from another node.
    producer = KafkaProducer(bootstrap_servers=cluster.node(3).bootstrap, acks="all")
    futures = [producer.send("spread", key=f"k{i}".encode(), value=f"k{i}".encode()) for i in range(300)]
    partitions = {f.get(timeout=30).partition for f in futures}
    producer.close()
    assert partitions == set(range(6))

    got = consume_confluent(cluster.node(2).bootstrap, "spread", 600, "spread-readers")
    assert sorted(got) == sorted([f"c{i}".encode() for i in range(300)] + [f"k{i}".encode() for i in range(300)])

    consumer = KafkaConsumer(
        "spread",
        bootstrap_servers=cluster.node(1).bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=10_000,
        group_id="kp-readers",
    )
    seen = [m.value for m in consumer]
    consumer.close()
    assert len(seen) == 600


def test_a_group_and_a_transaction_whose_coordinators_are_on_other_nodes(cluster):
    create(cluster, "work", 3)
    bootstrap = cluster.node(1).bootstrap
    # Groups until one's coordinator is not the bootstrap node.
    group = None
    for i in range(50):
        candidate = f"group-{i}"
        node = find_coordinator(cluster.node(1).port, candidate, 0)
        if node != 1:
            group = candidate
            break
    assert group is not None
    produce_confluent(bootstrap, "work", 90, "w")
    assert len(consume_confluent(bootstrap, "work", 90, group)) == 90
    # Closed explicitly: a consumer left for interpreter exit keeps reconnecting to the
    # stopped cluster and holds the test run open.
    probe = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        committed = probe.committed([TopicPartition("work", p) for p in range(3)], timeout=10)
    finally:
        probe.close()
    assert sum(tp.offset for tp in committed) == 90

    # A transaction whose coordinator is not the bootstrap node, on a partition that
    # node leads.
    txn_id, coordinator = None, None
    for i in range(200):
        candidate = f"txn-{i}"
        node = find_coordinator(cluster.node(1).port, candidate, 1)
        if node != 1:
            txn_id, coordinator = candidate, node
            break
    assert txn_id is not None
    local = next(p for p, leader in leaders(cluster, "work").items() if leader == coordinator)
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": txn_id})
    producer.init_transactions(30)
    producer.begin_transaction()
    for i in range(10):
        producer.produce("work", value=f"t{i}".encode(), partition=local)
    producer.commit_transaction(30)
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "txn-reader",
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.assign([TopicPartition("work", local, 0)])
    values = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not any(v == b"t9" for v in values):
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            values.append(message.value())
    consumer.close()
    assert [v for v in values if v.startswith(b"t")] == [f"t{i}".encode() for i in range(10)]


@pytest.fixture
def snapshotting_cluster(tmp_path, request):
    # Snapshots every 20 entries: a node down for a while catches up from one.
    yield from running_cluster(tmp_path, request, {"metadata.snapshot.interval.entries": 20})


def test_controller_failover_keeps_every_acknowledged_topic(snapshotting_cluster):
    cluster = snapshotting_cluster
    controller = cluster.controller_id()
    survivor = next(n for n in cluster.nodes if n.node_id != controller)
    acknowledged: list[str] = []
    failures: list[str] = []
    stop = threading.Event()

    def create_topics():
        admin = cluster.admin(survivor)
        i = 0
        while not stop.is_set():
            name = f"t-{i}"
            i += 1
            try:
                admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])[name].result(timeout=30)
                acknowledged.append(name)
            except Exception as e:  # noqa: BLE001 - a timeout is an indeterminate outcome, recorded too
                failures.append(f"{name}: {e!r}")
            time.sleep(0.02)

    creator = threading.Thread(target=create_topics)
    creator.start()
    time.sleep(2)
    killed_at = time.monotonic()
    cluster.node(controller).kill()
    # A new controller within seconds.
    deadline = time.monotonic() + 15
    new_controller = None
    while time.monotonic() < deadline:
        try:
            candidate = cluster.controller_id(survivor)
            if candidate not in (controller, -1):
                new_controller = candidate
                break
        except subprocess.SubprocessError:
            pass
        time.sleep(0.1)
    assert new_controller is not None, "no new controller"
    took = time.monotonic() - killed_at
    count_at_failover = len(acknowledged)
    time.sleep(3)
    stop.set()
    creator.join(60)
    assert len(acknowledged) > count_at_failover, f"no topic created after the failover: {failures[-3:]}"
    assert took < 15
    # Every acknowledged creation is in the metadata.
    names = set(cluster.admin(survivor).list_topics(timeout=10).topics)
    missing = [t for t in acknowledged if t not in names]
    assert not missing, missing

    # The killed node rejoins and catches up: the log it missed was purged behind a
    # snapshot, so it gets the snapshot.
    assert len(acknowledged) > 60
    cluster.node(controller).start(timeout=60)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        names = set(cluster.admin(cluster.node(controller)).list_topics(timeout=10).topics)
        if all(t in names for t in acknowledged):
            break
        time.sleep(0.3)
    assert all(t in names for t in acknowledged)
    assert "installed a metadata snapshot from the leader" in cluster.node(controller).log_path.read_text()


def test_a_killed_broker_is_fenced_and_its_partitions_come_back(cluster):
    create(cluster, "fenced", 6)
    produce_confluent(cluster.node(1).bootstrap, "fenced", 60, "f")
    controller = cluster.controller_id()
    victim = next(n for n in cluster.nodes if n.node_id != controller)
    victim.kill()
    other = next(n for n in cluster.nodes if n.alive())
    # Fenced after broker.session.timeout.ms: gone from Metadata, its partitions offline.
    cluster.wait_for_brokers(2, via=other)
    offline = wait_leaders(
        cluster, "fenced", lambda ls: list(ls.values()).count(-1) == 2, via=other
    )
    metadata = cluster.admin(other).list_topics("fenced", timeout=10)
    for p in metadata.topics["fenced"].partitions.values():
        if p.leader == -1:
            assert p.replicas == [victim.node_id]
            assert p.error is not None  # LEADER_NOT_AVAILABLE
    # The cluster status says so too.
    status = cluster.status(other)
    by_id = {n["node_id"]: n for n in status["nodes"]}
    assert by_id[victim.node_id]["broker"] == "fenced"
    assert status["active_controller"] == controller

    victim.start(timeout=60)
    back = wait_leaders(cluster, "fenced", lambda ls: -1 not in ls.values(), via=other)
    assert sorted(p for p, leader in back.items() if leader == victim.node_id) == sorted(
        p for p, leader in offline.items() if leader == -1
    )
    # Nothing was lost on the partitions that were offline.
    assert len(consume_confluent(other.bootstrap, "fenced", 60, "after-fencing")) == 60


def test_a_node_of_another_cluster_is_refused(cluster):
    node = cluster.node(3)
    node.stop()
    node.settings["cluster.id"] = "SomeOtherClusterIdAAAA"
    node.spawn()
    returncode = node.proc.wait(timeout=60)
    node._expected_exit = True
    assert returncode != 0
    assert "belongs to cluster" in node.log_tail(), node.log_tail()
    # The other two still serve.
    create(cluster, "still-fine", 2)


def cli(node, *args: str) -> str:
    done = subprocess.run(
        [str(strom_bin()), "--brokers", node.bootstrap, *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_lost_node_is_replaced_by_a_new_voter(cluster, tmp_path):
    create(cluster, "before", 3)
    # Node 3's disk is lost: a new node with an empty disk and a new id takes its
    # place in the quorum (never node 3's id: that log is gone).
    cluster.node(3).kill()
    first = cluster.node(1)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if cluster.controller_id(first) not in (3, -1, None):
            break
        time.sleep(0.2)
    new = Node(tmp_path / "node-4", 4, first.settings)
    new.voters = first.voters  # the current voters; node 4 is not one yet
    cluster.nodes.append(new)
    new.spawn()
    cli(first, "cluster", "add-voter", "--id", "4", "--address", f"127.0.0.1:{new.controller_port}")
    new.wait_listening(60)
    cli(first, "cluster", "remove-voter", "--id", "3")
    # Node 3 is fenced after its session; then it can be forgotten.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        nodes = {n["node_id"]: n for n in cluster.status(first)["nodes"]}
        if nodes.get(3, {}).get("broker") == "fenced":
            break
        time.sleep(0.3)
    cli(first, "cluster", "unregister", "--id", "3")
    status = cluster.status(first)
    roles = {n["node_id"]: n["roles"] for n in status["nodes"]}
    assert roles == {1: "broker,controller", 2: "broker,controller", 4: "broker,controller"}, roles
    # New partitions go to the new node too, and clients use it.
    create(cluster, "after", 6)
    assert sorted(set(leaders(cluster, "after").values())) == [1, 2, 4]
    produce_confluent(new.bootstrap, "after", 60, "n")
    # The quorum of 1, 2 and 4 survives losing one of them.
    first.kill()
    create(cluster, "survives", 1, via=cluster.node(2))


def test_a_broker_only_node_follows_the_metadata_log_and_serves_partitions(cluster, tmp_path):
    first = cluster.node(1)
    settings = dict(first.settings)
    settings["process.roles"] = "broker"
    observer = Node(tmp_path / "node-4", 4, settings)
    observer.voters = first.voters
    cluster.nodes.append(observer)
    observer.start(timeout=60)
    cluster.wait_for_brokers(4)
    nodes = {n["node_id"]: n for n in cluster.status(first)["nodes"]}
    assert nodes[4]["roles"] == "broker,observer", nodes
    assert nodes[4]["broker"] == "alive"
    # It takes partitions like any broker, and clients use it.
    create(cluster, "with-observer", 8, via=observer)
    assert 4 in leaders(cluster, "with-observer").values()
    produce_confluent(observer.bootstrap, "with-observer", 80, "o")
    assert len(consume_confluent(first.bootstrap, "with-observer", 80, "observer-readers")) == 80
    # A learner never leads the quorum.
    assert cluster.controller_id(first) != 4
