"""kcat (Debian's build, librdkafka 2.0.2): metadata, produce with every codec,
keys and headers, consume from the beginning."""

from __future__ import annotations

import json
import shutil
import subprocess
import time

import pytest

import ck_util as ck
from records import CODEC_IDS, CODECS, Rec, assert_same_records, stored_codecs, topic_name

# librdkafka decides per broker whether it may compress: its LZ4 feature flag
# depends on FindCoordinator v0 being advertised (rdkafka_feature.c), ZSTD on
# Produce v7 + Fetch v10. Without it, the codec is silently dropped.
LIBRDKAFKA_CODEC_HINT = "stored batches are not compressed as the client was told: check ApiVersions (librdkafka feature map)"

KCAT = shutil.which("kcat") or shutil.which("kafkacat")
pytestmark = pytest.mark.skipif(KCAT is None, reason="kcat not installed (scripts/test installs it)")

COUNT = 10_000
HEADERS = (("source", b"kcat"), ("run", b"interop-1"))


def kcat(broker, *args, stdin: bytes | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    cmd = [KCAT, "-b", broker.bootstrap, *args]
    proc = subprocess.run(cmd, input=stdin, capture_output=True, timeout=timeout)
    assert proc.returncode == 0, (
        f"{' '.join(cmd)} exited {proc.returncode}\nstderr:\n{proc.stderr.decode(errors='replace')[-3000:]}"
    )
    return proc


def lines(n: int) -> list[tuple[bytes, bytes]]:
    return [(b"key-%d" % i, b"value-%d-" % i + b"abcdefgh" * (i % 17)) for i in range(n)]


def test_metadata_list(broker):
    topic = topic_name("kcat-meta")
    ck.create_topic(broker, topic, partitions=2)
    out = kcat(broker, "-L").stdout.decode()
    assert "Read underflow" not in out
    assert f'topic "{topic}" with 2 partitions' in out, out
    assert f"127.0.0.1:{broker.port}" in out

    meta = json.loads(kcat(broker, "-L", "-J").stdout)
    names = {t["topic"]: t for t in meta["topics"]}
    assert topic in names
    assert sorted(p["partition"] for p in names[topic]["partitions"]) == [0, 1]
    assert any(b["name"].endswith(f":{broker.port}") for b in meta["brokers"])


def test_handshake_is_clean(broker):
    """librdkafka 2.0.2 must not fall back to 'broker version < 0.10' guesses."""
    proc = kcat(broker, "-L", "-d", "protocol,broker")
    err = proc.stderr.decode(errors="replace")
    assert "Read underflow" not in err
    assert "ApiVersionRequest failed" not in err
    assert "probably due to broker version" not in err


@pytest.mark.parametrize("codec", CODECS)
def test_produce_consume(broker, codec):
    topic = topic_name(f"kcat-{codec}")  # auto-created by the produce
    data = lines(COUNT)
    payload = b"".join(k + b":" + v + b"\n" for k, v in data)
    header_args = [a for name, value in HEADERS for a in ("-H", f"{name}={value.decode()}")]
    t0 = int(time.time() * 1000)
    proc = kcat(broker, "-P", "-t", topic, "-K:", "-z", codec, *header_args,
                "-X", "acks=all", "-X", "linger.ms=20", stdin=payload)
    assert b"Delivery failed" not in proc.stderr, proc.stderr[-2000:]
    t1 = int(time.time() * 1000)
    # librdkafka 2.0.2 really compressed (it decides from the advertised Produce range).
    # It sends a batch uncompressed when compressing would not make it smaller (a batch
    # of one small record, when the machine is slow and linger.ms catches little).
    stored = stored_codecs(broker.data_dir, topic)
    assert CODEC_IDS[codec] in stored and stored <= {CODEC_IDS[codec], 0}, (stored, LIBRDKAFKA_CODEC_HINT)

    out = kcat(broker, "-C", "-t", topic, "-o", "beginning", "-e", "-J").stdout.decode()
    msgs = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert len(msgs) == COUNT
    assert {m["partition"] for m in msgs} == {0}, "auto-created topic should have 1 partition"
    assert [m["offset"] for m in msgs] == list(range(COUNT))
    for (k, v), m in zip(data, msgs):
        assert (m["key"], m["payload"]) == (k.decode(), v.decode())
        assert m["headers"] == [x for name, value in HEADERS for x in (name, value.decode())]
        assert t0 - 1000 <= m["ts"] <= t1 + 1000

    # The same stream through a -f format string.
    out = kcat(broker, "-C", "-t", topic, "-o", "beginning", "-e", "-f", "%o|%k|%s|%h\n").stdout
    rows = out.split(b"\n")[:-1]
    assert len(rows) == COUNT
    hdrs = ",".join(f"{n}={v.decode()}" for n, v in HEADERS).encode()
    for i, ((k, v), row) in enumerate(zip(data, rows)):
        assert row == b"%d|%s|%s|%s" % (i, k, v, hdrs)

    # And a librdkafka of today sees the same bytes.
    got = ck.consume(broker, topic, [0], expected=COUNT)
    assert [(r.key, r.value, r.headers) for r in got] == [(k, v, HEADERS) for k, v in data]


def test_consume_what_another_client_produced(broker):
    topic = topic_name("kcat-cross")
    ck.create_topic(broker, topic, partitions=1)
    base = int(time.time() * 1000) - 60_000
    recs = [Rec(0, b"k%d" % i, b"v%d" % i, (("i", b"%d" % i),), base + i) for i in range(2000)]
    ck.produce(broker, topic, recs, **{"compression.type": "zstd"})
    out = kcat(broker, "-C", "-t", topic, "-o", "beginning", "-e", "-J").stdout.decode()
    msgs = [json.loads(line) for line in out.splitlines() if line.strip()]
    got = [
        Rec(m["partition"], m["key"].encode(), m["payload"].encode(),
            tuple((m["headers"][j], m["headers"][j + 1].encode()) for j in range(0, len(m["headers"]), 2)),
            m["ts"])
        for m in msgs
    ]
    assert_same_records(recs, got)

    # -o with a specific offset and a count.
    out = kcat(broker, "-C", "-t", topic, "-p", "0", "-o", "1500", "-c", "10", "-f", "%o %k\n").stdout
    assert out.decode().splitlines() == [f"{o} k{o}" for o in range(1500, 1510)]
