//! Protobuf: `.proto` parsing with imports resolved through references, canonical
//! form, Confluent's compatibility rules (`SchemaDiff`), message indexes and payload
//! validation.
