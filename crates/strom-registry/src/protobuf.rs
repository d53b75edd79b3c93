//! Protobuf: `.proto` parsing with imports resolved through references, canonical
//! form, Confluent's compatibility rules (`SchemaDiff`), message indexes and payload
//! validation.
//!
//! A schema is compiled by protox (no protoc) into a prost-reflect `DescriptorPool`,
//! from memory only: an import resolves through the schema's references (import path →
//! text), then the small well-known files embedded below (`google/type/*`,
//! `confluent/meta.proto`, `confluent/type/decimal.proto`), then the `google/protobuf/*`
//! files protox ships.
//!
//! Compatibility is Confluent's `SchemaDiff.compare(original, update)`: the two files
//! are compared as wholes, messages and enums by name, fields by tag, and each
//! difference has a kind that is either compatible or not. Paths name a message by its
//! name within the schema's package (`#/Order.Item`), then a field number, oneof or
//! enum constant (`#/Order.Item/3`).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt::Write as _;

use prost_reflect::prost_types::{FieldDescriptorProto, FileDescriptorProto};
use prost_reflect::{
    Cardinality, DescriptorPool, DynamicMessage, EnumDescriptor, ExtensionDescriptor, FieldDescriptor, FileDescriptor,
    Kind, MapKey, MessageDescriptor, ReflectMessage, ServiceDescriptor, Syntax, Value,
};
use protox::file::{File, FileResolver, GoogleFileResolver};
use protox::Compiler;

/// The most message indexes a payload may carry: protox (like protoc) refuses messages
/// nested more than 31 deep, so a longer list names nothing; refused before allocating.
pub const MESSAGE_INDEXES_MAX: usize = 32;

/// The largest field number (`max` in `reserved` and `extensions` ranges).
const FIELD_NUMBER_MAX: i64 = 536_870_911;

/// A Protobuf schema the registry accepted: its own file, compiled together with its
/// imports into one descriptor pool.
#[derive(Debug, Clone)]
pub struct ProtobufSchema {
    file: FileDescriptor,
}

impl ProtobufSchema {
    /// Parses `.proto` text; `references` are (import path, `.proto` text) pairs its
    /// imports (and theirs) resolve through. The error is a human-readable message,
    /// with the file, line and column when the compiler knows them.
    pub fn parse(text: &str, references: &[(&str, &str)]) -> Result<ProtobufSchema, String> {
        let own = own_file_name(references);
        let mut files = HashMap::new();
        for (path, reference) in references {
            files
                .entry((*path).to_owned())
                .or_insert_with(|| (*reference).to_owned());
        }
        files.insert(own.clone(), text.to_owned());
        let mut compiler = Compiler::with_file_resolver(MemoryResolver {
            files,
            google: GoogleFileResolver::new(),
        });
        // protox's Debug form is the one that carries `file:line:column:`.
        compiler.open_file(&own).map_err(|e| format!("{e:?}"))?;
        let pool = compiler.descriptor_pool();
        let file = pool
            .get_file_by_name(&own)
            .ok_or_else(|| format!("the schema's file '{own}' is missing after compiling it"))?;
        Ok(ProtobufSchema { file })
    }

    /// The schema's own file; its pool also holds every file it imports.
    pub fn descriptor(&self) -> &FileDescriptor {
        &self.file
    }

    /// The `FileDescriptorProto` in base64: what `format=serialized` answers, the form
    /// confluent-kafka's deserializers read.
    pub fn serialized(&self) -> String {
        use base64::Engine as _;
        use prost::Message as _;
        base64::engine::general_purpose::STANDARD.encode(self.file.file_descriptor_proto().encode_to_vec())
    }

    /// The schema printed from its descriptor: whitespace, comments and the spelling of
    /// type names (relative or qualified) do not change it.
    pub fn canonical_string(&self) -> String {
        Printer::new(&self.file, false).print()
    }

    /// The canonical form with imports, options, fields (by number), enum constants
    /// (by number) and reserved ranges sorted; declaration order of messages kept.
    pub fn normalized_string(&self) -> String {
        Printer::new(&self.file, true).print()
    }

    /// RecordNameStrategy's name: the full name of the file's first message.
    pub fn record_name(&self) -> Option<String> {
        self.message_at(&[0]).map(|m| m.full_name().to_owned())
    }

    /// The full name of the message Confluent's message indexes name: `[0]` the first
    /// top-level message, `[1, 0]` the first message nested in the second. An empty
    /// list is `[0]`, as a count of 0 on the wire.
    pub fn message_name(&self, indexes: &[i32]) -> Option<String> {
        self.message_at(indexes).map(|m| m.full_name().to_owned())
    }

    /// Decodes `payload` as the message `indexes` name; proto2 required fields must be
    /// present, at any depth.
    pub fn validate(&self, indexes: &[i32], payload: &[u8]) -> Result<(), String> {
        let descriptor = self
            .message_at(indexes)
            .ok_or_else(|| format!("the message indexes {indexes:?} name no message of the schema"))?;
        let name = descriptor.full_name().to_owned();
        let message = DynamicMessage::decode(descriptor, payload)
            .map_err(|e| format!("the payload is not a valid {name}: {e}"))?;
        match missing_required(&message) {
            Some(field) => Err(format!(
                "the payload is not a valid {name}: required field {field} is missing"
            )),
            None => Ok(()),
        }
    }

    fn message_at(&self, indexes: &[i32]) -> Option<MessageDescriptor> {
        let indexes = if indexes.is_empty() { &[0][..] } else { indexes };
        let mut level: Vec<MessageDescriptor> = self.file.messages().filter(|m| !is_group_type(m)).collect();
        let mut found = None;
        for &index in indexes {
            let message = level.get(usize::try_from(index).ok()?)?.clone();
            level = indexed_children(&message);
            found = Some(message);
        }
        found
    }

    /// How a type is named when two schemas are compared: relative to the schema's
    /// package when it lives there, so that a package change is reported once rather
    /// than as every message removed and added; imported types keep their full name.
    fn compared_name(&self, full_name: &str) -> String {
        let package = self.file.package_name();
        if package.is_empty() {
            return full_name.to_owned();
        }
        full_name
            .strip_prefix(package)
            .and_then(|rest| rest.strip_prefix('.'))
            .unwrap_or(full_name)
            .to_owned()
    }

    /// Every message Confluent's indexes can name, depth first, with its indexes.
    fn indexed_messages(&self) -> Vec<(Vec<i32>, MessageDescriptor)> {
        fn visit(path: &mut Vec<i32>, messages: Vec<MessageDescriptor>, out: &mut Vec<(Vec<i32>, MessageDescriptor)>) {
            for (index, message) in (0i32..).zip(messages) {
                path.push(index);
                out.push((path.clone(), message.clone()));
                visit(path, indexed_children(&message), out);
                path.pop();
            }
        }
        let mut out = Vec::new();
        let top = self.file.messages().filter(|m| !is_group_type(m)).collect();
        visit(&mut Vec::new(), top, &mut out);
        out
    }

    /// Every enum declared in the file, at any depth.
    fn all_enums(&self) -> Vec<EnumDescriptor> {
        let mut enums: Vec<EnumDescriptor> = self.file.enums().collect();
        let mut stack: Vec<MessageDescriptor> = self.file.messages().collect();
        while let Some(message) = stack.pop() {
            enums.extend(message.child_enums());
            stack.extend(message.child_messages());
        }
        enums
    }
}

/// The schema's own file name in its pool: `schema.proto`, unless a reference is
/// imported under that path.
fn own_file_name(references: &[(&str, &str)]) -> String {
    let taken = |name: &str| references.iter().any(|(path, _)| *path == name);
    let mut name = "schema.proto".to_owned();
    let mut attempt = 0;
    while taken(&name) {
        attempt += 1;
        name = format!("schema_{attempt}.proto");
    }
    name
}

/// Resolves imports from memory only: the schema and its references, the embedded
/// well-known files, then protox's `google/protobuf/*`.
struct MemoryResolver {
    files: HashMap<String, String>,
    google: GoogleFileResolver,
}

impl FileResolver for MemoryResolver {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        if let Some(text) = self.files.get(name) {
            if let Some(proto) = serialized_descriptor(text) {
                return Ok(File::from_file_descriptor_proto(FileDescriptorProto {
                    name: Some(name.to_owned()),
                    ..proto
                }));
            }
            return File::from_source(name, text);
        }
        if let Some((_, text)) = EMBEDDED_FILES.iter().find(|(path, _)| *path == name) {
            return File::from_source(name, text);
        }
        self.google.open_file(name)
    }
}

/// A schema given as a base64 `FileDescriptorProto`, as confluent-kafka's serializers
/// register Protobuf schemas (and Confluent's registry accepts). `.proto` text is never
/// valid base64: it has spaces or semicolons.
fn serialized_descriptor(text: &str) -> Option<FileDescriptorProto> {
    use base64::Engine as _;
    use prost::Message as _;
    let text = text.trim();
    if text.is_empty() || text.contains(|c: char| c.is_ascii_whitespace() || c == ';') {
        return None;
    }
    let bytes = base64::engine::general_purpose::STANDARD.decode(text).ok()?;
    FileDescriptorProto::decode(bytes.as_slice()).ok()
}

/// Files Confluent resolves without a reference (`ProtobufSchema.KNOWN_DEPENDENCIES`)
/// that protox does not ship, written here with their messages, field names and
/// numbers (options and comments left out). `confluent/type/variant.proto` is missing.
const EMBEDDED_FILES: &[(&str, &str)] = &[
    (
        "confluent/meta.proto",
        r#"syntax = "proto3";
package confluent;
import "google/protobuf/descriptor.proto";
message Meta {
  string doc = 1;
  map<string, string> params = 2;
  repeated string tags = 3;
}
extend google.protobuf.FileOptions { Meta file_meta = 1088; }
extend google.protobuf.MessageOptions { Meta message_meta = 1088; }
extend google.protobuf.FieldOptions { Meta field_meta = 1088; }
extend google.protobuf.EnumOptions { Meta enum_meta = 1088; }
extend google.protobuf.EnumValueOptions { Meta enum_value_meta = 1088; }
"#,
    ),
    (
        "confluent/type/decimal.proto",
        r#"syntax = "proto3";
package confluent.type;
message Decimal {
  bytes value = 1;
  uint32 precision = 2;
  int32 scale = 3;
}
"#,
    ),
    (
        "google/type/calendar_period.proto",
        r#"syntax = "proto3";
package google.type;
enum CalendarPeriod {
  CALENDAR_PERIOD_UNSPECIFIED = 0;
  DAY = 1;
  WEEK = 2;
  FORTNIGHT = 3;
  MONTH = 4;
  QUARTER = 5;
  HALF = 6;
  YEAR = 7;
}
"#,
    ),
    (
        "google/type/color.proto",
        r#"syntax = "proto3";
package google.type;
import "google/protobuf/wrappers.proto";
message Color {
  float red = 1;
  float green = 2;
  float blue = 3;
  google.protobuf.FloatValue alpha = 4;
}
"#,
    ),
    (
        "google/type/date.proto",
        r#"syntax = "proto3";
package google.type;
message Date {
  int32 year = 1;
  int32 month = 2;
  int32 day = 3;
}
"#,
    ),
    (
        "google/type/datetime.proto",
        r#"syntax = "proto3";
package google.type;
import "google/protobuf/duration.proto";
message DateTime {
  int32 year = 1;
  int32 month = 2;
  int32 day = 3;
  int32 hours = 4;
  int32 minutes = 5;
  int32 seconds = 6;
  int32 nanos = 7;
  oneof time_offset {
    google.protobuf.Duration utc_offset = 8;
    TimeZone time_zone = 9;
  }
}
message TimeZone {
  string id = 1;
  string version = 2;
}
"#,
    ),
    (
        "google/type/dayofweek.proto",
        r#"syntax = "proto3";
package google.type;
enum DayOfWeek {
  DAY_OF_WEEK_UNSPECIFIED = 0;
  MONDAY = 1;
  TUESDAY = 2;
  WEDNESDAY = 3;
  THURSDAY = 4;
  FRIDAY = 5;
  SATURDAY = 6;
  SUNDAY = 7;
}
"#,
    ),
    (
        "google/type/decimal.proto",
        r#"syntax = "proto3";
package google.type;
message Decimal {
  string value = 1;
}
"#,
    ),
    (
        "google/type/expr.proto",
        r#"syntax = "proto3";
package google.type;
message Expr {
  string expression = 1;
  string title = 2;
  string description = 3;
  string location = 4;
}
"#,
    ),
    (
        "google/type/fraction.proto",
        r#"syntax = "proto3";
package google.type;
message Fraction {
  int64 numerator = 1;
  int64 denominator = 2;
}
"#,
    ),
    (
        "google/type/interval.proto",
        r#"syntax = "proto3";
package google.type;
import "google/protobuf/timestamp.proto";
message Interval {
  google.protobuf.Timestamp start_time = 1;
  google.protobuf.Timestamp end_time = 2;
}
"#,
    ),
    (
        "google/type/latlng.proto",
        r#"syntax = "proto3";
package google.type;
message LatLng {
  double latitude = 1;
  double longitude = 2;
}
"#,
    ),
    (
        "google/type/localized_text.proto",
        r#"syntax = "proto3";
package google.type;
message LocalizedText {
  string text = 1;
  string language_code = 2;
}
"#,
    ),
    (
        "google/type/money.proto",
        r#"syntax = "proto3";
package google.type;
message Money {
  string currency_code = 1;
  int64 units = 2;
  int32 nanos = 3;
}
"#,
    ),
    (
        "google/type/month.proto",
        r#"syntax = "proto3";
package google.type;
enum Month {
  MONTH_UNSPECIFIED = 0;
  JANUARY = 1;
  FEBRUARY = 2;
  MARCH = 3;
  APRIL = 4;
  MAY = 5;
  JUNE = 6;
  JULY = 7;
  AUGUST = 8;
  SEPTEMBER = 9;
  OCTOBER = 10;
  NOVEMBER = 11;
  DECEMBER = 12;
}
"#,
    ),
    (
        "google/type/phone_number.proto",
        r#"syntax = "proto3";
package google.type;
message PhoneNumber {
  message ShortCode {
    string region_code = 1;
    string number = 2;
  }
  oneof kind {
    string e164_number = 1;
    ShortCode short_code = 2;
  }
  string extension = 3;
}
"#,
    ),
    (
        "google/type/postal_address.proto",
        r#"syntax = "proto3";
package google.type;
message PostalAddress {
  int32 revision = 1;
  string region_code = 2;
  string language_code = 3;
  string postal_code = 4;
  string sorting_code = 5;
  string administrative_area = 6;
  string locality = 7;
  string sublocality = 8;
  repeated string address_lines = 9;
  repeated string recipients = 10;
  string organization = 11;
}
"#,
    ),
    (
        "google/type/quaternion.proto",
        r#"syntax = "proto3";
package google.type;
message Quaternion {
  double x = 1;
  double y = 2;
  double z = 3;
  double w = 4;
}
"#,
    ),
    (
        "google/type/timeofday.proto",
        r#"syntax = "proto3";
package google.type;
message TimeOfDay {
  int32 hours = 1;
  int32 minutes = 2;
  int32 seconds = 3;
  int32 nanos = 4;
}
"#,
    ),
];

