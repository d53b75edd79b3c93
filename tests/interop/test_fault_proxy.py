"""The fault proxy (fault_proxy.py) in front of a small echo server: each mode does what
the replication fault loop relies on, and thousands of connections leave no socket
behind. No broker involved."""

from __future__ import annotations

import os
import socket
import socketserver
import threading
import time

import pytest

from fault_proxy import FaultProxy

pytestmark = pytest.mark.timeout(120)


class _Echo(socketserver.BaseRequestHandler):
    def handle(self):
        try:
            while True:
                data = self.request.recv(65536)
                if not data:
                    return
                self.request.sendall(data)
        except OSError:
            return


@pytest.fixture
def proxy():
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    proxy = FaultProxy("127.0.0.1", server.server_address[1], name="test")
    yield proxy
    proxy.close()
    server.shutdown()
    server.server_close()


def connect(proxy: FaultProxy) -> socket.socket:
    return socket.create_connection(("127.0.0.1", proxy.port), timeout=5)


def echo(sock: socket.socket, payload: bytes) -> bytes:
    sock.sendall(payload)
    got = b""
    while len(got) < len(payload):
        chunk = sock.recv(65536)
        if not chunk:
            break
        got += chunk
    return got


def refused(proxy: FaultProxy) -> bool:
    """True when a new connection is reset, at connect or at the first exchange."""
    try:
        s = connect(proxy)
    except ConnectionResetError:
        return True
    with s:
        return cut(s)


def cut(sock: socket.socket) -> bool:
    """True when the connection is closed or reset by the other side."""
    try:
        sock.sendall(b"x")
        return sock.recv(1) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True


def test_pass_forwards_both_ways(proxy):
    with connect(proxy) as s:
        payload = os.urandom(300_000)
        assert echo(s, payload) == payload


def test_delay_holds_back_each_direction(proxy):
    with connect(proxy) as s:
        assert echo(s, b"warm") == b"warm"
        proxy.set_mode("delay", delay_ms=300)
        started = time.monotonic()
        assert echo(s, b"slow") == b"slow"
        # 300 ms there and 300 ms back.
        assert time.monotonic() - started >= 0.55
        proxy.set_mode("pass")
        started = time.monotonic()
        assert echo(s, b"fast") == b"fast"
        assert time.monotonic() - started < 0.3


def test_hold_keeps_the_connection_and_releases_in_order(proxy):
    with connect(proxy) as s:
        proxy.set_mode("hold")
        s.sendall(b"first,")
        s.sendall(b"second")
        s.settimeout(0.7)
        with pytest.raises(socket.timeout):
            s.recv(100)
        # A new connection while held is accepted but gets nothing either.
        with connect(proxy) as other:
            other.sendall(b"held")
            other.settimeout(0.3)
            with pytest.raises(socket.timeout):
                other.recv(100)
            proxy.set_mode("pass")
            other.settimeout(5)
            assert other.recv(100) == b"held"
        s.settimeout(5)
        got = b""
        while len(got) < len(b"first,second"):
            got += s.recv(100)
        assert got == b"first,second"


def test_drop_cuts_existing_and_refuses_new_until_healed(proxy):
    with connect(proxy) as s:
        assert echo(s, b"a") == b"a"
        proxy.set_mode("drop")
        assert proxy.open_connections() == 0
        assert cut(s)
    assert refused(proxy)
    proxy.set_mode("pass")
    with connect(proxy) as s:
        assert echo(s, b"b") == b"b"


def test_a_dead_target_looks_like_a_cut_link():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proxy = FaultProxy("127.0.0.1", port)
    try:
        assert refused(proxy)
        assert proxy.refused == 1
    finally:
        proxy.close()


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_thousands_of_connections_leak_no_socket(proxy):
    before = open_fds()
    modes = ["pass", "delay", "hold", "drop"]
    for i in range(3000):
        if i % 250 == 0:
            mode = modes[(i // 250) % len(modes)]
            proxy.set_mode(mode, delay_ms=5 if mode == "delay" else 0)
        if proxy.mode == "drop":
            assert refused(proxy)
            continue
        s = connect(proxy)
        if proxy.mode == "hold":
            s.sendall(b"ping")
        else:
            assert echo(s, b"ping") == b"ping"
        s.close()
    proxy.set_mode("pass")
    deadline = time.monotonic() + 10
    while (proxy.open_connections() or open_fds() > before + 5) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert proxy.open_connections() == 0
    assert open_fds() <= before + 5, (before, open_fds())
    assert proxy.accepted == 3000
