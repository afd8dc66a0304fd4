//! `verify INPUT`: a JSON attestation document (dstack `GetQuote` or `Info` reply, NEAR's
//! public data with its collateral, `phala cvms attestation --json`), recognised by
//! `verify::input::from_document` and checked by every check `verify` runs. Invariants: see
//! `common/verify.rs`.
#![no_main]

#[path = "../common/verify.rs"]
mod verify;

use libfuzzer_sys::fuzz_target;
use trusted_launcher::fuzzing::verify_document;

/// When NEAR's public data fixture's collateral is valid (tests/verify/main.rs `NEAR_NOW`).
const NOW: u64 = 1_786_622_400;

fuzz_target!(|bytes: &[u8]| {
    if let Some(report) = verify_document(bytes, &verify::options(NOW)) {
        verify::check(&report);
    }
});
