//! gitsign commit signatures: the bytes as a commit object from a reused store through
//! `gitsign::verify` (split of the gpgsig header, PEM, CMS, embedded Rekor entry), as a
//! gpgsig's DER CMS through `gitsign::verify_cms` over the real offline commit, and through
//! the hand-written DER and protobuf walkers. Invariants (checked in `fuzzing::sigstore` and
//! `fuzzing::sigstore_parsers`): the split puts back together to the commit; an accepted
//! commit signs what a real gitsign signature signed and names the policy's signer; TLV
//! children put end to end are their parent's content; protobuf fields and varints round
//! trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trusted_launcher::fuzzing::sigstore::{gitsign_cms, gitsign_commit};
use trusted_launcher::fuzzing::sigstore_parsers::walkers;

fuzz_target!(|bytes: &[u8]| {
    if let Err(broken) = gitsign_commit(bytes) {
        panic!("{broken}");
    }
    if let Err(broken) = gitsign_cms(bytes) {
        panic!("{broken}");
    }
    if let Err(broken) = walkers(bytes) {
        panic!("{broken}");
    }
});
