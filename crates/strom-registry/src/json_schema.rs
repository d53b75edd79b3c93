//! JSON Schema: parsing with references, canonical form, Confluent's compatibility
//! rules (`SchemaDiff`) and payload validation.
//!
//! Parsing compiles the schema with the `jsonschema` crate, its references registered
//! as resources under their names (the URL a `$ref` uses) and nothing fetched, so a
//! schema the registry accepts is one the broker can validate payloads with.
//!
//! The compatibility check follows Confluent's `SchemaDiff`. Each schema is read into a
//! graph of typed nodes the way Confluent's loader sees it: a `type` array is an
//! `anyOf` of one node per type, and an object with keywords of several kinds (a type,
//! an `enum`, an `allOf`, ...) is an implicit `allOf` of one node per kind. The old and
//! the new graph are then walked together and every difference is named (Confluent's
//! `Difference.Type`) with its JSON path; those outside the STRICT policy's allowed set
//! are the incompatibilities.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use jsonschema::{Draft, Resource, Retrieve, Uri, ValidationError, Validator};
use serde_json::{Map, Value};

/// The draft a schema without a known `$schema` is read as, as Confluent does.
const DRAFT_DEFAULT: Draft = Draft::Draft7;
/// The base URI of a document without `$id`, as the `jsonschema` crate uses it.
const ROOT_URI: &str = "json-schema:///";
/// Nesting of the comparison (subschemas within subschemas, `$ref`s followed): deeper
/// than this, the schemas count as incompatible rather than risking the stack.
const COMPARE_DEPTH_MAX: usize = 128;
/// Steps one comparison may take: subschema pairs visited (remembered or not) and
/// edges tried when pairing combinator branches. Combinators compare every branch with
/// every branch, so this bounds the time a hostile schema can take.
const COMPARE_STEPS_MAX: usize = 1_000_000;
/// `$ref`s followed in a row to reach a schema (a `$ref` to a `$ref` to ...).
const REF_HOPS_MAX: usize = 32;
/// A payload error quotes the offending value; longer messages are cut.
const VALIDATION_MESSAGE_CHARS_MAX: usize = 500;

/// A JSON Schema the registry accepted: valid for its draft, every `$ref` resolved.
#[derive(Debug, Clone)]
pub struct JsonSchema {
    /// The text compacted, keys in their written order.
    canonical: String,
    /// The schema first, then its references.
    documents: Arc<[Document]>,
    graph: Arc<Graph>,
    validator: Validator,
}

#[derive(Debug)]
struct Document {
    value: Value,
    draft: Draft,
    /// The reference name, for a reference.
    name: Option<String>,
    /// Absolute URIs (no fragment) `$ref`s find the document by.
    uris: Vec<String>,
    /// What relative `$ref`s in the document resolve against.
    base: String,
}

impl JsonSchema {
    /// Parses `text` and checks it is a valid JSON Schema for its draft (`$schema`
    /// naming draft 4, 6, 7, 2019-09 or 2020-12; draft 7 otherwise). `references` are
    /// (name, schema text) pairs, the name being the URL a `$ref` uses; nothing else is
    /// fetched, so a `$ref` to any other external URL is an error.
    pub fn parse(text: &str, references: &[(&str, &str)]) -> Result<JsonSchema, String> {
        let value = read_json(text).map_err(|e| format!("Invalid JSON schema: {e}"))?;
        let draft = draft_named(&value).unwrap_or(DRAFT_DEFAULT);
        let base = id_of(&value, draft)
            .and_then(|id| resolve(ROOT_URI, id))
            .unwrap_or_else(|| ROOT_URI.to_owned());
        let mut documents = vec![Document {
            uris: vec![strip_fragment(&base).to_owned()],
            base: base.clone(),
            value,
            draft,
            name: None,
        }];
        for (name, text) in references {
            let value = read_json(text).map_err(|e| format!("Invalid reference '{name}': {e}"))?;
            documents.push(reference_document(name, value, draft, &base)?);
        }
        let validator = compile(&documents)?;
        let graph = Graph::build(&documents);
        Ok(JsonSchema {
            canonical: compact(text),
            documents: documents.into(),
            graph: Arc::new(graph),
            validator,
        })
    }

    /// Confluent's canonical form: the JSON without whitespace, keys as written.
    pub fn canonical_string(&self) -> String {
        self.canonical.clone()
    }

    /// `normalize=true`: compact, object keys sorted at every level.
    pub fn normalized_string(&self) -> String {
        let mut out = String::with_capacity(self.canonical.len());
        if let Some(document) = self.documents.first() {
            write_sorted(&document.value, &mut out);
        }
        out
    }

    /// The name RecordNameStrategy uses: the top-level `title`, if a string.
    pub fn record_name(&self) -> Option<String> {
        let document = self.documents.first()?;
        document.value.get("title")?.as_str().map(str::to_owned)
    }

    /// Checks a decoded payload against the schema, references resolved. The error
    /// names the first failing place in the payload.
    pub fn validate(&self, value: &Value) -> Result<(), String> {
        self.validator.validate(value).map_err(|error| {
            let message: String = error.to_string().chars().take(VALIDATION_MESSAGE_CHARS_MAX).collect();
            format!(
                "The payload does not match the schema at '#{}': {message}",
                error.instance_path().as_str()
            )
        })
    }
}

fn read_json(text: &str) -> Result<Value, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    if !value.is_object() && !value.is_boolean() {
        return Err("expected an object or a boolean at the root".into());
    }
    Ok(value)
}

/// A reference, known by its name and by the name resolved against the schema's
/// `$id` (a relative name then works whatever the schema's base).
fn reference_document(name: &str, value: Value, draft: Draft, schema_base: &str) -> Result<Document, String> {
    let draft = draft_named(&value).unwrap_or(draft);
    let invalid = || format!("Invalid reference name '{name}': not a URI reference");
    let named = resolve(ROOT_URI, name).ok_or_else(invalid)?;
    let mut uris = vec![strip_fragment(&named).to_owned()];
    if let Some(relative) = resolve(schema_base, name) {
        uris.push(strip_fragment(&relative).to_owned());
    }
    let base = id_of(&value, draft).and_then(|id| resolve(&named, id)).unwrap_or(named);
    uris.push(strip_fragment(&base).to_owned());
    let mut seen = HashSet::new();
    uris.retain(|uri| seen.insert(uri.clone()));
    Ok(Document {
        value,
        draft,
        name: Some(name.to_owned()),
        uris,
        base,
    })
}

/// The draft a `$schema` names, if one of those known.
fn draft_named(value: &Value) -> Option<Draft> {
    let uri = value.as_object()?.get("$schema")?.as_str()?;
    match Draft::from_schema_uri(uri) {
        Draft::Unknown => None,
        draft => Some(draft),
    }
}

fn id_keyword(draft: Draft) -> &'static str {
    if draft == Draft::Draft4 {
        "id"
    } else {
        "$id"
    }
}

/// A schema object's `$id` naming a resource (not a plain-name fragment).
fn id_of(value: &Value, draft: Draft) -> Option<&str> {
    let id = value.as_object()?.get(id_keyword(draft))?.as_str()?;
    (!id.starts_with('#')).then_some(id)
}

/// Refuses every retrieval: a schema may use only its references.
struct NoRetrieval;

impl Retrieve for NoRetrieval {
    fn retrieve(&self, uri: &Uri<String>) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        Err(format!("'{}' is not one of the schema's references", uri.as_str()).into())
    }
}

fn options<'i>(draft: Draft) -> jsonschema::ValidationOptions<'i> {
    jsonschema::options().with_draft(draft).with_retriever(NoRetrieval)
}

/// Compiles the schema with its references registered as resources; each reference is
/// compiled too, so it must be valid and its own `$ref`s must resolve.
fn compile(documents: &[Document]) -> Result<Validator, String> {
    let Some((main, references)) = documents.split_first() else {
        return Err("Invalid JSON schema: no schema".into());
    };
    let mut resources: Vec<(String, Resource)> = Vec::new();
    for reference in references {
        for uri in &reference.uris {
            resources.push((uri.clone(), reference.draft.create_resource(reference.value.clone())));
        }
    }
    let invalid_reference = |e: jsonschema::ReferencingError| format!("Invalid reference: {e}");
    let registry = jsonschema::Registry::new()
        .retriever(NoRetrieval)
        .draft(main.draft)
        .retrieve_known_draft_meta_schemas(false)
        .extend(resources)
        .map_err(invalid_reference)?
        .prepare()
        .map_err(invalid_reference)?;
    for reference in references {
        let name = reference.name.as_deref().unwrap_or_default();
        let mut options = options(reference.draft).with_registry(&registry);
        if let Some(uri) = reference.uris.first() {
            options = options.with_base_uri(uri.clone());
        }
        options
            .build(&reference.value)
            .map_err(|e| format!("Invalid reference '{name}': {}", describe(&e)))?;
    }
    options(main.draft)
        .with_registry(&registry)
        .build(&main.value)
        .map_err(|e| format!("Invalid JSON schema: {}", describe(&e)))
}

fn describe(error: &ValidationError<'_>) -> String {
    let path = error.instance_path().as_str();
    if path.is_empty() {
        error.to_string()
    } else {
        format!("{error} (at '#{path}')")
    }
}

/// The JSON text without whitespace outside strings. `text` is valid JSON already.
fn compact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in text.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !matches!(c, ' ' | '\t' | '\n' | '\r') {
            out.push(c);
        }
    }
    out
}

