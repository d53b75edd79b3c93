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
