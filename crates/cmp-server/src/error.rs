//! API errors and the one table that maps them to HTTP statuses and RFC 9457 problems.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use cmp_api::{Problem, ProblemItem};
use cmp_ca::CaError;
use cmp_secrets::SecretError;
use cmp_store::StoreError;

use crate::core::context::REQUEST_ID;

/// Media type of every error answer (RFC 9457).
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Everything a handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed: bad JSON, bad query, bad field values.
    #[error("{detail}")]
    BadRequest { detail: String, errors: Vec<ProblemItem> },
    /// No credentials, or credentials that are not valid.
    #[error("authentication required")]
    Unauthorized,
    /// Credentials that were checked and refused, with the reason (an expired or forged JWT,
    /// a replayed login, a session past its timeout). Never echoes the credential.
    #[error("{0}")]
    BadCredentials(String),
    /// Valid credentials whose role or team may not do this; the detail says what is needed.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// No such thing (or not visible to the caller).
    #[error("{entity} {id} not found")]
    NotFound { entity: &'static str, id: String },
    /// The method is not defined on this path.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The change conflicts with what exists.
    #[error("{0}")]
    Conflict(String),
    /// The body is larger than the configured limit.
    #[error("request body over the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// The body did not arrive within `http.body_timeout_secs`.
    #[error("the request body did not arrive within {secs} s")]
    BodyTimeout { secs: u64 },
    /// The body's media type is not one this route reads.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The request is well-formed but its content is refused (e.g. not a certificate).
    #[error("{detail}")]
    Unprocessable { detail: String, errors: Vec<ProblemItem> },
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A CA adapter refused or failed.
    #[error(transparent)]
    Ca(#[from] cmp_ca::CaError),
    /// The secret store refused or failed.
    #[error(transparent)]
    Secret(#[from] cmp_secrets::SecretError),
    /// The request breaks the owner's policy.
    #[error("outside policy ({}): {}", .0.rule, .0.message)]
    Policy(cmp_domain::Violation),
    /// A dependency this process needs (database, secret store) does not answer.
    #[error("{0}")]
    Unavailable(String),
    /// An error answer of the HTTP framework itself that no other variant stands for,
    /// reshaped into a problem.
    #[error("{detail}")]
    Framework { status: StatusCode, detail: String },
    /// A bug or an unexpected failure; details go to the log only.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<crate::issuer::IssueError> for ApiError {
    /// The issuer's errors as problems: exhaustive, so that a new one needs a row here.
    fn from(e: crate::issuer::IssueError) -> Self {
        use crate::issuer::IssueError as E;
        let item = |pointer: &str, reason: &str, detail: String| ProblemItem {
            pointer: pointer.into(),
            reason: reason.into(),
            detail,
        };
        match e {
            E::BadField { field, detail } => ApiError::bad_field(field, detail),
            E::BadRequest(detail) => ApiError::bad_request(detail),
            E::InvalidCsr(why) => ApiError::Unprocessable {
                detail: format!("csr: {why}"),
                errors: vec![item("csr", "invalid_csr", why)],
            },
            E::LeavesNoTime(detail) => ApiError::Unprocessable {
                detail: detail.clone(),
                errors: vec![item("renew_before", "leaves_no_time", detail)],
            },
            E::Policy(violation) => ApiError::Policy(violation),
            E::Forbidden(detail) => ApiError::Forbidden(detail),
            E::Conflict(detail) => ApiError::Conflict(detail),
            e @ E::NotIssuedHere => {
                ApiError::Unprocessable { detail: e.to_string(), errors: vec![] }
            }
            E::NoKey(id) => ApiError::NotFound {
                entity: "private key of certificate",
                id: format!("{id} (the requester made it, or it was purged)"),
            },
            E::Store(e) => ApiError::Store(e),
            E::Ca(e) => ApiError::Ca(e),
            E::Secret(e) => ApiError::Secret(e),
            E::Internal(detail) => ApiError::Internal(detail),
        }
    }
}

impl From<crate::issuer::FleetError> for ApiError {
    /// The fleet's errors as problems: exhaustive, so that a new one needs a row here.
    fn from(e: crate::issuer::FleetError) -> Self {
        use crate::issuer::FleetError as E;
        match e {
            E::BadBootstrapToken => ApiError::Unauthorized,
            E::BadField { field, detail } => ApiError::bad_field(field, detail),
            E::InvalidCsr(why) => ApiError::Unprocessable {
                detail: format!("csr: {why}"),
                errors: vec![ProblemItem {
                    pointer: "csr".into(),
                    reason: "invalid_csr".into(),
                    detail: why,
                }],
            },
            E::Conflict(detail) => ApiError::Conflict(detail),
            e @ E::NotAnAgent => ApiError::Forbidden(e.to_string()),
            E::Issue(e) => e.into(),
            E::Inventory(e) => e.into(),
            E::Store(e) => ApiError::Store(e),
            E::Secret(e) => ApiError::Secret(e),
            E::Unavailable(detail) => ApiError::Unavailable(detail.into()),
            E::Internal(detail) => ApiError::Internal(detail),
        }
    }
}

impl From<crate::people::PeopleError> for ApiError {
    /// Login, session and JWT errors as problems: exhaustive, so that a new one needs a row.
    fn from(e: crate::people::PeopleError) -> Self {
        use crate::people::PeopleError as E;
        match e {
            E::UnknownProvider(name) => {
                ApiError::NotFound { entity: "identity provider", id: name }
            }
            e @ E::NoProviders => {
                ApiError::NotFound { entity: "identity provider", id: format!("(none: {e})") }
            }
            E::BadRequest(detail) => ApiError::bad_request(detail),
            E::Refused(detail) => ApiError::BadCredentials(detail),
            E::NoRole(detail) => ApiError::Forbidden(detail),
            e @ E::CsrfMissing => ApiError::Forbidden(e.to_string()),
            E::ProviderUnavailable(detail) | E::SessionsUnavailable(detail) => {
                ApiError::Unavailable(detail)
            }
            E::Store(e) => ApiError::Store(e),
        }
    }
}

impl From<crate::inventory::InventoryError> for ApiError {
    /// The inventory's errors as problems: exhaustive, so that a new one needs a row here.
    fn from(e: crate::inventory::InventoryError) -> Self {
        use crate::inventory::InventoryError as E;
        match e {
            E::BadField { field, detail } => ApiError::bad_field(field, detail),
            E::Refused { detail, items } => ApiError::Unprocessable { detail, errors: items },
            E::Forbidden(detail) => ApiError::Forbidden(detail),
            E::Store(e) => ApiError::Store(e),
            E::Internal(detail) => ApiError::Internal(detail),
        }
    }
}

impl From<crate::notify::NotifyError> for ApiError {
    /// Notification errors as problems: exhaustive, so that a new one needs a row here.
    fn from(e: crate::notify::NotifyError) -> Self {
        use crate::notify::NotifyError as E;
        match e {
            E::BadField { field, detail } => ApiError::bad_field(field, detail),
            E::Refused { detail, items } => ApiError::Unprocessable { detail, errors: items },
            E::Store(e) => ApiError::Store(e),
            E::Internal(detail) => ApiError::Internal(detail),
        }
    }
}

/// Longest `detail` of a problem, in characters: input echoed in an error (a 100 KB name) is
/// cut, so that an error is never larger than what caused it.
pub const MAX_DETAIL_CHARS: usize = 500;

/// `text` cut to at most `max` characters, with an ellipsis when something was cut.
pub fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_string(),
        Some((end, _)) => format!("{}…", &text[..end]),
    }
}

