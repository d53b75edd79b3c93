//! The REST API, Confluent's paths, bodies, content type and error bodies
//! (`{"error_code": ..., "message": ...}`), over a [`Registry`].

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};

use crate::compatibility::CompatibilityLevel;
use crate::error::RegistryError;
use crate::records::{Mode, Reference, SchemaType, SchemaValue};
use crate::registry::{NewSchema, Registry};
use crate::store::VersionId;

/// Confluent's preferred response type.
pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

type Params = Query<HashMap<String, String>>;
type Shared = State<Arc<Registry>>;

/// The routes of the registry.
pub fn router(registry: Arc<Registry>) -> Router {
    Router::new()
        .route("/", get(|| async { reply(json!({})) }))
        .route(
            "/schemas/types",
            get(|| async { reply(json!(["JSON", "PROTOBUF", "AVRO"])) }),
        )
        .route("/schemas/ids/{id}", get(schema_by_id))
        .route("/schemas/ids/{id}/schema", get(raw_schema_by_id))
        .route("/schemas/ids/{id}/subjects", get(subjects_of_id))
        .route("/schemas/ids/{id}/versions", get(versions_of_id))
        .route("/subjects", get(subjects))
        .route("/subjects/{subject}", post(lookup).delete(delete_subject))
        .route("/subjects/{subject}/versions", get(versions).post(register))
        .route(
            "/subjects/{subject}/versions/{version}",
            get(version).delete(delete_version),
        )
        .route("/subjects/{subject}/versions/{version}/schema", get(raw_version))
        .route(
            "/subjects/{subject}/versions/{version}/referencedby",
            get(referenced_by),
        )
        .route("/compatibility/subjects/{subject}/versions", post(compatibility_all))
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(compatibility_one),
        )
        .route(
            "/config",
            get(global_config).put(set_global_config).delete(delete_global_config),
        )
        .route(
            "/config/{subject}",
            get(subject_config)
                .put(set_subject_config)
                .delete(delete_subject_config),
        )
        .route("/mode", get(global_mode).put(set_global_mode))
        .route(
            "/mode/{subject}",
            get(subject_mode).put(set_subject_mode).delete(delete_subject_mode),
        )
        .with_state(registry)
}

/// Serves the REST API on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, registry: Arc<Registry>) -> std::io::Result<()> {
    axum::serve(listener, router(registry)).await
}

fn reply(body: Value) -> Response {
    let mut response = axum::Json(body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = reply(json!({"error_code": self.code(), "message": self.to_string()}));
        *response.status_mut() = status;
        response
    }
}

type Answer = Result<Response, RegistryError>;

fn flag(params: &HashMap<String, String>, name: &str) -> bool {
    params.get(name).is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

fn id_of(text: &str) -> Result<i32, RegistryError> {
    text.parse()
        .map_err(|_| RegistryError::SchemaNotFound(text.to_string()))
}

fn schema_json(schema_type: SchemaType, schema: &str, references: &[Reference]) -> Value {
    let mut body = json!({"schema": schema});
    if schema_type != SchemaType::Avro {
        body["schemaType"] = json!(schema_type.name());
    }
    if !references.is_empty() {
        body["references"] = references_json(references);
    }
    body
}

fn references_json(references: &[Reference]) -> Value {
    Value::Array(
        references
            .iter()
            .map(|r| json!({"name": r.name, "subject": r.subject, "version": r.version}))
            .collect(),
    )
}

fn version_json(v: &SchemaValue) -> Value {
    let mut body = json!({"subject": v.subject, "version": v.version, "id": v.id, "schema": v.schema});
    if v.schema_type != SchemaType::Avro {
        body["schemaType"] = json!(v.schema_type.name());
    }
    if !v.references.is_empty() {
        body["references"] = references_json(&v.references);
    }
    body
}

/// A register, lookup or compatibility body: `schema`, `schemaType`, `references`.
fn new_schema(body: &Bytes) -> Result<NewSchema, RegistryError> {
    let malformed = |why: String| RegistryError::InvalidSchema(format!("Invalid schema: {why}"));
    let value: Value = serde_json::from_slice(body).map_err(|e| malformed(e.to_string()))?;
    let schema = value
        .get("schema")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("the body has no schema".into()))?
        .to_string();
    let schema_type = SchemaType::parse(value.get("schemaType").and_then(Value::as_str))
        .ok_or_else(|| malformed("unknown schemaType".into()))?;
    let references = match value.get("references") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(refs)) => refs
            .iter()
            .map(|r| {
                Some(Reference {
                    name: r.get("name")?.as_str()?.to_string(),
                    subject: r.get("subject")?.as_str()?.to_string(),
                    version: i32::try_from(r.get("version")?.as_i64()?).ok()?,
                })
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| malformed("a reference needs name, subject and version".into()))?,
        Some(_) => return Err(malformed("references must be a list".into())),
    };
    Ok(NewSchema {
        schema_type,
        schema,
        references,
    })
}

