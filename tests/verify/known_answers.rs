//! The other real attestations: dstack's quote-report, the stripped tdx-lite log,
//! crabbox's Info (the quote from the certificate) and dcap-qvl's v4 and v5 samples.

use serde_json::{Value, json};

use crate::attestation::{crabbox_tcb_info, getquote_parts, payload_of, register};
use crate::common::fake_agent::{QUOTE_REPORT_DATA, QUOTE_RTMR3, hex, unhex, v1_digest};
use crate::{
    CRABBOX_INFO, CRABBOX_QUOTE, OUTDATED_COLLATERAL, QUOTE_REPORT, QUOTE_REPORT_NOW,
    SAMPLE_COLLATERAL, SAMPLE_NOW, SAMPLE_QUOTE, Scratch, TD15EX_COLLATERAL, TD15EX_NOW,
    TD15EX_QUOTE, TDX_LITE, fixture_bytes, fixture_json, fixture_str, last_line, text_line,
    text_status, wrong_hex,
};

// --- 2. dstack's quote-report --------------------------------------------------------------

/// dstack's `GetQuote` fixture verifies with the outdated-named collateral at its `now`, and
/// its application event after `system-ready` is an expectation like any other.
#[test]
fn dstack_quote_report_verifies_with_collateral() {
    let s = Scratch::new();
    let (quote, log) = getquote_parts(&fixture_json(QUOTE_REPORT));
    let hotkey = format!(
        "LIUM_MINER_HOTKEY={}",
        payload_of(&log, "LIUM_MINER_HOTKEY")
    );
    let collateral = fixture_str(OUTDATED_COLLATERAL);
    let report = s.report(&[
        &fixture_str(QUOTE_REPORT),
        "--collateral",
        &collateral,
        "--now",
        QUOTE_REPORT_NOW,
        "--allow-no-launch",
        "--expect-event",
        &hotkey,
        "--expect-report-data",
        "1234",
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
        // MRCONFIGID is all zero in this quote.
        ("mrconfigid.compose_hash", "skipped"),
        ("compose_hash.app_compose", "skipped"),
        ("launcher.events", "skipped"),
        ("expect.event:LIUM_MINER_HOTKEY", "passed"),
        ("expect.report_data", "passed"),
    ]);
    assert_eq!(report.json["tcb_status"], "UpToDate");
    assert_eq!(report.measurement("rtmr3"), register(&quote, QUOTE_RTMR3));
    assert_eq!(report.measurement("mr_config_id"), "00".repeat(48));

    // Collateral with byte arrays instead of hex strings is the same collateral.
    let mut as_arrays = fixture_json(OUTDATED_COLLATERAL);
    for (_, value) in as_arrays.as_object_mut().unwrap().iter_mut() {
        if let Some(bytes) = value.as_str().and_then(unhex) {
            *value = json!(bytes);
        }
    }
    let arrays = s.write_json("collateral-arrays.json", &as_arrays);
    s.report(&[
        &fixture_str(QUOTE_REPORT),
        "--collateral",
        &arrays,
        "--now",
        QUOTE_REPORT_NOW,
        "--allow-no-launch",
    ])
    .passes()
    .has(&[("quote.signature", "passed")]);

    // The wrong collateral (another FMSPC) fails DCAP.
    s.report(&[
        &fixture_str(QUOTE_REPORT),
        "--collateral",
        &fixture_str(SAMPLE_COLLATERAL),
        "--now",
        SAMPLE_NOW,
    ])
    .fails(&["quote.signature"]);
}

// --- 3. the stripped tdx-lite log ----------------------------------------------------------

