//! What a TLS server serves: a handshake that accepts any certificate and returns the SHA-256
//! fingerprint of the leaf. It reads what is served, it trusts nothing: the verifier below
//! accepts every certificate (the point is to see the one just installed, whoever issued it)
//! but still checks the handshake signatures, so the server proved it holds the key.

use std::sync::Arc;
use std::time::Duration;

use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use sha2::{Digest, Sha256};

/// Why the served certificate could not be read.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The SNI is neither a DNS name nor an IP address.
    #[error("`{0}` is not a server name")]
    BadName(String),
    /// No rustls crypto provider is installed (each binary's `main` installs aws-lc-rs).
    #[error("no rustls crypto provider is installed")]
    NoCryptoProvider,
    /// TCP connect or TLS handshake failed.
    #[error("{0}")]
    Connect(String),
    /// Nothing answered within the timeout.
    #[error("no TLS handshake with {0} within the timeout")]
    Timeout(String),
    /// The server presented no certificate.
    #[error("the server presented no certificate")]
    NoCertificate,
}

/// Accepts any certificate; checks handshake signatures with the provider's algorithms.
#[derive(Debug)]
struct ReadOnlyVerifier(Arc<CryptoProvider>);

impl ServerCertVerifier for ReadOnlyVerifier {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Connects to `address` (`host:port`) with `sni` (an IP address sends none), and returns the
/// SHA-256 of the DER of the leaf certificate served, lowercase hex. `timeout` bounds the
/// connect and the handshake together. Needs an installed rustls crypto provider.
pub async fn served_fingerprint(
    address: &str,
    sni: &str,
    timeout: Duration,
) -> Result<String, VerifyError> {
    let name =
        ServerName::try_from(sni.to_owned()).map_err(|_| VerifyError::BadName(sni.into()))?;
    let provider = CryptoProvider::get_default().ok_or(VerifyError::NoCryptoProvider)?.clone();
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| VerifyError::Connect(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ReadOnlyVerifier(provider)))
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let handshake = async {
        let tcp = tokio::net::TcpStream::connect(address)
            .await
            .map_err(|e| VerifyError::Connect(format!("cannot connect to {address}: {e}")))?;
        let tls = connector
            .connect(name, tcp)
            .await
            .map_err(|e| VerifyError::Connect(format!("TLS handshake with {address}: {e}")))?;
        let (_, connection) = tls.get_ref();
        let leaf = connection
            .peer_certificates()
            .and_then(|chain| chain.first())
            .ok_or(VerifyError::NoCertificate)?;
        Ok(hex::encode(Sha256::digest(leaf.as_ref())))
    };
    tokio::time::timeout(timeout, handshake)
        .await
        .map_err(|_| VerifyError::Timeout(address.to_owned()))?
}
