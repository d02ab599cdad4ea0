//! What a scan covers: targets (host names, addresses, CIDR ranges), ports with the protocol
//! spoken before TLS, and the ranges an administrator allowed. Parsing names the offending
//! item, so that a refusal says exactly which entry to fix.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

/// One entry of a scan's target list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A DNS name, resolved when the scan runs; it is also the SNI name sent.
    Host(String),
    /// One address.
    Address(IpAddr),
    /// A CIDR range; every address in it, network and broadcast included.
    Range(IpNet),
}

/// How a port speaks before the TLS handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// TLS from the first byte (HTTPS, LDAPS, SMTPS, ...).
    Tls,
    /// SMTP `STARTTLS` (RFC 3207).
    Smtp,
    /// IMAP `STARTTLS` (RFC 3501).
    Imap,
    /// POP3 `STLS` (RFC 2595).
    Pop3,
}

impl Protocol {
    /// The protocol a port speaks unless told: the well-known STARTTLS ports, else TLS.
    pub fn for_port(port: u16) -> Protocol {
        match port {
            25 | 587 => Protocol::Smtp,
            143 => Protocol::Imap,
            110 => Protocol::Pop3,
            _ => Protocol::Tls,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tls => "tls",
            Protocol::Smtp => "smtp",
            Protocol::Imap => "imap",
            Protocol::Pop3 => "pop3",
        }
    }

    fn parse(s: &str) -> Option<Protocol> {
        [Protocol::Tls, Protocol::Smtp, Protocol::Imap, Protocol::Pop3]
            .into_iter()
            .find(|p| p.as_str() == s)
    }
}

/// A port to try and how to speak on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Port {
    pub number: u16,
    pub protocol: Protocol,
}

/// Why an entry of a scan definition was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{item:?}: {reason}")]
pub struct TargetError {
    /// The entry as given.
    pub item: String,
    /// What is wrong with it.
    pub reason: String,
}

fn refuse(item: &str, reason: impl Into<String>) -> TargetError {
    TargetError { item: item.to_string(), reason: reason.into() }
}

impl FromStr for Target {
    type Err = TargetError;

    fn from_str(item: &str) -> Result<Target, TargetError> {
        let s = item.trim();
        if s.is_empty() {
            return Err(refuse(item, "an empty target"));
        }
        if s.contains('/') {
            let net = IpNet::from_str(s).map_err(|_| {
                refuse(item, "not a CIDR range (e.g. 10.0.0.0/24 or 2001:db8::/120)")
            })?;
            if net.trunc() != net {
                return Err(refuse(
                    item,
                    format!("host bits are set: the range is {}", net.trunc()),
                ));
            }
            return Ok(Target::Range(net));
        }
        let bare = s.strip_prefix('[').and_then(|s| s.strip_suffix(']')).unwrap_or(s);
        if let Ok(ip) = IpAddr::from_str(bare) {
            return Ok(Target::Address(ip));
        }
        if is_dns_name(s) {
            return Ok(Target::Host(s.trim_end_matches('.').to_ascii_lowercase()));
        }
        Err(refuse(item, "not a host name, an IP address or a CIDR range"))
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Host(h) => f.write_str(h),
            Target::Address(a) => write!(f, "{a}"),
            Target::Range(n) => write!(f, "{n}"),
        }
    }
}

/// Whether `s` is a DNS name (LDH labels of 1-63 characters, 253 in all, not all digits).
pub fn is_dns_name(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
        // "10.0.0" is a typo of an address, not a name.
        && !s.split('.').all(|label| label.bytes().all(|b| b.is_ascii_digit()))
}

/// Parses a port list: `443`, `8000-8010`, `2525/smtp`, separated by commas or spaces. Each
/// port once, in order; a port without a protocol gets [`Protocol::for_port`].
pub fn parse_ports(list: &str) -> Result<Vec<Port>, TargetError> {
    let mut ports = BTreeSet::new();
    for item in list.split([',', ' ']).map(str::trim).filter(|s| !s.is_empty()) {
        let (range, protocol) = match item.split_once('/') {
            Some((range, p)) => {
                let protocol = Protocol::parse(p)
                    .ok_or_else(|| refuse(item, "the protocol is one of tls, smtp, imap, pop3"))?;
                (range, Some(protocol))
            }
            None => (item, None),
        };
        let number = |s: &str| {
            s.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| refuse(item, "a port is a number from 1 to 65535"))
        };
        let (first, last) = match range.split_once('-') {
            Some((a, b)) => (number(a)?, number(b)?),
            None => (number(range)?, number(range)?),
        };
        if first > last {
            return Err(refuse(item, "a range goes from the lower port to the higher"));
        }
        for n in first..=last {
            ports.insert(Port { number: n, protocol: protocol.unwrap_or(Protocol::for_port(n)) });
        }
    }
    if ports.is_empty() {
        return Err(refuse(list, "no port given"));
    }
    Ok(ports.into_iter().collect())
}

/// The ranges a scan may reach, and the largest range one target may name.
#[derive(Debug, Clone)]
pub struct AllowList {
    ranges: Vec<IpNet>,
    max_range_addresses: u64,
}

/// Addresses a scan never reaches unless an allowed range is itself inside them: a broad
/// allowance (`0.0.0.0/0`) must not open the host's own services or its link.
fn is_sensitive(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_link_local(),
        IpAddr::V6(v6) => v6.is_loopback() || v6.is_unicast_link_local(),
    }
}

/// Addresses that are never a host to connect to.
fn is_unusable(ip: IpAddr) -> bool {
    ip.is_unspecified() || ip.is_multicast() || matches!(ip, IpAddr::V4(v4) if v4.is_broadcast())
}

