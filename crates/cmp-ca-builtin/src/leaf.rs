//! Leaf certificates: the requested key from a verified CSR, and everything else from the
//! profile (names, usages, lifetime) plus the CA's CRL and OCSP/caIssuers URLs.

use std::net::IpAddr;

use cmp_ca::{CaError, Profile, Usage};
use cmp_domain::KeyType;
use cmp_pki::CsrInfo;
use der::Encode;
use der::asn1::{Ia5String, ObjectIdentifier};
use rcgen::{
    CertificateParams, CrlDistributionPoint, CustomExtension, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384,
    PKCS_ED25519, PKCS_RSA_SHA256, PublicKeyData, SanType, SerialNumber, SignatureAlgorithm,
};
use time::OffsetDateTime;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{AccessDescription, AuthorityInfoAccessSyntax};
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

/// id-pe-authorityInfoAccess (RFC 5280 4.2.2.1).
const AUTHORITY_INFO_ACCESS: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 1, 1];
const ID_AD_OCSP: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1");
const ID_AD_CA_ISSUERS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.2");
/// Smallest RSA key this CA signs.
const RSA_MIN_BITS: u32 = 2048;

/// Where relying parties find the CA's revocation information and certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LeafUrls {
    pub crl: String,
    pub ocsp: String,
    pub ca_issuers: String,
}

/// The extensions every leaf of this CA carries, encoded once.
#[derive(Debug, Clone)]
pub(crate) struct LeafTemplate {
    crl: CrlDistributionPoint,
    authority_info_access: CustomExtension,
}

impl LeafTemplate {
    pub fn new(urls: &LeafUrls) -> Result<LeafTemplate, CaError> {
        let uri = |url: &str| {
            Ia5String::new(url)
                .map(GeneralName::UniformResourceIdentifier)
                .map_err(|_| CaError::Internal(format!("the URL {url:?} is not ASCII (IA5String)")))
        };
        // rcgen has no AuthorityInfoAccess: x509-cert encodes it, rcgen attaches it.
        let access = AuthorityInfoAccessSyntax(vec![
            AccessDescription { access_method: ID_AD_OCSP, access_location: uri(&urls.ocsp)? },
            AccessDescription {
                access_method: ID_AD_CA_ISSUERS,
                access_location: uri(&urls.ca_issuers)?,
            },
        ]);
        let content = access.to_der().map_err(|e| {
            CaError::Internal(format!("cannot encode the authority information access: {e}"))
        })?;
        uri(&urls.crl)?;
        Ok(LeafTemplate {
            crl: CrlDistributionPoint { uris: vec![urls.crl.clone()] },
            authority_info_access: CustomExtension::from_oid_content(
                AUTHORITY_INFO_ACCESS,
                content,
            ),
        })
    }
}

/// The requested public key, in the form rcgen writes into the certificate.
pub(crate) struct CsrKey {
    /// The subjectPublicKey BIT STRING value.
    raw: Vec<u8>,
    algorithm: &'static SignatureAlgorithm,
    kind: KeyType,
}

impl PublicKeyData for CsrKey {
    fn der_bytes(&self) -> &[u8] {
        &self.raw
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.algorithm
    }
}

impl CsrKey {
    /// Accepts RSA of at least 2048 bits, EC P-256 and P-384, and Ed25519; refuses the rest.
    /// The key rcgen will write must be byte for byte the SubjectPublicKeyInfo of the CSR.
    pub fn from_csr(csr: &CsrInfo) -> Result<CsrKey, CaError> {
        let refuse = |why: String| Err(CaError::InvalidCsr(why));
        let algorithm = match (csr.key.kind, csr.key.bits, csr.key.curve.as_deref()) {
            (KeyType::Rsa, Some(bits), _) if bits >= RSA_MIN_BITS => &PKCS_RSA_SHA256,
            (KeyType::Rsa, bits, _) => {
                return refuse(format!(
                    "RSA keys need at least {RSA_MIN_BITS} bits; this one has {}",
                    bits.map_or("an unreadable size".into(), |b| b.to_string())
                ));
            }
            (KeyType::Ec, _, Some("P-256")) => &PKCS_ECDSA_P256_SHA256,
            (KeyType::Ec, _, Some("P-384")) => &PKCS_ECDSA_P384_SHA384,
            (KeyType::Ed25519, _, _) => &PKCS_ED25519,
            (kind, _, curve) => {
                return refuse(format!(
                    "{} keys{} are not signed by this CA (RSA, EC P-256/P-384 and Ed25519 are)",
                    kind.as_str(),
                    curve.map(|c| format!(" on {c}")).unwrap_or_default()
                ));
            }
        };
        let raw = match SubjectPublicKeyInfo::from_der(&csr.spki_der) {
            Ok((_, spki)) => spki.subject_public_key.data.to_vec(),
            Err(_) => return refuse("the public key cannot be read".into()),
        };
        let key = CsrKey { raw, algorithm, kind: csr.key.kind };
        if key.subject_public_key_info() != csr.spki_der {
            // e.g. an RSA key labelled id-RSASSA-PSS, or EC parameters encoded another way.
            return refuse("the public key is encoded in a form this CA does not sign".into());
        }
        Ok(key)
    }
}

/// The leaf's parameters: subject CN if any, DNS and IP SANs, EKUs (serverAuth when none),
/// key usage digitalSignature (+ keyEncipherment for RSA), CA:FALSE, SKI/AKI, the CRL
/// distribution point and authority information access.
pub(crate) fn leaf_params(
    profile: &Profile,
    key: &CsrKey,
    serial: &[u8],
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    template: &LeafTemplate,
) -> Result<CertificateParams, CaError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    if let Some(common_name) = &profile.common_name {
        if common_name.is_empty() {
            return Err(CaError::Refused("the profile's common name is empty".into()));
        }
        params.distinguished_name.push(DnType::CommonName, common_name.as_str());
    }
    for dns in &profile.dns_names {
        let name = dns.as_str().try_into().map_err(|_| {
            CaError::Refused(format!("the DNS name {dns:?} is not ASCII (use its A-label form)"))
        })?;
        params.subject_alt_names.push(SanType::DnsName(name));
    }
    params.subject_alt_names.extend(profile.ip_addresses.iter().copied().map(ip_san));
    if profile.common_name.is_none() && params.subject_alt_names.is_empty() {
        return Err(CaError::Refused(
            "the profile names nothing: give a common name, a DNS name or an IP address".into(),
        ));
    }
    let usages = if profile.usages.is_empty() { &[Usage::ServerAuth][..] } else { &profile.usages };
    for usage in usages {
        params.insert_extended_key_usage(match usage {
            Usage::ServerAuth => ExtendedKeyUsagePurpose::ServerAuth,
            Usage::ClientAuth => ExtendedKeyUsagePurpose::ClientAuth,
        });
    }
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    if key.kind == KeyType::Rsa {
        params.key_usages.push(KeyUsagePurpose::KeyEncipherment);
    }
    params.is_ca = IsCa::ExplicitNoCa;
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(SerialNumber::from_slice(serial));
    params.not_before = not_before;
    params.not_after = not_after;
    params.crl_distribution_points = vec![template.crl.clone()];
    params.custom_extensions = vec![template.authority_info_access.clone()];
    Ok(params)
}

fn ip_san(ip: IpAddr) -> SanType {
    SanType::IpAddress(ip)
}
