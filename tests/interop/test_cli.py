"""The `strom` command line against the broker, cross-checked with librdkafka:
records produced by `strom produce` are read unchanged by confluent-kafka and the
other way round; keyed records land where librdkafka's murmur2 partitioner puts them;
every subcommand's success and error paths."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import threading
import time

from confluent_kafka import Producer, TopicPartition

import ck_util as ck
from conftest import strom_bin
from records import topic_name


def strom(broker, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "STROM_BROKERS": broker.bootstrap}
    out = subprocess.run([str(strom_bin()), *args], input=stdin, capture_output=True, text=True, timeout=120,
                         env=env, check=False)
    if check:
        assert out.returncode == 0, f"strom {' '.join(args)} failed: {out.stderr}"
    return out


def test_topic_lifecycle(broker):
    topic = topic_name("cli-topic")
    strom(broker, "topic", "create", topic, "-p", "3", "-c", "retention.ms=60000")
    listed = json.loads(strom(broker, "topic", "list", "--output", "json").stdout)
    assert {"name": topic, "partitions": 3, "internal": False} in listed
    described = json.loads(strom(broker, "topic", "describe", topic, "--output", "json").stdout)
    assert [p["partition"] for p in described["partitions"]] == [0, 1, 2]
    assert described["configs"]["retention.ms"] == {"value": "60000", "default": False}
    strom(broker, "topic", "alter-config", topic, "--set", "retention.ms=1000", "--set", "segment.ms=3600000")
    described = json.loads(strom(broker, "topic", "describe", topic, "--output", "json").stdout)
    assert described["configs"]["retention.ms"]["value"] == "1000"
    strom(broker, "topic", "alter-config", topic, "--delete", "retention.ms")
    described = json.loads(strom(broker, "topic", "describe", topic, "--output", "json").stdout)
    assert described["configs"]["retention.ms"] == {"value": "604800000", "default": True}
    strom(broker, "topic", "add-partitions", topic, "--count", "5")
    md = ck.admin(broker).list_topics(topic=topic, timeout=10)
    assert sorted(md.topics[topic].partitions) == [0, 1, 2, 3, 4]
    shrink = strom(broker, "topic", "add-partitions", topic, "--count", "2", check=False)
    assert shrink.returncode != 0 and "INVALID_PARTITIONS" in shrink.stderr
    again = strom(broker, "topic", "create", topic, check=False)
    assert again.returncode != 0 and "TOPIC_ALREADY_EXISTS" in again.stderr
    strom(broker, "topic", "delete", topic)
    assert topic not in ck.admin(broker).list_topics(timeout=10).topics


def test_produce_is_read_by_librdkafka(broker):
    topic = topic_name("cli-produce")
    strom(broker, "topic", "create", topic, "-p", "1")
    lines = "".join(f"k{i}|value {i}\n" for i in range(2000))
    out = strom(broker, "produce", topic, "--key-separator", "|", "--header", "origin=cli", "--compression", "lz4",
                "--output", "json", stdin=lines)
    assert json.loads(out.stdout) == {"topic": topic, "records": 2000}
    got = ck.consume(broker, topic, [0], expected=2000)
    assert [(r.key, r.value) for r in got] == [(b"k%d" % i, b"value %d" % i) for i in range(2000)]
    assert all(r.headers == (("origin", b"cli"),) for r in got)


def test_consume_reads_librdkafka_records(broker):
    topic = topic_name("cli-consume")
    ck.create_topic(broker, topic, partitions=2)
    p = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(50):
        p.produce(topic, key=b"k%d" % i, value=b"v%d" % i, partition=i % 2, headers=[("h", b"x")], timestamp=1_700_000_000_000 + i)
    assert p.flush(30) == 0
    out = strom(broker, "consume", topic, "--output", "json")
    records = [json.loads(line) for line in out.stdout.splitlines()]  # one JSON line per record
    assert sorted((r["key"], r["value"]) for r in records) == sorted((f"k{i}", f"v{i}") for i in range(50))
    assert all(r["headers"] == {"h": "x"} for r in records)
    table = strom(broker, "consume", topic, "--partition", "1", "--from", "offset:20", "--format", "{offset}:{key}:{timestamp}")
    assert table.stdout.splitlines() == [f"{o}:k{2 * o + 1}:{1_700_000_000_000 + 2 * o + 1}" for o in range(20, 25)]
    by_time = strom(broker, "consume", topic, "--partition", "0", "--from", "timestamp:1700000000040", "--count", "1",
                    "--format", "{key}")
    assert by_time.stdout.strip() == "k40"
    counted = strom(broker, "consume", topic, "--count", "7")
    assert len(counted.stdout.splitlines()) == 7


def test_keyed_records_land_where_librdkafka_murmur2_puts_them(broker):
    ours, theirs = topic_name("cli-murmur-a"), topic_name("cli-murmur-b")
    for t in (ours, theirs):
        ck.create_topic(broker, t, partitions=6)
    keys = [f"user-{i}" for i in range(300)]
    strom(broker, "produce", ours, "--key-separator", "|", stdin="".join(f"{k}|x\n" for k in keys))
    p = Producer({"bootstrap.servers": broker.bootstrap, "partitioner": "murmur2_random"})
    for k in keys:
        p.produce(theirs, key=k.encode(), value=b"x")
    assert p.flush(30) == 0

    def placement(topic):
        c = ck.consumer(broker)
        c.assign([TopicPartition(topic, part, 0) for part in range(6)])
        seen, eof = {}, set()
        while len(eof) < 6:
            m = c.poll(5)
            assert m is not None
            if m.error():
                eof.add(m.partition())
                continue
            seen[m.key()] = m.partition()
        c.close()
        return seen

    assert placement(ours) == placement(theirs)


def test_groups_and_error_messages(broker):
    topic = topic_name("cli-groups")
    ck.create_topic(broker, topic, partitions=1)
    c = ck.consumer(broker, **{"group.id": "cli-group"})
    c.commit(offsets=[TopicPartition(topic, 0, 0)], asynchronous=False)
    c.close()
    groups = json.loads(strom(broker, "group", "list", "--output", "json").stdout)
    assert any(g["group"] == "cli-group" for g in groups)
    described = json.loads(strom(broker, "group", "describe", "cli-group", "--output", "json").stdout)
    assert described["state"] == "Empty" and described["members"] == []
    missing = strom(broker, "consume", "no-such-topic", check=False)
    assert missing.returncode != 0 and "strom topic create no-such-topic" in missing.stderr
    assert "Traceback" not in missing.stderr and "panicked" not in missing.stderr
    unreachable = subprocess.run([str(strom_bin()), "--brokers", "127.0.0.1:1", "topic", "list"],
                                 capture_output=True, text=True, timeout=60, check=False)
    assert unreachable.returncode != 0 and "is `strom serve` running?" in unreachable.stderr
    bad = strom(broker, "consume", topic, "--from", "yesterday", check=False)
    assert bad.returncode != 0 and "--from expects" in bad.stderr


def test_group_commands_and_a_mixed_group(broker_factory):
    broker = broker_factory(**{"group.initial.rebalance.delay.ms": "0", "offsets.topic.num.partitions": "3"})
    topic = topic_name("cli-mixed")
    ck.create_topic(broker, topic, partitions=4)
    p = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(400):
        p.produce(topic, key=b"k%d" % i, value=b"v%d" % i, partition=i % 4)
    assert p.flush(30) == 0

    # A strom-client member and a librdkafka member share one group.
    from confluent_kafka import Consumer
    import subprocess as sp
    import time

    env = {**os.environ, "STROM_BROKERS": broker.bootstrap}
    ours = sp.Popen([str(strom_bin()), "consume", topic, "--group", "mixed", "--follow", "--format", "{partition}"],
                    stdout=sp.PIPE, text=True, env=env)
    theirs = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "mixed", "auto.offset.reset": "earliest",
                       "enable.auto.commit": False})
    theirs.subscribe([topic])
    try:
        deadline = time.time() + 60
        members: list = []
        while time.time() < deadline:
            out = strom(broker, "group", "describe", "mixed", "--output", "json", check=False)
            theirs.poll(0.5)
            if out.returncode != 0:  # not created yet
                continue
            described = json.loads(out.stdout)
            members = described["members"]
            if len(members) == 2 and described["state"] == "Stable" and len(theirs.assignment()) == 2:
                break
        assert len(members) == 2, members
        # Which member owns which partitions: two each, all four owned.
        owned = [(a["topic"], a["partition"]) for m in members for a in m["assignment"]]
        assert sorted(owned) == [(topic, i) for i in range(4)], members
        assert all(len(m["assignment"]) == 2 for m in members), members
        their_partitions = {tp.partition for tp in theirs.assignment()}
        assert len(their_partitions) == 2
        settle = time.time() + 4  # let our member read its share
        while time.time() < settle:
            theirs.poll(0.2)
    finally:
        theirs.close()
        ours.terminate()
        out, _ = ours.communicate(timeout=30)
    our_partitions = {int(line) for line in out.split()}
    assert our_partitions and not (our_partitions & their_partitions), (our_partitions, their_partitions)
    assert our_partitions | their_partitions == {0, 1, 2, 3}

    # Reset the (now memberless) group, then delete it.
    deadline = time.time() + 60
    while json.loads(strom(broker, "group", "describe", "mixed", "--output", "json").stdout)["members"]:
        assert time.time() < deadline, "the members did not leave"
        time.sleep(1)
    plan = json.loads(strom(broker, "group", "reset-offsets", "mixed", "--topic", topic, "--to", "offset:7",
                            "--execute", "--output", "json").stdout)
    assert plan["executed"] and {o["offset"] for o in plan["offsets"]} == {7}
    described = json.loads(strom(broker, "group", "describe", "mixed", "--output", "json").stdout)
    assert {(o["partition"], o["committed"], o["lag"]) for o in described["offsets"]} == {(i, 7, 93) for i in range(4)}
    strom(broker, "group", "delete", "mixed")
    gone = strom(broker, "group", "describe", "mixed", check=False)
    assert gone.returncode != 0 and "GROUP_ID_NOT_FOUND" in gone.stderr


def test_bench_runs_reports_and_asserts(broker, tmp_path):
    report = tmp_path / "report"
    ok = strom(broker, "bench", "e2e", "--records", "3000", "--rate", "3000", "--message-size", "200",
               "--report", str(report), "--json", str(tmp_path / "result.json"), "--no-progress",
               "--assert", "records>=3000", "--assert", "errors==0")
    assert "assertion ok" in ok.stdout + ok.stderr
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["summary"]["records"] == 3000
    assert "<svg" in (report / "report.html").read_text()
    # The topic the run created is deleted with its records; --keep-topic keeps it.
    listed = json.loads(strom(broker, "topic", "list", "--output", "json").stdout)
    assert "strom-bench" not in [t["name"] for t in listed]
    kept = topic_name("bench-kept")
    strom(broker, "bench", "produce", "--records", "200", "--no-progress", "--topic", kept, "--keep-topic")
    listed = json.loads(strom(broker, "topic", "list", "--output", "json").stdout)
    assert kept in [t["name"] for t in listed]
    failed = strom(broker, "bench", "produce", "--records", "500", "--no-progress", "--assert", "throughput_rps<0",
                   check=False)
    assert failed.returncode != 0 and "assertion FAILED" in failed.stdout + failed.stderr
    # `--records` sets the consume preset's prefill; `--output json` prints the result.
    consumed = strom(broker, "--output", "json", "bench", "consume", "--records", "700", "--topic",
                     topic_name("bench-consume"), "--no-progress")
    summary = json.loads(consumed.stdout)["summary"]
    assert summary["consumed_records"] == 700


def test_produce_json_records_from_a_file(broker, tmp_path):
    topic = topic_name("cli-json")
    strom(broker, "topic", "create", topic, "-p", "2")
    lines = [json.dumps({"key": f"k{i}", "value": {"n": i}, "headers": {"h": "v"}, "partition": i % 2})
             for i in range(10)]
    path = tmp_path / "records.jsonl"
    path.write_text("\n".join(lines) + "\n")
    strom(broker, "produce", topic, "--json", "--file", str(path), "--acks", "1", "--compression", "gzip")
    got = ck.consume(broker, topic, [0, 1], expected=10)
    assert sorted((r.key, r.value) for r in got) == sorted((b"k%d" % i, b'{"n":%d}' % i) for i in range(10))
    assert all(r.headers == (("h", b"v"),) for r in got)
    bad = strom(broker, "produce", topic, "--json", stdin="not json\n", check=False)
    assert bad.returncode != 0 and "not a JSON record" in bad.stderr
    missing = strom(broker, "produce", topic, "--file", str(tmp_path / "nope"), check=False)
    assert missing.returncode != 0 and "opening" in missing.stderr


# ---------------------------------------------------------------- the first hour with the CLI

def spawn(broker, *args: str, stdin=subprocess.DEVNULL) -> subprocess.Popen:
    env = {**os.environ, "STROM_BROKERS": broker.bootstrap}
    return subprocess.Popen([str(strom_bin()), *args], stdin=stdin, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def lines_of(stream) -> "queue.Queue[str | None]":
    """Lines of a pipe as they arrive (None at its end), read on a thread."""
    lines: queue.Queue = queue.Queue()

    def pump():
        for line in stream:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def values_in(broker, topic: str, timeout: float) -> list[bytes]:
    """The values of partition 0 that arrive within `timeout` seconds."""
    c = ck.consumer(broker, **{"enable.partition.eof": False, "auto.offset.reset": "earliest"})
    c.assign([TopicPartition(topic, 0, 0)])
    got, deadline = [], time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is not None and m.error() is None:
                got.append(m.value())
    finally:
        c.close()
    return got


def test_produce_sends_each_line_as_it_is_read(broker):
    topic = topic_name("cli-stream")
    strom(broker, "topic", "create", topic, "-p", "1")
    # `(echo a; sleep 6; echo b) | strom produce` and `tail -f x | strom produce`: the
    # first line arrives while the input is still open.
    proc = spawn(broker, "produce", topic, "--output", "json", stdin=subprocess.PIPE)
    try:
        proc.stdin.write("a\n")
        proc.stdin.flush()
        assert values_in(broker, topic, timeout=4) == [b"a"]
        out, err = proc.communicate(input="b\n", timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert json.loads(out) == {"topic": topic, "records": 2}
    # Ctrl-C ends the input: what was read is delivered and counted, then it exits cleanly.
    proc = spawn(broker, "produce", topic, "--output", "json", stdin=subprocess.PIPE)
    try:
        proc.stdin.write("c\nd\n")
        proc.stdin.flush()
        time.sleep(1.5)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert json.loads(out) == {"topic": topic, "records": 2}
    assert values_in(broker, topic, timeout=2) == [b"a", b"b", b"c", b"d"]


def test_produce_creates_a_missing_topic_when_the_broker_does(broker_factory):
    broker = broker_factory()
    topic = topic_name("cli-auto")
    out = strom(broker, "produce", topic, "--output", "json", stdin="x\ny\n")
    assert json.loads(out.stdout) == {"topic": topic, "records": 2}
    assert values_in(broker, topic, timeout=2) == [b"x", b"y"]
    strict = broker_factory(**{"auto.create.topics.enable": "false"})
    refused = strom(strict, "produce", topic, stdin="x\n", check=False)
    assert refused.returncode != 0 and f"strom topic create {topic}" in refused.stderr, refused.stderr


def test_consume_follow_json_streams_lines(broker):
    topic = topic_name("cli-follow")
    ck.create_topic(broker, topic, partitions=1)
    p = Producer({"bootstrap.servers": broker.bootstrap})
    p.produce(topic, key=b"k1", value=b"v1", headers=[("h", b"x")], timestamp=1_700_000_000_001)
    assert p.flush(30) == 0
    for extra in ([], ["--group", "cli-follow-group"]):
        proc = spawn(broker, "consume", topic, "--follow", "--output", "json", *extra)
        try:
            lines = lines_of(proc.stdout)
            first = json.loads(lines.get(timeout=20))
            assert first == {"topic": topic, "partition": 0, "offset": 0, "timestamp": 1_700_000_000_001,
                             "key": "k1", "value": "v1", "headers": {"h": "x"}}
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=30) == 0, proc.stderr.read()
        finally:
            proc.kill()


def test_a_closed_pipe_ends_consume_quietly(broker):
    topic = topic_name("cli-pipe")
    ck.create_topic(broker, topic, partitions=1)
    p = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(3000):
        p.produce(topic, value=b"%d " % i + b"x" * 200)
    assert p.flush(30) == 0
    for extra in ([], ["--group", "cli-pipe-group"], ["--output", "json"]):
        # `strom consume t | head -1`
        proc = spawn(broker, "consume", topic, *extra)
        assert proc.stdout.readline()
        proc.stdout.close()
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert "panicked" not in err and err.strip() == "", err


def test_a_closed_pipe_ends_bench_quietly(broker):
    # `strom --output json bench ... | true`: the reader is gone before the result is printed.
    proc = spawn(broker, "--output", "json", "bench", "produce", "--records", "300", "--no-progress")
    proc.stdout.close()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "panicked" not in err, err


def test_brokers_that_are_not_kafka_fail_within_seconds(tmp_path):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()  # the kernel accepts connections; nobody ever answers
    web = socket.socket()
    web.bind(("127.0.0.1", 0))
    web.listen()

    def answer_http():
        conn, _ = web.accept()
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        conn.close()

    threading.Thread(target=answer_http, daemon=True).start()
    cases = {
        f"127.0.0.1:{silent.getsockname()[1]}": "did not answer as a Kafka broker",
        f"127.0.0.1:{web.getsockname()[1]}": 'is not a Kafka broker: the answer starts with "HTTP"',
        "no-such-host.invalid:9092": "name lookup failed",
        "127.0.0.1": "has no port",
    }
    try:
        for address, expected in cases.items():
            started = time.monotonic()
            out = subprocess.run([str(strom_bin()), "--brokers", address, "topic", "list"], capture_output=True,
                                 text=True, timeout=60, check=False)
            took = time.monotonic() - started
            assert out.returncode != 0 and expected in out.stderr, (address, out.stderr)
            assert "strom serve" not in out.stderr, (address, out.stderr)
            assert took < 15, (address, took)
    finally:
        silent.close()
        web.close()


def test_consume_count_zero_offsets_past_the_end_and_format_errors(broker):
    topic = topic_name("cli-edges")
    ck.create_topic(broker, topic, partitions=1)
    p = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(5):
        p.produce(topic, value=b"v%d" % i)
    assert p.flush(30) == 0
    assert strom(broker, "consume", topic, "--count", "0").stdout == ""
    past = strom(broker, "consume", topic, "--from", "offset:50")
    assert past.stdout == "" and "ends at offset 5" in past.stderr and "offset 50" in past.stderr
    typo = strom(broker, "consume", topic, "--format", "{offset} {vlaue}", check=False)
    assert typo.returncode != 0 and "unknown placeholder {vlaue}" in typo.stderr, typo.stderr
    braces = strom(broker, "consume", topic, "--count", "1", "--format", "{{{value}}}")
    assert braces.stdout == "{v0}\n"
    # A group starts at its committed offsets: an offset would be silently ignored.
    grouped = strom(broker, "consume", topic, "--group", "g", "--from", "offset:3", check=False)
    assert grouped.returncode != 0 and "does not apply with --group" in grouped.stderr, grouped.stderr


def test_errors_say_what_happened_and_what_to_do(broker):
    topic = topic_name("cli-words")
    strom(broker, "topic", "create", topic, "-p", "1")
    missing_topic = strom(broker, "topic", "describe", "no-such-topic", check=False)
    assert "topic 'no-such-topic' not found" in missing_topic.stderr, missing_topic.stderr
    missing_group = strom(broker, "group", "delete", "no-such-group", check=False)
    assert "not found; list groups with `strom group list`" in missing_group.stderr, missing_group.stderr
    for out in (missing_topic, missing_group):
        assert out.returncode != 0
        assert "UnknownTopicOrPartition" not in out.stderr and "GroupIdNotFound" not in out.stderr
    no_partition = strom(broker, "produce", topic, "--partition", "7", stdin="x\n", check=False)
    assert f"topic '{topic}' has no partition 7" in no_partition.stderr, no_partition.stderr
    big = strom(broker, "produce", topic, stdin="x" * 2_000_000 + "\n", check=False)
    assert big.returncode != 0
    assert f"strom topic alter-config {topic} --set max.message.bytes=2097152" in big.stderr, big.stderr
    strom(broker, "topic", "alter-config", topic, "--set", "max.message.bytes=2097152")
    strom(broker, "produce", topic, stdin="x" * 2_000_000 + "\n")


def test_group_describe_shows_owners_of_a_kip848_group(broker_factory):
    broker = broker_factory(**{"group.initial.rebalance.delay.ms": "0"})
    topic = topic_name("cli-owners")
    strom(broker, "topic", "create", topic, "-p", "3")
    member = spawn(broker, "consume", topic, "--group", "owners", "--group-protocol", "consumer", "--follow")
    try:
        deadline, owned = time.time() + 30, []
        while time.time() < deadline and len(owned) < 3:
            out = strom(broker, "group", "describe", "owners", "--output", "json", check=False)
            if out.returncode == 0:
                described = json.loads(out.stdout)
                owned = [(a["topic"], a["partition"]) for m in described["members"] for a in m["assignment"]]
            time.sleep(0.3)
        assert sorted(owned) == [(topic, 0), (topic, 1), (topic, 2)], owned
        table = strom(broker, "group", "describe", "owners").stdout
        assert f"{topic}(0,1,2)" in table, table
    finally:
        member.send_signal(signal.SIGINT)
        member.wait(timeout=30)
