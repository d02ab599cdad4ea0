//! A small, bounded BER/DER reader: enough to recognise formats, walk PKCS#7 and PKCS#12
//! containers and check nesting depth before any other parser sees the bytes.
//!
//! Nothing here recurses without a depth bound, and nothing indexes without a bounds check.

use std::borrow::Cow;

/// Deepest nesting of constructed elements accepted anywhere. Real certificates, PKCS#7
/// bundles and PFX files stay well under 16.
pub(crate) const MAX_DEPTH: usize = 32;

/// Why a byte string is not acceptable ASN.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Asn1Error {
    /// The encoding ends before an element does.
    #[error("the encoding ends early")]
    Truncated,
    /// A length field is malformed or too large.
    #[error("invalid length")]
    BadLength,
    /// A tag is malformed.
    #[error("invalid tag")]
    BadTag,
    /// Constructed elements are nested deeper than [`MAX_DEPTH`].
    #[error("nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// An element is not the one the structure requires here.
    #[error("unexpected element")]
    Unexpected,
}

/// The class bits of a tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    Universal,
    Application,
    Context,
    Private,
}

/// An identifier: class, constructed bit and tag number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tag {
    pub class: Class,
    pub constructed: bool,
    pub number: u32,
}

impl Tag {
    pub const INTEGER: Tag = Tag::universal(2, false);
    pub const BIT_STRING: Tag = Tag::universal(3, false);
    pub const OCTET_STRING: Tag = Tag::universal(4, false);
    pub const OID: Tag = Tag::universal(6, false);
    pub const SEQUENCE: Tag = Tag::universal(16, true);
    pub const SET: Tag = Tag::universal(17, true);

    const fn universal(number: u32, constructed: bool) -> Tag {
        Tag { class: Class::Universal, constructed, number }
    }

    /// A context-specific tag `[number]`.
    pub const fn context(number: u32, constructed: bool) -> Tag {
        Tag { class: Class::Context, constructed, number }
    }

    /// True for a universal tag with this number, primitive or constructed.
    pub fn is_universal(self, number: u32) -> bool {
        self.class == Class::Universal && self.number == number
    }
}

/// One element: its tag, its content octets and its whole encoding.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tlv<'a> {
    pub tag: Tag,
    /// Content octets (for an indefinite length: everything before the end-of-contents).
    pub content: &'a [u8],
    /// Identifier, length, content (and end-of-contents marker, if any).
    pub raw: &'a [u8],
}

/// Reads the first element of `input`; returns it and the bytes after it.
pub(crate) fn read_tlv(input: &[u8]) -> Result<(Tlv<'_>, &[u8]), Asn1Error> {
    read_at(input, 1)
}

fn read_at(input: &[u8], depth: usize) -> Result<(Tlv<'_>, &[u8]), Asn1Error> {
    let (tag, after_tag) = read_tag(input)?;
    let (length, body) = read_length(after_tag)?;
    let header_len = input.len() - body.len();
    match length {
        Some(len) => {
            let content = body.get(..len).ok_or(Asn1Error::Truncated)?;
            let raw = input.get(..header_len + len).ok_or(Asn1Error::Truncated)?;
            let rest = body.get(len..).ok_or(Asn1Error::Truncated)?;
            Ok((Tlv { tag, content, raw }, rest))
        }
        None => read_indefinite(input, tag, header_len, body, depth),
    }
}

/// BER indefinite length: the content runs until a matching `00 00`, so the children
/// have to be read to find it. Bounded by [`MAX_DEPTH`].
fn read_indefinite<'a>(
    input: &'a [u8],
    tag: Tag,
    header_len: usize,
    body: &'a [u8],
    depth: usize,
) -> Result<(Tlv<'a>, &'a [u8]), Asn1Error> {
    if !tag.constructed {
        return Err(Asn1Error::BadLength);
    }
    if depth >= MAX_DEPTH {
        return Err(Asn1Error::TooDeep);
    }
    let mut cursor = body;
    loop {
        if let Some(rest) = cursor.strip_prefix(&[0u8, 0u8]) {
            let content_len = body.len() - cursor.len();
            let content = body.get(..content_len).ok_or(Asn1Error::Truncated)?;
            let raw = input.get(..header_len + content_len + 2).ok_or(Asn1Error::Truncated)?;
            return Ok((Tlv { tag, content, raw }, rest));
        }
        if cursor.is_empty() {
            return Err(Asn1Error::Truncated);
        }
        let (_, rest) = read_at(cursor, depth + 1)?;
        cursor = rest;
    }
}

