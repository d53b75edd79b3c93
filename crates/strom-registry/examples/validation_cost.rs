//! What broker-side validation costs per record, measured in one run: the id check
//! (`confluent.value.schema.validation`) against the id check plus decoding the payload
//! (`strom.value.schema.validation.decode`), for an Avro, a JSON Schema and a Protobuf
//! value of similar content. Prints records per second and the ratio.
//!
//! `cargo run --release -p strom-registry --example validation_cost [records]`

use std::sync::Arc;
use std::time::Instant;

use strom_broker::validation::{RecordPart, RecordValidator};
use strom_broker::{SchemaRule, SubjectStrategy};
use strom_registry::records::SchemaType;
use strom_registry::registry::NewSchema;
use strom_registry::{MemoryLog, Registry};

const AVRO: &str = r#"{"type":"record","name":"Order","namespace":"shop","fields":[
  {"name":"id","type":"long"},{"name":"item","type":"string"},{"name":"quantity","type":"int"},
  {"name":"price","type":"double"},{"name":"note","type":["null","string"],"default":null}]}"#;
const JSON: &str = r#"{"type":"object","title":"Order","properties":{
  "id":{"type":"integer"},"item":{"type":"string","maxLength":64},"quantity":{"type":"integer","minimum":1},
  "price":{"type":"number"},"note":{"type":["null","string"]}},"required":["id","item","quantity","price"]}"#;
const PROTOBUF: &str = r#"syntax = "proto3"; package shop;
message Order { int64 id = 1; string item = 2; int32 quantity = 3; double price = 4; optional string note = 5; }"#;

fn zigzag(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

fn varint(mut n: u64, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn framed(id: i32, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0];
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// The same order in each encoding: id 12345, "espresso beans", 3, 12.5, no note.
fn payloads() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let item = b"espresso beans";
    let mut avro = Vec::new();
    varint(zigzag(12345), &mut avro);
    varint(zigzag(item.len() as i64), &mut avro);
    avro.extend_from_slice(item);
    varint(zigzag(3), &mut avro);
    avro.extend_from_slice(&12.5f64.to_le_bytes());
    avro.push(0); // the null branch of the union
    let json = br#"{"id":12345,"item":"espresso beans","quantity":3,"price":12.5,"note":null}"#.to_vec();
    let mut protobuf = vec![0]; // message indexes [0]
    protobuf.push(0x08);
    varint(12345, &mut protobuf);
    protobuf.push(0x12);
    varint(item.len() as u64, &mut protobuf);
    protobuf.extend_from_slice(item);
    protobuf.push(0x18);
    varint(3, &mut protobuf);
    protobuf.push(0x21);
    protobuf.extend_from_slice(&12.5f64.to_le_bytes());
    (avro, json, protobuf)
}

fn rate(registry: &Registry, topic: &str, value: &[u8], decode: bool, records: usize) -> f64 {
    let rule = SchemaRule {
        strategy: SubjectStrategy::TopicName,
        decode,
    };
    assert_eq!(
        registry.check(topic, RecordPart::Value, rule, value),
        None,
        "{topic}: the sample is valid"
    );
    let started = Instant::now();
    for _ in 0..records {
        std::hint::black_box(registry.check(topic, RecordPart::Value, rule, std::hint::black_box(value)));
    }
    records as f64 / started.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let records: usize = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(200_000);
    let registry = Registry::start(Arc::new(MemoryLog::default()));
    let (avro, json, protobuf) = payloads();
    let mut samples = Vec::new();
    for (topic, schema_type, text, payload) in [
        ("avro", SchemaType::Avro, AVRO, avro),
        ("json", SchemaType::Json, JSON, json),
        ("protobuf", SchemaType::Protobuf, PROTOBUF, protobuf),
    ] {
        let schema = NewSchema {
            schema_type,
            schema: text.to_string(),
            references: Vec::new(),
        };
        let (id, _) = registry
            .register(&format!("{topic}-value"), schema)
            .await
            .expect("the schema registers");
        samples.push((topic, framed(id, &payload)));
    }
    println!("{records} records per measurement, one thread");
    println!(
        "{:<10} {:>16} {:>18} {:>8}",
        "type", "id check rec/s", "id + decode rec/s", "ratio"
    );
    for (topic, value) in &samples {
        let id_only = rate(&registry, topic, value, false, records);
        let decoded = rate(&registry, topic, value, true, records);
        println!(
            "{topic:<10} {id_only:>16.0} {decoded:>18.0} {:>7.1}x",
            id_only / decoded
        );
    }
}
