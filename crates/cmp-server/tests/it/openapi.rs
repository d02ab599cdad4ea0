//! The OpenAPI document is usable by generated clients: references resolve, parameters are
//! where the server reads them, bodies can be satisfied, ids are unique, and every error an
//! operation can answer is described as a problem document. `scripts/api-check` adds an
//! OpenAPI 3.1 validator and schemathesis over the running server.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::support::TestApp;
use cmp_testkit::DbKind;

async fn document() -> Value {
    let app = TestApp::spawn(DbKind::Sqlite).await;
    let doc: Value =
        app.http().get(app.url("/api/v1/openapi.json")).send().await.unwrap().json().await.unwrap();
    app.stop().await;
    doc
}

/// Every `(path, method, operation)` of the document.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            ops.push((path.clone(), method.to_uppercase(), op.clone()));
        }
    }
    ops
}

/// What a `$ref` points at, or the value itself.
fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(r) => doc.pointer(r.trim_start_matches('#')).unwrap_or(&Value::Null),
        None => value,
    }
}

fn refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r.clone()),
                    _ => refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn every_reference_resolves() {
    let doc = document().await;
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(all.iter().any(|r| r.ends_with("/CertificateSortKey")));
    for r in all {
        assert!(
            doc.pointer(r.trim_start_matches('#')).is_some(),
            "{r} points at nothing in the document"
        );
    }
}

/// The parameter `name` of `method path`.
fn parameter<'a>(doc: &'a Value, path: &str, method: &str, name: &str) -> &'a Value {
    let params = doc["paths"][path][method]["parameters"].as_array().unwrap();
    params.iter().find(|p| p["name"] == name).unwrap_or_else(|| panic!("{method} {path}: {name}"))
}

#[tokio::test]
async fn parameters_are_where_the_server_reads_them() {
    let doc = document().await;
    for (path, method, op) in operations(&doc) {
        let in_template: BTreeSet<String> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}').map(str::to_string))
            .collect();
        let mut declared_in_path = BTreeSet::new();
        for p in op["parameters"].as_array().into_iter().flatten() {
            let name = p["name"].as_str().unwrap().to_string();
            if p["in"] == "path" {
                assert_eq!(p["required"], true, "{method} {path}: path parameter {name}");
                declared_in_path.insert(name);
            }
        }
        assert_eq!(declared_in_path, in_template, "{method} {path}: path parameters");
    }
    // The listings' filters are optional query parameters.
    for (path, name) in [
        ("/api/v1/requests", "state"),
        ("/api/v1/requests", "limit"),
        ("/api/v1/managed-certificates", "cursor"),
        ("/api/v1/certificates/{id}/key", "format"),
    ] {
        let p = parameter(&doc, path, "get", name);
        assert_eq!(p["in"], "query", "{path} {name}");
        assert_eq!(p["required"], false, "{path} {name}");
    }
    let limit = parameter(&doc, "/api/v1/requests", "get", "limit");
    assert_eq!(limit["schema"]["minimum"], 1);
    assert_eq!(limit["schema"]["maximum"], 500);
    let state = parameter(&doc, "/api/v1/requests", "get", "state");
    assert!(state["schema"].to_string().contains("RequestState"), "{state}");
    // The server refuses keys it cannot store or compare (1-200 visible ASCII characters).
    let key = parameter(&doc, "/api/v1/requests", "post", "Idempotency-Key");
    assert_eq!(key["in"], "header");
    assert_eq!(key["schema"]["maxLength"], 200, "{key}");
}

