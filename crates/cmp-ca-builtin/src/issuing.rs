//! The loaded issuing CA: its signing key ready in an rcgen [`Issuer`], and everything derived
//! from its certificate once (validity, key identifier, OCSP hashes) so that signing a leaf,
//! a CRL or an OCSP response never re-parses the CA.

use cmp_ca::CaError;
use der::Decode;
use der::asn1::{Any, Null, ObjectIdentifier};
use rcgen::{
    CertificateParams, DnType, IsCa, Issuer, KeyIdMethod, KeyPair, PKCS_ECDSA_P256_SHA256,
    PKCS_ECDSA_P384_SHA384, PKCS_ED25519, PKCS_RSA_SHA256, PublicKeyData, SigningKey,
};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use time::{OffsetDateTime, UtcOffset};
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::ParsedExtension;

use crate::material::{CaMaterial, internal};

const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const ECDSA_WITH_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const SHA256_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// SHA-1 and SHA-256 of the issuing CA's name and key, as OCSP CertIDs carry them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IssuerHashes {
    /// Hash of the DER subject name.
    pub name_sha1: Vec<u8>,
    pub name_sha256: Vec<u8>,
    /// Hash of the subjectPublicKey BIT STRING value.
    pub key_sha1: Vec<u8>,
    pub key_sha256: Vec<u8>,
}

/// The issuing CA, ready to sign.
pub(crate) struct IssuingCa {
    /// Signs leaves and CRLs (and, through [`SigningKey`], OCSP responses).
    pub issuer: Issuer<'static, KeyPair>,
    pub root_der: Vec<u8>,
    pub issuing_der: Vec<u8>,
    /// The issuing CA certificate as x509-cert reads it (for OCSP responses' `certs`).
    pub issuing_cert: x509_cert::Certificate,
    /// The issuing CA's subject common name, for messages.
    pub common_name: String,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    /// How the authority key identifier of CRLs is made (the CA's own subject key identifier).
    pub key_id: KeyIdMethod,
    pub hashes: IssuerHashes,
    /// The signature AlgorithmIdentifier of the CA key, for OCSP responses.
    pub signature_algorithm: AlgorithmIdentifierOwned,
}

impl IssuingCa {
    /// Loads and cross-checks the material: the issuing CA is signed by the root, its key
    /// matches its certificate, and a probe certificate signed with it names the CA exactly
    /// as its certificate does and verifies.
    pub fn load(material: &CaMaterial) -> Result<IssuingCa, CaError> {
        let root = parse(&material.root_der, "root")?;
        let issuing = parse(&material.issuing_der, "issuing CA")?;
        issuing.verify_signature(Some(root.public_key())).map_err(|_| {
            CaError::Internal("the issuing CA certificate is not signed by the root".into())
        })?;
        let key = KeyPair::try_from(material.issuing_key_pkcs8.as_slice())
            .map_err(|_| CaError::Internal("the issuing CA key cannot be read".into()))?;
        let key_bits = issuing.public_key().subject_public_key.data.as_ref();
        if key.der_bytes() != key_bits {
            return Err(CaError::Internal(
                "the issuing CA key does not match the issuing CA certificate".into(),
            ));
        }
        let signature_algorithm = signature_algorithm(&key)?;
        let issuer = Issuer::from_ca_cert_der(&material.issuing_der.as_slice().into(), key)
            .map_err(internal("load the issuing CA certificate"))?;
        let issuing_cert =
            x509_cert::Certificate::from_der(&material.issuing_der).map_err(|e| {
                CaError::Internal(format!("the issuing CA certificate cannot be decoded: {e}"))
            })?;
        let subject = issuing.subject().as_raw();
        let ca = IssuingCa {
            issuer,
            root_der: material.root_der.clone(),
            issuing_der: material.issuing_der.clone(),
            issuing_cert,
            common_name: issuing
                .subject()
                .iter_common_name()
                .last()
                .and_then(|cn| cn.as_str().ok())
                .unwrap_or("issuing CA")
                .to_owned(),
            not_before: utc(issuing.validity().not_before.to_datetime()),
            not_after: utc(issuing.validity().not_after.to_datetime()),
            key_id: subject_key_id(&issuing)
                .map_or(KeyIdMethod::Sha256, |id| KeyIdMethod::PreSpecified(id.to_vec())),
            hashes: IssuerHashes {
                name_sha1: Sha1::digest(subject).to_vec(),
                name_sha256: Sha256::digest(subject).to_vec(),
                key_sha1: Sha1::digest(key_bits).to_vec(),
                key_sha256: Sha256::digest(key_bits).to_vec(),
            },
            signature_algorithm,
        };
        ca.self_test(subject, issuing.public_key())?;
        Ok(ca)
    }

