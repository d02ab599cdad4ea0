//! `/api/v1/adapters`: configured CAs, their status, and the signing and revocation calls the
//! issuer role makes in distributed mode.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use cmp_api::{
    Adapter, AdapterCreate, AdapterHealth, AdapterPatch, AgentToken, AgentTokenCreate, Problem,
    RenewalWindowAnswer, RenewalWindowCall, RenewalWindowSpan, RevokeCall, SignCall, SignedChain,
};
use cmp_ca::{Profile, RevocationReason, SignRequest};
use cmp_store::{AdapterRecord, AdapterUpdate};

use super::{AdapterDirectory, parse_usage};
use crate::auth::Caller;
use crate::core::wire;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::state::AppState;

/// 1-64 characters of a-z, 0-9 and '-': adapter and agent names end up in URLs and Vault paths.
fn is_url_segment(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn view(state: &AppState, mut r: AdapterRecord) -> Adapter {
    let kind = state.local_adapters.kind(&r.kind);
    let published = |what: &str| kind.and_then(|k| k.published_url(&r, what));
    let (crl_url, ocsp_url) = (published("crl"), published("ocsp"));
    // Adapters stored before such addresses were refused may still hold user info or a query.
    if let Some(address) = r.config.get_mut("address")
        && let Some(text) = address.as_str()
    {
        *address = cmp_vault::redacted_address(text).into();
    }
    Adapter {
        crl_url,
        ocsp_url,
        id: r.id,
        name: r.name,
        kind: r.kind,
        config: r.config,
        enabled: r.enabled,
        has_credentials: r.has_credentials,
        created_at: wire::time_of(r.created_at),
    }
}

/// Configured CAs.
#[utoipa::path(get, path = "/api/v1/adapters", tag = "adapters",
    responses((status = 200, body = Vec<Adapter>)),
    security(("bearer" = ["admin", "security", "developer"])))]
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<Vec<Adapter>>> {
    let all = state.store.list_adapters().await?;
    Ok(Json(all.into_iter().map(|r| view(&state, r)).collect()))
}

/// Configure a CA. Kind `builtin` makes a new root and issuing CA; kind `vault_pki` connects
/// a Vault PKI role (checked now; the token or secret id goes to the secret store); kind
/// `acme` registers an account at an ACME CA (its key and any EAB HMAC go to the secret
/// store).
#[utoipa::path(post, path = "/api/v1/adapters", tag = "adapters",
    request_body = AdapterCreate,
    responses((status = 201, body = Adapter), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 409, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["admin"])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<AdapterCreate>,
) -> ApiResult<(StatusCode, Json<Adapter>)> {
    if !is_url_segment(&body.name) {
        return Err(ApiError::bad_field(
            "name",
            "1-64 characters of a-z, 0-9 and '-' (it is a URL segment)",
        ));
    }
    let ctx = state.audit_context(&caller);
    let kind = state.local_adapters.kind(&body.kind).ok_or_else(|| {
        let known = state.local_adapters.kind_names().join(", ");
        ApiError::bad_field(
            "kind",
            format!("unknown adapter kind {:?} (known: {known})", body.kind),
        )
    })?;
    let record = kind.create(&ctx, &body.name, body.config).await?;
    Ok((StatusCode::CREATED, Json(view(&state, record))))
}

/// One adapter, by id or name.
#[utoipa::path(get, path = "/api/v1/adapters/{id}", tag = "adapters",
    params(("id" = String, Path, description = "Adapter id or name")),
    responses((status = 200, body = Adapter), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["admin", "security", "developer"])))]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Adapter>> {
    let record = state.store.get_adapter(&id).await?;
    Ok(Json(view(&state, record)))
}

/// Enable or disable an adapter (a disabled adapter takes no new requests), or replace a
/// Vault adapter's credentials (checked against Vault first).
#[utoipa::path(patch, path = "/api/v1/adapters/{id}", tag = "adapters",
    params(("id" = String, Path, description = "Adapter id or name")),
    request_body = AdapterPatch,
    responses((status = 200, body = Adapter), (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Credentials for an adapter kind without any, or refused by Vault",
            body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["admin"])))]