/// dstack 0.6's stripped log replays once digests are recomputed; MRCONFIGID matches the
/// compose-hash event. No collateral exists: `--skip-dcap` passes loudly, without it fails.
#[test]
fn stripped_tdx_lite_log_replays_and_dcap_is_required_or_skipped_loudly() {
    let s = Scratch::new();
    let input = fixture_str(TDX_LITE);
    let report = s.report(&[&input, "--skip-dcap", "--allow-no-launch"]);
    report.passes().has(&[
        ("quote.structure", "passed"),
        ("quote.signature", "skipped"),
        ("event_log.digests", "passed"),
        ("rtmr0.replay", "passed"),
        ("rtmr1.replay", "passed"),
        ("rtmr2.replay", "passed"),
        ("rtmr3.replay", "passed"),
        ("mrconfigid.compose_hash", "passed"),
    ]);
    assert!(report.json["tcb_status"].is_null(), "{}", report.summary());
    // `events` carries the recomputed digests, never the empty ones of the input.
    let (_, log) = getquote_parts(&fixture_json(TDX_LITE));
    let events = report.json["events"].as_array().unwrap();
    assert_eq!(events.len(), log.iter().filter(|e| e["imr"] == 3).count());
    for event in events {
        let name = event["event"].as_str().unwrap();
        let payload = unhex(event["event_payload"].as_str().unwrap()).unwrap();
        assert_eq!(event["digest"], hex(&v1_digest(name, &payload)), "{event}");
    }

    let run = s.verify(&[&input, "--skip-dcap", "--allow-no-launch"]);
    assert_eq!(run.status, Some(3), "{}\n{}", run.stdout, run.stderr);
    assert_eq!(text_status(&run, "quote.signature"), "SKIP");
    assert!(
        text_line(&run.stdout, "quote.signature")
            .unwrap()
            .contains("NOT verified"),
        "{}",
        run.stdout
    );
    assert_eq!(text_status(&run, "rtmr3.replay"), "PASS");
    assert!(
        last_line(&run).starts_with(
            "verification INCOMPLETE: every check passed but the quote's signature was NOT checked"
        ),
        "{}",
        run.stdout
    );

    // No collateral and no --skip-dcap: the signature check fails, and so does the run.
    // (`--offline`: nothing is fetched for it; tests/verify_collateral.rs covers fetching.)
    s.report(&[&input, "--offline"])
        .fails(&["quote.signature"])
        .has(&[("rtmr3.replay", "passed")]);
    let run = s.verify(&[&input, "--offline"]);
    assert_eq!(run.status, Some(1), "{}\n{}", run.stdout, run.stderr);
    assert_eq!(text_status(&run, "quote.signature"), "FAIL");
    assert!(
        last_line(&run).starts_with("verification FAILED"),
        "{}",
        run.stdout
    );
}

// --- 4. crabbox's Info: the quote from the certificate -------------------------------------

/// The Info response's quote comes from its certificate; all four registers replay and equal
/// `tcb_info`; the raw quote (with its padding) and a synthesized `phala cvms attestation
/// --json` give the same measurements.
#[test]
fn crabbox_info_quote_from_certificate_replays() {
    let s = Scratch::new();
    let info = s.report(&[
        &fixture_str(CRABBOX_INFO),
        "--skip-dcap",
        "--allow-no-launch",
    ]);
    info.passes().has(&[
        ("input", "passed"),
        ("quote.structure", "passed"),
        ("quote.signature", "skipped"),
        ("event_log.digests", "passed"),
        ("rtmr0.replay", "passed"),
        ("rtmr1.replay", "passed"),
        ("rtmr2.replay", "passed"),
        ("rtmr3.replay", "passed"),
        ("tcb_info.registers", "passed"),
        ("mrconfigid.compose_hash", "passed"),
        ("compose_hash.evidence_app_compose", "passed"),
    ]);
    let tcb_info = crabbox_tcb_info();
    for register in ["mrtd", "rtmr0", "rtmr1", "rtmr2", "rtmr3"] {
        assert_eq!(
            info.measurement(register),
            tcb_info[register].as_str().unwrap().to_lowercase(),
            "{register}"
        );
    }
    let app_id = fixture_json(CRABBOX_INFO)["app_id"]
        .as_str()
        .unwrap()
        .to_owned();
    s.report(&[
        &fixture_str(CRABBOX_INFO),
        "--skip-dcap",
        "--allow-no-launch",
        "--expect-app-id",
        &app_id,
        "--expect-compose-hash",
        tcb_info["compose_hash"].as_str().unwrap(),
    ])
    .passes()
    .has(&[
        ("expect.app_id", "passed"),
        ("expect.compose_hash", "passed"),
    ]);

    // The same quote as a raw file: 4940 bytes used, 70 bytes of zero padding.
    let raw = fixture_bytes(CRABBOX_QUOTE);
    assert_eq!(raw.len(), 5010);
    let from_file = s.report(&[
        "--quote",
        &fixture_str(CRABBOX_QUOTE),
        "--skip-dcap",
        "--allow-no-launch",
        "--expect-report-data",
        &hex(&raw[QUOTE_REPORT_DATA..QUOTE_REPORT_DATA + 64]),
    ]);
    from_file.passes().has(&[
        ("quote.structure", "passed"),
        ("expect.report_data", "passed"),
    ]);
    assert_eq!(from_file.measurements(), info.measurements());

    // `phala cvms attestation --json`, synthesized from the Info fixture.
    let phala = json!({
        "is_online": true,
        "is_public": true,
        "error": null,
        "app_certificates": [
            {"subject": {"common_name": "app"}, "position_in_chain": 0, "quote": hex(&raw[..4940])},
            {"subject": {"common_name": "kms"}, "position_in_chain": 1, "quote": null},
        ],
        "tcb_info": {
            "mrtd": tcb_info["mrtd"],
            "rtmr0": tcb_info["rtmr0"],
            "rtmr1": tcb_info["rtmr1"],
            "rtmr2": tcb_info["rtmr2"],
            "rtmr3": tcb_info["rtmr3"],
            "event_log": tcb_info["event_log"],
        },
        "compose_file": tcb_info["app_compose"],
    });
    let phala_path = s.write_json("phala.json", &phala);
    let from_phala = s.report(&[&phala_path, "--skip-dcap", "--allow-no-launch"]);
    from_phala.passes().has(&[
        ("input", "passed"),
        ("rtmr0.replay", "passed"),
        ("rtmr3.replay", "passed"),
        ("tcb_info.registers", "passed"),
        ("compose_hash.evidence_app_compose", "passed"),
    ]);
    assert_eq!(from_phala.measurements(), info.measurements());

    // Without `compose_file` the app-compose check has nothing to hash.
    let mut no_compose = phala.clone();
    no_compose["compose_file"] = Value::Null;
    let path = s.write_json("phala-no-compose.json", &no_compose);
    s.report(&[&path, "--skip-dcap", "--allow-no-launch"])
        .passes()
        .has(&[("compose_hash.evidence_app_compose", "skipped")]);

    // A tcb_info register that disagrees with the quote is caught.
    let mut lying = phala;
    lying["tcb_info"]["rtmr1"] = json!(wrong_hex(tcb_info["rtmr1"].as_str().unwrap()));
    let path = s.write_json("phala-lying.json", &lying);
    s.report(&[&path, "--skip-dcap"])
        .fails(&["tcb_info.registers"])
        .has(&[("rtmr1.replay", "passed")]);
}

