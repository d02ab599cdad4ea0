//! One ACME account at one CA: registration (with External Account Binding), orders carried
//! through challenges to a certificate (new or resumed after a restart), revocation, and ARI.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use cmp_domain::{Clock, Secret};
use instant_acme::{
    Account, AuthorizationStatus, CertificateIdentifier, ChallengeStatus, ExternalAccountKey,
    Identifier, NewAccount, NewOrder, Order, OrderStatus, RetryPolicy, RevocationRequest,
};
use rustls_pki_types::CertificateDer;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::ari::{RenewalWindow, certificate_id, window_of};
use crate::http::{AcmeHttp, last_retry_after, with_retry_after};
use crate::jws::{self, AccountKey};
use crate::solvers::{Solver, Solvers};
use crate::{AcmeError, Problem, ProblemKind, Throttle};

/// How to reach an ACME CA (no secrets: the EAB key and the account key live elsewhere).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcmeSettings {
    /// The directory URL, e.g. `https://acme-v02.api.letsencrypt.org/directory`.
    pub directory_url: String,
    /// Registered as `mailto:` on the account.
    #[serde(default)]
    pub contact_email: Option<String>,
    /// PEM certificates to trust for the directory's TLS (an internal CA), besides the system's.
    #[serde(default)]
    pub ca_bundle: Option<String>,
    /// The CA's certificate profile to order under (draft-ietf-acme-profiles), if it has them.
    #[serde(default)]
    pub profile: Option<String>,
    /// How long one order may take to validate and issue, in seconds.
    #[serde(default = "default_order_timeout")]
    pub order_timeout_secs: u64,
    /// Send the lifetime asked as `notAfter` in each newOrder (RFC 8555 section 7.4). Pebble and
    /// most private CAs honour it; a CA that refuses it as malformed (Let's Encrypt today) is
    /// asked again without it, and false skips it altogether.
    #[serde(default = "default_send_not_after")]
    pub send_not_after: bool,
}

fn default_order_timeout() -> u64 {
    90
}

fn default_send_not_after() -> bool {
    true
}

/// An External Account Binding key: key id and HMAC key (base64url, as CAs hand it out).
#[derive(Debug)]
pub struct Eab {
    pub key_id: String,
    pub hmac_key: Secret<String>,
}

/// What the CA's directory offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryFacts {
    /// `renewalInfo` (RFC 9773) is offered.
    pub renewal_info: bool,
    pub external_account_required: bool,
    pub profiles: Vec<String>,
}

/// One registered account.
pub struct AcmeClient {
    account: Account,
    settings: AcmeSettings,
    http: reqwest::Client,
    throttle: Throttle,
    /// The account key again, to sign the newOrders instant-acme cannot (with `notAfter`).
    key: AccountKey,
    /// The CA refused `notAfter` once: later orders go without it.
    not_after_refused: AtomicBool,
    /// The time for the throttle, `Retry-After` and ARI's recheck.
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for AcmeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcmeClient")
            .field("directory", &self.settings.directory_url)
            .field("account", &self.account.id())
            .finish_non_exhaustive()
    }
}

/// Runs one exchange with its own `Retry-After` slot and turns instant-acme's errors into ours.
async fn exchange<T>(
    work: impl Future<Output = Result<T, instant_acme::Error>>,
) -> Result<T, AcmeError> {
    with_retry_after(async { work.await.map_err(|e| AcmeError::from_acme(e, last_retry_after())) })
        .await
}

/// [`exchange`], again while the CA refuses the nonce: a `badNonce` answer means the request
/// was not processed, so repeating it is safe. (instant-acme retries 3 times itself; a CA that
/// rejects many nonces, as Pebble can be told to, needs more.)
macro_rules! exchange_retrying_nonce {
    ($call:expr) => {{
        let mut retries = 5;
        loop {
            match exchange($call).await {
                Err(AcmeError::Problem(p)) if p.kind == ProblemKind::BadNonce && retries > 0 => {
                    retries -= 1;
                }
                outcome => break outcome,
            }
        }
    }};
}

fn identifiers(names: &[String]) -> Vec<Identifier> {
    names
        .iter()
        .map(|name| match name.parse::<IpAddr>() {
            Ok(ip) => Identifier::Ip(ip),
            Err(_) => Identifier::Dns(name.to_ascii_lowercase()),
        })
        .collect()
}