pub async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<AdapterPatch>,
) -> ApiResult<Json<Adapter>> {
    if body.enabled.is_none() && body.credentials.is_none() {
        return Err(ApiError::bad_request("nothing to change: give enabled or credentials"));
    }
    let ctx = state.audit_context(&caller);
    let mut record = state.store.get_adapter(&id).await?;
    if let Some(credentials) = body.credentials {
        let kind = state.local_adapters.kind(&record.kind).ok_or_else(|| {
            ApiError::Conflict(format!("adapter kind {} is not served here", record.kind))
        })?;
        record = kind.rotate(&ctx, &record, credentials).await?;
    }
    if body.enabled.is_some() {
        let update = AdapterUpdate { enabled: body.enabled, ..AdapterUpdate::default() };
        record = state.store.update_adapter(&ctx, &record.id, &update).await?;
    }
    Ok(Json(view(&state, record)))
}

/// Health, capabilities and the issuer chain.
#[utoipa::path(get, path = "/api/v1/adapters/{id}/status", tag = "adapters",
    params(("id" = String, Path, description = "Adapter id or name")),
    responses((status = 200, body = AdapterHealth), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["admin", "security", "developer"])))]
pub async fn status(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<AdapterHealth>> {
    let record = state.store.get_adapter(&id).await?;
    let s = state.local_adapters.adapter(&record.id).await?.get_status().await;
    Ok(Json(AdapterHealth {
        healthy: s.healthy,
        message: s.message,
        supports_csr: s.capabilities.supports_csr,
        supports_revocation: s.capabilities.supports_revocation,
        publishes_crl: s.capabilities.publishes_crl,
        answers_ocsp: s.capabilities.answers_ocsp,
        max_validity_secs: s.capabilities.max_validity_secs,
        key_types: s.capabilities.key_types,
        honours_validity: s.capabilities.honours_validity,
        issued_validity_secs: s.capabilities.issued_validity_secs,
        chain: s
            .chain_der
            .into_iter()
            .map(|der| pem::encode(&pem::Pem::new("CERTIFICATE", der)))
            .collect(),
    }))
}

/// Sign a CSR (the issuer role's call; policy and approval happened there).
#[utoipa::path(post, path = "/api/v1/adapters/{id}/sign", tag = "adapters",
    params(("id" = String, Path, description = "Adapter id or name")),
    request_body = SignCall,
    responses((status = 200, body = SignedChain), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["admin"])))]
