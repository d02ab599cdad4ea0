//! Typed HTTP client for the CMP API, used by `cmpctl`, agents and tests.

use cmp_api::{
    ApiToken, AuditEvent, AuditListParams, AuditVerification, Certificate, CertificateListParams,
    CertificatePatch, ImportParams, ImportResponse, Owner, OwnerCreate, OwnerPatch, Page, Problem,
    TokenCreate, TokenCreated,
};
use reqwest::{Method, RequestBuilder, Response, StatusCode};

mod agents;
mod notifications;
mod scans;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// What a call can fail with.
/// What a renewal started.
#[derive(Debug, Clone)]
pub enum Renewed {
    /// The request for the new version.
    Request(cmp_api::Request),
    /// Its key is made on an agent's host: the agent was asked for a new key's CSR.
    OnAgent(cmp_api::Managed),
}

impl Renewed {
    /// The request, when the renewal made one.
    pub fn into_request(self) -> Option<cmp_api::Request> {
        match self {
            Renewed::Request(request) => Some(request),
            Renewed::OnAgent(_) => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with a problem document.
    #[error("{} {}: {}", .0.status, .0.title, .0.detail.as_deref().unwrap_or(""))]
    Api(Box<Problem>),
    /// The server answered something that is not the expected JSON.
    #[error("unexpected answer ({status}): {body}")]
    Unexpected { status: StatusCode, body: String },
    /// The server could not be reached.
    #[error("could not reach the server: {0}")]
    Transport(#[from] reqwest::Error),
    /// The server URL is not one the client can call (no `http://` or `https://`, no host).
    #[error("server URL {url:?}: {reason}")]
    BadServerUrl { url: String, reason: String },
    /// The CA bundle to trust holds no usable certificate.
    #[error("CA bundle: {0}")]
    BadCaBundle(String),
    /// The client certificate and key cannot be read.
    #[error("client certificate: {0}")]
    BadIdentity(String),
    /// The program installed no rustls crypto provider before building the client (its
    /// `main` installs aws-lc-rs; tests call `cmp_testkit::install_crypto_provider`).
    #[error("no TLS crypto provider is installed (a bug in the program)")]
    NoCryptoProvider,
}

impl ClientError {
    /// The HTTP status of an API error.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api(p) => Some(p.status),
            ClientError::Unexpected { status, .. } => Some(status.as_u16()),
            ClientError::Transport(_)
            | ClientError::BadServerUrl { .. }
            | ClientError::BadCaBundle(_)
            | ClientError::BadIdentity(_)
            | ClientError::NoCryptoProvider => None,
        }
    }
}

fn unexpected(status: StatusCode, body: &[u8]) -> ClientError {
    ClientError::Unexpected {
        status,
        body: String::from_utf8_lossy(body).chars().take(500).collect(),
    }
}

/// A client bound to one server and one token.
#[derive(Clone)]
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// Certificates of an import body.
#[derive(Clone)]
pub enum ImportBody {
    /// PEM, DER or PKCS#7 bytes.
    Raw(Vec<u8>),
    /// PKCS#12 (or any format) with a password.
    Pkcs12 { data: Vec<u8>, password: String },
}

impl std::fmt::Debug for ImportBody {
    // PKCS#12 files hold private keys and the password opens them: print neither.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ImportBody::Raw(bytes) => write!(f, "Raw({} bytes)", bytes.len()),
            ImportBody::Pkcs12 { data, .. } => {
                write!(f, "Pkcs12({} bytes, password redacted)", data.len())
            }
        }
    }
}

pub type ClientResult<T> = Result<T, ClientError>;