impl AllowList {
    /// Parses the configured ranges; an entry that is not a CIDR range or an address is an
    /// error naming it.
    pub fn new(ranges: &[String], max_range_addresses: u64) -> Result<AllowList, TargetError> {
        let ranges = ranges
            .iter()
            .map(|r| match Target::from_str(r)? {
                Target::Range(net) => Ok(net),
                Target::Address(ip) => Ok(IpNet::from(ip)),
                Target::Host(_) => Err(refuse(r, "an allowed range is a CIDR range or an address")),
            })
            .collect::<Result<_, _>>()?;
        Ok(AllowList { ranges, max_range_addresses })
    }

    /// Whether a scan may connect to `ip`.
    pub fn allows(&self, ip: IpAddr) -> bool {
        if is_unusable(ip) {
            return false;
        }
        let sensitive = is_sensitive(ip);
        self.ranges
            .iter()
            .any(|net| net.contains(&ip) && (!sensitive || is_sensitive(net.network())))
    }

    /// Checks one target as a scan definition is stored: ranges and addresses must be allowed
    /// and not too large (host names are checked when they are resolved, since DNS changes).
    pub fn check(&self, target: &Target) -> Result<(), TargetError> {
        let item = target.to_string();
        if self.ranges.is_empty() {
            return Err(refuse(
                &item,
                "no range is allowed for discovery: an administrator lists them in \
                 discovery.allowed_ranges",
            ));
        }
        match target {
            Target::Host(_) => Ok(()),
            Target::Address(ip) if self.allows(*ip) => Ok(()),
            Target::Address(ip) => Err(self.outside(&item, *ip)),
            Target::Range(net) => {
                let size = range_size(net);
                if size > self.max_range_addresses {
                    return Err(refuse(
                        &item,
                        format!(
                            "the range holds {size} addresses; one target may hold at most {} \
                             (discovery.max_range_addresses): split it",
                            self.max_range_addresses
                        ),
                    ));
                }
                let inside = self.ranges.iter().any(|allowed| {
                    allowed.contains(net)
                        && (!is_sensitive(net.network()) || is_sensitive(allowed.network()))
                });
                if inside { Ok(()) } else { Err(self.outside(&item, net.network())) }
            }
        }
    }

    fn outside(&self, item: &str, ip: IpAddr) -> TargetError {
        let why = if is_unusable(ip) {
            "an unspecified, multicast or broadcast address is never scanned".to_string()
        } else if is_sensitive(ip) {
            "loopback and link-local addresses are scanned only when discovery.allowed_ranges \
             lists them itself"
                .to_string()
        } else {
            format!(
                "outside the ranges allowed for discovery ({})",
                self.ranges.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
            )
        };
        refuse(item, why)
    }
}

/// Number of addresses in a range (saturating for IPv6).
pub fn range_size(net: &IpNet) -> u64 {
    let host_bits = u32::from(net.max_prefix_len() - net.prefix_len());
    1u64.checked_shl(host_bits).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_name_what_is_wrong() {
        assert_eq!("example.com".parse(), Ok(Target::Host("example.com".into())));
        assert_eq!("[::1]".parse(), Ok(Target::Address("::1".parse().unwrap())));
        assert_eq!("10.1.0.0/24".parse(), Ok(Target::Range("10.1.0.0/24".parse().unwrap())));
        let err = "10.1.0.5/24".parse::<Target>().unwrap_err();
        assert!(err.reason.contains("10.1.0.0/24"), "{err}");
        assert!("10.0.0".parse::<Target>().is_err());
        assert!("bad name!".parse::<Target>().is_err());
        assert!("10.0.0.0/33".parse::<Target>().is_err());
    }

    #[test]
    fn ports_parse_with_ranges_and_protocols() {
        let ports = parse_ports("443, 8443-8444,2525/smtp 25").unwrap();
        let got: Vec<(u16, Protocol)> = ports.iter().map(|p| (p.number, p.protocol)).collect();
        assert_eq!(
            got,
            [
                (25, Protocol::Smtp),
                (443, Protocol::Tls),
                (2525, Protocol::Smtp),
                (8443, Protocol::Tls),
                (8444, Protocol::Tls)
            ]
        );
        for bad in ["", "0", "70000", "9-3", "443/http", "a-b"] {
            assert!(parse_ports(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn the_allow_list_keeps_loopback_and_large_ranges_out() {
        let broad = AllowList::new(&["0.0.0.0/0".into()], 65_536).unwrap();
        assert!(broad.allows("10.2.3.4".parse().unwrap()));
        assert!(!broad.allows("127.0.0.1".parse().unwrap()));
        assert!(!broad.allows("169.254.1.1".parse().unwrap()));
        assert!(!broad.allows("224.0.0.1".parse().unwrap()));
        let err = broad.check(&"10.0.0.0/8".parse().unwrap()).unwrap_err();
        assert!(err.reason.contains("16777216"), "{err}");
        assert!(broad.check(&"10.0.0.0/16".parse().unwrap()).is_ok());
        assert!(broad.check(&"127.0.0.0/24".parse().unwrap()).is_err());

        let loopback = AllowList::new(&["127.0.0.0/8".into()], 65_536).unwrap();
        assert!(loopback.allows("127.0.0.1".parse().unwrap()));
        assert!(loopback.check(&"127.0.1.0/24".parse().unwrap()).is_ok());
        let err = loopback.check(&"10.0.0.1".parse().unwrap()).unwrap_err();
        assert!(err.reason.contains("127.0.0.0/8"), "{err}");

        let none = AllowList::new(&[], 65_536).unwrap();
        let err = none.check(&"example.com".parse().unwrap()).unwrap_err();
        assert!(err.reason.contains("discovery.allowed_ranges"), "{err}");
    }
}