/// A challenge CMP set up, to take down once the order is decided.
struct Presented<'s> {
    solver: &'s Solver,
    /// The http-01 token, or the dns-01 record name.
    key: String,
    value: String,
}

impl AcmeClient {
    /// Registers a new account (agreeing to the CA's terms) and returns it with its
    /// credentials (account URL and private key, JSON) to keep in the secret store.
    pub async fn register(
        settings: &AcmeSettings,
        eab: Option<&Eab>,
        clock: Arc<dyn Clock>,
    ) -> Result<(AcmeClient, Zeroizing<String>), AcmeError> {
        let contact = settings.contact_email.as_ref().map(|email| format!("mailto:{email}"));
        let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
        let new_account = NewAccount {
            contact: &contacts,
            terms_of_service_agreed: true,
            only_return_existing: false,
        };
        let eab_key = match eab {
            Some(eab) => {
                let trimmed = eab.hmac_key.expose().trim();
                let hmac = Zeroizing::new(
                    URL_SAFE_NO_PAD.decode(trimmed).or_else(|_| URL_SAFE.decode(trimmed)).map_err(
                        |_| AcmeError::Config("the EAB HMAC key is not base64url".into()),
                    )?,
                );
                Some(ExternalAccountKey::new(eab.key_id.clone(), &hmac))
            }
            None => None,
        };
        let directory = &settings.directory_url;
        let http = AcmeHttp::new(settings.ca_bundle.as_deref(), clock.clone())?;
        let (account, credentials) =
            exchange_retrying_nonce!(Account::builder_with_http(Box::new(http.clone())).create(
                &new_account,
                directory.clone(),
                eab_key.as_ref()
            ))?;
        let http = http.client();
        let key = AccountKey::new(credentials.private_key().secret_pkcs8_der(), account.id())?;
        let credentials = serde_json::to_string(&credentials)
            .map_err(|e| AcmeError::Protocol(format!("account credentials: {e}")))?;
        let client = AcmeClient::around(account, settings, http, key, clock);
        Ok((client, Zeroizing::new(credentials)))
    }

    /// The account from credentials [`register`](Self::register) returned.
    pub async fn restore(
        settings: &AcmeSettings,
        credentials: &str,
        clock: Arc<dyn Clock>,
    ) -> Result<AcmeClient, AcmeError> {
        let read = || {
            serde_json::from_str::<instant_acme::AccountCredentials>(credentials).map_err(|_| {
                AcmeError::Config("stored ACME account credentials are unreadable".into())
            })
        };
        let http = AcmeHttp::new(settings.ca_bundle.as_deref(), clock.clone())?;
        let pkcs8 = Zeroizing::new(read()?.private_key().secret_pkcs8_der().to_vec());
        let account = exchange_retrying_nonce!(
            Account::builder_with_http(Box::new(http.clone())).from_credentials(read()?)
        )?;
        let key = AccountKey::new(&pkcs8, account.id())?;
        Ok(AcmeClient::around(account, settings, http.client(), key, clock))
    }

    /// A client of a registered or restored account.
    fn around(
        account: Account,
        settings: &AcmeSettings,
        http: reqwest::Client,
        key: AccountKey,
        clock: Arc<dyn Clock>,
    ) -> AcmeClient {
        AcmeClient {
            account,
            settings: settings.clone(),
            http,
            throttle: Throttle::default(),
            key,
            not_after_refused: AtomicBool::new(false),
            clock,
        }
    }

    /// Now, in Unix seconds.
    fn unix_now(&self) -> i64 {
        self.clock.now().unix_timestamp()
    }

    /// The account URL at the CA.
    pub fn account_url(&self) -> &str {
        self.account.id()
    }

    pub fn settings(&self) -> &AcmeSettings {
        &self.settings
    }