/// Compact JSON with keys sorted, whatever order the map keeps.
fn write_sorted(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (index, (key, value)) in entries.into_iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_sorted(value, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_sorted(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

// ---------------------------------------------------------------------------------
// URIs and JSON pointers

/// `reference` resolved against the absolute URI `base`.
fn resolve(base: &str, reference: &str) -> Option<String> {
    if let Some(fragment) = reference.strip_prefix('#') {
        // A fragment alone needs no parsing (and may hold characters a URI may not).
        return Some(format!("{}#{fragment}", strip_fragment(base)));
    }
    let base = jsonschema::uri::from_str(base).ok()?;
    let resolved = jsonschema::uri::resolve_against(&base.borrow(), reference).ok()?;
    Some(resolved.as_str().to_owned())
}

fn strip_fragment(uri: &str) -> &str {
    uri.split_once('#').map_or(uri, |(resource, _)| resource)
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escape = bytes
            .get(index + 1..index + 3)
            .filter(|hex| bytes[index] == b'%' && hex.iter().all(u8::is_ascii_hexdigit))
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escape {
            Some(byte) => {
                out.push(byte);
                index += 3;
            }
            None => {
                out.push(bytes[index]);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `pointer` extended by `segments`, escaped as JSON pointer segments.
fn child_pointer(pointer: &str, segments: &[&str]) -> String {
    let mut out = pointer.to_owned();
    for segment in segments {
        out.push('/');
        out.push_str(&escape_segment(segment));
    }
    out
}

fn escape_segment(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

fn unescape_segment(segment: &str) -> String {
    segment.replace("~1", "/").replace("~0", "~")
}

// ---------------------------------------------------------------------------------
// The graph the comparison walks

type NodeId = usize;

/// A schema and its references as typed nodes; a `$ref` is a node pointing at the
/// node of its target, so recursive schemas are cycles.
#[derive(Debug)]
struct Graph {
    nodes: Vec<Node>,
    root: NodeId,
}

#[derive(Debug, Default)]
struct Node {
    meta: Meta,
    kind: Kind,
    /// Where the node's JSON is (document, pointer); none for an implicit part.
    location: Option<(usize, String)>,
}

/// Annotations: changing them never breaks a reader.
#[derive(Debug, Default)]
struct Meta {
    id: Option<Value>,
    title: Option<Value>,
    description: Option<Value>,
    default: Option<Value>,
}

#[derive(Debug, Default)]
enum Kind {
    /// `true`, `{}`, or only annotations: anything goes.
    #[default]
    Empty,
    /// `false`: nothing goes.
    False,
    Null,
    Boolean,
    String(Strings),
    Number(Numbers),
    /// The allowed values, each as compact JSON with sorted keys.
    Enum(BTreeSet<String>),
    Const(String),
    Combined(Combined),
    Not(NodeId),
    Object(Box<Object>),
    Array(Box<Array>),
    /// `if`/`then`/`else`, which Confluent does not compare.
    Conditional,
    /// A `$ref`: its target, or the reference text when it does not resolve here.
    Ref(Result<NodeId, String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Criterion {
    All,
    Any,
    One,
}

impl Combined {
    /// (index, subschema) without repeats.
    fn distinct_subschemas(&self) -> Vec<(usize, NodeId)> {
        let subschemas = &self.subschemas;
        self.distinct
            .iter()
            .filter_map(|&index| subschemas.get(index).map(|&id| (index, id)))
            .collect()
    }
}

impl Criterion {
    fn keyword(self) -> &'static str {
        match self {
            Criterion::All => "allOf",
            Criterion::Any => "anyOf",
            Criterion::One => "oneOf",
        }
    }
}

#[derive(Debug)]
struct Combined {
    criterion: Criterion,
    subschemas: Vec<NodeId>,
    /// The indexes of `subschemas` without repeats (the same JSON written twice).
    distinct: Vec<usize>,
    /// Implied by the schema's shape (a `type` array, keywords of several kinds), not
    /// written: its parts are at the same path as the node.
    synthetic: bool,
}

#[derive(Debug, Default)]
struct Strings {
    max_length: Option<f64>,
    min_length: Option<f64>,
    pattern: Option<String>,
}

#[derive(Debug, Default)]
struct Numbers {
    maximum: Option<f64>,
    minimum: Option<f64>,
    exclusive_maximum: Option<f64>,
    exclusive_minimum: Option<f64>,
    multiple_of: Option<f64>,
    integer: bool,
}

/// `additionalProperties` / `additionalItems`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Additional {
    /// Absent or `true`.
    Permitted,
    /// `false`.
    Forbidden,
    Schema(NodeId),
}

#[derive(Debug)]
struct Object {
    properties: BTreeMap<String, NodeId>,
    required: BTreeSet<String>,
    pattern_properties: Vec<(String, NodeId)>,
    additional: Additional,
    /// Read from draft 2019-09 on.
    unevaluated: Option<NodeId>,
    /// `dependencies` (array form) and `dependentRequired`.
    property_dependencies: BTreeMap<String, BTreeSet<String>>,
    /// `dependencies` (schema form) and `dependentSchemas`.
    schema_dependencies: BTreeMap<String, NodeId>,
    max_properties: Option<f64>,
    min_properties: Option<f64>,
}

#[derive(Debug)]
struct Array {
    /// `items` as one schema for every item.
    items: Option<NodeId>,
    /// Positional item schemas: `items` as an array, or `prefixItems` (2020-12).
    tuple: Vec<NodeId>,
    tuple_keyword: &'static str,
    /// What items after the tuple may be: `additionalItems`, or `items` (2020-12).
    additional: Additional,
    additional_keyword: &'static str,
    unevaluated: Option<NodeId>,
    max_items: Option<f64>,
    min_items: Option<f64>,
    unique_items: bool,
    max_contains: Option<f64>,
    min_contains: Option<f64>,
}

/// Keywords whose values are data, not schemas: never searched for `$id`s.
const DATA_KEYWORDS: [&str; 4] = ["enum", "const", "default", "examples"];
/// Keywords that make an object without `type` an array, object, number or string
/// schema (Confluent's loader reads them so).
const ARRAY_KEYWORDS: [&str; 10] = [
    "items",
    "additionalItems",
    "maxItems",
    "minItems",
    "uniqueItems",
    "contains",
    "maxContains",
    "minContains",
    "prefixItems",
    "unevaluatedItems",
];
const OBJECT_KEYWORDS: [&str; 11] = [
    "properties",
    "required",
    "minProperties",
    "maxProperties",
    "dependencies",
    "dependentRequired",
    "dependentSchemas",
    "patternProperties",
    "additionalProperties",
    "propertyNames",
    "unevaluatedProperties",
];
const NUMBER_KEYWORDS: [&str; 5] = [
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
];
const STRING_KEYWORDS: [&str; 4] = ["minLength", "maxLength", "pattern", "format"];

/// Stands in for a node id that is out of range (never expected).
static EMPTY_NODE: Node = Node {
    meta: Meta {
        id: None,
        title: None,
        description: None,
        default: None,
    },
    kind: Kind::Empty,
    location: None,
};

impl Graph {
    fn build(documents: &[Document]) -> Graph {
        let mut builder = GraphBuilder {
            documents,
            nodes: Vec::new(),
            interned: HashMap::new(),
            pending: Vec::new(),
            resources: HashMap::new(),
            anchors: HashMap::new(),
        };
        for (index, document) in documents.iter().enumerate() {
            for uri in &document.uris {
                builder.resources.entry(uri.clone()).or_insert((index, String::new()));
            }
            builder.index(index, &document.value, "", &document.base);
        }
        let root = builder.node_at(0, String::new());
        // A work list rather than recursion: `$ref` chains may be long.
        while let Some(id) = builder.pending.pop() {
            builder.fill(id);
        }
        Graph {
            nodes: builder.nodes,
            root,
        }
    }

    fn node(&self, id: NodeId) -> &Node {
        self.nodes.get(id).unwrap_or(&EMPTY_NODE)
    }

    /// The node a `$ref` (or a chain of them) leads to.
    fn follow(&self, mut id: NodeId) -> NodeId {
        for _ in 0..REF_HOPS_MAX {
            match self.node(id).kind {
                Kind::Ref(Ok(target)) => id = target,
                _ => break,
            }
        }
        id
    }
}

struct GraphBuilder<'d> {
    documents: &'d [Document],
    nodes: Vec<Node>,
    /// The node of each (document, pointer), so `$ref`s to one place share a node.
    interned: HashMap<(usize, String), NodeId>,
    /// Nodes allocated whose JSON is still to be read.
    pending: Vec<NodeId>,
    /// Every resource by absolute URI: document roots and embedded `$id`s.
    resources: HashMap<String, (usize, String)>,
    /// Every `uri#name` anchor: `$anchor`, and draft 4-7 `"$id": "#name"`.
    anchors: HashMap<String, (usize, String)>,
}

impl GraphBuilder<'_> {
    /// Records the embedded resources and anchors under `value`.
    fn index(&mut self, document: usize, value: &Value, pointer: &str, base: &str) {
        let draft = self.draft(document);
        match value {
            Value::Object(map) => {
                let mut base = base.to_owned();
                if !pointer.is_empty() {
                    if let Some(uri) = id_of(value, draft).and_then(|id| resolve(&base, id)) {
                        base = strip_fragment(&uri).to_owned();
                        self.resources
                            .entry(base.clone())
                            .or_insert((document, pointer.to_owned()));
                    }
                }
                for anchor in anchors_of(map, draft) {
                    self.anchors
                        .entry(format!("{base}#{anchor}"))
                        .or_insert((document, pointer.to_owned()));
                }
                for (key, child) in map {
                    if !DATA_KEYWORDS.contains(&key.as_str()) {
                        self.index(document, child, &child_pointer(pointer, &[key]), &base);
                    }
                }
            }
            Value::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    self.index(document, item, &format!("{pointer}/{index}"), base);
                }
            }
            _ => {}
        }
    }

    fn draft(&self, document: usize) -> Draft {
        self.documents.get(document).map_or(DRAFT_DEFAULT, |d| d.draft)
    }

    /// The base URI at `pointer`: the document's, changed by each `$id` on the way.
    fn base_at(&self, document: usize, pointer: &str) -> String {
        let Some(doc) = self.documents.get(document) else {
            return ROOT_URI.to_owned();
        };
        let mut base = doc.base.clone();
        let mut value = &doc.value;
        for segment in pointer.split('/').skip(1) {
            let segment = unescape_segment(segment);
            let next = match value {
                Value::Object(map) => map.get(&segment),
                Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
                _ => None,
            };
            let Some(next) = next else { break };
            value = next;
            if let Some(uri) = id_of(value, doc.draft).and_then(|id| resolve(&base, id)) {
                base = strip_fragment(&uri).to_owned();
            }
        }
        base
    }

    fn node_at(&mut self, document: usize, pointer: String) -> NodeId {
        let key = (document, pointer);
        if let Some(&id) = self.interned.get(&key) {
            return id;
        }
        let id = self.nodes.len();
        self.nodes.push(Node {
            location: Some(key.clone()),
            ..Node::default()
        });
        self.interned.insert(key, id);
        self.pending.push(id);
        id
    }

    /// A combination the schema's shape implies, of one node per part.
    fn implicit(&mut self, criterion: Criterion, parts: Vec<Kind>) -> Combined {
        let subschemas: Vec<NodeId> = parts
            .into_iter()
            .map(|kind| {
                self.nodes.push(Node {
                    kind,
                    ..Node::default()
                });
                self.nodes.len() - 1
            })
            .collect();
        Combined {
            criterion,
            distinct: (0..subschemas.len()).collect(),
            subschemas,
            synthetic: true,
        }
    }

    fn fill(&mut self, id: NodeId) {
        let Some((document, pointer)) = self.nodes.get(id).and_then(|n| n.location.clone()) else {
            return;
        };
        let documents = self.documents;
        let value = documents.get(document).and_then(|d| d.value.pointer(&pointer));
        let (meta, kind) = match value {
            Some(Value::Bool(false)) => (Meta::default(), Kind::False),
            Some(Value::Object(map)) => self.object_node(document, &pointer, map),
            _ => (Meta::default(), Kind::Empty),
        };
        if let Some(node) = self.nodes.get_mut(id) {
            node.meta = meta;
            node.kind = kind;
        }
    }

    fn object_node(&mut self, document: usize, pointer: &str, map: &Map<String, Value>) -> (Meta, Kind) {
        let draft = self.draft(document);
        let meta = Meta {
            id: map.get(id_keyword(draft)).cloned(),
            title: map.get("title").cloned(),
            description: map.get("description").cloned(),
            default: map.get("default").cloned(),
        };
        let mut parts = Vec::new();
        if let Some(reference) = map.get("$ref").and_then(Value::as_str) {
            let target = self.resolve_ref(document, pointer, reference);
            // Up to draft 7 a `$ref` makes its siblings void.
            if draft <= Draft::Draft7 {
                return (meta, Kind::Ref(target));
            }
            parts.push(Kind::Ref(target));
        }
        for dynamic in ["$recursiveRef", "$dynamicRef"] {
            if let Some(reference) = map.get(dynamic).and_then(Value::as_str) {
                parts.push(Kind::Ref(Err(reference.to_owned())));
            }
        }
        if let Some(Value::Array(values)) = map.get("enum") {
            parts.push(Kind::Enum(values.iter().map(sorted_json).collect()));
        }
        if let Some(value) = map.get("const") {
            parts.push(Kind::Const(sorted_json(value)));
        }
        for criterion in [Criterion::All, Criterion::Any, Criterion::One] {
            if let Some(Value::Array(branches)) = map.get(criterion.keyword()) {
                let subschemas = (0..branches.len())
                    .map(|i| self.node_at(document, child_pointer(pointer, &[criterion.keyword(), &i.to_string()])))
                    .collect();
                let distinct = (0..branches.len())
                    .filter(|&i| !branches[..i].contains(&branches[i]))
                    .collect();
                parts.push(Kind::Combined(Combined {
                    criterion,
                    subschemas,
                    distinct,
                    synthetic: false,
                }));
            }
        }
        if map.contains_key("not") {
            parts.push(Kind::Not(self.node_at(document, child_pointer(pointer, &["not"]))));
        }
        self.typed_parts(document, pointer, map, &mut parts);
        if draft >= Draft::Draft7 && ["if", "then", "else"].iter().any(|k| map.contains_key(*k)) {
            parts.push(Kind::Conditional);
        }
        let kind = if parts.len() <= 1 {
            parts.pop().unwrap_or_default()
        } else {
            Kind::Combined(self.implicit(Criterion::All, parts))
        };
        (meta, kind)
    }

    /// The parts `type` implies, or without `type` those its keywords imply.
    fn typed_parts(&mut self, document: usize, pointer: &str, map: &Map<String, Value>, parts: &mut Vec<Kind>) {
        match map.get("type") {
            Some(Value::String(name)) => parts.extend(self.typed(document, pointer, map, name)),
            Some(Value::Array(names)) => {
                let mut typed: Vec<Kind> = names
                    .iter()
                    .filter_map(Value::as_str)
                    .filter_map(|name| self.typed(document, pointer, map, name))
                    .collect();
                if typed.len() <= 1 {
                    parts.extend(typed.pop());
                } else {
                    parts.push(Kind::Combined(self.implicit(Criterion::Any, typed)));
                }
            }
            _ => {
                let has = |keywords: &[&str]| keywords.iter().any(|k| map.contains_key(*k));
                for (keywords, name) in [
                    (&ARRAY_KEYWORDS[..], "array"),
                    (&OBJECT_KEYWORDS[..], "object"),
                    (&NUMBER_KEYWORDS[..], "number"),
                    (&STRING_KEYWORDS[..], "string"),
                ] {
                    if has(keywords) {
                        parts.extend(self.typed(document, pointer, map, name));
                    }
                }
            }
        }
    }

    fn typed(&mut self, document: usize, pointer: &str, map: &Map<String, Value>, name: &str) -> Option<Kind> {
        let number = |key: &str| map.get(key).and_then(Value::as_f64);
        Some(match name {
            "string" => Kind::String(Strings {
                max_length: number("maxLength"),
                min_length: number("minLength"),
                pattern: map.get("pattern").and_then(Value::as_str).map(str::to_owned),
            }),
            "number" | "integer" => {
                let mut numbers = Numbers {
                    maximum: number("maximum"),
                    minimum: number("minimum"),
                    exclusive_maximum: number("exclusiveMaximum"),
                    exclusive_minimum: number("exclusiveMinimum"),
                    multiple_of: number("multipleOf"),
                    integer: name == "integer",
                };
                // Draft 4 makes `maximum`/`minimum` themselves exclusive with a boolean.
                if map.get("exclusiveMaximum") == Some(&Value::Bool(true)) {
                    numbers.exclusive_maximum = numbers.maximum.take();
                }
                if map.get("exclusiveMinimum") == Some(&Value::Bool(true)) {
                    numbers.exclusive_minimum = numbers.minimum.take();
                }
                Kind::Number(numbers)
            }
            "object" => Kind::Object(Box::new(self.object(document, pointer, map))),
            "array" => Kind::Array(Box::new(self.array(document, pointer, map))),
            "boolean" => Kind::Boolean,
            "null" => Kind::Null,
            _ => return None,
        })
    }

    fn object(&mut self, document: usize, pointer: &str, map: &Map<String, Value>) -> Object {
        let draft = self.draft(document);
        let schemas_of = |builder: &mut Self, keyword: &str| -> Vec<(String, NodeId)> {
            let Some(Value::Object(entries)) = map.get(keyword) else {
                return Vec::new();
            };
            entries
                .keys()
                .map(|key| {
                    (
                        key.clone(),
                        builder.node_at(document, child_pointer(pointer, &[keyword, key])),
                    )
                })
                .collect()
        };
        let properties = schemas_of(self, "properties").into_iter().collect();
        let pattern_properties = schemas_of(self, "patternProperties");
        let mut property_dependencies = BTreeMap::new();
        let mut schema_dependencies = BTreeMap::new();
        for keyword in ["dependencies", "dependentRequired", "dependentSchemas"] {
            let Some(Value::Object(entries)) = map.get(keyword) else {
                continue;
            };
            for (key, value) in entries {
                if let Value::Array(names) = value {
                    let names = names.iter().filter_map(Value::as_str).map(str::to_owned).collect();
                    property_dependencies.insert(key.clone(), names);
                } else {
                    let id = self.node_at(document, child_pointer(pointer, &[keyword, key]));
                    schema_dependencies.insert(key.clone(), id);
                }
            }
        }
        let required = match map.get("required") {
            Some(Value::Array(names)) => names.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
            _ => BTreeSet::new(),
        };
        let number = |key: &str| map.get(key).and_then(Value::as_f64);
        Object {
            properties,
            required,
            pattern_properties,
            additional: self.additional(document, pointer, "additionalProperties", map),
            unevaluated: self.unevaluated(document, pointer, "unevaluatedProperties", map, draft),
            property_dependencies,
            schema_dependencies,
            max_properties: number("maxProperties"),
            min_properties: number("minProperties"),
        }
    }

    fn array(&mut self, document: usize, pointer: &str, map: &Map<String, Value>) -> Array {
        let draft = self.draft(document);
        let number = |key: &str| map.get(key).and_then(Value::as_f64);
        let mut array = Array {
            items: None,
            tuple: Vec::new(),
            tuple_keyword: "items",
            additional: Additional::Permitted,
            additional_keyword: "additionalItems",
            unevaluated: self.unevaluated(document, pointer, "unevaluatedItems", map, draft),
            max_items: number("maxItems"),
            min_items: number("minItems"),
            unique_items: map.get("uniqueItems") == Some(&Value::Bool(true)),
            max_contains: number("maxContains"),
            min_contains: number("minContains"),
        };
        let tuple_keyword = if draft >= Draft::Draft202012 {
            array.additional_keyword = "items";
            "prefixItems"
        } else {
            "items"
        };
        array.tuple_keyword = tuple_keyword;
        if let Some(Value::Array(schemas)) = map.get(tuple_keyword) {
            array.tuple = (0..schemas.len())
                .map(|i| self.node_at(document, child_pointer(pointer, &[tuple_keyword, &i.to_string()])))
                .collect();
        }
        let additional_keyword = array.additional_keyword;
        if draft >= Draft::Draft202012 && !map.contains_key("prefixItems") {
            // Without `prefixItems`, 2020-12's `items` is the schema of every item.
            if map.contains_key("items") {
                array.items = Some(self.node_at(document, child_pointer(pointer, &["items"])));
            }
        } else {
            array.additional = self.additional(document, pointer, additional_keyword, map);
            if draft < Draft::Draft202012 && map.get("items").is_some_and(|items| !items.is_array()) {
                array.items = Some(self.node_at(document, child_pointer(pointer, &["items"])));
            }
        }
        array
    }

    fn additional(&mut self, document: usize, pointer: &str, keyword: &str, map: &Map<String, Value>) -> Additional {
        match map.get(keyword) {
            None | Some(Value::Bool(true)) => Additional::Permitted,
            Some(Value::Bool(false)) => Additional::Forbidden,
            Some(_) => Additional::Schema(self.node_at(document, child_pointer(pointer, &[keyword]))),
        }
    }

    /// `unevaluatedProperties` / `unevaluatedItems`, keywords from draft 2019-09 on.
    fn unevaluated(
        &mut self,
        document: usize,
        pointer: &str,
        keyword: &str,
        map: &Map<String, Value>,
        draft: Draft,
    ) -> Option<NodeId> {
        if draft < Draft::Draft201909 || !map.contains_key(keyword) {
            return None;
        }
        Some(self.node_at(document, child_pointer(pointer, &[keyword])))
    }

    fn resolve_ref(&mut self, document: usize, pointer: &str, reference: &str) -> Result<NodeId, String> {
        let unresolved = || reference.to_owned();
        let base = self.base_at(document, pointer);
        let target = resolve(&base, reference).ok_or_else(unresolved)?;
        let (resource, fragment) = target.split_once('#').unwrap_or((&target, ""));
        let fragment = percent_decode(fragment);
        let located = if fragment.is_empty() || fragment.starts_with('/') {
            self.resources
                .get(resource)
                .map(|(doc, root)| (*doc, format!("{root}{fragment}")))
        } else {
            self.anchors.get(&format!("{resource}#{fragment}")).cloned()
        };
        let documents = self.documents;
        match located {
            Some((doc, pointer)) if documents.get(doc).is_some_and(|d| d.value.pointer(&pointer).is_some()) => {
                Ok(self.node_at(doc, pointer))
            }
            _ => Err(unresolved()),
        }
    }
}

/// The plain-name anchors a schema object declares.
fn anchors_of(map: &Map<String, Value>, draft: Draft) -> Vec<&str> {
    let mut anchors = Vec::new();
    if draft <= Draft::Draft7 {
        if let Some(name) = map
            .get(id_keyword(draft))
            .and_then(Value::as_str)
            .and_then(|id| id.strip_prefix('#'))
        {
            anchors.push(name);
        }
    } else {
        for keyword in ["$anchor", "$dynamicAnchor"] {
            if let Some(name) = map.get(keyword).and_then(Value::as_str) {
                anchors.push(name);
            }
        }
    }
    anchors
}

fn sorted_json(value: &Value) -> String {
    let mut out = String::new();
    write_sorted(value, &mut out);
    out
}

// ---------------------------------------------------------------------------------
// Differences

macro_rules! kinds {
    ($($(#[$doc:meta])* $variant:ident = $name:literal, $allowed:literal;)*) => {
        /// The kinds of difference between two JSON schemas (Confluent's
        /// `Difference.Type`), with whether the STRICT policy allows each.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum IncompatibilityKind {
            $($(#[$doc])* $variant,)*
        }

        impl IncompatibilityKind {
            pub fn name(self) -> &'static str {
                match self {
                    $(IncompatibilityKind::$variant => $name,)*
                }
            }

            /// Whether Confluent's STRICT policy allows the change (it loosens no
            /// constraint a reader relies on).
            pub fn allowed(self) -> bool {
                match self {
                    $(IncompatibilityKind::$variant => $allowed,)*
                }
            }
        }
    };
}

kinds! {
    IdChanged = "ID_CHANGED", true;
    DescriptionChanged = "DESCRIPTION_CHANGED", true;
    TitleChanged = "TITLE_CHANGED", true;
    DefaultChanged = "DEFAULT_CHANGED", true;
    SchemaAdded = "SCHEMA_ADDED", false;
    SchemaRemoved = "SCHEMA_REMOVED", true;
    TypeExtended = "TYPE_EXTENDED", true;
    TypeNarrowed = "TYPE_NARROWED", false;
    TypeChanged = "TYPE_CHANGED", false;
    MaxLengthAdded = "MAX_LENGTH_ADDED", false;
    MaxLengthRemoved = "MAX_LENGTH_REMOVED", true;
    MaxLengthIncreased = "MAX_LENGTH_INCREASED", true;
    MaxLengthDecreased = "MAX_LENGTH_DECREASED", false;
    MinLengthAdded = "MIN_LENGTH_ADDED", false;
    MinLengthRemoved = "MIN_LENGTH_REMOVED", true;
    MinLengthIncreased = "MIN_LENGTH_INCREASED", false;
    MinLengthDecreased = "MIN_LENGTH_DECREASED", true;
    PatternAdded = "PATTERN_ADDED", false;
    PatternRemoved = "PATTERN_REMOVED", true;
    PatternChanged = "PATTERN_CHANGED", false;
    MaximumAdded = "MAXIMUM_ADDED", false;
    MaximumRemoved = "MAXIMUM_REMOVED", true;
    MaximumIncreased = "MAXIMUM_INCREASED", true;
    MaximumDecreased = "MAXIMUM_DECREASED", false;
    MinimumAdded = "MINIMUM_ADDED", false;
    MinimumRemoved = "MINIMUM_REMOVED", true;
    MinimumIncreased = "MINIMUM_INCREASED", false;
    MinimumDecreased = "MINIMUM_DECREASED", true;
    ExclusiveMaximumAdded = "EXCLUSIVE_MAXIMUM_ADDED", false;
    ExclusiveMaximumRemoved = "EXCLUSIVE_MAXIMUM_REMOVED", true;
    ExclusiveMaximumIncreased = "EXCLUSIVE_MAXIMUM_INCREASED", true;
    ExclusiveMaximumDecreased = "EXCLUSIVE_MAXIMUM_DECREASED", false;
    ExclusiveMinimumAdded = "EXCLUSIVE_MINIMUM_ADDED", false;
    ExclusiveMinimumRemoved = "EXCLUSIVE_MINIMUM_REMOVED", true;
    ExclusiveMinimumIncreased = "EXCLUSIVE_MINIMUM_INCREASED", false;
    ExclusiveMinimumDecreased = "EXCLUSIVE_MINIMUM_DECREASED", true;
    MultipleOfAdded = "MULTIPLE_OF_ADDED", false;
    MultipleOfRemoved = "MULTIPLE_OF_REMOVED", true;
    /// The new `multipleOf` is a multiple of the old: fewer values pass.
    MultipleOfExpanded = "MULTIPLE_OF_EXPANDED", false;
    /// The old `multipleOf` is a multiple of the new: more values pass.
    MultipleOfReduced = "MULTIPLE_OF_REDUCED", true;
    MultipleOfChanged = "MULTIPLE_OF_CHANGED", false;
    RequiredAttributeAdded = "REQUIRED_ATTRIBUTE_ADDED", false;
    RequiredAttributeWithDefaultAdded = "REQUIRED_ATTRIBUTE_WITH_DEFAULT_ADDED", true;
    RequiredAttributeRemoved = "REQUIRED_ATTRIBUTE_REMOVED", true;
    MaxPropertiesAdded = "MAX_PROPERTIES_ADDED", false;
    MaxPropertiesRemoved = "MAX_PROPERTIES_REMOVED", true;
    MaxPropertiesIncreased = "MAX_PROPERTIES_INCREASED", true;
    MaxPropertiesDecreased = "MAX_PROPERTIES_DECREASED", false;
    MinPropertiesAdded = "MIN_PROPERTIES_ADDED", false;
    MinPropertiesRemoved = "MIN_PROPERTIES_REMOVED", true;
    MinPropertiesIncreased = "MIN_PROPERTIES_INCREASED", false;
    MinPropertiesDecreased = "MIN_PROPERTIES_DECREASED", true;
    /// `additionalProperties` went from `false` to allowing some.
    AdditionalPropertiesAdded = "ADDITIONAL_PROPERTIES_ADDED", true;
    /// `additionalProperties` became `false`.
    AdditionalPropertiesRemoved = "ADDITIONAL_PROPERTIES_REMOVED", false;
    AdditionalPropertiesExtended = "ADDITIONAL_PROPERTIES_EXTENDED", true;
    AdditionalPropertiesNarrowed = "ADDITIONAL_PROPERTIES_NARROWED", false;
    DependencyArrayAdded = "DEPENDENCY_ARRAY_ADDED", false;
    DependencyArrayRemoved = "DEPENDENCY_ARRAY_REMOVED", true;
    DependencyArrayExtended = "DEPENDENCY_ARRAY_EXTENDED", false;
    DependencyArrayNarrowed = "DEPENDENCY_ARRAY_NARROWED", true;
    DependencyArrayChanged = "DEPENDENCY_ARRAY_CHANGED", false;
    DependencySchemaAdded = "DEPENDENCY_SCHEMA_ADDED", false;
    DependencySchemaRemoved = "DEPENDENCY_SCHEMA_REMOVED", true;
    RequiredPropertyAddedToOpenContentModel = "REQUIRED_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL", false;
    RequiredPropertyWithDefaultAddedToOpenContentModel =
        "REQUIRED_PROPERTY_WITH_DEFAULT_ADDED_TO_OPEN_CONTENT_MODEL", false;
    /// Old data may hold the property with any value: STRICT refuses it, LENIENT not.
    OptionalPropertyAddedToOpenContentModel = "OPTIONAL_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL", false;
    PropertyWithEmptySchemaAddedToOpenContentModel = "PROPERTY_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL", true;
    RequiredPropertyAddedToUnopenContentModel = "REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL", false;
    RequiredPropertyWithDefaultAddedToUnopenContentModel =
        "REQUIRED_PROPERTY_WITH_DEFAULT_ADDED_TO_UNOPEN_CONTENT_MODEL", true;
    OptionalPropertyAddedToUnopenContentModel = "OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL", true;
    PropertyRemovedFromOpenContentModel = "PROPERTY_REMOVED_FROM_OPEN_CONTENT_MODEL", true;
    PropertyWithFalseRemovedFromClosedContentModel = "PROPERTY_WITH_FALSE_REMOVED_FROM_CLOSED_CONTENT_MODEL", true;
    PropertyRemovedFromClosedContentModel = "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL", false;
    PropertyRemovedIsCoveredByPartiallyOpenContentModel =
        "PROPERTY_REMOVED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", true;
    PropertyRemovedNotCoveredByPartiallyOpenContentModel =
        "PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", false;
    PropertyAddedIsCoveredByPartiallyOpenContentModel =
        "PROPERTY_ADDED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", true;
    PropertyAddedNotCoveredByPartiallyOpenContentModel =
        "PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", false;
    UnevaluatedPropertiesAdded = "UNEVALUATED_PROPERTIES_ADDED", true;
    UnevaluatedPropertiesRemoved = "UNEVALUATED_PROPERTIES_REMOVED", false;
    UnevaluatedPropertiesExtended = "UNEVALUATED_PROPERTIES_EXTENDED", true;
    UnevaluatedPropertiesNarrowed = "UNEVALUATED_PROPERTIES_NARROWED", false;
    MaxItemsAdded = "MAX_ITEMS_ADDED", false;
    MaxItemsRemoved = "MAX_ITEMS_REMOVED", true;
    MaxItemsIncreased = "MAX_ITEMS_INCREASED", true;
    MaxItemsDecreased = "MAX_ITEMS_DECREASED", false;
    MinItemsAdded = "MIN_ITEMS_ADDED", false;
    MinItemsRemoved = "MIN_ITEMS_REMOVED", true;
    MinItemsIncreased = "MIN_ITEMS_INCREASED", false;
    MinItemsDecreased = "MIN_ITEMS_DECREASED", true;
    MaxContainsAdded = "MAX_CONTAINS_ADDED", false;
    MaxContainsRemoved = "MAX_CONTAINS_REMOVED", true;
    MaxContainsIncreased = "MAX_CONTAINS_INCREASED", true;
    MaxContainsDecreased = "MAX_CONTAINS_DECREASED", false;
    MinContainsAdded = "MIN_CONTAINS_ADDED", false;
    MinContainsRemoved = "MIN_CONTAINS_REMOVED", true;
    MinContainsIncreased = "MIN_CONTAINS_INCREASED", false;
    MinContainsDecreased = "MIN_CONTAINS_DECREASED", true;
    UniqueItemsAdded = "UNIQUE_ITEMS_ADDED", false;
    UniqueItemsRemoved = "UNIQUE_ITEMS_REMOVED", true;
    AdditionalItemsAdded = "ADDITIONAL_ITEMS_ADDED", true;
    AdditionalItemsRemoved = "ADDITIONAL_ITEMS_REMOVED", false;
    AdditionalItemsExtended = "ADDITIONAL_ITEMS_EXTENDED", true;
    AdditionalItemsNarrowed = "ADDITIONAL_ITEMS_NARROWED", false;
    UnevaluatedItemsAdded = "UNEVALUATED_ITEMS_ADDED", true;
    UnevaluatedItemsRemoved = "UNEVALUATED_ITEMS_REMOVED", false;
    UnevaluatedItemsExtended = "UNEVALUATED_ITEMS_EXTENDED", true;
    UnevaluatedItemsNarrowed = "UNEVALUATED_ITEMS_NARROWED", false;
    ItemAddedToOpenContentModel = "ITEM_ADDED_TO_OPEN_CONTENT_MODEL", false;
    ItemWithEmptySchemaAddedToOpenContentModel = "ITEM_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL", true;
    ItemAddedToClosedContentModel = "ITEM_ADDED_TO_CLOSED_CONTENT_MODEL", true;
    ItemRemovedFromOpenContentModel = "ITEM_REMOVED_FROM_OPEN_CONTENT_MODEL", true;
    ItemWithFalseRemovedFromClosedContentModel = "ITEM_WITH_FALSE_REMOVED_FROM_CLOSED_CONTENT_MODEL", true;
    ItemRemovedFromClosedContentModel = "ITEM_REMOVED_FROM_CLOSED_CONTENT_MODEL", false;
    ItemRemovedIsCoveredByPartiallyOpenContentModel = "ITEM_REMOVED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", true;
    ItemRemovedNotCoveredByPartiallyOpenContentModel =
        "ITEM_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", false;
    ItemAddedIsCoveredByPartiallyOpenContentModel = "ITEM_ADDED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", true;
    ItemAddedNotCoveredByPartiallyOpenContentModel = "ITEM_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", false;
    EnumArrayExtended = "ENUM_ARRAY_EXTENDED", true;
    EnumArrayNarrowed = "ENUM_ARRAY_NARROWED", false;
    EnumArrayChanged = "ENUM_ARRAY_CHANGED", false;
    CombinedTypeExtended = "COMBINED_TYPE_EXTENDED", true;
    CombinedTypeChanged = "COMBINED_TYPE_CHANGED", false;
    /// More `allOf` branches: more constraints.
    ProductTypeExtended = "PRODUCT_TYPE_EXTENDED", false;
    ProductTypeNarrowed = "PRODUCT_TYPE_NARROWED", true;
    /// More `oneOf`/`anyOf` branches: more alternatives.
    SumTypeExtended = "SUM_TYPE_EXTENDED", true;
    SumTypeNarrowed = "SUM_TYPE_NARROWED", false;
    CombinedTypeSubschemasChanged = "COMBINED_TYPE_SUBSCHEMAS_CHANGED", false;
    NotTypeExtended = "NOT_TYPE_EXTENDED", false;
    NotTypeNarrowed = "NOT_TYPE_NARROWED", true;
    /// Strom's own: the schemas are too large or too deep to compare within limits.
    ComparisonLimitExceeded = "COMPARISON_LIMIT_EXCEEDED", false;
}

/// One reason a reader cannot read what a writer wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incompatibility {
    pub kind: IncompatibilityKind,
    /// Where, as Confluent writes it: `#/properties/a/items` (`#/` is the root).
    pub path: String,
    pub description: String,
    /// The values or names involved.
    pub additional_info: String,
}

impl std::fmt::Display for Incompatibility {
    /// The same shape as an Avro difference.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        crate::difference::write_difference(f, self.kind.name(), &self.description, &self.additional_info)
    }
}

/// What the old (writer's) and the new (reader's) schema differ in, as Confluent words
/// it ("new" is the reader).
fn description(kind: IncompatibilityKind, path: &str) -> String {
    use IncompatibilityKind::*;
    match kind {
        SchemaAdded
        | MaxLengthAdded
        | MinLengthAdded
        | PatternAdded
        | MaximumAdded
        | MinimumAdded
        | ExclusiveMaximumAdded
        | ExclusiveMinimumAdded
        | MultipleOfAdded
        | RequiredAttributeAdded
        | MaxPropertiesAdded
        | MinPropertiesAdded
        | DependencyArrayAdded
        | DependencySchemaAdded
        | MaxItemsAdded
        | MinItemsAdded
        | MaxContainsAdded
        | MinContainsAdded
        | UniqueItemsAdded
        | AdditionalItemsRemoved
        | AdditionalPropertiesRemoved
        | UnevaluatedPropertiesRemoved
        | UnevaluatedItemsRemoved => {
            format!("The keyword at path '{path}' in the new schema is not present in the old schema")
        }
        MinLengthIncreased
        | MinimumIncreased
        | ExclusiveMinimumIncreased
        | MinPropertiesIncreased
        | MultipleOfExpanded
        | MinItemsIncreased
        | MinContainsIncreased => {
            format!("The value at path '{path}' in the new schema is more than its value in the old schema")
        }
        MaxLengthDecreased
        | MaximumDecreased
        | ExclusiveMaximumDecreased
        | MaxPropertiesDecreased
        | MaxItemsDecreased
        | MaxContainsDecreased => {
            format!("The value at path '{path}' in the new schema is less than its value in the old schema")
        }
        PatternChanged | MultipleOfChanged | DependencyArrayChanged => {
            format!("The value at path '{path}' is different between the new and the old schema")
        }
        EnumArrayNarrowed
        | SumTypeNarrowed
        | AdditionalItemsNarrowed
        | AdditionalPropertiesNarrowed
        | UnevaluatedPropertiesNarrowed
        | UnevaluatedItemsNarrowed => format!(
            "An array or combined type at path '{path}' has fewer elements in the new schema than in the old schema"
        ),
        DependencyArrayExtended | ProductTypeExtended | NotTypeExtended => format!(
            "An array or combined type at path '{path}' has more elements in the new schema than in the old schema"
        ),
        TypeChanged | TypeNarrowed | CombinedTypeChanged | CombinedTypeSubschemasChanged | EnumArrayChanged => {
            format!("A type at path '{path}' is different between the new schema and the old schema")
        }
        RequiredPropertyAddedToOpenContentModel
        | RequiredPropertyWithDefaultAddedToOpenContentModel
        | OptionalPropertyAddedToOpenContentModel
        | ItemAddedToOpenContentModel => format!(
            "The old schema has an open content model and the new schema has a property or item at path '{path}' \
             which is missing in the old schema"
        ),
        RequiredPropertyAddedToUnopenContentModel => format!(
            "The new schema has a required property at path '{path}' which is missing in the old schema's \
             closed content model"
        ),
        PropertyRemovedFromClosedContentModel | ItemRemovedFromClosedContentModel => format!(
            "The new schema has a closed content model and is missing a property or item present at path '{path}' \
             in the old schema"
        ),
        PropertyRemovedNotCoveredByPartiallyOpenContentModel | ItemRemovedNotCoveredByPartiallyOpenContentModel => {
            format!(
                "A property or item is missing in the new schema but present at path '{path}' in the old schema \
                 and is not covered by the new schema's partially open content model"
            )
        }
        PropertyAddedNotCoveredByPartiallyOpenContentModel | ItemAddedNotCoveredByPartiallyOpenContentModel => {
            format!(
                "The new schema has a property or item at path '{path}' which is missing in the old schema and is \
                 not covered by the old schema's partially open content model"
            )
        }
        ComparisonLimitExceeded => format!(
            "The schemas are too large or too deeply nested to compare (at path '{path}'): \
             at most {COMPARE_STEPS_MAX} steps and {COMPARE_DEPTH_MAX} levels"
        ),
        allowed => format!("{} at path '{path}'", allowed.name()),
    }
}

/// Why data written with `writer` cannot be read with `reader` (empty: it can):
/// Confluent's `SchemaDiff.compare(original = writer, update = reader)`, keeping the
/// differences the STRICT policy does not allow. BACKWARD calls it as (new, old),
/// FORWARD as (old, new).
pub fn reader_incompatibilities(reader: &JsonSchema, writer: &JsonSchema) -> Vec<Incompatibility> {
    let mut differ = Differ {
        sides: [writer, reader],
        flipped: false,
        memo: HashMap::new(),
        in_progress: HashSet::new(),
        depth: 0,
        steps: 0,
        exhausted: false,
        patterns: HashMap::new(),
    };
    let mut found = differ.compare_nodes(writer.graph.root, reader.graph.root);
    if differ.exhausted {
        found.push(Found::new(IncompatibilityKind::ComparisonLimitExceeded, "", ""));
    }
    found
        .into_iter()
        .filter(|f| !f.kind.allowed())
        .map(|f| {
            let path = format!("#/{}", f.path);
            Incompatibility {
                kind: f.kind,
                description: description(f.kind, &path),
                path,
                additional_info: f.info,
            }
        })
        .collect()
}

/// A difference, its path relative to the pair of schemas it was found in.
#[derive(Debug, Clone)]
struct Found {
    kind: IncompatibilityKind,
    /// JSON pointer segments without the leading `#/`; empty: the pair itself.
    path: String,
    info: String,
}

impl Found {
    fn new(kind: IncompatibilityKind, path: impl Into<String>, info: impl Into<String>) -> Found {
        Found {
            kind,
            path: path.into(),
            info: info.into(),
        }
    }
}

/// `found` moved under `prefix`.
fn under(prefix: &str, found: Vec<Found>) -> impl Iterator<Item = Found> + '_ {
    found.into_iter().map(move |mut f| {
        f.path = match (prefix.is_empty(), f.path.is_empty()) {
            (true, _) => f.path,
            (false, true) => prefix.to_owned(),
            (false, false) => format!("{prefix}/{}", f.path),
        };
        f
    })
}

fn compatible(found: &[Found]) -> bool {
    found.iter().all(|f| f.kind.allowed())
}

/// Walks an original (writer's) and an updated (reader's) graph together.
struct Differ<'a> {
    /// [original, update]; `not` compares its subschemas the other way round.
    sides: [&'a JsonSchema; 2],
    flipped: bool,
    /// Each pair's differences, so a pair reached again (combinators compare every
    /// branch with every branch) is not compared again.
    memo: HashMap<(bool, NodeId, NodeId), Vec<Found>>,
    /// Pairs being compared further up: met again, a recursive schema counts as
    /// compatible with itself.
    in_progress: HashSet<(bool, NodeId, NodeId)>,
    depth: usize,
    steps: usize,
    /// A limit was hit: the result is incompatible whatever else was found.
    exhausted: bool,
    /// `patternProperties` regexes, compiled once.
    patterns: HashMap<String, Option<Validator>>,
}

impl<'a> Differ<'a> {
    fn original(&self) -> &'a JsonSchema {
        self.sides[usize::from(self.flipped)]
    }

    fn update(&self) -> &'a JsonSchema {
        self.sides[usize::from(!self.flipped)]
    }

    fn compare(&mut self, original: Option<NodeId>, update: Option<NodeId>) -> Vec<Found> {
        match (original, update) {
            (None, None) => Vec::new(),
            (None, Some(_)) => vec![Found::new(IncompatibilityKind::SchemaAdded, "", "")],
            (Some(_), None) => vec![Found::new(IncompatibilityKind::SchemaRemoved, "", "")],
            (Some(o), Some(u)) => self.compare_nodes(o, u),
        }
    }

    fn compare_nodes(&mut self, original: NodeId, update: NodeId) -> Vec<Found> {
        self.steps += 1;
        if self.exhausted || self.steps > COMPARE_STEPS_MAX || self.depth >= COMPARE_DEPTH_MAX {
            self.exhausted = true;
            return Vec::new();
        }
        let original = self.original().graph.follow(original);
        let update = self.update().graph.follow(update);
        let key = (self.flipped, original, update);
        if let Some(found) = self.memo.get(&key) {
            return found.clone();
        }
        if !self.in_progress.insert(key) {
            return Vec::new();
        }
        self.depth += 1;
        let found = self.compare_types(original, update);
        self.depth -= 1;
        self.in_progress.remove(&key);
        self.memo.insert(key, found.clone());
        found
    }

    fn compare_types(&mut self, o: NodeId, u: NodeId) -> Vec<Found> {
        use IncompatibilityKind::*;
        let (original, update) = (self.original().graph.node(o), self.update().graph.node(u));
        match (&original.kind, &update.kind) {
            (Kind::Combined(_), Kind::Combined(_)) => {}
            (_, Kind::Combined(combined)) => {
                // A schema becoming a combination: some branch must read it.
                if let [only] = combined.subschemas[..] {
                    let found = self.compare_nodes(o, only);
                    if compatible(&found) {
                        return found;
                    }
                } else if combined.criterion != Criterion::All {
                    for &branch in &combined.subschemas {
                        let mut found = self.compare_nodes(o, branch);
                        if compatible(&found) {
                            found.push(Found::new(SumTypeExtended, "", ""));
                            return found;
                        }
                    }
                }
            }
            (Kind::Combined(combined), _) => {
                // A combination becoming a plain schema: it drops `allOf` constraints.
                if let [only] = combined.subschemas[..] {
                    let found = self.compare_nodes(only, u);
                    if compatible(&found) {
                        return found;
                    }
                } else if combined.criterion == Criterion::All {
                    for &branch in &combined.subschemas {
                        let mut found = self.compare_nodes(branch, u);
                        if compatible(&found) {
                            found.push(Found::new(ProductTypeNarrowed, "", ""));
                            return found;
                        }
                    }
                }
            }
            _ => {}
        }
        if std::mem::discriminant(&original.kind) != std::mem::discriminant(&update.kind) {
            // Reading as anything, or having written nothing, breaks no reader.
            if matches!(original.kind, Kind::False) || matches!(update.kind, Kind::Empty) {
                return Vec::new();
            }
            let info = format!("old: {}, new: {}", type_name(original), type_name(update));
            return vec![Found::new(TypeChanged, "", info)];
        }
        let mut found = Vec::new();
        compare_meta(&mut found, &original.meta, &update.meta);
        match (&original.kind, &update.kind) {
            (Kind::String(a), Kind::String(b)) => compare_strings(&mut found, a, b),
            (Kind::Number(a), Kind::Number(b)) => compare_numbers(&mut found, a, b),
            (Kind::Const(a), Kind::Const(b)) if a != b => {
                found.push(Found::new(EnumArrayChanged, "const", format!("old: {a}, new: {b}")));
            }
            (Kind::Enum(a), Kind::Enum(b)) => compare_enums(&mut found, a, b),
            (Kind::Combined(a), Kind::Combined(b)) => self.compare_combined(&mut found, a, b),
            (Kind::Not(a), Kind::Not(b)) => self.compare_not(&mut found, *a, *b),
            (Kind::Object(a), Kind::Object(b)) => self.compare_objects(&mut found, a, b),
            (Kind::Array(a), Kind::Array(b)) => self.compare_arrays(&mut found, a, b),
            (Kind::Ref(a), Kind::Ref(b)) if a.as_ref().err() != b.as_ref().err() => {
                found.push(Found::new(TypeChanged, "", "an unresolved $ref differs"));
            }
            _ => {}
        }
        found
    }

    fn compare_combined(&mut self, found: &mut Vec<Found>, a: &Combined, b: &Combined) {
        use IncompatibilityKind::*;
        let singleton = |c: &Combined| c.subschemas.len() == 1;
        let change = match (a.criterion, b.criterion) {
            (x, y) if x == y => None,
            (_, Criterion::Any) => Some(CombinedTypeExtended),
            (_, Criterion::One) if singleton(a) => Some(CombinedTypeExtended),
            (_, Criterion::All) if singleton(a) && singleton(b) => Some(CombinedTypeExtended),
            _ => Some(CombinedTypeChanged),
        };
        if let Some(kind) = change {
            let info = format!("old: {}, new: {}", a.criterion.keyword(), b.criterion.keyword());
            found.push(Found::new(kind, "", info));
            if kind == CombinedTypeChanged {
                return;
            }
        }
        let olds = a.distinct_subschemas();
        let news = b.distinct_subschemas();
        let product = b.criterion == Criterion::All;
        match olds.len().cmp(&news.len()) {
            std::cmp::Ordering::Less => found.push(Found::new(
                if product { ProductTypeExtended } else { SumTypeExtended },
                "",
                format!("old: {} subschemas, new: {}", olds.len(), news.len()),
            )),
            std::cmp::Ordering::Greater => found.push(Found::new(
                if product { ProductTypeNarrowed } else { SumTypeNarrowed },
                "",
                format!("old: {} subschemas, new: {}", olds.len(), news.len()),
            )),
            std::cmp::Ordering::Equal => {}
        }
        // Every compatible (old branch, new branch) pair, then as many disjoint
        // pairs as can be had.
        let mut edges: Vec<Vec<(usize, Vec<Found>)>> = Vec::with_capacity(olds.len());
        for &(_, old_branch) in &olds {
            let mut row = Vec::new();
            for (j, &(_, new_branch)) in news.iter().enumerate() {
                let pair = self.compare_nodes(old_branch, new_branch);
                if self.exhausted {
                    return;
                }
                if compatible(&pair) {
                    row.push((j, pair));
                }
            }
            edges.push(row);
        }
        let adjacency: Vec<Vec<usize>> = edges.iter().map(|row| row.iter().map(|(j, _)| *j).collect()).collect();
        let mut budget = COMPARE_STEPS_MAX.saturating_sub(self.steps);
        let Some(matching) = maximum_matching(&adjacency, news.len(), &mut budget) else {
            self.exhausted = true;
            return;
        };
        self.steps = COMPARE_STEPS_MAX - budget;
        for &(i, j) in &matching {
            let (Some(&(index, _)), Some(row)) = (olds.get(i), edges.get_mut(i)) else {
                continue;
            };
            let Some(position) = row.iter().position(|(k, _)| *k == j) else {
                continue;
            };
            let pair = std::mem::take(&mut row[position].1);
            // Implicit parts sit at the schema's own path.
            let prefix = if a.synthetic {
                String::new()
            } else {
                format!("{}/{index}", a.criterion.keyword())
            };
            found.extend(under(&prefix, pair));
        }
        if matching.len() < olds.len().min(news.len()) {
            found.push(Found::new(
                CombinedTypeSubschemasChanged,
                "",
                format!(
                    "{} of {} subschemas matched",
                    matching.len(),
                    olds.len().min(news.len())
                ),
            ));
        }
    }

    /// `not`: the new excluded schema must read what the old excluded (compared the
    /// other way round).
    fn compare_not(&mut self, found: &mut Vec<Found>, original: NodeId, update: NodeId) {
        self.flipped = !self.flipped;
        let reversed = self.compare_nodes(update, original);
        self.flipped = !self.flipped;
        let kind = if compatible(&reversed) {
            IncompatibilityKind::NotTypeNarrowed
        } else {
            IncompatibilityKind::NotTypeExtended
        };
        found.push(Found::new(kind, "not", ""));
    }

    fn compare_objects(&mut self, found: &mut Vec<Found>, a: &Object, b: &Object) {
        use IncompatibilityKind::*;
        let (original, update) = (self.original(), self.update());
        // `required` changes count only for properties in both.
        for key in a.properties.keys() {
            let Some(&new_property) = b.properties.get(key) else {
                continue;
            };
            let path = child_path("required", key);
            match (a.required.contains(key), b.required.contains(key)) {
                (true, false) => found.push(Found::new(RequiredAttributeRemoved, path, key.as_str())),
                (false, true) if has_default(update, new_property) => {
                    found.push(Found::new(RequiredAttributeWithDefaultAdded, path, key.as_str()));
                }
                (false, true) => found.push(Found::new(RequiredAttributeAdded, path, key.as_str())),
                _ => {}
            }
        }
        let added = b.properties.keys().filter(|key| !a.properties.contains_key(*key));
        for key in a.properties.keys().chain(added) {
            let path = child_path("properties", key);
            match (a.properties.get(key), b.properties.get(key)) {
                (Some(&old_property), Some(&new_property)) => {
                    let pair = self.compare_nodes(old_property, new_property);
                    found.extend(under(&path, pair));
                }
                (Some(&old_property), None) => self.property_removed(found, b, key, old_property, &path),
                (None, Some(&new_property)) => self.property_added(found, a, b, key, new_property, &path),
                (None, None) => {}
            }
        }
        let keys: BTreeSet<&String> = a
            .property_dependencies
            .keys()
            .chain(b.property_dependencies.keys())
            .collect();
        for key in keys {
            let path = child_path("dependencies", key);
            let kind = match (a.property_dependencies.get(key), b.property_dependencies.get(key)) {
                (Some(_), None) => DependencyArrayRemoved,
                (None, Some(_)) => DependencyArrayAdded,
                (Some(x), Some(y)) if x == y => continue,
                (Some(x), Some(y)) if y.is_superset(x) => DependencyArrayExtended,
                (Some(x), Some(y)) if x.is_subset(y) || x.is_superset(y) => DependencyArrayNarrowed,
                (Some(_), Some(_)) => DependencyArrayChanged,
                (None, None) => continue,
            };
            found.push(Found::new(kind, path, key.as_str()));
        }
        let keys: BTreeSet<&String> = a
            .schema_dependencies
            .keys()
            .chain(b.schema_dependencies.keys())
            .collect();
        for key in keys {
            let path = child_path("dependencies", key);
            match (a.schema_dependencies.get(key), b.schema_dependencies.get(key)) {
                (Some(_), None) => found.push(Found::new(DependencySchemaRemoved, path, key.as_str())),
                (None, Some(_)) => found.push(Found::new(DependencySchemaAdded, path, key.as_str())),
                (Some(&x), Some(&y)) => {
                    let pair = self.compare_nodes(x, y);
                    found.extend(under(&path, pair));
                }
                (None, None) => {}
            }
        }
        let additional = (normalized(original, a.additional), normalized(update, b.additional));
        let kinds = [
            AdditionalPropertiesAdded,
            AdditionalPropertiesRemoved,
            AdditionalPropertiesExtended,
            AdditionalPropertiesNarrowed,
        ];
        self.compare_additional(found, "additionalProperties", additional, kinds);
        let kinds = [
            UnevaluatedPropertiesAdded,
            UnevaluatedPropertiesRemoved,
            UnevaluatedPropertiesExtended,
            UnevaluatedPropertiesNarrowed,
        ];
        self.compare_unevaluated(found, "unevaluatedProperties", (a.unevaluated, b.unevaluated), kinds);
        let kinds = [
            MaxPropertiesAdded,
            MaxPropertiesRemoved,
            MaxPropertiesIncreased,
            MaxPropertiesDecreased,
        ];
        bound(found, "maxProperties", a.max_properties, b.max_properties, kinds);
        let kinds = [
            MinPropertiesAdded,
            MinPropertiesRemoved,
            MinPropertiesIncreased,
            MinPropertiesDecreased,
        ];
        bound(found, "minProperties", a.min_properties, b.min_properties, kinds);
    }

    /// A property only the old schema has: fine if the new one still lets it through.
    fn property_removed(&mut self, found: &mut Vec<Found>, b: &Object, key: &str, old_property: NodeId, path: &str) {
        use IncompatibilityKind::*;
        let (original, update) = (self.original(), self.update());
        if object_open(update, b) {
            found.push(Found::new(PropertyRemovedFromOpenContentModel, path, key));
        } else if let Some(partial) = self.object_partial(update, b, key) {
            let pair = self.compare_nodes(old_property, partial);
            let covered = compatible(&pair);
            found.extend(under(path, pair));
            let kind = if covered {
                PropertyRemovedIsCoveredByPartiallyOpenContentModel
            } else {
                PropertyRemovedNotCoveredByPartiallyOpenContentModel
            };
            found.push(Found::new(kind, path, key));
        } else if matches!(original.graph.node(old_property).kind, Kind::False) {
            found.push(Found::new(PropertyWithFalseRemovedFromClosedContentModel, path, key));
        } else {
            found.push(Found::new(PropertyRemovedFromClosedContentModel, path, key));
        }
    }

    /// A property only the new schema has: old data may hold it if the old schema
    /// let unknown properties through.
    fn property_added(
        &mut self,
        found: &mut Vec<Found>,
        a: &Object,
        b: &Object,
        key: &str,
        new_property: NodeId,
        path: &str,
    ) {
        use IncompatibilityKind::*;
        let (original, update) = (self.original(), self.update());
        let required = b.required.contains(key);
        let default = has_default(update, new_property);
        if object_open(original, a) {
            let kind = if matches!(update.graph.node(new_property).kind, Kind::Empty) {
                PropertyWithEmptySchemaAddedToOpenContentModel
            } else if required && default {
                RequiredPropertyWithDefaultAddedToOpenContentModel
            } else if required {
                RequiredPropertyAddedToOpenContentModel
            } else {
                OptionalPropertyAddedToOpenContentModel
            };
            found.push(Found::new(kind, path, key));
            return;
        }
        if let Some(partial) = self.object_partial(original, a, key) {
            let pair = self.compare_nodes(partial, new_property);
            let covered = compatible(&pair);
            found.extend(under(path, pair));
            let kind = if covered {
                PropertyAddedIsCoveredByPartiallyOpenContentModel
            } else {
                PropertyAddedNotCoveredByPartiallyOpenContentModel
            };
            found.push(Found::new(kind, path, key));
        }
        let kind = match (required, default) {
            (true, true) => RequiredPropertyWithDefaultAddedToUnopenContentModel,
            (true, false) => RequiredPropertyAddedToUnopenContentModel,
            (false, _) => OptionalPropertyAddedToUnopenContentModel,
        };
        found.push(Found::new(kind, path, key));
    }

    /// The schema a partially open object gives an undeclared property `key`:
    /// a matching `patternProperties`, else `additionalProperties`, else
    /// `unevaluatedProperties`.
    fn object_partial(&mut self, schema: &JsonSchema, object: &Object, key: &str) -> Option<NodeId> {
        for (pattern, id) in &object.pattern_properties {
            if self.pattern_matches(pattern, key) {
                return Some(*id);
            }
        }
        match normalized(schema, object.additional) {
            Additional::Schema(id) => Some(id),
            Additional::Forbidden => None,
            Additional::Permitted => restricting(schema, object.unevaluated),
        }
    }

    fn pattern_matches(&mut self, pattern: &str, key: &str) -> bool {
        let validator = self.patterns.entry(pattern.to_owned()).or_insert_with(|| {
            options(Draft::Draft202012)
                .build(&serde_json::json!({ "pattern": pattern }))
                .ok()
        });
        validator
            .as_ref()
            .is_some_and(|v| v.is_valid(&Value::String(key.to_owned())))
    }

    fn compare_arrays(&mut self, found: &mut Vec<Found>, a: &Array, b: &Array) {
        use IncompatibilityKind::*;
        let (original, update) = (self.original(), self.update());
        let pair = self.compare(a.items, b.items);
        found.extend(under("items", pair));
        let shared = a.tuple.len().min(b.tuple.len());
        for (index, (&x, &y)) in a.tuple.iter().zip(&b.tuple).enumerate() {
            let pair = self.compare_nodes(x, y);
            found.extend(under(&format!("{}/{index}", b.tuple_keyword), pair));
        }
        for (index, &old_item) in a.tuple.iter().enumerate().skip(shared) {
            let path = format!("{}/{index}", a.tuple_keyword);
            if array_open(update, b) {
                found.push(Found::new(ItemRemovedFromOpenContentModel, path, ""));
            } else if let Some(partial) = array_partial(update, b) {
                let pair = self.compare_nodes(old_item, partial);
                let covered = compatible(&pair);
                found.extend(under(&path, pair));
                let kind = if covered {
                    ItemRemovedIsCoveredByPartiallyOpenContentModel
                } else {
                    ItemRemovedNotCoveredByPartiallyOpenContentModel
                };
                found.push(Found::new(kind, path, ""));
            } else if matches!(original.graph.node(old_item).kind, Kind::False) {
                found.push(Found::new(ItemWithFalseRemovedFromClosedContentModel, path, ""));
            } else {
                found.push(Found::new(ItemRemovedFromClosedContentModel, path, ""));
            }
        }
        for (index, &new_item) in b.tuple.iter().enumerate().skip(shared) {
            let path = format!("{}/{index}", b.tuple_keyword);
            if array_open(original, a) {
                let kind = if matches!(update.graph.node(new_item).kind, Kind::Empty) {
                    ItemWithEmptySchemaAddedToOpenContentModel
                } else {
                    ItemAddedToOpenContentModel
                };
                found.push(Found::new(kind, path, ""));
            } else if let Some(partial) = array_partial(original, a) {
                let pair = self.compare_nodes(partial, new_item);
                let covered = compatible(&pair);
                found.extend(under(&path, pair));
                let kind = if covered {
                    ItemAddedIsCoveredByPartiallyOpenContentModel
                } else {
                    ItemAddedNotCoveredByPartiallyOpenContentModel
                };
                found.push(Found::new(kind, path, ""));
            } else {
                found.push(Found::new(ItemAddedToClosedContentModel, path, ""));
            }
        }
        let additional = (normalized(original, a.additional), normalized(update, b.additional));
        let kinds = [
            AdditionalItemsAdded,
            AdditionalItemsRemoved,
            AdditionalItemsExtended,
            AdditionalItemsNarrowed,
        ];
        self.compare_additional(found, b.additional_keyword, additional, kinds);
        let kinds = [
            UnevaluatedItemsAdded,
            UnevaluatedItemsRemoved,
            UnevaluatedItemsExtended,
            UnevaluatedItemsNarrowed,
        ];
        self.compare_unevaluated(found, "unevaluatedItems", (a.unevaluated, b.unevaluated), kinds);
        let kinds = [MaxItemsAdded, MaxItemsRemoved, MaxItemsIncreased, MaxItemsDecreased];
        bound(found, "maxItems", a.max_items, b.max_items, kinds);
        let kinds = [MinItemsAdded, MinItemsRemoved, MinItemsIncreased, MinItemsDecreased];
        bound(found, "minItems", a.min_items, b.min_items, kinds);
        match (a.unique_items, b.unique_items) {
            (true, false) => found.push(Found::new(UniqueItemsRemoved, "uniqueItems", "")),
            (false, true) => found.push(Found::new(UniqueItemsAdded, "uniqueItems", "")),
            _ => {}
        }
        let kinds = [
            MaxContainsAdded,
            MaxContainsRemoved,
            MaxContainsIncreased,
            MaxContainsDecreased,
        ];
        bound(found, "maxContains", a.max_contains, b.max_contains, kinds);
        let kinds = [
            MinContainsAdded,
            MinContainsRemoved,
            MinContainsIncreased,
            MinContainsDecreased,
        ];
        bound(found, "minContains", a.min_contains, b.min_contains, kinds);
    }

    /// `additionalProperties` / `additionalItems`; `kinds` are the added (now
    /// permitted), removed (now `false`), extended and narrowed differences.
    fn compare_additional(
        &mut self,
        found: &mut Vec<Found>,
        keyword: &str,
        (a, b): (Additional, Additional),
        [added, removed, extended, narrowed]: [IncompatibilityKind; 4],
    ) {
        match (a, b) {
            (Additional::Forbidden, Additional::Forbidden) | (Additional::Permitted, Additional::Permitted) => {}
            (Additional::Forbidden, _) => found.push(Found::new(added, keyword, "")),
            (_, Additional::Forbidden) => found.push(Found::new(removed, keyword, "")),
            (Additional::Permitted, Additional::Schema(_)) => found.push(Found::new(narrowed, keyword, "")),
            (Additional::Schema(_), Additional::Permitted) => found.push(Found::new(extended, keyword, "")),
            (Additional::Schema(x), Additional::Schema(y)) => {
                let pair = self.compare_nodes(x, y);
                found.extend(under(keyword, pair));
            }
        }
    }

    /// `unevaluatedProperties` / `unevaluatedItems`: `true` or absent lets anything
    /// through, `false` nothing; `kinds` as in `compare_additional`.
    fn compare_unevaluated(
        &mut self,
        found: &mut Vec<Found>,
        keyword: &str,
        (a, b): (Option<NodeId>, Option<NodeId>),
        [added, removed, extended, narrowed]: [IncompatibilityKind; 4],
    ) {
        let (original, update) = (self.original(), self.update());
        let shape = |schema: &JsonSchema, id: Option<NodeId>| match id
            .map(|id| &schema.graph.node(schema.graph.follow(id)).kind)
        {
            None | Some(Kind::Empty) => Shape::Open,
            Some(Kind::False) => Shape::Closed,
            Some(_) => Shape::Schema,
        };
        let kind = match (shape(original, a), shape(update, b)) {
            (Shape::Open, Shape::Open) | (Shape::Closed, Shape::Closed) => return,
            (Shape::Closed, _) => added,
            (_, Shape::Closed) => removed,
            (Shape::Open, Shape::Schema) => narrowed,
            (Shape::Schema, Shape::Open) => extended,
            (Shape::Schema, Shape::Schema) => {
                if let (Some(x), Some(y)) = (a, b) {
                    let pair = self.compare_nodes(x, y);
                    found.extend(under(keyword, pair));
                }
                return;
            }
        };
        found.push(Found::new(kind, keyword, ""));
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Open,
    Closed,
    Schema,
}

fn child_path(keyword: &str, key: &str) -> String {
    format!("{keyword}/{}", escape_segment(key))
}

fn has_default(schema: &JsonSchema, id: NodeId) -> bool {
    schema.graph.node(id).meta.default.is_some()
}

/// A schema for additional members that lets anything through is no schema.
fn normalized(schema: &JsonSchema, additional: Additional) -> Additional {
    match additional {
        Additional::Schema(id) if matches!(schema.graph.node(schema.graph.follow(id)).kind, Kind::Empty) => {
            Additional::Permitted
        }
        other => other,
    }
}

/// An `unevaluated*` schema that is neither `true` nor `false`.
fn restricting(schema: &JsonSchema, unevaluated: Option<NodeId>) -> Option<NodeId> {
    unevaluated.filter(|&id| {
        !matches!(
            schema.graph.node(schema.graph.follow(id)).kind,
            Kind::Empty | Kind::False
        )
    })
}

/// Open: undeclared properties may hold anything.
fn object_open(schema: &JsonSchema, object: &Object) -> bool {
    normalized(schema, object.additional) == Additional::Permitted
        && object.pattern_properties.is_empty()
        && unevaluated_open(schema, object.unevaluated)
}

fn array_open(schema: &JsonSchema, array: &Array) -> bool {
    normalized(schema, array.additional) == Additional::Permitted && unevaluated_open(schema, array.unevaluated)
}

fn unevaluated_open(schema: &JsonSchema, unevaluated: Option<NodeId>) -> bool {
    unevaluated.is_none_or(|id| matches!(schema.graph.node(schema.graph.follow(id)).kind, Kind::Empty))
}

/// The schema a partially open array gives items after its tuple.
fn array_partial(schema: &JsonSchema, array: &Array) -> Option<NodeId> {
    match normalized(schema, array.additional) {
        Additional::Schema(id) => Some(id),
        Additional::Forbidden => None,
        Additional::Permitted => restricting(schema, array.unevaluated),
    }
}

/// A largest set of disjoint (left, right) pairs among `adjacency` (each left's
/// rights), by augmenting paths found breadth first. Each edge tried spends one unit
/// of `budget`; none left: `None`.
fn maximum_matching(adjacency: &[Vec<usize>], rights: usize, budget: &mut usize) -> Option<Vec<(usize, usize)>> {
    let mut right_of: Vec<Option<usize>> = vec![None; adjacency.len()];
    let mut left_of: Vec<Option<usize>> = vec![None; rights];
    for start in 0..adjacency.len() {
        // From `start`, alternate unmatched and matched edges until a free right.
        let mut reached_from: Vec<Option<usize>> = vec![None; rights];
        let mut queue = VecDeque::from([start]);
        let mut free = None;
        'search: while let Some(left) = queue.pop_front() {
            for &right in adjacency.get(left).map_or(&[][..], Vec::as_slice) {
                *budget = budget.checked_sub(1)?;
                let Some(slot @ None) = reached_from.get_mut(right) else {
                    continue;
                };
                *slot = Some(left);
                match left_of.get(right).copied().flatten() {
                    None => {
                        free = Some(right);
                        break 'search;
                    }
                    Some(next) => queue.push_back(next),
                }
            }
        }
        // Flip the path: each left on it takes the right after it.
        let mut right = free;
        while let Some(r) = right {
            let Some(left) = reached_from.get(r).copied().flatten() else {
                break;
            };
            let Some(previous) = right_of.get_mut(left) else {
                break;
            };
            right = previous.replace(r);
            if let Some(slot) = left_of.get_mut(r) {
                *slot = Some(left);
            }
        }
    }
    Some(
        right_of
            .iter()
            .enumerate()
            .filter_map(|(left, right)| right.map(|right| (left, right)))
            .collect(),
    )
}