/// Whether a message is the type a proto2 `group` declares. Such types are printed
/// with their field and, as in Confluent's Wire model, are not counted by message
/// indexes.
fn is_group_type(message: &MessageDescriptor) -> bool {
    let declares =
        |kind: Kind, group: bool| group && matches!(kind, Kind::Message(m) if m.full_name() == message.full_name());
    match message.parent_message() {
        Some(parent) => {
            parent.fields().any(|f| declares(f.kind(), f.is_group()))
                || parent.child_extensions().any(|e| declares(e.kind(), e.is_group()))
        }
        None => message
            .parent_file()
            .extensions()
            .any(|e| declares(e.kind(), e.is_group())),
    }
}

/// The nested messages message indexes count: map entries and group types are not
/// declared as messages in the text.
fn indexed_children(message: &MessageDescriptor) -> Vec<MessageDescriptor> {
    message
        .child_messages()
        .filter(|child| !child.is_map_entry() && !is_group_type(child))
        .collect()
}

/// The first proto2 required field missing in `message` or in a message within it.
/// The depth is bounded by the decoder's recursion limit.
fn missing_required(message: &DynamicMessage) -> Option<String> {
    let descriptor = message.descriptor();
    if let Some(field) = descriptor.fields().find(|f| f.is_required() && !message.has_field(f)) {
        return Some(field.full_name().to_owned());
    }
    for (_, value) in message.fields() {
        let found = match value {
            Value::Message(inner) => missing_required(inner),
            Value::List(items) => items.iter().find_map(|item| match item {
                Value::Message(inner) => missing_required(inner),
                _ => None,
            }),
            Value::Map(entries) => entries.values().find_map(|item| match item {
                Value::Message(inner) => missing_required(inner),
                _ => None,
            }),
            _ => None,
        };
        if found.is_some() {
            return found;
        }
    }
    None
}

// ---------------------------------------------------------------------------------
// Message indexes

/// Reads Confluent's message indexes, which follow the 5-byte schema id: a zig-zag
/// varint count, then that many zig-zag varint indexes; a count of 0 means `[0]`.
/// Returns the indexes and the payload after them.
pub fn read_message_indexes(payload: &[u8]) -> Result<(Vec<i32>, &[u8]), String> {
    let (count, mut rest) = read_varint(payload)?;
    if count == 0 {
        return Ok((vec![0], rest));
    }
    let count = usize::try_from(count).map_err(|_| format!("negative message index count {count}"))?;
    if count > MESSAGE_INDEXES_MAX {
        return Err(format!(
            "{count} message indexes, more than the {MESSAGE_INDEXES_MAX} any schema can use"
        ));
    }
    let mut indexes = Vec::with_capacity(count);
    for _ in 0..count {
        let (index, after) = read_varint(rest)?;
        if index < 0 {
            return Err(format!("negative message index {index}"));
        }
        indexes.push(index);
        rest = after;
    }
    Ok((indexes, rest))
}

/// Writes message indexes as Confluent does: `[0]` (or none) as the single byte 0.
pub fn write_message_indexes(indexes: &[i32], out: &mut Vec<u8>) {
    if indexes.is_empty() || indexes == [0] {
        out.push(0);
        return;
    }
    // Lists longer than i32::MAX cannot be built in practice; saturate rather than wrap.
    write_varint(i32::try_from(indexes.len()).unwrap_or(i32::MAX), out);
    for &index in indexes {
        write_varint(index, out);
    }
}

/// Kafka's `ByteUtils.readVarint`: at most 5 bytes, zig-zag decoded.
fn read_varint(input: &[u8]) -> Result<(i32, &[u8]), String> {
    let mut raw: u64 = 0;
    for (position, &byte) in input.iter().enumerate().take(5) {
        raw |= u64::from(byte & 0x7f) << (7 * position);
        if byte & 0x80 == 0 {
            let raw = u32::try_from(raw).map_err(|_| "message index varint overflows 32 bits".to_owned())?;
            let value = ((raw >> 1) as i32) ^ -((raw & 1) as i32);
            return Ok((value, &input[position + 1..]));
        }
    }
    if input.len() < 5 {
        Err("message indexes are truncated".to_owned())
    } else {
        Err("message index varint is longer than 5 bytes".to_owned())
    }
}

fn write_varint(value: i32, out: &mut Vec<u8>) {
    let mut raw = ((value << 1) ^ (value >> 31)) as u32;
    while raw >= 0x80 {
        out.push((raw as u8 & 0x7f) | 0x80);
        raw >>= 7;
    }
    out.push(raw as u8);
}

// ---------------------------------------------------------------------------------
// Canonical printing

/// Prints a file from its descriptor, the same way every time.
struct Printer {
    file: FileDescriptor,
    normalize: bool,
    /// Every name a relative reference could run into while protoc-style scoping
    /// resolves it, so each reference is printed in the shortest form that still
    /// resolves to its type.
    symbols: HashSet<String>,
    out: String,
}

/// A field or an extension, as a declaration needs it.
struct FieldDecl<'d> {
    raw: &'d FieldDescriptorProto,
    full_name: &'d str,
    cardinality: Cardinality,
    kind: Kind,
    map: Option<(Kind, Kind)>,
    group: bool,
    in_oneof: bool,
    options: DynamicMessage,
    extension: bool,
}

