"""Transactions over a cluster of three `strom serve` nodes (replication factor 1,
partitions spread over the nodes): a confluent-kafka transactional producer writes
to partitions led by every node, and the transaction coordinator (on one of them)
ends the transaction in all of them, sending WriteTxnMarkers to the other leaders.

Kafka semantics relied on:
- a committed transaction is readable by read_committed consumers in every
  partition, an aborted one in none (read_uncommitted consumers see both);
- once a transaction ends, every partition's last stable offset reaches its high
  watermark (no partition keeps an open transaction);
- EndTxn answers a retriable error while a marker cannot be written (a leader is
  down), and the client's retry ends the transaction once the leader is back.

The fixture starts its own three nodes on free ports, with their own data
directories, and stops them at the end; each node's log is attached to a failure.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import txn_util as tu
from conftest import free_port, strom_bin
from records import topic_name
from txn_util import at_least, read_topic

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
PARTITIONS = 6


class Node:
    """One `strom serve` of the cluster; its ports and directory outlive restarts."""

    def __init__(self, node_id: int, data_dir: Path, voters: str, kafka_port: int, controller_port: int):
        self.node_id = node_id
        self.data_dir = data_dir
        self.log_path = data_dir.parent / f"{data_dir.name}.log"
        self.voters = voters
        self.port = kafka_port
        self.controller_port = controller_port
        self.proc: subprocess.Popen | None = None
        self.expected_exit = True

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        listeners = f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}"
        return [
            str(strom_bin()), "serve",
            "--set", f"node.id={self.node_id}",
            "--set", f"log.dirs={self.data_dir}",
            "--set", f"listeners={listeners}",
            "--set", f"controller.quorum.voters={self.voters}",
        ]

    def launch(self) -> None:
        """Starts the process; it listens once the quorum has formed (see `wait_listening`)."""
        env = dict(os.environ, RUST_BACKTRACE="1", NO_COLOR="1")
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== {' '.join(self.command())}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, env=env)
        self.expected_exit = False

    def wait_listening(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"node {self.node_id} exited with {self.proc.returncode}\n{self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"node {self.node_id} did not listen on {self.bootstrap}\n{self.log_tail()}")

    def kill(self) -> None:
        self.expected_exit = True
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def terminate(self) -> None:
        """SIGTERM, not waited for (see `stop_all`)."""
        self.expected_exit = True
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def wait_stopped(self, deadline: float) -> None:
        """Waits until `deadline`, then SIGKILL: the last node of a cluster to stop
        may wait long in its controlled shutdown, with no quorum left to commit it."""
        if self.proc is None:
            return
        try:
            self.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def crashed(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None and not self.expected_exit

    def log_tail(self, lines: int = 60) -> str:
        try:
            tail = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return "(no log)"
        return f"--- last {len(tail)} lines of {self.log_path} ---\n" + "\n".join(tail)


class Cluster:
    def __init__(self, nodes: list[Node]):
        self.nodes = nodes

    @property
    def bootstrap(self) -> str:
        return ",".join(n.bootstrap for n in self.nodes)

    def node(self, node_id: int) -> Node:
        return self.nodes[node_id - 1]

    def admin(self) -> AdminClient:
        return AdminClient({"bootstrap.servers": self.bootstrap})

    def wait_for_brokers(self, deadline: float) -> None:
        """Until Metadata lists all three brokers (each registered and unfenced)."""
        admin = self.admin()
        seen = None
        while time.monotonic() < deadline:
            try:
                seen = sorted(admin.list_topics(timeout=5).brokers)
                if seen == [1, 2, 3]:
                    return
            except Exception as e:  # noqa: BLE001 - retried until the deadline
                seen = repr(e)
            time.sleep(0.2)
        raise AssertionError(f"Metadata did not list 3 brokers (last: {seen})")

    def create_spread_topic(self, name: str) -> dict[int, int]:
        """A topic of PARTITIONS partitions; returns {partition: leader}, every node leading some."""
        admin = self.admin()
        admin.create_topics([NewTopic(name, PARTITIONS, 1)])[name].result(30)

        def leaders():
            md = admin.list_topics(name, timeout=10).topics[name]
            found = {p: m.leader for p, m in md.partitions.items()}
            return found if len(found) == PARTITIONS and min(found.values()) >= 0 else None

        found = tu.wait_until(leaders, 20, f"leaders of {name}")
        assert set(found.values()) == {1, 2, 3}, f"partitions not spread over the nodes: {found}"
        return found

    def transaction_coordinator(self, transactional_id: str) -> int:
        """The node leading the `__transaction_state` partition of `transactional_id`
        (Kafka's placement: abs(Java hashCode) % partitions)."""
        md = self.admin().list_topics("__transaction_state", timeout=10).topics["__transaction_state"]
        h = 0
        for ch in transactional_id:
            h = (31 * h + ord(ch)) & 0xFFFFFFFF
        h = h - (1 << 32) if h >= 1 << 31 else h
        return md.partitions[abs(h) % len(md.partitions)].leader


@pytest.fixture
def cluster(request, tmp_path):
    ports = [(free_port(), free_port()) for _ in range(3)]
    voters = ",".join(f"{i + 1}@127.0.0.1:{controller}" for i, (_, controller) in enumerate(ports))
    nodes = [Node(i + 1, tmp_path / f"n{i + 1}", voters, kafka, controller) for i, (kafka, controller) in enumerate(ports)]
    # conftest attaches these logs to a failed test's report.
    request.node._strom_brokers = nodes
    try:
        for node in nodes:
            node.launch()
        deadline = time.monotonic() + START_TIMEOUT_S
        for node in nodes:
            node.wait_listening(deadline)
        c = Cluster(nodes)
        c.wait_for_brokers(deadline)
        yield c
    finally:
        crashed = [n for n in nodes if n.crashed()]
        # All at once, as a cluster is stopped: each leaves while the others still run.
        for node in nodes:
            node.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for node in nodes:
            node.wait_stopped(deadline)
    if crashed:
        pytest.fail("\n".join(f"node {n.node_id} died on its own\n{n.log_tail()}" for n in crashed), pytrace=False)


def spread(prefix: bytes, n: int):
    """(partition, key, value), record i to partition i % PARTITIONS."""
    return [(i % PARTITIONS, b"k%d" % i, prefix + b"-%d" % i) for i in range(n)]


def by_partition(records) -> dict[int, list[bytes]]:
    out: dict[int, list[bytes]] = {}
    for partition, _key, value in records:
        out.setdefault(partition, []).append(value)
    return out


def stable_offsets(cluster: Cluster, topic: str) -> dict[int, tuple[int, int]]:
    """{partition: (high watermark, last stable offset)}."""
    out = {}
    readers = {isolation: Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": "offsets",
                                    "isolation.level": isolation})
               for isolation in ("read_uncommitted", "read_committed")}
    try:
        for p in range(PARTITIONS):
            tp = TopicPartition(topic, p)
            hw = readers["read_uncommitted"].get_watermark_offsets(tp, timeout=10, cached=False)[1]
            lso = readers["read_committed"].get_watermark_offsets(tp, timeout=10, cached=False)[1]
            out[p] = (hw, lso)
    finally:
        for reader in readers.values():
            reader.close()
    return out


