//! Robustness: truncated, malformed and unreadable inputs fail cleanly, never a panic.

use std::time::Instant;

use serde_json::json;

use crate::attestation::{getquote_parts, with_parts};
use crate::common::Launcher;
use crate::common::fake_agent::{EVENT_TYPE, hex};
use crate::{
    CRABBOX_INFO, NEAR, QUOTE_REPORT, QUOTE_REPORT_NOW, Report, SAMPLE_QUOTE, Scratch,
    TD15EX_QUOTE, TDX_LITE, VERIFY_LIMIT, fixture_bytes, fixture_json, fixture_str, last_line,
    run_with_stdin, text_line,
};

// --- 9. robustness -------------------------------------------------------------------------

/// A failed verification that names the input problem: exit 1, `input` or
/// `quote.structure` failed, and something said on stdout or stderr.
#[track_caller]
fn rejects(report: &Report, context: &str) {
    assert_eq!(
        report.run.status,
        Some(1),
        "{context}\n{}",
        report.summary()
    );
    assert_eq!(report.json["ok"], false, "{context}");
    let failed: Vec<&str> = report
        .checks()
        .iter()
        .filter(|c| c["status"] == "failed")
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(
        failed.contains(&"input") || failed.contains(&"quote.structure"),
        "{context}: expected input or quote.structure to fail\n{}",
        report.summary()
    );
    let detail = failed.iter().map(|n| report.detail(n)).collect::<String>();
    assert!(
        detail.len() > 4,
        "{context}: no detail\n{}",
        report.summary()
    );
}

/// Every truncation of a real quote fails cleanly, as a file and inside a `GetQuote` JSON.
#[test]
fn truncated_quotes_never_panic() {
    let s = Scratch::new();
    let quote = fixture_bytes(SAMPLE_QUOTE);
    let mut lengths: Vec<usize> = (0..=640).step_by(8).collect();
    lengths.extend([
        1, 2, 7, 47, 49, 53, 54, 55, 183, 519, 567, 631, 633, 635, 637, 700, 1000, 4000, 4935,
    ]);
    for len in lengths {
        let path = s.write("truncated.bin", &quote[..len]);
        let report = s.report(&["--quote", &path, "--skip-dcap"]);
        rejects(&report, &format!("binary quote of {len} bytes"));
        if len % 64 == 0 {
            let path = s.write("truncated.hex", hex(&quote[..len]));
            rejects(
                &s.report(&["--quote", &path, "--skip-dcap"]),
                &format!("hex quote of {len} bytes"),
            );
        }
    }
    let (full, log) = getquote_parts(&fixture_json(QUOTE_REPORT));
    for len in [0, 48, 100, 520, 632, 636, 4000] {
        let path = s.write_json(
            "truncated.json",
            &with_parts(&fixture_json(QUOTE_REPORT), &full[..len], &log),
        );
        rejects(
            &s.report(&[&path, "--skip-dcap"]),
            &format!("GetQuote with a {len}-byte quote"),
        );
    }
    // v5 truncated inside its longer body.
    let v5 = fixture_bytes(TD15EX_QUOTE);
    for len in [54, 600, 938, 940] {
        let path = s.write("v5.bin", &v5[..len]);
        rejects(
            &s.report(&["--quote", &path, "--skip-dcap"]),
            &format!("v5 quote of {len} bytes"),
        );
    }
}

/// Wrong lengths and header fields in an otherwise whole quote.
#[test]
fn malformed_quote_headers_fail_cleanly() {
    let s = Scratch::new();
    let quote = fixture_bytes(SAMPLE_QUOTE);
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    let mut patched = |what: &'static str, at: usize, bytes: &[u8]| {
        let mut q = quote.clone();
        q[at..at + bytes.len()].copy_from_slice(bytes);
        cases.push((what, q));
    };
    patched("signature length u32::MAX", 632, &u32::MAX.to_le_bytes());
    patched("signature length past the end", 632, &5000u32.to_le_bytes());
    patched("version 3", 0, &3u16.to_le_bytes());
    patched("version 6", 0, &6u16.to_le_bytes());
    patched("version 0", 0, &0u16.to_le_bytes());
    patched("SGX tee type", 4, &0u32.to_le_bytes());
    let v5 = fixture_bytes(TD15EX_QUOTE);
    let mut v5_patched = |what: &'static str, at: usize, bytes: &[u8]| {
        let mut q = v5.clone();
        q[at..at + bytes.len()].copy_from_slice(bytes);
        cases.push((what, q));
    };
    v5_patched("v5 body size u32::MAX", 50, &u32::MAX.to_le_bytes());
    v5_patched("v5 body size 0", 50, &0u32.to_le_bytes());
    v5_patched("v5 body type 9", 48, &9u16.to_le_bytes());
    v5_patched(
        "v5 signature length u32::MAX",
        54 + 885,
        &u32::MAX.to_le_bytes(),
    );
    for (what, bytes) in cases {
        let path = s.write("patched.bin", &bytes);
        rejects(&s.report(&["--quote", &path, "--skip-dcap"]), what);
    }
}

