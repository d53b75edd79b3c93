"""A fault loop for partition replication: three real nodes with a fault proxy on every
link between them (cluster_util, proxied=True), a topic with replication factor `--rf`
(default 3) and min.insync.replicas=2, real confluent-kafka clients (idempotent acks=all
producers, a transactional producer that commits or aborts at random, a read_committed
consumer group), and one fault per round:

- kill-leader / kill-random: SIGKILL the leader of a partition, or any node;
- terminate: SIGTERM (a controlled shutdown); restart: SIGTERM and start again at once;
- pause: SIGSTOP, SIGCONT when healed (a zombie that wakes up after its session);
- isolate: cut one node off from the others; split-pair: cut two nodes off from each
  other (both still reach the third); hold-pair / delay-pair: stall or slow a pair's links;
- lose-unsynced: SIGKILL, then cut the newest segment of each of the topic's partitions
  on that node above its recovery point (what a power loss takes of unflushed writes);
- disk-full: fill the node's data directory (a small tmpfs; needs root, else skipped).

A fault stays until healed: at most `--max-faulty` (default 1) at a time, and a healed
node counts until it is back in every ISR, so the quorum and min.insync.replicas hold
by default. Every action is logged with its round and time
as installed, skipped or healed; the seed (every choice comes from it) and the commit
are printed first, so a run can be replayed (the fault schedule, not the interleaving).

After the rounds everything is healed and dead nodes restart; every partition must then
have a leader and its full ISR within a deadline. Finally every partition is re-read
from the start (read_committed and read_uncommitted), each replica's segment files are
parsed, and history_checker.check reports lost, duplicated and reordered records,
inconsistent offsets, aborted reads, skipped polls and replica mismatches.

    python3 tests/interop/replication_chaos.py --rounds 20 --seed 1 --seeds 100
    python3 tests/interop/replication_chaos.py --rf 1 --rounds 6     # before replication
    (pytest runs five short seeds: test_replication_chaos.py)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, str(Path(__file__).resolve().parent))
import history_checker  # noqa: E402
from cluster_util import Cluster, supported  # noqa: E402
from conftest import ROOT, strom_bin  # noqa: E402
from replication_workload import (  # noqa: E402
    QUIET,
    GroupConsumer,
    History,
    IdempotentProducer,
    TransactionalProducer,
    end_offsets,
    read_all,
    stop_all,
)

FAULTS = (
    "kill-leader", "kill-random", "terminate", "restart", "pause", "isolate", "split-pair",
    "hold-pair", "delay-pair", "lose-unsynced", "disk-full",
)
NODES = 3
TOPIC = "chaos"
MIN_INSYNC = 2
START_TIMEOUT_S = 60.0
LIVENESS_S = 60.0
ISR_WAIT_S = 30.0  # before the next fault, for a healed node to rejoin the ISR
FINAL_READ_S = 60.0
DISK_BYTES = 256 << 20
# Settings the replication fault loop wants; left out (with a note) where unknown.
WANTED_SETTINGS = {"replica.lag.time.max.ms": 2000}
# Internal topics replicated like the workload's, where the broker has the setting.
INTERNAL_RF_SETTINGS = ("offsets.topic.replication.factor", "transaction.state.log.replication.factor")
BASE_SETTINGS = {
    "group.initial.rebalance.delay.ms": 500,
    # A transaction whose producer died is aborted soon after its timeout (10 s).
    "transaction.abort.timed.out.transaction.cleanup.interval.ms": 1000,
}


class Log:
    """Prints every harness event with the time since the start; keeps fault events."""

    def __init__(self, out=print):
        self.out = out
        self.started = time.monotonic()
        self.faults: list[dict] = []

    def __call__(self, text: str) -> None:
        self.out(f"[{time.monotonic() - self.started:7.1f}s] {text}")

    def fault(self, round_: int, action: str, fault: str, detail: str) -> None:
        self.faults.append({"round": round_, "t": round(time.monotonic() - self.started, 1),
                            "action": action, "fault": fault, "detail": detail})
        self(f"round {round_}: {action} {fault}: {detail}")


def git_commit() -> str:
    """HEAD, marked when tracked files differ from it (the run is not exactly HEAD's)."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD"], cwd=ROOT, capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return (head.stdout.strip() or "unknown") + (" (with uncommitted changes)" if dirty.returncode == 1 else "")


def cluster_settings(rf: int, notes: list[str]) -> dict:
    settings = dict(BASE_SETTINGS)
    for name, value in WANTED_SETTINGS.items():
        if supported(name):
            settings[name] = value
        else:
            notes.append(f"{strom_bin()} does not know `{name}`: left out")
    for name in INTERNAL_RF_SETTINGS:
        if rf > 1 and supported(name):
            settings[name] = min(rf, NODES)
    return settings


class SmallDisks:
    """Each node's data directory on its own tmpfs, so one can be filled (disk-full)."""

    def __init__(self, cluster: Cluster, notes: list[str]):
        self.mounts: list[Path] = []
        for node in cluster.nodes:
            try:
                result = subprocess.run(
                    ["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES}", "tmpfs", str(node.data_dir)],
                    capture_output=True, text=True, timeout=30,
                )
                error = result.stderr.strip() if result.returncode != 0 else None
            except (OSError, subprocess.TimeoutExpired) as e:
                error = str(e)
            if error is not None:
                notes.append(f"cannot mount a tmpfs ({error or 'needs root'}): disk-full is skipped")
                self.unmount()
                return
            self.mounts.append(node.data_dir)

    @property
    def available(self) -> bool:
        return bool(self.mounts)

    FILLER = "chaos-filler"

    @classmethod
    def filler(cls, node) -> Path:
        return node.data_dir / cls.FILLER

    def fill(self, node) -> int:
        """Writes a file until the disk is full; returns its size."""
        written = 0
        chunk = b"\0" * (1 << 20)
        try:
            with open(self.filler(node), "wb") as f:
                while True:
                    f.write(chunk)
                    f.flush()
                    written += len(chunk)
        except OSError:
            pass
        return written

    def free(self, node) -> None:
        self.filler(node).unlink(missing_ok=True)

    def unmount(self) -> None:
        """Unmounts, keeping a copy of each node's data beside it (`node-N.data`) for a
        look after the run (the tmpfs goes with the mount)."""
        for mount in self.mounts:
            try:
                shutil.copytree(mount, mount.with_name(mount.name + ".data"), dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns(self.FILLER))
            except (OSError, shutil.Error):
                pass  # a copy for inspection only
        for mount in self.mounts:
            subprocess.run(["umount", "-l", str(mount)], capture_output=True)
        self.mounts = []


def truncate_unsynced(partition_dir: Path, rng: random.Random) -> str:
    """Cuts the newest segment's tail as a power loss would: only bytes of batches at or
    above the recovery point (fsynced below it); without a recovery point, a random
    number of trailing bytes. Returns what was cut."""
    segments = sorted(partition_dir.glob("*.log"), key=lambda p: int(p.stem))
    if not segments:
        return f"{partition_dir.name}: no segment"
    newest = segments[-1]
    size = newest.stat().st_size
    point_file = partition_dir / "recovery-point"
    if point_file.exists():
        point = int(point_file.read_text().strip() or 0)
        start = _first_position_at_or_above(newest, point)
        if start >= size:
            return f"{partition_dir.name}: nothing above recovery point {point}"
        cut = rng.randint(start, size - 1)
        reason = f"recovery point {point}"
    else:
        if size == 0:
            return f"{partition_dir.name}: empty segment"
        cut = size - rng.randint(1, min(size, 64 << 10))
        reason = "no recovery point"
    os.truncate(newest, cut)
    return f"{partition_dir.name}/{newest.name} {size}->{cut} bytes ({reason})"


def _first_position_at_or_above(segment: Path, offset: int) -> int:
    """Byte position of the first batch holding an offset at or above `offset`."""
    data = segment.read_bytes()
    pos = 0
    while pos + history_checker.BATCH_HEAD.size <= len(data):
        base, length, *_rest, delta = history_checker.BATCH_HEAD.unpack_from(data, pos)
        if length < history_checker.MIN_BATCH_LENGTH or base + delta >= offset:
            return pos
        pos += history_checker.LOG_OVERHEAD + length
    return pos


class BypassWatch(threading.Thread):
    """Samples the nodes' sockets for connections from node to node that do not go
    through their own link's proxy (a link fault would not cut them): straight to the
    other node, or through a proxy meant for another node."""

    def __init__(self, cluster: Cluster, interval_s: float = 0.25):
        super().__init__(daemon=True, name="bypass-watch")
        self.cluster, self.interval_s = cluster, interval_s
        self.seen: set[tuple] = set()
        self.done = threading.Event()
        self.start()

    def run(self) -> None:
        while not self.done.wait(self.interval_s):
            try:
                self.seen.update(("direct",) + link for link in self.cluster.direct_links())
                self.seen.update(("misrouted",) + link for link in self.cluster.misrouted_links())
            except (OSError, TimeoutError):
                pass  # a node exiting while its sockets are read

    def stop(self) -> list[tuple]:
        self.done.set()
        self.join(5)
        return sorted(self.seen)


class Faults:
    """Installs and heals faults, at most `max_faulty` at a time, one node (or one pair
    of nodes) each and never two on the same node."""

    def __init__(self, cluster: Cluster, log: Log, disks: SmallDisks | None, rf: int, partitions: int,
                 max_faulty: int, lossy: bool = False):
        self.cluster, self.log, self.disks = cluster, log, disks
        self.rf, self.partitions, self.max_faulty, self.lossy = rf, partitions, max_faulty, lossy
        self.active: list[dict] = []  # {"fault", "nodes", "heal", "round", "detail"}
        self.counts = {f: {"installed": 0, "skipped": 0} for f in FAULTS}
        self.violations: list[str] = []
        self.last_round = 0

    def busy(self) -> set[int]:
        return {n for a in self.active for n in a["nodes"]}

    def free_nodes(self) -> list[int]:
        return [n.node_id for n in self.cluster.nodes if n.node_id not in self.busy()]

    def round(self, round_: int, fault: str, rng: random.Random) -> None:
        """Heals what is due (everything beyond the limit, the rest at random), then
        installs `fault`."""
        self.last_round = round_
        healed = False
        for active in list(self.active):
            if len(self.active) >= self.max_faulty or rng.random() < 0.5:
                self.heal(active, round_)
                healed = True
        if len(self.active) >= self.max_faulty:
            return self.skip(round_, fault, f"{len(self.active)} faults active (max {self.max_faulty})")
        if healed and self.rf > 1:
            # A restarted node counts as faulty until it is back in every ISR: a new
            # fault before that would take down a second replica.
            stuck = wait_converged(self.cluster, self.partitions, self.rf, ISR_WAIT_S)
            if stuck:
                return self.skip(round_, fault, f"ISR not full {ISR_WAIT_S:.0f}s after healing: {stuck}")
        getattr(self, "fault_" + fault.replace("-", "_"))(round_, fault, rng)

    def skip(self, round_: int, fault: str, why: str) -> None:
        self.counts[fault]["skipped"] += 1
        self.log.fault(round_, "skipped", fault, why)

    def installed(self, round_: int, fault: str, nodes: list[int], detail: str, heal) -> None:
        self.counts[fault]["installed"] += 1
        self.log.fault(round_, "installed", fault, detail)
        if heal is not None:
            self.active.append({"fault": fault, "nodes": nodes, "heal": heal, "round": round_, "detail": detail})

    def heal(self, active: dict, round_: int) -> None:
        self.active.remove(active)
        detail = active["heal"]()
        self.log.fault(round_, "healed", active["fault"], f"{active['detail']}{detail or ''}")

    def forget(self, node_id: int) -> None:
        """Drops the faults on a node that died on its own (it is restarted as is)."""
        for active in [a for a in self.active if node_id in a["nodes"]]:
            self.active.remove(active)
            self.log.fault(self.last_round, "healed", active["fault"], f"{active['detail']} (node died)")

    def heal_all(self, round_: int) -> None:
        for active in list(self.active):
            self.heal(active, round_)

    # Node targets.

    def _pick(self, rng: random.Random) -> int | None:
        free = self.free_nodes()
        return rng.choice(free) if free else None

    def _leader(self, rng: random.Random) -> tuple[int | None, str]:
        partition = rng.randrange(self.partitions)
        leader = partition_leaders(self.cluster).get(partition, -1)
        if leader in self.free_nodes():
            return leader, f"leader of {TOPIC}-{partition}"
        node = self._pick(rng)
        return node, f"{TOPIC}-{partition} has leader {leader}: node chosen at random"

    def restarter(self, node_id: int):
        node = self.cluster.node(node_id)

        def heal() -> str:
            if node.alive():
                return ""
            try:
                node.start(timeout=START_TIMEOUT_S)
                return " (restarted)"
            except AssertionError as e:
                self.violations.append(f"node {node_id} did not restart: {e}")
                return " (restart FAILED)"
        return heal

    # The faults.

    def fault_kill_leader(self, round_, fault, rng):
        node_id, why = self._leader(rng)
        if node_id is None:
            return self.skip(round_, fault, "no node free")
        self.cluster.node(node_id).kill()
        self.installed(round_, fault, [node_id], f"node {node_id} ({why})", self.restarter(node_id))

    def fault_kill_random(self, round_, fault, rng):
        node_id = self._pick(rng)
        if node_id is None:
            return self.skip(round_, fault, "no node free")
        self.cluster.node(node_id).kill()
        self.installed(round_, fault, [node_id], f"node {node_id}", self.restarter(node_id))

    def fault_terminate(self, round_, fault, rng):
        node_id = self._pick(rng)
        if node_id is None:
            return self.skip(round_, fault, "no node free")
        self._stop(node_id)
        self.installed(round_, fault, [node_id], f"node {node_id}", self.restarter(node_id))

    def _stop(self, node_id: int) -> None:
        try:
            self.cluster.node(node_id).stop()
        except AssertionError as e:  # a hang on SIGTERM (killed by stop) or a crash
            self.violations.append(f"node {node_id} did not stop cleanly: {e}")

    def fault_restart(self, round_, fault, rng):
        node_id = self._pick(rng)
        if node_id is None:
            return self.skip(round_, fault, "no node free")
        self._stop(node_id)
        self.installed(round_, fault, [node_id], f"node {node_id}", None)
        self.log.fault(round_, "healed", fault, f"node {node_id}{self.restarter(node_id)()}")

    def fault_pause(self, round_, fault, rng):
        node_id = self._pick(rng)
        if node_id is None:
            return self.skip(round_, fault, "no node free")
        node = self.cluster.node(node_id)
        node.proc.send_signal(signal.SIGSTOP)

        def heal():
            if node.alive():
                node.proc.send_signal(signal.SIGCONT)
        self.installed(round_, fault, [node_id], f"node {node_id} (SIGSTOP)", heal)

    def _links(self, round_, fault, nodes, detail, pairs, mode, delay_ms=0):
        self.cluster.set_links(pairs, mode, delay_ms)
        self.installed(round_, fault, nodes, detail, lambda: self.cluster.set_links(pairs, "pass"))

    def fault_isolate(self, round_, fault, rng):
        node_id = self._pick(rng)
        if node_id is None:
            return self.skip(round_, fault, "no node free")
        pairs = [(node_id, n.node_id) for n in self.cluster.nodes if n.node_id != node_id]
        self._links(round_, fault, [node_id], f"node {node_id} cut off", pairs, "drop")

    def _pair(self, rng: random.Random) -> tuple[int, int] | None:
        free = self.free_nodes()
        return tuple(sorted(rng.sample(free, 2))) if len(free) >= 2 else None

    def fault_split_pair(self, round_, fault, rng):
        pair = self._pair(rng)
        if pair is None:
            return self.skip(round_, fault, "fewer than two nodes free")
        self._links(round_, fault, list(pair), f"nodes {pair[0]} and {pair[1]} cut apart", [pair], "drop")

    def fault_hold_pair(self, round_, fault, rng):
        pair = self._pair(rng)
        if pair is None:
            return self.skip(round_, fault, "fewer than two nodes free")
        self._links(round_, fault, list(pair), f"links {pair[0]}<->{pair[1]} held", [pair], "hold")

    def fault_delay_pair(self, round_, fault, rng):
        pair = self._pair(rng)
        if pair is None:
            return self.skip(round_, fault, "fewer than two nodes free")
        delay_ms = rng.choice([20, 100, 300, 1000])
        self._links(round_, fault, list(pair), f"links {pair[0]}<->{pair[1]} delayed {delay_ms} ms", [pair],
                    "delay", delay_ms)

    def fault_lose_unsynced(self, round_, fault, rng):
        if self.rf < 2 and not self.lossy:
            # With one replica a lost unflushed tail loses acknowledged records by design.
            return self.skip(round_, fault, "needs replicas (rf 1 loses acknowledged records by design)")
        node_id = self._pick(rng)
        if node_id is None:
            return self.skip(round_, fault, "no node free")
        node = self.cluster.node(node_id)
        node.kill()
        cuts = [truncate_unsynced(d, rng) for d in sorted(node.data_dir.glob(f"{TOPIC}-*")) if d.is_dir()]
        self.installed(round_, fault, [node_id], f"node {node_id}: " + "; ".join(cuts), self.restarter(node_id))

    def fault_disk_full(self, round_, fault, rng):
        if self.disks is None or not self.disks.available:
            return self.skip(round_, fault, "no small disk (mounting a tmpfs needs root)")
        node_id = self._pick(rng)
        if node_id is None:
            return self.skip(round_, fault, "no node free")
        node = self.cluster.node(node_id)
        written = self.disks.fill(node)

        def heal():
            self.disks.free(node)
        self.installed(round_, fault, [node_id], f"node {node_id} ({written >> 20} MiB filler)", heal)


def partition_leaders(cluster: Cluster) -> dict[int, int]:
    """partition → leader, from any live node (empty when none answers)."""
    metadata = _metadata(cluster)
    if metadata is None or TOPIC not in metadata.topics:
        return {}
    return {p.id: p.leader for p in metadata.topics[TOPIC].partitions.values()}


def _metadata(cluster: Cluster):
    for node in cluster.live():
        try:
            return AdminClient({"bootstrap.servers": node.bootstrap, **QUIET}).list_topics(TOPIC, timeout=5)
        except KafkaException:
            continue
    return None


def create_topic(cluster: Cluster, partitions: int, rf: int, rng: random.Random, log: Log) -> None:
    config = {"min.insync.replicas": str(min(MIN_INSYNC, rf)),
              "segment.bytes": str(rng.choice([64 << 10, 256 << 10, 1 << 20]))}
    log(f"topic {TOPIC}: {partitions} partitions, replication factor {rf}, {config}")
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap, **QUIET})
    admin.create_topics([NewTopic(TOPIC, partitions, rf, config=config)])[TOPIC].result(timeout=30)
    wait_converged(cluster, partitions, rf, 30.0)