/// The base URL without its trailing slashes, once it is known to be `http(s)://host...`:
/// reqwest's own complaint about a missing scheme is a bare "builder error".
fn check_base_url(base: &str) -> ClientResult<String> {
    let bad =
        |reason: &str| ClientError::BadServerUrl { url: base.to_string(), reason: reason.into() };
    // Without this, `localhost:3000` parses as the scheme `localhost` with the path `3000`.
    if !base.contains("://") {
        return Err(bad("no scheme: write http:// or https:// before the host"));
    }
    let url = reqwest::Url::parse(base).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("the scheme must be http:// or https://"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("no host"));
    }
    Ok(base.trim_end_matches('/').to_string())
}

/// The certificates of a PEM bundle; an error when it holds none.
fn ca_roots(pem: &[u8]) -> ClientResult<Vec<reqwest::Certificate>> {
    let roots = reqwest::Certificate::from_pem_bundle(pem)
        .map_err(|e| ClientError::BadCaBundle(format!("not PEM ({e})")))?;
    if roots.is_empty() {
        return Err(ClientError::BadCaBundle(
            "no \"-----BEGIN CERTIFICATE-----\" block in it".into(),
        ));
    }
    Ok(roots)
}

impl Client {
    /// `base` like `http://localhost:3000`, trusting the platform's CA certificates.
    pub fn new(base: &str, token: Option<String>) -> ClientResult<Client> {
        Self::build(base, token, None, None)
    }

    /// Like [`Client::new`], also trusting the CA certificates of a PEM bundle: for a server
    /// whose certificate comes from a private CA (CMP's builtin CA, for one).
    pub fn with_ca_bundle(
        base: &str,
        token: Option<String>,
        ca_bundle_pem: &[u8],
    ) -> ClientResult<Client> {
        Self::build(base, token, Some(ca_bundle_pem), None)
    }

    /// An enrolled agent's client: no token, its client certificate and key (PEM, one after
    /// the other) instead, trusting the CA certificates of `ca_bundle_pem` for the server.
    pub fn with_identity(
        base: &str,
        ca_bundle_pem: &[u8],
        identity_pem: &[u8],
    ) -> ClientResult<Client> {
        Self::build(base, None, Some(ca_bundle_pem), Some(identity_pem))
    }