pub async fn sign(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<SignCall>,
) -> ApiResult<Json<SignedChain>> {
    let csr_der =
        STANDARD.decode(&body.csr).map_err(|_| ApiError::bad_field("csr", "not base64"))?;
    let ip_addresses = body
        .ip_addresses
        .iter()
        .map(|ip| {
            ip.parse().map_err(|_| {
                ApiError::bad_field("ip_addresses", format!("{ip:?} is not an IP address"))
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    let usages = body
        .usages
        .iter()
        .map(|u| {
            parse_usage(u)
                .ok_or_else(|| ApiError::bad_field("usages", format!("unknown usage {u:?}")))
        })
        .collect::<ApiResult<Vec<_>>>()?;
    let request = SignRequest {
        request_id: body.request_id,
        csr_der,
        profile: Profile {
            common_name: body.common_name,
            dns_names: body.dns_names,
            ip_addresses,
            usages,
            validity_secs: body.validity_secs,
        },
        replaces: body
            .replaces
            .map(|b64| STANDARD.decode(b64))
            .transpose()
            .map_err(|_| ApiError::bad_field("replaces", "not base64"))?,
        acme_solver: body.acme_solver,
    };
    let issued = state.local_adapters.adapter(&id).await?.create_certificate(&request).await?;
    Ok(Json(SignedChain {
        certificate: STANDARD.encode(&issued.certificate_der),
        chain: issued.chain_der.iter().map(|c| STANDARD.encode(c)).collect(),
        serial: issued.serial,
    }))
}

/// Revoke a serial this CA issued (the issuer role's call).
#[utoipa::path(post, path = "/api/v1/adapters/{id}/revoke", tag = "adapters",
    params(("id" = String, Path, description = "Adapter id or name")),
    request_body = RevokeCall,
    responses((status = 200, body = Object), (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Refused by the CA (or no such adapter)", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["admin"])))]
pub async fn revoke(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RevokeCall>,
) -> ApiResult<Json<serde_json::Value>> {
    let reason = RevocationReason::parse(&body.reason).ok_or_else(|| {
        ApiError::bad_field("reason", format!("unknown reason {:?}", body.reason))
    })?;
    state.local_adapters.adapter(&id).await?.revoke_certificate(&body.serial, reason).await?;
    Ok(Json(serde_json::json!({"revoked": body.serial})))
}

/// The CA's suggested renewal window for a certificate it issued (ACME ARI; `null` for CAs
/// without one): the issuer role's call.
#[utoipa::path(post, path = "/api/v1/adapters/{id}/renewal-window", tag = "adapters",
    params(("id" = String, Path, description = "Adapter id or name")),
    request_body = RenewalWindowCall,
    responses((status = 200, body = RenewalWindowAnswer), (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Refused by the CA (or no such adapter)", body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["admin"])))]
pub async fn renewal_window(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RenewalWindowCall>,
) -> ApiResult<Json<RenewalWindowAnswer>> {
    let der = STANDARD
        .decode(&body.certificate)
        .map_err(|_| ApiError::bad_field("certificate", "not base64"))?;
    let window = state.local_adapters.adapter(&id).await?.renewal_window(&der).await?;
    Ok(Json(RenewalWindowAnswer {
        window: window.map(|(start, end)| RenewalWindowSpan { start, end }),
    }))
}

/// A short-lived, renewable Vault token for an agent (vault_pki adapters): it may sign with
/// the adapter's role and read the agent's own KV path, nothing else. Shown once.
#[utoipa::path(post, path = "/api/v1/adapters/{id}/agent-tokens", tag = "adapters",
    params(("id" = String, Path, description = "Adapter id or name")),
    request_body = AgentTokenCreate,
    responses((status = 201, body = AgentToken), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = ["admin"])))]
pub async fn agent_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<AgentTokenCreate>,
) -> ApiResult<(StatusCode, Json<AgentToken>)> {
    if !is_url_segment(&body.agent) {
        return Err(ApiError::bad_field("agent", "1-64 characters of a-z, 0-9 and '-'"));
    }
    let ttl_secs = body.ttl_secs.unwrap_or(3600);
    if !(60..=86_400).contains(&ttl_secs) {
        return Err(ApiError::bad_field("ttl_secs", "between 60 and 86400"));
    }
    let record = state.store.get_adapter(&id).await?;
    let vault = &state.config.vault;
    let kv = (vault.kv_mount.as_str(), vault.kv_prefix.as_str());
    let vaults = &state.local_adapters.vault;
    let token = vaults.agent_token(&record, &body.agent, ttl_secs, kv).await?;
    let event = cmp_store::NewAuditEvent {
        action: cmp_store::AuditAction::AdapterAgentTokenIssued,
        entity_type: "adapter".into(),
        entity_id: record.id.clone(),
        details: serde_json::json!({
            "agent": body.agent, "accessor": token.accessor, "policy": token.policy,
            "ttl_secs": token.ttl_secs,
        }),
    };
    let ctx = state.audit_context(&caller);
    if let Err(e) = state.store.append_audit(&ctx, &event).await {
        // A token nobody can account for must not stay valid.
        vaults.revoke_agent_token(&record, &token.accessor).await;
        return Err(e.into());
    }
    Ok((StatusCode::CREATED, Json(token)))
}
