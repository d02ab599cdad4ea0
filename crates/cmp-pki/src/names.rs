//! Distinguished names as RFC 4514 strings, byte-for-byte as
//! `openssl x509 -noout -subject -nameopt RFC2253` prints them.
//!
//! OpenSSL's rules, reproduced here: attributes in reverse order (also inside a multi-valued
//! RDN), `,` between RDNs and `+` inside one, OpenSSL short names (`CN`, `O`, `emailAddress`,
//! ...) and the dotted OID for types it does not know. Values of string types are printed
//! with `,+"\<>;` backslash-escaped, a leading `#` or space and a trailing space escaped, and
//! every control byte and every byte of a non-ASCII character's UTF-8 written as `\XX`
//! (RFC 4514 hexpair; e.g. `Ü` is `\C3\9C`). Values of unknown types, and of non-string
//! ASN.1 types, are written as `#` and the uppercase hex of their DER.

use crate::asn1::{self, Asn1Error, Children, Tag, Tlv};

/// One attribute of a name, in encoded order, with the index of the RDN holding it.
struct Attribute<'a> {
    rdn: usize,
    oid: &'a [u8],
    value: Tlv<'a>,
}

/// Formats a DER `Name` (the whole SEQUENCE) as an RFC 4514 string.
pub(crate) fn format_name(der: &[u8]) -> Result<String, Asn1Error> {
    let attributes = attributes(der)?;
    let mut out = String::new();
    let mut previous_rdn = None;
    for attribute in attributes.iter().rev() {
        match previous_rdn {
            Some(rdn) if rdn == attribute.rdn => out.push('+'),
            Some(_) => out.push(','),
            None => {}
        }
        previous_rdn = Some(attribute.rdn);
        format_attribute(attribute, &mut out);
    }
    Ok(out)
}

/// The last common name in the name (the most specific one), decoded to text.
pub(crate) fn common_name(der: &[u8]) -> Result<Option<String>, Asn1Error> {
    const CN: &[u8] = &[0x55, 0x04, 0x03];
    let attributes = attributes(der)?;
    Ok(attributes.iter().rev().find(|a| a.oid == CN).and_then(|a| decode_text(&a.value)))
}

fn attributes(der: &[u8]) -> Result<Vec<Attribute<'_>>, Asn1Error> {
    let (name, rest) = asn1::read_tlv(der)?;
    if name.tag != Tag::SEQUENCE || !rest.is_empty() {
        return Err(Asn1Error::Unexpected);
    }
    let mut out = Vec::new();
    let mut rdns = Children::of(&name);
    let mut rdn_index = 0;
    while let Some(rdn) = rdns.next_tlv()? {
        if rdn.tag != Tag::SET {
            return Err(Asn1Error::Unexpected);
        }
        let mut avas = Children::of(&rdn);
        while let Some(ava) = avas.next_tlv()? {
            if ava.tag != Tag::SEQUENCE {
                return Err(Asn1Error::Unexpected);
            }
            let mut parts = Children::of(&ava);
            let oid = parts.expect(Tag::OID)?;
            let value = parts.next_tlv()?.ok_or(Asn1Error::Unexpected)?;
            if parts.next_tlv()?.is_some() {
                return Err(Asn1Error::Unexpected);
            }
            out.push(Attribute { rdn: rdn_index, oid: oid.content, value });
        }
        rdn_index += 1;
    }
    Ok(out)
}

fn format_attribute(attribute: &Attribute<'_>, out: &mut String) {
    let short_name = short_name(attribute.oid);
    match short_name {
        Some(name) => out.push_str(name),
        None => out.push_str(
            &asn1::oid_to_string(attribute.oid).unwrap_or_else(|| hex::encode(attribute.oid)),
        ),
    }
    out.push('=');
    let chars = if short_name.is_some() { characters(&attribute.value) } else { None };
    match chars {
        Some(chars) => escape_value(&chars, out),
        None => {
            out.push('#');
            out.push_str(&hex::encode_upper(attribute.value.raw));
        }
    }
}

/// How OpenSSL reads a string type: the characters to print and whether each must be
/// converted to UTF-8 first. `None` for types OpenSSL dumps as hex.
struct Chars {
    values: Vec<u32>,
    /// UTF8String is printed byte by byte; the other types are converted to UTF-8.
    convert: bool,
}

fn characters(value: &Tlv<'_>) -> Option<Chars> {
    if value.tag.class != asn1::Class::Universal || value.tag.constructed {
        return None;
    }
    let bytes = value.content;
    let (values, convert) = match value.tag.number {
        // UTF8String: OpenSSL walks it one byte at a time.
        12 => (bytes.iter().map(|&b| u32::from(b)).collect(), false),
        // Numeric, Printable, T61, IA5, UTCTime, GeneralizedTime, Visible: one byte a character.
        18 | 19 | 20 | 22 | 23 | 24 | 26 => (bytes.iter().map(|&b| u32::from(b)).collect(), true),
        // UniversalString: UCS-4.
        28 if bytes.len().is_multiple_of(4) => (
            bytes.chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]])).collect(),
            true,
        ),
        // BMPString: UCS-2.
        30 if bytes.len().is_multiple_of(2) => (
            bytes.chunks_exact(2).map(|c| u32::from(u16::from_be_bytes([c[0], c[1]]))).collect(),
            true,
        ),
        _ => return None,
    };
    Some(Chars { values, convert })
}