/// Inputs that are not what they claim: bad hex, unknown shapes, wrong types, deep nesting.
fn malformed_inputs() -> Vec<(&'static str, Vec<u8>)> {
    let (quote, log) = getquote_parts(&fixture_json(QUOTE_REPORT));
    let quote_hex = hex(&quote);
    let log_text = serde_json::to_string(&log).unwrap();
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let deep_object = format!("{}1{}", r#"{"a":"#.repeat(50_000), "}".repeat(50_000));
    vec![
        ("empty file", Vec::new()),
        ("not JSON", b"hello, verifier".to_vec()),
        ("no known shape", br#"{"foo":1}"#.to_vec()),
        ("a JSON array", b"[1,2,3]".to_vec()),
        ("a JSON string", br#""quote""#.to_vec()),
        ("null", b"null".to_vec()),
        (
            "quote not hex",
            json!({"quote": "zz".repeat(700), "event_log": log_text}).to_string().into_bytes(),
        ),
        (
            "quote odd length",
            json!({"quote": format!("{quote_hex}0"), "event_log": log_text})
                .to_string()
                .into_bytes(),
        ),
        (
            "quote a number",
            json!({"quote": 5, "event_log": log_text}).to_string().into_bytes(),
        ),
        (
            "event_log not JSON",
            json!({"quote": quote_hex, "event_log": "[{"}).to_string().into_bytes(),
        ),
        (
            "event_log of numbers",
            json!({"quote": quote_hex, "event_log": "[1,2]"}).to_string().into_bytes(),
        ),
        (
            "event payload not hex",
            json!({"quote": quote_hex, "event_log": serde_json::to_string(&[json!({
                "imr": 3, "event_type": EVENT_TYPE, "digest": "", "event": "x", "event_payload": "xyz"
            })]).unwrap()})
            .to_string()
            .into_bytes(),
        ),
        (
            "digest of the wrong length",
            json!({"quote": quote_hex, "event_log": serde_json::to_string(&[json!({
                "imr": 3, "event_type": EVENT_TYPE, "digest": "abcd", "event": "x", "event_payload": ""
            })]).unwrap()})
            .to_string()
            .into_bytes(),
        ),
        ("deeply nested array", deep.clone().into_bytes()),
        ("deeply nested object", deep_object.into_bytes()),
        (
            "deeply nested event_log",
            json!({"quote": quote_hex, "event_log": deep}).to_string().into_bytes(),
        ),
        ("binary garbage", (0..=255u8).cycle().take(5000).collect()),
        ("trailing bytes after the JSON", {
            let mut bytes = fixture_bytes(TDX_LITE);
            bytes.extend_from_slice(b"garbage");
            bytes
        }),
    ]
}

/// Malformed Info, `phala` and NEAR shapes.
fn malformed_shaped_inputs() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "tcb_info not JSON",
            json!({"tcb_info": "{", "app_cert": "", "app_id": "00"})
                .to_string()
                .into_bytes(),
        ),
        (
            "app_cert not a certificate",
            json!({
                "tcb_info": fixture_json(CRABBOX_INFO)["tcb_info"],
                "app_cert": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                "app_id": "00",
            })
            .to_string()
            .into_bytes(),
        ),
        ("NEAR quote with a byte over 255", {
            let mut near_data = fixture_json(NEAR);
            near_data["tee_participant_info"]["Dstack"]["quote"][0] = json!(256);
            serde_json::to_vec(&near_data).unwrap()
        }),
        ("NEAR quote not an array", {
            let mut near_data = fixture_json(NEAR);
            near_data["tee_participant_info"]["Dstack"]["quote"] = json!("nope");
            serde_json::to_vec(&near_data).unwrap()
        }),
        ("Info whose leaf certificate has no quote extension", {
            let mut info = fixture_json(CRABBOX_INFO);
            let chain = info["app_cert"].as_str().unwrap().to_owned();
            let end = "-----END CERTIFICATE-----";
            let without_leaf = &chain[chain.find(end).unwrap() + end.len()..];
            info["app_cert"] = json!(without_leaf.trim_start());
            serde_json::to_vec(&info).unwrap()
        }),
        (
            "phala attestation without any quote",
            json!({
                "is_online": true,
                "app_certificates": [{"position_in_chain": 0, "quote": null}],
                "tcb_info": {"mrtd": "00", "event_log": []},
                "compose_file": null,
            })
            .to_string()
            .into_bytes(),
        ),
    ]
}

