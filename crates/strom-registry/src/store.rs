//! The registry's state, built by applying `_schemas` records in log order, and the
//! rules that decide what a write records (Confluent's `KafkaSchemaRegistry`): ids are
//! global, one per distinct schema; versions count up per subject and are never
//! reused; soft deletes hide, permanent deletes (only after a soft one) remove.
//!
//! A write is planned here ([`Store::plan_register`], [`Store::plan_delete_version`],
//! ...) into records, appended to the log, and applied from it like every other record,
//! so every registry instance reading the log ends in the same state.

use std::collections::{BTreeMap, BTreeSet};

use crate::compatibility::CompatibilityLevel;
use crate::error::RegistryError;
use crate::records::{Mode, Record, Reference, SchemaType, SchemaValue};

/// A schema as its id names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSchema {
    pub schema_type: SchemaType,
    pub schema: String,
    pub references: Vec<Reference>,
}

/// A version as a request names it: a number or `latest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionId {
    Latest,
    Number(i32),
}

impl VersionId {
    /// `latest` (any case), `-1`, or a number in [1, 2^31-1]; else 42202.
    pub fn parse(text: &str) -> Result<VersionId, RegistryError> {
        if text.eq_ignore_ascii_case("latest") {
            return Ok(VersionId::Latest);
        }
        match text.parse::<i32>() {
            Ok(-1) => Ok(VersionId::Latest),
            Ok(n) if n >= 1 => Ok(VersionId::Number(n)),
            _ => Err(RegistryError::InvalidVersion(text.to_string())),
        }
    }
}

/// What registering a schema under a subject comes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registration {
    /// The subject has it live already: its id and version, nothing to write.
    Existing { id: i32, version: i32 },
    /// Records to append; the schema gets `id` as `version`.
    New {
        id: i32,
        version: i32,
        records: Vec<Record>,
    },
}

#[derive(Debug, Default, Clone)]
pub struct Store {
    /// Subject → version → what is stored.
    subjects: BTreeMap<String, BTreeMap<i32, SchemaValue>>,
    /// The highest version each subject ever had: numbers are not reused.
    max_versions: BTreeMap<String, i32>,
    /// Id → schema; an id stays resolvable while any version uses it, deleted or not.
    schemas: BTreeMap<i32, StoredSchema>,
    max_id: i32,
    /// `None`: the registry's own.
    configs: BTreeMap<Option<String>, CompatibilityLevel>,
    modes: BTreeMap<Option<String>, Mode>,
}

impl Store {
    /// Applies one record of `_schemas`, in log order.
    pub fn apply(&mut self, record: &Record) {
        match record {
            Record::Schema {
                subject,
                version,
                value: Some(value),
            } => {
                self.max_id = self.max_id.max(value.id);
                let max = self.max_versions.entry(subject.clone()).or_default();
                *max = (*max).max(*version);
                self.schemas.entry(value.id).or_insert_with(|| StoredSchema {
                    schema_type: value.schema_type,
                    schema: value.schema.clone(),
                    references: value.references.clone(),
                });
                self.subjects
                    .entry(subject.clone())
                    .or_default()
                    .insert(*version, value.clone());
            }
            Record::Schema {
                subject,
                version,
                value: None,
            } => {
                if let Some(versions) = self.subjects.get_mut(subject) {
                    versions.remove(version);
                    if versions.is_empty() {
                        self.subjects.remove(subject);
                        // An emptied subject loses its config and mode too.
                        self.configs.remove(&Some(subject.clone()));
                        self.modes.remove(&Some(subject.clone()));
                    }
                }
            }
            Record::Config { subject, level } => match level {
                Some(level) => {
                    self.configs.insert(subject.clone(), *level);
                }
                None => {
                    self.configs.remove(subject);
                }
            },
            Record::Mode { subject, mode } => match mode {
                Some(mode) => {
                    self.modes.insert(subject.clone(), *mode);
                }
                None => {
                    self.modes.remove(subject);
                }
            },
            Record::DeleteSubject { subject, version } => {
                for (_, value) in self.subjects.get_mut(subject).into_iter().flatten() {
                    if value.version <= *version {
                        value.deleted = true;
                    }
                }
            }
            Record::Noop => {}
        }
    }

    /// Subjects with a live version (`deleted`: soft-deleted ones too), sorted.
    pub fn subjects(&self, deleted: bool) -> Vec<&str> {
        self.subjects
            .iter()
            .filter(|(_, versions)| deleted || versions.values().any(|v| !v.deleted))
            .map(|(subject, _)| subject.as_str())
            .collect()
    }