    /// Reads the directory: is the CA up, and what does it offer.
    pub async fn probe(&self) -> Result<DirectoryFacts, AcmeError> {
        let response = self
            .http
            .get(&self.settings.directory_url)
            .send()
            .await
            .map_err(|e| AcmeError::Unreachable(e.without_url().to_string()))?;
        if !response.status().is_success() {
            return Err(AcmeError::Unreachable(format!(
                "directory answered {}",
                response.status()
            )));
        }
        let directory: serde_json::Value = response
            .json()
            .await
            .map_err(|e| AcmeError::Protocol(format!("directory is not JSON: {e}")))?;
        let meta = &directory["meta"];
        Ok(DirectoryFacts {
            renewal_info: directory.get("renewalInfo").is_some(),
            external_account_required: meta["externalAccountRequired"].as_bool().unwrap_or(false),
            profiles: meta["profiles"]
                .as_object()
                .map(|profiles| profiles.keys().cloned().collect())
                .unwrap_or_default(),
        })
    }

    /// Places an order for `names`; `replaces` is the certificate it renews (sent as ARI's
    /// `replaces` when the CA offers ARI). Held back while the CA asked to wait.
    pub async fn new_order(
        &self,
        names: &[String],
        replaces: Option<&[u8]>,
    ) -> Result<Order, AcmeError> {
        self.new_order_until(names, replaces, None).await
    }

    /// Whether orders ask for their lifetime (`notAfter`): the setting is on and the CA has not
    /// refused it.
    pub fn sends_not_after(&self) -> bool {
        self.settings.send_not_after && !self.not_after_refused.load(Ordering::Relaxed)
    }

