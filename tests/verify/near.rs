//! NEAR's public data: verified with its image digest, and its expectations right and wrong.

use serde_json::Value;

use crate::attestation::{near, near_image_digest, near_quote, payload_of, register, sha256_hex};
use crate::common::fake_agent::{QUOTE_MRTD, QUOTE_REPORT_DATA, QUOTE_RTMR0, QUOTE_RTMR3, hex};
use crate::{
    NEAR, NEAR_COMPOSE_HASH, NEAR_NOW, Scratch, fixture_bytes, fixture_str, last_line, text_status,
    wrong_hex,
};

// --- 1. NEAR's public data -----------------------------------------------------------------

/// NEAR's public data verifies at its `now`: DCAP `UpToDate` with the collateral it carries,
/// every replay, MRCONFIGID and app-compose checks, and the image digest as an expected event.
#[test]
fn near_public_data_verifies_with_its_image_digest() {
    let s = Scratch::new();
    let near_path = fixture_str(NEAR);
    let expect_event = format!("mpc-image-digest={}", near_image_digest());
    let report = s.report(&[
        &near_path,
        "--now",
        NEAR_NOW,
        "--allow-no-launch",
        "--expect-event",
        &expect_event,
    ]);
    report.passes().has(&[
        ("input", "passed"),
        ("quote.structure", "passed"),
        ("quote.signature", "passed"),
        ("quote.tcb_status", "passed"),
        ("event_log.digests", "passed"),
        ("rtmr0.replay", "passed"),
        ("rtmr1.replay", "passed"),
        ("rtmr2.replay", "passed"),
        ("rtmr3.replay", "passed"),
        ("tcb_info.registers", "passed"),
        ("mrconfigid.compose_hash", "passed"),
        ("compose_hash.evidence_app_compose", "passed"),
        ("compose_hash.app_compose", "skipped"),
        ("launcher.events", "skipped"),
        ("expect.event:mpc-image-digest", "passed"),
    ]);
    assert_eq!(
        report.json["tcb_status"],
        "UpToDate",
        "{}",
        report.summary()
    );
    assert!(report.json["advisory_ids"].is_array());

    let quote = near_quote();
    assert_eq!(report.measurement("mrtd"), register(&quote, QUOTE_MRTD));
    assert_eq!(report.measurement("rtmr0"), register(&quote, QUOTE_RTMR0));
    assert_eq!(report.measurement("rtmr3"), register(&quote, QUOTE_RTMR3));
    assert_eq!(
        report.measurement("report_data"),
        hex(&quote[QUOTE_REPORT_DATA..QUOTE_REPORT_DATA + 64])
    );
    assert_eq!(
        report.measurement("mr_config_id"),
        format!("01{NEAR_COMPOSE_HASH}{}", "00".repeat(15))
    );

    // `events`: the RTMR3 events with recomputed digests, equal to the log's own.
    let log = near()["tcb_info"]["event_log"].as_array().unwrap().clone();
    let rtmr3: Vec<&Value> = log.iter().filter(|e| e["imr"] == 3).collect();
    let events = report.json["events"].as_array().unwrap();
    assert_eq!(events.len(), rtmr3.len(), "{:#}", report.json["events"]);
    for (got, want) in events.iter().zip(&rtmr3) {
        assert_eq!(got["imr"], 3);
        assert_eq!(got["event"], want["event"]);
        assert_eq!(got["event_payload"], want["event_payload"]);
        assert_eq!(got["digest"], want["digest"]);
    }
    assert_eq!(events.last().unwrap()["event"], "mpc-image-digest");

    // The text checklist says the same, and ends with the verdict.
    let run = s.verify(&[
        &near_path,
        "--now",
        NEAR_NOW,
        "--allow-no-launch",
        "--expect-event",
        &expect_event,
    ]);
    run.success();
    assert_eq!(text_status(&run, "quote.signature"), "PASS");
    assert_eq!(text_status(&run, "expect.event:mpc-image-digest"), "PASS");
    assert_eq!(text_status(&run, "launcher.events"), "SKIP");
    assert!(run.stdout.contains("UpToDate"), "{}", run.stdout);
    assert!(
        last_line(&run).starts_with("verification passed"),
        "{}",
        run.stdout
    );
    // Every check line starts with one of the three words.
    let checks = report.checks().len();
    let lines = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("PASS ") || l.starts_with("FAIL ") || l.starts_with("SKIP "))
        .count();
    assert_eq!(lines, checks, "{}", run.stdout);

    // The app-compose given as a file (byte-identical to the one inside) also passes.
    assert_eq!(
        sha256_hex(&fixture_bytes("near-mpc_app_compose.json")),
        NEAR_COMPOSE_HASH
    );
    s.report(&[
        &near_path,
        "--now",
        NEAR_NOW,
        "--allow-no-launch",
        "--app-compose",
        &fixture_str("near-mpc_app_compose.json"),
    ])
    .passes()
    .has(&[("compose_hash.app_compose", "passed")]);
}