impl<'d> FieldDecl<'d> {
    fn of_field(field: &'d FieldDescriptor) -> FieldDecl<'d> {
        let map = match field.kind() {
            Kind::Message(entry) if field.is_map() => {
                Some((entry.map_entry_key_field().kind(), entry.map_entry_value_field().kind()))
            }
            _ => None,
        };
        FieldDecl {
            raw: field.field_descriptor_proto(),
            full_name: field.full_name(),
            cardinality: field.cardinality(),
            kind: field.kind(),
            map,
            group: field.is_group(),
            in_oneof: field.containing_oneof().is_some_and(|o| !o.is_synthetic()),
            options: field.options(),
            extension: false,
        }
    }

    fn of_extension(extension: &'d ExtensionDescriptor) -> FieldDecl<'d> {
        FieldDecl {
            raw: extension.field_descriptor_proto(),
            full_name: extension.full_name(),
            cardinality: extension.cardinality(),
            kind: extension.kind(),
            map: None,
            group: extension.is_group(),
            in_oneof: false,
            options: extension.options(),
            extension: true,
        }
    }
}

impl Printer {
    fn new(file: &FileDescriptor, normalize: bool) -> Printer {
        Printer {
            file: file.clone(),
            normalize,
            symbols: symbols(file.parent_pool()),
            out: String::new(),
        }
    }

    fn print(mut self) -> String {
        let file = self.file.clone();
        let syntax = match file.syntax() {
            Syntax::Proto2 => "proto2",
            Syntax::Proto3 => "proto3",
        };
        self.line(0, &format!("syntax = \"{syntax}\";"));
        let package = file.package_name();
        if !package.is_empty() {
            self.line(0, &format!("package {package};"));
        }
        self.imports();
        let options = self.option_entries(&file.options(), package);
        if !options.is_empty() {
            self.out.push('\n');
            self.option_statements(0, options);
        }
        for message in file.messages().filter(|m| !is_group_type(m)) {
            self.out.push('\n');
            self.message(0, &message);
        }
        for enumeration in file.enums() {
            self.out.push('\n');
            self.enumeration(0, &enumeration);
        }
        let extensions: Vec<ExtensionDescriptor> = file.extensions().collect();
        self.extends(0, &extensions, package, true);
        for service in file.services() {
            self.out.push('\n');
            self.service(&service);
        }
        self.out
    }

    fn line(&mut self, depth: usize, text: &str) {
        for _ in 0..depth {
            self.out.push_str("  ");
        }
        self.out.push_str(text);
        self.out.push('\n');
    }

    fn imports(&mut self) {
        let raw = self.file.file_descriptor_proto();
        let mut imports: Vec<String> = raw
            .dependency
            .iter()
            .enumerate()
            .map(|(index, path)| {
                let index = i32::try_from(index).unwrap_or(i32::MAX);
                let modifier = if raw.public_dependency.contains(&index) {
                    "public "
                } else if raw.weak_dependency.contains(&index) {
                    "weak "
                } else {
                    ""
                };
                format!("import {modifier}{};", quote(path))
            })
            .collect();
        if self.normalize {
            imports.sort();
        }
        if !imports.is_empty() {
            self.out.push('\n');
        }
        for import in imports {
            self.line(0, &import);
        }
    }

    fn message(&mut self, depth: usize, message: &MessageDescriptor) {
        self.line(depth, &format!("message {} {{", message.name()));
        self.message_body(depth + 1, message);
        self.line(depth, "}");
    }

    fn message_body(&mut self, depth: usize, message: &MessageDescriptor) {
        let scope = message.full_name();
        let options = self.option_entries(&message.options(), scope);
        self.option_statements(depth, options);
        let ranges = message
            .reserved_ranges()
            .map(|r| (i64::from(r.start), i64::from(r.end) - 1))
            .collect();
        let names = message.reserved_names().map(str::to_owned).collect();
        self.reserved(depth, ranges, names, FIELD_NUMBER_MAX);

        // Declaration order: the descriptor's own iterator goes by number.
        let mut fields: Vec<FieldDescriptor> = message
            .descriptor_proto()
            .field
            .iter()
            .filter_map(|raw| message.get_field(u32::try_from(raw.number()).ok()?))
            .filter(|f| f.containing_oneof().is_none_or(|o| o.is_synthetic()))
            .collect();
        if self.normalize {
            fields.sort_by_key(FieldDescriptor::number);
        }
        for field in &fields {
            self.field(depth, &FieldDecl::of_field(field), scope);
        }
        for oneof in message.oneofs().filter(|o| !o.is_synthetic()) {
            self.line(depth, &format!("oneof {} {{", oneof.name()));
            let options = self.option_entries(&oneof.options(), oneof.full_name());
            self.option_statements(depth + 1, options);
            let mut members: Vec<FieldDescriptor> = oneof.fields().collect();
            if self.normalize {
                members.sort_by_key(FieldDescriptor::number);
            }
            for field in &members {
                self.field(depth + 1, &FieldDecl::of_field(field), scope);
            }
            self.line(depth, "}");
        }

        let mut extension_ranges: Vec<(i64, i64)> = message
            .extension_ranges()
            .map(|r| (i64::from(r.start), i64::from(r.end) - 1))
            .collect();
        if self.normalize {
            extension_ranges.sort_unstable();
        }
        if !extension_ranges.is_empty() {
            let ranges: Vec<String> = extension_ranges
                .iter()
                .map(|&(start, end)| range_text(start, end, FIELD_NUMBER_MAX))
                .collect();
            self.line(depth, &format!("extensions {};", ranges.join(", ")));
        }

        for child in message.child_messages() {
            if !child.is_map_entry() && !is_group_type(&child) {
                self.message(depth, &child);
            }
        }
        for enumeration in message.child_enums() {
            self.enumeration(depth, &enumeration);
        }
        let extensions: Vec<ExtensionDescriptor> = message.child_extensions().collect();
        self.extends(depth, &extensions, scope, false);
    }

    fn field(&mut self, depth: usize, decl: &FieldDecl<'_>, scope: &str) {
        let label = if decl.in_oneof || decl.map.is_some() {
            ""
        } else {
            match decl.cardinality {
                Cardinality::Repeated => "repeated ",
                Cardinality::Required => "required ",
                Cardinality::Optional if self.file.syntax() == Syntax::Proto2 || decl.raw.proto3_optional() => {
                    "optional "
                }
                Cardinality::Optional => "",
            }
        };
        let mut options = Vec::new();
        if let Some(default) = decl.raw.default_value.as_deref() {
            let value = match decl.kind {
                Kind::String => quote(default),
                // Descriptors keep bytes defaults C-escaped already.
                Kind::Bytes => format!("\"{default}\""),
                _ => default.to_owned(),
            };
            options.push(("default".to_owned(), value));
        }
        // Descriptors always carry a JSON name; only one that was spelled out differs
        // from the one derived from the field name.
        if let Some(json_name) = decl.raw.json_name.as_deref() {
            if !decl.extension && json_name != default_json_name(decl.raw.name()) {
                options.push(("json_name".to_owned(), quote(json_name)));
            }
        }
        options.extend(self.option_entries(&decl.options, decl.full_name));
        if self.normalize {
            options.sort_by(|a, b| a.0.cmp(&b.0));
        }
        let options = if options.is_empty() {
            String::new()
        } else {
            let entries: Vec<String> = options
                .iter()
                .map(|(name, value)| format!("{name} = {value}"))
                .collect();
            format!(" [{}]", entries.join(", "))
        };
        let number = decl.raw.number();
        match (&decl.kind, &decl.map) {
            (Kind::Message(group), _) if decl.group => {
                self.line(depth, &format!("{label}group {} = {number}{options} {{", group.name()));
                self.message_body(depth + 1, group);
                self.line(depth, "}");
            }
            (_, Some((key, value))) => {
                let text = format!(
                    "map<{}, {}> {} = {number}{options};",
                    self.kind_ref(key, scope),
                    self.kind_ref(value, scope),
                    decl.raw.name()
                );
                self.line(depth, &text);
            }
            (kind, None) => {
                let text = format!(
                    "{label}{} {} = {number}{options};",
                    self.kind_ref(kind, scope),
                    decl.raw.name()
                );
                self.line(depth, &text);
            }
        }
    }

    fn enumeration(&mut self, depth: usize, enumeration: &EnumDescriptor) {
        let scope = enumeration.full_name();
        self.line(depth, &format!("enum {} {{", enumeration.name()));
        let options = self.option_entries(&enumeration.options(), scope);
        self.option_statements(depth + 1, options);
        let ranges = enumeration
            .reserved_ranges()
            .map(|r| (i64::from(*r.start()), i64::from(*r.end())))
            .collect();
        let names = enumeration.reserved_names().map(str::to_owned).collect();
        self.reserved(depth + 1, ranges, names, i64::from(i32::MAX));
        // Declaration order: the descriptor's own iterator goes by number.
        let mut values: Vec<_> = enumeration
            .enum_descriptor_proto()
            .value
            .iter()
            .filter_map(|raw| enumeration.get_value_by_name(raw.name()))
            .collect();
        if self.normalize {
            values.sort_by_key(|v| v.number());
        }
        for value in values {
            let mut options = self.option_entries(&value.options(), scope);
            if self.normalize {
                options.sort_by(|a, b| a.0.cmp(&b.0));
            }
            let options = if options.is_empty() {
                String::new()
            } else {
                let entries: Vec<String> = options
                    .iter()
                    .map(|(name, value)| format!("{name} = {value}"))
                    .collect();
                format!(" [{}]", entries.join(", "))
            };
            self.line(depth + 1, &format!("{} = {}{options};", value.name(), value.number()));
        }
        self.line(depth, "}");
    }

    /// `extend` blocks, one per extended message in order of first appearance.
    fn extends(&mut self, depth: usize, extensions: &[ExtensionDescriptor], scope: &str, top_level: bool) {
        let mut blocks: Vec<(String, Vec<&ExtensionDescriptor>)> = Vec::new();
        for extension in extensions {
            let extendee = extension.containing_message().full_name().to_owned();
            match blocks.iter_mut().find(|(name, _)| *name == extendee) {
                Some((_, members)) => members.push(extension),
                None => blocks.push((extendee, vec![extension])),
            }
        }
        for (extendee, mut members) in blocks {
            if self.normalize {
                members.sort_by_key(|e| e.number());
            }
            if top_level {
                self.out.push('\n');
            }
            let extendee = self.type_ref(&extendee, scope);
            self.line(depth, &format!("extend {extendee} {{"));
            for extension in members {
                self.field(depth + 1, &FieldDecl::of_extension(extension), scope);
            }
            self.line(depth, "}");
        }
    }

    fn service(&mut self, service: &ServiceDescriptor) {
        let scope = service.full_name();
        self.line(0, &format!("service {} {{", service.name()));
        let options = self.option_entries(&service.options(), scope);
        self.option_statements(1, options);
        for method in service.methods() {
            let stream = |yes: bool| if yes { "stream " } else { "" };
            let head = format!(
                "rpc {} ({}{}) returns ({}{})",
                method.name(),
                stream(method.is_client_streaming()),
                self.type_ref(method.input().full_name(), scope),
                stream(method.is_server_streaming()),
                self.type_ref(method.output().full_name(), scope),
            );
            let options = self.option_entries(&method.options(), method.full_name());
            if options.is_empty() {
                self.line(1, &format!("{head};"));
            } else {
                self.line(1, &format!("{head} {{"));
                self.option_statements(2, options);
                self.line(1, "}");
            }
        }
        self.line(0, "}");
    }

    fn reserved(&mut self, depth: usize, mut ranges: Vec<(i64, i64)>, mut names: Vec<String>, max: i64) {
        if self.normalize {
            ranges.sort_unstable();
            names.sort_unstable();
        }
        if !ranges.is_empty() {
            let ranges: Vec<String> = ranges.iter().map(|&(start, end)| range_text(start, end, max)).collect();
            self.line(depth, &format!("reserved {};", ranges.join(", ")));
        }
        if !names.is_empty() {
            let names: Vec<String> = names.iter().map(|name| quote(name)).collect();
            self.line(depth, &format!("reserved {};", names.join(", ")));
        }
    }

    fn option_statements(&mut self, depth: usize, mut options: Vec<(String, String)>) {
        if self.normalize {
            options.sort_by(|a, b| a.0.cmp(&b.0));
        }
        for (name, value) in options {
            self.line(depth, &format!("option {name} = {value};"));
        }
    }

    /// The options set in an options message, as (name, value) pairs; a repeated
    /// option gives one pair per value.
    fn option_entries(&self, options: &DynamicMessage, scope: &str) -> Vec<(String, String)> {
        let mut entries = Vec::new();
        for (field, value) in options.fields() {
            if field.name() == "uninterpreted_option" {
                continue;
            }
            for text in self.values_text(value, &field.kind()) {
                entries.push((field.name().to_owned(), text));
            }
        }
        for (extension, value) in options.extensions() {
            let name = format!("({})", self.type_ref(extension.full_name(), scope));
            for text in self.values_text(value, &extension.kind()) {
                entries.push((name.clone(), text));
            }
        }
        entries
    }

    fn values_text(&self, value: &Value, kind: &Kind) -> Vec<String> {
        match value {
            Value::List(items) => items.iter().map(|item| self.value_text(item, kind)).collect(),
            Value::Map(entries) => {
                let value_kind = match kind {
                    Kind::Message(entry) => entry.map_entry_value_field().kind(),
                    other => other.clone(),
                };
                let sorted: BTreeMap<&MapKey, &Value> = entries.iter().collect();
                sorted
                    .into_iter()
                    .map(|(key, item)| {
                        format!(
                            "{{ key: {} value: {} }}",
                            map_key_text(key),
                            self.value_text(item, &value_kind)
                        )
                    })
                    .collect()
            }
            single => vec![self.value_text(single, kind)],
        }
    }

    fn value_text(&self, value: &Value, kind: &Kind) -> String {
        match value {
            Value::Bool(b) => b.to_string(),
            Value::I32(n) => n.to_string(),
            Value::I64(n) => n.to_string(),
            Value::U32(n) => n.to_string(),
            Value::U64(n) => n.to_string(),
            Value::F32(x) => float_text(*x),
            Value::F64(x) => float_text(*x),
            Value::String(s) => quote(s),
            Value::Bytes(b) => quote_bytes(b),
            Value::EnumNumber(number) => match kind {
                Kind::Enum(e) => e
                    .get_value(*number)
                    .map_or_else(|| number.to_string(), |v| v.name().to_owned()),
                _ => number.to_string(),
            },
            Value::Message(message) => self.aggregate(message),
            Value::List(_) | Value::Map(_) => self.values_text(value, kind).join(", "),
        }
    }

    /// A message-valued option in text format: `{ doc: "x" tags: "a" tags: "b" }`.
    fn aggregate(&self, message: &DynamicMessage) -> String {
        let mut parts = Vec::new();
        for (field, value) in message.fields() {
            for text in self.values_text(value, &field.kind()) {
                parts.push(format!("{}: {text}", field.name()));
            }
        }
        for (extension, value) in message.extensions() {
            for text in self.values_text(value, &extension.kind()) {
                parts.push(format!("[{}]: {text}", extension.full_name()));
            }
        }
        if parts.is_empty() {
            "{}".to_owned()
        } else {
            format!("{{ {} }}", parts.join(" "))
        }
    }

    fn kind_ref(&self, kind: &Kind, scope: &str) -> String {
        match kind {
            Kind::Message(m) => self.type_ref(m.full_name(), scope),
            Kind::Enum(e) => self.type_ref(e.full_name(), scope),
            scalar => scalar_name(scalar).to_owned(),
        }
    }

    /// The shortest of (name within the package, full name, `.`full name) that
    /// protoc's scoping rules resolve from `scope` to `full_name`.
    fn type_ref(&self, full_name: &str, scope: &str) -> String {
        let package = self.file.package_name();
        let local = if package.is_empty() {
            None
        } else {
            full_name.strip_prefix(package).and_then(|rest| rest.strip_prefix('.'))
        };
        for candidate in local.into_iter().chain(std::iter::once(full_name)) {
            if self.resolves(candidate, scope, full_name) {
                return candidate.to_owned();
            }
        }
        format!(".{full_name}")
    }

    /// Whether `name`, written in `scope`, resolves to `target`: the innermost scope
    /// that defines the name's first component decides, as in protoc. Any symbol
    /// counts as a definition here, which errs towards qualifying more.
    fn resolves(&self, name: &str, scope: &str, target: &str) -> bool {
        let first = name.split('.').next().unwrap_or(name);
        let mut scope = scope;
        loop {
            if self.symbols.contains(&join_name(scope, first)) {
                return join_name(scope, name) == target;
            }
            if scope.is_empty() {
                return false;
            }
            scope = scope.rfind('.').map_or("", |dot| &scope[..dot]);
        }
    }
}

/// Every name defined in the pool: packages (and their prefixes), messages, fields,
/// oneofs, enums, enum values (in their enum's parent scope), extensions, services and
/// methods.
fn symbols(pool: &DescriptorPool) -> HashSet<String> {
    let mut symbols = HashSet::new();
    for file in pool.files() {
        let package = file.package_name();
        for (dot, _) in package.match_indices('.') {
            symbols.insert(package[..dot].to_owned());
        }
        if !package.is_empty() {
            symbols.insert(package.to_owned());
        }
    }
    for message in pool.all_messages() {
        symbols.insert(message.full_name().to_owned());
        symbols.extend(message.fields().map(|f| f.full_name().to_owned()));
        symbols.extend(message.oneofs().map(|o| o.full_name().to_owned()));
    }
    for enumeration in pool.all_enums() {
        symbols.insert(enumeration.full_name().to_owned());
        symbols.extend(enumeration.values().map(|v| v.full_name().to_owned()));
    }
    symbols.extend(pool.all_extensions().map(|e| e.full_name().to_owned()));
    for service in pool.services() {
        symbols.insert(service.full_name().to_owned());
        symbols.extend(service.methods().map(|m| m.full_name().to_owned()));
    }
    symbols
}

fn join_name(scope: &str, name: &str) -> String {
    if scope.is_empty() {
        name.to_owned()
    } else {
        format!("{scope}.{name}")
    }
}

fn range_text(start: i64, end: i64, max: i64) -> String {
    if start == end {
        start.to_string()
    } else if end >= max {
        format!("{start} to max")
    } else {
        format!("{start} to {end}")
    }
}

/// protoc's JSON name: underscores dropped, the letter after each one upper-cased.
fn default_json_name(name: &str) -> String {
    let mut json = String::with_capacity(name.len());
    let mut upper_next = false;
    for c in name.chars() {
        if c == '_' {
            upper_next = true;
        } else if upper_next {
            json.push(c.to_ascii_uppercase());
            upper_next = false;
        } else {
            json.push(c);
        }
    }
    json
}

fn scalar_name(kind: &Kind) -> &'static str {
    match kind {
        Kind::Double => "double",
        Kind::Float => "float",
        Kind::Int32 => "int32",
        Kind::Int64 => "int64",
        Kind::Uint32 => "uint32",
        Kind::Uint64 => "uint64",
        Kind::Sint32 => "sint32",
        Kind::Sint64 => "sint64",
        Kind::Fixed32 => "fixed32",
        Kind::Fixed64 => "fixed64",
        Kind::Sfixed32 => "sfixed32",
        Kind::Sfixed64 => "sfixed64",
        Kind::Bool => "bool",
        Kind::String => "string",
        Kind::Bytes => "bytes",
        Kind::Message(_) => "message",
        Kind::Enum(_) => "enum",
    }
}

fn float_text<T: Into<f64> + std::fmt::Debug + Copy>(value: T) -> String {
    let wide: f64 = value.into();
    if wide.is_nan() {
        "nan".to_owned()
    } else if wide.is_infinite() {
        if wide > 0.0 { "inf" } else { "-inf" }.to_owned()
    } else {
        // Debug keeps a decimal point or exponent, so the value stays a float literal.
        format!("{value:?}")
    }
}

fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let mut buffer = [0u8; 4];
                for byte in c.encode_utf8(&mut buffer).bytes() {
                    let _ = write!(out, "\\{byte:03o}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn quote_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    for &byte in bytes {
        match byte {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(char::from(byte)),
            _ => {
                let _ = write!(out, "\\{byte:03o}");
            }
        }
    }
    out.push('"');
    out
}

fn map_key_text(key: &MapKey) -> String {
    match key {
        MapKey::Bool(b) => b.to_string(),
        MapKey::I32(n) => n.to_string(),
        MapKey::I64(n) => n.to_string(),
        MapKey::U32(n) => n.to_string(),
        MapKey::U64(n) => n.to_string(),
        MapKey::String(s) => quote(s),
    }
}

// ---------------------------------------------------------------------------------
// Compatibility

/// Confluent's kinds of Protobuf schema difference (`Difference.Type`); some are
/// compatible, the rest make data written with one schema unreadable with the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DifferenceKind {
    PackageChanged,
    MessageAdded,
    MessageRemoved,
    MessageMoved,
    EnumAdded,
    EnumRemoved,
    EnumConstAdded,
    EnumConstChanged,
    EnumConstRemoved,
    FieldAdded,
    FieldRemoved,
    FieldNameChanged,
    FieldKindChanged,
    FieldScalarKindChanged,
    FieldNamedTypeChanged,
    FieldNumericLabelChanged,
    FieldStringOrBytesLabelChanged,
    RequiredFieldAdded,
    RequiredFieldRemoved,
    OneofAdded,
    OneofRemoved,
    OneofFieldAdded,
    OneofFieldRemoved,
    OneofFieldMovedToTopLevel,
    MultipleFieldsMovedToOneof,
    FieldMovedToExistingOneof,
}

