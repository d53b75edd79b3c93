"""Hostile bytes on the Kafka port: the broker answers with Kafka error codes or
closes that one connection, keeps serving, and never loses stored data."""

from __future__ import annotations

import os
import struct

import pytest

import ck_util as ck
import kafka_wire as w
from records import assert_same_records, make_records, topic_name

MIB = 1024 * 1024
CORRUPT_MESSAGE = 2
UNKNOWN_TOPIC_OR_PARTITION = 3
MESSAGE_TOO_LARGE = 10
UNSUPPORTED_VERSION = 35
INVALID_RECORD = 87


class Stored:
    """A topic with known content; `check()` proves the broker still works and
    the content is intact (plus a fresh record produced by a real client)."""

    def __init__(self, broker):
        self.broker = broker
        self.topic = topic_name("bad-input")
        ck.create_topic(broker, self.topic, partitions=1)
        self.recs = make_records(200, partitions=1, seed=7)
        ck.produce(broker, self.topic, self.recs)

    def check(self):
        self.broker.check_alive()
        more = make_records(5, partitions=1, seed=len(self.recs))
        ck.produce(self.broker, self.topic, more)
        self.recs = self.recs + more
        got = ck.consume(self.broker, self.topic, [0], expected=len(self.recs))
        assert_same_records(self.recs, got)
        # A raw ApiVersions round trip on a fresh connection still works.
        assert w.API_API_VERSIONS in w.api_versions(self.broker.port)


@pytest.fixture
def stored(broker):
    return Stored(broker)


GARBAGE = {
    "random-frame": lambda: w.i32(64) + os.urandom(64),
    "ascii-http": lambda: b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
    "negative-size": lambda: w.i32(-1) + b"\x00" * 16,
    "zero-size": lambda: w.i32(0),
    "short-header": lambda: w.i32(3) + b"\x00\x03\x00",
    "truncated-client-id": lambda: w.i32(10) + w.i16(3) + w.i16(1) + w.i32(1) + w.i16(200),
    "metadata-body-truncated": lambda: w.request(w.API_METADATA, 1, 5, w.i32(3) + w.string("abc")),
    "produce-body-garbage": lambda: w.request(w.API_PRODUCE, 8, 6, os.urandom(40)),
}


@pytest.mark.parametrize("name", sorted(GARBAGE))
def test_garbage_closes_connection(stored, name):
    with w.Conn(stored.broker.port) as c:
        c.send(GARBAGE[name]())
        outcome = c.closed_or_error()
    assert outcome in ("closed", "response"), f"{name}: broker neither answered nor closed"
    stored.check()


@pytest.mark.parametrize("size", [100 * MIB + 1, 200 * MIB, 2**31 - 1])
def test_oversized_frame_is_refused_without_allocating(stored, size):
    rss_before = stored.broker.rss_kib()
    with w.Conn(stored.broker.port) as c:
        c.send(w.i32(size) + w.i16(0) + w.i16(8) + w.i32(1) + b"\x00" * 1024)
        outcome = c.closed_or_error()
    assert outcome == "closed", f"frame of {size} bytes: expected the connection to be closed, got {outcome}"
    rss_after = stored.broker.rss_kib()
    assert rss_after - rss_before < 64 * 1024, f"RSS grew {rss_before} -> {rss_after} KiB"
    stored.check()


def test_unknown_api_key(stored):
    with w.Conn(stored.broker.port) as c:
        c.send(w.request(9999, 0, 1))
        assert c.closed_or_error() in ("closed", "response")
    stored.check()


def test_unsupported_api_versions_version_gets_v0_error_response(stored):
    # What a client newer than the broker sends: ApiVersions v99 with a flexible
    # header and a v3-shaped body (client software name and version).
    body = w.compact_string("strom-interop") + w.compact_string("1.0") + w.uvarint(0)
    with w.Conn(stored.broker.port) as c:
        c.send(w.request(w.API_API_VERSIONS, 99, 4242, body, flexible_header=True))
        cid, payload = c.recv_frame()
    assert cid == 4242
    error, keys = w.parse_api_versions_v0(payload)
    assert error == UNSUPPORTED_VERSION
    assert keys, "UNSUPPORTED_VERSION response must list the supported ranges"
    ranges = {k: (lo, hi) for k, lo, hi in keys}
    assert w.API_API_VERSIONS in ranges
    assert ranges[w.API_API_VERSIONS][0] == 0
    stored.check()