/// One expectation: flag, value, and the check it produces.
type Expectation = (&'static str, String, String);

/// NEAR's true values for every expectation that does not need launcher events.
fn near_right_expectations() -> Vec<Expectation> {
    let quote = near_quote();
    let log = near()["tcb_info"]["event_log"].as_array().unwrap().clone();
    let rtmr = |i: usize| register(&quote, QUOTE_RTMR0 + 48 * i);
    vec![
        (
            "--expect-event",
            format!("mpc-image-digest={}", near_image_digest()),
            "expect.event:mpc-image-digest".to_owned(),
        ),
        (
            "--expect-compose-hash",
            NEAR_COMPOSE_HASH.to_owned(),
            "expect.compose_hash".to_owned(),
        ),
        (
            "--expect-app-id",
            payload_of(&log, "app-id"),
            "expect.app_id".to_owned(),
        ),
        (
            "--expect-mrtd",
            register(&quote, QUOTE_MRTD),
            "expect.mrtd".to_owned(),
        ),
        ("--expect-rtmr0", rtmr(0), "expect.rtmr0".to_owned()),
        ("--expect-rtmr1", rtmr(1), "expect.rtmr1".to_owned()),
        ("--expect-rtmr2", rtmr(2), "expect.rtmr2".to_owned()),
        (
            "--expect-report-data",
            hex(&quote[QUOTE_REPORT_DATA..QUOTE_REPORT_DATA + 64]),
            "expect.report_data".to_owned(),
        ),
    ]
}

/// Wrong values, one per expectation kind (launcher ones cannot hold: NEAR's log has no
/// launcher events).
fn near_wrong_expectations() -> Vec<Expectation> {
    let digest = near_image_digest();
    let mut wrong: Vec<Expectation> = near_right_expectations()
        .into_iter()
        .map(|(flag, value, check)| (flag, wrong_hex(&value), check))
        .collect();
    wrong.extend([
        (
            "--expect-event",
            format!("no-such-event={digest}"),
            "expect.event:no-such-event".to_owned(),
        ),
        // A prefix that is not the whole value: zero padding makes it differ.
        (
            "--expect-report-data",
            hex(&near_quote()[QUOTE_REPORT_DATA..QUOTE_REPORT_DATA + 4]),
            "expect.report_data".to_owned(),
        ),
        // A launch is expected but the log has none: `--allow-no-launch` does not cover that.
        (
            "--expect-image",
            format!("sha256:{digest}"),
            "launcher.events".to_owned(),
        ),
        (
            "--expect-commit",
            "ab".repeat(20),
            "launcher.events".to_owned(),
        ),
        (
            "--expect-config-sha256",
            "cd".repeat(32),
            "launcher.events".to_owned(),
        ),
        (
            "--expect-compose-sha256",
            "ef".repeat(32),
            "launcher.events".to_owned(),
        ),
    ]);
    wrong
}

/// Every expectation kind passes with NEAR's values, all at once.
#[test]
fn near_expectations_pass_when_right() {
    let s = Scratch::new();
    let near_path = fixture_str(NEAR);
    let right = near_right_expectations();
    let mut args: Vec<&str> = vec![&near_path, "--now", NEAR_NOW, "--allow-no-launch"];
    for (flag, value, _) in &right {
        args.push(flag);
        args.push(value);
    }
    let all_right = s.report(&args);
    all_right.passes();
    for (_, _, check) in &right {
        all_right.has(&[(check, "passed")]);
    }

    // Zero padded to 64 bytes: report data without its trailing zero bytes also matches.
    let quote = near_quote();
    let report_data = hex(&quote[QUOTE_REPORT_DATA..QUOTE_REPORT_DATA + 64]);
    let trimmed = report_data.trim_end_matches("00");
    assert!(trimmed.len() < report_data.len());
    s.report(&[
        &near_path,
        "--now",
        NEAR_NOW,
        "--allow-no-launch",
        "--expect-report-data",
        trimmed,
    ])
    .passes()
    .has(&[("expect.report_data", "passed")]);

    // Uppercase hex is either the same value or a usage error; never a mismatch verdict.
    let run = s.verify(&[
        &near_path,
        "--now",
        NEAR_NOW,
        "--allow-no-launch",
        "--expect-mrtd",
        &register(&quote, QUOTE_MRTD).to_uppercase(),
    ]);
    assert!(
        matches!(run.status, Some(0 | 2)),
        "{:?}\n{}\n{}",
        run.status,
        run.stdout,
        run.stderr
    );
}

/// Each wrong expectation fails, alone and among right ones, and only its own check fails.
#[test]
fn near_expectations_fail_when_wrong() {
    let s = Scratch::new();
    let near_path = fixture_str(NEAR);
    let right = near_right_expectations();
    for (flag, value, check) in &near_wrong_expectations() {
        let report = s.report(&[
            &near_path,
            "--now",
            NEAR_NOW,
            "--allow-no-launch",
            flag,
            value,
        ]);
        report
            .fails(&[check])
            .has(&[("quote.signature", "passed"), ("rtmr3.replay", "passed")]);
        // `--expect-event` is repeatable; the other flags are given once.
        let others: Vec<&Expectation> = right
            .iter()
            .filter(|(f, _, c)| (f != flag || *f == "--expect-event") && c != check)
            .collect();
        let mut args: Vec<&str> = vec![
            &near_path,
            "--now",
            NEAR_NOW,
            "--allow-no-launch",
            flag,
            value,
        ];
        for (right_flag, right_value, _) in &others {
            args.push(right_flag);
            args.push(right_value);
        }
        let mixed = s.report(&args);
        mixed.fails(&[check]);
        for (_, _, right_check) in &others {
            mixed.has(&[(right_check, "passed")]);
        }
    }
}
