//! Certificate serial numbers: random, positive, 20 octets, and their lowercase hex form.

use rand::RngCore;

/// Octets in a serial number (RFC 5280's maximum).
pub(crate) const SERIAL_LEN: usize = 20;

/// A random positive serial of exactly [`SERIAL_LEN`] octets (at most 159 bits).
///
/// The first octet is in `0x01..=0x7f`: positive, so DER needs no sign-padding octet, and not
/// zero, so DER strips nothing. The INTEGER's content octets are therefore exactly these bytes
/// and [`serial_hex`] of them is what `openssl x509 -serial` prints (lowercased).
pub(crate) fn random_serial() -> [u8; SERIAL_LEN] {
    let mut bytes = [0u8; SERIAL_LEN];
    rand::rng().fill_bytes(&mut bytes);
    bytes[0] = (bytes[0] & 0x7f).max(1);
    bytes
}

/// Lowercase hex of a positive serial given as DER INTEGER content octets, as
/// `openssl x509 -serial` prints it (lowercased): one sign-padding `00` octet is dropped.
/// `None` for negative or empty serials, which this CA never issues.
pub(crate) fn serial_hex(content: &[u8]) -> Option<String> {
    let digits = match content {
        [] => return None,
        [0x00, rest @ ..] if rest.first().is_some_and(|b| b & 0x80 != 0) => rest,
        [first, ..] if first & 0x80 != 0 => return None,
        _ => content,
    };
    Some(hex::encode(digits))
}

/// The serial octets of a lowercase hex serial from the ledger.
pub(crate) fn serial_bytes(hex_serial: &str) -> Option<Vec<u8>> {
    hex::decode(hex_serial).ok().filter(|bytes| !bytes.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_serials_are_positive_and_full_length() {
        for _ in 0..1000 {
            let serial = random_serial();
            assert!((1..=0x7f).contains(&serial[0]));
            let hex = serial_hex(&serial).unwrap();
            assert_eq!(hex.len(), 2 * SERIAL_LEN);
            assert_eq!(serial_bytes(&hex).unwrap(), serial);
        }
        assert_ne!(random_serial(), random_serial());
    }

    #[test]
    fn hex_follows_openssl() {
        assert_eq!(serial_hex(&[0x01, 0xab]).as_deref(), Some("01ab"));
        assert_eq!(serial_hex(&[0x00, 0x8f]).as_deref(), Some("8f"));
        assert_eq!(serial_hex(&[0x00]).as_deref(), Some("00"));
        assert_eq!(serial_hex(&[0x80]), None);
        assert_eq!(serial_hex(&[]), None);
        assert_eq!(serial_bytes("zz"), None);
        assert_eq!(serial_bytes(""), None);
    }
}