impl ApiError {
    pub fn bad_request(detail: impl Into<String>) -> Self {
        ApiError::BadRequest { detail: detail.into(), errors: Vec::new() }
    }

    /// The problem for an error answer the framework made with `status` and `detail` (a path
    /// segment that is not UTF-8 is a 400 in text): the variant of that status where there is
    /// one, so that the table below stays the only one.
    pub fn from_status(status: StatusCode, detail: String) -> Self {
        match status {
            StatusCode::BAD_REQUEST => ApiError::bad_request(detail),
            StatusCode::UNAUTHORIZED => ApiError::Unauthorized,
            StatusCode::NOT_FOUND => ApiError::route_not_found(),
            StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType(detail),
            StatusCode::UNPROCESSABLE_ENTITY => {
                ApiError::Unprocessable { detail, errors: Vec::new() }
            }
            _ => ApiError::Framework { status, detail },
        }
    }

    /// A path that no route serves.
    pub fn route_not_found() -> Self {
        ApiError::NotFound { entity: "route", id: "for this path".into() }
    }

    /// A bad value for one named field or parameter.
    pub fn bad_field(pointer: &str, detail: impl Into<String>) -> Self {
        let detail = detail.into();
        ApiError::BadRequest {
            detail: format!("{pointer}: {detail}"),
            errors: vec![ProblemItem { pointer: pointer.into(), reason: "invalid".into(), detail }],
        }
    }

