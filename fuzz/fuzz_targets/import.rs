//! Any bytes, with or without a password, through the whole import decoder: never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

const SECRET: &str = "pw-7f3a9c1e";

fuzz_target!(|data: &[u8]| {
    // The first byte picks the password case, so PKCS#12 paths are reached with and without one.
    let (password, input) = match data.split_first() {
        Some((0, rest)) => (None, rest),
        Some((1, rest)) => (Some(""), rest),
        Some((_, rest)) => (Some(SECRET), rest),
        None => (None, data),
    };
    let decoded = cmp_pki::decode_import(input, password);
    for cert in &decoded.certificates {
        assert_eq!(cert.fingerprint_sha256.len(), 64);
    }
    // A password is never echoed back (unless the input itself holds the same text).
    let input_has_secret = input.windows(SECRET.len()).any(|w| w == SECRET.as_bytes());
    if password == Some(SECRET) && !input_has_secret {
        assert!(decoded.rejected.iter().all(|r| !r.detail.contains(SECRET)));
    }
});
