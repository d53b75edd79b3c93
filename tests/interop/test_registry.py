"""The Schema Registry served by `strom serve`, used by confluent-kafka's own
SchemaRegistryClient and AvroSerializer/AvroDeserializer unchanged: records round-trip
through Strom's broker with schemas registered in Strom's registry, the REST calls
clients make most answer as Confluent's do, and the registry's state comes back from
the `_schemas` topic after a SIGKILL."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

from conftest import Broker, free_port

USER_V1 = json.dumps({
    "type": "record", "name": "User", "namespace": "strom.test",
    "fields": [{"name": "name", "type": "string"}, {"name": "age", "type": "int"}],
})
USER_V2 = json.dumps({
    "type": "record", "name": "User", "namespace": "strom.test",
    "fields": [{"name": "name", "type": "string"}, {"name": "age", "type": "int"},
               {"name": "email", "type": ["null", "string"], "default": None}],
})
USER_BREAKING = json.dumps({
    "type": "record", "name": "User", "namespace": "strom.test",
    "fields": [{"name": "name", "type": "string"}, {"name": "team", "type": "string"}],
})


@pytest.fixture
def registry(tmp_path, request):
    port = free_port()
    broker = Broker(tmp_path / "data", {"schema.registry.listeners": f"http://127.0.0.1:{port}"})
    request.node._strom_brokers = [broker]
    broker.start()
    broker.registry_url = f"http://127.0.0.1:{port}"
    yield broker
    if broker.alive():
        broker.stop()


def http(url: str, method: str = "GET", body: object | None = None) -> tuple[int, object]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/vnd.schemaregistry.v1+json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.headers["Content-Type"] == "application/vnd.schemaregistry.v1+json"
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_avro_records_round_trip_through_the_registry_and_the_broker(registry):
    client = SchemaRegistryClient({"url": registry.registry_url})
    serializer = AvroSerializer(client, USER_V1)
    deserializer = AvroDeserializer(client)
    topic = "users"
    producer = Producer({"bootstrap.servers": registry.bootstrap})
    users = [{"name": f"user-{i}", "age": 20 + i} for i in range(10)]
    for user in users:
        value = serializer(user, SerializationContext(topic, MessageField.VALUE))
        assert value[0] == 0 and int.from_bytes(value[1:5], "big") >= 1, "Confluent's wire format"
        producer.produce(topic, value=value)
    assert producer.flush(30) == 0
    # Auto-registration made the subject and its first version.
    assert client.get_subjects() == [f"{topic}-value"]
    latest = client.get_latest_version(f"{topic}-value")
    assert latest.version == 1 and latest.schema.schema_type == "AVRO"
    consumer = Consumer({"bootstrap.servers": registry.bootstrap, "group.id": "readers",
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    read = []
    deadline = time.monotonic() + 30
    try:
        while len(read) < len(users) and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                read.append(deserializer(msg.value(), SerializationContext(topic, MessageField.VALUE)))
    finally:
        consumer.close()
    assert read == users


def test_compatibility_is_enforced_and_explained(registry):
    client = SchemaRegistryClient({"url": registry.registry_url})
    subject = "people-value"
    first = client.register_schema(subject, Schema(USER_V1, "AVRO"))
    second = client.register_schema(subject, Schema(USER_V2, "AVRO"))
    assert second != first
    assert client.register_schema(subject, Schema(USER_V2, "AVRO")) == second, "registered already"
    assert client.test_compatibility(subject, Schema(USER_BREAKING, "AVRO")) is False
    with pytest.raises(SchemaRegistryError) as refused:
        client.register_schema(subject, Schema(USER_BREAKING, "AVRO"))
    assert refused.value.http_status_code == 409
    assert "READER_FIELD_MISSING_DEFAULT_VALUE" in refused.value.error_message
    assert client.get_versions(subject) == [1, 2]
    found = client.lookup_schema(subject, Schema(USER_V1, "AVRO"))
    assert (found.version, found.schema_id) == (1, first)
    assert client.set_compatibility(subject, "NONE")["compatibility"] == "NONE"
    assert client.get_compatibility(subject) == "NONE"
    assert client.register_schema(subject, Schema(USER_BREAKING, "AVRO")) > second
    # Deletes: soft first, then for good.
    assert client.delete_version(subject, 3) == 3
    assert client.get_versions(subject) == [1, 2]
    with pytest.raises(SchemaRegistryError) as missing:
        client.get_version(subject, 3)
    assert missing.value.error_code == 40402
    assert client.delete_subject(subject) == [1, 2]
    assert client.get_subjects() == []
    assert sorted(client.delete_subject(subject, permanent=True)) == [1, 2, 3]


def test_the_rest_errors_are_confluents(registry):
    url = registry.registry_url
    assert http(f"{url}/subjects/none/versions") == (404, {"error_code": 40401, "message": "Subject 'none' not found."})
    assert http(f"{url}/schemas/ids/77")[1]["error_code"] == 40403
    assert http(f"{url}/subjects/s/versions", "POST", {"schema": "{not json"})[1]["error_code"] == 42201
    assert http(f"{url}/subjects/s/versions/zero")[1]["error_code"] == 42202
    assert http(f"{url}/config", "PUT", {"compatibility": "SIDEWAYS"})[1]["error_code"] == 42203
    assert http(f"{url}/mode", "PUT", {"mode": "SIDEWAYS"})[1]["error_code"] == 42204
    assert http(f"{url}/config/s")[1]["error_code"] == 40408
    assert http(f"{url}/config") == (200, {"compatibilityLevel": "BACKWARD"})
    assert http(f"{url}/schemas/types") == (200, ["AVRO"])


def test_the_registry_comes_back_from_schemas_after_a_kill(registry):
    client = SchemaRegistryClient({"url": registry.registry_url})
    first = client.register_schema("a-value", Schema(USER_V1, "AVRO"))
    client.register_schema("a-value", Schema(USER_V2, "AVRO"))
    client.register_schema("b-value", Schema(USER_V1, "AVRO"))
    client.set_compatibility("b-value", "FULL")
    client.delete_version("a-value", 2)
    registry.kill()
    registry.start()
    fresh = SchemaRegistryClient({"url": registry.registry_url})
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if fresh.get_subjects() == ["a-value", "b-value"]:
                break
        except Exception:  # noqa: BLE001 - the registry is still reading _schemas
            pass
        time.sleep(0.2)
    assert fresh.get_subjects() == ["a-value", "b-value"]
    assert fresh.get_versions("a-value") == [1], "the soft delete came back too"
    assert http(f"{registry.registry_url}/subjects/a-value/versions?deleted=true")[1] == [1, 2]
    assert json.loads(fresh.get_schema(first).schema_str) == json.loads(USER_V1)
    assert fresh.get_compatibility("b-value") == "FULL"
    assert fresh.register_schema("c-value", Schema(USER_BREAKING, "AVRO")) == 3, "ids go on from the log"


def test_the_cli_registers_checks_lists_and_deletes(registry, tmp_path):
    from conftest import strom_bin
    import subprocess

    def strom(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(strom_bin()), "schema", "--registry", registry.registry_url, *args],
                              capture_output=True, text=True, timeout=30)

    v1, breaking = tmp_path / "v1.avsc", tmp_path / "breaking.avsc"
    v1.write_text(USER_V1)
    breaking.write_text(USER_BREAKING)
    registered = strom("register", "cli-value", str(v1))
    assert registered.returncode == 0 and registered.stdout.strip() == "1", registered.stderr
    assert strom("list").stdout.split() == ["cli-value"]
    got = json.loads(subprocess.run([str(strom_bin()), "--output", "json", "schema", "--registry",
                                     registry.registry_url, "get", "cli-value"],
                                    capture_output=True, text=True, timeout=30).stdout)
    assert (got["version"], got["id"]) == (1, 1)
    check = strom("check", "cli-value", str(breaking))
    assert check.returncode == 1 and "READER_FIELD_MISSING_DEFAULT_VALUE" in check.stdout, check
    assert strom("config", "cli-value", "--set", "NONE").stdout.strip() == "NONE"
    assert strom("check", "cli-value", str(breaking)).returncode == 0
    assert strom("delete", "cli-value").stdout.strip() == "deleted [1]"
    missing = strom("get", "cli-value")
    assert missing.returncode == 1 and "40401" in missing.stderr, missing.stderr


def test_the_broker_refuses_records_without_a_registered_schema(registry):
    """confluent.value.schema.validation: a record without the magic byte, with an id
    the registry does not know, or with the id of another subject's schema is refused
    with INVALID_RECORD and not stored; a valid producer on the same topic goes on."""
    from confluent_kafka import KafkaError
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": registry.bootstrap})
    configs = {
        "validated": {"confluent.value.schema.validation": "true"},
        "by-record": {"confluent.value.schema.validation": "true",
                      "confluent.value.subject.name.strategy": "io.confluent.kafka.serializers.subject.RecordNameStrategy"},
    }
    for future in admin.create_topics([NewTopic(t, 1, 1, config=c) for t, c in configs.items()]).values():
        future.result(timeout=30)
    client = SchemaRegistryClient({"url": registry.registry_url})
    other_id = client.register_schema("elsewhere-value", Schema(json.dumps({"type": "string"}), "AVRO"))
    serializer = AvroSerializer(client, USER_V1)
    good = serializer({"name": "ok", "age": 1}, SerializationContext("validated", MessageField.VALUE))
    results: dict[str, object] = {}
    producer = Producer({"bootstrap.servers": registry.bootstrap, "enable.idempotence": False,
                         "batch.num.messages": 1, "retries": 0})
    cases = {
        "good": good,
        "no-magic": b"plain text",
        "unknown-id": b"\x00\x00\x00\x03\xe7" + good[5:],
        "other-subject": b"\x00" + other_id.to_bytes(4, "big") + b"\x04ok",
    }
    for name, value in cases.items():
        producer.produce("validated", value=value, on_delivery=lambda err, msg, n=name: results.__setitem__(n, err))
        producer.flush(30)
    assert results["good"] is None
    for name in ("no-magic", "unknown-id", "other-subject"):
        assert results[name] is not None and results[name].code() == KafkaError.INVALID_RECORD, (name, results[name])
    # RecordNameStrategy: the subject is the record's full name.
    by_record = AvroSerializer(client, USER_V1, conf={
        "subject.name.strategy": lambda ctx, record_name: record_name})
    value = by_record({"name": "r", "age": 2}, SerializationContext("by-record", MessageField.VALUE))
    producer.produce("by-record", value=value, on_delivery=lambda err, msg: results.__setitem__("by-record", err))
    producer.produce("by-record", value=cases["other-subject"],
                     on_delivery=lambda err, msg: results.__setitem__("no-record", err))
    producer.flush(30)
    assert results["by-record"] is None
    assert results["no-record"] is not None, "a string schema names no record type"
    consumer = Consumer({"bootstrap.servers": registry.bootstrap, "group.id": "check",
                         "auto.offset.reset": "earliest"})
    consumer.subscribe(["validated"])
    stored = []
    deadline = time.monotonic() + 10
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                stored.append(msg.value())
    finally:
        consumer.close()
    assert stored == [good], "only the valid record was stored"