    fn build(
        base: &str,
        token: Option<String>,
        ca_bundle_pem: Option<&[u8]>,
        identity_pem: Option<&[u8]>,
    ) -> ClientResult<Client> {
        let base = check_base_url(base)?;
        // reqwest takes rustls's provider from the process (cmpctl's main installs aws-lc-rs)
        // and panics without one: say so as an error instead.
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            return Err(ClientError::NoCryptoProvider);
        }
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("cmp-client/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = ca_bundle_pem {
            for root in ca_roots(pem)? {
                builder = builder.add_root_certificate(root);
            }
        }
        if let Some(pem) = identity_pem {
            let identity = reqwest::Identity::from_pem(pem)
                .map_err(|e| ClientError::BadIdentity(e.to_string()))?;
            builder = builder.identity(identity);
        }
        let http = builder.build().map_err(|e| match ca_bundle_pem {
            // A certificate that is not DER inside its PEM armour is refused only here.
            Some(_) => ClientError::BadCaBundle(format!("a certificate is not valid X.509 ({e})")),
            None => ClientError::Transport(e),
        })?;
        Ok(Client { base, token, http })
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        req
    }

    async fn read<T: DeserializeOwned>(response: Response) -> ClientResult<T> {
        if !response.status().is_success() {
            return Err(Self::error(response).await);
        }
        let status = response.status();
        let bytes = response.bytes().await?;
        serde_json::from_slice(&bytes).map_err(|_| unexpected(status, &bytes))
    }

    /// The error of a non-success answer: its problem document, or what it said instead.
    async fn error(response: Response) -> ClientError {
        let status = response.status();
        match response.bytes().await {
            Ok(bytes) => match serde_json::from_slice::<Problem>(&bytes) {
                Ok(p) => ClientError::Api(Box::new(p)),
                Err(_) => unexpected(status, &bytes),
            },
            Err(e) => ClientError::Transport(e),
        }
    }

    async fn empty(response: Response) -> ClientResult<()> {
        if response.status().is_success() {
            return Ok(());
        }
        Err(Self::error(response).await)
    }

    async fn get<T: DeserializeOwned, Q: Serialize>(
        &self,
        path: &str,
        query: &Q,
    ) -> ClientResult<T> {
        Self::read(self.request(Method::GET, path).query(query).send().await?).await
    }

    async fn send_json<T: DeserializeOwned, B: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: &B,
    ) -> ClientResult<T> {
        Self::read(self.request(method, path).json(body).send().await?).await
    }

    pub async fn import(
        &self,
        body: ImportBody,
        params: &ImportParams,
    ) -> ClientResult<ImportResponse> {
        use base64::Engine;
        let req = self.request(Method::POST, "/api/v1/certificates/import").query(params);
        let req = match body {
            ImportBody::Raw(bytes) => {
                req.header("content-type", "application/octet-stream").body(bytes)
            }
            ImportBody::Pkcs12 { data, password } => req.json(&cmp_api::ImportRequest {
                data: base64::engine::general_purpose::STANDARD.encode(data),
                password: Some(password),
                owner: None,
            }),
        };
        Self::read(req.send().await?).await
    }

    pub async fn list_certificates(
        &self,
        params: &CertificateListParams,
    ) -> ClientResult<Page<Certificate>> {
        self.get("/api/v1/certificates", params).await
    }

    pub async fn certificate(&self, id: &str) -> ClientResult<Certificate> {
        self.get(&format!("/api/v1/certificates/{id}"), &()).await
    }

    pub async fn certificate_pem(&self, id: &str) -> ClientResult<String> {
        let response =
            self.request(Method::GET, &format!("/api/v1/certificates/{id}/pem")).send().await?;
        if response.status().is_success() {
            return Ok(response.text().await?);
        }
        Err(Self::error(response).await)
    }

    /// The certificate followed by the chain its CA returned with it (issuing CA first), PEM.
    pub async fn certificate_pem_chain(&self, id: &str) -> ClientResult<String> {
        let path = format!("/api/v1/certificates/{id}/pem?chain=true");
        let response = self.request(Method::GET, &path).send().await?;
        if response.status().is_success() {
            return Ok(response.text().await?);
        }
        Err(Self::error(response).await)
    }

    pub async fn update_certificate(
        &self,
        id: &str,
        patch: &CertificatePatch,
    ) -> ClientResult<Certificate> {
        self.send_json(Method::PATCH, &format!("/api/v1/certificates/{id}"), patch).await
    }

    pub async fn delete_certificate(&self, id: &str) -> ClientResult<()> {
        Self::empty(
            self.request(Method::DELETE, &format!("/api/v1/certificates/{id}")).send().await?,
        )
        .await
    }

    /// Who the client's credentials are.
    pub async fn me(&self) -> ClientResult<cmp_api::Me> {
        self.get("/api/v1/me", &()).await
    }

    /// Everyone who logged in through a provider (admin).
    pub async fn users(&self) -> ClientResult<Vec<cmp_api::User>> {
        self.get("/api/v1/users", &()).await
    }

    /// The identity providers one can log in with (no credentials needed).
    pub async fn auth_providers(&self) -> ClientResult<Vec<cmp_api::AuthProvider>> {
        self.get("/auth/providers", &()).await
    }

    pub async fn owners(&self) -> ClientResult<Vec<Owner>> {
        self.get("/api/v1/owners", &()).await
    }

    pub async fn owner(&self, id: &str) -> ClientResult<Owner> {
        self.get(&format!("/api/v1/owners/{id}"), &()).await
    }

    pub async fn create_owner(&self, owner: &OwnerCreate) -> ClientResult<Owner> {
        self.send_json(Method::POST, "/api/v1/owners", owner).await
    }

    pub async fn update_owner(&self, id: &str, patch: &OwnerPatch) -> ClientResult<Owner> {
        self.send_json(Method::PATCH, &format!("/api/v1/owners/{id}"), patch).await
    }

    pub async fn delete_owner(&self, id: &str) -> ClientResult<()> {
        Self::empty(self.request(Method::DELETE, &format!("/api/v1/owners/{id}")).send().await?)
            .await
    }

    pub async fn tokens(&self) -> ClientResult<Vec<ApiToken>> {
        self.get("/api/v1/tokens", &()).await
    }

    pub async fn create_token(&self, token: &TokenCreate) -> ClientResult<TokenCreated> {
        self.send_json(Method::POST, "/api/v1/tokens", token).await
    }

    pub async fn revoke_token(&self, id: &str) -> ClientResult<()> {
        Self::empty(self.request(Method::DELETE, &format!("/api/v1/tokens/{id}")).send().await?)
            .await
    }

    pub async fn audit(&self, params: &AuditListParams) -> ClientResult<Page<AuditEvent>> {
        self.get("/api/v1/audit", params).await
    }

    pub async fn verify_audit(&self) -> ClientResult<AuditVerification> {
        self.get("/api/v1/audit/verify", &()).await
    }

    /// Requests a certificate; with `idempotency_key`, a retry returns the same request.
    pub async fn create_request(
        &self,
        body: &cmp_api::RequestCreate,
        idempotency_key: Option<&str>,
    ) -> ClientResult<cmp_api::Request> {
        let mut req = self.request(Method::POST, "/api/v1/requests").json(body);
        if let Some(key) = idempotency_key {
            req = req.header("Idempotency-Key", key);
        }
        Self::read(req.send().await?).await
    }

    pub async fn requests<Q: Serialize>(&self, query: &Q) -> ClientResult<Page<cmp_api::Request>> {
        self.get("/api/v1/requests", query).await
    }

    pub async fn issuance_request(&self, id: &str) -> ClientResult<cmp_api::Request> {
        self.get(&format!("/api/v1/requests/{id}"), &()).await
    }

    /// Approves (`true`) or rejects a request awaiting approval.
    pub async fn decide(
        &self,
        id: &str,
        approve: bool,
        comment: Option<String>,
    ) -> ClientResult<cmp_api::Request> {
        let verb = if approve { "approve" } else { "reject" };
        let body = cmp_api::Decision { comment };
        self.send_json(Method::POST, &format!("/api/v1/requests/{id}/{verb}"), &body).await
    }

    pub async fn create_managed(
        &self,
        body: &cmp_api::ManagedCreate,
    ) -> ClientResult<cmp_api::Managed> {
        self.send_json(Method::POST, "/api/v1/managed-certificates", body).await
    }

    pub async fn managed_list(&self) -> ClientResult<Page<cmp_api::Managed>> {
        self.get("/api/v1/managed-certificates", &()).await
    }

    /// One managed certificate by id, name, or `owner/name`.
    pub async fn managed(&self, id: &str) -> ClientResult<cmp_api::Managed> {
        self.get(&format!("/api/v1/managed-certificates/{}", segment(id)), &()).await
    }

    /// Renews a managed certificate given by id, name, or `owner/name`.
    pub async fn renew(&self, id: &str) -> ClientResult<Renewed> {
        let path = format!("/api/v1/managed-certificates/{}/renew", segment(id));
        let response = self.request(Method::POST, &path).send().await?;
        if response.status() == StatusCode::ACCEPTED {
            return Ok(Renewed::OnAgent(Self::read(response).await?));
        }
        Ok(Renewed::Request(Self::read(response).await?))
    }

    /// Revokes; with `purge_key`, also deletes the server-made private key once revoked.
    pub async fn revoke(
        &self,
        id: &str,
        reason: &str,
        purge_key: bool,
    ) -> ClientResult<cmp_api::Request> {
        let body = cmp_api::RevokeBody { reason: reason.to_string(), purge_key };
        self.send_json(Method::POST, &format!("/api/v1/certificates/{id}/revoke"), &body).await
    }

    /// A server-made private key: PEM, or PKCS#12 under `pkcs12_password`.
    pub async fn download_key(
        &self,
        id: &str,
        pkcs12_password: Option<&str>,
    ) -> ClientResult<Vec<u8>> {
        let format = if pkcs12_password.is_some() { "pkcs12" } else { "pem" };
        let mut req = self
            .request(Method::GET, &format!("/api/v1/certificates/{id}/key"))
            .query(&[("format", format)]);
        if let Some(password) = pkcs12_password {
            req = req.header("X-Pkcs12-Password", password);
        }
        let response = req.send().await?;
        if response.status().is_success() {
            return Ok(response.bytes().await?.to_vec());
        }
        Err(Self::error(response).await)
    }

    pub async fn policy(&self, owner: &str) -> ClientResult<cmp_api::PolicyView> {
        self.get(&format!("/api/v1/owners/{owner}/policy"), &()).await
    }

    pub async fn set_policy(
        &self,
        owner: &str,
        policy: &cmp_domain::Policy,
    ) -> ClientResult<cmp_api::PolicyView> {
        self.send_json(Method::PUT, &format!("/api/v1/owners/{owner}/policy"), policy).await
    }

    pub async fn adapters(&self) -> ClientResult<Vec<cmp_api::Adapter>> {
        self.get("/api/v1/adapters", &()).await
    }

    pub async fn create_adapter(
        &self,
        body: &cmp_api::AdapterCreate,
    ) -> ClientResult<cmp_api::Adapter> {
        self.send_json(Method::POST, "/api/v1/adapters", body).await
    }

    pub async fn patch_adapter(
        &self,
        id: &str,
        body: &cmp_api::AdapterPatch,
    ) -> ClientResult<cmp_api::Adapter> {
        self.send_json(Method::PATCH, &format!("/api/v1/adapters/{id}"), body).await
    }

    /// A Vault token for an agent, from a vault_pki adapter.
    pub async fn agent_token(
        &self,
        id: &str,
        body: &cmp_api::AgentTokenCreate,
    ) -> ClientResult<cmp_api::AgentToken> {
        self.send_json(Method::POST, &format!("/api/v1/adapters/{id}/agent-tokens"), body).await
    }

    pub async fn adapter_status(&self, id: &str) -> ClientResult<cmp_api::AdapterHealth> {
        self.get(&format!("/api/v1/adapters/{id}/status"), &()).await
    }

    /// What a CA publishes under `/pki/<ca>/<what>` (crl, ca, chain), unauthenticated.
    pub async fn pki(&self, ca: &str, what: &str) -> ClientResult<Vec<u8>> {
        let response = self.http.get(format!("{}/pki/{ca}/{what}", self.base)).send().await?;
        if response.status().is_success() {
            return Ok(response.bytes().await?.to_vec());
        }
        Err(Self::error(response).await)
    }

    /// Asks a CA's OCSP responder (POST, DER in and out).
    pub async fn ocsp(&self, ca: &str, request_der: Vec<u8>) -> ClientResult<Vec<u8>> {
        let response = self
            .http
            .post(format!("{}/pki/{ca}/ocsp", self.base))
            .header("content-type", "application/ocsp-request")
            .body(request_der)
            .send()
            .await?;
        if response.status().is_success() {
            return Ok(response.bytes().await?.to_vec());
        }
        Err(Self::error(response).await)
    }
}

/// `value` as one URL path segment: the '/' of `owner/name` and the spaces of an owner's name
/// are percent-encoded, everything but unreserved characters with them.
pub(crate) fn segment(value: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // The only test in this binary: nothing installs a crypto provider first, as in a program
    // whose main forgot to. reqwest would panic; the client says so instead.
    #[test]
    fn without_a_crypto_provider_building_a_client_is_an_error_not_a_panic() {
        let e = Client::new("http://127.0.0.1:1", None).err();
        assert!(matches!(e, Some(ClientError::NoCryptoProvider)), "{e:?}");
    }
}
