//! Sigstore bundles (JSON, v0.1–v0.3; message signatures and DSSE envelopes with their Rekor
//! entries) through `bundle::verify`, as the image launch checks a referrer's bundle, under
//! fixed subjects and policies from the real fixtures; and the same bytes as a Rekor entry
//! body through `rekor::check_body`, as checked once a SET verified. Invariants (checked in
//! `fuzzing::sigstore`): an accepted bundle names the policy's signer, carries an inclusion
//! promise, and its signature verifies with the signer's key over the artifact (or over the
//! spec's PAE of a statement naming the artifact); `bundle::pae` is the spec's PAE; an
//! accepted body records the expected signature and payload hash.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trusted_launcher::fuzzing::sigstore::{bundle, rekor_body};

fuzz_target!(|bytes: &[u8]| {
    if let Err(broken) = bundle(bytes) {
        panic!("{broken}");
    }
    if let Err(broken) = rekor_body(bytes) {
        panic!("{broken}");
    }
});
