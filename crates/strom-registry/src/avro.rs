//! Avro schemas: parsing with `apache-avro` (named types from other schemas resolved
//! through references) and Avro's schema resolution as a compatibility check — the
//! rules of Java's `SchemaCompatibility`, which Confluent's registry applies: can a
//! reader with one schema decode what a writer wrote with another?
//!
//! Each incompatibility names its kind (Avro's `SchemaIncompatibilityType`), where in
//! the reader schema it was found (a JSON-pointer-like path) and why.

use std::collections::{HashMap, HashSet};

use apache_avro::schema::{Alias, Name, RecordField};
use apache_avro::Schema;

/// A schema the registry accepted: parsed, with the named types it references.
#[derive(Debug, Clone)]
pub struct AvroSchema {
    schema: Schema,
    /// Named types by full name: those defined in this schema and in its references.
    named: HashMap<String, Schema>,
    /// The referenced schemas, for decoding data that uses their types.
    referenced: Vec<Schema>,
}

/// A payload reader that remembers being asked for bytes past its end.
struct EndAware<'a> {
    rest: &'a [u8],
    ran_out: bool,
}

impl std::io::Read for EndAware<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if !buf.is_empty() && self.rest.is_empty() {
            self.ran_out = true;
        }
        self.rest.read(buf)
    }
}

/// The most one decoded Avro record may allocate (apache-avro's process-wide limit,
/// set once): a payload declaring a huge array or string is refused, not allocated.
const MAX_DECODE_ALLOCATION_BYTES: usize = 64 << 20;

/// Why a schema text is not a valid Avro schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Invalid schema: {0}")]
pub struct InvalidSchema(pub String);

impl AvroSchema {
    /// Parses `text`; `references` are the schemas of its references (their named
    /// types may be used by name).
    pub fn parse(text: &str, references: &[&str]) -> Result<AvroSchema, InvalidSchema> {
        let (schema, referenced) = if references.is_empty() {
            (
                Schema::parse_str(text).map_err(|e| InvalidSchema(e.to_string()))?,
                Vec::new(),
            )
        } else {
            Schema::parse_str_with_list(text, references).map_err(|e| InvalidSchema(e.to_string()))?
        };
        let mut named = HashMap::new();
        for s in referenced.iter().chain(std::iter::once(&schema)) {
            collect_named(s, &mut named);
        }
        Ok(AvroSchema {
            schema,
            named,
            referenced,
        })
    }

    /// Decodes `payload` as one Avro binary datum of this schema (Confluent's framing
    /// already removed); every byte must belong to it.
    pub fn validate(&self, payload: &[u8]) -> Result<(), String> {
        apache_avro::util::max_allocation_bytes(MAX_DECODE_ALLOCATION_BYTES);
        let mut reader = EndAware {
            rest: payload,
            ran_out: false,
        };
        let decoded = if self.referenced.is_empty() {
            apache_avro::from_avro_datum(&self.schema, &mut reader, None)
        } else {
            apache_avro::from_avro_datum_schemata(&self.schema, self.referenced.iter().collect(), &mut reader, None)
        };
        decoded.map_err(|e| format!("the payload is not Avro of its schema: {e}"))?;
        // apache-avro decodes a string cut short as null rather than failing.
        if reader.ran_out {
            return Err("the payload is not Avro of its schema: it ends inside a value".into());
        }
        if !reader.rest.is_empty() {
            return Err(format!(
                "the payload has {} bytes after its Avro datum",
                reader.rest.len()
            ));
        }
        Ok(())
    }

    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// The full name of a named top-level type (record, enum, fixed).
    pub fn full_name(&self) -> Option<String> {
        named(&self.schema).map(|(name, _)| name.fullname(None))
    }

    /// The registry's form of the schema: compact JSON as Avro writes it (docs,
    /// defaults and aliases kept), used to tell schemas apart.
    pub fn canonical_string(&self) -> String {
        serde_json::to_string(&self.schema).unwrap_or_default()
    }

    fn resolve<'a>(&'a self, schema: &'a Schema) -> &'a Schema {
        match schema {
            Schema::Ref { name } => self.named.get(&name.fullname(None)).unwrap_or(schema),
            other => other,
        }
    }
}

