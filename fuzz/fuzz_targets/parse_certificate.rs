//! Any bytes as a DER certificate: a result, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = cmp_pki::parse_certificate(data);
});