impl DifferenceKind {
    pub fn name(self) -> &'static str {
        match self {
            DifferenceKind::PackageChanged => "PACKAGE_CHANGED",
            DifferenceKind::MessageAdded => "MESSAGE_ADDED",
            DifferenceKind::MessageRemoved => "MESSAGE_REMOVED",
            DifferenceKind::MessageMoved => "MESSAGE_MOVED",
            DifferenceKind::EnumAdded => "ENUM_ADDED",
            DifferenceKind::EnumRemoved => "ENUM_REMOVED",
            DifferenceKind::EnumConstAdded => "ENUM_CONST_ADDED",
            DifferenceKind::EnumConstChanged => "ENUM_CONST_CHANGED",
            DifferenceKind::EnumConstRemoved => "ENUM_CONST_REMOVED",
            DifferenceKind::FieldAdded => "FIELD_ADDED",
            DifferenceKind::FieldRemoved => "FIELD_REMOVED",
            DifferenceKind::FieldNameChanged => "FIELD_NAME_CHANGED",
            DifferenceKind::FieldKindChanged => "FIELD_KIND_CHANGED",
            DifferenceKind::FieldScalarKindChanged => "FIELD_SCALAR_KIND_CHANGED",
            DifferenceKind::FieldNamedTypeChanged => "FIELD_NAMED_TYPE_CHANGED",
            DifferenceKind::FieldNumericLabelChanged => "FIELD_NUMERIC_LABEL_CHANGED",
            DifferenceKind::FieldStringOrBytesLabelChanged => "FIELD_STRING_OR_BYTES_LABEL_CHANGED",
            DifferenceKind::RequiredFieldAdded => "REQUIRED_FIELD_ADDED",
            DifferenceKind::RequiredFieldRemoved => "REQUIRED_FIELD_REMOVED",
            DifferenceKind::OneofAdded => "ONEOF_ADDED",
            DifferenceKind::OneofRemoved => "ONEOF_REMOVED",
            DifferenceKind::OneofFieldAdded => "ONEOF_FIELD_ADDED",
            DifferenceKind::OneofFieldRemoved => "ONEOF_FIELD_REMOVED",
            DifferenceKind::OneofFieldMovedToTopLevel => "ONEOF_FIELD_MOVED_TO_TOP_LEVEL",
            DifferenceKind::MultipleFieldsMovedToOneof => "MULTIPLE_FIELDS_MOVED_TO_ONEOF",
            DifferenceKind::FieldMovedToExistingOneof => "FIELD_MOVED_TO_EXISTING_ONEOF",
        }
    }

    /// Whether data still reads across this difference.
    pub fn is_compatible(self) -> bool {
        !matches!(
            self,
            DifferenceKind::PackageChanged
                | DifferenceKind::MessageRemoved
                | DifferenceKind::FieldKindChanged
                | DifferenceKind::FieldScalarKindChanged
                | DifferenceKind::FieldNamedTypeChanged
                | DifferenceKind::FieldNumericLabelChanged
                | DifferenceKind::RequiredFieldAdded
                | DifferenceKind::RequiredFieldRemoved
                | DifferenceKind::OneofFieldRemoved
                | DifferenceKind::MultipleFieldsMovedToOneof
                | DifferenceKind::FieldMovedToExistingOneof
        )
    }
}

/// One difference between a writer's and a reader's schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incompatibility {
    pub kind: DifferenceKind,
    /// Where: `#/` for the file, `#/Order`, `#/Order/3` (a field number),
    /// `#/Order/choice` (a oneof), `#/Status/2` (an enum constant's number).
    pub path: String,
    pub description: String,
    /// The names, types or labels involved.
    pub additional_info: String,
}

impl std::fmt::Display for Incompatibility {
    /// The same shape as Confluent's rendering of an Avro difference.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        crate::difference::write_difference(f, self.kind.name(), &self.description, &self.additional_info)
    }
}

/// Why data written with `writer` cannot be read with `reader` (empty: it can):
/// Confluent's `SchemaDiff.compare(original = writer, update = reader)`, keeping the
/// incompatible differences. Descriptions call the reader "new" and the writer "old",
/// as BACKWARD checks read.
pub fn reader_incompatibilities(reader: &ProtobufSchema, writer: &ProtobufSchema) -> Vec<Incompatibility> {
    differences(reader, writer)
        .into_iter()
        .filter(|d| !d.kind.is_compatible())
        .collect()
}

/// Every difference between the two files, compatible or not.
fn differences(reader: &ProtobufSchema, writer: &ProtobufSchema) -> Vec<Incompatibility> {
    let mut diff = Diff {
        reader,
        writer,
        compared: HashSet::new(),
        pending: VecDeque::new(),
        found: Vec::new(),
    };
    diff.package();
    diff.messages();
    diff.enums();
    // A work list rather than recursion: a chain of message types referring to one
    // another is as long as the schema, and must not exhaust the stack.
    while let Some((old, new)) = diff.pending.pop_front() {
        diff.message(&old, &new);
    }
    diff.found
}

struct Diff<'a> {
    reader: &'a ProtobufSchema,
    writer: &'a ProtobufSchema,
    /// (writer, reader) message pairs compared or queued: each pair once, which also
    /// ends recursive types.
    compared: HashSet<(String, String)>,
    pending: VecDeque<(MessageDescriptor, MessageDescriptor)>,
    found: Vec<Incompatibility>,
}

/// A field's type as the rules see it.
enum Shape {
    /// A scalar or an enum.
    Scalar(Kind),
    Message(MessageDescriptor),
    Map(Kind, Kind),
}

impl Shape {
    fn of(field: &FieldDescriptor) -> Shape {
        match field.kind() {
            Kind::Message(entry) if field.is_map() => {
                Shape::Map(entry.map_entry_key_field().kind(), entry.map_entry_value_field().kind())
            }
            Kind::Message(message) => Shape::Message(message),
            scalar => Shape::Scalar(scalar),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Shape::Scalar(_) => "scalar",
            Shape::Message(_) => "message",
            Shape::Map(..) => "map",
        }
    }
}

/// Scalars within a group share a wire encoding, so one reads the other.
fn scalar_group(kind: &Kind) -> u8 {
    match kind {
        Kind::Int32 | Kind::Int64 | Kind::Uint32 | Kind::Uint64 | Kind::Bool | Kind::Enum(_) => 0,
        Kind::Sint32 | Kind::Sint64 => 1,
        Kind::String | Kind::Bytes => 2,
        Kind::Fixed32 | Kind::Sfixed32 => 3,
        Kind::Fixed64 | Kind::Sfixed64 => 4,
        Kind::Float => 5,
        Kind::Double => 6,
        Kind::Message(_) => 7,
    }
}

fn kind_text(kind: &Kind) -> String {
    match kind {
        Kind::Message(m) => m.full_name().to_owned(),
        Kind::Enum(e) => e.full_name().to_owned(),
        scalar => scalar_name(scalar).to_owned(),
    }
}

/// A field's oneof, if a real one (not proto3 `optional`'s synthetic oneof).
fn real_oneof(field: &FieldDescriptor) -> Option<String> {
    field
        .containing_oneof()
        .filter(|o| !o.is_synthetic())
        .map(|o| o.name().to_owned())
}

fn label(field: &FieldDescriptor) -> &'static str {
    match field.cardinality() {
        Cardinality::Optional => "optional",
        Cardinality::Required => "required",
        Cardinality::Repeated => "repeated",
    }
}

