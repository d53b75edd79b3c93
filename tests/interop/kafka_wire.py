"""Just enough of the Kafka wire protocol to send hand-made (and broken) requests.

Framing: 4-byte big-endian size, then the request header:
  v1: api_key i16, api_version i16, correlation_id i32, client_id (i16-length string)
  v2: v1 + tagged fields (an unsigned varint count, 0 here)
Responses: size i32, correlation_id i32 (+ tagged fields for flexible versions), body.
"""

from __future__ import annotations

import socket
import struct
import time

import crc32c

API_PRODUCE = 0
API_METADATA = 3
API_API_VERSIONS = 18

CLIENT_ID = b"strom-interop"


# ---------------------------------------------------------------- primitives


def i8(v: int) -> bytes:
    return struct.pack(">b", v)


def i16(v: int) -> bytes:
    return struct.pack(">h", v)


def i32(v: int) -> bytes:
    return struct.pack(">i", v)


def i64(v: int) -> bytes:
    return struct.pack(">q", v)


def uvarint(v: int) -> bytes:
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def varint(v: int) -> bytes:
    """Zig-zag signed varint (also used for varlong)."""
    return uvarint((v << 1) ^ (v >> 63))


def string(s: bytes | str | None) -> bytes:
    if s is None:
        return i16(-1)
    if isinstance(s, str):
        s = s.encode()
    return i16(len(s)) + s


def compact_string(s: bytes | str | None) -> bytes:
    if s is None:
        return uvarint(0)
    if isinstance(s, str):
        s = s.encode()
    return uvarint(len(s) + 1) + s


def array(items: list[bytes]) -> bytes:
    return i32(len(items)) + b"".join(items)


def compact_array(items: list[bytes]) -> bytes:
    return uvarint(len(items) + 1) + b"".join(items)


class Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ValueError(f"short read: need {n} at {self.pos}, have {len(self.data)}")
        b = self.data[self.pos : self.pos + n]
        self.pos += n
        return b

    def i8(self) -> int:
        return struct.unpack(">b", self.take(1))[0]

    def i16(self) -> int:
        return struct.unpack(">h", self.take(2))[0]

    def i32(self) -> int:
        return struct.unpack(">i", self.take(4))[0]

    def i64(self) -> int:
        return struct.unpack(">q", self.take(8))[0]

    def uvarint(self) -> int:
        shift = value = 0
        while True:
            b = self.take(1)[0]
            value |= (b & 0x7F) << shift
            if not b & 0x80:
                return value
            shift += 7

    def string(self) -> str | None:
        n = self.i16()
        return None if n < 0 else self.take(n).decode()

    def compact_string(self) -> str | None:
        n = self.uvarint()
        return None if n == 0 else self.take(n - 1).decode()

    def tagged_fields(self) -> None:
        for _ in range(self.uvarint()):
            self.uvarint()
            self.take(self.uvarint())

    def rest(self) -> int:
        return len(self.data) - self.pos


# ---------------------------------------------------------------- record batch v2


def record(offset_delta: int, timestamp_delta: int, key: bytes | None, value: bytes | None,
           headers: list[tuple[str, bytes]] = ()) -> bytes:
    body = bytearray()
    body += i8(0)  # attributes
    body += varint(timestamp_delta)
    body += varint(offset_delta)
    body += varint(-1) if key is None else varint(len(key)) + key
    body += varint(-1) if value is None else varint(len(value)) + value
    body += varint(len(headers))
    for hk, hv in headers:
        hk_b = hk.encode()
        body += varint(len(hk_b)) + hk_b
        body += varint(-1) if hv is None else varint(len(hv)) + hv
    return varint(len(body)) + bytes(body)


def record_batch(
    records: list[tuple[bytes | None, bytes | None]],
    base_timestamp: int | None = None,
    magic: int = 2,
    corrupt_crc: bool = False,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
) -> bytes:
    """An uncompressed RecordBatch v2 (base offset 0; idempotent when a producer id is given)."""
    if base_timestamp is None:
        base_timestamp = int(time.time() * 1000)
    recs = b"".join(record(i, i, k, v) for i, (k, v) in enumerate(records))
    after_crc = (
        i16(0)  # attributes: no compression, CreateTime
        + i32(len(records) - 1)  # lastOffsetDelta
        + i64(base_timestamp)
        + i64(base_timestamp + len(records) - 1)  # maxTimestamp
        + i64(producer_id)
        + i16(producer_epoch)
        + i32(base_sequence)
        + i32(len(records))
        + recs
    )
    crc = crc32c.crc32c(after_crc)
    if corrupt_crc:
        crc ^= 0xDEADBEEF
    after_length = i32(0) + i8(magic) + struct.pack(">I", crc) + after_crc  # partitionLeaderEpoch
    return i64(0) + i32(len(after_length)) + after_length


# ---------------------------------------------------------------- requests


