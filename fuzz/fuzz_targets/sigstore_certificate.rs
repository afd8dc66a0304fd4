//! Fulcio certificates and public keys: the bytes as a DER leaf through the chain check to
//! the built-in root, the embedded-SCT parser (RFC 6962 TLS vectors) and the identity
//! extensions, and as an SPKI / PEM public key. Invariants (checked in
//! `fuzzing::sigstore_parsers`): an identity and issuer read are spelt in the DER; a verified
//! leaf yields its own identity and key; the rebuilt precertificate TBS is one TLV and the
//! SCT list is bytes of the certificate; a key keeps its DER and PEM → DER → key round trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trusted_launcher::fuzzing::sigstore_parsers::certificate;

fuzz_target!(|bytes: &[u8]| {
    if let Err(broken) = certificate(bytes) {
        panic!("{broken}");
    }
});
