//! PKCS#7 / CMS SignedData "certs-only" bundles: the certificates field, element by element.
//!
//! Walked with the bounded reader in [`crate::asn1`] rather than decoded into `cms` types:
//! BER indefinite lengths (common in bundles from Windows and Java) are accepted, and a bad
//! certificate in the bundle is rejected on its own instead of failing the whole bundle.

use crate::asn1::{self, Asn1Error, Children, Tag, Tlv};

/// id-signedData, 1.2.840.113549.1.7.2.
pub(crate) const SIGNED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02];

/// The `certificates` of a ContentInfo holding SignedData, each as its raw CertificateChoices
/// element (a SEQUENCE for an X.509 certificate, a context tag for the other kinds).
pub(crate) fn certificate_choices<'a>(content_info: &Tlv<'a>) -> Result<Vec<Tlv<'a>>, Asn1Error> {
    let mut fields = Children::of(content_info);
    let content_type = fields.expect(Tag::OID)?;
    if content_type.content != SIGNED_DATA {
        return Err(Asn1Error::Unexpected);
    }
    let explicit = fields.expect(Tag::context(0, true))?;
    let signed_data = asn1::single_child(&explicit)?;
    if signed_data.tag != Tag::SEQUENCE {
        return Err(Asn1Error::Unexpected);
    }
    let mut parts = Children::of(&signed_data);
    parts.expect(Tag::INTEGER)?; // version
    parts.expect(Tag::SET)?; // digestAlgorithms
    parts.expect(Tag::SEQUENCE)?; // encapContentInfo
    match parts.optional(Tag::context(0, true))? {
        Some(certificates) => Children::of(&certificates).collect_all(),
        None => Ok(Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asn1::encode;

    fn signed_data(certificates: Option<&[u8]>) -> Vec<u8> {
        let mut body = encode(0x02, &[1]);
        body.extend(encode(0x31, &[]));
        body.extend(encode(
            0x30,
            &encode(0x06, &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01]),
        ));
        if let Some(certs) = certificates {
            body.extend(encode(0xa0, certs));
        }
        body.extend(encode(0x31, &[]));
        let mut info = encode(0x06, SIGNED_DATA);
        info.extend(encode(0xa0, &encode(0x30, &body)));
        encode(0x30, &info)
    }

    #[test]
    fn lists_certificate_choices() {
        let mut certs = encode(0x30, &[0x05, 0x00]);
        certs.extend(encode(0xa1, &[]));
        let der = signed_data(Some(&certs));
        let (tlv, _) = asn1::read_tlv(&der).unwrap();
        let choices = certificate_choices(&tlv).unwrap();
        assert_eq!(choices.len(), 2);
        assert_eq!(choices[0].tag, Tag::SEQUENCE);
        assert_eq!(choices[1].tag, Tag::context(1, true));
    }

    #[test]
    fn empty_bundles_have_no_choices() {
        let der = signed_data(None);
        let (tlv, _) = asn1::read_tlv(&der).unwrap();
        assert!(certificate_choices(&tlv).unwrap().is_empty());
    }
}
