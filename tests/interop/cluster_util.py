"""A cluster of real `strom serve` processes on localhost: every node a broker and a
voter of the metadata quorum, each with its own Kafka port, controller port and data
directory. Nodes start together (a node's Kafka listener opens once the quorum has
formed) and can be killed and restarted one by one.

With `proxied=True` every directed link between two nodes goes through a `FaultProxy`
(fault_proxy.py): node i reaches node j's controller port and node j's Kafka listener
through the proxies of link i→j. Node i's `controller.quorum.voters` names, for each
other voter j, the proxy i→j (its own entry stays its real address), and
`inter.broker.addresses` names the proxy i→j of every other node's Kafka listener
(replica fetching and transaction markers). Clients still connect straight to the
nodes. `partition(a, b)`, `isolate(n)`, `hold(a, b)`, `delay(a, b, ms)` and `heal()`
switch the links; `direct_links()` lists node-to-node connections that bypass them and
`misrouted_links()` those that use another node's proxy."""

from __future__ import annotations

import functools
import json
import subprocess
import time
from pathlib import Path

from confluent_kafka.admin import AdminClient

from conftest import Broker, free_port, strom_bin
from fault_proxy import FaultProxy

CLUSTER_START_TIMEOUT_S = 60.0
# The broker setting that points replica fetching and transaction markers at the proxies.
INTER_BROKER_ADDRESSES = "inter.broker.addresses"


@functools.lru_cache(maxsize=None)
def known_settings(binary: str) -> frozenset[str]:
    """The settings `binary` accepts (`strom serve --print-config`); an unknown one
    makes it refuse to start."""
    out = subprocess.run(
        [binary, "serve", "--print-config"], check=True, capture_output=True, text=True, timeout=60
    ).stdout
    return frozenset(line.split("=", 1)[0].strip().strip('"') for line in out.splitlines() if "=" in line)


def supported(setting: str) -> bool:
    return setting in known_settings(str(strom_bin()))


class Node(Broker):
    """One cluster node: `Broker` with a node id, a controller listener and the voters."""

    def __init__(self, data_dir: Path, node_id: int, settings: dict[str, object]):
        super().__init__(data_dir, settings)
        self.node_id = node_id
        self.controller_port = free_port()
        self.voters = ""
        # `id@host:port,...`: where this node reaches the others' Kafka listeners
        # (empty: at their registered listeners).
        self.inter_broker_addresses = ""

    def command(self) -> list[str]:
        cmd = super().command()
        cmd += [
            "--set",
            f"node.id={self.node_id}",
            "--set",
            f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "--set",
            f"controller.quorum.voters={self.voters}",
        ]
        if self.inter_broker_addresses:
            cmd += ["--set", f"{INTER_BROKER_ADDRESSES}={self.inter_broker_addresses}"]
        return cmd


class Link:
    """The directed link src→dst: one proxy to dst's controller port, one to its Kafka
    listener, switched together."""

    def __init__(self, src: Node, dst: Node, reserved: set[int]):
        self.src, self.dst = src.node_id, dst.node_id
        self.controller = _proxy(dst.controller_port, f"{self.src}->{self.dst} controller", reserved)
        self.broker = _proxy(dst.port, f"{self.src}->{self.dst} kafka", reserved)

    def set_mode(self, mode: str, delay_ms: int = 0) -> None:
        self.controller.set_mode(mode, delay_ms)
        self.broker.set_mode(mode, delay_ms)

    @property
    def mode(self) -> str:
        return self.controller.mode

    def close(self) -> None:
        self.controller.close()
        self.broker.close()


def _proxy(target_port: int, name: str, reserved: set[int]) -> FaultProxy:
    """A proxy on a port none of the nodes was given: their ports were only probed free
    (`free_port`), so the kernel may hand the same number to the proxy's listener."""
    while True:
        proxy = FaultProxy("127.0.0.1", target_port, name=name)
        if proxy.port not in reserved:
            return proxy
        proxy.close()


