//! An OpenID Connect relying party for CMP: what `cmpd` needs to log people in and to accept
//! machine JWTs, and what `cmpctl login` needs to get a token.
//!
//! - [`Provider`] reads the provider's discovery document once (lazily, so that `cmpd` starts
//!   while the provider is down), keeps its signing keys, fetches them again when a token names
//!   a key it does not know (at most once per [`ProviderSettings::key_refetch_interval`]), and
//!   checks ID tokens ([`Provider::verify_id_token`]) and JWT access tokens
//!   ([`Provider::verify_access_token`]): signature, `alg` from the provider's own list (never
//!   `none` or a shared-secret HMAC), issuer, audience, expiry and not-before with a small
//!   leeway, and the nonce. Time is passed in.
//! - [`Provider::begin_login`] and [`Provider::exchange_code`]: the authorization code flow
//!   with PKCE (S256), `state` and `nonce`; [`Provider::end_session_url`] for RP-initiated
//!   logout.
//! - [`Provider::start_device_login`] and [`Provider::poll_device_login`]: the device
//!   authorization flow (RFC 8628) for the command line.
//!
//! Why not the `openidconnect` crate: it verifies signatures with RustCrypto's `rsa`, `p256`,
//! `p384` and `ed25519-dalek`, a second crypto stack beside the workspace's aws-lc-rs, and its
//! typed claims need `serde_with` and `chrono`. The protocol around the signature check is a
//! few form posts; the signature and claim checks are `jsonwebtoken`'s, on aws-lc-rs.

mod error;
mod flows;
mod keys;
mod provider;
mod tokens;

pub use error::OidcError;
pub use flows::{DeviceLogin, DevicePoll, LoginStart, TokenResponse};
pub use provider::{Provider, ProviderMetadata, ProviderSettings};
pub use tokens::{Claims, VerifiedToken};

/// 32 random bytes, URL-safe base64 without padding: state, nonce, PKCE verifier, session ids.
pub fn random_token() -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
