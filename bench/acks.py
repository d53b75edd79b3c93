#!/usr/bin/env python3
"""Strom's acks=all (fsync'ed through group commit) against its own acks=1, in alternating
rounds on one broker: kcat (librdkafka 2.16, see compare.py; 1 MB batches) producing N
records of S bytes with linger 5 ms, then `strom bench produce` with the same count and
16 KiB batches (the Java client's default) and 64 KiB batches. Reports each round and the
median acks=all / acks=1 throughput ratio per client.

    python3 bench/acks.py --records 1000000 --size 100 --rounds 3
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
# Client name -> strom bench batch size (kcat keeps librdkafka's defaults).
CLIENTS = {"kcat": 0, "strom-bench-16k": 16384, "strom-bench-64k": 65536}


def kcat_produce(broker: str, topic: str, payload: pathlib.Path, acks: str, records: int) -> float:
    start = time.perf_counter()
    subprocess.run(["kcat", "-P", "-b", broker, "-t", topic, "-X", "linger.ms=5", "-X", f"acks={acks}",
                    "-l", str(payload)], check=True, env=compare.kcat_env())
    return records / (time.perf_counter() - start)


def bench_produce(broker: str, topic: str, acks: str, records: int, size: int, batch: int) -> float:
    out = subprocess.run([str(STROM), "bench", "produce", "--brokers", broker, "--topic", topic, "--partitions", "1",
                          "--records", str(records), "--message-size", str(size), "--batch-size", str(batch), "--acks",
                          "all" if acks == "all" else "leader", "--no-progress", "--output", "json"],
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
        port = compare.free_port()
        proc = compare.start("strom", port, pathlib.Path(tmp) / "data")
        broker = f"127.0.0.1:{port}"
        try:
            for r in range(args.rounds):
                for acks in ("1", "all"):
                    for client in CLIENTS:
                        topic = f"acks-{acks}-{client}-{r}"
                        subprocess.run([str(STROM), "topic", "create", topic, "-p", "1", "--brokers", broker],
                                       check=True, capture_output=True)
                        if client == "kcat":
                            rate = kcat_produce(broker, topic, payload, acks, args.records)
                        else:
                            rate = bench_produce(broker, topic, acks, args.records, args.size, CLIENTS[client])
                        rates.setdefault((client, acks), []).append(rate)
                        print(f"round {r + 1} {client} acks={acks}: {rate:,.0f} records/s", flush=True)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    print(f"\n{args.records} records x {args.size} B, one partition, medians of {args.rounds} alternating rounds\n")
    print("| client | acks=1 records/s | acks=all records/s | all / 1 |")
    print("|---|---|---|---|")
    for client in CLIENTS:
        one, every = (statistics.median(rates[(client, a)]) for a in ("1", "all"))
        print(f"| {client} | {one:,.0f} | {every:,.0f} | {every / one:.2f} |")


if __name__ == "__main__":
    main()
