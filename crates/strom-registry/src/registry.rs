//! A registry instance: the [`Store`] kept in step with the `_schemas` log by a
//! follower task, and the write path — plan records from the store, append them, wait
//! until the follower applied them (so a write's answer reads its own result) — one
//! write at a time, so two registrations never take the same id.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::sync::{watch, Mutex};

use crate::compatibility::{self, CompatibilityLevel};
use crate::error::RegistryError;
use crate::records::{Mode, Record, Reference, SchemaType};
use crate::schema::ParsedSchema;
use crate::store::{Registration, Store, VersionId};

/// One stored record: its offset, key and value (None: a tombstone).
pub type LogEntry = (i64, Vec<u8>, Option<Vec<u8>>);
/// A record to append: key and value (None: a tombstone).
pub type KeyValue = (Vec<u8>, Option<Vec<u8>>);

/// Where the registry keeps its records: the `_schemas` topic on the broker, or memory
/// in tests.
pub trait SchemaLog: Send + Sync + 'static {
    /// Appends records durably; the offset after the last.
    fn append(&self, records: Vec<KeyValue>) -> BoxFuture<'_, Result<i64, RegistryError>>;
    /// Records from `offset` on, waiting up to `wait` when there are none yet.
    fn read(&self, offset: i64, wait: Duration) -> BoxFuture<'_, Result<Vec<LogEntry>, RegistryError>>;
}

/// The largest schema text accepted (Confluent's 42209 beyond it).
pub const MAX_SCHEMA_BYTES: usize = 1 << 20;
/// How long a write waits for the follower to apply what it appended.
const APPLY_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Registry {
    log: Arc<dyn SchemaLog>,
    store: RwLock<Store>,
    /// The offset after the last record applied.
    applied: watch::Sender<i64>,
    writes: Mutex<()>,
    /// Schemas parsed for the broker's record checks, by id (an id's schema never
    /// changes): a produce does not parse a schema per record.
    parsed: std::sync::Mutex<HashMap<i32, Arc<ParsedSchema>>>,
}

/// Parsed schemas kept for record checks; the cache starts over beyond this.
const PARSED_CACHE_ENTRIES: usize = 1024;

/// A schema as a request gives it.
#[derive(Debug, Clone)]
pub struct NewSchema {
    pub schema_type: SchemaType,
    pub schema: String,
    pub references: Vec<Reference>,
}

