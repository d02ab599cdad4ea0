//! Which challenge proves which name: an adapter's solvers, chosen by name pattern, and CMP's
//! own http-01 responder.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use serde::{Deserialize, Serialize};

use crate::AcmeError;
use crate::dns::{DnsProvider, DnsProviderConfig, Propagation};

/// One solver of an adapter's configuration. The first solver whose `names` admit a name
/// proves it; empty `names` admit every name. Rules: `a.example` exactly, `*.example` one
/// label under it, `.example` any depth under it. A request or managed certificate may name a
/// solver by `id` instead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "challenge", deny_unknown_fields)]
pub enum SolverConfig {
    /// Served by CMP's http-01 responder (the listener port 80 is pointed at).
    #[serde(rename = "http-01")]
    Http01 {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        #[serde(default)]
        names: Vec<String>,
    },
    /// A TXT record through a DNS provider, checked for propagation first.
    #[serde(rename = "dns-01")]
    Dns01 {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        #[serde(default)]
        names: Vec<String>,
        provider: DnsProviderConfig,
        #[serde(default)]
        propagation: Propagation,
    },
}

impl SolverConfig {
    /// The DNS provider of a dns-01 solver (to take its credential out or put it back).
    pub fn provider_mut(&mut self) -> Option<&mut DnsProviderConfig> {
        match self {
            SolverConfig::Http01 { .. } => None,
            SolverConfig::Dns01 { provider, .. } => Some(provider),
        }
    }
}

/// How one name is proved.
pub(crate) enum Solver {
    Http01(Arc<Http01Responder>),
    Dns01 { provider: Box<dyn DnsProvider>, propagation: Propagation },
}

impl Solver {
    pub(crate) fn challenge_type(&self) -> instant_acme::ChallengeType {
        match self {
            Solver::Http01(_) => instant_acme::ChallengeType::Http01,
            Solver::Dns01 { .. } => instant_acme::ChallengeType::Dns01,
        }
    }
}

/// One configured solver: its id, its name rules, and how it proves.
struct Entry {
    id: Option<String>,
    rules: Vec<String>,
    solver: Solver,
}

/// An adapter's solvers, in order.
pub struct Solvers {
    entries: Vec<Entry>,
}

impl Solvers {
    /// Builds the solvers; http-01 needs the process's responder.
    pub fn new(
        configs: &[SolverConfig],
        http01: Option<&Arc<Http01Responder>>,
    ) -> Result<Solvers, AcmeError> {
        if configs.is_empty() {
            return Err(AcmeError::Config("at least one solver is needed".into()));
        }
        let mut entries: Vec<Entry> = Vec::new();
        for config in configs {
            let entry = match config {
                SolverConfig::Http01 { id, names } => {
                    let responder = http01.ok_or_else(|| {
                        AcmeError::Config(
                            "http-01 needs CMP's responder: set acme.http01_listen".into(),
                        )
                    })?;
                    Entry {
                        id: id.clone(),
                        rules: lowercase(names),
                        solver: Solver::Http01(responder.clone()),
                    }
                }
                SolverConfig::Dns01 { id, names, provider, propagation } => Entry {
                    id: id.clone(),
                    rules: lowercase(names),
                    solver: Solver::Dns01 {
                        provider: provider.provider()?,
                        propagation: propagation.clone(),
                    },
                },
            };
            if let Some(id) = &entry.id
                && entries.iter().any(|e| e.id.as_ref() == Some(id))
            {
                return Err(AcmeError::Config(format!("two solvers have the id {id:?}")));
            }
            entries.push(entry);
        }
        Ok(Solvers { entries })
    }

    /// The solver for a name (`*.x` for a wildcard, which only dns-01 can prove): the one
    /// whose id is `chosen`, else the first whose rules admit the name.
    pub(crate) fn pick(&self, name: &str, chosen: Option<&str>) -> Result<&Solver, AcmeError> {
        let name = name.to_ascii_lowercase();
        let wildcard = name.starts_with("*.");
        let usable = |entry: &&Entry| !(wildcard && matches!(entry.solver, Solver::Http01(_)));
        if let Some(chosen) = chosen {
            let entry = self
                .entries
                .iter()
                .find(|e| e.id.as_deref() == Some(chosen))
                .ok_or_else(|| AcmeError::Config(format!("no solver has the id {chosen:?}")))?;
            return Some(entry).filter(usable).map(|e| &e.solver).ok_or_else(|| {
                AcmeError::Config(format!("solver {chosen:?} is http-01; {name} needs dns-01"))
            });
        }
        self.entries
            .iter()
            .filter(usable)
            .find(|e| {
                e.rules.is_empty()
                    || e.rules.iter().any(|rule| cmp_domain::name_matches(rule, &name))
            })
            .map(|e| &e.solver)
            .ok_or_else(|| {
                AcmeError::Config(if wildcard {
                    format!("no dns-01 solver admits {name} (a wildcard needs dns-01)")
                } else {
                    format!("no solver admits {name}")
                })
            })
    }
}

