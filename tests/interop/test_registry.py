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
    assert http(f"{url}/schemas/types") == (200, ["JSON", "PROTOBUF", "AVRO"])


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


ORDER_JSON = json.dumps({
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "Order", "type": "object",
    "properties": {"id": {"type": "integer"}, "item": {"type": "string"}},
    "required": ["id"],
})


def read_values(bootstrap: str, topic: str, count: int, timeout: float = 30.0) -> list[bytes]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"read-{topic}",
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    values: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while len(values) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                values.append(msg.value())
    finally:
        consumer.close()
    return values


def test_json_schema_records_round_trip_with_validation_on(registry):
    """JSONSerializer/JSONDeserializer unchanged, on a topic the broker validates; an
    incompatible change (a new required property) is refused with Confluent's 409."""
    from confluent_kafka.admin import AdminClient, NewTopic
    from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer

    admin = AdminClient({"bootstrap.servers": registry.bootstrap})
    config = {"confluent.value.schema.validation": "true"}
    admin.create_topics([NewTopic("orders", 1, 1, config=config)])["orders"].result(timeout=30)
    client = SchemaRegistryClient({"url": registry.registry_url})
    serializer = JSONSerializer(ORDER_JSON, client)
    deserializer = JSONDeserializer(ORDER_JSON, schema_registry_client=client)
    orders = [{"id": i, "item": f"thing-{i}"} for i in range(5)]
    producer = Producer({"bootstrap.servers": registry.bootstrap})
    for order in orders:
        producer.produce("orders", value=serializer(order, SerializationContext("orders", MessageField.VALUE)))
    assert producer.flush(30) == 0
    latest = client.get_latest_version("orders-value")
    assert latest.schema.schema_type == "JSON"
    read = [deserializer(v, SerializationContext("orders", MessageField.VALUE))
            for v in read_values(registry.bootstrap, "orders", len(orders))]
    assert read == orders
    assert sorted(client.get_subjects()) == ["orders-value"]
    breaking = json.loads(ORDER_JSON)
    breaking["properties"]["price"] = {"type": "number"}
    breaking["required"] = ["id", "price"]
    status, body = http(f"{registry.registry_url}/compatibility/subjects/orders-value/versions/latest?verbose=true",
                        "POST", {"schema": json.dumps(breaking), "schemaType": "JSON"})
    assert status == 200 and body["is_compatible"] is False, body
    assert any("REQUIRED" in m or "PROPERTY" in m for m in body["messages"]), body
    with pytest.raises(SchemaRegistryError) as refused:
        client.register_schema("orders-value", Schema(json.dumps(breaking), "JSON"))
    assert refused.value.http_status_code == 409
    # A reference by URL: the referencing schema resolves it, and a bad one is 42201.
    client.register_schema("item", Schema(json.dumps({"type": "string", "maxLength": 40}), "JSON"))
    with_ref = {"type": "object", "properties": {"item": {"$ref": "item.json"}}}
    from confluent_kafka.schema_registry import SchemaReference
    sid = client.register_schema("refs-value", Schema(json.dumps(with_ref), "JSON",
                                                      [SchemaReference("item.json", "item", 1)]))
    assert client.get_schema(sid).references[0].name == "item.json"
    status, body = http(f"{registry.registry_url}/subjects/bad-ref/versions", "POST",
                        {"schema": json.dumps({"$ref": "missing.json"}), "schemaType": "JSON"})
    assert (status, body["error_code"]) == (422, 42201), body