impl Registry {
    /// A registry over `log`, with a task following it (applied from the start).
    pub fn start(log: Arc<dyn SchemaLog>) -> Arc<Registry> {
        let registry = Arc::new(Registry {
            log,
            store: RwLock::new(Store::default()),
            applied: watch::channel(0).0,
            writes: Mutex::new(()),
            parsed: std::sync::Mutex::new(HashMap::new()),
        });
        let follower = Arc::downgrade(&registry);
        tokio::spawn(async move {
            let mut offset = 0;
            loop {
                let Some(registry) = follower.upgrade() else { return };
                match registry.log.read(offset, Duration::from_millis(500)).await {
                    Ok(entries) => offset = registry.apply(offset, entries),
                    Err(e) => {
                        tracing::warn!(error = %e, "reading _schemas failed; retrying");
                        drop(registry);
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
        });
        registry
    }

    fn apply(&self, mut offset: i64, entries: Vec<LogEntry>) -> i64 {
        if entries.is_empty() {
            return offset;
        }
        {
            let mut store = self.store.write().unwrap_or_else(|e| e.into_inner());
            for (at, key, value) in entries {
                match Record::decode(&key, value.as_deref()) {
                    Ok(record) => store.apply(&record),
                    Err(e) => tracing::warn!(offset = at, error = %e, "skipping a _schemas record"),
                }
                offset = at + 1;
            }
        }
        self.applied.send_replace(offset);
        offset
    }

    /// Reads the state.
    pub fn read<T>(&self, f: impl FnOnce(&Store) -> T) -> T {
        f(&self.store.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Appends `records` and waits until they are applied here.
    async fn commit(&self, records: Vec<Record>) -> Result<(), RegistryError> {
        if records.is_empty() {
            return Ok(());
        }
        let end = self.log.append(records.iter().map(Record::encode).collect()).await?;
        let mut applied = self.applied.subscribe();
        tokio::time::timeout(APPLY_TIMEOUT, applied.wait_for(|at| *at >= end))
            .await
            .map_err(|_| RegistryError::Timeout("the write was not read back from _schemas".into()))?
            .map_err(|_| RegistryError::Store("the _schemas follower stopped".into()))?;
        Ok(())
    }

    /// The schema in canonical form, parsed with its references resolved.
    fn parse(&self, schema: &NewSchema) -> Result<(String, ParsedSchema), RegistryError> {
        if schema.schema.len() > MAX_SCHEMA_BYTES {
            return Err(RegistryError::SchemaTooLarge {
                size: schema.schema.len(),
                max: MAX_SCHEMA_BYTES,
            });
        }
        let referenced = self.read(|store| resolve_references(store, &schema.references))?;
        let parsed = ParsedSchema::parse(schema.schema_type, &schema.schema, &referenced)
            .map_err(|e| RegistryError::InvalidSchema(format!("Invalid schema: {e}")))?;
        Ok((parsed.canonical_string(), parsed))
    }

    /// A stored schema parsed again (its references were resolved when registered).
    fn parse_stored(&self, schema_type: SchemaType, text: &str, references: &[Reference]) -> Option<ParsedSchema> {
        let referenced = self.read(|store| resolve_references(store, references)).ok()?;
        ParsedSchema::parse(schema_type, text, &referenced).ok()
    }

    /// Why `schema` is incompatible with the subject's versions at `level` (empty: it
    /// is not), against `against` (the live versions, newest first) or all of them.
    fn incompatibilities(
        &self,
        subject: &str,
        schema: &NewSchema,
        parsed: &ParsedSchema,
        level: CompatibilityLevel,
        only: Option<i32>,
    ) -> Result<Vec<String>, RegistryError> {
        let previous: Vec<(SchemaType, String, Vec<Reference>)> = self.read(|store| {
            store
                .live_versions(subject)
                .into_iter()
                .filter(|v| only.is_none_or(|n| v.version == n))
                .map(|v| (v.schema_type, v.schema.clone(), v.references.clone()))
                .collect()
        });
        let mut old = Vec::new();
        for (schema_type, text, references) in previous {
            if schema_type != schema.schema_type {
                return Ok(vec!["Incompatible because of different schema type".into()]);
            }
            let (_, parsed_old) = self.parse(&NewSchema {
                schema_type,
                schema: text,
                references,
            })?;
            old.push(parsed_old);
        }
        let old: Vec<&ParsedSchema> = old.iter().collect();
        Ok(compatibility::check(
            level,
            parsed,
            &old,
            ParsedSchema::reader_incompatibilities,
        ))
    }

    /// POST /subjects/{s}/versions: the schema's id (and version) under `subject`.
    pub async fn register(&self, subject: &str, schema: NewSchema) -> Result<(i32, i32), RegistryError> {
        check_subject(subject)?;
        let (canonical, parsed) = self.parse(&schema)?;
        let _write = self.writes.lock().await;
        let mode = self.read(|s| s.effective_mode(subject));
        if matches!(mode, Mode::ReadOnly | Mode::ReadOnlyOverride) {
            return Err(RegistryError::OperationNotPermitted(format!(
                "Subject {subject} is in read-only mode"
            )));
        }
        let plan = self.read(|s| s.plan_register(subject, schema.schema_type, &canonical, &schema.references));
        match plan {
            Registration::Existing { id, version } => Ok((id, version)),
            Registration::New { id, version, records } => {
                let level = self.read(|s| s.effective_config(subject));
                if mode != Mode::Import {
                    let messages = self.incompatibilities(subject, &schema, &parsed, level, None)?;
                    if !messages.is_empty() {
                        return Err(RegistryError::Incompatible {
                            subject: subject.to_string(),
                            messages,
                        });
                    }
                }
                self.commit(records).await?;
                Ok((id, version))
            }
        }
    }

    /// POST /subjects/{s}: the version of `subject` holding this schema.
    pub fn lookup(
        &self,
        subject: &str,
        schema: &NewSchema,
        deleted: bool,
    ) -> Result<crate::records::SchemaValue, RegistryError> {
        let (canonical, _) = self.parse(schema)?;
        self.read(|s| {
            s.lookup(subject, schema.schema_type, &canonical, &schema.references, deleted)
                .cloned()
        })
    }

    /// POST /compatibility/subjects/{s}/versions[/{v}]: the reasons it is not (empty:
    /// compatible). A version checks against it alone; none, as registering would.
    pub fn check_compatibility(
        &self,
        subject: &str,
        version: Option<VersionId>,
        schema: &NewSchema,
    ) -> Result<Vec<String>, RegistryError> {
        let (_, parsed) = self.parse(schema)?;
        let level = self.read(|s| s.effective_config(subject));
        let only = match version {
            None => None,
            Some(version) => match self.read(|s| s.version(subject, version, false).map(|v| v.version)) {
                Ok(n) => Some(n),
                // `latest` of a subject with nothing: compatible, as Confluent answers.
                Err(RegistryError::SubjectNotFound(_)) if version == VersionId::Latest => return Ok(Vec::new()),
                Err(RegistryError::VersionNotFound(_)) if version == VersionId::Latest => return Ok(Vec::new()),
                Err(e) => return Err(e),
            },
        };
        let level = match (only, level) {
            // One named version: the level's direction, that version only.
            (Some(_), CompatibilityLevel::BackwardTransitive) => CompatibilityLevel::Backward,
            (Some(_), CompatibilityLevel::ForwardTransitive) => CompatibilityLevel::Forward,
            (Some(_), CompatibilityLevel::FullTransitive) => CompatibilityLevel::Full,
            (_, level) => level,
        };
        self.incompatibilities(subject, schema, &parsed, level, only)
    }

    pub async fn delete_version(
        &self,
        subject: &str,
        version: VersionId,
        permanent: bool,
    ) -> Result<i32, RegistryError> {
        let _write = self.writes.lock().await;
        let (deleted, record) = self.read(|s| s.plan_delete_version(subject, version, permanent))?;
        self.commit(vec![record]).await?;
        Ok(deleted)
    }

    pub async fn delete_subject(&self, subject: &str, permanent: bool) -> Result<Vec<i32>, RegistryError> {
        let _write = self.writes.lock().await;
        let (versions, records) = self.read(|s| s.plan_delete_subject(subject, permanent))?;
        self.commit(records).await?;
        Ok(versions)
    }

    /// PUT /config[/{s}].
    pub async fn set_config(&self, subject: Option<&str>, level: CompatibilityLevel) -> Result<(), RegistryError> {
        let _write = self.writes.lock().await;
        self.commit(vec![Record::Config {
            subject: subject.map(str::to_string),
            level: Some(level),
        }])
        .await
    }

    /// DELETE /config[/{s}]: the level it had (40408 for a subject with none).
    pub async fn delete_config(&self, subject: Option<&str>) -> Result<CompatibilityLevel, RegistryError> {
        let _write = self.writes.lock().await;
        let old = match (self.read(|s| s.subject_config(subject)), subject) {
            (Some(level), _) => level,
            (None, Some(subject)) => return Err(RegistryError::CompatibilityNotConfigured(subject.to_string())),
            (None, None) => CompatibilityLevel::default(),
        };
        self.commit(vec![Record::Config {
            subject: subject.map(str::to_string),
            level: None,
        }])
        .await?;
        Ok(old)
    }

    /// PUT /mode[/{s}]: IMPORT only on an empty registry or subject unless forced.
    pub async fn set_mode(&self, subject: Option<&str>, mode: Mode, force: bool) -> Result<(), RegistryError> {
        let _write = self.writes.lock().await;
        if mode == Mode::Import && !force {
            let empty = self.read(|s| match subject {
                Some(subject) => s.versions(subject, true).is_err(),
                None => s.subjects(true).is_empty(),
            });
            if !empty {
                return Err(RegistryError::OperationNotPermitted(
                    "Cannot import since found existing subjects".into(),
                ));
            }
        }
        self.commit(vec![Record::Mode {
            subject: subject.map(str::to_string),
            mode: Some(mode),
        }])
        .await
    }

    pub async fn delete_mode(&self, subject: &str) -> Result<Mode, RegistryError> {
        let _write = self.writes.lock().await;
        let old = self
            .read(|s| s.subject_mode(Some(subject)))
            .ok_or_else(|| RegistryError::ModeNotConfigured(subject.to_string()))?;
        self.commit(vec![Record::Mode {
            subject: Some(subject.to_string()),
            mode: None,
        }])
        .await?;
        Ok(old)
    }
}

/// How deep references may nest (a guard: a cycle is caught before this).
const MAX_REFERENCE_DEPTH: usize = 64;

/// Every schema `references` need, directly or through their own references, as
/// (reference name, schema text), each after the ones it references. A missing
/// version, a cycle or nesting past [`MAX_REFERENCE_DEPTH`] is 42201.
fn resolve_references(store: &Store, references: &[Reference]) -> Result<Vec<(String, String)>, RegistryError> {
    fn visit(
        store: &Store,
        reference: &Reference,
        path: &mut Vec<(String, i32)>,
        done: &mut std::collections::HashSet<(String, i32)>,
        out: &mut Vec<(String, String)>,
    ) -> Result<(), RegistryError> {
        let key = (reference.subject.clone(), reference.version);
        if done.contains(&key) {
            return Ok(());
        }
        if path.contains(&key) {
            return Err(RegistryError::InvalidSchema(format!(
                "Invalid schema: the references form a cycle through subject {} version {}",
                reference.subject, reference.version
            )));
        }
        if path.len() >= MAX_REFERENCE_DEPTH {
            return Err(RegistryError::InvalidSchema(format!(
                "Invalid schema: references nest deeper than {MAX_REFERENCE_DEPTH}"
            )));
        }
        let version = store
            .version(&reference.subject, VersionId::Number(reference.version), true)
            .map_err(|_| {
                RegistryError::InvalidSchema(format!(
                    "Invalid schema: reference {} to subject {} version {} does not exist",
                    reference.name, reference.subject, reference.version
                ))
            })?;
        path.push(key.clone());
        for nested in &version.references {
            visit(store, nested, path, done, out)?;
        }
        path.pop();
        done.insert(key);
        out.push((reference.name.clone(), version.schema.clone()));
        Ok(())
    }
    let mut out = Vec::new();
    let mut done = std::collections::HashSet::new();
    for reference in references {
        visit(store, reference, &mut Vec::new(), &mut done, &mut out)?;
    }
    Ok(out)
}

/// Subjects are non-empty and printable (42208 otherwise).
fn check_subject(subject: &str) -> Result<(), RegistryError> {
    if subject.is_empty() || subject.chars().any(char::is_control) {
        return Err(RegistryError::InvalidSubject(subject.to_string()));
    }
    Ok(())
}

/// The log kept in memory (tests, and a registry without a broker).
#[derive(Default)]
pub struct MemoryLog {
    entries: std::sync::Mutex<Vec<KeyValue>>,
    appended: tokio::sync::Notify,
}

impl SchemaLog for MemoryLog {
    fn append(&self, records: Vec<KeyValue>) -> BoxFuture<'_, Result<i64, RegistryError>> {
        Box::pin(async move {
            let end = {
                let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
                entries.extend(records);
                entries.len() as i64
            };
            self.appended.notify_waiters();
            Ok(end)
        })
    }

    fn read(&self, offset: i64, wait: Duration) -> BoxFuture<'_, Result<Vec<LogEntry>, RegistryError>> {
        Box::pin(async move {
            let notified = self.appended.notified();
            let take = |entries: &Vec<KeyValue>| -> Vec<LogEntry> {
                entries
                    .iter()
                    .enumerate()
                    .skip(offset.max(0) as usize)
                    .map(|(i, (k, v))| (i as i64, k.clone(), v.clone()))
                    .collect()
            };
            let now = take(&self.entries.lock().unwrap_or_else(|e| e.into_inner()));
            if !now.is_empty() {
                return Ok(now);
            }
            let _ = tokio::time::timeout(wait, notified).await;
            Ok(take(&self.entries.lock().unwrap_or_else(|e| e.into_inner())))
        })
    }
}

impl Registry {
    /// A stored schema as `format` asks: Protobuf's `serialized` is its base64
    /// `FileDescriptorProto` (what confluent-kafka's Protobuf deserializer reads);
    /// anything else is the text as stored.
    pub fn formatted(
        &self,
        schema_type: SchemaType,
        text: &str,
        references: &[Reference],
        format: Option<&str>,
    ) -> String {
        if schema_type == SchemaType::Protobuf && format == Some("serialized") {
            if let Some(ParsedSchema::Protobuf(schema)) = self.parse_stored(schema_type, text, references) {
                return schema.serialized();
            }
        }
        text.to_string()
    }

    /// Schema `id` parsed, from the cache when it was parsed before.
    fn parsed_schema(&self, id: i32) -> Option<Arc<ParsedSchema>> {
        if let Some(found) = self.parsed.lock().unwrap_or_else(|e| e.into_inner()).get(&id) {
            return Some(found.clone());
        }
        let stored = self.read(|s| s.schema(id).cloned()).ok()?;
        let parsed = Arc::new(self.parse_stored(stored.schema_type, &stored.schema, &stored.references)?);
        let mut cache = self.parsed.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= PARSED_CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(id, parsed.clone());
        Some(parsed)
    }

    /// The full name of the record type a record written with schema `id` holds
    /// (RecordNameStrategy): Avro's record, JSON's title, or the Protobuf message the
    /// indexes after the schema id name (`payload` is what follows the id).
    fn record_name(&self, id: i32, payload: &[u8]) -> Result<String, String> {
        let parsed = self
            .parsed_schema(id)
            .ok_or_else(|| format!("schema {id} does not parse"))?;
        match &*parsed {
            ParsedSchema::Protobuf(schema) => {
                let (indexes, _) = crate::protobuf::read_message_indexes(payload)
                    .map_err(|e| format!("its Protobuf message indexes do not read: {e}"))?;
                schema
                    .message_name(&indexes)
                    .ok_or_else(|| format!("schema {id} has no message at indexes {indexes:?}"))
            }
            other => other
                .record_name()
                .ok_or_else(|| format!("schema {id} names no record type")),
        }
    }
}

/// The broker's check of produced records on topics with
/// `confluent.{key,value}.schema.validation`: Confluent's wire format (magic byte 0, a
/// 4-byte schema id), an id this registry knows, registered under the subject the
/// topic's strategy names (soft-deleted versions count, as in other registries), and
/// with `strom.{key,value}.schema.validation.decode` a payload that decodes with it.
impl strom_broker::validation::RecordValidator for Registry {
    fn check(
        &self,
        topic: &str,
        part: strom_broker::validation::RecordPart,
        rule: strom_broker::SchemaRule,
        bytes: &[u8],
    ) -> Option<String> {
        use strom_broker::SubjectStrategy;
        let strategy = rule.strategy;
        let part_name = part.name();
        let [0, a, b, c, d, ..] = *bytes else {
            return Some(format!(
                "the {part_name} does not start with a schema id (magic byte 0 and a 4-byte id)"
            ));
        };
        let id = i32::from_be_bytes([a, b, c, d]);
        if self.read(|s| s.schema(id).is_err()) {
            return Some(format!("the {part_name}'s schema id {id} is not registered"));
        }
        let subject = match strategy {
            SubjectStrategy::TopicName => format!("{topic}-{part_name}"),
            SubjectStrategy::RecordName | SubjectStrategy::TopicRecordName => {
                let name = match self.record_name(id, &bytes[5..]) {
                    Ok(name) => name,
                    Err(why) => return Some(format!("the {part_name}'s record name: {why}")),
                };
                if strategy == SubjectStrategy::RecordName {
                    name
                } else {
                    format!("{topic}-{name}")
                }
            }
        };
        let registered = self.read(|s| s.subject_has_id(&subject, id));
        if !registered {
            return Some(format!(
                "the {part_name}'s schema id {id} is not registered under subject {subject}"
            ));
        }
        if rule.decode {
            let Some(schema) = self.parsed_schema(id) else {
                return Some(format!("the {part_name}'s schema {id} does not parse"));
            };
            if let Err(why) = schema.validate_payload(&bytes[5..]) {
                return Some(format!("the {part_name} does not decode with schema {id}: {why}"));
            }
        }
        None
    }
}