async fn schema_by_id(State(r): Shared, Path(id): Path<String>, Query(p): Params) -> Answer {
    let id = id_of(&id)?;
    let s = r.read(|store| store.schema(id).cloned())?;
    let text = r.formatted(
        s.schema_type,
        &s.schema,
        &s.references,
        p.get("format").map(String::as_str),
    );
    Ok(reply(schema_json(s.schema_type, &text, &s.references)))
}

async fn raw_schema_by_id(State(r): Shared, Path(id): Path<String>) -> Answer {
    let id = id_of(&id)?;
    let s = r.read(|store| store.schema(id).cloned())?;
    Ok(reply(
        serde_json::from_str(&s.schema).unwrap_or(Value::String(s.schema)),
    ))
}

async fn subjects_of_id(State(r): Shared, Path(id): Path<String>, Query(p): Params) -> Answer {
    let id = id_of(&id)?;
    let pairs = r.read(|store| {
        store.schema(id)?;
        let mut subjects: Vec<String> = store
            .versions_of_id(id, flag(&p, "deleted"))
            .into_iter()
            .map(|(s, _)| s.to_string())
            .collect();
        subjects.dedup();
        Ok::<_, RegistryError>(subjects)
    })?;
    Ok(reply(json!(pairs)))
}

async fn versions_of_id(State(r): Shared, Path(id): Path<String>, Query(p): Params) -> Answer {
    let id = id_of(&id)?;
    let pairs = r.read(|store| {
        store.schema(id)?;
        Ok::<_, RegistryError>(
            store
                .versions_of_id(id, flag(&p, "deleted"))
                .into_iter()
                .map(|(s, v)| json!({"subject": s, "version": v}))
                .collect::<Vec<_>>(),
        )
    })?;
    Ok(reply(json!(pairs)))
}

async fn subjects(State(r): Shared, Query(p): Params) -> Answer {
    let prefix = p.get("subjectPrefix").cloned().unwrap_or_default();
    let deleted = flag(&p, "deleted") || flag(&p, "deletedOnly");
    let subjects: Vec<String> = r.read(|store| {
        let live: Vec<String> = store.subjects(false).into_iter().map(str::to_string).collect();
        store
            .subjects(deleted)
            .into_iter()
            .filter(|s| s.starts_with(&prefix))
            .filter(|s| !flag(&p, "deletedOnly") || !live.iter().any(|l| l == s))
            .map(str::to_string)
            .collect()
    });
    Ok(reply(json!(subjects)))
}

async fn versions(State(r): Shared, Path(subject): Path<String>, Query(p): Params) -> Answer {
    let versions = r.read(|store| store.versions(&subject, flag(&p, "deleted")))?;
    Ok(reply(json!(versions)))
}

async fn version(State(r): Shared, Path((subject, version)): Path<(String, String)>, Query(p): Params) -> Answer {
    let version = VersionId::parse(&version)?;
    let mut found = r.read(|store| store.version(&subject, version, flag(&p, "deleted")).cloned())?;
    found.schema = r.formatted(
        found.schema_type,
        &found.schema,
        &found.references,
        p.get("format").map(String::as_str),
    );
    Ok(reply(version_json(&found)))
}

async fn raw_version(State(r): Shared, Path((subject, version)): Path<(String, String)>, Query(p): Params) -> Answer {
    let version = VersionId::parse(&version)?;
    let found = r.read(|store| store.version(&subject, version, flag(&p, "deleted")).cloned())?;
    Ok(reply(
        serde_json::from_str(&found.schema).unwrap_or(Value::String(found.schema)),
    ))
}

async fn referenced_by(State(r): Shared, Path((subject, version)): Path<(String, String)>) -> Answer {
    let version = VersionId::parse(&version)?;
    let ids = r.read(|store| {
        let found = store.version(&subject, version, false)?;
        Ok::<_, RegistryError>(store.referenced_by(&subject, found.version))
    })?;
    Ok(reply(json!(ids)))
}

async fn register(State(r): Shared, Path(subject): Path<String>, body: Bytes) -> Answer {
    let schema = new_schema(&body)?;
    let (id, _) = r.register(&subject, schema).await?;
    Ok(reply(json!({"id": id})))
}

async fn lookup(State(r): Shared, Path(subject): Path<String>, Query(p): Params, body: Bytes) -> Answer {
    let schema = new_schema(&body)?;
    let found = r.lookup(&subject, &schema, flag(&p, "deleted"))?;
    Ok(reply(version_json(&found)))
}

async fn delete_subject(State(r): Shared, Path(subject): Path<String>, Query(p): Params) -> Answer {
    let versions = r.delete_subject(&subject, flag(&p, "permanent")).await?;
    Ok(reply(json!(versions)))
}

async fn delete_version(
    State(r): Shared,
    Path((subject, version)): Path<(String, String)>,
    Query(p): Params,
) -> Answer {
    let version = VersionId::parse(&version)?;
    let deleted = r.delete_version(&subject, version, flag(&p, "permanent")).await?;
    Ok(reply(json!(deleted)))
}

