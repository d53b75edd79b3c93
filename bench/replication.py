#!/usr/bin/env python3
"""Produce throughput of a three-node cluster with replication factor 3 and
min.insync.replicas=2 against a single node, both with acks=all, on this machine: all
four processes share its cores, so the ratio shows what replication costs in CPU and
fsyncs, not what three machines would give. Alternating rounds (single, cluster,
single, ...), each on a fresh data directory; clients: kcat (librdkafka, 1 MB batches,
linger 5 ms) and `strom bench produce` (64 KiB batches). Reports every round and the
median cluster / single ratio per client.

    python3 bench/replication.py --records 1000000 --size 100 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import subprocess
import tempfile
import time

import compare

STROM = compare.ROOT / "target" / "release" / "strom"


def start_single(data: pathlib.Path) -> tuple[list[subprocess.Popen], str]:
    port = compare.free_port()
    return [compare.start("strom", port, data)], f"127.0.0.1:{port}"


def start_cluster(data: pathlib.Path) -> tuple[list[subprocess.Popen], str]:
    kafka = [compare.free_port() for _ in range(3)]
    controller = [compare.free_port() for _ in range(3)]
    voters = ",".join(f"{i + 1}@127.0.0.1:{controller[i]}" for i in range(3))
    procs = []
    for i in range(3):
        cmd = [str(STROM), "serve", "--set", f"node.id={i + 1}",
               "--set", f"listeners=PLAINTEXT://127.0.0.1:{kafka[i]},CONTROLLER://127.0.0.1:{controller[i]}",
               "--set", f"controller.quorum.voters={voters}", "--set", f"log.dirs={data / f'node-{i + 1}'}",
               "--set", "schema.registry.listeners="]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    for port in kafka:
        compare.wait_port(port, timeout=60)
    bootstrap = ",".join(f"127.0.0.1:{p}" for p in kafka)
    # Every broker registered before the topic is placed.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        out = subprocess.run([str(STROM), "--brokers", bootstrap, "--output", "json", "cluster", "status"],
                             capture_output=True, text=True)
        if out.returncode == 0 and sum(1 for n in json.loads(out.stdout)["nodes"] if n["broker"] == "alive") == 3:
            break
        time.sleep(0.5)
    return procs, bootstrap


def create(bootstrap: str, topic: str, replication: int) -> None:
    subprocess.run([str(STROM), "--brokers", bootstrap, "topic", "create", topic, "-p", "1", "-r", str(replication),
                    "-c", f"min.insync.replicas={min(2, replication)}"], check=True, capture_output=True)
    # The leader takes acks=all only once the followers are in the ISR.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        out = subprocess.run([str(STROM), "--brokers", bootstrap, "--output", "json", "topic", "describe", topic],
                             capture_output=True, text=True)
        if out.returncode == 0 and len(json.loads(out.stdout)["partitions"][0]["isr"]) == replication:
            return
        time.sleep(0.2)
    raise RuntimeError(f"{topic}: the ISR never filled")


def kcat(bootstrap: str, topic: str, payload: pathlib.Path, records: int) -> float:
    start = time.perf_counter()
    subprocess.run(["kcat", "-P", "-b", bootstrap, "-t", topic, "-X", "linger.ms=5", "-X", "acks=all",
                    "-l", str(payload)], check=True, env=compare.kcat_env())
    return records / (time.perf_counter() - start)


def strom_bench(bootstrap: str, topic: str, records: int, size: int) -> float:
    out = subprocess.run([str(STROM), "bench", "produce", "--brokers", bootstrap, "--topic", topic, "--partitions", "1",
                          "--records", str(records), "--message-size", str(size), "--batch-size", "65536",
                          "--acks", "all", "--no-progress", "--output", "json"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)["summary"]["throughput_rps"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rates: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        payload = pathlib.Path(tmp) / "payload"
        payload.write_bytes((b"x" * (args.size - 1) + b"\n") * args.records)
        for r in range(args.rounds):
            for setup, starter, replication in (("single", start_single, 1), ("cluster", start_cluster, 3)):
                data = pathlib.Path(tmp) / f"{setup}-{r}"
                data.mkdir()
                procs, bootstrap = starter(data)
                try:
                    for client in ("kcat", "strom-bench"):
                        topic = f"{client}-{r}"
                        create(bootstrap, topic, replication)
                        if client == "kcat":
                            rate = kcat(bootstrap, topic, payload, args.records)
                        else:
                            rate = strom_bench(bootstrap, topic, args.records, args.size)
                        rates.setdefault((setup, client), []).append(rate)
                        print(f"round {r} {setup:7} {client:11} {rate:12,.0f} rec/s", flush=True)
                finally:
                    for proc in procs:
                        proc.terminate()
                    for proc in procs:
                        proc.wait(30)
    print()
    for client in ("kcat", "strom-bench"):
        single = statistics.median(rates[("single", client)])
        cluster = statistics.median(rates[("cluster", client)])
        print(f"{client:11} single {single:12,.0f}  cluster RF=3 {cluster:12,.0f}  ratio {cluster / single:.2f}")


if __name__ == "__main__":
    main()
