//! The encodings Sigstore material arrives in and the documents read with them: base64,
//! RFC 3339 times, a trusted root (`trusted_root` file) and a `trusted-launcher.signer`
//! payload. Invariants (checked in `fuzzing::sigstore_parsers`): base64 encode → decode is
//! the identity; seconds → RFC 3339 → seconds is the identity for years 0–9999 and a parsed
//! time writes back to text that reads the same; a root's digest is of its bytes and its
//! keys read back; a signer payload that parses is canonical.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trusted_launcher::fuzzing::sigstore_parsers::encodings;

fuzz_target!(|bytes: &[u8]| {
    if let Err(broken) = encodings(bytes) {
        panic!("{broken}");
    }
});