fn compatibility_answer(messages: Vec<String>, verbose: bool) -> Response {
    let mut body = json!({"is_compatible": messages.is_empty()});
    if verbose {
        body["messages"] = json!(messages);
    }
    reply(body)
}

async fn compatibility_all(State(r): Shared, Path(subject): Path<String>, Query(p): Params, body: Bytes) -> Answer {
    let schema = new_schema(&body)?;
    let messages = r.check_compatibility(&subject, None, &schema)?;
    Ok(compatibility_answer(messages, flag(&p, "verbose")))
}

async fn compatibility_one(
    State(r): Shared,
    Path((subject, version)): Path<(String, String)>,
    Query(p): Params,
    body: Bytes,
) -> Answer {
    let version = VersionId::parse(&version)?;
    let schema = new_schema(&body)?;
    let messages = r.check_compatibility(&subject, Some(version), &schema)?;
    Ok(compatibility_answer(messages, flag(&p, "verbose")))
}

/// A PUT /config body: `{"compatibility": "FULL"}`.
fn level_of(body: &Bytes) -> Result<CompatibilityLevel, RegistryError> {
    let value: Value = serde_json::from_slice(body).map_err(|_| RegistryError::InvalidCompatibilityLevel)?;
    value
        .get("compatibility")
        .and_then(Value::as_str)
        .and_then(|l| l.parse().ok())
        .ok_or(RegistryError::InvalidCompatibilityLevel)
}

async fn global_config(State(r): Shared) -> Answer {
    let level = r.read(|s| s.subject_config(None)).unwrap_or_default();
    Ok(reply(json!({"compatibilityLevel": level.name()})))
}

async fn set_global_config(State(r): Shared, body: Bytes) -> Answer {
    let level = level_of(&body)?;
    r.set_config(None, level).await?;
    Ok(reply(json!({"compatibility": level.name()})))
}

async fn delete_global_config(State(r): Shared) -> Answer {
    let old = r.delete_config(None).await?;
    Ok(reply(json!({"compatibilityLevel": old.name()})))
}

async fn subject_config(State(r): Shared, Path(subject): Path<String>, Query(p): Params) -> Answer {
    let level = r.read(|s| s.subject_config(Some(&subject)));
    let level = match level {
        Some(level) => level,
        None if flag(&p, "defaultToGlobal") => r.read(|s| s.subject_config(None)).unwrap_or_default(),
        None => return Err(RegistryError::CompatibilityNotConfigured(subject)),
    };
    Ok(reply(json!({"compatibilityLevel": level.name()})))
}

async fn set_subject_config(State(r): Shared, Path(subject): Path<String>, body: Bytes) -> Answer {
    let level = level_of(&body)?;
    r.set_config(Some(&subject), level).await?;
    Ok(reply(json!({"compatibility": level.name()})))
}

async fn delete_subject_config(State(r): Shared, Path(subject): Path<String>) -> Answer {
    let old = r.delete_config(Some(&subject)).await?;
    Ok(reply(json!({"compatibilityLevel": old.name()})))
}

/// A PUT /mode body: `{"mode": "READONLY"}`.
fn mode_of(body: &Bytes) -> Result<Mode, RegistryError> {
    let value: Value = serde_json::from_slice(body).map_err(|_| RegistryError::InvalidMode)?;
    value
        .get("mode")
        .and_then(Value::as_str)
        .and_then(Mode::parse)
        .ok_or(RegistryError::InvalidMode)
}

async fn global_mode(State(r): Shared) -> Answer {
    let mode = r.read(|s| s.subject_mode(None)).unwrap_or_default();
    Ok(reply(json!({"mode": mode.name()})))
}

async fn set_global_mode(State(r): Shared, Query(p): Params, body: Bytes) -> Answer {
    let mode = mode_of(&body)?;
    r.set_mode(None, mode, flag(&p, "force")).await?;
    Ok(reply(json!({"mode": mode.name()})))
}

async fn subject_mode(State(r): Shared, Path(subject): Path<String>, Query(p): Params) -> Answer {
    let mode = match r.read(|s| s.subject_mode(Some(&subject))) {
        Some(mode) => mode,
        None if flag(&p, "defaultToGlobal") => r.read(|s| s.subject_mode(None)).unwrap_or_default(),
        None => return Err(RegistryError::ModeNotConfigured(subject)),
    };
    Ok(reply(json!({"mode": mode.name()})))
}

async fn set_subject_mode(State(r): Shared, Path(subject): Path<String>, Query(p): Params, body: Bytes) -> Answer {
    let mode = mode_of(&body)?;
    r.set_mode(Some(&subject), mode, flag(&p, "force")).await?;
    Ok(reply(json!({"mode": mode.name()})))
}

async fn delete_subject_mode(State(r): Shared, Path(subject): Path<String>) -> Answer {
    let old = r.delete_mode(&subject).await?;
    Ok(reply(json!({"mode": old.name()})))
}

#[cfg(test)]
mod tests;