fn read_tag(input: &[u8]) -> Result<(Tag, &[u8]), Asn1Error> {
    let (&first, mut rest) = input.split_first().ok_or(Asn1Error::Truncated)?;
    let class = match first >> 6 {
        0 => Class::Universal,
        1 => Class::Application,
        2 => Class::Context,
        _ => Class::Private,
    };
    let constructed = first & 0x20 != 0;
    let mut number = u32::from(first & 0x1f);
    if number == 0x1f {
        // High tag number form: base-128, at most four octets.
        number = 0;
        for i in 0.. {
            let (&byte, after) = rest.split_first().ok_or(Asn1Error::Truncated)?;
            rest = after;
            if i >= 4 || (i == 0 && byte == 0x80) {
                return Err(Asn1Error::BadTag);
            }
            number = (number << 7) | u32::from(byte & 0x7f);
            if byte & 0x80 == 0 {
                break;
            }
        }
    }
    Ok((Tag { class, constructed, number }, rest))
}

/// `None` means indefinite length.
fn read_length(input: &[u8]) -> Result<(Option<usize>, &[u8]), Asn1Error> {
    let (&first, rest) = input.split_first().ok_or(Asn1Error::Truncated)?;
    if first < 0x80 {
        return Ok((Some(usize::from(first)), rest));
    }
    if first == 0x80 {
        return Ok((None, rest));
    }
    let count = usize::from(first & 0x7f);
    if count > 4 {
        return Err(Asn1Error::BadLength);
    }
    let bytes = rest.get(..count).ok_or(Asn1Error::Truncated)?;
    let len = bytes.iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
    Ok((Some(len), rest.get(count..).ok_or(Asn1Error::Truncated)?))
}

/// Checks that `input` is a sequence of well-formed elements whose constructed elements nest
/// at most [`MAX_DEPTH`] deep. Primitive contents (OCTET STRING, BIT STRING) are not entered.
pub(crate) fn check_depth(input: &[u8]) -> Result<(), Asn1Error> {
    walk(input, 1)
}

fn walk(mut input: &[u8], depth: usize) -> Result<(), Asn1Error> {
    while !input.is_empty() {
        let (tlv, rest) = read_at(input, depth)?;
        if tlv.tag.constructed {
            if depth >= MAX_DEPTH {
                return Err(Asn1Error::TooDeep);
            }
            walk(tlv.content, depth + 1)?;
        }
        input = rest;
    }
    Ok(())
}

/// Reads the children of a constructed element one by one.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Children<'a> {
    rest: &'a [u8],
}

impl<'a> Children<'a> {
    /// The children of `tlv` (which should be constructed).
    pub fn of(tlv: &Tlv<'a>) -> Self {
        Children { rest: tlv.content }
    }

    /// The next child, or `None` at the end.
    pub fn next_tlv(&mut self) -> Result<Option<Tlv<'a>>, Asn1Error> {
        if self.rest.is_empty() {
            return Ok(None);
        }
        let (tlv, rest) = read_tlv(self.rest)?;
        self.rest = rest;
        Ok(Some(tlv))
    }

    /// The next child, which must exist and carry `tag`.
    pub fn expect(&mut self, tag: Tag) -> Result<Tlv<'a>, Asn1Error> {
        match self.next_tlv()? {
            Some(tlv) if tlv.tag == tag => Ok(tlv),
            _ => Err(Asn1Error::Unexpected),
        }
    }

    /// The next child if it carries `tag`; otherwise nothing is consumed.
    pub fn optional(&mut self, tag: Tag) -> Result<Option<Tlv<'a>>, Asn1Error> {
        let saved = *self;
        match self.next_tlv()? {
            Some(tlv) if tlv.tag == tag => Ok(Some(tlv)),
            _ => {
                *self = saved;
                Ok(None)
            }
        }
    }

    /// All remaining children.
    pub fn collect_all(mut self) -> Result<Vec<Tlv<'a>>, Asn1Error> {
        let mut out = Vec::new();
        while let Some(tlv) = self.next_tlv()? {
            out.push(tlv);
        }
        Ok(out)
    }
}