    fn subject(&self, subject: &str, deleted: bool) -> Result<&BTreeMap<i32, SchemaValue>, RegistryError> {
        match self.subjects.get(subject) {
            Some(versions) if deleted || versions.values().any(|v| !v.deleted) => Ok(versions),
            _ => Err(RegistryError::SubjectNotFound(subject.to_string())),
        }
    }

    /// A subject's version numbers, ascending.
    pub fn versions(&self, subject: &str, deleted: bool) -> Result<Vec<i32>, RegistryError> {
        Ok(self
            .subject(subject, deleted)?
            .values()
            .filter(|v| deleted || !v.deleted)
            .map(|v| v.version)
            .collect())
    }

    /// One version of a subject; `latest` is the newest live one (with `deleted`, the
    /// newest of all).
    pub fn version(&self, subject: &str, version: VersionId, deleted: bool) -> Result<&SchemaValue, RegistryError> {
        let versions = self.subject(subject, deleted)?;
        let found = match version {
            VersionId::Latest => versions.values().rev().find(|v| deleted || !v.deleted),
            VersionId::Number(n) => versions.get(&n).filter(|v| deleted || !v.deleted),
        };
        found.ok_or(match version {
            VersionId::Latest => RegistryError::VersionNotFound(-1),
            VersionId::Number(n) => RegistryError::VersionNotFound(n),
        })
    }

    /// A schema by its id (soft-deleted versions still resolve it).
    pub fn schema(&self, id: i32) -> Result<&StoredSchema, RegistryError> {
        self.schemas
            .get(&id)
            .filter(|_| self.id_in_use(id))
            .ok_or_else(|| RegistryError::SchemaNotFound(id.to_string()))
    }

    fn id_in_use(&self, id: i32) -> bool {
        self.subjects.values().flat_map(|v| v.values()).any(|v| v.id == id)
    }

    /// The (subject, version) pairs that hold schema `id`.
    pub fn versions_of_id(&self, id: i32, deleted: bool) -> Vec<(&str, i32)> {
        self.subjects
            .iter()
            .flat_map(|(subject, versions)| {
                versions
                    .values()
                    .filter(move |v| v.id == id && (deleted || !v.deleted))
                    .map(move |v| (subject.as_str(), v.version))
            })
            .collect()
    }

    /// Whether some version of `subject`, soft-deleted or not, has schema `id` (the
    /// broker's per-record check: one subject's versions, not every subject's).
    pub fn subject_has_id(&self, subject: &str, id: i32) -> bool {
        self.subjects
            .get(subject)
            .is_some_and(|versions| versions.values().any(|v| v.id == id))
    }

    /// The version of `subject` holding this schema (POST /subjects/{s}): 40401 for a
    /// missing subject, 40403 when the subject does not have the schema.
    pub fn lookup(
        &self,
        subject: &str,
        schema_type: SchemaType,
        schema: &str,
        references: &[Reference],
        deleted: bool,
    ) -> Result<&SchemaValue, RegistryError> {
        let versions = self.subject(subject, deleted)?;
        versions
            .values()
            .rev()
            .find(|v| {
                (deleted || !v.deleted)
                    && v.schema_type == schema_type
                    && v.schema == schema
                    && v.references == references
            })
            .ok_or_else(|| RegistryError::SchemaNotFound(String::new()))
    }

    /// Ids of the schemas whose references name `subject` at `version`.
    pub fn referenced_by(&self, subject: &str, version: i32) -> Vec<i32> {
        let ids: BTreeSet<i32> = self
            .subjects
            .values()
            .flat_map(|v| v.values())
            .filter(|v| {
                !v.deleted
                    && v.references
                        .iter()
                        .any(|r| r.subject == subject && r.version == version)
            })
            .map(|v| v.id)
            .collect();
        ids.into_iter().collect()
    }

    /// The compatibility level a subject set itself (None: it follows the registry's).
    pub fn subject_config(&self, subject: Option<&str>) -> Option<CompatibilityLevel> {
        self.configs.get(&subject.map(str::to_string)).copied()
    }

    /// The level in force for `subject`: its own, else the registry's, else BACKWARD.
    pub fn effective_config(&self, subject: &str) -> CompatibilityLevel {
        self.subject_config(Some(subject))
            .or_else(|| self.subject_config(None))
            .unwrap_or_default()
    }

    pub fn subject_mode(&self, subject: Option<&str>) -> Option<Mode> {
        self.modes.get(&subject.map(str::to_string)).copied()
    }

    pub fn effective_mode(&self, subject: &str) -> Mode {
        self.subject_mode(Some(subject))
            .or_else(|| self.subject_mode(None))
            .unwrap_or_default()
    }

    /// The live versions of a subject, newest first (what compatibility is checked
    /// against).
    pub fn live_versions(&self, subject: &str) -> Vec<&SchemaValue> {
        self.subjects
            .get(subject)
            .map(|versions| versions.values().rev().filter(|v| !v.deleted).collect())
            .unwrap_or_default()
    }

