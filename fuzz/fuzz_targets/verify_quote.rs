//! `verify --quote FILE --collateral FILE` with the quote fuzzed (raw or hex, as a quote file
//! may be) and Intel's sample collateral: the quote's structure, then dcap-qvl's signature,
//! certificate chain and TCB checks. Invariants: see `common/verify.rs`; and a quote whose
//! signature verifies has the sample's header and TD report, byte for byte (the fuzzer
//! cannot sign, so any other register value that verified would be a forgery).
#![no_main]

#[path = "../common/verify.rs"]
mod verify;

use libfuzzer_sys::fuzz_target;
use trusted_launcher::fuzzing::verify_quote;

/// Intel's sample v4 quote shipped with dcap-qvl, and its collateral (tests/fixtures).
const QUOTE: &[u8] = include_bytes!("../../tests/fixtures/dcap-qvl_sample_tdx_quote");
const COLLATERAL: &[u8] =
    include_bytes!("../../tests/fixtures/dcap-qvl_sample_tdx_quote_collateral.json");
/// When the sample collateral is valid (tests/verify/main.rs `SAMPLE_NOW`).
const NOW: u64 = 1_751_624_655;
/// Header and TD report of a v4 quote: what its signature covers.
const SIGNED_BODY: usize = 48 + 584;

fuzz_target!(|bytes: &[u8]| {
    let Some(report) = verify_quote(bytes, COLLATERAL, &verify::options(NOW)) else {
        return;
    };
    verify::check(&report);
    if report.signature_verified {
        let quote = trusted_launcher::fuzzing::quote_file(bytes).unwrap_or_default();
        assert_eq!(
            quote.get(..SIGNED_BODY),
            QUOTE.get(..SIGNED_BODY),
            "a changed TD report verified"
        );
    }
});