fn collect_named(schema: &Schema, named: &mut HashMap<String, Schema>) {
    match schema {
        Schema::Record(record) => {
            named.insert(record.name.fullname(None), schema.clone());
            for field in &record.fields {
                collect_named(&field.schema, named);
            }
        }
        Schema::Enum(e) => {
            named.insert(e.name.fullname(None), schema.clone());
        }
        Schema::Fixed(f) => {
            named.insert(f.name.fullname(None), schema.clone());
        }
        Schema::Array(array) => collect_named(&array.items, named),
        Schema::Map(map) => collect_named(&map.types, named),
        Schema::Union(union) => {
            for branch in union.variants() {
                collect_named(branch, named);
            }
        }
        Schema::Decimal(decimal) => collect_named(&decimal.inner, named),
        _ => {}
    }
}

/// Avro's kinds of incompatibility (`SchemaIncompatibilityType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncompatibilityKind {
    NameMismatch,
    FixedSizeMismatch,
    MissingEnumSymbols,
    ReaderFieldMissingDefaultValue,
    TypeMismatch,
    MissingUnionBranch,
}

impl IncompatibilityKind {
    pub fn name(self) -> &'static str {
        match self {
            IncompatibilityKind::NameMismatch => "NAME_MISMATCH",
            IncompatibilityKind::FixedSizeMismatch => "FIXED_SIZE_MISMATCH",
            IncompatibilityKind::MissingEnumSymbols => "MISSING_ENUM_SYMBOLS",
            IncompatibilityKind::ReaderFieldMissingDefaultValue => "READER_FIELD_MISSING_DEFAULT_VALUE",
            IncompatibilityKind::TypeMismatch => "TYPE_MISMATCH",
            IncompatibilityKind::MissingUnionBranch => "MISSING_UNION_BRANCH",
        }
    }
}

/// One reason a reader cannot decode a writer's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incompatibility {
    pub kind: IncompatibilityKind,
    /// Where in the reader schema: `/fields/1/type`, `/items`, `/symbols`, ...
    pub location: String,
    pub description: String,
    /// The name, symbols or types involved.
    pub additional_info: String,
}

impl std::fmt::Display for Incompatibility {
    /// Confluent's rendering of an Avro difference.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        crate::difference::write_difference(f, self.kind.name(), &self.description, &self.additional_info)
    }
}

/// Every reason `reader` cannot read data written with `writer` (empty: it can).
pub fn reader_incompatibilities(reader: &AvroSchema, writer: &AvroSchema) -> Vec<Incompatibility> {
    let mut checker = Checker {
        reader,
        writer,
        in_progress: HashSet::new(),
        found: Vec::new(),
    };
    checker.compare(&reader.schema, &writer.schema, String::new());
    checker.found
}

struct Checker<'a> {
    reader: &'a AvroSchema,
    writer: &'a AvroSchema,
    /// Named pairs being compared further up: a recursive type meets itself again.
    in_progress: HashSet<(String, String)>,
    found: Vec<Incompatibility>,
}

/// A schema's kind for resolution: logical types read as their underlying type, as
/// Avro's Java checker (which ignores logical types) sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    Array,
    Map,
    Union,
    Record,
    Enum,
    Fixed,
}

fn kind(schema: &Schema) -> Kind {
    match schema {
        Schema::Null => Kind::Null,
        Schema::Boolean => Kind::Boolean,
        Schema::Int | Schema::Date | Schema::TimeMillis => Kind::Int,
        Schema::Long
        | Schema::TimeMicros
        | Schema::TimestampMillis
        | Schema::TimestampMicros
        | Schema::TimestampNanos
        | Schema::LocalTimestampMillis
        | Schema::LocalTimestampMicros
        | Schema::LocalTimestampNanos => Kind::Long,
        Schema::Float => Kind::Float,
        Schema::Double => Kind::Double,
        Schema::Bytes | Schema::BigDecimal => Kind::Bytes,
        Schema::String | Schema::Uuid => Kind::String,
        Schema::Array(_) => Kind::Array,
        Schema::Map(_) => Kind::Map,
        Schema::Union(_) => Kind::Union,
        Schema::Record(_) => Kind::Record,
        Schema::Enum(_) => Kind::Enum,
        Schema::Fixed(_) | Schema::Duration => Kind::Fixed,
        Schema::Decimal(decimal) => kind(&decimal.inner),
        // Unresolved references are compared by name only.
        Schema::Ref { .. } => Kind::Record,
    }
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Null => "NULL",
        Kind::Boolean => "BOOLEAN",
        Kind::Int => "INT",
        Kind::Long => "LONG",
        Kind::Float => "FLOAT",
        Kind::Double => "DOUBLE",
        Kind::Bytes => "BYTES",
        Kind::String => "STRING",
        Kind::Array => "ARRAY",
        Kind::Map => "MAP",
        Kind::Union => "UNION",
        Kind::Record => "RECORD",
        Kind::Enum => "ENUM",
        Kind::Fixed => "FIXED",
    }
}

