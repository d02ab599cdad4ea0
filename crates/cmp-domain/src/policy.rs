//! Per-owner issuance policy and the check of a request against it.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{KeyInfo, KeyType};

/// What an owner's certificates may look like.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Name rules: `api.example.com` (exactly), `*.example.com` (one label under it, and the
    /// wildcard name itself), `.example.com` (any depth under it). IP addresses are allowed
    /// only when listed exactly. An empty list allows every name.
    #[serde(default)]
    pub allowed_names: Vec<String>,
    /// Allowed key types with their minimum sizes. Empty: RSA >= 2048, EC >= 256, Ed25519.
    #[serde(default)]
    pub allowed_keys: Vec<KeyRule>,
    /// Longest lifetime, in days.
    #[serde(default = "default_max_validity_days")]
    pub max_validity_days: i64,
    /// Whether the `security` role must approve each request.
    #[serde(default)]
    pub require_approval: bool,
}

fn default_max_validity_days() -> i64 {
    397
}

impl Default for Policy {
    /// The policy of an owner that has none: any name, modern keys, 397 days, no approval.
    fn default() -> Self {
        Policy {
            allowed_names: Vec::new(),
            allowed_keys: Vec::new(),
            max_validity_days: default_max_validity_days(),
            require_approval: false,
        }
    }
}

/// One allowed key type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyRule {
    #[serde(rename = "type")]
    pub kind: KeyType,
    /// Minimum size in bits (RSA modulus, EC field size); none for Ed25519.
    #[serde(default)]
    pub min_bits: Option<u32>,
}

/// What a request asks for, as the policy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ask<'a> {
    pub common_name: Option<&'a str>,
    pub dns_names: &'a [String],
    pub ip_addresses: &'a [IpAddr],
    pub key: &'a KeyInfo,
    pub validity_secs: i64,
}

/// The rule a request broke, and a sentence saying how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Violation {
    /// `allowed_names`, `allowed_keys` or `max_validity_days`.
    pub rule: String,
    pub message: String,
}

impl Violation {
    fn new(rule: &str, message: String) -> Self {
        Violation { rule: rule.into(), message }
    }
}

fn default_keys() -> Vec<KeyRule> {
    vec![
        KeyRule { kind: KeyType::Rsa, min_bits: Some(2048) },
        KeyRule { kind: KeyType::Ec, min_bits: Some(256) },
        KeyRule { kind: KeyType::Ed25519, min_bits: None },
    ]
}

impl Policy {
    /// Checks a request; the first broken rule, if any. Names are compared case-insensitively.
    pub fn check(&self, ask: &Ask<'_>) -> Result<(), Violation> {
        if !self.allowed_names.is_empty() {
            let names = ask.common_name.into_iter().chain(ask.dns_names.iter().map(String::as_str));
            for name in names {
                if !self.allows_name(name) {
                    return Err(Violation::new(
                        "allowed_names",
                        format!("{name:?} matches none of the owner's allowed names"),
                    ));
                }
            }
            for ip in ask.ip_addresses {
                if !self.allowed_names.iter().any(|rule| rule.parse::<IpAddr>().ok() == Some(*ip)) {
                    return Err(Violation::new(
                        "allowed_names",
                        format!("IP address {ip} is not among the owner's allowed names"),
                    ));
                }
            }
        }
        self.check_key(ask.key)?;
        let max_secs = self.max_validity_days.saturating_mul(86_400);
        if ask.validity_secs > max_secs {
            return Err(Violation::new(
                "max_validity_days",
                format!(
                    "a lifetime of {} days is over the maximum of {} days",
                    (ask.validity_secs + 86_399) / 86_400,
                    self.max_validity_days
                ),
            ));
        }
        Ok(())
    }

    fn check_key(&self, key: &KeyInfo) -> Result<(), Violation> {
        let rules =
            if self.allowed_keys.is_empty() { default_keys() } else { self.allowed_keys.clone() };
        let Some(rule) = rules.iter().find(|r| r.kind == key.kind) else {
            let allowed: Vec<&str> = rules.iter().map(|r| r.kind.as_str()).collect();
            return Err(Violation::new(
                "allowed_keys",
                format!(
                    "{} keys are not allowed (allowed: {})",
                    key.kind.as_str(),
                    allowed.join(", ")
                ),
            ));
        };
        match (rule.min_bits, key.bits) {
            (Some(min), Some(bits)) if bits < min => Err(Violation::new(
                "allowed_keys",
                format!(
                    "a {bits}-bit {} key is under the minimum of {min} bits",
                    key.kind.as_str()
                ),
            )),
            (Some(min), None) => Err(Violation::new(
                "allowed_keys",
                format!("the key size is unknown; at least {min} bits are required"),
            )),
            _ => Ok(()),
        }
    }