def replication_works(cluster: Cluster, log: Log) -> tuple[bool, str]:
    """Whether this broker replicates: an RF=3 topic is created and an acks=all produce
    to it is acknowledged within a few seconds."""
    name = f"rf-probe-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap, **QUIET})
    try:
        admin.create_topics([NewTopic(name, 1, NODES, config={"min.insync.replicas": str(MIN_INSYNC)})])[
            name].result(timeout=15)
    except Exception as e:  # noqa: BLE001 - the reason is reported
        return False, f"creating a topic with replication factor {NODES} failed: {e}"
    outcome = []
    producer = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all", "enable.idempotence": True,
                         "message.timeout.ms": 8000, **QUIET})
    producer.produce(name, b"probe", partition=0, on_delivery=lambda err, msg: outcome.append(err))
    producer.flush(10)
    producer.purge()
    producer.flush(2)
    if outcome and outcome[0] is None:
        return True, "an acks=all produce to a replication factor 3 topic was acknowledged"
    return False, f"an acks=all produce to a replication factor 3 topic was not acknowledged: {outcome or 'no report'}"


def wait_converged(cluster: Cluster, partitions: int, rf: int, timeout: float) -> str | None:
    """Waits until every partition has a leader and its full ISR; returns what is still
    wrong at the deadline (None when converged)."""
    deadline = time.monotonic() + timeout
    last = "no metadata"
    while time.monotonic() < deadline:
        metadata = _metadata(cluster)
        topic = metadata.topics.get(TOPIC) if metadata is not None else None
        if topic is not None and topic.error is None and len(topic.partitions) == partitions:
            bad = {
                p.id: {"leader": p.leader, "replicas": p.replicas, "isr": p.isrs}
                for p in topic.partitions.values()
                if p.leader < 0 or sorted(p.isrs) != sorted(p.replicas) or len(p.replicas) != rf
            }
            if not bad and len(metadata.brokers) == NODES:
                return None
            last = f"brokers {sorted(metadata.brokers)}, partitions {bad}"
        time.sleep(0.5)
    return last