/// Each malformed input fails with exit 1 on an input-level check, in both output forms.
#[test]
fn malformed_inputs_fail_the_input_check() {
    let s = Scratch::new();
    let cases = [malformed_inputs(), malformed_shaped_inputs()].concat();
    for (what, bytes) in &cases {
        let path = s.write("input.json", bytes);
        let start = Instant::now();
        let report = s.report(&[&path, "--skip-dcap"]);
        assert!(start.elapsed() < VERIFY_LIMIT, "{what} took too long");
        assert_eq!(report.run.status, Some(1), "{what}\n{}", report.summary());
        assert_eq!(report.json["ok"], false, "{what}");
        // Each case is an input problem, not a verdict on measurements.
        let failed: Vec<&str> = report
            .checks()
            .iter()
            .filter(|c| c["status"] == "failed")
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert!(
            failed
                .iter()
                .any(|n| ["input", "quote.structure", "event_log.digests"].contains(n)),
            "{what}: {failed:?}\n{}",
            report.summary()
        );
        // The text form says what is wrong too.
        let run = s.verify(&[&path, "--skip-dcap"]);
        assert_eq!(run.status, Some(1), "{what}");
        assert!(
            last_line(&run).starts_with("verification FAILED"),
            "{what}\n{}",
            run.stdout
        );
        assert!(
            text_line(&run.stdout, "input").is_some()
                || text_line(&run.stdout, "quote.structure").is_some(),
            "{what}\n{}",
            run.stdout
        );
    }
}

/// A missing file, a directory, bad `--event-log` and `--collateral` files, bad stdin.
#[test]
fn unreadable_inputs_fail_cleanly() {
    let s = Scratch::new();
    let (quote, _) = getquote_parts(&fixture_json(QUOTE_REPORT));
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let missing = s.path().join("missing.json");
    rejects(
        &s.report(&[missing.to_str().unwrap(), "--skip-dcap"]),
        "missing input",
    );
    rejects(
        &s.report(&[s.path().to_str().unwrap(), "--skip-dcap"]),
        "a directory",
    );
    let quote_file = s.write("q.bin", &quote);
    let bad_log = s.write("bad.jsonl", "{\"imr\":3}\nnot json\n");
    rejects(
        &s.report(&[
            "--quote",
            &quote_file,
            "--event-log",
            &bad_log,
            "--skip-dcap",
        ]),
        "bad event log lines",
    );
    let deep_log = s.write("deep.json", &deep);
    rejects(
        &s.report(&[
            "--quote",
            &quote_file,
            "--event-log",
            &deep_log,
            "--skip-dcap",
        ]),
        "deep event log",
    );
    // Endless input is capped, not read to exhaustion.
    rejects(
        &s.report(&["/dev/zero", "--skip-dcap"]),
        "/dev/zero as input",
    );
    rejects(
        &s.report(&[
            "--quote",
            &quote_file,
            "--event-log",
            "/dev/zero",
            "--skip-dcap",
        ]),
        "/dev/zero as event log",
    );
    let bad_collateral = s.write("bad-collateral.json", "{\"tcb_info\":");
    let report = s.report(&[
        &fixture_str(QUOTE_REPORT),
        "--collateral",
        &bad_collateral,
        "--now",
        QUOTE_REPORT_NOW,
    ]);
    assert_eq!(report.run.status, Some(1), "{}", report.summary());
    assert!(
        report.status("input") == "failed" || report.status("quote.signature") == "failed",
        "{}",
        report.summary()
    );

    // stdin: empty, and garbage.
    for input in [&b""[..], &b"garbage"[..]] {
        let mut launcher = Launcher::new(s.path());
        launcher.args(["verify", "-", "--skip-dcap"]);
        let run = run_with_stdin(&launcher, input);
        assert_eq!(run.status, Some(1), "{}\n{}", run.stdout, run.stderr);
    }
}
