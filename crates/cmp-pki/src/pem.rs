//! Finds PEM blocks in text: `-----BEGIN X-----` ... `-----END X-----`, tolerant of CRLF,
//! lone CR, indentation, any text around or between blocks, and blocks whose line breaks
//! were flattened to spaces.
//!
//! The scanner only locates the bodies; decoding is a separate step so that blocks that
//! hold private keys are never decoded at all.

use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

/// Longest label accepted; a longer one means the marker is ordinary text.
const MAX_LABEL_LEN: usize = 64;
const BEGIN: &[u8] = b"-----BEGIN ";
const END: &[u8] = b"-----END ";
const DASHES: &[u8] = b"-----";

/// One `-----BEGIN` found in the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Block<'a> {
    /// 1-based position among the blocks of the input.
    pub index: usize,
    /// The label between `BEGIN ` and `-----`, e.g. `CERTIFICATE`.
    pub label: String,
    /// How the block ended.
    pub body: Body<'a>,
}

/// What followed a `-----BEGIN` marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Body<'a> {
    /// A matching `-----END` marker; these are the bytes in between.
    Complete(&'a [u8]),
    /// The input, or the next `-----BEGIN`, came before any `-----END`.
    Unterminated,
    /// An `-----END` marker with another label.
    MismatchedEnd,
}

/// True if the input contains anything that looks like the start of a PEM block.
pub(crate) fn looks_like_pem(input: &[u8]) -> bool {
    find(input, BEGIN, 0).is_some()
}

/// All blocks, in input order.
pub(crate) fn scan(input: &[u8]) -> Vec<Block<'_>> {
    let mut blocks = Vec::new();
    let mut position = 0;
    while let Some(begin) = find(input, BEGIN, position) {
        let Some((label, body_start)) = marker_label(input, begin + BEGIN.len()) else {
            position = begin + BEGIN.len();
            continue;
        };
        // Searching for END only up to the next BEGIN keeps the scan linear.
        let next_begin = find(input, BEGIN, body_start);
        let limit = next_begin.unwrap_or(input.len());
        let end = input.get(..limit).and_then(|bounded| find(bounded, END, body_start));
        let (body, resume) = match end {
            None => (Body::Unterminated, next_begin.unwrap_or(input.len())),
            Some(end) => match marker_label(input, end + END.len()) {
                Some((end_label, after)) if end_label == label => {
                    match input.get(body_start..end) {
                        Some(body) => (Body::Complete(body), after),
                        None => (Body::Unterminated, after),
                    }
                }
                Some((_, after)) => (Body::MismatchedEnd, after),
                None => (Body::Unterminated, end + END.len()),
            },
        };
        let index = blocks.len() + 1;
        blocks.push(Block { index, label, body });
        position = resume;
    }
    blocks
}

/// Reads `label-----` starting at `from`; returns the label and the offset after the dashes.
fn marker_label(input: &[u8], from: usize) -> Option<(String, usize)> {
    let window = input.get(..input.len().min(from + MAX_LABEL_LEN + DASHES.len()))?;
    let close = find(window, DASHES, from)?;
    let label = input.get(from..close)?;
    let printable = label.iter().all(|b| (0x20..0x7f).contains(b));
    if label.is_empty() || label.len() > MAX_LABEL_LEN || !printable {
        return None;
    }
    Some((String::from_utf8(label.to_vec()).ok()?, close + DASHES.len()))
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    haystack
        .get(from..)?
        .windows(needle.len())
        .position(|window| window == needle)
        .map(|offset| from + offset)
}

/// Why a block body could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DecodeError {
    /// Nothing between the markers.
    Empty,
    /// Characters outside base64, or bad padding.
    BadBase64,
}

/// Decodes the base64 body, skipping RFC 1421 header lines (`Name: value`).
pub(crate) fn decode(body: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let text: Vec<u8> = body
        .split(|&b| b == b'\n' || b == b'\r')
        .filter(|line| !line.contains(&b':'))
        .flat_map(|line| line.iter().copied())
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    if text.is_empty() {
        return Err(DecodeError::Empty);
    }
    let config = GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true);
    GeneralPurpose::new(&base64::alphabet::STANDARD, config)
        .decode(&text)
        .map_err(|_| DecodeError::BadBase64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_blocks_among_text_with_any_line_ends() {
        let input = b"hello\r\n-----BEGIN A-----\r\nQUJD\r\n-----END A-----\r\nmid\r  -----BEGIN B-----\rRA==\r-----END B-----";
        let blocks = scan(input);
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0].label, "A");
        let Body::Complete(lines) = &blocks[0].body else { panic!("incomplete") };
        assert_eq!(decode(lines).unwrap(), b"ABC");
        let Body::Complete(lines) = &blocks[1].body else { panic!("incomplete") };
        assert_eq!(decode(lines).unwrap(), b"D");
    }

    #[test]
    fn reports_unterminated_and_mismatched_blocks() {
        let blocks = scan(b"-----BEGIN A-----\nQUJD\n-----BEGIN B-----\nQUJD\n-----END C-----\n-----BEGIN D-----\n");
        let bodies: Vec<_> =
            blocks.iter().map(|b| (b.index, b.label.as_str(), b.body.clone())).collect();
        assert_eq!(
            bodies,
            vec![
                (1, "A", Body::Unterminated),
                (2, "B", Body::MismatchedEnd),
                (3, "D", Body::Unterminated)
            ]
        );
    }

    #[test]
    fn decodes_strictly_enough() {
        assert_eq!(decode(b"Proc-Type: 4,ENCRYPTED\r\n\r\nQU JD").unwrap(), b"ABC");
        assert_eq!(decode(b"QUJD*").unwrap_err(), DecodeError::BadBase64);
        assert_eq!(decode(b" \n  ").unwrap_err(), DecodeError::Empty);
    }

    #[test]
    fn accepts_flattened_blocks_and_ignores_stray_markers() {
        let blocks = scan(b"x -----BEGIN A----- QUJD -----END A----- y -----BEGIN \x01-----");
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0].body, Body::Complete(b" QUJD ".as_slice()));
    }

    #[test]
    fn many_unterminated_blocks_scan_in_linear_time() {
        let input = b"-----BEGIN A-----\n".repeat(200_000);
        assert_eq!(scan(&input).len(), 200_000);
    }
}