// --- 5. dcap-qvl's samples, v4 and v5 ------------------------------------------------------

/// dcap-qvl's v4 sample (binary and hex text) and its v5 TD 1.5 sample verify offline.
#[test]
fn dcap_qvl_samples_verify_v4_and_v5() {
    let s = Scratch::new();
    let v4 = s.report(&[
        "--quote",
        &fixture_str(SAMPLE_QUOTE),
        "--collateral",
        &fixture_str(SAMPLE_COLLATERAL),
        "--now",
        SAMPLE_NOW,
        "--allow-no-launch",
    ]);
    v4.passes().has(&[
        ("quote.structure", "passed"),
        ("quote.signature", "passed"),
        ("quote.tcb_status", "passed"),
    ]);
    assert_eq!(v4.json["tcb_status"], "UpToDate");
    let quote = fixture_bytes(SAMPLE_QUOTE);
    assert_eq!(v4.measurement("rtmr3"), register(&quote, QUOTE_RTMR3));

    // The same quote as hex text (with a trailing newline) is the same quote.
    let hex_path = s.write("quote.hex", format!("{}\n", hex(&quote)));
    let from_hex = s.report(&[
        "--quote",
        &hex_path,
        "--collateral",
        &fixture_str(SAMPLE_COLLATERAL),
        "--now",
        SAMPLE_NOW,
        "--allow-no-launch",
    ]);
    from_hex.passes().has(&[("quote.signature", "passed")]);
    assert_eq!(from_hex.measurements(), v4.measurements());

    let v5 = s.report(&[
        "--quote",
        &fixture_str(TD15EX_QUOTE),
        "--collateral",
        &fixture_str(TD15EX_COLLATERAL),
        "--now",
        TD15EX_NOW,
        "--allow-no-launch",
    ]);
    v5.passes().has(&[
        ("quote.structure", "passed"),
        ("quote.signature", "passed"),
        ("quote.tcb_status", "passed"),
    ]);
    assert_eq!(v5.json["tcb_status"], "UpToDate");
    // v5: the body starts at 54, RTMR3 at 54 + 472.
    let v5_quote = fixture_bytes(TD15EX_QUOTE);
    assert_eq!(v5.measurement("rtmr3"), hex(&v5_quote[526..574]));
    assert_eq!(v5.measurement("mrtd"), hex(&v5_quote[190..238]));
}