#[tokio::test]
async fn bodies_are_satisfiable_and_bounds_are_the_servers() {
    let doc = document().await;
    let schemas = &doc["components"]["schemas"];
    // `#[serde(flatten)]` used to give an allOf of closed objects: nothing could satisfy it.
    for (name, schema) in schemas.as_object().unwrap() {
        assert!(schema.get("allOf").is_none(), "{name} is still an allOf: {schema}");
    }
    for (name, own, flattened) in [
        ("RequestCreate", "owner", "dns_names"),
        ("ManagedCreate", "renew_before", "validity_days"),
    ] {
        let s = &schemas[name];
        assert_eq!(s["type"], "object", "{name}");
        assert_eq!(s["additionalProperties"], false, "{name} is closed, as the server is");
        assert!(s["properties"].get(own).is_some() && s["properties"].get(flattened).is_some());
        assert!(s["required"].as_array().unwrap().iter().any(|r| r == "owner"), "{name}");
    }
    let token = &schemas["TokenCreated"];
    assert!(
        token["properties"].get("token").is_some() && token["properties"].get("role").is_some()
    );
    // The server refuses a token that expires in 0 days.
    assert_eq!(schemas["TokenCreate"]["properties"]["expires_in_days"]["minimum"], 1);
}

#[tokio::test]
async fn operation_ids_are_unique_and_say_tag_and_handler() {
    let doc = document().await;
    let mut seen = BTreeSet::new();
    for (path, method, op) in operations(&doc) {
        let id = op["operationId"].as_str().unwrap_or_default().to_string();
        let tag = op["tags"][0].as_str().unwrap().replace('-', "_");
        assert!(id.starts_with(&format!("{tag}_")), "{method} {path}: {id}");
        assert!(seen.insert(id.clone()), "{method} {path}: {id} is used twice");
    }
    assert!(seen.contains("requests_create") && seen.contains("owners_list"), "{seen:?}");
}

#[tokio::test]
async fn every_error_answer_is_a_described_problem() {
    let doc = document().await;
    for (path, method, op) in operations(&doc) {
        let responses = op["responses"].as_object().unwrap();
        let has = |status: &str| responses.contains_key(status);
        let secured = op.get("security").is_some();
        if secured {
            for status in ["400", "401", "403", "503"] {
                assert!(has(status), "{method} {path} does not document {status}");
            }
        }
        if path.contains('{') {
            assert!(has("404"), "{method} {path} does not document 404");
        }
        if let Some(body) = op.get("requestBody") {
            for status in ["400", "408", "413"] {
                assert!(has(status), "{method} {path} does not document {status}");
            }
            let types: Vec<&String> = body["content"].as_object().unwrap().keys().collect();
            if types == ["application/json"] {
                assert!(has("415"), "{method} {path} does not document 415");
            }
        }
        for (status, response) in responses {
            let response = resolve(&doc, response);
            assert!(response["description"].is_string(), "{method} {path} {status}");
            let headers = &response["headers"];
            assert!(headers.get("x-request-id").is_some(), "{method} {path} {status}");
            let own = responses[status].get("$ref").is_none();
            if own && !path.starts_with("/pki/") {
                assert!(headers.get("cache-control").is_some(), "{method} {path} {status}");
            }
            if !status.starts_with('4') && !status.starts_with('5') {
                continue;
            }
            let content = response["content"].as_object().unwrap();
            assert_eq!(
                content.keys().collect::<Vec<_>>(),
                ["application/problem+json"],
                "{method} {path} {status}"
            );
            assert_eq!(
                content["application/problem+json"]["schema"]["$ref"],
                "#/components/schemas/Problem",
                "{method} {path} {status}"
            );
        }
    }
    // Readiness says why it is not ready in a problem too.
    assert!(doc["paths"]["/readyz"]["get"]["responses"].get("503").is_some());
}

#[tokio::test]
async fn token_lifetimes_outside_the_documented_bounds_are_refused() {
    let app = TestApp::spawn(DbKind::Sqlite).await;
    // 4294967295 days used to be accepted, and listed as expiring in 1970.
    for days in [0u64, 36_501, u64::from(u32::MAX)] {
        let body = format!(r#"{{"name": "t", "role": "security", "expires_in_days": {days}}}"#);
        let resp = app.send_json("POST", "/api/v1/tokens", &body).await;
        assert_eq!(resp.status(), 400, "{days} days");
    }
    let resp = app
        .send_json(
            "POST",
            "/api/v1/tokens",
            r#"{"name": "t", "role": "security", "expires_in_days": 36500}"#,
        )
        .await;
    assert_eq!(resp.status(), 201);
    app.stop().await;
}
