//! One TLS handshake with one endpoint, to read what it presents. The client accepts any
//! certificate and any signature: it trusts nothing it reads, sends nothing after the
//! handshake, and judges the chain afterwards (`trust.rs`). Session resumption is off, so
//! every handshake shows the full chain.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::net::TcpStream;

use crate::ProbeError;
use crate::starttls;
use crate::targets::Protocol;

/// What one handshake showed.
#[derive(Debug, Clone)]
pub struct Handshake {
    /// The chain as presented, leaf first, DER.
    pub chain: Vec<CertificateDer<'static>>,
    /// `TLSv1.3` or `TLSv1.2`.
    pub tls_version: String,
    /// The IANA name of the suite, e.g. `TLS13_AES_256_GCM_SHA384`.
    pub cipher_suite: String,
    /// The application protocol agreed, if any.
    pub alpn: Option<String>,
    /// Whether the server stapled an OCSP response.
    pub ocsp_stapled: bool,
}

/// Every scheme a server may sign with: nothing is verified, so nothing is refused.
const ANY_SCHEME: [SignatureScheme; 13] = [
    SignatureScheme::ECDSA_NISTP256_SHA256,
    SignatureScheme::ECDSA_NISTP384_SHA384,
    SignatureScheme::ECDSA_NISTP521_SHA512,
    SignatureScheme::ED25519,
    SignatureScheme::ED448,
    SignatureScheme::RSA_PSS_SHA256,
    SignatureScheme::RSA_PSS_SHA384,
    SignatureScheme::RSA_PSS_SHA512,
    SignatureScheme::RSA_PKCS1_SHA256,
    SignatureScheme::RSA_PKCS1_SHA384,
    SignatureScheme::RSA_PKCS1_SHA512,
    SignatureScheme::RSA_PKCS1_SHA1,
    SignatureScheme::ECDSA_SHA1_Legacy,
];

/// The verifier of a reading handshake: accepts what it is shown and notes a stapled OCSP
/// response (the one fact rustls gives only to the verifier).
#[derive(Debug, Default)]
struct ReadOnly {
    stapled: AtomicBool,
}

impl ServerCertVerifier for ReadOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.stapled.store(!ocsp_response.is_empty(), Ordering::Relaxed);
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        ANY_SCHEME.to_vec()
    }
}

/// The client configuration every handshake starts from (one per scanner).
pub(crate) fn base_config() -> Result<ClientConfig, crate::ScanError> {
    let installed =
        rustls::crypto::CryptoProvider::get_default().ok_or(crate::ScanError::NoCryptoProvider)?;
    // Only classical key exchange: what a scan reads needs no post-quantum secrecy, and the
    // hybrid ML-KEM share (first by default) costs both sides far more than X25519. A server
    // that wants another group asks for it (HelloRetryRequest).
    let mut provider = (**installed).clone();
    provider.kx_groups.retain(|group| {
        matches!(
            group.name(),
            rustls::NamedGroup::X25519
                | rustls::NamedGroup::secp256r1
                | rustls::NamedGroup::secp384r1
        )
    });
    // AES-128 with SHA-256 first (servers that follow the client's order take it): a scan
    // needs no 256-bit keys, and SHA-384's transcript hashing was the scanner's top symbol.
    provider
        .cipher_suites
        .sort_by_key(|suite| suite.suite() != rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    let mut config = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| crate::ScanError::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ReadOnly::default()))
        .with_no_client_auth();
    config.resumption = rustls::client::Resumption::disabled();
    Ok(config)
}

/// Opens a connection and brings it to where a TLS handshake starts.
pub(crate) async fn connect(
    address: SocketAddr,
    protocol: Protocol,
    connect_timeout: Duration,
    handshake_timeout: Duration,
) -> Result<TcpStream, ProbeError> {
    let mut stream = match tokio::time::timeout(connect_timeout, TcpStream::connect(address)).await
    {
        Err(_) => return Err(ProbeError::ConnectTimeout),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            return Err(ProbeError::Closed);
        }
        Ok(Err(e)) => return Err(ProbeError::io(e)),
        Ok(Ok(stream)) => stream,
    };
    let _ = stream.set_nodelay(true);
    tokio::time::timeout(handshake_timeout, starttls::negotiate(&mut stream, protocol))
        .await
        .map_err(|_| ProbeError::HandshakeTimeout)??;
    Ok(stream)
}

/// One handshake: connect, speak `protocol`, and read what the server presents for `sni`
/// (`None`: no SNI is sent).
pub(crate) async fn handshake(
    base: &ClientConfig,
    address: SocketAddr,
    protocol: Protocol,
    sni: Option<&str>,
    connect_timeout: Duration,
    handshake_timeout: Duration,
) -> Result<Handshake, ProbeError> {
    let stream = connect(address, protocol, connect_timeout, handshake_timeout).await?;
    let recorder = Arc::new(ReadOnly::default());
    let mut config = base.clone();
    config.dangerous().set_certificate_verifier(recorder.clone());
    if protocol == Protocol::Tls {
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    }
    // An address as the server name is how rustls sends no SNI.
    let server_name = match sni {
        Some(name) => ServerName::try_from(name.to_string())
            .map_err(|_| ProbeError::Tls(format!("{name:?} cannot be sent as an SNI name")))?,
        None => ServerName::IpAddress(address.ip().into()),
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tls = tokio::time::timeout(handshake_timeout, connector.connect(server_name, stream))
        .await
        .map_err(|_| ProbeError::HandshakeTimeout)?
        .map_err(ProbeError::tls)?;
    let (_, connection) = tls.get_ref();
    let chain = connection.peer_certificates().map(<[_]>::to_vec).unwrap_or_default();
    if chain.is_empty() {
        return Err(ProbeError::Tls("the server presented no certificate".into()));
    }
    Ok(Handshake {
        chain,
        tls_version: connection
            .protocol_version()
            .map(|v| match v {
                rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".to_string(),
                rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".to_string(),
                other => format!("{other:?}"),
            })
            .unwrap_or_default(),
        cipher_suite: connection
            .negotiated_cipher_suite()
            .and_then(|s| s.suite().as_str())
            .unwrap_or("unknown")
            .to_string(),
        alpn: connection.alpn_protocol().map(|p| String::from_utf8_lossy(p).into_owned()),
        ocsp_stapled: recorder.stapled.load(Ordering::Relaxed),
    })
}