/// The only child of a constructed element (e.g. the inside of an EXPLICIT tag).
pub(crate) fn single_child<'a>(tlv: &Tlv<'a>) -> Result<Tlv<'a>, Asn1Error> {
    let (inner, rest) = read_tlv(tlv.content)?;
    if rest.is_empty() { Ok(inner) } else { Err(Asn1Error::Unexpected) }
}

/// The value of an OCTET STRING (or an IMPLICIT-tagged one): primitive, or BER constructed
/// from segments, which are concatenated.
pub(crate) fn octets<'a>(tlv: &Tlv<'a>) -> Result<Cow<'a, [u8]>, Asn1Error> {
    octets_at(tlv, 1)
}

fn octets_at<'a>(tlv: &Tlv<'a>, depth: usize) -> Result<Cow<'a, [u8]>, Asn1Error> {
    if !tlv.tag.constructed {
        return Ok(Cow::Borrowed(tlv.content));
    }
    if depth >= MAX_DEPTH {
        return Err(Asn1Error::TooDeep);
    }
    let mut out = Vec::with_capacity(tlv.content.len());
    let mut children = Children::of(tlv);
    while let Some(segment) = children.next_tlv()? {
        if !segment.tag.is_universal(4) {
            return Err(Asn1Error::Unexpected);
        }
        out.extend_from_slice(&octets_at(&segment, depth + 1)?);
    }
    Ok(Cow::Owned(out))
}