fn compare_meta(found: &mut Vec<Found>, a: &Meta, b: &Meta) {
    use IncompatibilityKind::*;
    for (kind, x, y) in [
        (IdChanged, &a.id, &b.id),
        (TitleChanged, &a.title, &b.title),
        (DescriptionChanged, &a.description, &b.description),
        (DefaultChanged, &a.default, &b.default),
    ] {
        if x != y {
            found.push(Found::new(kind, "", ""));
        }
    }
}

fn compare_strings(found: &mut Vec<Found>, a: &Strings, b: &Strings) {
    use IncompatibilityKind::*;
    let kinds = [MaxLengthAdded, MaxLengthRemoved, MaxLengthIncreased, MaxLengthDecreased];
    bound(found, "maxLength", a.max_length, b.max_length, kinds);
    let kinds = [MinLengthAdded, MinLengthRemoved, MinLengthIncreased, MinLengthDecreased];
    bound(found, "minLength", a.min_length, b.min_length, kinds);
    let kind = match (&a.pattern, &b.pattern) {
        (None, Some(_)) => PatternAdded,
        (Some(_), None) => PatternRemoved,
        (Some(x), Some(y)) if x != y => PatternChanged,
        _ => return,
    };
    let info = format!(
        "old: {}, new: {}",
        a.pattern.as_deref().unwrap_or("none"),
        b.pattern.as_deref().unwrap_or("none")
    );
    found.push(Found::new(kind, "pattern", info));
}