class Cluster:
    def __init__(
        self, root: Path, nodes: int, settings: dict[str, object] | None = None, proxied: bool = False
    ):
        base = {
            # Short timeouts so failover tests run in seconds.
            "controller.quorum.election.timeout.ms": 500,
            "broker.heartbeat.interval.ms": 500,
            "broker.session.timeout.ms": 3000,
        }
        base.update(settings or {})
        self.nodes = [Node(root / f"node-{i}", i, base) for i in range(1, nodes + 1)]
        # What a proxied cluster cannot do with this binary, for the caller to print.
        self.notes: list[str] = []
        self.links: dict[tuple[int, int], Link] = {}
        if proxied:
            self._wire_proxies()
        else:
            voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self.nodes)
            for node in self.nodes:
                node.voters = voters

    def _wire_proxies(self) -> None:
        reserved = {port for n in self.nodes for port in (n.port, n.controller_port)}
        self.links = {
            (a.node_id, b.node_id): Link(a, b, reserved) for a in self.nodes for b in self.nodes if a is not b
        }
        with_addresses = supported(INTER_BROKER_ADDRESSES)
        if not with_addresses:
            self.notes.append(
                f"{strom_bin()} does not know `{INTER_BROKER_ADDRESSES}`: traffic between brokers "
                "(replica fetching, transaction markers) goes to registered listeners, not through the proxies"
            )
        for node in self.nodes:
            def via(other: Node, port: int) -> str:
                return f"{other.node_id}@127.0.0.1:{port}"

            node.voters = ",".join(
                via(o, o.controller_port if o is node else self.links[node.node_id, o.node_id].controller.port)
                for o in self.nodes
            )
            if with_addresses:
                node.inter_broker_addresses = ",".join(
                    via(o, self.links[node.node_id, o.node_id].broker.port) for o in self.nodes if o is not node
                )

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
        try:
            for node in self.nodes:
                if node.alive():
                    node.stop()
        finally:
            for link in self.links.values():
                link.close()
            self.links = {}

    # Faults on the links of a proxied cluster. Each sets both directions.

    def set_links(self, pairs: list[tuple[int, int]], mode: str, delay_ms: int = 0) -> None:
        """Sets the mode of both directions of every (a, b) in `pairs`."""
        if not self.links:
            raise RuntimeError("the cluster was not started with proxied=True")
        for a, b in pairs:
            self.links[a, b].set_mode(mode, delay_ms)
            self.links[b, a].set_mode(mode, delay_ms)

    def partition(self, a: int, b: int) -> None:
        """Cuts a and b off from each other; both still reach the other nodes."""
        self.set_links([(a, b)], "drop")

    def isolate(self, n: int) -> None:
        """Cuts n off from every other node (clients still reach it)."""
        self.set_links([(n, o.node_id) for o in self.nodes if o.node_id != n], "drop")

    def hold(self, a: int, b: int) -> None:
        self.set_links([(a, b)], "hold")

    def delay(self, a: int, b: int, delay_ms: int) -> None:
        self.set_links([(a, b)], "delay", delay_ms)

    def heal(self) -> None:
        for link in self.links.values():
            link.set_mode("pass")

    def direct_links(self) -> list[tuple[int, int, str]]:
        """Established connections from one node straight to another node's controller
        or Kafka port, bypassing the proxies: (from node, to node, "controller"|"kafka").
        Read from /proc (the nodes' socket inodes and /proc/net/tcp), so a sample: a
        connection opened and closed between two samples is not seen."""
        ports = {n.controller_port: (n.node_id, "controller") for n in self.nodes}
        ports.update({n.port: (n.node_id, "kafka") for n in self.nodes})
        sockets = _established()
        found = set()
        for node in self.live():
            for inode in _socket_inodes(node.pid()):
                target = ports.get(sockets.get(inode, (-1, -1))[1])
                if target is not None and target[0] != node.node_id:
                    found.add((node.node_id, target[0], target[1]))
        return sorted(found)

    def misrouted_links(self) -> list[tuple[int, int, int, str]]:
        """Open connections through the proxy of link i→j made by a node other than i
        (a node reaching j by an address meant for another node's use):
        (actual source node, i, j, "controller"|"kafka")."""
        sockets = _established()
        owner_by_port = {}
        for node in self.live():
            for inode in _socket_inodes(node.pid()):
                if inode in sockets:
                    owner_by_port[sockets[inode][0]] = node.node_id
        found = set()
        for (src, dst), link in self.links.items():
            for kind, proxy in (("controller", link.controller), ("kafka", link.broker)):
                for port in proxy.peer_ports():
                    owner = owner_by_port.get(port)
                    if owner is not None and owner != src:
                        found.add((owner, src, dst, kind))
        return sorted(found)


def _established() -> dict[int, tuple[int, int]]:
    """Socket inode → (local port, remote port) of every established TCP connection."""
    result = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == "01":  # 01 = ESTABLISHED
                local = int(fields[1].rsplit(":", 1)[1], 16)
                remote = int(fields[2].rsplit(":", 1)[1], 16)
                result[int(fields[9])] = (local, remote)
    return result


def _socket_inodes(pid: int) -> list[int]:
    inodes = []
    fd_dir = Path(f"/proc/{pid}/fd")
    try:
        for fd in fd_dir.iterdir():
            try:
                target = fd.readlink().as_posix()
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.append(int(target[8:-1]))
    except OSError:
        pass
    return inodes