def _protobuf_classes():
    """Message classes built from descriptors (no protoc): `shop/item.proto` with Item,
    imported by `shop/order.proto` with Order { id, Item item, Timestamp at }."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, timestamp_pb2

    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(timestamp_pb2.DESCRIPTOR.serialized_pb)
    item = descriptor_pb2.FileDescriptorProto(name="shop/item.proto", package="shop", syntax="proto3")
    msg = item.message_type.add(name="Item")
    msg.field.add(name="sku", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
                  label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    order = descriptor_pb2.FileDescriptorProto(name="shop/order.proto", package="shop", syntax="proto3",
                                               dependency=["shop/item.proto", "google/protobuf/timestamp.proto"])
    msg = order.message_type.add(name="Order")
    msg.field.add(name="id", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_INT64,
                  label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    msg.field.add(name="item", number=2, type=descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE,
                  type_name=".shop.Item", label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    msg.field.add(name="at", number=3, type=descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE,
                  type_name=".google.protobuf.Timestamp", label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    pool.Add(item)
    pool.Add(order)
    return (message_factory.GetMessageClass(pool.FindMessageTypeByName("shop.Order")),
            message_factory.GetMessageClass(pool.FindMessageTypeByName("shop.Item")))


def test_protobuf_records_round_trip_with_a_reference(registry):
    """ProtobufSerializer registers the imported file as its own subject and the
    schema with a reference to it (both as base64 descriptors, as confluent-kafka does);
    ProtobufDeserializer reads them back with format=serialized. Validation by record
    name reads the message indexes."""
    from confluent_kafka.admin import AdminClient, NewTopic
    from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer

    Order, Item = _protobuf_classes()
    admin = AdminClient({"bootstrap.servers": registry.bootstrap})
    config = {"confluent.value.schema.validation": "true",
              "confluent.value.subject.name.strategy": "io.confluent.kafka.serializers.subject.RecordNameStrategy"}
    admin.create_topics([NewTopic("shop", 1, 1, config=config)])["shop"].result(timeout=30)
    client = SchemaRegistryClient({"url": registry.registry_url})
    serializer = ProtobufSerializer(Order, client, {"subject.name.strategy": lambda ctx, name: name})
    deserializer = ProtobufDeserializer(Order, {"use.deprecated.format": False})
    orders = []
    for i in range(5):
        order = Order(id=i, item=Item(sku=f"sku-{i}"))
        order.at.seconds = 1_700_000_000 + i
        orders.append(order)
    producer = Producer({"bootstrap.servers": registry.bootstrap})
    for order in orders:
        producer.produce("shop", value=serializer(order, SerializationContext("shop", MessageField.VALUE)))
    assert producer.flush(30) == 0
    assert sorted(client.get_subjects()) == ["shop.Order", "shop/item.proto"]
    latest = client.get_latest_version("shop.Order")
    assert latest.schema.schema_type == "PROTOBUF"
    assert [(r.name, r.subject) for r in latest.schema.references] == [("shop/item.proto", "shop/item.proto")]
    assert "message Order" in latest.schema.schema_str, "stored as .proto text"
    read = [deserializer(v, SerializationContext("shop", MessageField.VALUE))
            for v in read_values(registry.bootstrap, "shop", len(orders))]
    assert read == orders
    # The same schema written as .proto text is the same id.
    status, body = http(f"{registry.registry_url}/subjects/shop.Order", "POST",
                        {"schema": latest.schema.schema_str, "schemaType": "PROTOBUF",
                         "references": [{"name": "shop/item.proto", "subject": "shop/item.proto", "version": 1}]})
    assert status == 200 and body["id"] == latest.schema_id, body
    # Changing a field's type is refused (FIELD_SCALAR_KIND_CHANGED).
    breaking = latest.schema.schema_str.replace("int64 id = 1", "string id = 1")
    assert breaking != latest.schema.schema_str
    status, body = http(f"{registry.registry_url}/subjects/shop.Order/versions", "POST",
                        {"schema": breaking, "schemaType": "PROTOBUF",
                         "references": [{"name": "shop/item.proto", "subject": "shop/item.proto", "version": 1}]})
    assert status == 409, body


def test_decode_mode_refuses_payloads_that_do_not_decode(registry):
    """strom.value.schema.validation.decode: a registered id is not enough, the payload
    must decode with its schema (Avro binary, JSON against the JSON Schema); a valid
    record passes, a bad one gets INVALID_RECORD and is not stored."""
    from confluent_kafka import KafkaError
    from confluent_kafka.admin import AdminClient, NewTopic
    from confluent_kafka.schema_registry.json_schema import JSONSerializer

    admin = AdminClient({"bootstrap.servers": registry.bootstrap})
    strict = {"confluent.value.schema.validation": "true", "strom.value.schema.validation.decode": "true"}
    for future in admin.create_topics([NewTopic(t, 1, 1, config=strict) for t in ("strict-avro", "strict-json")]).values():
        future.result(timeout=30)
    client = SchemaRegistryClient({"url": registry.registry_url})
    avro = AvroSerializer(client, USER_V1)(
        {"name": "ok", "age": 1}, SerializationContext("strict-avro", MessageField.VALUE))
    order = JSONSerializer(ORDER_JSON, client)(
        {"id": 1, "item": "x"}, SerializationContext("strict-json", MessageField.VALUE))
    cases = {
        ("strict-avro", "good"): avro,
        ("strict-avro", "truncated"): avro[:-2],
        ("strict-avro", "trailing"): avro + b"\x00",
        ("strict-json", "good"): order,
        ("strict-json", "not-json"): order[:5] + b"{not json",
        ("strict-json", "wrong-type"): order[:5] + json.dumps({"id": "one"}).encode(),
    }
    results: dict[tuple[str, str], object] = {}
    producer = Producer({"bootstrap.servers": registry.bootstrap, "enable.idempotence": False,
                         "batch.num.messages": 1, "retries": 0})
    for (topic, name), value in cases.items():
        producer.produce(topic, value=value, on_delivery=lambda err, msg, k=(topic, name): results.__setitem__(k, err))
        producer.flush(30)
    for key in cases:
        if key[1] == "good":
            assert results[key] is None, key
        else:
            assert results[key] is not None and results[key].code() == KafkaError.INVALID_RECORD, (key, results[key])
    assert read_values(registry.bootstrap, "strict-avro", 2, timeout=10) == [avro]
    assert read_values(registry.bootstrap, "strict-json", 2, timeout=10) == [order]
