"""Requests sent back-to-back on one connection are answered in order."""

from __future__ import annotations

import kafka_wire as w

COUNT = 50


def test_pipelined_requests_answered_in_order(broker):
    with w.Conn(broker.port) as c:
        data = b""
        for i in range(COUNT):
            cid = 1000 + i
            if i % 2 == 0:
                data += w.request(w.API_API_VERSIONS, 0, cid)
            else:
                # Metadata v1 with an empty topic list: brokers only.
                data += w.request(w.API_METADATA, 1, cid, w.i32(0))
        c.send(data)
        got = [c.recv_frame()[0] for _ in range(COUNT)]
    assert got == [1000 + i for i in range(COUNT)]


def test_pipelined_produce_and_metadata(broker):
    """Interleaved produce and metadata requests keep their order too."""
    import ck_util as ck
    from records import topic_name

    topic = topic_name("pipeline")
    ck.create_topic(broker, topic, partitions=1)
    with w.Conn(broker.port) as c:
        data = b""
        for i in range(COUNT):
            if i % 2 == 0:
                batch = w.record_batch([(b"k%d" % i, b"v%d" % i)])
                data += w.produce_request(topic, 0, batch, version=8, correlation_id=i)
            else:
                data += w.request(w.API_METADATA, 1, i, w.i32(0))
        c.send(data)
        frames = [c.recv_frame() for _ in range(COUNT)]
    assert [cid for cid, _ in frames] == list(range(COUNT))
    offsets = []
    for cid, body in frames[::2]:
        [(_, _, error, base)] = w.parse_produce_response(body, 8)
        assert error == 0
        offsets.append(base)
    assert offsets == list(range(COUNT // 2))


def test_acks_zero_produce_gets_no_response(broker):
    """Produce with acks=0 is answered with nothing; the requests around it
    still get their responses, in order, and the records are stored."""
    import ck_util as ck
    from records import topic_name

    topic = topic_name("pipeline-acks0")
    ck.create_topic(broker, topic, partitions=1)
    with w.Conn(broker.port) as c:
        data = b""
        for i in range(20):
            if i % 2 == 0:
                data += w.request(w.API_METADATA, 1, i, w.i32(0))
            else:
                batch = w.record_batch([(b"k%d" % i, b"v%d" % i)])
                body = w.produce_body(topic, 0, batch, version=8, acks=0)
                data += w.request(w.API_PRODUCE, 8, i, body)
        c.send(data)
        got = [c.recv_frame()[0] for _ in range(10)]
    assert got == list(range(0, 20, 2))
    records = ck.consume(broker, topic, [0], expected=10)
    assert [r.key for r in records] == [b"k%d" % i for i in range(1, 20, 2)]