def heal_cluster(cluster: Cluster, faults: Faults, round_: int) -> None:
    faults.heal_all(round_)
    cluster.heal()
    for node in cluster.nodes:
        if node.crashed():
            faults.violations.append(f"node {node.node_id} died on its own (exit {node.proc.returncode})\n"
                                     f"{node.log_tail(20)}")
        if not node.alive():
            faults.restarter(node.node_id)()


def epoch_checkpoints(cluster: Cluster, partitions: int) -> dict:
    """partition → node → its replica's leader-epoch-checkpoint, as written (to trace a
    consumer's epoch validation)."""
    found: dict = {}
    for p in range(partitions):
        for node in cluster.nodes:
            path = node.data_dir / f"{TOPIC}-{p}" / "leader-epoch-checkpoint"
            try:
                found.setdefault(p, {})[node.node_id] = path.read_text()
            except OSError as e:
                found.setdefault(p, {})[node.node_id] = f"unreadable: {e}"
    return found


def replica_batches(cluster: Cluster, partitions: int) -> dict:
    """partition → node → the batches of its replica's segment files."""
    replicas = {}
    for p in range(partitions):
        replicas[p] = {
            node.node_id: history_checker.read_batches(node.data_dir / f"{TOPIC}-{p}")
            for node in cluster.nodes
            if (node.data_dir / f"{TOPIC}-{p}").is_dir()
        }
    return replicas


