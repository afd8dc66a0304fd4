//! Input from stdin, a huge event log bounded, and the text and JSON output shapes.

use std::fmt::Write as _;
use std::time::Instant;

use serde_json::Value;

use crate::attestation::fake_quote;
use crate::common::Launcher;
use crate::common::fake_agent::{EVENT_TYPE, hex, v1_digest};
use crate::{
    NEAR, NEAR_NOW, OUTDATED_COLLATERAL, QUOTE_REPORT, QUOTE_REPORT_NOW, Report, Scratch, TDX_LITE,
    VERIFY_LIMIT, common, fixture_bytes, fixture_str, run_with_stdin,
};

/// stdin `-` is the same input as the file.
#[test]
fn stdin_input_verifies() {
    let s = Scratch::new();
    let mut launcher = Launcher::new(s.path());
    launcher.args([
        "verify",
        "-",
        "--collateral",
        &fixture_str(OUTDATED_COLLATERAL),
        "--now",
        QUOTE_REPORT_NOW,
        "--allow-no-launch",
        "--json",
    ]);
    let run = run_with_stdin(&launcher, &fixture_bytes(QUOTE_REPORT));
    assert_eq!(run.status, Some(0), "{}\n{}", run.stdout, run.stderr);
    let json: Value = serde_json::from_str(&run.stdout).unwrap();
    let report = Report {
        run,
        json,
        skip_dcap: false,
    };
    report.passes().has(&[("quote.signature", "passed")]);
    let from_file = s.report(&[
        &fixture_str(QUOTE_REPORT),
        "--collateral",
        &fixture_str(OUTDATED_COLLATERAL),
        "--now",
        QUOTE_REPORT_NOW,
        "--allow-no-launch",
    ]);
    assert_eq!(report.measurements(), from_file.measurements());

    // A binary quote on stdin with --quote - (if supported) is not required; the NEAR
    // shape through stdin is.
    let mut launcher = Launcher::new(s.path());
    launcher.args(["verify", "-", "--now", NEAR_NOW, "--allow-no-launch"]);
    let run = run_with_stdin(&launcher, &fixture_bytes(NEAR));
    assert_eq!(run.status, Some(0), "{}\n{}", run.stdout, run.stderr);
}

/// 200k events: bounded time, no panic; either verified or refused as too large.
#[test]
fn huge_event_log_is_bounded() {
    let s = Scratch::new();
    let count = 200_000;
    let mut text = String::with_capacity(count * 90);
    // dstack's boot ends with system-ready; the 200k events come after it.
    let mut acc = common::fake_agent::extend(&[0u8; 48], &v1_digest("system-ready", b""));
    let _ = writeln!(
        text,
        "{{\"imr\":3,\"event_type\":{EVENT_TYPE},\"digest\":\"\",\"event\":\"system-ready\",\"event_payload\":\"\"}}"
    );
    for i in 0..count {
        let payload = u32::try_from(i).unwrap().to_le_bytes();
        acc = common::fake_agent::extend(&acc, &v1_digest("e", &payload));
        let _ = writeln!(
            text,
            "{{\"imr\":3,\"event_type\":{EVENT_TYPE},\"digest\":\"\",\"event\":\"e\",\"event_payload\":\"{}\"}}",
            hex(&payload)
        );
    }
    let log = s.write("huge.jsonl", &text);
    let quote = s.write("quote.bin", fake_quote(&acc, b""));
    let start = Instant::now();
    let args = [
        "--quote",
        &quote,
        "--event-log",
        &log,
        "--skip-dcap",
        "--allow-no-launch",
    ];
    let report = s.report(&args);
    let took = start.elapsed();
    assert!(took < VERIFY_LIMIT, "took {took:?}");
    match report.run.status {
        Some(3) => {
            report.has(&[("rtmr3.replay", "passed")]);
        }
        Some(1) => {
            assert_eq!(report.status("input"), "failed", "{}", report.summary());
        }
        other => panic!("exit {other:?}\n{}", report.summary()),
    }

    // One more byte in one payload: must not pass.
    let tampered = text.replacen(
        "\"event_payload\":\"00000000\"",
        "\"event_payload\":\"01000000\"",
        1,
    );
    let log = s.write("huge-tampered.jsonl", &tampered);
    let report = s.report(&[
        "--quote",
        &quote,
        "--event-log",
        &log,
        "--skip-dcap",
        "--allow-no-launch",
    ]);
    assert_eq!(report.run.status, Some(1), "{}", report.summary());
}

/// Text output shape: every check on its own line, verdict last, JSON has every field.
#[test]
fn output_shapes() {
    let s = Scratch::new();
    let report = s.report(&[&fixture_str(TDX_LITE), "--skip-dcap", "--allow-no-launch"]);
    for key in [
        "ok",
        "signature_verified",
        "launches",
        "checks",
        "tcb_status",
        "advisory_ids",
        "measurements",
        "events",
    ] {
        assert!(
            report.json.get(key).is_some(),
            "missing {key}: {:#}",
            report.json
        );
    }
    for key in [
        "mrtd",
        "mr_config_id",
        "rtmr0",
        "rtmr1",
        "rtmr2",
        "rtmr3",
        "report_data",
    ] {
        let value = report.measurement(key);
        let expected = if key == "report_data" { 128 } else { 96 };
        assert_eq!(value.len(), expected, "{key}: {value}");
    }
    for check in report.checks() {
        assert!(
            check["name"].is_string() && check.get("detail").is_some(),
            "{check}"
        );
    }
    // Check names are unique.
    let mut names: Vec<&str> = report
        .checks()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    let count = names.len();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), count, "duplicate check names");
    // Same checks, same order, in text and JSON.
    let run = s.verify(&[&fixture_str(TDX_LITE), "--skip-dcap", "--allow-no-launch"]);
    let text_names: Vec<&str> = run
        .stdout
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            match words.next() {
                Some("PASS" | "FAIL" | "SKIP") => words.next(),
                _ => None,
            }
        })
        .collect();
    let json_names: Vec<&str> = report
        .checks()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(text_names, json_names);
}
