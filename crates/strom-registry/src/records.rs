//! The records of the `_schemas` topic, in Confluent's JSON key/value format, so the
//! registry's state is the log's: a SCHEMA record per subject version (a tombstone
//! deletes it for good), CONFIG and MODE per subject or for the registry (`subject`
//! null; an empty value removes it), DELETE_SUBJECT (soft-deletes a subject's
//! versions up to one), NOOP.

use serde_json::{json, Map, Value};

use crate::compatibility::CompatibilityLevel;

/// A schema's type, as the API names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, PartialOrd, Ord, Hash)]
pub enum SchemaType {
    #[default]
    Avro,
    Json,
    Protobuf,
}

impl SchemaType {
    pub fn name(self) -> &'static str {
        match self {
            SchemaType::Avro => "AVRO",
            SchemaType::Json => "JSON",
            SchemaType::Protobuf => "PROTOBUF",
        }
    }

    /// A missing type is Avro, as in Confluent's API.
    pub fn parse(name: Option<&str>) -> Option<SchemaType> {
        match name.map(str::to_ascii_uppercase).as_deref() {
            None | Some("AVRO") => Some(SchemaType::Avro),
            Some("JSON") => Some(SchemaType::Json),
            Some("PROTOBUF") => Some(SchemaType::Protobuf),
            Some(_) => None,
        }
    }
}

/// A reference from a schema to another subject's version.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Reference {
    /// Avro: the full name of the type; Protobuf: the import path; JSON: the `$ref`.
    pub name: String,
    pub subject: String,
    pub version: i32,
}

/// One version of a subject as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaValue {
    pub subject: String,
    pub version: i32,
    /// The global id of the schema (one id per distinct schema, shared by subjects).
    pub id: i32,
    pub schema_type: SchemaType,
    pub schema: String,
    pub references: Vec<Reference>,
    pub deleted: bool,
}

/// What the registry mode allows (`/mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    ReadWrite,
    ReadOnly,
    ReadOnlyOverride,
    Import,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::ReadWrite => "READWRITE",
            Mode::ReadOnly => "READONLY",
            Mode::ReadOnlyOverride => "READONLY_OVERRIDE",
            Mode::Import => "IMPORT",
        }
    }

    pub fn parse(name: &str) -> Option<Mode> {
        [Mode::ReadWrite, Mode::ReadOnly, Mode::ReadOnlyOverride, Mode::Import]
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(name.trim()))
    }
}

/// One record of `_schemas`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A subject version; `None` deletes it for good (a tombstone).
    Schema {
        subject: String,
        version: i32,
        value: Option<SchemaValue>,
    },
    /// The compatibility level of a subject (or, without one, of the registry); `None`
    /// removes it.
    Config {
        subject: Option<String>,
        level: Option<CompatibilityLevel>,
    },
    Mode {
        subject: Option<String>,
        mode: Option<Mode>,
    },
    /// Soft-deletes the subject's versions up to `version`.
    DeleteSubject {
        subject: String,
        version: i32,
    },
    Noop,
}

/// A record of `_schemas` this registry cannot read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unreadable _schemas record: {0}")]
pub struct BadRecord(pub String);

fn bad(why: impl Into<String>) -> BadRecord {
    BadRecord(why.into())
}

impl Record {
    /// The record's key and value bytes.
    pub fn encode(&self) -> (Vec<u8>, Option<Vec<u8>>) {
        let (key, value) = match self {
            Record::Schema {
                subject,
                version,
                value,
            } => (
                json!({"keytype": "SCHEMA", "subject": subject, "version": version, "magic": 1}),
                value.as_ref().map(|v| {
                    let mut body = json!({
                        "subject": v.subject,
                        "version": v.version,
                        "id": v.id,
                        "schema": v.schema,
                        "deleted": v.deleted,
                    });
                    if v.schema_type != SchemaType::Avro {
                        body["schemaType"] = json!(v.schema_type.name());
                    }
                    if !v.references.is_empty() {
                        body["references"] = Value::Array(
                            v.references
                                .iter()
                                .map(|r| json!({"name": r.name, "subject": r.subject, "version": r.version}))
                                .collect(),
                        );
                    }
                    body
                }),
            ),
            Record::Config { subject, level } => (
                json!({"keytype": "CONFIG", "subject": subject, "magic": 0}),
                level.map(|l| json!({"compatibilityLevel": l.name()})),
            ),
            Record::Mode { subject, mode } => (
                json!({"keytype": "MODE", "subject": subject, "magic": 0}),
                mode.map(|m| json!({"mode": m.name()})),
            ),
            Record::DeleteSubject { subject, version } => (
                json!({"keytype": "DELETE_SUBJECT", "subject": subject, "magic": 0}),
                Some(json!({"subject": subject, "version": version})),
            ),
            Record::Noop => (json!({"keytype": "NOOP", "magic": 0}), None),
        };
        (key.to_string().into_bytes(), value.map(|v| v.to_string().into_bytes()))
    }