def test_transactions_commit_and_abort_in_partitions_of_every_node(cluster):
    topic = topic_name("cluster-txn")
    cluster.create_spread_topic(topic)
    p = tu.txn_producer(cluster, tu.unique("cluster-txn"))
    tu.init_transactions(p, timeout=30)

    committed = spread(b"committed", 60)
    aborted = spread(b"aborted", 60)
    last = spread(b"last", PARTITIONS)
    tu.run_txn(p, topic, committed, commit=True, timeout=30)
    tu.run_txn(p, topic, aborted, commit=False, timeout=30)
    tu.run_txn(p, topic, last, commit=True, timeout=30)

    # Three markers per partition, the last one closing the last transaction.
    offsets = stable_offsets(cluster, topic)
    expected_hw = {part: len(values) + 3 for part, values in by_partition(committed + aborted + last).items()}
    assert offsets == {part: (hw, hw) for part, hw in expected_hw.items()}, "every partition's LSO at its HW"

    msgs = read_topic(cluster, topic, range(PARTITIONS), "read_committed", until=at_least(66), timeout=30)
    got = {part: [m.value for m in ms] for part, ms in tu.per_partition(msgs).items()}
    assert got == by_partition(committed + last)
    raw = read_topic(cluster, topic, range(PARTITIONS), "read_uncommitted", until=at_least(126), timeout=30)
    assert len(raw) == 126, "the aborted records are stored, only hidden"


def test_a_commit_finishes_once_a_leader_that_was_down_is_back(cluster):
    topic = topic_name("cluster-txn-down")
    leaders = cluster.create_spread_topic(topic)
    transactional_id = tu.unique("cluster-txn-down")
    p = tu.txn_producer(cluster, transactional_id)
    tu.init_transactions(p, timeout=30)
    coordinator = cluster.transaction_coordinator(transactional_id)
    victim = cluster.node(next(n for n in (1, 2, 3) if n != coordinator))
    assert victim.node_id in leaders.values()

    records = spread(b"v", 60)
    p.begin_transaction()
    tu.produce_in_txn(p, topic, records)
    assert p.flush(30) == 0
    victim.kill()

    def restart():
        # Down for a while: EndTxn gets retriable errors, the client retries.
        time.sleep(4)
        victim.launch()

    restarter = threading.Thread(target=restart)
    restarter.start()
    started = time.monotonic()
    try:
        p.commit_transaction(45)
    finally:
        restarter.join()
    assert time.monotonic() - started >= 3, "the commit waited for the leader"
    victim.wait_listening(time.monotonic() + START_TIMEOUT_S)

    msgs = read_topic(cluster, topic, range(PARTITIONS), "read_committed", until=at_least(60), timeout=30)
    got = {part: [m.value for m in ms] for part, ms in tu.per_partition(msgs).items()}
    assert got == by_partition(records)
