//! cmp-vault against a real OpenBao dev server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

mod client;
mod kv;
mod tokens;

use std::sync::Arc;

use cmp_testkit::openbao::OpenBao;
use cmp_vault::{Credentials, Secret, VaultClient, VaultSettings};

/// A client of `bao` with `token`.
fn client_with_token(bao: &OpenBao, token: &str) -> Arc<VaultClient> {
    let settings = VaultSettings::new(&bao.address);
    Arc::new(VaultClient::new(&settings, Credentials::Token(Secret::new(token))).unwrap())
}