def request(api_key: int, api_version: int, correlation_id: int, body: bytes = b"",
            flexible_header: bool = False) -> bytes:
    header = i16(api_key) + i16(api_version) + i32(correlation_id) + string(CLIENT_ID)
    if flexible_header:
        header += uvarint(0)
    payload = header + body
    return i32(len(payload)) + payload


def produce_body(topic: str, partition: int, batch: bytes, version: int, acks: int = -1,
                 timeout_ms: int = 10000) -> bytes:
    if version >= 9:
        part = i32(partition) + uvarint(len(batch) + 1) + batch + uvarint(0)
        tdata = compact_string(topic) + compact_array([part]) + uvarint(0)
        return compact_string(None) + i16(acks) + i32(timeout_ms) + compact_array([tdata]) + uvarint(0)
    assert 3 <= version <= 8
    part = i32(partition) + i32(len(batch)) + batch
    tdata = string(topic) + array([part])
    return string(None) + i16(acks) + i32(timeout_ms) + array([tdata])


def produce_request(topic: str, partition: int, batch: bytes, version: int = 8,
                    correlation_id: int = 1) -> bytes:
    return request(API_PRODUCE, version, correlation_id, produce_body(topic, partition, batch, version),
                   flexible_header=version >= 9)


def parse_produce_response(body: bytes, version: int) -> list[tuple[str, int, int, int]]:
    """[(topic, partition, error_code, base_offset)] from a Produce v3..v9+ response body
    (response header already removed)."""
    r = Reader(body)
    flexible = version >= 9
    if flexible:
        r.tagged_fields()  # response header v1
    out = []
    n_topics = r.uvarint() - 1 if flexible else r.i32()
    for _ in range(n_topics):
        name = r.compact_string() if flexible else r.string()
        n_parts = r.uvarint() - 1 if flexible else r.i32()
        for _ in range(n_parts):
            index = r.i32()
            error = r.i16()
            base_offset = r.i64()
            r.i64()  # log_append_time_ms
            if version >= 5:
                r.i64()  # log_start_offset
            if version >= 8:
                n_errs = r.uvarint() - 1 if flexible else r.i32()
                for _ in range(max(n_errs, 0)):
                    r.i32()
                    r.compact_string() if flexible else r.string()
                    if flexible:
                        r.tagged_fields()
                r.compact_string() if flexible else r.string()
            if flexible:
                r.tagged_fields()
            out.append((name, index, error, base_offset))
        if flexible:
            r.tagged_fields()
    return out


def parse_api_versions_v0(body: bytes) -> tuple[int, list[tuple[int, int, int]]]:
    r = Reader(body)
    error = r.i16()
    n = r.i32()
    keys = [(r.i16(), r.i16(), r.i16()) for _ in range(max(n, 0))]
    return error, keys


# ---------------------------------------------------------------- connection


class Conn:
    def __init__(self, port: int, timeout: float = 10.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv_exact(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError(f"closed after {len(buf)}/{n} bytes")
            buf += chunk
        return bytes(buf)

    def recv_frame(self) -> tuple[int, bytes]:
        """(correlation_id, rest-of-response) of the next response."""
        size = struct.unpack(">i", self.recv_exact(4))[0]
        assert 4 <= size < 64 * 1024 * 1024, f"implausible response size {size}"
        payload = self.recv_exact(size)
        return struct.unpack(">i", payload[:4])[0], payload[4:]

    def closed_or_error(self, wait: float = 10.0) -> str:
        """Wait for the broker's reaction to a bad request: 'closed' when the
        connection ends, 'response' when some response frame arrives."""
        self.sock.settimeout(wait)
        try:
            data = self.sock.recv(4)
        except (ConnectionResetError, BrokenPipeError):
            return "closed"
        except socket.timeout:
            return "timeout"
        return "closed" if not data else "response"

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "Conn":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def api_versions(port: int) -> dict[int, tuple[int, int]]:
    """ApiVersions v0 round trip on a fresh connection: {api_key: (min, max)}."""
    with Conn(port) as c:
        c.send(request(API_API_VERSIONS, 0, 7))
        cid, body = c.recv_frame()
        assert cid == 7
        error, keys = parse_api_versions_v0(body)
        assert error == 0, error
        return {k: (lo, hi) for k, lo, hi in keys}


API_FIND_COORDINATOR = 10


def find_coordinator(port: int, key: str, key_type: int) -> tuple[int, int, int]:
    """FindCoordinator v1 (key_type 0 = group, 1 = transaction): (error, node id, port)."""
    with Conn(port) as c:
        c.send(request(API_FIND_COORDINATOR, 1, 11, string(key) + i8(key_type)))
        cid, body = c.recv_frame()
        assert cid == 11
        r = Reader(body)
        r.i32()  # throttle
        error = r.i16()
        r.string()  # message
        node = r.i32()
        r.string()  # host
        return error, node, r.i32()