def start_workload(cluster, partitions, history, seed, producers, consumers, txn):
    bootstrap = cluster.bootstrap
    senders = [IdempotentProducer(k, bootstrap, TOPIC, partitions, history, seed) for k in range(producers)]
    if txn:
        senders.append(TransactionalProducer(bootstrap, TOPIC, partitions, history, seed))
    readers = [GroupConsumer(k, bootstrap, TOPIC, f"chaos-{seed}", history) for k in range(consumers)]
    for worker in senders + readers:
        worker.start()
    return senders, readers


def choose_rf(rf, cluster: Cluster, log: Log, notes: list[str]) -> int:
    if rf != "auto":
        return int(rf)
    works, why = replication_works(cluster, log)
    chosen = NODES if works else 1
    log(f"replication factor {chosen}: {why}")
    if not works:
        notes.append(f"ran with replication factor 1: {why}")
    return chosen


def run(rounds: int, seed: int, root: Path, rf: int | str = 3, partitions: int = 3, max_faulty: int = 1,
        producers: int = 2, consumers: int = 2, txn: bool = True, small_disks: bool = True,
        faults: tuple[str, ...] = FAULTS, lossy: bool = False, history_path: Path | None = None,
        out=print) -> dict:
    """One seeded run; returns the result (see `main` for what is printed). `faults`
    limits the schedule to a subset; `lossy` allows lose-unsynced with one replica (a
    self-test: the checker must then report lost records)."""
    unknown = set(faults) - set(FAULTS)
    if unknown:
        raise ValueError(f"unknown faults {sorted(unknown)}; known: {FAULTS}")
    schedule = tuple(faults)
    log = Log(out)
    rng = random.Random(seed)
    notes: list[str] = []
    log(f"seed {seed}, commit {git_commit()}, binary {strom_bin()}")
    requested_rf = NODES if rf == "auto" else int(rf)
    cluster = Cluster(root, NODES, cluster_settings(requested_rf, notes), proxied=True)
    notes += cluster.notes
    disks = SmallDisks(cluster, notes) if small_disks else None
    history = History()
    workers: list = []
    try:
        cluster.start()
        bypass = BypassWatch(cluster)
        rf = choose_rf(rf, cluster, log, notes)
        create_topic(cluster, partitions, rf, rng, log)
        faults = Faults(cluster, log, disks, rf, partitions, max_faulty, lossy)
        senders, readers = start_workload(cluster, partitions, history, seed, producers, consumers, txn)
        workers = senders + readers
        violations = play_rounds(rounds, rng, schedule, cluster, faults, log)
        final, replicas, problems = wind_down(cluster, faults, senders, readers, history, partitions, rf, log)
        violations += problems + faults.violations
        direct = bypass.stop()
        if direct:
            notes.append("connections from node to node that bypassed their link's proxy "
                         f"(direct: from, to, port; misrouted: from, link from, link to, port): {direct}")
    finally:
        for worker in workers:
            worker.stop.set()
        cleanup(cluster, disks)
    recorded = {"sends": history.sends, "txns": history.txns, "polls": history.polls, "final": final,
                "replicas": replicas}
    if history_path is not None:
        history_path.write_text(json.dumps(recorded))
    return {
        "seed": seed,
        "rf": rf,
        "partitions": partitions,
        "rounds": rounds,
        "faults": {f: c for f, c in faults.counts.items() if c["installed"] or c["skipped"]},
        "workload": history.stats(),
        "client_error_timeline": history.error_timeline(log.started),
        "checks": history_checker.check(recorded),
        "violations": violations,
        "notes": notes,
        "fault_log": log.faults,
        "seconds": round(time.monotonic() - log.started, 1),
    }


