//! What every `verify` target asserts of a report: `verify` passes only what the evidence
//! proves, and its output is well formed.

use trusted_launcher::verify::{Report, VerifyOptions};

/// `verify`'s defaults, with the clock fixed at `now` (the fixture's collateral is valid then).
pub fn options(now: u64) -> VerifyOptions {
    VerifyOptions {
        now,
        allowed_tcb: vec!["UpToDate".to_owned()],
        ..VerifyOptions::default()
    }
}

pub fn check(report: &Report) {
    if report.exit_code() == 0 {
        assert!(
            report.signature_verified,
            "passed without a verified signature"
        );
        assert!(report.ok, "exit 0 without ok");
    }
    let json: serde_json::Value =
        serde_json::from_str(&report.json()).expect("verify --json is not JSON");
    assert_eq!(json["ok"], serde_json::Value::Bool(report.ok), "--json ok");
    let text = report.text();
    assert!(!text.is_empty(), "empty text report");
}
