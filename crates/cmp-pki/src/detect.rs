//! Recognises what a DER SEQUENCE is from its shape alone, so that a rejection can say what
//! was given (a CSR, a private key, a CRL, ...) and not only what it is not.

use crate::asn1::{self, Children, Tag, Tlv};
use crate::pkcs7;
use crate::pkcs12;

/// What a top-level DER SEQUENCE looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `SEQUENCE { tbs SEQUENCE, algorithm SEQUENCE, signature BIT STRING }` (not CSR/CRL).
    Certificate,
    /// A ContentInfo holding SignedData.
    Pkcs7,
    /// A ContentInfo of another type (enveloped data, plain data, ...).
    OtherCms,
    /// A PFX, version 3.
    Pkcs12,
    /// A PKCS#10 certification request.
    Csr,
    /// A certificate revocation list.
    Crl,
    /// PKCS#8 (plain or encrypted), PKCS#1 RSA, SEC1 EC or DSA private key.
    PrivateKey,
    /// A bare SubjectPublicKeyInfo.
    PublicKey,
    /// None of the above.
    Unknown,
}

/// Classifies a SEQUENCE. Order: certificate, PKCS#7, PKCS#12, then the rest.
pub(crate) fn classify(sequence: &Tlv<'_>) -> Kind {
    let Ok(children) = Children::of(sequence).collect_all() else {
        return Kind::Unknown;
    };
    let tags: Vec<Tag> = children.iter().map(|c| c.tag).collect();
    match tags.as_slice() {
        [Tag::SEQUENCE, Tag::SEQUENCE, Tag::BIT_STRING] => signed_kind(&children[0]),
        [Tag::OID, ctx] if *ctx == Tag::context(0, true) => {
            if children[0].content == pkcs7::SIGNED_DATA { Kind::Pkcs7 } else { Kind::OtherCms }
        }
        _ if pkcs12::is_pfx(sequence) => Kind::Pkcs12,
        _ if is_private_key(&children) => Kind::PrivateKey,
        [Tag::SEQUENCE, Tag::BIT_STRING] => Kind::PublicKey,
        _ => Kind::Unknown,
    }
}

/// Certificates, CSRs and CRLs share the outer shape; the signed part tells them apart.
fn signed_kind(tbs: &Tlv<'_>) -> Kind {
    let Ok(fields) = Children::of(tbs).collect_all() else {
        return Kind::Certificate;
    };
    let tags: Vec<Tag> = fields.iter().map(|f| f.tag).collect();
    let is_time = |t: &Tag| t.is_universal(23) || t.is_universal(24);
    match tags.as_slice() {
        [Tag::INTEGER, Tag::SEQUENCE, Tag::SEQUENCE, attrs] if *attrs == Tag::context(0, true) => {
            Kind::Csr
        }
        _ if tags.iter().any(is_time) => Kind::Crl,
        _ => Kind::Certificate,
    }
}

fn is_private_key(children: &[Tlv<'_>]) -> bool {
    let version =
        children.first().filter(|c| c.tag == Tag::INTEGER).and_then(|v| asn1::small_uint(v).ok());
    let tags: Vec<Tag> = children.iter().map(|c| c.tag).collect();
    match (version, tags.as_slice()) {
        // PKCS#8 PrivateKeyInfo / OneAsymmetricKey
        (Some(0 | 1), [_, Tag::SEQUENCE, Tag::OCTET_STRING, ..]) => true,
        // SEC1 ECPrivateKey
        (Some(1), [_, Tag::OCTET_STRING, ..]) => true,
        // PKCS#1 RSAPrivateKey (9 integers) or OpenSSL's DSA key (6 integers)
        (Some(0), [_, ..]) => tags.len() >= 6 && tags.iter().all(|t| *t == Tag::INTEGER),
        // EncryptedPrivateKeyInfo
        (None, [Tag::SEQUENCE, Tag::OCTET_STRING]) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asn1::encode;

    fn kind_of(parts: &[Vec<u8>]) -> Kind {
        let der = encode(0x30, &parts.concat());
        let (tlv, _) = asn1::read_tlv(&der).unwrap();
        classify(&tlv)
    }

    #[test]
    fn recognises_keys() {
        let int = |v: u8| encode(0x02, &[v]);
        let seq = encode(0x30, &[]);
        let oct = encode(0x04, &[1]);
        assert_eq!(kind_of(&[int(0), seq.clone(), oct.clone()]), Kind::PrivateKey);
        assert_eq!(kind_of(&[int(1), oct.clone()]), Kind::PrivateKey);
        assert_eq!(kind_of(&[int(0), int(5), int(5), int(5), int(5), int(5)]), Kind::PrivateKey);
        assert_eq!(kind_of(&[seq.clone(), oct.clone()]), Kind::PrivateKey);
        assert_eq!(kind_of(&[seq, encode(0x03, &[0])]), Kind::PublicKey);
        assert_eq!(kind_of(&[int(7)]), Kind::Unknown);
    }

    #[test]
    fn tells_signed_structures_apart() {
        let signed = |tbs: Vec<u8>| [encode(0x30, &tbs), encode(0x30, &[]), encode(0x03, &[0])];
        let csr =
            [encode(0x02, &[0]), encode(0x30, &[]), encode(0x30, &[]), encode(0xa0, &[])].concat();
        assert_eq!(kind_of(&signed(csr)), Kind::Csr);
        let crl = [encode(0x30, &[]), encode(0x30, &[]), encode(0x17, b"250101000000Z")].concat();
        assert_eq!(kind_of(&signed(crl)), Kind::Crl);
        assert_eq!(kind_of(&signed(encode(0x02, &[1]))), Kind::Certificate);
    }
}
