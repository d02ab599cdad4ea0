//! nginx: `ssl_certificate` takes the leaf followed by the chain in one file,
//! `ssl_certificate_key` the key. `nginx -t` loads both (a mismatched pair fails it).

use super::{Content, TargetFile, file};
use crate::config::TargetConfig;

pub(super) fn files(config: &TargetConfig) -> Vec<TargetFile> {
    [file("key", &config.key, Content::Key), file("cert", &config.cert, Content::LeafAndChain)]
        .into_iter()
        .flatten()
        .collect()
}
