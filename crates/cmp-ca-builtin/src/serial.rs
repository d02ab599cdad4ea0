//! Certificate serial numbers: random, positive, 20 octets (their hex form is cmp-pki's).

use rand::RngCore;

/// Octets in a serial number (RFC 5280's maximum).
pub(crate) const SERIAL_LEN: usize = 20;

/// A random positive serial of exactly [`SERIAL_LEN`] octets (at most 159 bits).
///
/// The first octet is in `0x01..=0x7f`: positive, so DER needs no sign-padding octet, and not
/// zero, so DER strips nothing. The INTEGER's content octets are therefore exactly these bytes
/// and `cmp_pki::serial_hex` of them is what `openssl x509 -serial` prints (lowercased).
pub(crate) fn random_serial() -> [u8; SERIAL_LEN] {
    let mut bytes = [0u8; SERIAL_LEN];
    rand::rng().fill_bytes(&mut bytes);
    bytes[0] = (bytes[0] & 0x7f).max(1);
    bytes
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
            let hex = cmp_pki::serial_hex(&serial);
            assert_eq!(hex.len(), 2 * SERIAL_LEN);
            assert_eq!(serial_bytes(&hex).unwrap(), serial);
        }
        assert_ne!(random_serial(), random_serial());
    }

    #[test]
    fn hex_that_is_not_a_serial_is_refused() {
        assert_eq!(serial_bytes("zz"), None);
        assert_eq!(serial_bytes(""), None);
    }
}