def test_api_versions_v0_lists_modern_ranges(stored):
    ranges = w.api_versions(stored.broker.port)
    # Kafka 4.x floor: Produce v3+, Fetch v4+ served; Produce advertised so that
    # librdkafka enables compression (KAFKA-18659).
    assert ranges[w.API_PRODUCE][0] <= 3 <= 9 <= ranges[w.API_PRODUCE][1], ranges[w.API_PRODUCE]
    assert ranges[1][0] <= 4 <= 11 <= ranges[1][1], ranges[1]
    assert ranges[w.API_METADATA][0] <= 1 <= 9 <= ranges[w.API_METADATA][1], ranges[w.API_METADATA]


def test_unsupported_version_of_other_api(stored):
    with w.Conn(stored.broker.port) as c:
        c.send(w.request(w.API_METADATA, 99, 3, w.i32(0)))
        assert c.closed_or_error() in ("closed", "response")
    stored.check()


def _produce_raw(broker, topic, partition, batch, version):
    with w.Conn(broker.port) as c:
        c.send(w.produce_request(topic, partition, batch, version=version, correlation_id=77))
        cid, body = c.recv_frame()
    assert cid == 77
    [(name, index, error, base_offset)] = w.parse_produce_response(body, version)
    assert (name, index) == (topic, partition)
    return error, base_offset


@pytest.mark.parametrize("version", [3, 8, 9])
def test_raw_produce_valid(stored, version):
    """The raw encoder itself is right: a good batch is accepted and readable."""
    batch = w.record_batch([(b"raw-k1", b"raw-v1"), (b"raw-k2", b"raw-v2")])
    error, base = _produce_raw(stored.broker, stored.topic, 0, batch, version)
    assert error == 0
    assert base == len(stored.recs)
    got = ck.consume(stored.broker, stored.topic, [0], expected=len(stored.recs) + 2, with_offsets=True)
    assert [(r.key, r.value) for _, r in got[-2:]] == [(b"raw-k1", b"raw-v1"), (b"raw-k2", b"raw-v2")]
    assert [o for o, _ in got[-2:]] == [base, base + 1]
    stored.recs = stored.recs + [r for _, r in got[-2:]]
    stored.check()


@pytest.mark.parametrize("version", [8, 9])
def test_bad_crc_is_corrupt_message(stored, version):
    batch = w.record_batch([(b"k", b"v")] * 3, corrupt_crc=True)
    error, _ = _produce_raw(stored.broker, stored.topic, 0, batch, version)
    assert error == CORRUPT_MESSAGE
    stored.check()


def test_wrong_magic(stored):
    batch = w.record_batch([(b"k", b"v")], magic=1)
    error, _ = _produce_raw(stored.broker, stored.topic, 0, batch, 8)
    assert error in (CORRUPT_MESSAGE, INVALID_RECORD)
    stored.check()


def test_truncated_batch(stored):
    batch = w.record_batch([(b"k", b"v" * 100)] * 3)
    # Claim the full batch length but cut the tail off.
    error, _ = _produce_raw(stored.broker, stored.topic, 0, batch[:-40], 8)
    assert error in (CORRUPT_MESSAGE, INVALID_RECORD)
    stored.check()


def test_batch_larger_than_max_message_bytes(stored):
    topic = topic_name("bad-small")
    ck.create_topic(stored.broker, topic, partitions=1, config={"max.message.bytes": "1000"})
    batch = w.record_batch([(b"k%d" % i, b"x" * 400) for i in range(10)])
    assert len(batch) > 1000
    error, _ = _produce_raw(stored.broker, topic, 0, batch, 8)
    assert error == MESSAGE_TOO_LARGE
    small = w.record_batch([(b"k", b"x" * 100)])
    assert _produce_raw(stored.broker, topic, 0, small, 8) == (0, 0)
    stored.check()


def test_produce_to_missing_partition(stored):
    batch = w.record_batch([(b"k", b"v")])
    error, _ = _produce_raw(stored.broker, stored.topic, 7, batch, 8)
    assert error == UNKNOWN_TOPIC_OR_PARTITION
    stored.check()


def test_many_bad_connections_in_a_row(stored):
    for i in range(50):
        with w.Conn(stored.broker.port) as c:
            c.send(struct.pack(">i", 8) + os.urandom(8))
            c.closed_or_error(wait=5)
    stored.check()