    /// [`new_order`](Self::new_order) asking for a certificate that ends at `not_after` (Unix
    /// seconds), when [`sends_not_after`](Self::sends_not_after). A CA that refuses `notAfter`
    /// as such gets the order again without it, and no `notAfter` from then on.
    pub async fn new_order_until(
        &self,
        names: &[String],
        replaces: Option<&[u8]>,
        not_after: Option<i64>,
    ) -> Result<Order, AcmeError> {
        if let Some(not_after) = not_after.filter(|_| self.sends_not_after()) {
            self.throttle.check(self.unix_now(), names)?;
            let mut retries = 5;
            let placed = loop {
                match self.new_order_with_not_after(names, replaces, not_after).await {
                    Err(AcmeError::Problem(p))
                        if p.kind == ProblemKind::BadNonce && retries > 0 =>
                    {
                        retries -= 1;
                    }
                    outcome => break outcome,
                }
            };
            match placed {
                Ok(url) => return self.resume_order(&url).await,
                Err(AcmeError::Problem(p)) if jws::refuses_validity(&p) => {
                    tracing::warn!(
                        directory = %self.settings.directory_url,
                        problem = %p,
                        "the ACME CA refuses notAfter: ordering without it (set send_not_after \
                         = false to skip it)"
                    );
                    self.not_after_refused.store(true, Ordering::Relaxed);
                }
                Err(e) => {
                    self.throttle.note(self.unix_now(), names, &e);
                    return Err(e);
                }
            }
        }
        self.throttle.check(self.unix_now(), names)?;
        let identifiers = identifiers(names);
        let order = |replaces: Option<CertificateIdentifier<'static>>| {
            let mut order = NewOrder::new(&identifiers);
            if let Some(profile) = &self.settings.profile {
                order = order.profile(profile);
            }
            match replaces {
                Some(id) => order.replaces(id),
                None => order,
            }
        };
        // A certificate without an authority key id cannot be named: no `replaces` then.
        let replaces = replaces.and_then(|previous| certificate_id(previous).ok());
        let with_replaces = replaces.is_some();
        let mut placed = exchange_retrying_nonce!(self.account.new_order(&order(replaces.clone())));
        if with_replaces && let Err(AcmeError::Config(_)) = placed {
            // instant-acme refuses `replaces` before sending when the CA has no ARI.
            placed = exchange_retrying_nonce!(self.account.new_order(&order(None)));
        }
        if let Err(e) = &placed {
            self.throttle.note(self.unix_now(), names, e);
        }
        placed
    }

    /// A newOrder with `notAfter`, signed here (instant-acme cannot send it); its URL.
    async fn new_order_with_not_after(
        &self,
        names: &[String],
        replaces: Option<&[u8]>,
        not_after: i64,
    ) -> Result<String, AcmeError> {
        let directory = jws::directory(&self.http, &self.settings.directory_url).await?;
        let mut payload = serde_json::json!({
            "identifiers": identifiers(names),
            "notAfter": crate::format_time(not_after),
        });
        if let Some(profile) = &self.settings.profile {
            payload["profile"] = serde_json::json!(profile);
        }
        // As with instant-acme: `replaces` only to a CA with ARI, and only for a certificate
        // that can be named.
        if directory.renewal_info
            && let Some(id) = replaces.and_then(|previous| certificate_id(previous).ok())
        {
            payload["replaces"] = serde_json::to_value(&id)
                .map_err(|e| AcmeError::Protocol(format!("replaces: {e}")))?;
        }
        jws::post_new_order(&self.http, &directory, &self.key, &payload, self.clock.as_ref()).await
    }

    /// An order placed earlier (e.g. before a restart), by URL.
    pub async fn resume_order(&self, url: &str) -> Result<Order, AcmeError> {
        exchange_retrying_nonce!(self.account.order(url.to_string()))
    }

    fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy::new()
            .initial_delay(Duration::from_millis(50))
            .backoff(1.5)
            .timeout(Duration::from_secs(self.settings.order_timeout_secs))
    }

    /// Carries an order from wherever it stands to its certificate chain (PEM, leaf first):
    /// proves pending names (with the solver whose id is `chosen`, or by name pattern),
    /// finalizes with `csr_der`, waits for and downloads the chain.
    pub async fn complete(
        &self,
        order: &mut Order,
        solvers: &Solvers,
        chosen: Option<&str>,
        csr_der: &[u8],
    ) -> Result<String, AcmeError> {
        let retry = self.retry_policy();
        if order.state().status == OrderStatus::Pending {
            // Every authorization's state, fetched before anything is set up.
            exchange_retrying_nonce!(async {
                let mut authorizations = order.authorizations();
                while let Some(authorization) = authorizations.next().await {
                    authorization?;
                }
                Ok(())
            })?;
            let mut presented = Vec::new();
            let proved = self.prove(order, solvers, chosen, &mut presented).await;
            let status = match proved {
                Ok(()) => exchange_retrying_nonce!(order.poll_ready(&retry)),
                Err(e) => Err(e),
            };
            take_down(presented).await;
            match status {
                Ok(OrderStatus::Ready) => {}
                Ok(_) => return Err(self.why_invalid(order).await),
                Err(AcmeError::Problem(p)) if !p.kind.is_transient() => {
                    return Err(self.why_invalid(order).await);
                }
                Err(e) => return Err(e),
            }
        }
        if order.state().status == OrderStatus::Ready {
            exchange_retrying_nonce!(order.finalize_csr(csr_der))?;
        }
        if order.state().status == OrderStatus::Invalid {
            return Err(self.why_invalid(order).await);
        }
        exchange_retrying_nonce!(order.poll_certificate(&retry))
    }

    /// Sets up each pending authorization's challenge and tells the CA to check it. What was
    /// set up is pushed to `presented`, also when a later one fails.
    async fn prove<'s>(
        &self,
        order: &mut Order,
        solvers: &'s Solvers,
        chosen: Option<&str>,
        presented: &mut Vec<Presented<'s>>,
    ) -> Result<(), AcmeError> {
        let mut authorizations = order.authorizations();
        while let Some(authorization) = authorizations.next().await {
            let mut authorization = authorization.map_err(|e| AcmeError::from_acme(e, None))?;
            let name = authorization.identifier().to_string();
            // Set up only what is still pending. What an attempt before a restart set up is
            // taken down too: a dns-01 value depends only on the challenge and the account,
            // so the record it left is known.
            let pending = match authorization.status {
                AuthorizationStatus::Pending => true,
                AuthorizationStatus::Valid => false,
                other => {
                    return Err(AcmeError::Protocol(format!(
                        "authorization for {name} is {other:?}"
                    )));
                }
            };
            let solver = match solvers.pick(&name, chosen) {
                Ok(solver) => solver,
                Err(e) if pending => return Err(e),
                Err(_) => continue,
            };
            let kind = solver.challenge_type();
            let Some(mut challenge) = authorization.challenge(kind.clone()) else {
                if !pending {
                    continue;
                }
                return Err(AcmeError::Config(format!(
                    "the CA offers no {kind:?} challenge for {name}"
                )));
            };
            let set_up = pending && challenge.status == ChallengeStatus::Pending;
            let key_authorization = challenge.key_authorization();
            match solver {
                Solver::Http01(responder) if set_up => {
                    responder.present(&challenge.token, key_authorization.as_str());
                    presented.push(Presented {
                        solver,
                        key: challenge.token.clone(),
                        value: String::new(),
                    });
                }
                Solver::Http01(_) => {} // the token lived in the memory of the attempt
                Solver::Dns01 { provider, propagation } => {
                    let fqdn = format!("_acme-challenge.{}.", name.trim_start_matches("*."));
                    let value = key_authorization.dns_value();
                    presented.push(Presented { solver, key: fqdn.clone(), value: value.clone() });
                    if set_up {
                        provider.present(&fqdn, &value).await?;
                        propagation.wait_for(&fqdn, &value).await?;
                    }
                }
            }
            if set_up {
                exchange_retrying_nonce!(challenge.set_ready())?;
            }
        }
        Ok(())
    }

    /// Why an order failed: the first failed challenge's problem, else the order's.
    async fn why_invalid(&self, order: &mut Order) -> AcmeError {
        let order_problem = order.state().error.clone();
        let mut authorizations = order.authorizations();
        while let Some(Ok(mut authorization)) = authorizations.next().await {
            if exchange_retrying_nonce!(authorization.refresh()).is_err() {
                continue;
            }
            let name = authorization.identifier().to_string();
            if let Some(challenge) = authorization.challenges.iter().find(|c| c.error.is_some())
                && let Some(problem) = &challenge.error
            {
                let kind = match &challenge.r#type {
                    instant_acme::ChallengeType::Http01 => "http-01",
                    instant_acme::ChallengeType::Dns01 => "dns-01",
                    _ => "challenge",
                };
                return AcmeError::ChallengeFailed {
                    challenge: format!("{kind} for {name}"),
                    problem: Problem::from_acme(problem, None),
                };
            }
        }
        match order_problem {
            Some(problem) => AcmeError::Problem(Problem::from_acme(&problem, None)),
            None => AcmeError::Protocol(format!("order {} became invalid", order.url())),
        }
    }

    /// Revokes a certificate this account ordered, with an RFC 5280 reason code.
    pub async fn revoke(&self, certificate_der: &[u8], reason_code: u8) -> Result<(), AcmeError> {
        use instant_acme::RevocationReason as R;
        let reason = match reason_code {
            1 => R::KeyCompromise,
            2 => R::CaCompromise,
            3 => R::AffiliationChanged,
            4 => R::Superseded,
            5 => R::CessationOfOperation,
            6 => R::CertificateHold,
            9 => R::PrivilegeWithdrawn,
            10 => R::AaCompromise,
            _ => R::Unspecified,
        };
        let certificate = CertificateDer::from(certificate_der);
        let request = RevocationRequest { certificate: &certificate, reason: Some(reason) };
        exchange_retrying_nonce!(self.account.revoke(&request))
    }

    /// The CA's suggested renewal window for a certificate (RFC 9773); `None` when the CA has
    /// no ARI.
    pub async fn renewal_window(
        &self,
        certificate_der: &[u8],
    ) -> Result<Option<RenewalWindow>, AcmeError> {
        let id = certificate_id(certificate_der)?;
        match exchange_retrying_nonce!(self.account.renewal_info(&id)) {
            Ok((info, recheck)) => {
                let recheck_at =
                    self.unix_now() + i64::try_from(recheck.as_secs()).unwrap_or(21_600);
                Ok(window_of(&info, recheck_at))
            }
            Err(AcmeError::Config(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Removes what [`AcmeClient::prove`] set up; a failure here is logged, never fatal (the
/// order's outcome is already decided).
async fn take_down(presented: Vec<Presented<'_>>) {
    for item in presented {
        match item.solver {
            Solver::Http01(responder) => responder.remove(&item.key),
            Solver::Dns01 { provider, .. } => {
                if let Err(e) = provider.cleanup(&item.key, &item.value).await {
                    tracing::warn!(record = %item.key, error = %e, "could not remove a dns-01 record");
                }
            }
        }
    }
}
