//! Sealing to an EC key: only that key, under the same context, opens the box.

use crate::keygen::{KeySpec, generate_key};
use crate::seal::{SealError, open, seal};

#[test]
fn only_the_recipients_key_under_the_same_context_opens_a_sealed_secret() {
    for spec in [KeySpec::EcdsaP256, KeySpec::EcdsaP384] {
        let (agent, other) = (generate_key(spec).unwrap(), generate_key(spec).unwrap());
        let secret = b"-----BEGIN PRIVATE KEY-----\nMIG...\n-----END PRIVATE KEY-----\n";
        let sealed = seal(agent.public_key_der(), secret, b"job-1").unwrap();
        assert!(!sealed.ciphertext.windows(10).any(|w| secret.windows(10).any(|s| s == w)));
        assert_eq!(open(agent.pkcs8_der(), &sealed, b"job-1").unwrap().as_slice(), secret);
        // Another key, another context, or a changed byte: nothing.
        assert_eq!(open(other.pkcs8_der(), &sealed, b"job-1"), Err(SealError::CannotOpen));
        assert_eq!(open(agent.pkcs8_der(), &sealed, b"job-2"), Err(SealError::CannotOpen));
        let mut tampered = sealed.clone();
        tampered.ciphertext[0] ^= 1;
        assert_eq!(open(agent.pkcs8_der(), &tampered, b"job-1"), Err(SealError::CannotOpen));
        // Each seal is new: a fresh ephemeral key.
        assert_ne!(seal(agent.public_key_der(), secret, b"job-1").unwrap(), sealed);
    }
    let rsa = generate_key(KeySpec::Rsa2048).unwrap();
    assert_eq!(seal(rsa.public_key_der(), b"x", b"c"), Err(SealError::UnsupportedKey));
    assert_eq!(seal(b"not a key", b"x", b"c"), Err(SealError::UnsupportedKey));
}
