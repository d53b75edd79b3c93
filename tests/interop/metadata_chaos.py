"""A fault loop for the metadata quorum: three real nodes, topics created without pause
through random nodes, and one fault per round — SIGKILL of the active controller or of
another node, SIGSTOP/SIGCONT (a paused "zombie" node that wakes up later), or SIGTERM
— then the node comes back. After every round and at the end it checks:

- every topic whose creation was acknowledged is in the metadata of every node;
- all nodes agree: the same topics with the same ids and partition leaders, the same
  cluster id, and the quorum's log caught up on every voter (lag 0);
- the cluster heals: three live brokers and one active controller within a deadline.

A timeout of a creation is indeterminate (it may or may not have happened) and is not
checked either way. Every fault is logged with its round, and the seed replays the
same fault schedule.

    python3 tests/interop/metadata_chaos.py --rounds 100 --seed 1    # the long run
    (pytest runs two short seeds: test_metadata_chaos.py)
"""

from __future__ import annotations

import argparse
import random
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cluster_util import Cluster  # noqa: E402

FAULTS = ("kill-controller", "kill-other", "pause", "terminate")
HEAL_TIMEOUT_S = 60.0


class Creator(threading.Thread):
    """Creates topics through random live nodes, recording what was acknowledged."""

    def __init__(self, cluster: Cluster, rng: random.Random):
        super().__init__(daemon=True)
        self.cluster = cluster
        self.rng = rng
        self.acknowledged: list[str] = []
        self.indeterminate = 0
        self.refused = 0
        self.stop = threading.Event()
        # Held around each creation; a check holds it to compare the nodes at rest.
        self.lock = threading.Lock()
        self.next = 0

    def run(self) -> None:
        while not self.stop.is_set():
            live = self.cluster.live()
            if not live:
                time.sleep(0.1)
                continue
            node = self.rng.choice(live)
            name = f"chaos-{self.next}"
            self.next += 1
            admin = AdminClient({"bootstrap.servers": node.bootstrap, "log_level": 0})
            self.lock.acquire()
            try:
                admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)], request_timeout=10)[
                    name
                ].result(timeout=15)
                self.acknowledged.append(name)
            except Exception as e:  # noqa: BLE001 - classified below
                text = str(e)
                if "TOPIC_ALREADY_EXISTS" in text:
                    # A retried creation that had committed: acknowledged after all.
                    self.acknowledged.append(name)
                elif "Timed out" in text or "TIMED_OUT" in text or "_TRANSPORT" in text:
                    self.indeterminate += 1
                else:
                    self.refused += 1
            finally:
                self.lock.release()
            time.sleep(0.01)


def metadata_of(node) -> dict[str, tuple[str, tuple]]:
    admin = AdminClient({"bootstrap.servers": node.bootstrap, "log_level": 0})
    metadata = admin.list_topics(timeout=10)
    return {
        name: (str(topic.topic_id) if hasattr(topic, "topic_id") else "", tuple(sorted((p.id, p.leader) for p in topic.partitions.values())))
        for name, topic in metadata.topics.items()
    }


def heal(cluster: Cluster) -> None:
    for node in cluster.nodes:
        if not node.alive():
            node.start(timeout=HEAL_TIMEOUT_S)
    cluster.wait_for_brokers(len(cluster.nodes), timeout=HEAL_TIMEOUT_S)


def check(cluster: Cluster, creator: Creator, round_: int) -> list[str]:
    """The invariants once the cluster has healed; returns the violations."""
    violations = []
    deadline = time.monotonic() + HEAL_TIMEOUT_S
    while True:
        # Taken before the views: a creation acknowledged after a view was read is
        # checked in the next round.
        acknowledged = list(creator.acknowledged)
        views = {node.node_id: metadata_of(node) for node in cluster.nodes}
        status = cluster.status()
        lags = {n["node_id"]: n["lag"] for n in status["nodes"]}
        first = next(iter(views.values()))
        agree = all(view == first for view in views.values())
        caught_up = all(lag == 0 for lag in lags.values())
        leaders_ok = all(-1 not in dict(parts).values() for _, parts in first.values())
        if agree and caught_up and leaders_ok or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    missing = {node_id: [t for t in acknowledged if t not in view] for node_id, view in views.items()}
    for node_id, lost in missing.items():
        if lost:
            violations.append(f"round {round_}: node {node_id} lacks acknowledged topics {lost[:5]} ({len(lost)})")
    if not agree:
        violations.append(f"round {round_}: nodes disagree on the metadata")
    if not caught_up:
        violations.append(f"round {round_}: quorum lag after healing: {lags}")
    if not leaders_ok:
        violations.append(f"round {round_}: partitions without a leader after healing")
    if status["active_controller"] not in {n.node_id for n in cluster.nodes}:
        violations.append(f"round {round_}: no active controller after healing")
    return violations


def run(rounds: int, seed: int, root: Path, log=print) -> dict:
    rng = random.Random(seed)
    cluster = Cluster(root, 3)
    cluster.start()
    creator = Creator(cluster, random.Random(seed + 1))
    creator.start()
    violations: list[str] = []
    faults: dict[str, int] = {f: 0 for f in FAULTS}
    started = time.monotonic()
    try:
        for round_ in range(1, rounds + 1):
            time.sleep(rng.uniform(0.5, 2.0))
            fault = rng.choice(FAULTS)
            faults[fault] += 1
            controller = cluster.controller_id()
            others = [n for n in cluster.nodes if n.node_id != controller]
            victim = cluster.node(controller) if fault == "kill-controller" else rng.choice(others)
            log(f"round {round_}: {fault} node {victim.node_id} (controller {controller})")
            if fault in ("kill-controller", "kill-other"):
                victim.kill()
                time.sleep(rng.uniform(0.5, 4.0))
            elif fault == "pause":
                victim.proc.send_signal(signal.SIGSTOP)
                time.sleep(rng.uniform(1.0, 5.0))
                victim.proc.send_signal(signal.SIGCONT)
            else:
                victim.stop()
                time.sleep(rng.uniform(0.5, 2.0))
            heal(cluster)
            cluster.check_alive()
            with creator.lock:
                violations += check(cluster, creator, round_)
            if violations:
                break
    finally:
        creator.stop.set()
        creator.join(30)
        try:
            heal(cluster)
            violations += check(cluster, creator, rounds)
        finally:
            cluster.stop()
    return {
        "seed": seed,
        "rounds": rounds,
        "faults": faults,
        "acknowledged_topics": len(creator.acknowledged),
        "indeterminate": creator.indeterminate,
        "refused": creator.refused,
        "seconds": round(time.monotonic() - started, 1),
        "violations": violations,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--seeds", type=int, default=1, help="run this many seeds from --seed on")
    args = parser.parse_args()
    failed = False
    for seed in range(args.seed, args.seed + args.seeds):
        with tempfile.TemporaryDirectory(prefix="strom-chaos-") as root:
            result = run(args.rounds, seed, Path(root))
        print(result, flush=True)
        failed |= bool(result["violations"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
