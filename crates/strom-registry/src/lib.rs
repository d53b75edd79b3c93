//! Strom's Schema Registry, compatible with Confluent's: schema types (Avro today; JSON
//! Schema and Protobuf follow) and the compatibility rules between a subject's
//! versions. The REST API, the `_schemas` storage and the broker's validation build on
//! these.

pub mod avro;
pub mod compatibility;
