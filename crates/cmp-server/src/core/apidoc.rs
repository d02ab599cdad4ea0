//! Finishing the generated OpenAPI document for clients generated from it: what utoipa's
//! annotations cannot say once for every route (the error statuses all operations share,
//! operation ids unique across modules) or get wrong (`#[serde(flatten)]` bodies become an
//! `allOf` of closed objects that no JSON value satisfies).

use utoipa::openapi::content::Content;
use utoipa::openapi::header::Header;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::schema::{AdditionalProperties, Object, Schema, Type};
use utoipa::openapi::{OpenApi, Ref, RefOr, Response};

use crate::app::REQUEST_ID_HEADER;
use crate::error::PROBLEM_JSON;

/// Error answers shared by many operations: (status, name in `components/responses`, why).
const SHARED: &[(&str, &str, &str)] = &[
    (
        "400",
        "BadRequest",
        "Malformed request: bad JSON, an unknown field or parameter, a bad value, or a NUL in \
         the URL",
    ),
    ("401", "Unauthorized", "No token, or one that is unknown, expired or revoked"),
    (
        "403",
        "Forbidden",
        "The token's role or team may not do this; the detail says what is needed",
    ),
    ("404", "NotFound", "No such resource, or one the caller may not see"),
    ("408", "RequestTimeout", "The body did not arrive within http.body_timeout_secs"),
    ("413", "PayloadTooLarge", "The body is over http.body_limit_bytes"),
    ("415", "UnsupportedMediaType", "The body is not application/json"),
    (
        "503",
        "Unavailable",
        "The database, the secret store or a CA does not answer; try again later",
    ),
];

/// Applies every finishing step; run once on the document of a role.
pub fn finish(doc: &mut OpenApi) {
    close_merged_objects(doc);
    binary_bodies(doc);
    let components = doc.components.get_or_insert_with(Default::default);
    for (_, name, description) in SHARED {
        components.responses.insert((*name).to_string(), RefOr::T(problem_response(description)));
    }
    for (path, item) in doc.paths.paths.iter_mut() {
        for op in operations_mut(item) {
            name_operation(op);
            describe_headers(path, op);
            add_error_statuses(path, op);
        }
    }
}

/// The operations of a path, whatever their method.
pub fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.options.as_mut(),
        item.head.as_mut(),
        item.patch.as_mut(),
        item.trace.as_mut(),
    ]
    .into_iter()
    .flatten()
}

/// An error answer: a problem document.
fn problem_response(description: &str) -> Response {
    let mut response = Response::new(description);
    response.headers.insert(REQUEST_ID_HEADER.to_string(), request_id_header());
    response
        .content
        .insert(PROBLEM_JSON.to_string(), Content::new(Some(Ref::from_schema_name("Problem"))));
    response
}

/// The header that names each request (the caller's own, or one the server made).
fn request_id_header() -> Header {
    let mut header = Header::new(RefOr::T(Schema::Object(Object::with_type(Type::String))));
    header.description = Some("The request id, also the `instance` of a problem".into());
    header
}

/// Headers every answer of an operation carries: the request id, and outside `/pki/` (whose
/// CRL, OCSP and CA files are meant to be cached) `Cache-Control: no-store`.
fn describe_headers(path: &str, op: &mut Operation) {
    for response in op.responses.responses.values_mut() {
        let RefOr::T(response) = response else {
            continue;
        };
        response.headers.insert(REQUEST_ID_HEADER.to_string(), request_id_header());
        if !path.starts_with("/pki/") {
            let mut no_store = Object::with_type(Type::String);
            no_store.enum_values = Some(vec!["no-store".into()]);
            let mut header = Header::new(RefOr::T(Schema::Object(no_store)));
            header.description = Some("Answers are never cached: they hold tokens and keys".into());
            response.headers.insert("cache-control".to_string(), header);
        }
    }
}

/// `<tag>_<handler>` (`requests_create`): handler names repeat across modules (`list`, `get`),
/// and generated clients need ids unique in the document.
fn name_operation(op: &mut Operation) {
    let tag = op.tags.as_ref().and_then(|t| t.first()).cloned().unwrap_or_default();
    let handler = op.operation_id.clone().unwrap_or_default();
    op.operation_id = Some(format!("{}_{handler}", tag.replace('-', "_")));
}