    /// Reads a record; an empty value counts as none (Confluent writes both).
    pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<Record, BadRecord> {
        let key: Map<String, Value> = serde_json::from_slice(key).map_err(|e| bad(format!("key: {e}")))?;
        let value: Option<Value> = match value.filter(|v| !v.is_empty() && *v != b"null") {
            Some(bytes) => Some(serde_json::from_slice(bytes).map_err(|e| bad(format!("value: {e}")))?),
            None => None,
        };
        let subject = key.get("subject").and_then(Value::as_str).map(str::to_string);
        let keytype = key.get("keytype").and_then(Value::as_str).unwrap_or_default();
        match keytype {
            "SCHEMA" => {
                let subject = subject.ok_or_else(|| bad("SCHEMA key without subject"))?;
                let version = int(key.get("version")).ok_or_else(|| bad("SCHEMA key without version"))?;
                let value = match value {
                    Some(v) => Some(schema_value(&v)?),
                    None => None,
                };
                Ok(Record::Schema {
                    subject,
                    version,
                    value,
                })
            }
            "CONFIG" => {
                let level = match value {
                    Some(v) => Some(
                        v.get("compatibilityLevel")
                            .and_then(Value::as_str)
                            .and_then(|l| l.parse().ok())
                            .ok_or_else(|| bad("CONFIG value without a known compatibilityLevel"))?,
                    ),
                    None => None,
                };
                Ok(Record::Config { subject, level })
            }
            "MODE" => {
                let mode = match value {
                    Some(v) => Some(
                        v.get("mode")
                            .and_then(Value::as_str)
                            .and_then(Mode::parse)
                            .ok_or_else(|| bad("MODE value without a known mode"))?,
                    ),
                    None => None,
                };
                Ok(Record::Mode { subject, mode })
            }
            "DELETE_SUBJECT" => {
                let subject = subject.ok_or_else(|| bad("DELETE_SUBJECT key without subject"))?;
                let version = value
                    .as_ref()
                    .and_then(|v| int(v.get("version")))
                    .ok_or_else(|| bad("DELETE_SUBJECT value without version"))?;
                Ok(Record::DeleteSubject { subject, version })
            }
            "NOOP" => Ok(Record::Noop),
            other => Err(bad(format!("unknown keytype {other:?}"))),
        }
    }
}

fn int(value: Option<&Value>) -> Option<i32> {
    value.and_then(Value::as_i64).and_then(|v| i32::try_from(v).ok())
}

fn schema_value(v: &Value) -> Result<SchemaValue, BadRecord> {
    let text = |name: &str| v.get(name).and_then(Value::as_str).map(str::to_string);
    let references = match v.get("references") {
        Some(Value::Array(refs)) => refs
            .iter()
            .map(|r| {
                Some(Reference {
                    name: r.get("name")?.as_str()?.to_string(),
                    subject: r.get("subject")?.as_str()?.to_string(),
                    version: int(r.get("version"))?,
                })
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| bad("malformed reference"))?,
        _ => Vec::new(),
    };
    Ok(SchemaValue {
        subject: text("subject").ok_or_else(|| bad("SCHEMA value without subject"))?,
        version: int(v.get("version")).ok_or_else(|| bad("SCHEMA value without version"))?,
        id: int(v.get("id")).ok_or_else(|| bad("SCHEMA value without id"))?,
        schema_type: SchemaType::parse(v.get("schemaType").and_then(Value::as_str))
            .ok_or_else(|| bad("unknown schemaType"))?,
        schema: text("schema").ok_or_else(|| bad("SCHEMA value without schema"))?,
        references,
        deleted: v.get("deleted").and_then(Value::as_bool).unwrap_or(false),
    })
}
