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

mod wellknown;

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
        if let Some((_, text)) = wellknown::EMBEDDED_FILES.iter().find(|(path, _)| *path == name) {
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
mod tests;
