"""A cluster of real `strom serve` processes on localhost: every node a broker and a
voter of the metadata quorum, each with its own Kafka port, controller port and data
directory. Nodes start together (a node's Kafka listener opens once the quorum has
formed) and can be killed and restarted one by one."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from confluent_kafka.admin import AdminClient

from conftest import Broker, free_port, strom_bin

CLUSTER_START_TIMEOUT_S = 60.0


class Node(Broker):
    """One cluster node: `Broker` with a node id, a controller listener and the voters."""

    def __init__(self, data_dir: Path, node_id: int, settings: dict[str, object]):
        super().__init__(data_dir, settings)
        self.node_id = node_id
        self.controller_port = free_port()
        self.voters = ""

    def command(self) -> list[str]:
        cmd = super().command()
        return cmd + [
            "--set",
            f"node.id={self.node_id}",
            "--set",
            f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "--set",
            f"controller.quorum.voters={self.voters}",
        ]


class Cluster:
    def __init__(self, root: Path, nodes: int, settings: dict[str, object] | None = None):
        base = {
            # Short timeouts so failover tests run in seconds.
            "controller.quorum.election.timeout.ms": 500,
            "broker.heartbeat.interval.ms": 500,
            "broker.session.timeout.ms": 3000,
        }
        base.update(settings or {})
        self.nodes = [Node(root / f"node-{i}", i, base) for i in range(1, nodes + 1)]
        voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self.nodes)
        for node in self.nodes:
            node.voters = voters

    def node(self, node_id: int) -> Node:
        return next(n for n in self.nodes if n.node_id == node_id)

    @property
    def bootstrap(self) -> str:
        return ",".join(n.bootstrap for n in self.nodes)

    def start(self) -> "Cluster":
        for node in self.nodes:
            node.spawn()
        for node in self.nodes:
            node.wait_listening(CLUSTER_START_TIMEOUT_S)
        self.wait_for_brokers(len(self.nodes))
        return self

    def admin(self, node: Node | None = None) -> AdminClient:
        return AdminClient({"bootstrap.servers": (node or self.nodes[0]).bootstrap})

    def live(self) -> list[Node]:
        return [n for n in self.nodes if n.alive()]

    def wait_for_brokers(self, count: int, via: Node | None = None, timeout: float = 30.0) -> dict:
        """Waits until Metadata (from `via`, else any live node) lists `count` brokers."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            node = via or self.live()[0]
            try:
                metadata = self.admin(node).list_topics(timeout=5)
                last = sorted(metadata.brokers)
                if len(metadata.brokers) == count:
                    return metadata.brokers
            except Exception as e:  # noqa: BLE001 - retried until the deadline
                last = repr(e)
            time.sleep(0.2)
        raise AssertionError(f"Metadata never listed {count} brokers; last saw {last}")

    def status(self, via: Node | None = None) -> dict:
        """`strom cluster status` (DescribeCluster + DescribeQuorum) as JSON."""
        node = via or self.live()[0]
        out = subprocess.run(
            [str(strom_bin()), "--brokers", node.bootstrap, "--output", "json", "cluster", "status"],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
        return json.loads(out)

    def controller_id(self, via: Node | None = None) -> int:
        """The active controller (the metadata quorum's leader)."""
        return self.status(via)["active_controller"]

    def check_alive(self) -> None:
        for node in self.nodes:
            node.check_alive()

    def stop(self) -> None:
        for node in self.nodes:
            if node.alive():
                node.stop()