fn lowercase(names: &[String]) -> Vec<String> {
    names.iter().map(|n| n.to_ascii_lowercase()).collect()
}

/// Answers `GET /.well-known/acme-challenge/{token}` with the key authorization of a challenge
/// in flight. One per process, shared by every ACME adapter.
#[derive(Debug, Default)]
pub struct Http01Responder {
    tokens: RwLock<HashMap<String, String>>,
}

impl Http01Responder {
    pub fn present(&self, token: &str, key_authorization: &str) {
        if let Ok(mut tokens) = self.tokens.write() {
            tokens.insert(token.to_string(), key_authorization.to_string());
        }
    }

    pub fn remove(&self, token: &str) {
        if let Ok(mut tokens) = self.tokens.write() {
            tokens.remove(token);
        }
    }

    fn answer(&self, token: &str) -> Option<String> {
        self.tokens.read().ok()?.get(token).cloned()
    }

    /// The responder's routes.
    pub fn router(self: Arc<Self>) -> axum::Router {
        async fn challenge(
            State(responder): State<Arc<Http01Responder>>,
            Path(token): Path<String>,
        ) -> Result<String, StatusCode> {
            responder.answer(&token).ok_or(StatusCode::NOT_FOUND)
        }
        axum::Router::new()
            .route("/.well-known/acme-challenge/{token}", get(challenge))
            .with_state(self)
    }

    /// Serves the responder on `listener` until the task is dropped.
    pub async fn serve(self: Arc<Self>, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        axum::serve(listener, self.router()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dns(names: &[&str]) -> SolverConfig {
        SolverConfig::Dns01 {
            id: Some("corp-dns".into()),
            names: names.iter().map(|n| n.to_string()).collect(),
            provider: DnsProviderConfig::Webhook {
                present_url: "http://127.0.0.1:1/set".into(),
                cleanup_url: "http://127.0.0.1:1/clear".into(),
                secret: None,
            },
            propagation: Propagation::default(),
        }
    }

    #[test]
    fn names_pick_the_first_matching_solver_and_wildcards_only_dns() {
        // The webhook provider builds its HTTP client, as in cmpd after its main installed this.
        cmp_testkit::install_crypto_provider();
        let responder = Arc::new(Http01Responder::default());
        let configs =
            [dns(&[".internal.example"]), SolverConfig::Http01 { id: None, names: Vec::new() }];
        let solvers = Solvers::new(&configs, Some(&responder)).unwrap();
        let kind = |name: &str| solvers.pick(name, None).map(Solver::challenge_type);
        assert_eq!(kind("a.internal.example").unwrap(), instant_acme::ChallengeType::Dns01);
        assert_eq!(kind("www.example").unwrap(), instant_acme::ChallengeType::Http01);
        assert_eq!(kind("*.internal.example").unwrap(), instant_acme::ChallengeType::Dns01);
        let e = kind("*.example").unwrap_err();
        assert!(e.to_string().contains("a wildcard needs dns-01"), "{e}");
        // Chosen by id, whatever the patterns say; an unknown id is an error.
        let chosen = solvers.pick("www.example", Some("corp-dns")).map(Solver::challenge_type);
        assert_eq!(chosen.unwrap(), instant_acme::ChallengeType::Dns01);
        let e = solvers.pick("www.example", Some("nope")).err().unwrap();
        assert!(e.to_string().contains("no solver has the id \"nope\""), "{e}");
        let twice = Solvers::new(&[dns(&[]), dns(&[])], None).err().unwrap();
        assert!(twice.to_string().contains("two solvers have the id"), "{twice}");
    }

    #[test]
    fn http01_without_a_responder_and_no_solvers_are_configuration_errors() {
        let e = Solvers::new(&[SolverConfig::Http01 { id: None, names: Vec::new() }], None)
            .err()
            .unwrap();
        assert!(e.to_string().contains("acme.http01_listen"), "{e}");
        assert!(Solvers::new(&[], None).is_err());
    }

    #[test]
    fn the_configuration_reads_as_documented() {
        let config: Vec<SolverConfig> = serde_json::from_str(
            r#"[{"challenge": "dns-01", "names": ["*.example.com"],
                 "provider": {"kind": "webhook", "present_url": "http://dns/set",
                              "cleanup_url": "http://dns/clear"},
                 "propagation": {"nameservers": ["127.0.0.1:8053"], "timeout_secs": 30}},
                {"challenge": "http-01"}]"#,
        )
        .unwrap();
        assert_eq!(config.len(), 2);
        let unknown = serde_json::from_str::<SolverConfig>(r#"{"challenge":"http-01","x":1}"#);
        assert!(unknown.is_err());
    }
}