/// Position of a character, which decides whether a space or `#` needs escaping.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Position {
    First,
    Middle,
    Last,
}

fn escape_value(chars: &Chars, out: &mut String) {
    let count = chars.values.len();
    for (index, &value) in chars.values.iter().enumerate() {
        // OpenSSL marks the last character as "last" even when it is also the first.
        let position = if index + 1 == count {
            Position::Last
        } else if index == 0 {
            Position::First
        } else {
            Position::Middle
        };
        if chars.convert {
            // Characters that cannot be UTF-8 (surrogates, > U+10FFFF) are dropped by OpenSSL.
            if let Some(c) = char::from_u32(value) {
                let mut buf = [0u8; 4];
                for &byte in c.encode_utf8(&mut buf).as_bytes() {
                    escape_byte(byte, position, out);
                }
            }
        } else {
            escape_byte(u8::try_from(value).unwrap_or(0xff), position, out);
        }
    }
}

fn escape_byte(byte: u8, position: Position, out: &mut String) {
    let needs_backslash = match byte {
        b'"' | b'+' | b',' | b';' | b'<' | b'>' | b'\\' => true,
        b' ' => position != Position::Middle,
        b'#' => position == Position::First,
        _ => false,
    };
    if needs_backslash {
        out.push('\\');
        out.push(char::from(byte));
    } else if !(0x20..0x7f).contains(&byte) {
        out.push('\\');
        out.push_str(&hex::encode_upper([byte]));
    } else {
        out.push(char::from(byte));
    }
}

/// A string value decoded to text for display (common name): UTF-8, BMP, UCS-4, and the
/// one-byte types read as Latin-1. `None` for non-string types.
fn decode_text(value: &Tlv<'_>) -> Option<String> {
    let chars = characters(value)?;
    if !chars.convert {
        return Some(String::from_utf8_lossy(value.content).into_owned());
    }
    Some(chars.values.iter().filter_map(|&v| char::from_u32(v)).collect())
}

/// OpenSSL's short name for an attribute type, by OID content octets.
fn short_name(oid: &[u8]) -> Option<&'static str> {
    let text = asn1::oid_to_string(oid)?;
    if let Some(arc) = text.strip_prefix("2.5.4.") {
        return x520_name(arc.parse().ok()?);
    }
    if let Some(arc) = text.strip_prefix("0.9.2342.19200300.100.1.") {
        return pilot_name(arc.parse().ok()?);
    }
    if let Some(arc) = text.strip_prefix("1.2.840.113549.1.9.") {
        return pkcs9_name(arc.parse().ok()?);
    }
    OTHER_NAMES.iter().find(|(o, _)| *o == text).map(|(_, name)| *name)
}

fn x520_name(arc: u32) -> Option<&'static str> {
    const NAMES: [&str; 55] = [
        "",
        "",
        "",
        "CN",
        "SN",
        "serialNumber",
        "C",
        "L",
        "ST",
        "street",
        "O",
        "OU",
        "title",
        "description",
        "searchGuide",
        "businessCategory",
        "postalAddress",
        "postalCode",
        "postOfficeBox",
        "physicalDeliveryOfficeName",
        "telephoneNumber",
        "telexNumber",
        "teletexTerminalIdentifier",
        "facsimileTelephoneNumber",
        "x121Address",
        "internationaliSDNNumber",
        "registeredAddress",
        "destinationIndicator",
        "preferredDeliveryMethod",
        "presentationAddress",
        "supportedApplicationContext",
        "member",
        "owner",
        "roleOccupant",
        "seeAlso",
        "userPassword",
        "userCertificate",
        "cACertificate",
        "authorityRevocationList",
        "certificateRevocationList",
        "crossCertificatePair",
        "name",
        "GN",
        "initials",
        "generationQualifier",
        "x500UniqueIdentifier",
        "dnQualifier",
        "enhancedSearchGuide",
        "protocolInformation",
        "distinguishedName",
        "uniqueMember",
        "houseIdentifier",
        "supportedAlgorithms",
        "deltaRevocationList",
        "dmdName",
    ];
    let name = match arc {
        65 => "pseudonym",
        72 => "role",
        97 => "organizationIdentifier",
        98 => "c3",
        99 => "n3",
        100 => "dnsName",
        _ => NAMES.get(usize::try_from(arc).ok()?).copied()?,
    };
    (!name.is_empty()).then_some(name)
}

