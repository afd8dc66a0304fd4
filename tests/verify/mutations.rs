//! Negative cases on mutated copies of real attestations, `now` and TCB status flags,
//! and bad flag values.

use serde_json::{Value, json};

use crate::attestation::{getquote_parts, position, register, with_parts};
use crate::common::fake_agent::{
    QUOTE_REPORT_DATA, QUOTE_RTMR0, QUOTE_RTMR3, hex, unhex, v1_digest,
};
use crate::{
    NEAR, NEAR_NOW, OUTDATED_COLLATERAL, QUOTE_REPORT, QUOTE_REPORT_NOW, Report, SAMPLE_QUOTE,
    Scratch, TDX_LITE, fixture_json, fixture_str, flip, usage_error, wrong_hex,
};

// --- 6. negative cases: mutated copies -----------------------------------------------------

/// The quote-report with `quote` replaced: verified with its collateral at its `now`.
fn quote_report_with(s: &Scratch, name: &str, quote: &[u8], log: &[Value]) -> Report {
    let path = s.write_json(name, &with_parts(&fixture_json(QUOTE_REPORT), quote, log));
    s.report(&[
        &path,
        "--collateral",
        &fixture_str(OUTDATED_COLLATERAL),
        "--now",
        QUOTE_REPORT_NOW,
        "--allow-no-launch",
    ])
}

/// A flipped bit in the quote's RTMR3 breaks both the signature and the replay; one in the
/// signature breaks the signature only.
#[test]
fn flipped_bits_in_the_quote_fail() {
    let s = Scratch::new();
    let (quote, log) = getquote_parts(&fixture_json(QUOTE_REPORT));
    quote_report_with(&s, "same.json", &quote, &log).passes();

    quote_report_with(&s, "rtmr3.json", &flip(&quote, QUOTE_RTMR3 + 7), &log)
        .fails(&["quote.signature", "rtmr3.replay"])
        .has(&[("quote.structure", "passed")]);

    quote_report_with(&s, "rtmr0.json", &flip(&quote, QUOTE_RTMR0), &log)
        .fails(&["quote.signature", "rtmr0.replay"]);

    // The ECDSA signature over the quote starts right after the signature length, at 636.
    quote_report_with(&s, "sig.json", &flip(&quote, 636 + 10), &log)
        .fails(&["quote.signature"])
        .has(&[("quote.structure", "passed"), ("rtmr3.replay", "passed")]);

    // REPORTDATA is signed too.
    quote_report_with(&s, "rd.json", &flip(&quote, QUOTE_REPORT_DATA + 63), &log)
        .fails(&["quote.signature"]);
}

