//! The verdict line (issue 13): the first line of `verify`'s report says what was proven, or
//! the first failing check in words; `--json` carries the same line as `verdict`. DCAP
//! refusals give RFC 3339 dates and a `--now` window that, passed back, repeats the verdict.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::fs;

use serde_json::{Value, json};

use common::fake_agent::unhex;
use common::verdict::{
    NEAR_NOW, QUOTE_REPORT_NOW, SAMPLE_NOW, TD15EX_NOW, fixture, fixture_str, verify,
};

const NEAR: &str = "near-mpc_public_data.json";
const SAMPLE_QUOTE: &str = "dcap-qvl_sample_tdx_quote";
const SAMPLE_COLLATERAL: &str = "dcap-qvl_sample_tdx_quote_collateral.json";

/// The `app-id` payload of NEAR's boot log, read here from the fixture.
fn near_app_id() -> String {
    let doc: Value = serde_json::from_slice(&fs::read(fixture(NEAR)).unwrap()).unwrap();
    doc["tee_participant_info"]["Dstack"]["tcb_info"]["event_log"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"] == "app-id")
        .unwrap()["event_payload"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Every real attestation with collateral: `VERIFIED` with its TCB status and app; none of
/// them has a launcher launch, which the verdict says.
#[test]
fn real_attestations_are_verified_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    verify(
        dir.path(),
        &[&fixture_str(NEAR), "--now", NEAR_NOW, "--allow-no-launch"],
    )
    .says(
        0,
        &format!(
            "VERIFIED: a genuine Intel TDX platform, TCB UpToDate, app {}; ",
            near_app_id()
        ),
    )
    .mentions("no launcher launch in the log (--allow-no-launch), so no workload is proven");
    let cases: [(&str, &[&str]); 3] = [
        (
            QUOTE_REPORT_NOW,
            &[
                &fixture_str("dstack_verifier_quote-report.json"),
                "--collateral",
                &fixture_str("dcap-qvl_sample_tdx_quote_outdated_collateral.json"),
            ],
        ),
        (
            SAMPLE_NOW,
            &[
                "--quote",
                &fixture_str(SAMPLE_QUOTE),
                "--collateral",
                &fixture_str(SAMPLE_COLLATERAL),
            ],
        ),
        (
            TD15EX_NOW,
            &[
                "--quote",
                &fixture_str("dcap-qvl-0.7.1_sample_tdx_quote_td15ex"),
                "--collateral",
                &fixture_str("dcap-qvl-0.7.1_sample_tdx_quote_td15ex_collateral.json"),
            ],
        ),
    ];
    for (now, args) in cases {
        let args = [args, &["--now", now, "--allow-no-launch"]].concat();
        verify(dir.path(), &args).says(
            0,
            "VERIFIED: a genuine Intel TDX platform, TCB UpToDate, app ",
        );
    }
}

/// `--skip-dcap` never says VERIFIED (exit 3), even when every other check passes.
#[test]
fn skip_dcap_is_never_verified() {
    let dir = tempfile::tempdir().unwrap();
    let verdict = verify(
        dir.path(),
        &[&fixture_str(NEAR), "--skip-dcap", "--allow-no-launch"],
    );
    verdict.says(
        3,
        "NOT VERIFIED: the quote's signature was not checked (--skip-dcap), so nothing proves it comes from a genuine TDX platform; every other check passed",
    );
    assert_eq!(verdict.json["ok"], false);
    assert!(
        !verdict
            .text
            .stdout
            .lines()
            .any(|l| l.starts_with("VERIFIED"))
    );
}

/// An expired collateral: dcap-qvl's own message is webpki's Debug text with Unix times (the
/// old report printed it as is); the verdict gives RFC 3339 dates and a `--now` window, and
/// the window's two ends do verify while one second after does not.
#[test]
fn dcap_refusals_give_dates_and_a_window_that_works() {
    let dir = tempfile::tempdir().unwrap();
    let late = "1900000000";
    // The old message, from dcap-qvl directly.
    let collateral: Value =
        serde_json::from_slice(&fs::read(fixture(SAMPLE_COLLATERAL)).unwrap()).unwrap();
    let bytes = |k: &str| unhex(&collateral[k].as_str().unwrap().to_lowercase()).unwrap();
    let text = |k: &str| collateral[k].as_str().unwrap().to_owned();
    let parsed = dcap_qvl::QuoteCollateralV3 {
        pck_crl_issuer_chain: text("pck_crl_issuer_chain"),
        root_ca_crl: bytes("root_ca_crl"),
        pck_crl: bytes("pck_crl"),
        tcb_info_issuer_chain: text("tcb_info_issuer_chain"),
        tcb_info: text("tcb_info"),
        tcb_info_signature: bytes("tcb_info_signature"),
        qe_identity_issuer_chain: text("qe_identity_issuer_chain"),
        qe_identity: text("qe_identity"),
        qe_identity_signature: bytes("qe_identity_signature"),
        pck_certificate_chain: None,
    };
    let quote = fs::read(fixture(SAMPLE_QUOTE)).unwrap();
    let old = dcap_qvl::verify::verify(&quote, &parsed, late.parse().unwrap()).unwrap_err();
    let old = format!("{old:#}");
    assert!(old.contains("UnixTime("), "{old}");

    let base = [
        "--quote",
        &fixture_str(SAMPLE_QUOTE),
        "--collateral",
        &fixture_str(SAMPLE_COLLATERAL),
        "--allow-no-launch",
    ];
    let verdict = verify(dir.path(), &[&base[..], &["--now", late]].concat());
    verdict
        .says(1, "NOT VERIFIED: the quote's signature did not verify: Intel DCAP refused the quote at 2030-03-17T17:46:40Z (--now 1900000000): the collateral's PCK CRL expired on 2025-07-19T10:00:35Z")
        .mentions("fetch fresh collateral");
    assert!(!verdict.line().contains("UnixTime"));
    let window = verdict.line().split("(--now ").nth(2).unwrap();
    let (start, end) = window.split_once(" to ").unwrap();
    let end = end.split(')').next().unwrap();
    let (start, end): (u64, u64) = (start.parse().unwrap(), end.parse().unwrap());
    assert!(start <= SAMPLE_NOW.parse().unwrap() && SAMPLE_NOW.parse::<u64>().unwrap() <= end);
    for now in [start, end] {
        verify(
            dir.path(),
            &[&base[..], &["--now", &now.to_string()]].concat(),
        )
        .says(0, "VERIFIED: a genuine Intel TDX platform");
    }
    for now in [start - 1, end + 1] {
        verify(
            dir.path(),
            &[&base[..], &["--now", &now.to_string()]].concat(),
        )
        .says(
            1,
            "NOT VERIFIED: the quote's signature did not verify: Intel DCAP refused the quote at ",
        );
    }
}

/// Each failure class reads as a sentence naming the failing part, first failure first.
#[test]
fn each_failure_class_in_words() {
    let dir = tempfile::tempdir().unwrap();
    let near = fixture_str(NEAR);
    verify(dir.path(), &["/no/such/input.json"]).says(
        1,
        "NOT VERIFIED: the input could not be read: cannot read /no/such/input.json",
    );
    // A truncated quote.
    let quote = fs::read(fixture(SAMPLE_QUOTE)).unwrap();
    let short = dir.path().join("short.bin");
    fs::write(&short, &quote[..100]).unwrap();
    verify(
        dir.path(),
        &["--quote", short.to_str().unwrap(), "--skip-dcap"],
    )
    .says(
        1,
        "NOT VERIFIED: the quote is not readable: quote is 100 bytes",
    );
    // No collateral: the signature is a failure, not a skip.
    verify(
        dir.path(),
        &["--quote", &fixture_str(SAMPLE_QUOTE), "--allow-no-launch"],
    )
    .says(
        1,
        "NOT VERIFIED: the quote's signature did not verify: no collateral",
    );
    // A changed RTMR3 payload in a real GetQuote reply: the replay fails.
    let mut report: Value =
        serde_json::from_slice(&fs::read(fixture("dstack_verifier_quote-report.json")).unwrap())
            .unwrap();
    let mut log: Vec<Value> = serde_json::from_str(report["event_log"].as_str().unwrap()).unwrap();
    let last = log.iter().rposition(|e| e["imr"] == 3).unwrap();
    log[last]["event_payload"] = json!("00");
    log[last]["digest"] = json!("");
    report["event_log"] = json!(serde_json::to_string(&log).unwrap());
    let changed = dir.path().join("changed.json");
    fs::write(&changed, report.to_string()).unwrap();
    verify(
        dir.path(),
        &[
            changed.to_str().unwrap(),
            "--skip-dcap",
            "--allow-no-launch",
        ],
    )
    .says(
        1,
        "NOT VERIFIED: the event log does not replay to the quote's RTMR3: ",
    );
    // A wrong expected register, on an otherwise verified attestation.
    let wrong = "ab".repeat(48);
    verify(
        dir.path(),
        &[
            &near,
            "--now",
            NEAR_NOW,
            "--allow-no-launch",
            "--expect-mrtd",
            &wrong,
        ],
    )
    .says(
        1,
        &format!("NOT VERIFIED: the expected mrtd does not hold: expected {wrong}, quote has "),
    );
    // No launch where one is required.
    verify(dir.path(), &[&near, "--now", NEAR_NOW])
        .says(1, "NOT VERIFIED: the launcher's events do not prove a launch: no trusted-launcher launch in the log");
}