    /// Signs `message` with the issuing CA key.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, CaError> {
        self.issuer.key().sign(message).map_err(internal("sign with the issuing CA key"))
    }

    /// Signs one probe certificate and checks it the way a verifier would: rcgen must write
    /// the issuer name byte for byte as the CA certificate's subject (RFC 5280 name chaining),
    /// and the signature must verify with the CA's public key.
    fn self_test(
        &self,
        subject: &[u8],
        public_key: &x509_parser::x509::SubjectPublicKeyInfo<'_>,
    ) -> Result<(), CaError> {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, "CMP builtin CA self-test");
        params.is_ca = IsCa::ExplicitNoCa;
        params.not_before = self.not_before;
        params.not_after = self.not_before;
        let probe =
            params.signed_by(self.issuer.key(), &self.issuer).map_err(internal("self-test"))?;
        let (_, parsed) = x509_parser::parse_x509_certificate(probe.der())
            .map_err(|e| CaError::Internal(format!("self-test certificate unreadable: {e}")))?;
        if parsed.issuer().as_raw() != subject {
            return Err(CaError::Internal(
                "self-test: the issuing CA's name does not survive re-encoding".into(),
            ));
        }
        parsed.verify_signature(Some(public_key)).map_err(|_| {
            CaError::Internal("self-test: a signature by the issuing CA does not verify".into())
        })
    }
}

fn parse<'a>(der: &'a [u8], which: &str) -> Result<X509Certificate<'a>, CaError> {
    match x509_parser::parse_x509_certificate(der) {
        Ok(([], cert)) => Ok(cert),
        _ => Err(CaError::Internal(format!("the {which} certificate cannot be read"))),
    }
}

fn subject_key_id<'a>(cert: &'a X509Certificate<'_>) -> Option<&'a [u8]> {
    cert.iter_extensions().find_map(|extension| match extension.parsed_extension() {
        ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0),
        _ => None,
    })
}

fn utc(time: OffsetDateTime) -> OffsetDateTime {
    time.to_offset(UtcOffset::UTC)
}

/// The AlgorithmIdentifier of the signatures rcgen makes with this key (rcgen keeps its own
/// private): ECDSA with the curve's hash, PKCS#1 v1.5 with SHA-256 (NULL parameters), Ed25519.
fn signature_algorithm(key: &KeyPair) -> Result<AlgorithmIdentifierOwned, CaError> {
    let algorithm = key.algorithm();
    let (oid, parameters) = if algorithm == &PKCS_ECDSA_P256_SHA256 {
        (ECDSA_WITH_SHA256, None)
    } else if algorithm == &PKCS_ECDSA_P384_SHA384 {
        (ECDSA_WITH_SHA384, None)
    } else if algorithm == &PKCS_RSA_SHA256 {
        (SHA256_WITH_RSA, Some(Any::from(Null)))
    } else if algorithm == &PKCS_ED25519 {
        (ED25519, None)
    } else {
        return Err(CaError::Internal(format!(
            "the issuing CA key type ({algorithm:?}) is not supported"
        )));
    };
    Ok(AlgorithmIdentifierOwned { oid, parameters })
}