impl Diff<'_> {
    fn push(&mut self, kind: DifferenceKind, path: String, description: String, additional_info: String) {
        self.found.push(Incompatibility {
            kind,
            path,
            description,
            additional_info,
        });
    }

    fn package(&mut self) {
        let (old, new) = (self.writer.file.package_name(), self.reader.file.package_name());
        if old != new {
            self.push(
                DifferenceKind::PackageChanged,
                "#/".to_owned(),
                "The package of the new schema does not match the old schema's".to_owned(),
                format!("old: '{old}', new: '{new}'"),
            );
        }
    }

    /// The file's messages, paired by name.
    fn messages(&mut self) {
        let new: HashMap<String, (Vec<i32>, MessageDescriptor)> = self
            .reader
            .indexed_messages()
            .into_iter()
            .map(|(indexes, m)| (self.reader.compared_name(m.full_name()), (indexes, m)))
            .collect();
        let mut seen = HashSet::new();
        for (old_indexes, old) in self.writer.indexed_messages() {
            let name = self.writer.compared_name(old.full_name());
            seen.insert(name.clone());
            let path = format!("#/{name}");
            match new.get(&name) {
                None => self.push(
                    DifferenceKind::MessageRemoved,
                    path.clone(),
                    format!("The message at path '{path}' in the old schema is missing in the new schema"),
                    name,
                ),
                Some((new_indexes, new_message)) => {
                    if *new_indexes != old_indexes {
                        self.push(
                            DifferenceKind::MessageMoved,
                            path.clone(),
                            format!("The message at path '{path}' has other message indexes in the new schema"),
                            format!("old: {old_indexes:?}, new: {new_indexes:?}"),
                        );
                    }
                    self.queue(&old, new_message);
                }
            }
        }
        for (indexes, message) in self.reader.indexed_messages() {
            let name = self.reader.compared_name(message.full_name());
            if !seen.contains(&name) {
                let path = format!("#/{name}");
                self.push(
                    DifferenceKind::MessageAdded,
                    path.clone(),
                    format!("The message at path '{path}' in the new schema is not in the old schema"),
                    format!("{indexes:?}"),
                );
            }
        }
    }

    fn queue(&mut self, old: &MessageDescriptor, new: &MessageDescriptor) {
        if self
            .compared
            .insert((old.full_name().to_owned(), new.full_name().to_owned()))
        {
            self.pending.push_back((old.clone(), new.clone()));
        }
    }

    /// The file's enums, paired by name, and their constants by number.
    fn enums(&mut self) {
        let new: HashMap<String, EnumDescriptor> = self
            .reader
            .all_enums()
            .into_iter()
            .map(|e| (self.reader.compared_name(e.full_name()), e))
            .collect();
        let mut seen = HashSet::new();
        for old in self.writer.all_enums() {
            let name = self.writer.compared_name(old.full_name());
            seen.insert(name.clone());
            let path = format!("#/{name}");
            match new.get(&name) {
                None => self.push(
                    DifferenceKind::EnumRemoved,
                    path.clone(),
                    format!("The enum at path '{path}' in the old schema is missing in the new schema"),
                    name,
                ),
                Some(new_enum) => self.enum_constants(&old, new_enum, &path),
            }
        }
        for enumeration in self.reader.all_enums() {
            let name = self.reader.compared_name(enumeration.full_name());
            if !seen.contains(&name) {
                let path = format!("#/{name}");
                self.push(
                    DifferenceKind::EnumAdded,
                    path.clone(),
                    format!("The enum at path '{path}' in the new schema is not in the old schema"),
                    name,
                );
            }
        }
    }

    fn enum_constants(&mut self, old: &EnumDescriptor, new: &EnumDescriptor, path: &str) {
        let names = |e: &EnumDescriptor| {
            let mut by_number: BTreeMap<i32, BTreeSet<String>> = BTreeMap::new();
            for value in e.values() {
                by_number
                    .entry(value.number())
                    .or_default()
                    .insert(value.name().to_owned());
            }
            by_number
        };
        let (old, new) = (names(old), names(new));
        let numbers: BTreeSet<i32> = old.keys().chain(new.keys()).copied().collect();
        for number in numbers {
            let path = format!("{path}/{number}");
            let joined = |names: &BTreeSet<String>| names.iter().cloned().collect::<Vec<_>>().join(", ");
            match (old.get(&number), new.get(&number)) {
                (Some(before), None) => self.push(
                    DifferenceKind::EnumConstRemoved,
                    path.clone(),
                    format!("The enum constant at path '{path}' in the old schema is missing in the new schema"),
                    joined(before),
                ),
                (None, Some(after)) => self.push(
                    DifferenceKind::EnumConstAdded,
                    path.clone(),
                    format!("The enum constant at path '{path}' in the new schema is not in the old schema"),
                    joined(after),
                ),
                (Some(before), Some(after)) if before != after => self.push(
                    DifferenceKind::EnumConstChanged,
                    path.clone(),
                    format!("The enum constant at path '{path}' has another name in the new schema"),
                    format!("old: {}, new: {}", joined(before), joined(after)),
                ),
                _ => {}
            }
        }
    }

    /// One message pair: fields by number, oneofs by name.
    fn message(&mut self, old: &MessageDescriptor, new: &MessageDescriptor) {
        let base = format!("#/{}", self.writer.compared_name(old.full_name()));
        let old_fields: BTreeMap<u32, FieldDescriptor> = old.fields().map(|f| (f.number(), f)).collect();
        let new_fields: BTreeMap<u32, FieldDescriptor> = new.fields().map(|f| (f.number(), f)).collect();
        let oneofs = |m: &MessageDescriptor| -> Vec<String> {
            m.oneofs()
                .filter(|o| !o.is_synthetic())
                .map(|o| o.name().to_owned())
                .collect()
        };
        let (old_oneofs, new_oneofs) = (oneofs(old), oneofs(new));
        for name in old_oneofs.iter().filter(|o| !new_oneofs.contains(o)) {
            let path = format!("{base}/{name}");
            self.push(
                DifferenceKind::OneofRemoved,
                path.clone(),
                format!("The oneof at path '{path}' in the old schema is missing in the new schema"),
                name.clone(),
            );
        }
        for name in new_oneofs.iter().filter(|o| !old_oneofs.contains(o)) {
            let path = format!("{base}/{name}");
            self.push(
                DifferenceKind::OneofAdded,
                path.clone(),
                format!("The oneof at path '{path}' in the new schema is not in the old schema"),
                name.clone(),
            );
        }

        // For each new oneof, where its fields were in the old schema: each top-level
        // field and each old oneof is one source, since a writer sets one value per
        // source and a oneof keeps only one.
        let mut sources: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (number, old_field) in &old_fields {
            let path = format!("{base}/{number}");
            match new_fields.get(number) {
                Some(new_field) => {
                    self.field(old_field, new_field, &path);
                    let (was, is) = (real_oneof(old_field), real_oneof(new_field));
                    match (&was, &is) {
                        (Some(oneof), None) => self.push(
                            DifferenceKind::OneofFieldMovedToTopLevel,
                            path.clone(),
                            format!("The field at path '{path}' left its oneof '{oneof}' in the new schema"),
                            new_field.name().to_owned(),
                        ),
                        (_, Some(oneof)) if was != is => {
                            if old_oneofs.contains(oneof) {
                                self.push(
                                    DifferenceKind::FieldMovedToExistingOneof,
                                    path.clone(),
                                    format!("The field at path '{path}' moved into the oneof '{oneof}' that the old schema already has"),
                                    new_field.name().to_owned(),
                                );
                            } else {
                                let source = match &was {
                                    Some(old_oneof) => format!("oneof {old_oneof}"),
                                    None => format!("field {number}"),
                                };
                                sources.entry(oneof.clone()).or_default().insert(source);
                            }
                        }
                        _ => {}
                    }
                }
                None => self.field_removed(old_field, &new_oneofs, &path),
            }
        }
        for (oneof, from) in sources {
            if from.len() > 1 {
                let path = format!("{base}/{oneof}");
                self.push(
                    DifferenceKind::MultipleFieldsMovedToOneof,
                    path.clone(),
                    format!("Fields that the old schema sets independently are in the new oneof at path '{path}'"),
                    from.into_iter().collect::<Vec<_>>().join(", "),
                );
            }
        }
        for (number, new_field) in &new_fields {
            if !old_fields.contains_key(number) {
                self.field_added(new_field, &old_oneofs, &format!("{base}/{number}"));
            }
        }
    }

    fn field_removed(&mut self, field: &FieldDescriptor, new_oneofs: &[String], path: &str) {
        let (kind, description) = match real_oneof(field) {
            Some(oneof) if new_oneofs.contains(&oneof) => (
                DifferenceKind::OneofFieldRemoved,
                format!("The field at path '{path}' of the oneof '{oneof}' in the old schema is missing from it in the new schema"),
            ),
            _ if field.is_required() => (
                DifferenceKind::RequiredFieldRemoved,
                format!("The required field at path '{path}' in the old schema is missing in the new schema"),
            ),
            _ => (
                DifferenceKind::FieldRemoved,
                format!("The field at path '{path}' in the old schema is missing in the new schema"),
            ),
        };
        self.push(kind, path.to_owned(), description, field.name().to_owned());
    }

    fn field_added(&mut self, field: &FieldDescriptor, old_oneofs: &[String], path: &str) {
        let (kind, description) = match real_oneof(field) {
            Some(oneof) if old_oneofs.contains(&oneof) => (
                DifferenceKind::OneofFieldAdded,
                format!("The field at path '{path}' in the new schema is added to the oneof '{oneof}'"),
            ),
            _ if field.is_required() => (
                DifferenceKind::RequiredFieldAdded,
                format!("The required field at path '{path}' in the new schema is not in the old schema"),
            ),
            _ => (
                DifferenceKind::FieldAdded,
                format!("The field at path '{path}' in the new schema is not in the old schema"),
            ),
        };
        self.push(kind, path.to_owned(), description, field.name().to_owned());
    }

    /// Two fields with the same number.
    fn field(&mut self, old: &FieldDescriptor, new: &FieldDescriptor, path: &str) {
        if old.name() != new.name() {
            self.push(
                DifferenceKind::FieldNameChanged,
                path.to_owned(),
                format!("The field at path '{path}' has another name in the new schema"),
                format!("old: {}, new: {}", old.name(), new.name()),
            );
        }
        let (old_shape, new_shape) = (Shape::of(old), Shape::of(new));
        let same_type = match (&old_shape, &new_shape) {
            (Shape::Scalar(a), Shape::Scalar(b)) => self.scalars(a, b, path),
            (Shape::Message(a), Shape::Message(b)) => self.named_messages(a, b, path),
            (Shape::Map(old_key, old_value), Shape::Map(new_key, new_value)) => {
                self.kinds(old_key, new_key, &format!("{path}/key"));
                self.kinds(old_value, new_value, &format!("{path}/value"));
                false
            }
            _ => {
                self.push(
                    DifferenceKind::FieldKindChanged,
                    path.to_owned(),
                    format!("The kind of the field at path '{path}' in the new schema does not match its kind in the old schema"),
                    format!("old: {}, new: {}", old_shape.name(), new_shape.name()),
                );
                false
            }
        };
        if !same_type {
            return;
        }
        if old.is_list() != new.is_list() {
            let labels = format!("old: {}, new: {}", label(old), label(new));
            match new_shape {
                Shape::Scalar(Kind::String | Kind::Bytes) => self.push(
                    DifferenceKind::FieldStringOrBytesLabelChanged,
                    path.to_owned(),
                    format!("The label of a STRING or BYTES field at path '{path}' in the new schema does not match its label in the old schema"),
                    labels,
                ),
                Shape::Scalar(_) => self.push(
                    DifferenceKind::FieldNumericLabelChanged,
                    path.to_owned(),
                    format!("The label of a NUMERIC field at path '{path}' in the new schema does not match its label in the old schema"),
                    labels,
                ),
                // A repeated message field reads a single one and, merged, the other way.
                _ => {}
            }
        }
        match (old.is_required(), new.is_required()) {
            (true, false) => self.push(
                DifferenceKind::RequiredFieldRemoved,
                path.to_owned(),
                format!("The field at path '{path}' is required in the old schema but not in the new schema"),
                new.name().to_owned(),
            ),
            (false, true) => self.push(
                DifferenceKind::RequiredFieldAdded,
                path.to_owned(),
                format!("The field at path '{path}' is required in the new schema but not in the old schema"),
                new.name().to_owned(),
            ),
            _ => {}
        }
    }

    /// Map keys and values: a kind each.
    fn kinds(&mut self, old: &Kind, new: &Kind, path: &str) {
        match (old, new) {
            (Kind::Message(a), Kind::Message(b)) => {
                self.named_messages(a, b, path);
            }
            (Kind::Message(_), _) | (_, Kind::Message(_)) => self.push(
                DifferenceKind::FieldKindChanged,
                path.to_owned(),
                format!("The kind of the field at path '{path}' in the new schema does not match its kind in the old schema"),
                format!("old: {}, new: {}", kind_text(old), kind_text(new)),
            ),
            _ => {
                self.scalars(old, new, path);
            }
        }
    }

    /// Whether two scalars (or enums) are read alike; reports why not.
    fn scalars(&mut self, old: &Kind, new: &Kind, path: &str) -> bool {
        if scalar_group(old) != scalar_group(new) {
            self.push(
                DifferenceKind::FieldScalarKindChanged,
                path.to_owned(),
                format!("The kind of a SCALAR field at path '{path}' in the new schema does not match its kind in the old schema"),
                format!("old: {}, new: {}", kind_text(old), kind_text(new)),
            );
            return false;
        }
        if let (Kind::Enum(a), Kind::Enum(b)) = (old, new) {
            let (before, after) = (
                self.writer.compared_name(a.full_name()),
                self.reader.compared_name(b.full_name()),
            );
            if before != after {
                self.push(
                    DifferenceKind::FieldNamedTypeChanged,
                    path.to_owned(),
                    format!("The type of an ENUM field at path '{path}' in the new schema does not match its type in the old schema"),
                    format!("old: {before}, new: {after}"),
                );
                return false;
            }
        }
        true
    }

    /// Message types match by name, then their fields are compared in turn.
    fn named_messages(&mut self, old: &MessageDescriptor, new: &MessageDescriptor, path: &str) -> bool {
        let (before, after) = (
            self.writer.compared_name(old.full_name()),
            self.reader.compared_name(new.full_name()),
        );
        if before != after {
            self.push(
                DifferenceKind::FieldNamedTypeChanged,
                path.to_owned(),
                format!("The type of a MESSAGE field at path '{path}' in the new schema does not match its type in the old schema"),
                format!("old: {before}, new: {after}"),
            );
            return false;
        }
        self.queue(old, new);
        true
    }
}

#[cfg(test)]
mod tests {
    //! Schemas written for these tests. Compatibility cases read as BACKWARD checks:
    //! `reader_incompatibilities(new, old)`.

    use super::*;
    use prost_reflect::prost::Message as _;