fn compare_numbers(found: &mut Vec<Found>, a: &Numbers, b: &Numbers) {
    use IncompatibilityKind::*;
    bound(
        found,
        "maximum",
        a.maximum,
        b.maximum,
        [MaximumAdded, MaximumRemoved, MaximumIncreased, MaximumDecreased],
    );
    bound(
        found,
        "minimum",
        a.minimum,
        b.minimum,
        [MinimumAdded, MinimumRemoved, MinimumIncreased, MinimumDecreased],
    );
    let kinds = [
        ExclusiveMaximumAdded,
        ExclusiveMaximumRemoved,
        ExclusiveMaximumIncreased,
        ExclusiveMaximumDecreased,
    ];
    bound(
        found,
        "exclusiveMaximum",
        a.exclusive_maximum,
        b.exclusive_maximum,
        kinds,
    );
    let kinds = [
        ExclusiveMinimumAdded,
        ExclusiveMinimumRemoved,
        ExclusiveMinimumIncreased,
        ExclusiveMinimumDecreased,
    ];
    bound(
        found,
        "exclusiveMinimum",
        a.exclusive_minimum,
        b.exclusive_minimum,
        kinds,
    );
    let multiple = match (a.multiple_of, b.multiple_of) {
        (None, Some(_)) => Some(MultipleOfAdded),
        (Some(_), None) => Some(MultipleOfRemoved),
        (Some(x), Some(y)) if x == y => None,
        (Some(x), Some(y)) if is_multiple(y, x) => Some(MultipleOfExpanded),
        (Some(x), Some(y)) if is_multiple(x, y) => Some(MultipleOfReduced),
        (Some(_), Some(_)) => Some(MultipleOfChanged),
        (None, None) => None,
    };
    if let Some(kind) = multiple {
        let info = format!("old: {}, new: {}", show(a.multiple_of), show(b.multiple_of));
        found.push(Found::new(kind, "multipleOf", info));
    }
    match (a.integer, b.integer) {
        (true, false) => found.push(Found::new(TypeExtended, "", "old: integer, new: number")),
        (false, true) => found.push(Found::new(TypeNarrowed, "", "old: number, new: integer")),
        _ => {}
    }
}