def play_rounds(rounds: int, rng: random.Random, schedule: tuple[str, ...], cluster: Cluster, faults: Faults,
                log: Log) -> list[str]:
    """One fault per round, held for a random while. The main `rng` draws the same
    three numbers every round whatever happens, so the schedule replays from the seed;
    targets and details come from a per-round generator."""
    violations = []
    for round_ in range(1, rounds + 1):
        fault = rng.choice(schedule)
        hold_s = rng.uniform(1.0, 6.0)
        details = random.Random(rng.getrandbits(64))
        faults.round(round_, fault, details)
        time.sleep(hold_s)
        for node in cluster.nodes:
            if node.crashed():
                violations.append(f"round {round_}: node {node.node_id} died on its own "
                                  f"(exit {node.proc.returncode})\n{node.log_tail(20)}")
                log(f"round {round_}: node {node.node_id} died on its own; restarting it")
                faults.forget(node.node_id)
                faults.restarter(node.node_id)()
    return violations


def wind_down(cluster, faults, senders, readers, history, partitions, rf, log) -> tuple[dict, dict, list[str]]:
    """Heals everything, lets the clients finish, waits for the cluster to converge,
    re-reads every partition and parses every replica (nodes stopped)."""
    violations = []
    for sender in senders:
        sender.stop.set()  # no new records; they flush once the cluster is healed
    log("healing")
    heal_cluster(cluster, faults, faults.last_round + 1)
    violations += stop_all(senders, 90.0)
    stuck = wait_converged(cluster, partitions, rf, LIVENESS_S)
    if stuck:
        violations.append(f"not converged {LIVENESS_S:.0f}s after healing: {stuck}")
    log("converged" if not stuck else "not converged")
    wait_for_group(history, log)
    violations += stop_all(readers, 60.0)
    history.settle()
    final, problems = final_reads(cluster, partitions)
    violations += problems
    log("final reads done; stopping the nodes")
    cluster.stop()
    final["epoch_checkpoints"] = epoch_checkpoints(cluster, partitions)
    return final, replica_batches(cluster, partitions), violations


