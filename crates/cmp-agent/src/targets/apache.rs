//! Apache httpd: `SSLCertificateFile` the leaf (and the chain after it when no
//! `SSLCertificateChainFile` is configured), `SSLCertificateKeyFile` the key. Neither
//! `apache2 -t` nor a graceful reload loads the key, and a graceful reload onto a mismatched
//! pair stops Apache: the engine's pair check before the reload is what protects it.

use super::TargetFile;
use crate::config::TargetConfig;

pub(super) fn files(config: &TargetConfig) -> Vec<TargetFile> {
    super::key_cert_chain(config)
}