/// A small non-negative INTEGER (e.g. a version or an iteration count).
pub(crate) fn small_uint(tlv: &Tlv<'_>) -> Result<u64, Asn1Error> {
    if tlv.tag != Tag::INTEGER || tlv.content.is_empty() {
        return Err(Asn1Error::Unexpected);
    }
    if tlv.content[0] & 0x80 != 0 {
        return Err(Asn1Error::Unexpected);
    }
    let digits = strip_leading_zeros(tlv.content);
    if digits.len() > 8 {
        return Err(Asn1Error::Unexpected);
    }
    Ok(digits.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
}

/// Number of significant bits of an unsigned big-endian integer.
pub(crate) fn bit_length(bytes: &[u8]) -> u32 {
    let digits = strip_leading_zeros(bytes);
    match digits.first() {
        None => 0,
        Some(&top) => {
            let len = u32::try_from(digits.len()).unwrap_or(u32::MAX / 8);
            (len - 1).saturating_mul(8).saturating_add(8 - top.leading_zeros())
        }
    }
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

/// Dotted text of an OBJECT IDENTIFIER's content octets, or `None` if malformed.
pub(crate) fn oid_to_string(content: &[u8]) -> Option<String> {
    if content.is_empty() || content.last().is_some_and(|b| b & 0x80 != 0) {
        return None;
    }
    let mut arcs: Vec<u128> = Vec::new();
    let mut value: u128 = 0;
    for &byte in content {
        value = value.checked_mul(128)?.checked_add(u128::from(byte & 0x7f))?;
        if byte & 0x80 == 0 {
            arcs.push(value);
            value = 0;
        }
    }
    let first = arcs.first().copied()?;
    let (a, b) = match first {
        0..=39 => (0, first),
        40..=79 => (1, first - 40),
        _ => (2, first - 80),
    };
    let mut text = format!("{a}.{b}");
    for arc in arcs.iter().skip(1) {
        text.push('.');
        text.push_str(&arc.to_string());
    }
    Some(text)
}

/// Content octets of an OBJECT IDENTIFIER from its dotted text; for building constants.
#[cfg(test)]
pub(crate) fn oid_from_str(text: &str) -> Vec<u8> {
    let arcs: Vec<u128> = text.split('.').map(|a| a.parse().unwrap_or(0)).collect();
    let mut out = Vec::new();
    let mut push = |mut v: u128| {
        let mut tmp = vec![(v & 0x7f) as u8];
        v >>= 7;
        while v > 0 {
            tmp.push((v & 0x7f) as u8 | 0x80);
            v >>= 7;
        }
        tmp.reverse();
        out.extend(tmp);
    };
    push(arcs[0] * 40 + arcs[1]);
    for &arc in &arcs[2..] {
        push(arc);
    }
    out
}

/// Encodes one definite-length element (used by tests to craft inputs).
#[cfg(test)]
pub(crate) fn encode(tag_byte: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag_byte];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len.to_be_bytes().iter().copied().skip_while(|&b| b == 0).collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_definite_and_indefinite_lengths() {
        let der = encode(0x30, &encode(0x02, &[5]));
        let (tlv, rest) = read_tlv(&der).unwrap();
        assert_eq!(tlv.tag, Tag::SEQUENCE);
        assert!(rest.is_empty());
        assert_eq!(small_uint(&Children::of(&tlv).expect(Tag::INTEGER).unwrap()).unwrap(), 5);

        let ber = [0x30, 0x80, 0x02, 0x01, 0x07, 0x00, 0x00, 0xff];
        let (tlv, rest) = read_tlv(&ber).unwrap();
        assert_eq!(tlv.content, &[0x02, 0x01, 0x07]);
        assert_eq!(rest, &[0xff]);
    }

    #[test]
    fn rejects_truncation_and_huge_lengths() {
        assert_eq!(read_tlv(&[0x30, 0x05, 0x00]).unwrap_err(), Asn1Error::Truncated);
        assert_eq!(read_tlv(&[0x30, 0x85, 1, 1, 1, 1, 1]).unwrap_err(), Asn1Error::BadLength);
        assert_eq!(read_tlv(&[0x04, 0x80, 0, 0]).unwrap_err(), Asn1Error::BadLength);
        assert_eq!(read_tlv(&[]).unwrap_err(), Asn1Error::Truncated);
        assert_eq!(read_tlv(&[0x30, 0x80, 0x30, 0x80]).unwrap_err(), Asn1Error::Truncated);
    }

    #[test]
    fn depth_is_bounded_for_both_length_forms() {
        let mut deep = vec![0x05, 0x00];
        for _ in 0..(MAX_DEPTH + 1) {
            deep = encode(0x30, &deep);
        }
        assert_eq!(check_depth(&deep).unwrap_err(), Asn1Error::TooDeep);

        let levels = 100_000;
        let mut ber = [0x30, 0x80].repeat(levels);
        ber.extend(vec![0x00; 2 * levels]);
        assert_eq!(read_tlv(&ber).unwrap_err(), Asn1Error::TooDeep);
    }

    #[test]
    fn concatenates_constructed_octet_strings() {
        let mut ber = vec![0x24, 0x80];
        ber.extend(encode(0x04, b"ab"));
        ber.extend(encode(0x04, b"cd"));
        ber.extend([0, 0]);
        let (tlv, _) = read_tlv(&ber).unwrap();
        assert_eq!(octets(&tlv).unwrap().as_ref(), b"abcd");
    }

    #[test]
    fn oids_round_trip() {
        for text in ["1.2.840.113549.1.1.11", "2.5.4.3", "0.9.2342.19200300.100.1.25", "2.999.1"] {
            assert_eq!(oid_to_string(&oid_from_str(text)).as_deref(), Some(text));
        }
        assert_eq!(oid_to_string(&[0x2a, 0x86]), None);
    }

    #[test]
    fn counts_bits() {
        assert_eq!(bit_length(&[0x00, 0x80, 0x00]), 16);
        assert_eq!(bit_length(&[0x01]), 1);
        assert_eq!(bit_length(&[0x00]), 0);
    }
}
