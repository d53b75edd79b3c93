"""`strom serve` itself: --print-config, --config FILE with STROM_* and --set layered on
top, JSON logs, refusing bad settings, and the max.connections cap."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time

import kafka_wire as w
from conftest import strom_bin


def serve(*args: str, env: dict | None = None, timeout: float = 20) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([str(strom_bin()), "serve", *args], capture_output=True, text=True, timeout=timeout,
                          env=full_env, check=False)


def test_print_config_shows_layers(tmp_path):
    config = tmp_path / "strom.toml"
    config.write_text('"num.partitions" = 3\n[log]\nretention.ms = 5000\n')
    out = serve("--config", str(config), "--set", "log.retention.ms=7000", "--print-config",
                env={"STROM_DEFAULT_REPLICATION_FACTOR": "1", "STROM_NUM_PARTITIONS": "4"})
    assert out.returncode == 0, out.stderr
    lines = {line.split(" = ")[0].strip('"'): line for line in out.stdout.splitlines()}
    assert '"4"' in lines["num.partitions"] and "environment" in lines["num.partitions"]
    assert '"7000"' in lines["log.retention.ms"] and "--set" in lines["log.retention.ms"]
    assert '"./strom-data"' in lines["log.dirs"] and "default" in lines["log.dirs"]


def test_bad_settings_stop_the_broker_with_a_message(tmp_path):
    out = serve("--set", "no.such.setting=1", "--print-config")
    assert out.returncode != 0 and "unknown setting 'no.such.setting'" in out.stderr
    out = serve("--set", "num.partitions=zero", "--print-config")
    assert out.returncode != 0 and "num.partitions" in out.stderr


def test_max_connections(broker_factory):
    broker = broker_factory(**{"max.connections": 2})
    time.sleep(0.5)  # the fixture's own readiness probe must have gone first
    # Two connections are served; the third is closed on accept.
    kept = [w.Conn(broker.port) for _ in range(2)]
    for c in kept:
        c.send(w.request(18, 0, 1))
        cid, _ = c.recv_frame()
        assert cid == 1
    extra = w.Conn(broker.port)
    try:
        extra.send(w.request(18, 0, 2))
    except OSError:
        pass  # already closed by the broker
    assert extra.closed_or_error() != "response"
    for c in kept + [extra]:
        c.close()
    # Once they are gone, new connections are served again.
    time.sleep(0.5)
    with w.Conn(broker.port) as again:
        again.send(w.request(18, 0, 3))
        assert again.recv_frame()[0] == 3


def test_json_log_lines(tmp_path):
    port_socket = socket.socket()
    port_socket.bind(("127.0.0.1", 0))
    port = port_socket.getsockname()[1]
    port_socket.close()
    proc = subprocess.Popen([str(strom_bin()), "serve", "--log-format", "json", "--set",
                             f"listeners=PLAINTEXT://127.0.0.1:{port}", "--set", f"log.dirs={tmp_path / 'data'}"],
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()
        record = json.loads(line)
        assert record["level"] == "INFO" and "fields" in record, record
        # A signal during startup is handled too; wait for the listener anyway.
        while "kafka listener ready" not in line:
            line = proc.stderr.readline()
            assert line, "the broker exited early"
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert proc.returncode == 0, "graceful shutdown on SIGTERM"
    assert (tmp_path / "data" / "meta.properties").exists()


def test_help_names_the_settings_and_client_flags_are_refused(tmp_path):
    helped = serve("--help")
    assert helped.returncode == 0
    assert "listeners" in helped.stdout and "log.dirs" in helped.stdout and "--print-config" in helped.stdout
    assert "--brokers" not in helped.stdout  # a client flag; serve would ignore it
    for args in (["serve", "--brokers", "127.0.0.1:9999"], ["--brokers", "127.0.0.1:9999", "serve"],
                 ["serve", "--output", "json"]):
        out = subprocess.run([str(strom_bin()), *args, "--set", f"log.dirs={tmp_path / 'unused'}"],
                             capture_output=True, text=True, timeout=20, check=False)
        assert out.returncode != 0 and "`strom serve` takes no --" in out.stderr, (args, out.stderr)
    assert not (tmp_path / "unused").exists()


def test_a_busy_port_says_which_setting_and_leaves_no_data_dir(tmp_path):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    try:
        out = serve("--set", f"listeners=PLAINTEXT://127.0.0.1:{port}", "--set", f"log.dirs={tmp_path / 'data'}")
    finally:
        busy.close()
    assert out.returncode != 0
    assert f"cannot listen on 127.0.0.1:{port}" in out.stderr and "--set listeners=PLAINTEXT://" in out.stderr
    assert not (tmp_path / "data").exists()


def test_logs_to_a_file_have_no_colours(tmp_path):
    port_socket = socket.socket()
    port_socket.bind(("127.0.0.1", 0))
    port = port_socket.getsockname()[1]
    port_socket.close()
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    log = tmp_path / "strom.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(strom_bin()), "serve", "--set", f"listeners=PLAINTEXT://127.0.0.1:{port}",
                                 "--set", f"log.dirs={tmp_path / 'data'}"], stderr=out, env=env)
        try:
            deadline = time.time() + 20
            while "kafka listener ready" not in log.read_text():
                assert time.time() < deadline and proc.poll() is None, log.read_text()
                time.sleep(0.05)
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    assert "\x1b[" not in log.read_text()


def test_the_process_ends_promptly_after_the_broker_closes(broker):
    """SIGTERM under load (a group consumer in a long poll, an acks=all producer): the
    process is gone shortly after it logs "broker closed", not seconds later."""
    import threading
    from datetime import datetime

    from confluent_kafka import Consumer, Producer

    from ck_util import create_topic
    from records import topic_name

    topic = topic_name("shutdown")
    create_topic(broker, topic, 2)
    stop = threading.Event()

    def consume():
        c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": topic, "fetch.wait.max.ms": 5000,
                      "session.timeout.ms": 6000, "reconnect.backoff.max.ms": 100})
        c.subscribe([topic])
        while not stop.is_set():
            c.poll(0.1)
        c.close()

    def produce():
        p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 5,
                      "reconnect.backoff.max.ms": 100})
        while not stop.is_set():
            try:
                p.produce(topic, value=b"x" * 100)
            except BufferError:
                pass
            p.poll(0.01)
        p.flush(1)

    workers = [threading.Thread(target=consume), threading.Thread(target=produce)]
    for t in workers:
        t.start()
    try:
        time.sleep(5)  # the group has formed and records flow
        assert broker.stop() == 0
        exited = datetime.now().astimezone()
    finally:
        stop.set()
        for t in workers:
            t.join(30)
    closed_lines = [l for l in broker.log_path.read_text().splitlines() if "broker closed" in l]
    assert closed_lines, broker.log_tail()
    closed = datetime.fromisoformat(closed_lines[-1].split()[0].replace("Z", "+00:00"))
    # Generous: the point is "not seconds later"; the process normally ends within ms.
    assert (exited - closed).total_seconds() < 1.0, (closed_lines[-1], exited)
