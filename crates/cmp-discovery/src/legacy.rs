//! Whether a server still accepts TLS 1.0 or 1.1. rustls does not speak them (on purpose), so
//! this writes one TLS 1.0/1.1 ClientHello by hand (RFC 2246 / 4346: no `supported_versions`,
//! the CBC suites those versions used) and reads only the version of the ServerHello that
//! answers it. No handshake is completed and nothing the server sends is trusted or kept.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Protocol versions on the wire.
const TLS1_0: u16 = 0x0301;
const TLS1_1: u16 = 0x0302;

/// The suites TLS 1.0/1.1 servers choose from: ECDHE and RSA key exchange with AES-CBC and
/// 3DES, DHE with AES-CBC.
const LEGACY_SUITES: [u16; 10] =
    [0xc013, 0xc014, 0xc009, 0xc00a, 0x002f, 0x0035, 0x0033, 0x0039, 0x000a, 0x0005];

/// Builds a ClientHello offering at most `version`.
pub(crate) fn client_hello(version: u16, sni: Option<&str>) -> Vec<u8> {
    let mut extensions = Vec::new();
    if let Some(name) = sni {
        let name = name.as_bytes();
        let list_len = name.len() + 3;
        push_u16(&mut extensions, 0x0000);
        push_u16(&mut extensions, (list_len + 2) as u16);
        push_u16(&mut extensions, list_len as u16);
        extensions.push(0); // host_name
        push_u16(&mut extensions, name.len() as u16);
        extensions.extend_from_slice(name);
    }
    // supported_groups: secp256r1, secp384r1, x25519; ec_point_formats: uncompressed;
    // renegotiation_info: empty (servers that insist on secure renegotiation).
    extensions.extend_from_slice(&[0x00, 0x0a, 0x00, 0x08, 0x00, 0x06, 0x00, 0x17, 0x00, 0x18]);
    extensions.extend_from_slice(&[0x00, 0x1d, 0x00, 0x0b, 0x00, 0x02, 0x01, 0x00]);
    extensions.extend_from_slice(&[0xff, 0x01, 0x00, 0x01, 0x00]);

    let mut body = Vec::new();
    push_u16(&mut body, version);
    body.extend_from_slice(&rand::random::<[u8; 32]>());
    body.push(0); // no session id
    push_u16(&mut body, (LEGACY_SUITES.len() * 2) as u16);
    for suite in LEGACY_SUITES {
        push_u16(&mut body, suite);
    }
    body.extend_from_slice(&[1, 0]); // compression: null only
    push_u16(&mut body, extensions.len() as u16);
    body.extend_from_slice(&extensions);

    let mut handshake = vec![1]; // client_hello
    handshake.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    handshake.extend_from_slice(&body);
    let mut record = vec![22]; // handshake
    push_u16(&mut record, TLS1_0);
    push_u16(&mut record, handshake.len() as u16);
    record.extend_from_slice(&handshake);
    record
}

fn push_u16(out: &mut Vec<u8>, value: u16) {
    out.extend_from_slice(&value.to_be_bytes());
}

/// The version a ServerHello chose, from the first bytes a server answered with; `None` for
/// an alert or anything else.
pub(crate) fn server_hello_version(answer: &[u8]) -> Option<u16> {
    // Record: type 22, version, length; handshake: type 2 (server_hello), length (3 bytes),
    // then the chosen version.
    match answer {
        [22, _, _, _, _, 2, _, _, _, major, minor, ..] => {
            Some(u16::from_be_bytes([*major, *minor]))
        }
        _ => None,
    }
}

/// Sends a hello offering at most `version` on a connection ready for TLS and reads the
/// version chosen; `None` when the server refused (alert, close, reset) or answered nonsense.
pub(crate) async fn chosen_version(
    stream: &mut TcpStream,
    version: u16,
    sni: Option<&str>,
    timeout: Duration,
) -> Option<u16> {
    let exchange = async {
        stream.write_all(&client_hello(version, sni)).await.ok()?;
        let mut answer = [0u8; 11];
        stream.read_exact(&mut answer).await.ok()?;
        server_hello_version(&answer)
    };
    tokio::time::timeout(timeout, exchange).await.ok().flatten()
}

/// The legacy versions a chosen version proves offered.
pub(crate) fn versions_for(asked: u16, chosen: Option<u16>) -> Vec<&'static str> {
    match chosen {
        Some(TLS1_1) if asked >= TLS1_1 => vec!["TLSv1.1"],
        Some(TLS1_0) => vec!["TLSv1.0"],
        _ => Vec::new(),
    }
}

/// The two probes: at most TLS 1.1, then at most TLS 1.0 unless the first already told.
pub(crate) const PROBES: [u16; 2] = [TLS1_1, TLS1_0];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hello_is_one_well_formed_record() {
        let hello = client_hello(TLS1_1, Some("example.com"));
        let record_len = u16::from_be_bytes([hello[3], hello[4]]) as usize;
        assert_eq!(hello.len(), 5 + record_len);
        assert_eq!(hello[5], 1);
        let body_len = u32::from_be_bytes([0, hello[6], hello[7], hello[8]]) as usize;
        assert_eq!(record_len, 4 + body_len);
        assert_eq!(&hello[9..11], &[3, 2]);
        assert!(hello.windows(11).any(|w| w == b"example.com"));
    }

    #[test]
    fn only_a_server_hello_tells_a_version() {
        assert_eq!(server_hello_version(&[22, 3, 1, 0, 80, 2, 0, 0, 76, 3, 1]), Some(TLS1_0));
        assert_eq!(server_hello_version(&[21, 3, 1, 0, 2, 2, 70, 0, 0, 0, 0]), None);
        assert_eq!(versions_for(TLS1_1, Some(TLS1_0)), ["TLSv1.0"]);
        assert_eq!(versions_for(TLS1_1, Some(0x0303)), Vec::<&str>::new());
    }
}
