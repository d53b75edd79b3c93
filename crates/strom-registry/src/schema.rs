//! The three schema types behind one interface: parsing with references resolved,
//! canonical and normalized forms, the record name the subject strategies use, the
//! reader/writer compatibility check, and payload validation for the broker's strict
//! mode. Each type's rules live in its own module.

use crate::avro::{self, AvroSchema};
use crate::json_schema::{self, JsonSchema};
use crate::protobuf::{self, ProtobufSchema};
use crate::records::SchemaType;

/// A schema parsed with its references.
pub enum ParsedSchema {
    Avro(AvroSchema),
    Json(JsonSchema),
    Protobuf(ProtobufSchema),
}

impl ParsedSchema {
    /// Parses `text` as `schema_type`. `references` are (reference name, schema text)
    /// pairs, every schema after the ones it references (Avro needs its named types
    /// defined first).
    pub fn parse(schema_type: SchemaType, text: &str, references: &[(String, String)]) -> Result<ParsedSchema, String> {
        let pairs: Vec<(&str, &str)> = references.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();
        match schema_type {
            SchemaType::Avro => {
                let texts: Vec<&str> = pairs.iter().map(|(_, text)| *text).collect();
                AvroSchema::parse(text, &texts).map(ParsedSchema::Avro).map_err(|e| e.0)
            }
            SchemaType::Json => JsonSchema::parse(text, &pairs).map(ParsedSchema::Json),
            SchemaType::Protobuf => ProtobufSchema::parse(text, &pairs).map(ParsedSchema::Protobuf),
        }
    }

    pub fn schema_type(&self) -> SchemaType {
        match self {
            ParsedSchema::Avro(_) => SchemaType::Avro,
            ParsedSchema::Json(_) => SchemaType::Json,
            ParsedSchema::Protobuf(_) => SchemaType::Protobuf,
        }
    }

    /// The form stored and compared (two registrations of one schema written
    /// differently get one id).
    pub fn canonical_string(&self) -> String {
        match self {
            ParsedSchema::Avro(s) => s.canonical_string(),
            ParsedSchema::Json(s) => s.canonical_string(),
            ParsedSchema::Protobuf(s) => s.canonical_string(),
        }
    }

    /// `normalize=true`: the canonical form with order-insensitive parts sorted.
    pub fn normalized_string(&self) -> String {
        match self {
            // Avro's canonical string already names every type fully.
            ParsedSchema::Avro(s) => s.canonical_string(),
            ParsedSchema::Json(s) => s.normalized_string(),
            ParsedSchema::Protobuf(s) => s.normalized_string(),
        }
    }

    /// The name RecordNameStrategy uses: Avro's full record name, JSON's title,
    /// Protobuf's first message.
    pub fn record_name(&self) -> Option<String> {
        match self {
            ParsedSchema::Avro(s) => s.full_name(),
            ParsedSchema::Json(s) => s.record_name(),
            ParsedSchema::Protobuf(s) => s.record_name(),
        }
    }

    /// Decodes a record's `payload` (what follows the schema id) with this schema:
    /// Avro binary, JSON valid against the JSON Schema, or Protobuf message indexes and
    /// then the message they name.
    pub fn validate_payload(&self, payload: &[u8]) -> Result<(), String> {
        match self {
            ParsedSchema::Avro(schema) => schema.validate(payload),
            ParsedSchema::Json(schema) => {
                let value: serde_json::Value =
                    serde_json::from_slice(payload).map_err(|e| format!("the payload is not JSON: {e}"))?;
                schema.validate(&value)
            }
            ParsedSchema::Protobuf(schema) => {
                let (indexes, message) = protobuf::read_message_indexes(payload)
                    .map_err(|e| format!("its Protobuf message indexes do not read: {e}"))?;
                schema.validate(&indexes, message)
            }
        }
    }

    /// Why data written with `writer` cannot be read with `reader` (empty: it can).
    pub fn reader_incompatibilities(reader: &ParsedSchema, writer: &ParsedSchema) -> Vec<String> {
        fn strings<T: ToString>(found: Vec<T>) -> Vec<String> {
            found.iter().map(ToString::to_string).collect()
        }
        match (reader, writer) {
            (ParsedSchema::Avro(r), ParsedSchema::Avro(w)) => strings(avro::reader_incompatibilities(r, w)),
            (ParsedSchema::Json(r), ParsedSchema::Json(w)) => strings(json_schema::reader_incompatibilities(r, w)),
            (ParsedSchema::Protobuf(r), ParsedSchema::Protobuf(w)) => strings(protobuf::reader_incompatibilities(r, w)),
            _ => vec!["Incompatible because of different schema type".into()],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(schema_type: SchemaType, text: &str) -> ParsedSchema {
        ParsedSchema::parse(schema_type, text, &[]).unwrap()
    }

    #[test]
    fn payloads_decode_with_their_schema_or_say_why_not() {
        let avro = parse(
            SchemaType::Avro,
            r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":"string"}]}"#,
        );
        // a = 3 (zig-zag 6), b = "hi".
        assert_eq!(avro.validate_payload(&[6, 4, b'h', b'i']), Ok(()));
        let short = avro.validate_payload(&[6, 40, b'h']);
        assert!(short.is_err(), "the string runs past the end: {short:?}");
        assert!(avro.validate_payload(&[6, 4, b'h', b'i', 0]).is_err(), "trailing bytes");
        assert!(avro.validate_payload(&[]).is_err());

        let json = parse(
            SchemaType::Json,
            r#"{"type":"object","properties":{"a":{"type":"integer"}},"required":["a"]}"#,
        );
        assert_eq!(json.validate_payload(br#"{"a": 1}"#), Ok(()));
        assert!(json.validate_payload(br#"{"a": "one"}"#).is_err());
        assert!(json.validate_payload(br#"{"b": 1}"#).is_err());
        assert!(json.validate_payload(b"\xff not json").is_err());

        let protobuf = parse(
            SchemaType::Protobuf,
            "syntax = \"proto3\"; message M { int32 a = 1; } message N { string s = 1; }",
        );
        // Message indexes [0] (one 0 byte), then a = 5.
        assert_eq!(protobuf.validate_payload(&[0, 0x08, 0x05]), Ok(()));
        // Indexes [1] (count 1, index 1, zig-zag encoded), then s = "x".
        assert_eq!(protobuf.validate_payload(&[2, 2, 0x0a, 1, b'x']), Ok(()));
        assert!(protobuf.validate_payload(&[0, 0x08]).is_err(), "truncated varint");
        assert!(
            protobuf.validate_payload(&[2, 8, 0x08, 0x05]).is_err(),
            "no message at index 4"
        );
        assert!(protobuf.validate_payload(&[]).is_err());
    }
}
