//! cosign `.sig` tag layers: a simple-signing payload with its signature, certificate and
//! Rekor bundle annotations (given in containers/image's `signature-1.json` shape: `payload`
//! base64 and `annotations`), through `cosign::verify` as the image launch checks each layer,
//! against the fixtures' digests with a key-only, a key + Rekor and a keyless policy.
//! Invariants (checked in `fuzzing::sigstore`): an accepted layer's payload names the digest
//! and cosign's type, its signature verifies with the signer's key over the payload, and the
//! signer is the policy's.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trusted_launcher::fuzzing::sigstore::cosign_layer;

fuzz_target!(|bytes: &[u8]| {
    if let Err(broken) = cosign_layer(bytes) {
        panic!("{broken}");
    }
});