    /// Status, stable type slug and title. Exhaustive on purpose: a new error needs a row here.
    fn classify(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            ApiError::BadRequest { .. } => (StatusCode::BAD_REQUEST, "bad-request", "Bad request"),
            ApiError::Unauthorized | ApiError::BadCredentials(_) => {
                (StatusCode::UNAUTHORIZED, "unauthorized", "Authentication required")
            }
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", "Forbidden"),
            ApiError::NotFound { .. } => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            ApiError::MethodNotAllowed => {
                (StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed", "Method not allowed")
            }
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict", "Conflict"),
            ApiError::PayloadTooLarge { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large", "Request body too large")
            }
            ApiError::BodyTimeout { .. } => {
                (StatusCode::REQUEST_TIMEOUT, "request-timeout", "Request timeout")
            }
            ApiError::UnsupportedMediaType(_) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
            ),
            ApiError::Unprocessable { .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, "unprocessable", "Input refused")
            }
            ApiError::Store(e) => match e {
                StoreError::NotFound { .. } => (StatusCode::NOT_FOUND, "not-found", "Not found"),
                StoreError::AmbiguousName { .. } => {
                    (StatusCode::CONFLICT, "ambiguous-name", "Ambiguous name")
                }
                StoreError::Conflict(_) => (StatusCode::CONFLICT, "conflict", "Conflict"),
                StoreError::InvalidValue => (StatusCode::BAD_REQUEST, "bad-request", "Bad request"),
                StoreError::Unprocessable(_) => {
                    (StatusCode::UNPROCESSABLE_ENTITY, "unprocessable", "Input refused")
                }
                StoreError::Database(_) => {
                    (StatusCode::SERVICE_UNAVAILABLE, "database-unavailable", "Database error")
                }
                StoreError::Corrupt { .. }
                | StoreError::UnsupportedUrl
                | StoreError::Migration(_) => {
                    (StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal error")
                }
            },
            ApiError::Ca(e) => {
                let status = match e {
                    CaError::InvalidCsr(_) | CaError::Refused(_) => {
                        StatusCode::UNPROCESSABLE_ENTITY
                    }
                    CaError::AlreadyRevoked(_) => StatusCode::CONFLICT,
                    CaError::UnknownAdapter(_) | CaError::UnknownSerial(_) => StatusCode::NOT_FOUND,
                    CaError::Unavailable(_) | CaError::Throttled { .. } => {
                        StatusCode::SERVICE_UNAVAILABLE
                    }
                    CaError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
                };
                let title = match e {
                    CaError::InvalidCsr(_) => "Invalid CSR",
                    CaError::Refused(_) => "Refused by the CA",
                    CaError::UnknownAdapter(_) => "No such adapter",
                    CaError::AlreadyRevoked(_) => "Already revoked",
                    CaError::UnknownSerial(_) => "Serial not issued by this CA",
                    CaError::Unavailable(_) => "CA unavailable",
                    CaError::Throttled { .. } => "CA asks to wait",
                    CaError::Internal(_) => "CA failure",
                };
                (status, e.slug(), title)
            }
            ApiError::Secret(e) => match e {
                SecretError::NotFound(_) => (StatusCode::NOT_FOUND, "not-found", "Not found"),
                SecretError::InvalidName(_) => {
                    (StatusCode::BAD_REQUEST, "bad-request", "Bad request")
                }
                SecretError::Unavailable(_) => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "secrets-unavailable",
                    "Secret store unavailable",
                ),
                SecretError::Corrupt(_) | SecretError::Io(_) => {
                    (StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal error")
                }
            },
            ApiError::Policy(_) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "policy-violation", "Outside policy")
            }
            ApiError::Unavailable(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable", "Service unavailable")
            }
            ApiError::Framework { status, .. } if status.is_server_error() => {
                (*status, "internal", "Internal error")
            }
            ApiError::Framework { status, .. } => (*status, "http-error", "Request refused"),
            ApiError::Internal(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal error")
            }
        }
    }

    /// The problem document. Server-side failures say little; the log has the rest.
    pub fn to_problem(&self) -> Problem {
        let (status, slug, title) = self.classify();
        let (detail, errors) = match self {
            ApiError::BadRequest { detail, errors }
            | ApiError::Unprocessable { detail, errors } => (Some(detail.clone()), errors.clone()),
            ApiError::Policy(v) => (
                Some(self.to_string()),
                vec![ProblemItem {
                    pointer: v.rule.clone(),
                    reason: "policy".into(),
                    detail: v.message.clone(),
                }],
            ),
            ApiError::Secret(SecretError::Corrupt(_) | SecretError::Io(_))
            | ApiError::Ca(CaError::Internal(_)) => {
                (Some("see the server log for this request id".to_string()), Vec::new())
            }
            ApiError::Store(StoreError::Database(_)) => {
                (Some("the database did not answer; try again".to_string()), Vec::new())
            }
            ApiError::Store(StoreError::Corrupt { .. })
            | ApiError::Store(StoreError::UnsupportedUrl)
            | ApiError::Store(StoreError::Migration(_))
            | ApiError::Framework { status: StatusCode::INTERNAL_SERVER_ERROR, .. }
            | ApiError::Internal(_) => {
                (Some("see the server log for this request id".to_string()), Vec::new())
            }
            other => (Some(other.to_string()), Vec::new()),
        };
        let errors = errors
            .into_iter()
            .map(|e| ProblemItem {
                pointer: cut(&e.pointer, MAX_DETAIL_CHARS),
                detail: cut(&e.detail, MAX_DETAIL_CHARS),
                ..e
            })
            .collect();
        Problem {
            kind: format!("https://cmp.dev/problems/{slug}"),
            title: title.to_string(),
            status: status.as_u16(),
            detail: detail.map(|d| cut(&d, MAX_DETAIL_CHARS)),
            instance: REQUEST_ID.try_with(|id| id.clone()).ok(),
            errors,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = self.to_problem();
        let status =
            StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (status, [(header::CONTENT_TYPE, PROBLEM_JSON)], body).into_response();
        if let ApiError::Unauthorized | ApiError::BadCredentials(_) = &self {
            // RFC 7235: a 401 names the scheme that would be accepted.
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        }
        if let ApiError::Ca(CaError::Throttled { retry_at, .. }) = &self {
            let at = std::time::UNIX_EPOCH
                + std::time::Duration::from_secs(u64::try_from(*retry_at).unwrap_or(0));
            if let Ok(value) = header::HeaderValue::from_str(&httpdate::fmt_http_date(at)) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        response
    }
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_failures_are_not_client_errors_and_leak_nothing() {
        let e =
            ApiError::Store(StoreError::Database(sqlx::Error::Protocol("password=hunter2".into())));
        let p = e.to_problem();
        assert_eq!(p.status, 503);
        assert!(!serde_json::to_string(&p).unwrap().contains("hunter2"));
    }

    #[test]
    fn echoed_input_is_cut() {
        let name = "n".repeat(100_000);
        let e = ApiError::Unprocessable {
            detail: format!("name {name:?} is not valid"),
            errors: vec![ProblemItem {
                pointer: "/name".into(),
                reason: "invalid".into(),
                detail: name.clone(),
            }],
        };
        let body = serde_json::to_string(&e.to_problem()).unwrap();
        assert!(body.len() < 2 * MAX_DETAIL_CHARS + 500, "{} bytes", body.len());
        assert_eq!(cut("héllo", 2), "hé…");
        assert_eq!(cut("hé", 2), "hé");
    }

    #[test]
    fn a_throttled_ca_is_a_503_with_retry_after_as_a_date() {
        let e = ApiError::Ca(CaError::Throttled {
            message: "rate limited".into(),
            retry_at: 784_111_777,
        });
        let response = e.into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let retry_after = response.headers().get(header::RETRY_AFTER).unwrap();
        assert_eq!(retry_after, "Sun, 06 Nov 1994 08:49:37 GMT");
    }

    #[test]
    fn every_kind_has_its_status() {
        let cases = [
            (ApiError::bad_request("x"), 400),
            (ApiError::Unauthorized, 401),
            (ApiError::BadCredentials("expired".into()), 401),
            (ApiError::Forbidden("x".into()), 403),
            (ApiError::NotFound { entity: "certificate", id: "1".into() }, 404),
            (ApiError::MethodNotAllowed, 405),
            (ApiError::Conflict("x".into()), 409),
            (ApiError::PayloadTooLarge { limit: 1 }, 413),
            (ApiError::UnsupportedMediaType("x".into()), 415),
            (ApiError::Unprocessable { detail: "x".into(), errors: vec![] }, 422),
            (ApiError::Store(StoreError::NotFound { entity: "owner", id: "1".into() }), 404),
            (ApiError::Store(StoreError::Conflict("x".into())), 409),
            (
                ApiError::Store(StoreError::AmbiguousName {
                    entity: "managed certificate",
                    name: "web".into(),
                    candidates: vec!["a/web".into(), "b/web".into()],
                }),
                409,
            ),
            (ApiError::Store(StoreError::InvalidValue), 400),
            (ApiError::Unavailable("x".into()), 503),
            (ApiError::Framework { status: StatusCode::REQUEST_TIMEOUT, detail: "x".into() }, 408),
            (ApiError::Internal("x".into()), 500),
        ];
        for (e, status) in cases {
            assert_eq!(e.to_problem().status, status, "{e:?}");
        }
    }
}