    fn schema(text: &str) -> ProtobufSchema {
        ProtobufSchema::parse(text, &[]).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    fn proto3(body: &str) -> ProtobufSchema {
        schema(&format!("syntax = \"proto3\";\npackage shop;\n{body}"))
    }

    fn proto2(body: &str) -> ProtobufSchema {
        schema(&format!("syntax = \"proto2\";\npackage shop;\n{body}"))
    }

    /// The kinds of every difference (compatible or not) when `new` reads `old`, sorted.
    fn kinds(new: &ProtobufSchema, old: &ProtobufSchema) -> Vec<DifferenceKind> {
        let mut kinds: Vec<DifferenceKind> = differences(new, old).iter().map(|d| d.kind).collect();
        kinds.sort_by_key(|k| k.name());
        kinds
    }

    fn sorted(mut kinds: Vec<DifferenceKind>) -> Vec<DifferenceKind> {
        kinds.sort_by_key(|k| k.name());
        kinds
    }

    use DifferenceKind as D;

    struct Case {
        what: &'static str,
        proto2: bool,
        old: &'static str,
        new: &'static str,
        differences: &'static [DifferenceKind],
        compatible: bool,
    }

    const fn case(
        what: &'static str,
        old: &'static str,
        new: &'static str,
        differences: &'static [DifferenceKind],
        compatible: bool,
    ) -> Case {
        Case {
            what,
            proto2: false,
            old,
            new,
            differences,
            compatible,
        }
    }

    const fn case2(
        what: &'static str,
        old: &'static str,
        new: &'static str,
        differences: &'static [DifferenceKind],
        compatible: bool,
    ) -> Case {
        Case {
            what,
            proto2: true,
            old,
            new,
            differences,
            compatible,
        }
    }

    const B: &str = "message B { int32 x = 1; }";

    /// Each rule, with a case where it applies and one of the opposite verdict.
    const CASES: &[Case] = &[
        // Messages.
        case(
            "identical",
            "message A { int32 a = 1; }",
            "message A { int32 a = 1; }",
            &[],
            true,
        ),
        case(
            "message added",
            "message A { int32 a = 1; }",
            "message A { int32 a = 1; } message C { string c = 1; }",
            &[D::MessageAdded],
            true,
        ),
        case(
            "message removed",
            "message A { int32 a = 1; } message C { string c = 1; }",
            "message A { int32 a = 1; }",
            &[D::MessageRemoved],
            false,
        ),
        case(
            "message renamed: removed plus added",
            "message A { int32 a = 1; }",
            "message Z { int32 a = 1; }",
            &[D::MessageAdded, D::MessageRemoved],
            false,
        ),
        case(
            "messages reordered",
            "message A { int32 a = 1; } message C { string c = 1; }",
            "message C { string c = 1; } message A { int32 a = 1; }",
            &[D::MessageMoved, D::MessageMoved],
            true,
        ),
        case(
            "nested message added",
            "message A { int32 a = 1; }",
            "message A { message N { int32 n = 1; } int32 a = 1; }",
            &[D::MessageAdded],
            true,
        ),
        case(
            "nested message removed",
            "message A { message N { int32 n = 1; } int32 a = 1; }",
            "message A { int32 a = 1; }",
            &[D::MessageRemoved],
            false,
        ),
        case(
            "package changed",
            "message A { int32 a = 1; }",
            "message A { int32 a = 1; }",
            &[],
            true,
        ),
        // Enums.
        case(
            "enum added",
            "message A { int32 a = 1; }",
            "message A { int32 a = 1; } enum E { E0 = 0; }",
            &[D::EnumAdded],
            true,
        ),
        case(
            "enum removed",
            "message A { int32 a = 1; } enum E { E0 = 0; }",
            "message A { int32 a = 1; }",
            &[D::EnumRemoved],
            true,
        ),
        case(
            "enum constant added",
            "enum E { X = 0; }",
            "enum E { X = 0; Y = 1; }",
            &[D::EnumConstAdded],
            true,
        ),
        case(
            "enum constant removed",
            "enum E { X = 0; Y = 1; }",
            "enum E { X = 0; }",
            &[D::EnumConstRemoved],
            true,
        ),
        case(
            "enum constant renamed",
            "enum E { X = 0; Y = 1; }",
            "enum E { X = 0; Z = 1; }",
            &[D::EnumConstChanged],
            true,
        ),
        case(
            "nested enum constant added",
            "message A { enum S { S0 = 0; } S s = 1; }",
            "message A { enum S { S0 = 0; S1 = 1; } S s = 1; }",
            &[D::EnumConstAdded],
            true,
        ),
        case(
            "enum field to another enum",
            "enum E { X = 0; } enum F { Y = 0; } message A { E e = 1; }",
            "enum E { X = 0; } enum F { Y = 0; } message A { F e = 1; }",
            &[D::FieldNamedTypeChanged],
            false,
        ),
        case(
            "enum field to int32: same wire type",
            "enum E { X = 0; } message A { E e = 1; }",
            "enum E { X = 0; } message A { int32 e = 1; }",
            &[],
            true,
        ),
        // Fields.
        case(
            "field added",
            "message A { int32 a = 1; }",
            "message A { int32 a = 1; string b = 2; }",
            &[D::FieldAdded],
            true,
        ),
        case(
            "field removed",
            "message A { int32 a = 1; string b = 2; }",
            "message A { int32 a = 1; }",
            &[D::FieldRemoved],
            true,
        ),
        case(
            "field renamed",
            "message A { int32 a = 1; }",
            "message A { int32 renamed = 1; }",
            &[D::FieldNameChanged],
            true,
        ),
        case(
            "tag reused with a compatible type: no tag tracking",
            "message A { int32 a = 1; }",
            "message A { reserved \"a\"; int64 other = 1; }",
            &[D::FieldNameChanged],
            true,
        ),
        case(
            "scalar to message",
            "message A { int32 a = 1; } message B { int32 x = 1; }",
            "message A { B a = 1; } message B { int32 x = 1; }",
            &[D::FieldKindChanged],
            false,
        ),
        case(
            "map to repeated message",
            "message A { map<string, int32> m = 1; } message B { int32 x = 1; }",
            "message A { repeated B m = 1; } message B { int32 x = 1; }",
            &[D::FieldKindChanged],
            false,
        ),
        case(
            "scalar kind across groups",
            "message A { int32 a = 1; int32 b = 2; int32 c = 3; }",
            "message A { int32 a = 1; int32 b = 2; string c = 3; }",
            &[D::FieldScalarKindChanged],
            false,
        ),
        case(
            "scalar kind within a group",
            "message A { int32 a = 1; sint32 b = 2; fixed32 c = 3; }",
            "message A { uint64 a = 1; sint64 b = 2; sfixed32 c = 3; }",
            &[],
            true,
        ),
        case(
            "message field to another message",
            "message A { B b = 1; } message B { int32 x = 1; } message C { int32 x = 1; }",
            "message A { C b = 1; } message B { int32 x = 1; } message C { int32 x = 1; }",
            &[D::FieldNamedTypeChanged],
            false,
        ),
        case(
            "message field's type changed inside",
            "message A { B b = 1; } message B { int32 x = 1; }",
            "message A { B b = 1; } message B { string x = 1; }",
            &[D::FieldScalarKindChanged],
            false,
        ),
        case(
            "message field's type grew a field",
            "message A { B b = 1; } message B { int32 x = 1; }",
            "message A { B b = 1; } message B { int32 x = 1; int32 y = 2; }",
            &[D::FieldAdded],
            true,
        ),
        case(
            "recursive message changed",
            "message Node { Node next = 1; int32 v = 2; }",
            "message Node { Node next = 1; string v = 2; }",
            &[D::FieldScalarKindChanged],
            false,
        ),
        case(
            "recursive message grew",
            "message Node { Node next = 1; int32 v = 2; }",
            "message Node { Node next = 1; int32 v = 2; Node other = 3; }",
            &[D::FieldAdded],
            true,
        ),
        case(
            "nested message's field changed",
            "message A { message N { int32 n = 1; } N n = 1; }",
            "message A { message N { double n = 1; } N n = 1; }",
            &[D::FieldScalarKindChanged],
            false,
        ),
        case(
            "numeric field made repeated",
            "message A { int32 a = 1; }",
            "message A { repeated int32 a = 1; }",
            &[D::FieldNumericLabelChanged],
            false,
        ),
        case(
            "enum field made repeated",
            "enum E { X = 0; } message A { E e = 1; }",
            "enum E { X = 0; } message A { repeated E e = 1; }",
            &[D::FieldNumericLabelChanged],
            false,
        ),
        case(
            "string field made repeated",
            "message A { string s = 1; }",
            "message A { repeated string s = 1; }",
            &[D::FieldStringOrBytesLabelChanged],
            true,
        ),
        case(
            "message field made repeated",
            "message A { B b = 1; } message B { int32 x = 1; }",
            "message A { repeated B b = 1; } message B { int32 x = 1; }",
            &[],
            true,
        ),
        case(
            "proto3 optional added: same wire format",
            "message A { int32 a = 1; }",
            "message A { optional int32 a = 1; }",
            &[],
            true,
        ),
        // Maps.
        case(
            "map value within a group",
            "message A { map<string, int32> m = 1; }",
            "message A { map<string, int64> m = 1; }",
            &[],
            true,
        ),
        case(
            "map value across groups",
            "message A { map<string, int32> m = 1; }",
            "message A { map<string, string> m = 1; }",
            &[D::FieldScalarKindChanged],
            false,
        ),
        case(
            "map key across groups",
            "message A { map<string, int32> m = 1; }",
            "message A { map<int32, int32> m = 1; }",
            &[D::FieldScalarKindChanged],
            false,
        ),
        case(
            "map message value changed inside",
            "message A { map<string, B> m = 1; } message B { int32 x = 1; }",
            "message A { map<string, B> m = 1; } message B { fixed64 x = 1; }",
            &[D::FieldScalarKindChanged],
            false,
        ),
        case(
            "map value scalar to message",
            "message A { map<string, int32> m = 1; } message B { int32 x = 1; }",
            "message A { map<string, B> m = 1; } message B { int32 x = 1; }",
            &[D::FieldKindChanged],
            false,
        ),
        // Oneofs.
        case(
            "oneof added with new fields",
            "message A { int32 a = 1; }",
            "message A { int32 a = 1; oneof c { string x = 2; int32 y = 3; } }",
            &[D::FieldAdded, D::FieldAdded, D::OneofAdded],
            true,
        ),
        case(
            "oneof removed with its fields",
            "message A { int32 a = 1; oneof c { string x = 2; int32 y = 3; } }",
            "message A { int32 a = 1; }",
            &[D::FieldRemoved, D::FieldRemoved, D::OneofRemoved],
            true,
        ),
        case(
            "oneof field added",
            "message A { oneof c { string x = 2; } }",
            "message A { oneof c { string x = 2; int32 y = 3; } }",
            &[D::OneofFieldAdded],
            true,
        ),
        case(
            "oneof field removed",
            "message A { oneof c { string x = 2; int32 y = 3; } }",
            "message A { oneof c { string x = 2; } }",
            &[D::OneofFieldRemoved],
            false,
        ),
        case(
            "oneof field moved to top level",
            "message A { oneof c { string x = 2; int32 y = 3; } }",
            "message A { oneof c { string x = 2; } int32 y = 3; }",
            &[D::OneofFieldMovedToTopLevel],
            true,
        ),
        case(
            "one field moved into a new oneof",
            "message A { int32 a = 1; string b = 2; }",
            "message A { int32 a = 1; oneof c { string b = 2; } }",
            &[D::OneofAdded],
            true,
        ),
        case(
            "two fields moved into a new oneof",
            "message A { int32 a = 1; string b = 2; }",
            "message A { oneof c { int32 a = 1; string b = 2; } }",
            &[D::MultipleFieldsMovedToOneof, D::OneofAdded],
            false,
        ),
        case(
            "oneof renamed: its fields stay exclusive",
            "message A { oneof c { int32 a = 1; string b = 2; } }",
            "message A { oneof d { int32 a = 1; string b = 2; } }",
            &[D::OneofAdded, D::OneofRemoved],
            true,
        ),
        case(
            "field moved into an existing oneof",
            "message A { int32 a = 1; oneof c { string b = 2; } }",
            "message A { oneof c { int32 a = 1; string b = 2; } }",
            &[D::FieldMovedToExistingOneof],
            false,
        ),
        // proto2.
        case2(
            "proto2 optional field added",
            "message A { optional int32 a = 1; }",
            "message A { optional int32 a = 1; optional int32 b = 2; }",
            &[D::FieldAdded],
            true,
        ),
        case2(
            "proto2 required field added",
            "message A { optional int32 a = 1; }",
            "message A { optional int32 a = 1; required int32 b = 2; }",
            &[D::RequiredFieldAdded],
            false,
        ),
        case2(
            "proto2 optional field removed",
            "message A { optional int32 a = 1; optional string b = 2; }",
            "message A { optional int32 a = 1; }",
            &[D::FieldRemoved],
            true,
        ),
        case2(
            "proto2 required field removed",
            "message A { optional int32 a = 1; required string b = 2; }",
            "message A { optional int32 a = 1; }",
            &[D::RequiredFieldRemoved],
            false,
        ),
        case2(
            "proto2 field made required",
            "message A { optional int32 a = 1; }",
            "message A { required int32 a = 1; }",
            &[D::RequiredFieldAdded],
            false,
        ),
        case2(
            "proto2 field no longer required",
            "message A { required int32 a = 1; }",
            "message A { optional int32 a = 1; }",
            &[D::RequiredFieldRemoved],
            false,
        ),
        case2(
            "proto2 nested message with a default changed",
            "message A { message N { optional int32 n = 1 [default = 3]; } optional N n = 1; }",
            "message A { message N { optional int32 n = 1 [default = 4]; } optional N n = 1; }",
            &[],
            true,
        ),
        case2(
            "proto2 group field changed inside",
            "message A { optional group G = 1 { optional int32 x = 2; } }",
            "message A { optional group G = 1 { optional float x = 2; } }",
            &[D::FieldScalarKindChanged],
            false,
        ),
    ];

    #[test]
    fn each_rule_case_by_case() {
        for case in CASES {
            let (old, new) = if case.proto2 {
                (proto2(case.old), proto2(case.new))
            } else {
                (proto3(case.old), proto3(case.new))
            };
            assert_eq!(
                kinds(&new, &old),
                sorted(case.differences.to_vec()),
                "{}: differences",
                case.what
            );
            let incompatible = reader_incompatibilities(&new, &old);
            assert_eq!(
                incompatible.is_empty(),
                case.compatible,
                "{}: {incompatible:?}",
                case.what
            );
        }
    }

    #[test]
    fn the_scalar_groups_decide_which_scalars_read_each_other() {
        let groups: &[&[&str]] = &[
            &["int32", "int64", "uint32", "uint64", "bool"],
            &["sint32", "sint64"],
            &["string", "bytes"],
            &["fixed32", "sfixed32"],
            &["fixed64", "sfixed64"],
            &["float"],
            &["double"],
        ];
        let of = |t: &str| proto3(&format!("message A {{ {t} a = 1; }}"));
        for (i, group) in groups.iter().enumerate() {
            for (j, other) in groups.iter().enumerate() {
                for old in group.iter() {
                    for new in other.iter() {
                        let found = reader_incompatibilities(&of(new), &of(old));
                        if i == j {
                            assert!(found.is_empty(), "{old} → {new}: {found:?}");
                        } else {
                            assert_eq!(found.len(), 1, "{old} → {new}");
                            assert_eq!(found[0].kind, D::FieldScalarKindChanged, "{old} → {new}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn a_package_change_is_reported_once() {
        let old = schema("syntax = \"proto3\"; package shop; message A { B b = 1; } message B { int32 x = 1; }");
        let new = schema("syntax = \"proto3\"; package store; message A { B b = 1; } message B { int32 x = 1; }");
        assert_eq!(kinds(&new, &old), vec![D::PackageChanged]);
        let found = reader_incompatibilities(&new, &old);
        assert_eq!(found[0].path, "#/");
        assert_eq!(found[0].additional_info, "old: 'shop', new: 'store'");
    }

    #[test]
    fn forward_is_the_other_direction() {
        let old = proto2("message A { optional int32 a = 1; }");
        let new = proto2("message A { optional int32 a = 1; required int32 b = 2; }");
        assert_eq!(kinds(&new, &old), vec![D::RequiredFieldAdded]);
        assert_eq!(kinds(&old, &new), vec![D::RequiredFieldRemoved]);
        let (old, new) = (proto3(B), proto3(&format!("{B} message C {{ int32 c = 1; }}")));
        assert!(
            reader_incompatibilities(&new, &old).is_empty(),
            "an added message reads old data"
        );
        assert_eq!(kinds(&old, &new), vec![D::MessageRemoved], "but old readers lack it");
    }

    #[test]
    fn incompatibilities_render_like_confluents() {
        let old = proto3("message Order { string id = 1; int32 count = 3; }");
        let new = proto3("message Order { string id = 1; string count = 3; }");
        let found = reader_incompatibilities(&new, &old);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].path, "#/Order/3");
        assert_eq!(found[0].additional_info, "old: int32, new: string");
        let text = found[0].to_string();
        assert!(
            text.starts_with("{errorType:'FIELD_SCALAR_KIND_CHANGED', description:'"),
            "{text}"
        );
        assert!(text.contains("at path '#/Order/3'"), "{text}");
        assert!(text.ends_with("additionalInfo:'old: int32, new: string'}"), "{text}");
    }

    #[test]
    fn nested_paths_name_the_message_within_the_package() {
        let old = proto3("message A { message N { int32 n = 1; } N n = 1; }");
        let new = proto3("message A { message N { bytes n = 1; } N n = 1; }");
        let found = reader_incompatibilities(&new, &old);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].path, "#/A.N/1");
    }

    const MONEY_V1: &str =
        "syntax = \"proto3\";\npackage common;\nmessage Money { string currency = 1; int64 units = 2; }\n";
    const MONEY_V2: &str =
        "syntax = \"proto3\";\npackage common;\nmessage Money { string currency = 1; string units = 2; }\n";
    const ORDER: &str = "syntax = \"proto3\";\npackage shop;\nimport \"common/money.proto\";\nmessage Order { common.Money total = 1; }\n";

    #[test]
    fn an_import_resolves_through_a_reference() {
        let order = ProtobufSchema::parse(ORDER, &[("common/money.proto", MONEY_V1)]).unwrap();
        assert_eq!(order.record_name().as_deref(), Some("shop.Order"));
        assert!(order.canonical_string().contains("import \"common/money.proto\";"));
        assert!(order.canonical_string().contains("common.Money total = 1;"));
        let missing = ProtobufSchema::parse(ORDER, &[]).unwrap_err();
        assert!(missing.contains("common/money.proto"), "{missing}");
    }

    #[test]
    fn referenced_types_are_compared_too() {
        let old = ProtobufSchema::parse(ORDER, &[("common/money.proto", MONEY_V1)]).unwrap();
        let new = ProtobufSchema::parse(ORDER, &[("common/money.proto", MONEY_V2)]).unwrap();
        let found = reader_incompatibilities(&new, &old);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].kind, D::FieldScalarKindChanged);
        assert_eq!(found[0].path, "#/common.Money/2");
        let same = ProtobufSchema::parse(ORDER, &[("common/money.proto", MONEY_V1)]).unwrap();
        assert!(differences(&same, &old).is_empty());
    }

    #[test]
    fn well_known_imports_need_no_reference() {
        let text = r#"syntax = "proto3";
package shop;
import "google/protobuf/timestamp.proto";
import "google/type/money.proto";
import "google/type/date.proto";
import "confluent/meta.proto";
import "confluent/type/decimal.proto";
message Order {
  google.protobuf.Timestamp at = 1;
  google.type.Money total = 2 [(confluent.field_meta) = { doc: "gross", tags: ["PII", "money"] }];
  google.type.Date day = 3;
  confluent.type.Decimal tax = 4;
}
"#;
        let order = schema(text);
        let canonical = order.canonical_string();
        assert!(canonical.contains("google.protobuf.Timestamp at = 1;"), "{canonical}");
        assert!(
            canonical.contains(
                r#"google.type.Money total = 2 [(confluent.field_meta) = { doc: "gross" tags: "PII" tags: "money" }];"#
            ),
            "{canonical}"
        );
        assert_eq!(schema(&canonical).canonical_string(), canonical);
        for path in [
            "google/type/calendar_period.proto",
            "google/type/color.proto",
            "google/type/datetime.proto",
            "google/type/dayofweek.proto",
            "google/type/decimal.proto",
            "google/type/expr.proto",
            "google/type/fraction.proto",
            "google/type/interval.proto",
            "google/type/latlng.proto",
            "google/type/localized_text.proto",
            "google/type/month.proto",
            "google/type/phone_number.proto",
            "google/type/postal_address.proto",
            "google/type/quaternion.proto",
            "google/type/timeofday.proto",
            "google/protobuf/any.proto",
            "google/protobuf/struct.proto",
            "google/protobuf/wrappers.proto",
        ] {
            ProtobufSchema::parse(&format!("syntax = \"proto3\";\nimport \"{path}\";\n"), &[])
                .unwrap_or_else(|e| panic!("{path}: {e}"));
        }
    }

    #[test]
    fn an_unknown_import_is_an_error() {
        let error = ProtobufSchema::parse(
            "syntax = \"proto3\";\nimport \"nowhere/missing.proto\";\nmessage A { int32 a = 1; }\n",
            &[],
        )
        .unwrap_err();
        assert!(error.contains("nowhere/missing.proto"), "{error}");
        assert!(error.contains("not found"), "{error}");
    }

    #[test]
    fn syntax_errors_say_where() {
        let error = ProtobufSchema::parse("syntax = \"proto3\";\nmessage A {\n  int32 a = ;\n}\n", &[]).unwrap_err();
        assert!(error.starts_with("schema.proto:3:"), "{error}");
        for garbage in [
            "message",
            "}{",
            "syntax = \"proto9\";",
            "message A { int32 a = 1 }",
            "\u{0}\u{ff}",
        ] {
            assert!(ProtobufSchema::parse(garbage, &[]).is_err(), "{garbage:?}");
        }
    }

    #[test]
    fn unknown_types_and_clashing_numbers_are_errors() {
        let error = ProtobufSchema::parse("syntax = \"proto3\";\nmessage A { Missing m = 1; }\n", &[]).unwrap_err();
        assert!(error.contains("Missing"), "{error}");
        let error =
            ProtobufSchema::parse("syntax = \"proto3\";\nmessage A { int32 a = 1; int32 b = 1; }\n", &[]).unwrap_err();
        assert!(!error.is_empty());
    }

    #[test]
    fn a_reference_may_not_take_the_schemas_own_name() {
        let main = "syntax = \"proto3\";\nimport \"schema.proto\";\nmessage A { B b = 1; }\n";
        let reference = "syntax = \"proto3\";\nmessage B { int32 x = 1; }\n";
        let parsed = ProtobufSchema::parse(main, &[("schema.proto", reference)]).unwrap();
        assert_eq!(parsed.record_name().as_deref(), Some("A"));
    }

    #[test]
    fn canonical_strings_ignore_whitespace_comments_and_name_spelling() {
        let compact = "syntax=\"proto3\";package shop;message Order{string id=1;Item item=2;message Item{int32 n=1;}}";
        let spaced = r#"
            // An order.
            syntax = "proto3";
            package shop;

            /* The order itself. */
            message Order {
                string   id   = 1;   // its id
                .shop.Order.Item item = 2;

                message Item {
                    int32 n = 1;
                }
            }
        "#;
        let (a, b) = (schema(compact), schema(spaced));
        assert_eq!(a.canonical_string(), b.canonical_string());
        assert_eq!(
            a.canonical_string(),
            "syntax = \"proto3\";\npackage shop;\n\nmessage Order {\n  string id = 1;\n  Order.Item item = 2;\n  message Item {\n    int32 n = 1;\n  }\n}\n"
        );
        assert_ne!(
            a.canonical_string(),
            proto3("message Order { string id = 1; }").canonical_string()
        );
    }

    const RICH: &str = r#"syntax = "proto3";
package shop.v1;

import "google/protobuf/timestamp.proto";
import "google/protobuf/descriptor.proto";

option java_package = "com.shop.v1";
option optimize_for = SPEED;

message Order {
  option deprecated = true;
  reserved 8, 10 to 12, 100 to max;
  reserved "legacy", "old";

  string id = 1 [json_name = "orderId"];
  repeated int64 amounts = 2 [packed = false];
  map<string, Item> items = 3;
  optional string note = 4;
  google.protobuf.Timestamp at = 5 [deprecated = true];
  Status status = 6;
  bytes blob = 7;
  oneof payment {
    string card = 20;
    Item voucher = 21;
  }

  message Item {
    string sku = 1;
    double price = 2;
    Item parent = 3;
  }

  enum Status {
    option allow_alias = true;
    UNKNOWN = 0;
    OPEN = 1;
    STARTED = 1;
    CLOSED = 2 [deprecated = true];
  }
}

enum Channel {
  reserved 5 to 7;
  reserved "FAX";
  CHANNEL_UNKNOWN = 0;
  WEB = 1;
}

extend google.protobuf.MessageOptions {
  string owner = 50001;
}

service Orders {
  option deprecated = true;
  rpc Get (Order) returns (Order);
  rpc Watch (stream Order.Item) returns (stream Order) {
    option idempotency_level = NO_SIDE_EFFECTS;
  }
}
"#;

    #[test]
    fn the_canonical_form_parses_back_to_itself() {
        let rich = schema(RICH);
        let canonical = rich.canonical_string();
        for expected in [
            "syntax = \"proto3\";\npackage shop.v1;\n",
            "import \"google/protobuf/timestamp.proto\";\nimport \"google/protobuf/descriptor.proto\";\n",
            "option java_package = \"com.shop.v1\";",
            "option optimize_for = SPEED;",
            "  option deprecated = true;",
            "  reserved 8, 10 to 12, 100 to max;",
            "  reserved \"legacy\", \"old\";",
            "  string id = 1 [json_name = \"orderId\"];",
            "  repeated int64 amounts = 2 [packed = false];",
            "  map<string, Order.Item> items = 3;",
            "  optional string note = 4;",
            "  google.protobuf.Timestamp at = 5 [deprecated = true];",
            "  oneof payment {\n    string card = 20;\n    Order.Item voucher = 21;\n  }",
            "    Order.Item parent = 3;",
            "    option allow_alias = true;",
            "    STARTED = 1;",
            "    CLOSED = 2 [deprecated = true];",
            "  reserved 5 to 7;",
            "extend google.protobuf.MessageOptions {\n  string owner = 50001;\n}",
            "  rpc Get (Order) returns (Order);",
            "  rpc Watch (stream Order.Item) returns (stream Order) {\n    option idempotency_level = NO_SIDE_EFFECTS;\n  }",
        ] {
            assert!(canonical.contains(expected), "missing {expected:?} in\n{canonical}");
        }
        assert!(
            !canonical.contains("ItemsEntry"),
            "map entries print as maps:\n{canonical}"
        );
        assert!(
            !canonical.contains("_note"),
            "proto3 optional's oneof is not printed:\n{canonical}"
        );
        let again = schema(&canonical);
        assert_eq!(again.canonical_string(), canonical);
        assert!(differences(&again, &rich).is_empty());
    }

    #[test]
    fn every_variant_that_parses_round_trips_and_none_panics() {
        let lines: Vec<&str> = RICH.lines().collect();
        let mut parsed = 0;
        for skip in 0..lines.len() {
            let text: Vec<&str> = lines
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != skip)
                .map(|(_, l)| *l)
                .collect();
            let Ok(variant) = ProtobufSchema::parse(&text.join("\n"), &[]) else {
                continue;
            };
            parsed += 1;
            for printed in [variant.canonical_string(), variant.normalized_string()] {
                let again = ProtobufSchema::parse(&printed, &[]).unwrap_or_else(|e| panic!("{e}\n{printed}"));
                assert!(differences(&again, &variant).is_empty(), "{printed}");
            }
        }
        assert!(parsed > lines.len() / 2, "only {parsed} variants parsed");
        for end in (0..RICH.len()).filter(|&end| RICH.is_char_boundary(end)) {
            let _ = ProtobufSchema::parse(&RICH[..end], &[]);
        }
    }