/// A changed payload: with its stale digest the digest check fails; with a consistent
/// digest the replay fails; in a stripped log the replay fails.
#[test]
fn changed_payloads_fail() {
    let s = Scratch::new();
    let (quote, log) = getquote_parts(&fixture_json(QUOTE_REPORT));
    let at = position(&log, "LIUM_MINER_HOTKEY");
    let forged = format!("{}00", log[at]["event_payload"].as_str().unwrap());

    let mut stale = log.clone();
    stale[at]["event_payload"] = json!(forged);
    quote_report_with(&s, "stale.json", &quote, &stale).fails(&["event_log.digests"]);

    let mut consistent = stale.clone();
    consistent[at]["digest"] = json!(hex(&v1_digest(
        "LIUM_MINER_HOTKEY",
        &unhex(&forged).unwrap()
    )));
    quote_report_with(&s, "consistent.json", &quote, &consistent)
        .fails(&["rtmr3.replay"])
        .has(&[
            ("event_log.digests", "passed"),
            ("quote.signature", "passed"),
        ]);

    // A renamed event, digest recomputed: the replay fails.
    let mut renamed = log.clone();
    renamed[at]["event"] = json!("LIUM_MINER_HOTKEX");
    renamed[at]["digest"] = json!(hex(&v1_digest(
        "LIUM_MINER_HOTKEX",
        &unhex(log[at]["event_payload"].as_str().unwrap()).unwrap()
    )));
    quote_report_with(&s, "renamed.json", &quote, &renamed).fails(&["rtmr3.replay"]);

    // A changed RTMR0 digest fails that register's replay.
    let mut boot = log.clone();
    let first = boot.iter().position(|e| e["imr"] == 0).unwrap();
    let digest = boot[first]["digest"].as_str().unwrap().to_owned();
    boot[first]["digest"] = json!(wrong_hex(&digest));
    quote_report_with(&s, "boot.json", &quote, &boot)
        .fails(&["rtmr0.replay"])
        .has(&[("rtmr3.replay", "passed")]);

    // Stripped log: change the storage-fs payload (no digest to go stale).
    let lite = fixture_json(TDX_LITE);
    let (lite_quote, lite_log) = getquote_parts(&lite);
    let mut changed = lite_log.clone();
    let at = position(&changed, "storage-fs");
    changed[at]["event_payload"] = json!(hex(b"ext4"));
    let path = s.write_json(
        "lite-changed.json",
        &with_parts(&lite, &lite_quote, &changed),
    );
    s.report(&[&path, "--skip-dcap"]).fails(&["rtmr3.replay"]);

    // A compose-hash event that disagrees with MRCONFIGID: the replay fails (what depends
    // on the log may then be skipped, but must not pass).
    let mut compose = lite_log;
    let at = position(&compose, "compose-hash");
    compose[at]["event_payload"] = json!(hex(&[0x42; 32]));
    let path = s.write_json(
        "lite-compose.json",
        &with_parts(&lite, &lite_quote, &compose),
    );
    let report = s.report(&[&path, "--skip-dcap"]);
    report.fails(&["rtmr3.replay"]);
    assert_ne!(report.status("mrconfigid.compose_hash"), "passed");

    // An app-compose that is not the one hashed.
    let mut near_data = fixture_json(NEAR);
    let compose = &mut near_data["tee_participant_info"]["Dstack"]["tcb_info"]["app_compose"];
    *compose = json!(format!("{} ", compose.as_str().unwrap()));
    let path = s.write_json("near-compose.json", &near_data);
    s.report(&[&path, "--now", NEAR_NOW])
        .fails(&["compose_hash.evidence_app_compose"])
        .has(&[("quote.signature", "passed"), ("rtmr3.replay", "passed")]);
    let other_compose = s.write("other-compose.json", b"{}");
    s.report(&[
        &fixture_str(NEAR),
        "--now",
        NEAR_NOW,
        "--app-compose",
        &other_compose,
    ])
    .fails(&["compose_hash.app_compose"]);

    // NEAR's tcb_info claims a register the quote does not hold.
    let mut near_data = fixture_json(NEAR);
    let rtmr2 = &mut near_data["tee_participant_info"]["Dstack"]["tcb_info"]["rtmr2"];
    *rtmr2 = json!(wrong_hex(rtmr2.as_str().unwrap()));
    let path = s.write_json("near-rtmr2.json", &near_data);
    s.report(&[&path, "--now", NEAR_NOW])
        .fails(&["tcb_info.registers"])
        .has(&[("rtmr2.replay", "passed")]);

    // NEAR's collateral with one changed byte (its signed TCB info) fails DCAP.
    let mut near_data = fixture_json(NEAR);
    let tcb = &mut near_data["tee_participant_info"]["Dstack"]["collateral"]["tcb_info"];
    *tcb = json!(
        tcb.as_str()
            .unwrap()
            .replacen("\"version\":3", "\"version\":4", 1)
    );
    let path = s.write_json("near-collateral.json", &near_data);
    s.report(&[&path, "--now", NEAR_NOW])
        .fails(&["quote.signature"]);
}

/// A log that is present but says nothing about RTMR3 (empty, or its RTMR3 entries under
/// another IMR number) cannot vouch for a non-zero RTMR3: replaying nothing gives zeros.
#[test]
fn a_log_without_rtmr3_entries_does_not_verify_a_nonzero_rtmr3() {
    let s = Scratch::new();
    let (quote, log) = getquote_parts(&fixture_json(QUOTE_REPORT));
    assert_ne!(register(&quote, QUOTE_RTMR3), "00".repeat(48));
    quote_report_with(&s, "empty.json", &quote, &[]).fails(&["rtmr3.replay"]);
    let boot_only: Vec<Value> = log.iter().filter(|e| e["imr"] != 3).cloned().collect();
    quote_report_with(&s, "boot-only.json", &quote, &boot_only)
        .fails(&["rtmr3.replay"])
        .has(&[("rtmr0.replay", "passed")]);
    let relabeled: Vec<Value> = log
        .iter()
        .cloned()
        .map(|mut e| {
            if e["imr"] == 3 {
                e["imr"] = json!(9);
            }
            e
        })
        .collect();
    let report = quote_report_with(&s, "imr9.json", &quote, &relabeled);
    // TDX has no IMR 9: the log is malformed input, not something to ignore.
    assert_eq!(report.run.status, Some(1), "{}", report.summary());
    assert_eq!(report.status("input"), "failed");
}

