//! Strom's Schema Registry, compatible with Confluent's: schema types (Avro, JSON
//! Schema, Protobuf), the compatibility rules between a subject's versions,
//! the `_schemas` records and the state they build, a registry instance following its
//! log, and the REST API. Storage on the broker and the broker's validation build on
//! these.

pub mod api;
pub mod avro;
pub mod broker_log;
pub mod compatibility;
pub mod difference;
pub mod error;
pub mod json_schema;
pub mod protobuf;
pub mod records;
pub mod registry;
pub mod schema;
pub mod store;

pub use broker_log::BrokerLog;
pub use error::RegistryError;
pub use registry::{MemoryLog, Registry, SchemaLog};