    #[test]
    fn proto2_prints_labels_defaults_groups_and_extensions() {
        let text = r#"syntax = "proto2";
package legacy;
message Record {
  required int32 id = 1;
  optional string name = 2 [default = "a \"quoted\"\nname"];
  optional Kind kind = 3 [default = SMALL];
  optional float ratio = 4 [default = inf];
  optional bytes raw = 5 [default = "\001\377"];
  repeated group Entry = 6 {
    optional int32 x = 7;
  }
  extensions 100 to 199, 1000 to max;
  enum Kind { SMALL = 1; LARGE = 2; }
}
extend Record {
  optional int32 extra = 100;
}
"#;
        let record = schema(text);
        let canonical = record.canonical_string();
        for expected in [
            "syntax = \"proto2\";",
            "  required int32 id = 1;",
            r#"  optional string name = 2 [default = "a \"quoted\"\nname"];"#,
            "  optional Record.Kind kind = 3 [default = SMALL];",
            "  optional float ratio = 4 [default = inf];",
            "  repeated group Entry = 6 {\n    optional int32 x = 7;\n  }",
            "  extensions 100 to 199, 1000 to max;",
            "extend Record {\n  optional int32 extra = 100;\n}",
        ] {
            assert!(canonical.contains(expected), "missing {expected:?} in\n{canonical}");
        }
        assert!(!canonical.contains("message Entry"), "groups print once:\n{canonical}");
        assert_eq!(schema(&canonical).canonical_string(), canonical);
    }

