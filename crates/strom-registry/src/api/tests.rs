//! The REST API over an in-memory log: Confluent's paths, bodies and error codes.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request};
use serde_json::{json, Value};
use tower::ServiceExt;

use super::*;
use crate::registry::MemoryLog;

struct Api(Router);

impl Api {
    fn new() -> Api {
        Api(router(Registry::start(Arc::new(MemoryLog::default()))))
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", CONTENT_TYPE)
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .unwrap();
        let response = self.0.clone().oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        assert_eq!(response.headers()["content-type"], CONTENT_TYPE);
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.call(Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(Method::POST, path, Some(body)).await
    }

    async fn delete(&self, path: &str) -> (u16, Value) {
        self.call(Method::DELETE, path, None).await
    }

    async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(Method::PUT, path, Some(body)).await
    }
}

fn record(fields: &str) -> Value {
    json!({"schema": format!(r#"{{"type":"record","name":"R","fields":[{fields}]}}"#)})
}

const A: &str = r#"{"name":"a","type":"int"}"#;

fn code(body: &Value) -> u64 {
    body["error_code"].as_u64().unwrap_or(0)
}

#[tokio::test]
async fn register_read_back_and_look_up() {
    let api = Api::new();
    assert_eq!(
        api.post("/subjects/s/versions", record(A)).await,
        (200, json!({"id": 1}))
    );
    assert_eq!(
        api.post("/subjects/s/versions", record(A)).await,
        (200, json!({"id": 1})),
        "again: same id"
    );
    assert_eq!(
        api.post("/subjects/t/versions", record(A)).await,
        (200, json!({"id": 1})),
        "global ids"
    );
    assert_eq!(api.get("/subjects").await, (200, json!(["s", "t"])));
    assert_eq!(api.get("/subjects/s/versions").await, (200, json!([1])));
    let (status, latest) = api.get("/subjects/s/versions/latest").await;
    assert_eq!(
        (status, &latest["id"], &latest["version"], &latest["subject"]),
        (200, &json!(1), &json!(1), &json!("s"))
    );
    assert_eq!(
        latest["schema"],
        json!(r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#)
    );
    assert_eq!(api.get("/subjects/s/versions/1/schema").await.1["name"], json!("R"));
    assert_eq!(api.get("/schemas/ids/1").await.1["schema"], latest["schema"]);
    assert_eq!(api.get("/schemas/ids/1/subjects").await, (200, json!(["s", "t"])));
    assert_eq!(
        api.get("/schemas/ids/1/versions").await,
        (
            200,
            json!([{"subject": "s", "version": 1}, {"subject": "t", "version": 1}])
        )
    );
    let spaced = json!({"schema": r#"{ "type": "record", "name": "R", "fields": [ {"name": "a", "type": "int"} ] }"#});
    let (status, found) = api.post("/subjects/s", spaced).await;
    assert_eq!(
        (status, &found["version"]),
        (200, &json!(1)),
        "looked up in canonical form"
    );
    assert_eq!(
        api.get("/schemas/types").await,
        (200, json!(["JSON", "PROTOBUF", "AVRO"]))
    );
}

#[tokio::test]
async fn every_not_found_has_its_code() {
    let api = Api::new();
    api.post("/subjects/s/versions", record(A)).await;
    assert_eq!(code(&api.get("/subjects/nope/versions").await.1), 40401);
    assert_eq!(code(&api.get("/subjects/s/versions/9").await.1), 40402);
    assert_eq!(code(&api.get("/schemas/ids/9").await.1), 40403);
    assert_eq!(code(&api.post("/subjects/nope", record(A)).await.1), 40401);
    assert_eq!(
        code(&api.post("/subjects/s", record(r#"{"name":"b","type":"int"}"#)).await.1),
        40403
    );
    let (status, body) = api.get("/subjects/s/versions/0").await;
    assert_eq!((status, code(&body)), (422, 42202));
    assert_eq!(code(&api.get("/subjects/s/versions/x").await.1), 42202);
    assert_eq!(code(&api.get("/config/s").await.1), 40408);
    assert_eq!(code(&api.get("/mode/s").await.1), 40409);
}

#[tokio::test]
async fn an_incompatible_schema_is_refused_with_the_reason() {
    let api = Api::new();
    api.post("/subjects/s/versions", record(A)).await;
    let breaking = record(&format!(r#"{A},{{"name":"b","type":"int"}}"#));
    let (status, body) = api.post("/subjects/s/versions", breaking.clone()).await;
    assert_eq!((status, code(&body)), (409, 409));
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("READER_FIELD_MISSING_DEFAULT_VALUE"),
        "{body}"
    );
    let (_, verdict) = api
        .post(
            "/compatibility/subjects/s/versions/latest?verbose=true",
            breaking.clone(),
        )
        .await;
    assert_eq!(verdict["is_compatible"], json!(false));
    assert_eq!(verdict["messages"].as_array().unwrap().len(), 1);
    let (_, terse) = api.post("/compatibility/subjects/s/versions", breaking.clone()).await;
    assert_eq!(terse, json!({"is_compatible": false}));
    assert_eq!(
        api.post("/compatibility/subjects/empty/versions/latest", breaking.clone())
            .await,
        (200, json!({"is_compatible": true})),
        "nothing to be incompatible with"
    );
    assert_eq!(
        api.put("/config/s", json!({"compatibility": "forward"})).await,
        (200, json!({"compatibility": "FORWARD"}))
    );
    assert_eq!(api.get("/config/s").await.1, json!({"compatibilityLevel": "FORWARD"}));
    assert_eq!(
        api.post("/subjects/s/versions", breaking).await,
        (200, json!({"id": 2})),
        "forward allows it"
    );
    assert_eq!(
        code(&api.put("/config", json!({"compatibility": "sideways"})).await.1),
        42203
    );
    assert_eq!(
        api.delete("/config/s").await.1,
        json!({"compatibilityLevel": "FORWARD"})
    );
    assert_eq!(
        api.get("/config/s?defaultToGlobal=true").await.1,
        json!({"compatibilityLevel": "BACKWARD"})
    );
}

#[tokio::test]
async fn deletes_soft_then_permanent() {
    let api = Api::new();
    api.post("/subjects/s/versions", record(A)).await;
    api.post(
        "/subjects/s/versions",
        record(&format!(r#"{A},{{"name":"b","type":"int","default":0}}"#)),
    )
    .await;
    assert_eq!(
        code(&api.delete("/subjects/s/versions/2?permanent=true").await.1),
        40407
    );
    assert_eq!(api.delete("/subjects/s/versions/2").await, (200, json!(2)));
    assert_eq!(code(&api.delete("/subjects/s/versions/2").await.1), 40406);
    assert_eq!(api.get("/subjects/s/versions").await.1, json!([1]));
    assert_eq!(api.get("/subjects/s/versions?deleted=true").await.1, json!([1, 2]));
    assert_eq!(
        api.get("/schemas/ids/2").await.0,
        200,
        "a soft-deleted version's id resolves"
    );
    assert_eq!(code(&api.delete("/subjects/s?permanent=true").await.1), 40405);
    assert_eq!(api.delete("/subjects/s").await, (200, json!([1])));
    assert_eq!(code(&api.delete("/subjects/s").await.1), 40404);
    assert_eq!(api.get("/subjects").await.1, json!([]));
    assert_eq!(api.get("/subjects?deleted=true").await.1, json!(["s"]));
    assert_eq!(api.delete("/subjects/s?permanent=true").await, (200, json!([1, 2])));
    assert_eq!(code(&api.get("/schemas/ids/1").await.1), 40403);
}

#[tokio::test]
async fn references_and_their_users() {
    let api = Api::new();
    let address = r#"{"type":"record","name":"Address","namespace":"n","fields":[{"name":"city","type":"string"}]}"#;
    api.post("/subjects/address/versions", json!({"schema": address})).await;
    let person = json!({
        "schema": r#"{"type":"record","name":"Person","namespace":"n","fields":[{"name":"home","type":"n.Address"}]}"#,
        "references": [{"name": "n.Address", "subject": "address", "version": 1}],
    });
    assert_eq!(
        api.post("/subjects/person/versions", person).await,
        (200, json!({"id": 2}))
    );
    assert_eq!(api.get("/subjects/address/versions/1/referencedby").await.1, json!([2]));
    assert_eq!(
        api.get("/schemas/ids/2").await.1["references"][0]["subject"],
        json!("address")
    );
    assert_eq!(code(&api.delete("/subjects/address/versions/1").await.1), 42206);
    let dangling = json!({"schema": r#"{"type":"record","name":"P","fields":[{"name":"h","type":"n.Gone"}]}"#,
        "references": [{"name": "n.Gone", "subject": "nowhere", "version": 1}]});
    assert_eq!(code(&api.post("/subjects/p/versions", dangling).await.1), 42201);
}

#[tokio::test]
async fn bad_input_gets_the_documented_error() {
    let api = Api::new();
    for body in [
        json!({"schema": "{"}),
        json!({"schema": r#"{"type":"nope"}"#}),
        json!({"nothing": 1}),
        json!([1]),
    ] {
        let (status, answer) = api.post("/subjects/s/versions", body).await;
        assert_eq!((status, code(&answer)), (422, 42201), "{answer}");
    }
    let huge = "x".repeat(crate::registry::MAX_SCHEMA_BYTES + 1);
    assert_eq!(
        code(&api.post("/subjects/s/versions", json!({"schema": huge})).await.1),
        42209
    );
    assert_eq!(
        code(
            &api.post(
                "/subjects/s/versions",
                json!({"schema": "\"int\"", "schemaType": "XML"})
            )
            .await
            .1
        ),
        42201
    );
    assert_eq!(code(&api.put("/mode", json!({"mode": "SIDEWAYS"})).await.1), 42204);
}

#[tokio::test]
async fn modes_gate_writes_and_import() {
    let api = Api::new();
    assert_eq!(api.get("/mode").await.1, json!({"mode": "READWRITE"}));
    api.post("/subjects/s/versions", record(A)).await;
    assert_eq!(
        code(&api.put("/mode", json!({"mode": "IMPORT"})).await.1),
        42205,
        "not empty"
    );
    assert_eq!(
        api.put("/mode/s", json!({"mode": "READONLY"})).await,
        (200, json!({"mode": "READONLY"}))
    );
    let (status, body) = api
        .post(
            "/subjects/s/versions",
            record(r#"{"name":"z","type":"int","default":1}"#),
        )
        .await;
    assert_eq!((status, code(&body)), (422, 42205));
    assert_eq!(api.delete("/mode/s").await.1, json!({"mode": "READONLY"}));
    assert_eq!(
        api.get("/mode/s?defaultToGlobal=true").await.1,
        json!({"mode": "READWRITE"})
    );
}
