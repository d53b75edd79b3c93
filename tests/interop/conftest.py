"""Fixtures that run the real `strom` binary for the interop tests.

Every test gets its own broker process on a free local port with its own data
directory.  A broker that exits without being asked to (a crash) fails the test.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

# Brokers start without the schema registry unless a test gives it a port: many
# brokers run at once here, and they would all want 8081.
os.environ.setdefault("STROM_SCHEMA_REGISTRY_LISTENERS", "")

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_BIN = ROOT / "target" / "release" / "strom"
START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 20.0
LOG_TAIL_LINES = 60


def strom_bin() -> Path:
    return Path(os.environ.get("STROM_BIN", str(DEFAULT_BIN)))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class BrokerCrashed(AssertionError):
    pass


class Broker:
    """One `strom serve` process.

    The port and data directory stay the same across stop()/kill()/start(), so
    a restart sees the same log.
    """

    def __init__(self, data_dir: Path, settings: dict[str, object] | None = None):
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}.log"
        self.port = free_port()
        self.settings = dict(settings or {})
        self.proc: subprocess.Popen | None = None
        self._expected_exit = True
        self._log_file = None
        self.starts = 0
        # Long-lived client objects tied to this broker; dropped at teardown.
        self.clients: dict[str, object] = {}

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        cmd = [
            str(strom_bin()),
            "serve",
            "--set",
            f"listeners=PLAINTEXT://127.0.0.1:{self.port}",
            "--set",
            f"log.dirs={self.data_dir}",
        ]
        for key, value in self.settings.items():
            cmd += ["--set", f"{key}={value}"]
        return cmd

    def start(self, timeout: float = START_TIMEOUT_S) -> "Broker":
        self.spawn()
        return self.wait_listening(timeout)

    def spawn(self) -> "Broker":
        """Starts the process without waiting for it to listen (a cluster's nodes
        listen only once their quorum has formed, so they start together)."""
        if self.alive():
            raise RuntimeError("broker is already running")
        binary = strom_bin()
        if not binary.exists():
            pytest.fail(f"broker binary {binary} is missing (cargo build --release)")
        self._log_file = open(self.log_path, "ab")
        # Readiness is read from this start's part of the log only.
        self._log_start = self._log_file.tell()
        self._log_file.write(f"\n===== start #{self.starts + 1}: {' '.join(self.command())}\n".encode())
        self._log_file.flush()
        env = dict(os.environ)
        env.setdefault("RUST_BACKTRACE", "1")
        env.setdefault("NO_COLOR", "1")
        self.proc = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            cwd=self.data_dir.parent,
            env=env,
        )
        self.starts += 1
        self._expected_exit = False
        return self

    def wait_listening(self, timeout: float = START_TIMEOUT_S) -> "Broker":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BrokerCrashed(
                    f"broker exited with {self.proc.returncode} during startup\n{self.log_tail()}"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    pass
                # A port taken by some other process also accepts: only this
                # process's own "listener ready" line says it is up.
                if self._says_ready():
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        self.kill()
        raise BrokerCrashed(f"broker did not listen on {self.bootstrap} within {timeout}s\n{self.log_tail()}")

    def _says_ready(self) -> bool:
        with open(self.log_path, "rb") as f:
            f.seek(self._log_start)
            return b"kafka listener ready" in f.read()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def crashed(self) -> bool:
        """True when the process ended although nobody stopped or killed it."""
        return self.proc is not None and self.proc.poll() is not None and not self._expected_exit

    def check_alive(self) -> None:
        if self.crashed():
            raise BrokerCrashed(
                f"broker died on its own (exit {self.proc.returncode})\n{self.log_tail()}"
            )

    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM and wait; returns the exit status. A hang is an error."""
        self.check_alive()
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self._expected_exit = True
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self._close_log()
            raise AssertionError(f"broker ignored SIGTERM for {timeout}s\n{self.log_tail()}")
        self._close_log()
        return rc

    def kill(self) -> None:
        """SIGKILL: no chance to flush or clean up."""
        if self.proc is None:
            return
        self._expected_exit = True
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._close_log()

    def restart(self) -> "Broker":
        self.stop()
        return self.start()

    def rss_kib(self) -> int:
        with open(f"/proc/{self.pid()}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no broker log)"
        tail = text.splitlines()[-lines:]
        return f"--- last {len(tail)} lines of {self.log_path} ---\n" + "\n".join(tail)

    def __repr__(self) -> str:
        return f"Broker({self.bootstrap}, data_dir={self.data_dir})"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for broker in getattr(item, "_strom_brokers", []):
            report.sections.append((f"strom broker log {broker.bootstrap}", broker.log_tail()))


@pytest.fixture
def broker_factory(request, tmp_path):
    """Start brokers: `broker_factory(**settings)`; keys with dots via a dict:
    `broker_factory(**{"num.partitions": 3})`."""
    brokers: list[Broker] = []
    request.node._strom_brokers = brokers

    def make(**settings) -> Broker:
        broker = Broker(tmp_path / f"strom-{len(brokers)}", settings)
        brokers.append(broker)
        return broker.start()

    yield make

    crashed = [b for b in brokers if b.crashed()]
    for b in brokers:
        b.clients.clear()
        if b.alive():
            b._expected_exit = True
            b.proc.send_signal(signal.SIGTERM)
            try:
                b.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                b.proc.kill()
                b.proc.wait()
        b._close_log()
    if crashed:
        pytest.fail(
            "\n".join(
                f"broker {b.bootstrap} died on its own (exit {b.proc.returncode})\n{b.log_tail()}"
                for b in crashed
            ),
            pytrace=False,
        )


@pytest.fixture
def broker(broker_factory) -> Broker:
    return broker_factory()


_EXIT_STATUS = 0


def pytest_sessionfinish(session, exitstatus):
    global _EXIT_STATUS
    _EXIT_STATUS = int(exitstatus)


def pytest_unconfigure(config):
    """Ends the process once pytest is done: a client some test left open (librdkafka
    retries its stopped broker forever) must not hold the run open at interpreter exit."""
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(_EXIT_STATUS)
