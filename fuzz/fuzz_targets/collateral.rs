//! `verify --quote FILE --collateral FILE` with Intel's sample quote and the collateral
//! fuzzed: `verify::collateral::parse` (hex or byte-array fields), then dcap-qvl's checks of
//! CRLs, TCB info and QE identity. Invariants: see `common/verify.rs`; and collateral that
//! verifies carries the sample's Intel-signed TCB info and QE identity, byte for byte.
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

fuzz_target!(|bytes: &[u8]| {
    let Some(report) = verify_quote(QUOTE, bytes, &verify::options(NOW)) else {
        return;
    };
    verify::check(&report);
    if report.signature_verified {
        let given: serde_json::Value = serde_json::from_slice(bytes).expect("was parsed");
        let real: serde_json::Value = serde_json::from_slice(COLLATERAL).expect("fixture");
        for field in ["tcb_info", "qe_identity"] {
            assert_eq!(
                given[field], real[field],
                "{field} changed and still verified"
            );
        }
    }
});