/// Reordered and duplicated events (digests intact) do not replay.
#[test]
fn reordered_and_duplicated_events_fail() {
    let s = Scratch::new();
    let (quote, log) = getquote_parts(&fixture_json(QUOTE_REPORT));
    let app_id = position(&log, "app-id");
    let compose = position(&log, "compose-hash");

    let mut swapped = log.clone();
    swapped.swap(app_id, compose);
    quote_report_with(&s, "swapped.json", &quote, &swapped)
        .fails(&["rtmr3.replay"])
        .has(&[("event_log.digests", "passed")]);

    let mut duplicated = log.clone();
    let last = position(&log, "LIUM_MINER_HOTKEY");
    duplicated.insert(last, log[last].clone());
    quote_report_with(&s, "duplicated.json", &quote, &duplicated).fails(&["rtmr3.replay"]);

    let mut dropped = log.clone();
    dropped.remove(position(&log, "instance-id"));
    quote_report_with(&s, "dropped.json", &quote, &dropped).fails(&["rtmr3.replay"]);

    // Stripped log: the same in the form dstack 0.6 sends.
    let lite = fixture_json(TDX_LITE);
    let (lite_quote, lite_log) = getquote_parts(&lite);
    let mut swapped = lite_log.clone();
    swapped.swap(
        position(&lite_log, "app-id"),
        position(&lite_log, "instance-id"),
    );
    let path = s.write_json(
        "lite-swapped.json",
        &with_parts(&lite, &lite_quote, &swapped),
    );
    s.report(&[&path, "--skip-dcap"]).fails(&["rtmr3.replay"]);
    let mut duplicated = lite_log.clone();
    let at = position(&lite_log, "system-ready");
    duplicated.insert(at, lite_log[at].clone());
    let path = s.write_json(
        "lite-dup.json",
        &with_parts(&lite, &lite_quote, &duplicated),
    );
    s.report(&[&path, "--skip-dcap"]).fails(&["rtmr3.replay"]);
}

/// Collateral outside its validity (years later, or before it was issued) fails DCAP.
#[test]
fn expired_or_early_now_fails_dcap() {
    let s = Scratch::new();
    let later = (NEAR_NOW.parse::<u64>().unwrap() + 3 * 365 * 86_400).to_string();
    for now in [later.as_str(), "1500000000"] {
        s.report(&[&fixture_str(NEAR), "--now", now])
            .fails(&["quote.signature"])
            .has(&[("rtmr3.replay", "passed")]);
    }
    let later = (QUOTE_REPORT_NOW.parse::<u64>().unwrap() + 2 * 365 * 86_400).to_string();
    s.report(&[
        &fixture_str(QUOTE_REPORT),
        "--collateral",
        &fixture_str(OUTDATED_COLLATERAL),
        "--now",
        &later,
    ])
    .fails(&["quote.signature"]);
}

/// `--allow-tcb-status`: known statuses widen the allowed set (`UpToDate` still passes);
/// an unknown one is a usage error.
#[test]
fn allow_tcb_status_is_parsed() {
    let s = Scratch::new();
    let near_path = fixture_str(NEAR);
    s.report(&[
        &near_path,
        "--now",
        NEAR_NOW,
        "--allow-no-launch",
        "--allow-tcb-status",
        "OutOfDate",
        "--allow-tcb-status",
        "SWHardeningNeeded",
    ])
    .passes()
    .has(&[("quote.tcb_status", "passed")]);
    s.report(&[
        &near_path,
        "--now",
        NEAR_NOW,
        "--allow-no-launch",
        "--allow-tcb-status",
        "UpToDate",
    ])
    .passes();
    usage_error(&s.verify(&[&near_path, "--now", NEAR_NOW, "--allow-tcb-status", "Fine"]));
}

/// Bad flag values and conflicting inputs are usage errors (exit 2), never a verdict.
#[test]
fn bad_flags_are_usage_errors() {
    let s = Scratch::new();
    let near_path = fixture_str(NEAR);
    let quote = fixture_str(SAMPLE_QUOTE);
    let cases: Vec<Vec<&str>> = vec![
        vec![&near_path, "--expect-commit", "main"],
        vec![&near_path, "--expect-commit", "abc123"],
        vec![&near_path, "--now", "abc"],
        vec![&near_path, "--now", "-5"],
        vec![&near_path, "--quote", &quote],
        vec![&near_path, "--expect-image", "latest"],
        vec![&near_path, "--expect-image", "sha256:xyz"],
        vec![&near_path, "--expect-event", "no-equals-sign"],
        vec![&near_path, "--expect-event", "name=nothex"],
        vec![&near_path, "--expect-mrtd", "zz"],
        vec![&near_path, "--expect-config-sha256", "12"],
        vec![&near_path, "--expect-compose-sha256", "sha256:12"],
        vec![&near_path, "--expect-file", "/no/such/expect-file"],
        vec![&near_path, "--expect-report-data"],
        vec![&near_path, "--no-such-flag"],
    ];
    for args in &cases {
        let run = s.verify(args);
        assert_eq!(
            run.status,
            Some(2),
            "{args:?}\nstdout:\n{}\nstderr:\n{}",
            run.stdout,
            run.stderr
        );
    }
    // Report data over 64 bytes.
    let long = "ab".repeat(65);
    usage_error(&s.verify(&[&near_path, "--expect-report-data", &long]));
}