    #[test]
    fn normalizing_sorts_what_confluent_sorts() {
        let a = schema(
            r#"syntax = "proto3";
package shop;
import "google/protobuf/timestamp.proto";
import "google/protobuf/duration.proto";
option java_package = "p";
option java_multiple_files = true;
message B { int32 b = 1; }
message A {
  reserved 9, 7;
  string second = 2 [deprecated = true, json_name = "s"];
  int32 first = 1;
  oneof o { int32 y = 6; int32 x = 5; }
  google.protobuf.Timestamp t = 4;
  google.protobuf.Duration d = 3;
}
enum E { X = 0; Z = 2; Y = 1; }
"#,
        );
        let b = schema(
            r#"syntax = "proto3";
package shop;
import "google/protobuf/duration.proto";
import "google/protobuf/timestamp.proto";
option java_multiple_files = true;
option java_package = "p";
message B { int32 b = 1; }
message A {
  reserved 7, 9;
  int32 first = 1;
  google.protobuf.Duration d = 3;
  string second = 2 [json_name = "s", deprecated = true];
  google.protobuf.Timestamp t = 4;
  oneof o { int32 x = 5; int32 y = 6; }
}
enum E { X = 0; Y = 1; Z = 2; }
"#,
        );
        assert_ne!(a.canonical_string(), b.canonical_string());
        let normalized = a.normalized_string();
        assert_eq!(normalized, b.normalized_string());
        assert_eq!(
            normalized,
            r#"syntax = "proto3";
package shop;

import "google/protobuf/duration.proto";
import "google/protobuf/timestamp.proto";

option java_multiple_files = true;
option java_package = "p";

message B {
  int32 b = 1;
}

message A {
  reserved 7, 9;
  int32 first = 1;
  string second = 2 [deprecated = true, json_name = "s"];
  google.protobuf.Duration d = 3;
  google.protobuf.Timestamp t = 4;
  oneof o {
    int32 x = 5;
    int32 y = 6;
  }
}

enum E {
  X = 0;
  Y = 1;
  Z = 2;
}
"#
        );
        assert_eq!(schema(&normalized).normalized_string(), normalized);
    }

    #[test]
    fn shadowed_names_are_qualified() {
        // Inside Outer, `Inner` would mean Outer.Inner, so the top-level one needs more.
        let text = "syntax = \"proto3\";\npackage p;\nmessage Inner { int32 a = 1; }\nmessage Outer {\n  message Inner { int32 b = 1; }\n  .p.Inner top = 1;\n  Inner nested = 2;\n}\n";
        let canonical = schema(text).canonical_string();
        assert!(canonical.contains("  p.Inner top = 1;"), "{canonical}");
        assert!(canonical.contains("  Outer.Inner nested = 2;"), "{canonical}");
        assert_eq!(schema(&canonical).canonical_string(), canonical);
    }

    const INDEXED: &str = r#"syntax = "proto3";
package idx;
message First { int32 a = 1; }
enum Ignored { ZERO = 0; }
message Second {
  map<string, int32> counts = 1;
  message Inner {
    message Deep { int32 d = 1; }
    int32 i = 1;
  }
  message Other { int32 o = 1; }
}
"#;

    #[test]
    fn message_indexes_name_messages() {
        let indexed = schema(INDEXED);
        let name = |indexes: &[i32]| indexed.message_name(indexes);
        assert_eq!(name(&[0]).as_deref(), Some("idx.First"));
        assert_eq!(name(&[]).as_deref(), Some("idx.First"), "no indexes mean [0]");
        assert_eq!(name(&[1]).as_deref(), Some("idx.Second"));
        assert_eq!(
            name(&[1, 0]).as_deref(),
            Some("idx.Second.Inner"),
            "the map entry is not counted"
        );
        assert_eq!(name(&[1, 0, 0]).as_deref(), Some("idx.Second.Inner.Deep"));
        assert_eq!(name(&[1, 1]).as_deref(), Some("idx.Second.Other"));
        for out_of_range in [&[2][..], &[1, 2], &[0, 0], &[-1], &[1, 0, 0, 0], &[i32::MAX]] {
            assert_eq!(name(out_of_range), None, "{out_of_range:?}");
        }
        assert_eq!(indexed.record_name().as_deref(), Some("idx.First"));
        assert_eq!(proto3("enum OnlyEnum { Z = 0; }").record_name(), None);
    }

    #[test]
    fn message_indexes_round_trip() {
        for indexes in [
            vec![0],
            vec![1],
            vec![1, 0],
            vec![3, 2, 1, 0],
            vec![0, 0, 0],
            vec![300, 70_000],
            vec![i32::MAX],
            vec![0; MESSAGE_INDEXES_MAX],
        ] {
            let mut out = Vec::new();
            write_message_indexes(&indexes, &mut out);
            out.extend_from_slice(b"payload");
            let (read, rest) = read_message_indexes(&out).unwrap();
            assert_eq!(read, indexes);
            assert_eq!(rest, b"payload");
        }
    }

    #[test]
    fn message_indexes_use_confluents_bytes() {
        let mut out = Vec::new();
        write_message_indexes(&[0], &mut out);
        assert_eq!(out, [0x00], "[0] is the single byte 0");
        out.clear();
        write_message_indexes(&[1, 0], &mut out);
        assert_eq!(out, [0x04, 0x02, 0x00], "zig-zag: count 2, then 1 and 0");
        let (read, rest) = read_message_indexes(&[0x00, 0x0a]).unwrap();
        assert_eq!((read, rest), (vec![0], &[0x0a][..]), "a count of 0 means [0]");
        let (read, _) = read_message_indexes(&[0x02, 0x00]).unwrap();
        assert_eq!(read, vec![0], "an explicit [0] reads too");
    }

    #[test]
    fn bad_message_indexes_are_errors() {
        let too_many = {
            let mut out = Vec::new();
            write_varint(i32::try_from(MESSAGE_INDEXES_MAX).unwrap() + 1, &mut out);
            out.extend(std::iter::repeat_n(0u8, 64));
            out
        };
        let huge_count = {
            let mut out = Vec::new();
            write_varint(i32::MAX, &mut out);
            out
        };
        for (what, input) in [
            ("empty", vec![]),
            ("truncated count", vec![0x80]),
            ("truncated indexes", vec![0x04, 0x02]),
            ("count with no indexes", vec![0x06]),
            ("negative count", vec![0x01]),
            ("negative index", vec![0x02, 0x01]),
            ("varint longer than 5 bytes", vec![0xff; 6]),
            ("varint overflowing 32 bits", vec![0xff, 0xff, 0xff, 0xff, 0x7f]),
            ("too many", too_many),
            ("absurd count", huge_count),
        ] {
            assert!(read_message_indexes(&input).is_err(), "{what}");
        }
    }

    #[test]
    fn validate_decodes_the_named_message() {
        let indexed = schema(INDEXED);
        let pool = indexed.descriptor().parent_pool().clone();
        let mut inner = DynamicMessage::new(pool.get_message_by_name("idx.Second.Inner").unwrap());
        inner.set_field_by_name("i", Value::I32(42));
        let payload = inner.encode_to_vec();
        assert!(indexed.validate(&[1, 0], &payload).is_ok());
        assert!(indexed.validate(&[0], &[]).is_ok(), "an empty message is valid");
        let garbage = [0x0a, 0xff, 0xff];
        let error = indexed.validate(&[1, 0], &garbage).unwrap_err();
        assert!(error.contains("idx.Second.Inner"), "{error}");
        assert!(indexed.validate(&[0], &[0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(
            indexed.validate(&[0], &[0x0a, 0x01, 0x41]).is_err(),
            "field 1 is an int32, not bytes"
        );
        assert!(indexed.validate(&[7], &payload).is_err(), "no such message");
    }

    #[test]
    fn validate_requires_proto2_required_fields() {
        let record =
            proto2("message R { required int32 id = 1; optional N n = 2; } message N { required string s = 1; }");
        let pool = record.descriptor().parent_pool().clone();
        let message = |fields: &[(&str, Value)]| {
            let mut m = DynamicMessage::new(pool.get_message_by_name("shop.R").unwrap());
            for (name, value) in fields {
                m.set_field_by_name(name, value.clone());
            }
            m.encode_to_vec()
        };
        assert!(record.validate(&[0], &message(&[("id", Value::I32(1))])).is_ok());
        let error = record.validate(&[0], &message(&[])).unwrap_err();
        assert!(error.contains("shop.R.id"), "{error}");
        let empty_n = Value::Message(DynamicMessage::new(pool.get_message_by_name("shop.N").unwrap()));
        let error = record
            .validate(&[0], &message(&[("id", Value::I32(1)), ("n", empty_n)]))
            .unwrap_err();
        assert!(error.contains("shop.N.s"), "{error}");
    }

    #[test]
    fn a_long_chain_of_message_types_does_not_exhaust_the_stack() {
        let chain = |last: &str| {
            let mut text = String::from("syntax = \"proto3\";\n");
            for i in 0..2000 {
                let _ = writeln!(text, "message M{i} {{ M{} next = 1; }}", i + 1);
            }
            let _ = writeln!(text, "message M2000 {{ {last} v = 1; }}");
            schema(&text)
        };
        let (old, new) = (chain("int32"), chain("string"));
        let found = reader_incompatibilities(&new, &old);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].path, "#/M2000/1");
    }
}