/// Whether `value` is a whole multiple of `of`.
fn is_multiple(value: f64, of: f64) -> bool {
    if of <= 0.0 {
        return false;
    }
    let quotient = value / of;
    quotient.is_finite() && (quotient - quotient.round()).abs() < 1e-9
}

fn compare_enums(found: &mut Vec<Found>, a: &BTreeSet<String>, b: &BTreeSet<String>) {
    use IncompatibilityKind::*;
    let kind = if a == b {
        return;
    } else if b.is_superset(a) {
        EnumArrayExtended
    } else if a.is_superset(b) {
        EnumArrayNarrowed
    } else {
        EnumArrayChanged
    };
    let missing: Vec<&str> = a.difference(b).map(String::as_str).collect();
    found.push(Found::new(
        kind,
        "enum",
        format!("missing in the new schema: [{}]", missing.join(", ")),
    ));
}

/// A bound (`maxLength`, `minimum`, ...) changed; `kinds` are the added, removed,
/// increased and decreased differences.
fn bound(found: &mut Vec<Found>, keyword: &str, old: Option<f64>, new: Option<f64>, kinds: [IncompatibilityKind; 4]) {
    let [added, removed, increased, decreased] = kinds;
    let kind = match (old, new) {
        (None, Some(_)) => added,
        (Some(_), None) => removed,
        (Some(x), Some(y)) if x < y => increased,
        (Some(x), Some(y)) if x > y => decreased,
        _ => return,
    };
    found.push(Found::new(
        kind,
        keyword,
        format!("old: {}, new: {}", show(old), show(new)),
    ));
}

fn show(value: Option<f64>) -> String {
    value.map_or_else(|| "none".to_owned(), |v| v.to_string())
}

fn type_name(node: &Node) -> &'static str {
    match &node.kind {
        Kind::Empty => "any",
        Kind::False => "none",
        Kind::Null => "null",
        Kind::Boolean => "boolean",
        Kind::String(_) => "string",
        Kind::Number(numbers) if numbers.integer => "integer",
        Kind::Number(_) => "number",
        Kind::Enum(_) => "enum",
        Kind::Const(_) => "const",
        Kind::Combined(combined) => combined.criterion.keyword(),
        Kind::Not(_) => "not",
        Kind::Object(_) => "object",
        Kind::Array(_) => "array",
        Kind::Conditional => "if/then/else",
        Kind::Ref(_) => "$ref",
    }
}

#[cfg(test)]
mod tests;
