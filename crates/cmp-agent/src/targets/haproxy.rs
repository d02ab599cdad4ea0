//! HAProxy: `bind ... ssl crt FILE` wants leaf, chain and key in one PEM, so one file and
//! one rename: the pair on disk can never be mismatched. `haproxy -c` loads it.

use super::{Content, TargetFile, file};
use crate::config::TargetConfig;

pub(super) fn files(config: &TargetConfig) -> Vec<TargetFile> {
    file("pem", &config.pem, Content::LeafChainKey).into_iter().collect()
}
