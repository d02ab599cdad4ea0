//! Building a [`RequestSpec`] from what a caller asked (names checked, filled from the CSR),
//! and what the CA and an agent's CSR are held to.

use std::net::IpAddr;

use cmp_api::Subject;
use cmp_ca::{Profile, Usage};
use cmp_domain::{KeyInfo, KeySource, RequestSpec};
use cmp_pki::CsrInfo;
use cmp_pki::keygen::KeySpec;

use super::error::{IssueError, IssueResult};

/// Longest lifetime anyone may ask for, whatever the policy.
const MAX_VALIDITY_DAYS: i64 = 3650;

/// What the CA is asked to sign for `spec`.
pub fn profile(spec: &RequestSpec) -> Profile {
    Profile {
        common_name: spec.common_name.clone(),
        dns_names: spec.dns_names.clone(),
        ip_addresses: spec.ip_addresses.clone(),
        usages: vec![Usage::ServerAuth],
        validity_secs: spec.validity_secs(),
    }
}

/// A DNS name as certificates carry it: LDH labels, optionally a leading `*.`.
fn check_dns_name(name: &str) -> IssueResult<String> {
    let lower = name.trim_end_matches('.').to_ascii_lowercase();
    let body = lower.strip_prefix("*.").unwrap_or(&lower);
    let labels_ok = !body.is_empty()
        && body.len() <= 253
        && body.split('.').all(|l| {
            (1..=63).contains(&l.len())
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    if !labels_ok {
        return Err(IssueError::bad_field(
            "dns_names",
            format!("{name:?} is not a valid DNS name"),
        ));
    }
    Ok(lower)
}

/// Validates what the caller asked, filling names from the CSR when none are given.
pub fn build(
    subject: &Subject,
    csr: Option<&CsrInfo>,
    key_type: Option<KeySpec>,
    default_validity_days: i64,
) -> IssueResult<RequestSpec> {
    let mut dns_names = subject.dns_names.clone();
    let mut ip_addresses: Vec<IpAddr> = subject
        .ip_addresses
        .iter()
        .map(|ip| {
            ip.parse().map_err(|_| {
                IssueError::bad_field("ip_addresses", format!("{ip:?} is not an IP address"))
            })
        })
        .collect::<IssueResult<_>>()?;
    let mut common_name = subject.common_name.clone();
    if let Some(csr) =
        csr.filter(|_| dns_names.is_empty() && ip_addresses.is_empty() && common_name.is_none())
    {
        dns_names = csr.dns_names.clone();
        ip_addresses = csr.ip_addresses.clone();
        common_name = csr.common_name.clone();
    }
    let dns_names: Vec<String> =
        dns_names.iter().map(|n| check_dns_name(n)).collect::<IssueResult<_>>()?;
    if let Some(cn) = &common_name
        && (cn.is_empty() || cn.len() > 64 || cn.chars().any(char::is_control))
    {
        return Err(IssueError::bad_field("common_name", "1-64 printable characters"));
    }
    if dns_names.is_empty() && ip_addresses.is_empty() && common_name.is_none() {
        return Err(IssueError::BadRequest(
            "no names: give dns_names, ip_addresses or common_name (or a CSR that has them)".into(),
        ));
    }
    if dns_names.len() + ip_addresses.len() > 100 {
        return Err(IssueError::bad_field("dns_names", "at most 100 names"));
    }
    if let Some(solver) = &subject.acme_solver
        && !(1..=64).contains(&solver.len())
    {
        return Err(IssueError::bad_field("acme_solver", "the id of a solver, 1-64 characters"));
    }
    let validity_days = subject.validity_days.unwrap_or(default_validity_days);
    if !(1..=MAX_VALIDITY_DAYS).contains(&validity_days) {
        return Err(IssueError::bad_field(
            "validity_days",
            format!("between 1 and {MAX_VALIDITY_DAYS}"),
        ));
    }
    Ok(RequestSpec {
        common_name,
        dns_names,
        ip_addresses,
        validity_days,
        key_source: if key_type.is_some() { KeySource::Server } else { KeySource::Csr },
        key_type: key_type.map(|k| k.as_str().to_string()),
        renew_before: None,
        acme_solver: subject.acme_solver.clone(),
        reason: None,
        serial: None,
    })
}

/// An agent's CSR for a managed certificate whose key it makes: the names must be the managed
/// certificate's (ACME CAs sign the CSR as it is), and the key of the type it asks for.
pub fn check_agent_csr(spec: &RequestSpec, csr: &CsrInfo) -> IssueResult<()> {
    let sorted = |names: &[String]| {
        let mut names: Vec<String> = names.iter().map(|n| n.to_ascii_lowercase()).collect();
        names.sort();
        names
    };
    let mut asked_ips = spec.ip_addresses.clone();
    let mut csr_ips = csr.ip_addresses.clone();
    asked_ips.sort();
    csr_ips.sort();
    if sorted(&spec.dns_names) != sorted(&csr.dns_names)
        || asked_ips != csr_ips
        || spec.common_name != csr.common_name
    {
        return Err(IssueError::InvalidCsr(format!(
            "it names {:?} {:?} {:?}; this managed certificate names {:?} {:?} {:?}",
            csr.common_name,
            csr.dns_names,
            csr.ip_addresses,
            spec.common_name,
            spec.dns_names,
            spec.ip_addresses
        )));
    }
    if let Some(key_type) = &spec.key_type
        && let Ok(expected) = KeySpec::parse(key_type)
        && key_info_of(expected) != csr.key
    {
        return Err(IssueError::InvalidCsr(format!(
            "its key is not of the managed certificate's key type {key_type}"
        )));
    }
    Ok(())
}

/// The key a server-made key of this type will have, for the policy check.
pub fn key_info_of(spec: KeySpec) -> KeyInfo {
    use cmp_domain::KeyType;
    let (kind, bits, curve) = match spec {
        KeySpec::Rsa2048 => (KeyType::Rsa, Some(2048), None),
        KeySpec::Rsa3072 => (KeyType::Rsa, Some(3072), None),
        KeySpec::Rsa4096 => (KeyType::Rsa, Some(4096), None),
        KeySpec::EcdsaP256 => (KeyType::Ec, Some(256), Some("P-256".to_string())),
        KeySpec::EcdsaP384 => (KeyType::Ec, Some(384), Some("P-384".to_string())),
        KeySpec::Ed25519 => (KeyType::Ed25519, None, None),
    };
    KeyInfo { kind, bits, curve }
}