    /// What registering `schema` (already in canonical form) under `subject` records.
    /// Its id is the existing one of an identical schema anywhere, else the next; its
    /// version is one above the highest the subject ever had. A schema the subject holds
    /// live answers with its version; one it held soft-deleted gets a new version with
    /// the old id, the deleted versions of that id removed for good.
    pub fn plan_register(
        &self,
        subject: &str,
        schema_type: SchemaType,
        schema: &str,
        references: &[Reference],
    ) -> Registration {
        if let Ok(live) = self.lookup(subject, schema_type, schema, references, false) {
            return Registration::Existing {
                id: live.id,
                version: live.version,
            };
        }
        let same = |s: &StoredSchema| s.schema_type == schema_type && s.schema == schema && s.references == references;
        let id = self
            .schemas
            .iter()
            .find(|(_, s)| same(s))
            .map(|(id, _)| *id)
            .unwrap_or(self.max_id + 1);
        let version = self.max_versions.get(subject).copied().unwrap_or(0) + 1;
        let mut records: Vec<Record> = self
            .subjects
            .get(subject)
            .into_iter()
            .flat_map(|versions| versions.values())
            .filter(|v| v.deleted && v.id == id)
            .map(|v| Record::Schema {
                subject: subject.to_string(),
                version: v.version,
                value: None,
            })
            .collect();
        records.push(Record::Schema {
            subject: subject.to_string(),
            version,
            value: Some(SchemaValue {
                subject: subject.to_string(),
                version,
                id,
                schema_type,
                schema: schema.to_string(),
                references: references.to_vec(),
                deleted: false,
            }),
        });
        Registration::New { id, version, records }
    }

    /// DELETE /subjects/{s}/versions/{v}: a soft delete marks the version; a permanent
    /// one needs it soft-deleted first and removes it. A version others reference
    /// cannot be deleted (42206).
    pub fn plan_delete_version(
        &self,
        subject: &str,
        version: VersionId,
        permanent: bool,
    ) -> Result<(i32, Record), RegistryError> {
        // A numbered version is found deleted or not (to say which it is); `latest` is
        // the newest live one, or for a permanent delete the newest of all.
        let include_deleted = permanent || matches!(version, VersionId::Number(_));
        let found = self.version(subject, version, include_deleted)?.clone();
        if !self.referenced_by(subject, found.version).is_empty() {
            return Err(RegistryError::ReferenceExists {
                subject: subject.to_string(),
                version: found.version,
            });
        }
        let record = match (permanent, found.deleted) {
            (false, true) => return Err(RegistryError::VersionSoftDeleted(found.version)),
            (true, false) => return Err(RegistryError::VersionNotSoftDeleted(found.version)),
            (true, true) => Record::Schema {
                subject: subject.to_string(),
                version: found.version,
                value: None,
            },
            (false, false) => Record::Schema {
                subject: subject.to_string(),
                version: found.version,
                value: Some(SchemaValue {
                    deleted: true,
                    ..found.clone()
                }),
            },
        };
        Ok((found.version, record))
    }

    /// DELETE /subjects/{s}: the versions it deletes and the records. Soft: every live
    /// version (40404 when none is left); permanent: every version, after a soft delete
    /// of all (40405 otherwise).
    pub fn plan_delete_subject(
        &self,
        subject: &str,
        permanent: bool,
    ) -> Result<(Vec<i32>, Vec<Record>), RegistryError> {
        let versions = self
            .subjects
            .get(subject)
            .ok_or_else(|| RegistryError::SubjectNotFound(subject.to_string()))?;
        let live: Vec<i32> = versions.values().filter(|v| !v.deleted).map(|v| v.version).collect();
        for version in versions.keys() {
            if !self.referenced_by(subject, *version).is_empty() {
                return Err(RegistryError::ReferenceExists {
                    subject: subject.to_string(),
                    version: *version,
                });
            }
        }
        if !permanent {
            let Some(last) = live.last() else {
                return Err(RegistryError::SubjectSoftDeleted(subject.to_string()));
            };
            let record = Record::DeleteSubject {
                subject: subject.to_string(),
                version: *last,
            };
            return Ok((live, vec![record]));
        }
        if !live.is_empty() {
            return Err(RegistryError::SubjectNotSoftDeleted(subject.to_string()));
        }
        let all: Vec<i32> = versions.keys().copied().collect();
        let records = all
            .iter()
            .map(|version| Record::Schema {
                subject: subject.to_string(),
                version: *version,
                value: None,
            })
            .collect();
        Ok((all, records))
    }
}

#[cfg(test)]
mod tests;
