"""A fault-injecting TCP proxy for one directed link between two nodes, in pure Python
(no root): it listens on its own port on 127.0.0.1 and forwards every connection to a
target host:port. A harness switches its mode at any time, from any thread:

- `pass`: forward bytes as they come;
- `drop`: a network partition: existing connections are cut (reset) and new ones are
  accepted and reset at once, so the node behind the link cannot be reached;
- `hold`: connections stay open but no byte moves in either direction (a stalled
  link: the peer's requests time out instead of failing fast); bytes read meanwhile
  are buffered (bounded) and flow, in order, once the mode changes;
- `delay`: every chunk is forwarded `delay_ms` after it arrived (order kept).

All proxies share one asyncio loop in a daemon thread. `set_mode` returns once the mode
is in force (after `drop` returns, no connection of the link is left open), so a fault
logged as installed is installed.

    proxy = FaultProxy("127.0.0.1", 9093)
    proxy.port                       # where the peer connects instead of 9093
    proxy.set_mode("hold"); proxy.set_mode("delay", delay_ms=200); proxy.set_mode("pass")
    proxy.close()
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
import time

MODES = ("pass", "drop", "hold", "delay")
CHUNK_BYTES = 64 * 1024
# Chunks buffered per direction while held or delayed; beyond it the reader stops
# reading and TCP flow control pushes back on the sender.
QUEUE_CHUNKS = 256
CONNECT_TIMEOUT_S = 5.0
CONTROL_TIMEOUT_S = 10.0


class _Loop:
    """The one event loop every proxy runs on, started on first use."""

    _lock = threading.Lock()
    _loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def get(cls) -> asyncio.AbstractEventLoop:
        with cls._lock:
            if cls._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="fault-proxy", daemon=True)
                thread.start()
                cls._loop = loop
            return cls._loop

    @classmethod
    def call(cls, coro, timeout: float = CONTROL_TIMEOUT_S):
        """Runs `coro` on the loop and waits for its result (thread-safe)."""
        return asyncio.run_coroutine_threadsafe(coro, cls.get()).result(timeout)


def _reset(writer: asyncio.StreamWriter) -> None:
    """Closes with an RST (SO_LINGER 0), as a cut link looks to the peer, and frees
    the socket at once instead of leaving it in TIME_WAIT."""
    sock = writer.get_extra_info("socket")
    try:
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    writer.transport.abort()


class _Connection:
    """One proxied connection: two pumps (client→target, target→client)."""

    def __init__(self, proxy: "FaultProxy", client: tuple, target: tuple):
        self.proxy = proxy
        self.client_reader, self.client_writer = client
        self.target_reader, self.target_writer = target
        self.tasks: list[asyncio.Task] = []

    async def run(self) -> None:
        pumps = [
            self._pump(self.client_reader, self.target_writer),
            self._pump(self.target_reader, self.client_writer),
        ]
        self.tasks = [asyncio.ensure_future(p) for p in pumps]
        # One direction ending (EOF, error, cut) ends the connection: Kafka and gRPC
        # do not use half-closed sockets.
        await asyncio.wait(self.tasks, return_when=asyncio.FIRST_COMPLETED)
        self.cut()

    def cut(self) -> None:
        for task in self.tasks:
            task.cancel()
        _reset(self.client_writer)
        _reset(self.target_writer)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Reads one direction into a queue that `_forward` empties: reading goes on
        while forwarding is held or delayed, up to the queue's bound."""
        queue: asyncio.Queue = asyncio.Queue(QUEUE_CHUNKS)
        forward = asyncio.ensure_future(self._forward(queue, writer))
        try:
            while True:
                data = await reader.read(CHUNK_BYTES)
                await queue.put((time.monotonic(), data))
                if not data:
                    break
            await forward
        except (OSError, ConnectionError):
            pass  # the connection was cut or reset: `run` closes both sides
        finally:
            forward.cancel()

    async def _forward(self, queue: asyncio.Queue, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                arrived, data = await queue.get()
                if not data:
                    return
                await self.proxy._flowing.wait()  # hold: wait here, bytes stay queued
                delay_s = self.proxy.delay_ms / 1000.0
                if delay_s > 0:
                    await asyncio.sleep(max(0.0, arrived + delay_s - time.monotonic()))
                    await self.proxy._flowing.wait()
                writer.write(data)
                await writer.drain()
        except (OSError, ConnectionError):
            pass


class FaultProxy:
    """One listening port forwarding to `target_host:target_port` (see the module doc)."""

    def __init__(self, target_host: str, target_port: int, name: str = "", listen_port: int = 0):
        self.target = (target_host, target_port)
        self.name = name or f"->{target_host}:{target_port}"
        self.mode = "pass"
        self.delay_ms = 0
        self.accepted = 0  # connections accepted over the proxy's life
        self.refused = 0  # of those, reset at once (drop, or the target did not answer)
        self._connections: set[_Connection] = set()
        self._server: asyncio.AbstractServer | None = None
        self._flowing: asyncio.Event | None = None
        self.port = _Loop.call(self._start(listen_port))

    async def _start(self, listen_port: int) -> int:
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", listen_port, reuse_address=True)
        return self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self.mode == "drop":
            self.refused += 1
            _reset(writer)
            return
        try:
            target = await asyncio.wait_for(asyncio.open_connection(*self.target), CONNECT_TIMEOUT_S)
        except (OSError, asyncio.TimeoutError):
            # The node behind the link is down: the peer sees a cut, as it would directly.
            self.refused += 1
            _reset(writer)
            return
        if self.mode == "drop":  # switched while connecting
            self.refused += 1
            _reset(writer)
            _reset(target[1])
            return
        connection = _Connection(self, (reader, writer), target)
        self._connections.add(connection)
        try:
            await connection.run()
        finally:
            self._connections.discard(connection)

    async def _set_mode(self, mode: str, delay_ms: int) -> None:
        self.mode = mode
        self.delay_ms = delay_ms if mode == "delay" else 0
        if mode == "hold":
            self._flowing.clear()
        else:
            self._flowing.set()
        if mode == "drop":
            for connection in list(self._connections):
                connection.cut()
            self._connections.clear()

    def set_mode(self, mode: str, delay_ms: int = 0) -> None:
        """Switches the link's mode; in force when this returns. Thread-safe."""
        if mode not in MODES:
            raise ValueError(f"unknown proxy mode {mode!r}; one of {MODES}")
        if mode == "delay" and delay_ms <= 0:
            raise ValueError("delay needs delay_ms > 0")
        _Loop.call(self._set_mode(mode, delay_ms))

    def open_connections(self) -> int:
        return len(self._connections)

    async def _peer_ports(self) -> list[int]:
        ports = []
        for connection in self._connections:
            peer = connection.client_writer.get_extra_info("peername")
            if peer:
                ports.append(peer[1])
        return ports

    def peer_ports(self) -> list[int]:
        """The client-side ports of the open connections (who is using this link)."""
        return _Loop.call(self._peer_ports())

    async def _close(self) -> None:
        # Connections first: from Python 3.12 on, wait_closed waits for them.
        await self._set_mode("drop", 0)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def close(self) -> None:
        """Stops listening and cuts every connection."""
        _Loop.call(self._close())

    def __repr__(self) -> str:
        mode = f"delay({self.delay_ms}ms)" if self.mode == "delay" else self.mode
        return f"FaultProxy({self.name} :{self.port}->{self.target[0]}:{self.target[1]} {mode})"