fn pilot_name(arc: u32) -> Option<&'static str> {
    const NAMES: [&str; 57] = [
        "",
        "UID",
        "textEncodedORAddress",
        "mail",
        "info",
        "favouriteDrink",
        "roomNumber",
        "photo",
        "userClass",
        "host",
        "manager",
        "documentIdentifier",
        "documentTitle",
        "documentVersion",
        "documentAuthor",
        "documentLocation",
        "",
        "",
        "",
        "",
        "homeTelephoneNumber",
        "secretary",
        "otherMailbox",
        "lastModifiedTime",
        "lastModifiedBy",
        "DC",
        "aRecord",
        "pilotAttributeType27",
        "mXRecord",
        "nSRecord",
        "sOARecord",
        "cNAMERecord",
        "",
        "",
        "",
        "",
        "",
        "associatedDomain",
        "associatedName",
        "homePostalAddress",
        "personalTitle",
        "mobileTelephoneNumber",
        "pagerTelephoneNumber",
        "friendlyCountryName",
        "uid",
        "organizationalStatus",
        "janetMailbox",
        "mailPreferenceOption",
        "buildingName",
        "dSAQuality",
        "singleLevelQuality",
        "subtreeMinimumQuality",
        "subtreeMaximumQuality",
        "personalSignature",
        "dITRedirect",
        "audio",
        "documentPublisher",
    ];
    let name = NAMES.get(usize::try_from(arc).ok()?).copied()?;
    (!name.is_empty()).then_some(name)
}

fn pkcs9_name(arc: u32) -> Option<&'static str> {
    Some(match arc {
        1 => "emailAddress",
        2 => "unstructuredName",
        3 => "contentType",
        4 => "messageDigest",
        5 => "signingTime",
        6 => "countersignature",
        7 => "challengePassword",
        8 => "unstructuredAddress",
        9 => "extendedCertificateAttributes",
        14 => "extReq",
        15 => "SMIME-CAPS",
        16 => "SMIME",
        20 => "friendlyName",
        21 => "localKeyID",
        _ => return None,
    })
}

const OTHER_NAMES: &[(&str, &str)] = &[
    ("1.3.6.1.4.1.311.60.2.1.1", "jurisdictionL"),
    ("1.3.6.1.4.1.311.60.2.1.2", "jurisdictionST"),
    ("1.3.6.1.4.1.311.60.2.1.3", "jurisdictionC"),
    ("1.2.643.3.131.1.1", "INN"),
    ("1.2.643.100.1", "OGRN"),
    ("1.2.643.100.3", "SNILS"),
    ("1.2.643.100.5", "OGRNIP"),
    ("1.3.6.1.5.5.7.9.1", "id-pda-dateOfBirth"),
    ("1.3.6.1.5.5.7.9.2", "id-pda-placeOfBirth"),
    ("1.3.6.1.5.5.7.9.3", "id-pda-gender"),
    ("1.3.6.1.5.5.7.9.4", "id-pda-countryOfCitizenship"),
    ("1.3.6.1.5.5.7.9.5", "id-pda-countryOfResidence"),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asn1::{encode, oid_from_str};

    fn ava(oid: &str, tag: u8, value: &[u8]) -> Vec<u8> {
        let mut body = encode(0x06, &oid_from_str(oid));
        body.extend(encode(tag, value));
        encode(0x30, &body)
    }

    fn name(rdns: &[Vec<Vec<u8>>]) -> Vec<u8> {
        let body: Vec<u8> = rdns.iter().flat_map(|rdn| encode(0x31, &rdn.concat())).collect();
        encode(0x30, &body)
    }

    #[test]
    fn reverses_and_escapes() {
        let der = name(&[
            vec![ava("2.5.4.6", 0x13, b"US")],
            vec![ava("2.5.4.10", 0x0c, b"Example, Inc.")],
            vec![ava("2.5.4.3", 0x0c, b"#a b "), ava("2.5.4.11", 0x0c, b" x;y")],
        ]);
        assert_eq!(format_name(&der).unwrap(), r"OU=\ x\;y+CN=\#a b\ ,O=Example\, Inc.,C=US");
        assert_eq!(common_name(&der).unwrap().as_deref(), Some("#a b "));
    }

    #[test]
    fn escapes_non_ascii_and_dumps_unknown() {
        let der = name(&[
            vec![ava("2.5.4.3", 0x0c, "Ü\u{1}".as_bytes())],
            vec![ava("2.5.4.10", 0x1e, &[0x00, 0xe9])],
            vec![ava("1.2.3.4", 0x0c, b"x")],
            vec![ava("2.5.4.45", 0x03, &[0x00, 0x01])],
        ]);
        assert_eq!(
            format_name(&der).unwrap(),
            r"x500UniqueIdentifier=#03020001,1.2.3.4=#0C0178,O=\C3\A9,CN=\C3\9C\01"
        );
    }

    #[test]
    fn single_characters_follow_openssl() {
        let one = |v: &[u8]| format_name(&name(&[vec![ava("2.5.4.3", 0x0c, v)]])).unwrap();
        assert_eq!(one(b" "), r"CN=\ ");
        assert_eq!(one(b"#"), "CN=#");
        assert_eq!(one(b""), "CN=");
        assert_eq!(format_name(&encode(0x30, &[])).unwrap(), "");
    }

    #[test]
    fn rejects_malformed_names() {
        assert!(format_name(&[0x30, 0x03, 0x31, 0x01]).is_err());
        assert!(format_name(&encode(0x30, &encode(0x30, &[]))).is_err());
    }
}