def wait_for_group(history, log: Log, quiet_s: float = 5.0, timeout: float = 30.0) -> None:
    """Lets the consumer group read what is left: until it has read nothing new for
    `quiet_s` (it may be rebalancing, hence the generous quiet time), at most `timeout`."""
    started = time.monotonic()
    count, since = len(history.polls), time.monotonic()
    while time.monotonic() - since < quiet_s and time.monotonic() - started < timeout:
        time.sleep(0.5)
        if len(history.polls) != count:
            count, since = len(history.polls), time.monotonic()
    log(f"the group read {sum(1 for p in history.polls if 'offset' in p)} records "
        f"({time.monotonic() - started:.0f}s after convergence)")


def settled_ends(cluster: Cluster, partitions: int, timeout: float) -> tuple[dict, dict, str | None]:
    """High watermarks and last stable offsets once no transaction is left open (a
    transaction whose producer died is aborted after its timeout), or at the deadline
    with what is still open."""
    deadline = time.monotonic() + timeout
    while True:
        hws = end_offsets(cluster.bootstrap, TOPIC, partitions, "read_uncommitted")
        lsos = end_offsets(cluster.bootstrap, TOPIC, partitions, "read_committed")
        if lsos == hws:
            return hws, lsos, None
        if time.monotonic() > deadline:
            return hws, lsos, f"transactions left open {timeout:.0f}s after healing: LSO {lsos} < HW {hws}"
        time.sleep(1.0)