    fn allows_name(&self, name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        self.allowed_names.iter().any(|rule| name_matches(&rule.to_ascii_lowercase(), &name))
    }
}

/// Whether one name rule admits a name (lowercase both): `name` exactly, `*.x` (one label
/// under x), `.x` (any depth under x).
pub fn name_matches(rule: &str, name: &str) -> bool {
    if let Some(suffix) = rule.strip_prefix('.') {
        // Any depth under the suffix, wildcards included.
        return name.strip_suffix(suffix).is_some_and(|head| head.ends_with('.') && head.len() > 1);
    }
    if let Some(parent) = rule.strip_prefix("*.") {
        if name == rule {
            return true;
        }
        return name
            .strip_suffix(parent)
            .and_then(|head| head.strip_suffix('.'))
            .is_some_and(|label| !label.is_empty() && !label.contains('.') && label != "*");
    }
    rule == name
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ec256() -> KeyInfo {
        KeyInfo { kind: KeyType::Ec, bits: Some(256), curve: Some("P-256".into()) }
    }

    fn ask<'a>(dns: &'a [String], key: &'a KeyInfo, days: i64) -> Ask<'a> {
        Ask {
            common_name: None,
            dns_names: dns,
            ip_addresses: &[],
            key,
            validity_secs: days * 86_400,
        }
    }

    #[test]
    fn name_rules() {
        assert!(name_matches("api.example.com", "api.example.com"));
        assert!(!name_matches("api.example.com", "www.example.com"));
        assert!(name_matches("*.example.com", "www.example.com"));
        assert!(name_matches("*.example.com", "*.example.com"));
        assert!(!name_matches("*.example.com", "a.b.example.com"));
        assert!(!name_matches("*.example.com", "example.com"));
        assert!(name_matches(".example.com", "a.b.example.com"));
        assert!(!name_matches(".example.com", "example.com"));
        assert!(!name_matches(".example.com", "badexample.com"));
    }

    #[test]
    fn violations_name_the_rule() {
        let policy = Policy {
            allowed_names: vec![".example.com".into(), "10.0.0.1".into()],
            allowed_keys: vec![KeyRule { kind: KeyType::Rsa, min_bits: Some(3072) }],
            max_validity_days: 90,
            require_approval: false,
        };
        let rsa2048 = KeyInfo { kind: KeyType::Rsa, bits: Some(2048), curve: None };
        let rsa4096 = KeyInfo { kind: KeyType::Rsa, bits: Some(4096), curve: None };
        let good = vec!["a.example.com".to_string()];
        let bad = vec!["a.example.org".to_string()];
        assert_eq!(policy.check(&ask(&good, &rsa4096, 90)), Ok(()));
        assert_eq!(policy.check(&ask(&bad, &rsa4096, 90)).unwrap_err().rule, "allowed_names");
        assert_eq!(policy.check(&ask(&good, &rsa2048, 90)).unwrap_err().rule, "allowed_keys");
        assert_eq!(policy.check(&ask(&good, &ec256(), 90)).unwrap_err().rule, "allowed_keys");
        let too_long = policy.check(&ask(&good, &rsa4096, 91)).unwrap_err();
        assert_eq!(too_long.rule, "max_validity_days");
        assert!(too_long.message.contains("91 days"), "{}", too_long.message);
        let ip: [IpAddr; 1] = ["10.0.0.2".parse().unwrap()];
        let with_ip = Ask { ip_addresses: &ip, ..ask(&good, &rsa4096, 1) };
        assert_eq!(policy.check(&with_ip).unwrap_err().rule, "allowed_names");
    }

    #[test]
    fn default_policy_allows_modern_keys_only() {
        let policy = Policy::default();
        let names = vec!["anything.test".to_string()];
        assert!(policy.check(&ask(&names, &ec256(), 397)).is_ok());
        let rsa1024 = KeyInfo { kind: KeyType::Rsa, bits: Some(1024), curve: None };
        assert!(policy.check(&ask(&names, &rsa1024, 30)).is_err());
        assert!(policy.check(&ask(&names, &ec256(), 398)).is_err());
    }
}