/// The named type behind a schema, if it has one: (full name, aliases).
fn named(schema: &Schema) -> Option<(&Name, &Option<Vec<Alias>>)> {
    match schema {
        Schema::Record(r) => Some((&r.name, &r.aliases)),
        Schema::Enum(e) => Some((&e.name, &e.aliases)),
        Schema::Fixed(f) => Some((&f.name, &f.aliases)),
        _ => None,
    }
}

impl Checker<'_> {
    fn compare(&mut self, reader: &Schema, writer: &Schema, location: String) {
        let reader = self.reader.resolve(reader);
        let writer = self.writer.resolve(writer);
        let (reader_kind, writer_kind) = (kind(reader), kind(writer));
        if reader_kind == writer_kind {
            self.compare_same_kind(reader, writer, reader_kind, location);
            return;
        }
        if writer_kind == Kind::Union {
            // Every branch the writer may have used must be readable.
            if let Schema::Union(union) = writer {
                for branch in union.variants() {
                    self.compare(reader, branch, location.clone());
                }
            }
            return;
        }
        if reader_kind == Kind::Union {
            self.reader_union(reader, writer, location);
            return;
        }
        let promoted = matches!(
            (reader_kind, writer_kind),
            (Kind::Long, Kind::Int)
                | (Kind::Float, Kind::Int | Kind::Long)
                | (Kind::Double, Kind::Int | Kind::Long | Kind::Float)
                | (Kind::Bytes, Kind::String)
                | (Kind::String, Kind::Bytes)
        );
        if !promoted {
            self.type_mismatch(reader_kind, writer_kind, location);
        }
    }

    fn type_mismatch(&mut self, reader: Kind, writer: Kind, location: String) {
        self.found.push(Incompatibility {
            kind: IncompatibilityKind::TypeMismatch,
            description: format!(
                "The type (path '{}') of a field in the new schema does not match with the old schema",
                path(&location)
            ),
            additional_info: format!(
                "reader type: {} not compatible with writer type: {}",
                kind_name(reader),
                kind_name(writer)
            ),
            location,
        });
    }

    /// A reader union reads a writer's value when some branch of it does.
    fn reader_union(&mut self, reader: &Schema, writer: &Schema, location: String) {
        let Schema::Union(union) = reader else {
            return;
        };
        let readable = union.variants().iter().any(|branch| {
            let mut trial = Checker {
                reader: self.reader,
                writer: self.writer,
                in_progress: self.in_progress.clone(),
                found: Vec::new(),
            };
            trial.compare(branch, writer, location.clone());
            trial.found.is_empty()
        });
        if !readable {
            let writer_kind = kind_name(kind(writer));
            self.found.push(Incompatibility {
                kind: IncompatibilityKind::MissingUnionBranch,
                description: format!(
                    "The new schema has a union (path '{}') that lacks a branch for the old schema's type {writer_kind}",
                    path(&location)
                ),
                additional_info: format!("reader union lacking writer type: {writer_kind}"),
                location,
            });
        }
    }

    fn compare_same_kind(&mut self, reader: &Schema, writer: &Schema, kind: Kind, location: String) {
        match (reader, writer) {
            (Schema::Array(r), Schema::Array(w)) => self.compare(&r.items, &w.items, format!("{location}/items")),
            (Schema::Map(r), Schema::Map(w)) => self.compare(&r.types, &w.types, format!("{location}/values")),
            (Schema::Union(r), Schema::Union(_)) => {
                // Each writer branch must be readable by the reader union.
                let Schema::Union(w) = writer else { return };
                for (index, branch) in w.variants().iter().enumerate() {
                    let reader_union = Schema::Union(r.clone());
                    self.reader_union(&reader_union, branch, format!("{location}/{index}"));
                }
            }
            (Schema::Record(_), Schema::Record(_))
            | (Schema::Enum(_), Schema::Enum(_))
            | (Schema::Fixed(_), Schema::Fixed(_)) => self.compare_named(reader, writer, location),
            // A logical type over fixed (duration) against a plain fixed: sizes.
            _ if kind == Kind::Fixed && fixed_size(reader) != fixed_size(writer) => {
                self.fixed_size_mismatch(reader, writer, location);
            }
            _ => {}
        }
    }

    fn compare_named(&mut self, reader: &Schema, writer: &Schema, location: String) {
        let (Some((reader_name, reader_aliases)), Some((writer_name, _))) = (named(reader), named(writer)) else {
            return;
        };
        let (reader_full, writer_full) = (reader_name.fullname(None), writer_name.fullname(None));
        let aliased = reader_aliases
            .iter()
            .flatten()
            .any(|alias| alias.fullname(reader_name.namespace.clone()) == writer_full);
        if reader_name.name != writer_name.name && !aliased {
            self.found.push(Incompatibility {
                kind: IncompatibilityKind::NameMismatch,
                description: format!(
                    "The name of the schema has changed (path '{}')",
                    path(&format!("{location}/name"))
                ),
                additional_info: format!("expected: {writer_full}"),
                location: format!("{location}/name"),
            });
            return;
        }
        if !self.in_progress.insert((reader_full.clone(), writer_full.clone())) {
            return;
        }
        match (reader, writer) {
            (Schema::Fixed(r), Schema::Fixed(w)) if r.size != w.size => {
                self.fixed_size_mismatch(reader, writer, location);
            }
            (Schema::Enum(r), Schema::Enum(w)) => {
                let missing: Vec<&str> = w
                    .symbols
                    .iter()
                    .filter(|s| !r.symbols.contains(s))
                    .map(String::as_str)
                    .collect();
                let has_default = r.default.as_ref().is_some_and(|d| r.symbols.contains(d));
                if !missing.is_empty() && !has_default {
                    self.found.push(Incompatibility {
                        kind: IncompatibilityKind::MissingEnumSymbols,
                        description: format!(
                            "The new schema is missing enum symbols '{}' at path '{}' in the old schema",
                            missing.join(", "),
                            path(&format!("{location}/symbols"))
                        ),
                        additional_info: format!("[{}]", missing.join(", ")),
                        location: format!("{location}/symbols"),
                    });
                }
            }
            (Schema::Record(r), Schema::Record(w)) => {
                for (index, field) in r.fields.iter().enumerate() {
                    match writer_field(field, &w.fields) {
                        Ok(Some(written)) => {
                            self.compare(&field.schema, &written.schema, format!("{location}/fields/{index}/type"))
                        }
                        Ok(None) if field.default.is_some() => {}
                        Ok(None) => self.found.push(Incompatibility {
                            kind: IncompatibilityKind::ReaderFieldMissingDefaultValue,
                            description: format!(
                                "The field '{}' at path '{}' in the new schema has no default value and is missing in the old schema",
                                field.name,
                                path(&format!("{location}/fields/{index}"))
                            ),
                            additional_info: field.name.clone(),
                            location: format!("{location}/fields/{index}"),
                        }),
                        Err(names) => self.found.push(Incompatibility {
                            kind: IncompatibilityKind::TypeMismatch,
                            description: format!(
                                "The field '{}' at path '{}' in the new schema matches more than one field of the old schema",
                                field.name,
                                path(&format!("{location}/fields/{index}"))
                            ),
                            additional_info: names,
                            location: format!("{location}/fields/{index}"),
                        }),
                    }
                }
            }
            _ => {}
        }
        self.in_progress.remove(&(reader_full, writer_full));
    }

    fn fixed_size_mismatch(&mut self, reader: &Schema, writer: &Schema, location: String) {
        let (r, w) = (fixed_size(reader), fixed_size(writer));
        self.found.push(Incompatibility {
            kind: IncompatibilityKind::FixedSizeMismatch,
            description: format!(
                "The size of FIXED type field at path '{}' in the new schema does not match with the old schema",
                path(&format!("{location}/size"))
            ),
            additional_info: format!("expected: {w}, found: {r}"),
            location: format!("{location}/size"),
        });
    }
}

fn fixed_size(schema: &Schema) -> usize {
    match schema {
        Schema::Fixed(f) => f.size,
        Schema::Duration => 12,
        Schema::Decimal(d) => fixed_size(&d.inner),
        _ => 0,
    }
}

/// The writer's field a reader field reads: by name, else by one of the reader field's
/// aliases. More than one match is an error (the names of the matches).
fn writer_field<'w>(field: &RecordField, written: &'w [RecordField]) -> Result<Option<&'w RecordField>, String> {
    if let Some(by_name) = written.iter().find(|w| w.name == field.name) {
        return Ok(Some(by_name));
    }
    let matches: Vec<&RecordField> = written
        .iter()
        .filter(|w| field.aliases.iter().flatten().any(|alias| *alias == w.name))
        .collect();
    match matches.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one)),
        many => Err(many.iter().map(|w| w.name.as_str()).collect::<Vec<_>>().join(", ")),
    }
}

/// Confluent shows the root as `/`.
fn path(location: &str) -> &str {
    if location.is_empty() {
        "/"
    } else {
        location
    }
}

#[cfg(test)]
mod tests;