def final_reads(cluster: Cluster, partitions: int) -> tuple[dict, list[str]]:
    problems = []
    hws, lsos, open_txns = settled_ends(cluster, partitions, LIVENESS_S)
    if open_txns:
        problems.append(open_txns)
    final = {"high_watermarks": hws, "last_stable_offsets": lsos}
    for isolation in ("read_committed", "read_uncommitted"):
        rows, short = read_all(cluster.bootstrap, TOPIC, hws, isolation, FINAL_READ_S)
        final[isolation] = rows
        if short:
            problems.append(f"final {isolation} read stopped below the high watermark: {short} (hw {hws})")
    return final, problems


def cleanup(cluster: Cluster, disks: SmallDisks | None) -> None:
    """Every node stopped (paused ones woken first), every proxy closed, disks unmounted."""
    for node in cluster.nodes:
        if node.alive():
            node.proc.send_signal(signal.SIGCONT)
    for node in cluster.nodes:
        try:
            if node.alive():
                node.stop()
        except AssertionError:
            node.kill()
    cluster.stop()
    if disks is not None:
        disks.unmount()


def summary(result: dict) -> str:
    counts = result["checks"]["counts"]
    bad = {k: v for k, v in counts.items() if v}
    w = result["workload"]
    return (f"seed {result['seed']} rf {result['rf']}: {result['seconds']}s, "
            f"sends {w['sends']} (ok {w.get('ok', 0)}, indeterminate {w.get('indeterminate', 0)}, "
            f"failed {w.get('failed', 0)}), txns {w['txns']}, polls {w['polls']}, "
            f"acknowledged {result['checks']['acknowledged']}, read {result['checks']['read_final']}, "
            f"anomalies {bad or 'none'}, violations {len(result['violations'])}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--seeds", type=int, default=1, help="run this many seeds from --seed on")
    parser.add_argument("--rf", default="3", help="replication factor, or 'auto' (3 when the broker replicates)")
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--max-faulty", type=int, default=1, help="faults active at once")
    parser.add_argument("--no-txn", action="store_true", help="no transactional producer")
    parser.add_argument("--faults", default=",".join(FAULTS), help="comma-separated subset of the faults")
    parser.add_argument("--lossy", action="store_true",
                        help="lose-unsynced even with one replica (self-test: lost records must be reported)")
    parser.add_argument("--history-dir", type=Path, help="write each seed's history here as JSON")
    parser.add_argument("--keep", action="store_true", help="keep each run's directory (node logs, data)")
    args = parser.parse_args()
    if args.history_dir:
        args.history_dir.mkdir(parents=True, exist_ok=True)
    failed = False
    for seed in range(args.seed, args.seed + args.seeds):
        history_path = args.history_dir / f"history-{seed}.json" if args.history_dir else None
        root = Path(tempfile.mkdtemp(prefix=f"strom-repl-chaos-{seed}-"))
        try:
            result = run(args.rounds, seed, root, rf=args.rf, partitions=args.partitions,
                         max_faulty=args.max_faulty, txn=not args.no_txn, faults=tuple(args.faults.split(",")),
                         lossy=args.lossy, history_path=history_path)
        except Exception as error:  # noqa: BLE001 - one seed's crash must not end the long run
            # The harness itself failed (a client call raised): the seed counts as failed
            # and the next one runs; the directory is kept for a look.
            print(f"seed {seed}: the run failed: {error!r}; directory kept: {root}", flush=True)
            failed = True
            continue
        finally:
            if args.keep:
                print(f"run directory kept: {root}", flush=True)
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        print(json.dumps({k: v for k, v in result.items() if k != "fault_log"}, default=str), flush=True)
        print(summary(result), flush=True)
        failed |= bool(result["violations"]) or any(result["checks"]["counts"].values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
