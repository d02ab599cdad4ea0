//! Plain files for any other program: the certificate (leaf, and the chain after it when no
//! chain file is configured), an optional chain file, the key. Test and reload are optional.

use super::TargetFile;
use crate::config::TargetConfig;

pub(super) fn files(config: &TargetConfig) -> Vec<TargetFile> {
    super::key_cert_chain(config)
}
