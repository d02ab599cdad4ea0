//! [`Secret`]: a value that must not leak (a key, a token, a password): zeroed when dropped,
//! printed by `Debug` as `Secret(<redacted>)`, and read only through [`Secret::expose`].

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::{Zeroize, Zeroizing};

/// A secret value of type `T` (`String` for tokens, `Vec<u8>` for keys).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret<T: Zeroize>(Zeroizing<T>);

impl<T: Zeroize> Secret<T> {
    /// Wraps `value`; it is zeroed when the secret is dropped.
    pub fn new(value: impl Into<T>) -> Secret<T> {
        Secret(Zeroizing::new(value.into()))
    }

    /// The value itself, for the one header, body or key operation that needs it; do not copy
    /// it into buffers that outlive the use.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T: Zeroize> From<Zeroizing<T>> for Secret<T> {
    fn from(value: Zeroizing<T>) -> Secret<T> {
        Secret(value)
    }
}

impl From<&str> for Secret<String> {
    fn from(value: &str) -> Secret<String> {
        Secret::new(value)
    }
}

impl<T: Zeroize> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Serialized as the value itself: only for the secret store's own sealed records, never for
/// an API answer or a log.
impl<T: Zeroize + Serialize> Serialize for Secret<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de, T: Zeroize + Deserialize<'de>> Deserialize<'de> for Secret<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        T::deserialize(deserializer).map(|value| Secret(Zeroizing::new(value)))
    }
}

#[cfg(test)]
mod tests {
    use super::Secret;

    #[test]
    fn a_secret_never_prints_and_round_trips_as_its_value() {
        let token: Secret<String> = Secret::new("s.abc");
        assert_eq!(format!("{token:?}"), "Secret(<redacted>)");
        assert_eq!(format!("{:?}", Some(&token)), "Some(Secret(<redacted>))");
        assert_eq!(token.expose(), "s.abc");
        let json = serde_json::to_string(&token).unwrap_or_default();
        assert_eq!(json, "\"s.abc\"");
        let back: Secret<String> = serde_json::from_str(&json).unwrap_or_default();
        assert_eq!(back, token);
    }
}