/// Adds the error statuses an operation can answer because of what it has (a token to check,
/// a path parameter, a body), unless its own annotation already describes that status.
fn add_error_statuses(path: &str, op: &mut Operation) {
    let secured = op.security.is_some();
    let has_path_param = path.contains('{');
    let body_types: Vec<String> =
        op.request_body.as_ref().map(|b| b.content.keys().cloned().collect()).unwrap_or_default();
    // Public routes that only describe the process (health, metrics, this document) read no
    // database: they have nothing to be unavailable.
    let reads_data = secured || path.starts_with("/pki/");
    // Every URL is checked for NUL bytes, and path segments must be UTF-8.
    let mut statuses = vec!["400"];
    if secured {
        statuses.extend(["401", "403"]);
    }
    if has_path_param {
        statuses.push("404");
    }
    if !body_types.is_empty() {
        statuses.extend(["408", "413"]);
    }
    // Bodies read as JSON only refuse any other media type.
    if body_types == ["application/json"] {
        statuses.push("415");
    }
    if reads_data {
        statuses.push("503");
    }
    for status in statuses {
        let Some((_, name, _)) = SHARED.iter().find(|(s, _, _)| *s == status) else {
            continue;
        };
        op.responses
            .responses
            .entry(status.to_string())
            .or_insert_with(|| RefOr::Ref(Ref::from_response_name(*name)));
    }
}

/// Replaces each `allOf` made only of objects (what `#[serde(flatten)]` produces) by the one
/// object it stands for. Parts with `additionalProperties: false` (`deny_unknown_fields`) make
/// the `allOf` unsatisfiable, since each part refuses the others' properties; the merged object
/// stays closed, as the server is.
fn close_merged_objects(doc: &mut OpenApi) {
    let Some(components) = doc.components.as_mut() else {
        return;
    };
    let schemas = components.schemas.clone();
    let resolve = |part: &RefOr<Schema>| -> Option<Object> {
        let schema = match part {
            RefOr::T(schema) => schema,
            RefOr::Ref(r) => {
                let name = r.ref_location.strip_prefix("#/components/schemas/")?;
                match schemas.get(name)? {
                    RefOr::T(schema) => schema,
                    RefOr::Ref(_) => return None,
                }
            }
        };
        match schema {
            Schema::Object(object) => Some(object.clone()),
            _ => None,
        }
    };
    for schema in components.schemas.values_mut() {
        let RefOr::T(Schema::AllOf(all_of)) = schema else {
            continue;
        };
        let Some(parts) = all_of.items.iter().map(resolve).collect::<Option<Vec<_>>>() else {
            continue;
        };
        let mut merged = Object::new();
        merged.schema_type = Type::Object.into();
        merged.description = all_of.description.clone();
        let mut closed = false;
        for part in parts {
            merged.properties.extend(part.properties);
            merged.required.extend(part.required);
            closed |= matches!(
                part.additional_properties.as_deref(),
                Some(AdditionalProperties::FreeForm(false))
            );
        }
        if closed {
            merged.additional_properties = Some(Box::new(AdditionalProperties::FreeForm(false)));
        }
        *schema = RefOr::T(Schema::Object(merged));
    }
}

/// Bytes (`Vec<u8>`) in a body that is not JSON (DER, PKCS#12, OCSP) are the body itself, not
/// a JSON array of numbers: say so as OpenAPI 3.1 does, with a string of that media type.
fn binary_bodies(doc: &mut OpenApi) {
    let fix = |media: &str, content: &mut Content| {
        let is_json = media == "application/json" || media.ends_with("+json");
        let is_bytes = content
            .schema
            .as_ref()
            .and_then(|s| serde_json::to_value(s).ok())
            .is_some_and(|s| s["type"] == "array" && s["items"]["type"] == "integer");
        if !is_json && is_bytes {
            let mut bytes = Object::new();
            bytes.schema_type = Type::String.into();
            bytes.content_media_type = media.to_string();
            content.schema = Some(RefOr::T(Schema::Object(bytes)));
        }
    };
    for item in doc.paths.paths.values_mut() {
        for op in operations_mut(item) {
            if let Some(body) = op.request_body.as_mut() {
                body.content.iter_mut().for_each(|(media, content)| fix(media, content));
            }
            for response in op.responses.responses.values_mut() {
                if let RefOr::T(response) = response {
                    response.content.iter_mut().for_each(|(media, content)| fix(media, content));
                }
            }
        }
    }
}
