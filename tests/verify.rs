//! `trusted-launcher verify` (issue 5): the real binary on real attestations (known answers
//! from `tests/fixtures/`, see its README), on copies of them mutated in a temp dir, on
//! synthetic logs that exercise the launcher-event rules, on round trips through a launch
//! (fake dstack agent, native sysfs fallback, nontee log), and on malformed input.
//!
//! Quotes, digests and replays here are built with `sha2` and the fake agent's helpers,
//! independently of the crate's own verify code, so a shared mistake cannot hide.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::fmt::Write as _;
use std::fs;
use std::io::{Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use common::fake_agent::{
    EVENT_TYPE, FakeAgent, FakeRtmr3, Mode, QUOTE_LEN, QUOTE_MRTD, QUOTE_REPORT_DATA, QUOTE_RTMR0,
    QUOTE_RTMR3, hex, replay, unhex, v1_digest,
};
use common::{Fixture, Item, Launcher, Run, entry};

/// `now` values inside each collateral's validity (tests/fixtures/README.md).
const NEAR_NOW: &str = "1786622400";
const QUOTE_REPORT_NOW: &str = "1772000000";
const SAMPLE_NOW: &str = "1751624655";
const TD15EX_NOW: &str = "1792713448";

const NEAR: &str = "near-mpc_public_data.json";
const QUOTE_REPORT: &str = "dstack_verifier_quote-report.json";
const OUTDATED_COLLATERAL: &str = "dcap-qvl_sample_tdx_quote_outdated_collateral.json";
const TDX_LITE: &str = "dstack_verifier_tdx-lite-getquote.json";
const CRABBOX_INFO: &str = "crabbox_real_attestation_info.json";
const CRABBOX_QUOTE: &str = "crabbox_real_tdx_quote.bin";
const SAMPLE_QUOTE: &str = "dcap-qvl_sample_tdx_quote";
const SAMPLE_COLLATERAL: &str = "dcap-qvl_sample_tdx_quote_collateral.json";
const TD15EX_QUOTE: &str = "dcap-qvl-0.7.1_sample_tdx_quote_td15ex";
const TD15EX_COLLATERAL: &str = "dcap-qvl-0.7.1_sample_tdx_quote_td15ex_collateral.json";

/// MRCONFIGID in a v4 quote (DESIGN §5: body offset 184).
const QUOTE_MRCONFIGID: usize = 48 + 184;

const NEAR_COMPOSE_HASH: &str = "2911e1f733466216dedb862d6d669e11256ee7a34ce4dbc66c4b807ba7a9c895";

const CONFIG: &str = "trusted-launcher.config";
const WORKLOAD: &str = "trusted-launcher.workload";
const READY: &str = "trusted-launcher.ready";
const COMPOSE: &str = "trusted-launcher.compose";

/// Longest a verify of a huge or hostile input may take.
const VERIFY_LIMIT: Duration = Duration::from_secs(60);

// --- harness -------------------------------------------------------------------------------

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn fixture_str(name: &str) -> String {
    fixture(name).to_str().unwrap().to_owned()
}

fn fixture_bytes(name: &str) -> Vec<u8> {
    fs::read(fixture(name)).unwrap()
}

fn fixture_json(name: &str) -> Value {
    serde_json::from_slice(&fixture_bytes(name)).unwrap()
}

/// A scratch dir to run in and to write mutated copies to.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn write(&self, name: &str, bytes: impl AsRef<[u8]>) -> String {
        let path = self.path().join(name);
        fs::write(&path, bytes).unwrap();
        path.to_str().unwrap().to_owned()
    }

    fn write_json(&self, name: &str, value: &Value) -> String {
        self.write(name, serde_json::to_vec(value).unwrap())
    }

    /// `trusted-launcher verify ARGS` (text output).
    fn verify(&self, args: &[&str]) -> Run {
        let mut launcher = Launcher::new(self.path());
        launcher.arg("verify").args(args.iter().copied());
        launcher.run()
    }

    /// `trusted-launcher verify ARGS --json`: the run and its parsed report.
    fn report(&self, args: &[&str]) -> Report {
        let run = self.verify(&[args, &["--json"]].concat());
        let json = serde_json::from_str(&run.stdout).unwrap_or_else(|e| {
            panic!(
                "verify --json printed no JSON ({e})\nexit {:?}\nstdout:\n{}\nstderr:\n{}",
                run.status, run.stdout, run.stderr
            )
        });
        Report {
            run,
            json,
            skip_dcap: args.contains(&"--skip-dcap"),
        }
    }
}

/// One `verify --json` run.
struct Report {
    run: Run,
    json: Value,
    /// The run had `--skip-dcap`: at best exit 3 and `ok: false`, never 0.
    skip_dcap: bool,
}

impl Report {
    fn checks(&self) -> &Vec<Value> {
        self.json["checks"].as_array().unwrap_or_else(|| {
            panic!("report without checks: {:#}", self.json);
        })
    }

    /// The status of check `name`: `passed`, `failed` or `skipped`.
    #[track_caller]
    fn status(&self, name: &str) -> &str {
        let check = self
            .checks()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no check {name:?} in:\n{}", self.summary()));
        let status = check["status"].as_str().unwrap();
        let ok = match status {
            "passed" => json!(true),
            "failed" => json!(false),
            "skipped" => Value::Null,
            other => panic!("check {name:?} has status {other:?}"),
        };
        assert_eq!(check["ok"], ok, "check {name:?}: ok disagrees with status");
        status
    }

    fn detail(&self, name: &str) -> String {
        self.checks()
            .iter()
            .find(|c| c["name"] == name)
            .map(|c| c["detail"].to_string())
            .unwrap_or_default()
    }

    /// Every check, one line each, plus stderr: what a failed assertion shows.
    fn summary(&self) -> String {
        let mut out = format!("exit {:?}, ok {}\n", self.run.status, self.json["ok"]);
        for check in self.checks() {
            let _ = writeln!(
                out,
                "  {} {} {}",
                check["status"].as_str().unwrap_or("?"),
                check["name"].as_str().unwrap_or("?"),
                check["detail"]
            );
        }
        let _ = write!(out, "stderr:\n{}", self.run.stderr);
        out
    }

    /// Each `(check, status)` holds.
    #[track_caller]
    fn has(&self, expected: &[(&str, &str)]) -> &Self {
        for (name, status) in expected {
            assert_eq!(
                self.status(name),
                *status,
                "check {name}: {}\n{}",
                self.detail(name),
                self.summary()
            );
        }
        self
    }

    /// Nothing failed: exit 0 and `ok: true` when the signature was checked; with
    /// `--skip-dcap` exit 3 and `ok: false` (an unchecked signature never exits 0).
    #[track_caller]
    fn passes(&self) -> &Self {
        let failed: Vec<&str> = self
            .checks()
            .iter()
            .filter(|c| c["status"] == "failed")
            .map(|c| c["name"].as_str().unwrap_or("?"))
            .collect();
        let (code, ok) = if self.skip_dcap {
            (3, false)
        } else {
            (0, true)
        };
        assert!(
            self.run.status == Some(code)
                && self.json["ok"] == ok
                && self.json["signature_verified"] == !self.skip_dcap
                && failed.is_empty(),
            "expected verification to pass (exit {code}); failed: {failed:?}\n{}",
            self.summary()
        );
        self
    }

    /// Exit 1, `ok: false`, and each named check failed.
    #[track_caller]
    fn fails(&self, names: &[&str]) -> &Self {
        assert!(
            self.run.status == Some(1) && self.json["ok"] == false,
            "expected verification to fail\n{}",
            self.summary()
        );
        for name in names {
            assert_eq!(
                self.status(name),
                "failed",
                "check {name} should fail\n{}",
                self.summary()
            );
        }
        self
    }

    fn measurement(&self, name: &str) -> String {
        self.json["measurements"][name]
            .as_str()
            .unwrap_or_else(|| panic!("no measurement {name}: {:#}", self.json["measurements"]))
            .to_lowercase()
    }

    fn measurements(&self) -> Value {
        self.json["measurements"].clone()
    }
}

/// The line of the text checklist for `name`: `PASS|FAIL|SKIP <name> ...`.
fn text_line<'a>(stdout: &'a str, name: &str) -> Option<&'a str> {
    stdout.lines().find(|line| {
        let mut words = line.split_whitespace();
        matches!(words.next(), Some("PASS" | "FAIL" | "SKIP")) && words.next() == Some(name)
    })
}

#[track_caller]
fn text_status(run: &Run, name: &str) -> String {
    text_line(&run.stdout, name)
        .unwrap_or_else(|| panic!("no line for {name}:\n{}\n{}", run.stdout, run.stderr))
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

/// The last non-empty line of stdout.
fn last_line(run: &Run) -> &str {
    run.stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
}

#[track_caller]
fn usage_error(run: &Run) {
    assert_eq!(
        run.status,
        Some(2),
        "expected a usage error\nstdout:\n{}\nstderr:\n{}",
        run.stdout,
        run.stderr
    );
    assert!(!run.stderr.trim().is_empty(), "a usage error says why");
}

/// Flips the lowest bit of byte `at`.
fn flip(bytes: &[u8], at: usize) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[at] ^= 1;
    out
}

/// Changes the last hex digit of `text` (a wrong value of the same length).
fn wrong_hex(text: &str) -> String {
    let mut out = text.to_owned();
    let last = out.pop().unwrap();
    out.push(if last == '0' { '1' } else { '0' });
    out
}

// --- facts read from the fixtures ----------------------------------------------------------

/// NEAR's public data: `tee_participant_info.Dstack`.
fn near() -> Value {
    fixture_json(NEAR)["tee_participant_info"]["Dstack"].clone()
}

fn near_quote() -> Vec<u8> {
    near()["quote"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| u8::try_from(b.as_u64().unwrap()).unwrap())
        .collect()
}

fn near_image_digest() -> String {
    String::from_utf8(fixture_bytes("near-mpc_mpc_image_digest.txt"))
        .unwrap()
        .trim()
        .to_owned()
}

/// A `GetQuote`-shaped fixture's quote bytes and parsed event log.
fn getquote_parts(value: &Value) -> (Vec<u8>, Vec<Value>) {
    let quote = unhex(value["quote"].as_str().unwrap()).unwrap();
    let log = serde_json::from_str(value["event_log"].as_str().unwrap()).unwrap();
    (quote, log)
}

/// Rebuilds a `GetQuote`-shaped value with `quote` and `log` in place of the originals.
fn with_parts(value: &Value, quote: &[u8], log: &[Value]) -> Value {
    let mut out = value.clone();
    out["quote"] = json!(hex(quote));
    out["event_log"] = json!(serde_json::to_string(log).unwrap());
    out
}

/// 48 bytes of register at absolute quote offset `at` (v4), as hex.
fn register(quote: &[u8], at: usize) -> String {
    hex(&quote[at..at + 48])
}

/// The payload of the last RTMR3 entry named `name`.
fn payload_of(log: &[Value], name: &str) -> String {
    log.iter()
        .rev()
        .find(|e| e["imr"] == 3 && e["event"] == name)
        .and_then(|e| e["event_payload"].as_str())
        .unwrap_or_else(|| panic!("no {name} in log"))
        .to_owned()
}

fn position(log: &[Value], name: &str) -> usize {
    log.iter()
        .position(|e| e["imr"] == 3 && e["event"] == name)
        .unwrap_or_else(|| panic!("no {name} in log"))
}

/// The crabbox Info response's `tcb_info`, parsed.
fn crabbox_tcb_info() -> Value {
    serde_json::from_str(fixture_json(CRABBOX_INFO)["tcb_info"].as_str().unwrap()).unwrap()
}

// --- synthetic attestations ----------------------------------------------------------------

/// A v4 TDX quote with an empty signature (as the fake agent makes): RTMR3 and REPORTDATA
/// set, everything else zero.
fn fake_quote(rtmr3: &[u8; 48], report_data: &[u8]) -> Vec<u8> {
    let mut quote = vec![0u8; QUOTE_LEN];
    quote[0..2].copy_from_slice(&4u16.to_le_bytes());
    quote[2..4].copy_from_slice(&2u16.to_le_bytes());
    quote[4..8].copy_from_slice(&0x81u32.to_le_bytes());
    quote[QUOTE_RTMR3..QUOTE_RTMR3 + 48].copy_from_slice(rtmr3);
    quote[QUOTE_REPORT_DATA..QUOTE_REPORT_DATA + report_data.len()].copy_from_slice(report_data);
    quote
}

/// One RTMR3 entry in dstack's JSON, with its v1 digest.
fn runtime_entry(name: &str, payload: &[u8]) -> Value {
    json!({
        "imr": 3,
        "event_type": EVENT_TYPE,
        "digest": hex(&v1_digest(name, payload)),
        "event": name,
        "event_payload": hex(payload),
    })
}

/// dstack's boot events, up to `system-ready`.
fn boot_events() -> Vec<(String, Vec<u8>)> {
    [
        ("system-preparing", &b""[..]),
        ("app-id", &[0x94; 20][..]),
        ("compose-hash", &[0x60; 32][..]),
        ("instance-id", &[0xce; 20][..]),
        ("boot-mr-done", &b""[..]),
        ("key-provider", &br#"{"name":"kms","id":"30"}"#[..]),
        ("system-ready", &b""[..]),
    ]
    .iter()
    .map(|(n, p)| ((*n).to_owned(), p.to_vec()))
    .collect()
}

/// The three launcher events of one launch of `commit` with config hash `config_sha256`.
fn launch_events(commit: &str, config_sha256: &str) -> Vec<(String, Vec<u8>)> {
    vec![
        (
            CONFIG.to_owned(),
            format!("sha256:{config_sha256}").into_bytes(),
        ),
        (WORKLOAD.to_owned(), format!("git:{commit}").into_bytes()),
        (READY.to_owned(), Vec::new()),
    ]
}

/// A `GetQuote` response whose log is `events` and whose quote's RTMR3 is their replay.
fn synthetic_getquote(events: &[(String, Vec<u8>)]) -> Value {
    synthetic_getquote_with(events, &[0; 48])
}

/// As [`synthetic_getquote`], with MRCONFIGID set.
fn synthetic_getquote_with(events: &[(String, Vec<u8>)], mr_config_id: &[u8; 48]) -> Value {
    let log: Vec<Value> = events.iter().map(|(n, p)| runtime_entry(n, p)).collect();
    let digests: Vec<[u8; 48]> = events.iter().map(|(n, p)| v1_digest(n, p)).collect();
    let mut quote = fake_quote(&replay(&digests), b"");
    quote[QUOTE_MRCONFIGID..QUOTE_MRCONFIGID + 48].copy_from_slice(mr_config_id);
    json!({
        "quote": hex(&quote),
        "event_log": serde_json::to_string(&log).unwrap(),
        "report_data": hex(&[0u8; 64]),
        "vm_config": "{}",
    })
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

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

// --- 7. launcher rules on synthetic logs ---------------------------------------------------

/// Verifies a synthetic `GetQuote` response (no signature: `--skip-dcap`).
fn synthetic(s: &Scratch, name: &str, events: &[(String, Vec<u8>)], args: &[&str]) -> Report {
    let path = s.write_json(name, &synthetic_getquote(events));
    s.report(&[&[path.as_str(), "--skip-dcap"], args].concat())
}

fn chain(parts: &[Vec<(String, Vec<u8>)>]) -> Vec<(String, Vec<u8>)> {
    parts.concat()
}

fn event(name: &str, payload: &[u8]) -> Vec<(String, Vec<u8>)> {
    vec![(name.to_owned(), payload.to_vec())]
}

/// Launcher events after `system-ready`, in contract order, ready last: passes with the
/// launch's commit, config hash or image; wrong values fail.
#[test]
fn launcher_expectations_on_a_good_launch() {
    let s = Scratch::new();
    let commit = "1f".repeat(20);
    let config = "c0".repeat(32);
    let launch = launch_events(&commit, &config);
    let good = chain(&[boot_events(), launch.clone()]);
    let expect = [
        "--expect-commit",
        commit.as_str(),
        "--expect-config-sha256",
        config.as_str(),
    ];

    let report = synthetic(&s, "good.json", &good, &expect);
    report.passes().has(&[
        ("rtmr3.replay", "passed"),
        ("boot.events", "passed"),
        ("launcher.events", "passed"),
        ("launch.1", "passed"),
        ("quote.signature", "skipped"),
    ]);
    assert_eq!(
        report.json["launches"],
        json!([{
            "number": 1,
            "complete": true,
            "config": format!("sha256:{config}"),
            "workload": format!("git:{commit}"),
            "compose": null,
            "outcome": "accepted",
            "problems": [],
        }])
    );
    // Without expectations the order is still checked (and holds).
    synthetic(&s, "good-plain.json", &good, &[])
        .passes()
        .has(&[("launcher.events", "passed")]);
    // A 64-hex (SHA-256) commit id.
    let long_commit = "2e".repeat(32);
    let long = chain(&[boot_events(), launch_events(&long_commit, &config)]);
    synthetic(&s, "long.json", &long, &["--expect-commit", &long_commit])
        .passes()
        .has(&[("launch.1", "passed")]);

    // Wrong expectations.
    synthetic(
        &s,
        "wrong-commit.json",
        &good,
        &["--expect-commit", &"1e".repeat(20)],
    )
    .fails(&["launch.1"])
    .has(&[("launcher.events", "passed")]);
    synthetic(
        &s,
        "wrong-config.json",
        &good,
        &["--expect-config-sha256", &"c1".repeat(32)],
    )
    .fails(&["launch.1"]);
}

/// Image mode: `oci:sha256:<hex>`, then the rendered compose file's digest; the image, the
/// compose digest and the launch kind are compared.
#[test]
fn image_launch_expectations() {
    let s = Scratch::new();
    let config = "c0".repeat(32);
    let good = chain(&[boot_events(), launch_events(&"1f".repeat(20), &config)]);
    let image = "5a".repeat(32);
    let compose = "d0".repeat(32);
    let oci = chain(&[
        boot_events(),
        event(CONFIG, format!("sha256:{config}").as_bytes()),
        event(WORKLOAD, format!("oci:sha256:{image}").as_bytes()),
        event(COMPOSE, format!("sha256:{compose}").as_bytes()),
        event(READY, b""),
    ]);
    let report = synthetic(
        &s,
        "oci.json",
        &oci,
        &[
            "--expect-image",
            &format!("sha256:{image}"),
            "--expect-compose-sha256",
            &compose,
        ],
    );
    report
        .passes()
        .has(&[("launch.1", "passed"), ("launcher.events", "passed")]);
    assert_eq!(
        report.json["launches"][0]["compose"],
        format!("sha256:{compose}")
    );
    synthetic(
        &s,
        "oci-wrong.json",
        &oci,
        &["--expect-image", &format!("sha256:{}", "5b".repeat(32))],
    )
    .fails(&["launch.1"]);
    synthetic(
        &s,
        "oci-wrong-compose.json",
        &oci,
        &["--expect-compose-sha256", &"d1".repeat(32)],
    )
    .fails(&["launch.1"]);
    // A git launch is not an image launch.
    synthetic(
        &s,
        "git-as-image.json",
        &good,
        &["--expect-image", &format!("sha256:{image}")],
    )
    .fails(&["launch.1"]);
}

/// Every way of breaking the launcher-event contract fails `launcher.events`.
#[test]
fn launcher_event_order_violations_fail() {
    let s = Scratch::new();
    let commit = "1f".repeat(20);
    let config = "c0".repeat(32);
    let launch = launch_events(&commit, &config);
    let expect = [
        "--expect-commit",
        commit.as_str(),
        "--expect-config-sha256",
        config.as_str(),
    ];

    // Launcher events before system-ready.
    let boot = boot_events();
    let (before_ready, ready) = boot.split_at(boot.len() - 1);
    let early = chain(&[before_ready.to_vec(), launch.clone(), ready.to_vec()]);
    synthetic(&s, "early.json", &early, &expect).fails(&["launcher.events"]);
    synthetic(&s, "early-plain.json", &early, &[]).fails(&["launcher.events"]);

    // Workload before config.
    let swapped = chain(&[
        boot_events(),
        vec![launch[1].clone(), launch[0].clone(), launch[2].clone()],
    ]);
    synthetic(&s, "swapped.json", &swapped, &expect).fails(&["launcher.events"]);

    // Ready before workload.
    let ready_early = chain(&[
        boot_events(),
        vec![launch[0].clone(), launch[2].clone(), launch[1].clone()],
    ]);
    synthetic(&s, "ready-early.json", &ready_early, &[]).fails(&["launcher.events"]);

    // Duplicate ready.
    let twice = chain(&[boot_events(), launch.clone(), event(READY, b"")]);
    synthetic(&s, "twice.json", &twice, &expect).fails(&["launcher.events"]);

    // A duplicate workload, or config after workload, within one launch.
    let dup_workload = chain(&[
        boot_events(),
        vec![
            launch[0].clone(),
            launch[1].clone(),
            launch[1].clone(),
            launch[2].clone(),
        ],
    ]);
    synthetic(&s, "dup-workload.json", &dup_workload, &[]).fails(&["launcher.events"]);

    // A launcher-named event after ready.
    let after = chain(&[
        boot_events(),
        launch.clone(),
        event("trusted-launcher.x", b"anything"),
    ]);
    synthetic(&s, "after.json", &after, &expect).fails(&["launcher.events"]);

    // No ready at all: the launch never reached the workload.
    let unfinished = chain(&[boot_events(), launch[..2].to_vec()]);
    synthetic(&s, "unfinished.json", &unfinished, &[]).fails(&["launcher.events"]);
}

/// Several launches in one boot: every one that names a workload is compared; a config-only
/// attempt ran nothing; an application event is expected once after system-ready.
#[test]
fn every_launch_is_compared() {
    let s = Scratch::new();
    let commit = "1f".repeat(20);
    let config = "c0".repeat(32);
    let launch = launch_events(&commit, &config);
    let expect = [
        "--expect-commit",
        commit.as_str(),
        "--expect-config-sha256",
        config.as_str(),
    ];

    // An unfinished attempt (config only: the launcher stopped before choosing a workload)
    // followed by a whole one: the attempt is shown as incomplete, not compared.
    let other_config = "c9".repeat(32);
    let restarted = chain(&[
        boot_events(),
        event(CONFIG, format!("sha256:{other_config}").as_bytes()),
        launch.clone(),
    ]);
    let report = synthetic(&s, "restarted.json", &restarted, &expect);
    report.passes().has(&[
        ("launcher.events", "passed"),
        ("launch.1", "passed"),
        ("launch.2", "passed"),
    ]);
    assert_eq!(report.json["launches"][0]["outcome"], "incomplete");
    assert_eq!(report.json["launches"][1]["outcome"], "accepted");
    synthetic(
        &s,
        "restarted-first.json",
        &restarted,
        &["--expect-config-sha256", &other_config],
    )
    .fails(&["launch.2"]);

    // Launcher expectations with no launcher events at all; no launch without expectations
    // fails too, unless --allow-no-launch.
    synthetic(
        &s,
        "none.json",
        &boot_events(),
        &["--expect-commit", &commit],
    )
    .fails(&["launcher.events"]);
    synthetic(&s, "none-plain.json", &boot_events(), &[]).fails(&["launcher.events"]);

    // Two launches in one boot: both must be accepted.
    let second_commit = "2f".repeat(20);
    let second_config = "c2".repeat(32);
    let two = chain(&[
        boot_events(),
        launch.clone(),
        launch_events(&second_commit, &second_config),
    ]);
    synthetic(
        &s,
        "two.json",
        &two,
        &[
            "--expect-commit",
            &second_commit,
            "--expect-config-sha256",
            &second_config,
        ],
    )
    .fails(&["launch.1"])
    .has(&[("launch.2", "passed"), ("launcher.events", "passed")]);
    synthetic(
        &s,
        "two-both.json",
        &two,
        &[
            "--expect-commit",
            &second_commit,
            "--expect-commit",
            &commit,
            "--expect-config-sha256",
            &second_config,
            "--expect-config-sha256",
            &config,
        ],
    )
    .passes()
    .has(&[("launch.1", "passed"), ("launch.2", "passed")]);
}

/// Application events after ready are allowed and can be expected once; twice is ambiguous.
#[test]
fn application_events_are_expected_once() {
    let s = Scratch::new();
    let commit = "1f".repeat(20);
    let launch = launch_events(&commit, &"c0".repeat(32));
    let once = chain(&[boot_events(), launch.clone(), event("app-event", b"one")]);
    synthetic(
        &s,
        "app-once.json",
        &once,
        &[
            "--expect-commit",
            &commit,
            "--expect-event",
            &format!("app-event={}", hex(b"one")),
        ],
    )
    .passes()
    .has(&[("expect.event:app-event", "passed")]);
    let app = chain(&[
        boot_events(),
        launch,
        event("app-event", b"one"),
        event("app-event", b"two"),
    ]);
    for payload in [&b"one"[..], b"two"] {
        let report = synthetic(
            &s,
            "app.json",
            &app,
            &["--expect-event", &format!("app-event={}", hex(payload))],
        );
        report.fails(&["expect.event:app-event"]);
        assert!(
            report
                .detail("expect.event:app-event")
                .contains("occurs 2 times after system-ready"),
            "{}",
            report.summary()
        );
    }
}

/// The same rules through the fake agent: events emitted over its socket, `GetQuote` raw.
#[test]
fn launcher_rules_through_the_fake_agent() {
    let s = Scratch::new();
    let agent = FakeAgent::start(s.path(), Mode::Normal);
    let commit = "3a".repeat(20);
    let config = "3b".repeat(32);
    for (name, payload) in launch_events(&commit, &config) {
        emit(agent.socket_path(), &name, &payload);
    }
    let path = s.write("getquote.json", get_quote(agent.socket_path(), b"nonce"));
    s.report(&[
        &path,
        "--skip-dcap",
        "--expect-commit",
        &commit,
        "--expect-config-sha256",
        &config,
        "--expect-report-data",
        &hex(b"nonce"),
    ])
    .passes()
    .has(&[
        ("rtmr3.replay", "passed"),
        ("launcher.events", "passed"),
        ("launch.1", "passed"),
        ("expect.report_data", "passed"),
    ]);

    emit(agent.socket_path(), READY, b"");
    let path = s.write("getquote-twice.json", get_quote(agent.socket_path(), b""));
    s.report(&[&path, "--skip-dcap", "--expect-commit", &commit])
        .fails(&["launcher.events"])
        .has(&[("rtmr3.replay", "passed")]);
}

/// MRCONFIGID v1 (`0x01 || compose_hash || zeros`) against the compose-hash event of a log
/// that replays: equal passes, different fails, all zero is skipped.
#[test]
fn mrconfigid_against_the_compose_hash_event() {
    let s = Scratch::new();
    let events = boot_events();
    let compose_hash = [0x60u8; 32];
    let bound = |hash: &[u8; 32]| {
        let mut id = [0u8; 48];
        id[0] = 1;
        id[1..33].copy_from_slice(hash);
        id
    };
    let check = |name: &str, id: &[u8; 48]| {
        let path = s.write_json(name, &synthetic_getquote_with(&events, id));
        s.report(&[&path, "--skip-dcap", "--allow-no-launch"])
    };
    check("bound.json", &bound(&compose_hash))
        .passes()
        .has(&[("mrconfigid.compose_hash", "passed")]);
    check("other.json", &bound(&[0x61; 32]))
        .fails(&["mrconfigid.compose_hash"])
        .has(&[("rtmr3.replay", "passed")]);
    check("zero.json", &[0; 48])
        .passes()
        .has(&[("mrconfigid.compose_hash", "skipped")]);
    s.report(&[
        &s.write_json(
            "bound2.json",
            &synthetic_getquote_with(&events, &bound(&compose_hash)),
        ),
        "--skip-dcap",
        "--allow-no-launch",
        "--expect-compose-hash",
        &hex(&compose_hash),
    ])
    .passes()
    .has(&[("expect.compose_hash", "passed")]);
}

/// `SHA384(JCS({"name","payload","type"}))`: the v2 digest (DESIGN §4), for ASCII names.
fn v2_digest(name: &str, payload: &[u8]) -> [u8; 48] {
    sha2::Sha384::digest(v2_preimage(name, payload)).into()
}

fn v2_preimage(name: &str, payload: &[u8]) -> Vec<u8> {
    format!(
        r#"{{"name":{},"payload":"{}","type":{EVENT_TYPE}}}"#,
        serde_json::to_string(name).unwrap(),
        hex(payload)
    )
    .into_bytes()
}

/// A `GetQuote` response with v2 entries (`version: 2`, `preimage`), RTMR3 their replay;
/// `digest` gives each entry's supplied digest.
fn v2_getquote(events: &[(String, Vec<u8>)], digest: impl Fn(&str, &[u8]) -> String) -> Value {
    let log: Vec<Value> = events
        .iter()
        .map(|(n, p)| {
            json!({
                "imr": 3,
                "event_type": EVENT_TYPE,
                "digest": digest(n, p),
                "event": n,
                "event_payload": hex(p),
                "version": 2,
                "preimage": hex(&v2_preimage(n, p)),
            })
        })
        .collect();
    let digests: Vec<[u8; 48]> = events.iter().map(|(n, p)| v2_digest(n, p)).collect();
    json!({
        "quote": hex(&fake_quote(&replay(&digests), b"")),
        "event_log": serde_json::to_string(&log).unwrap(),
        "report_data": hex(&[0u8; 64]),
        "vm_config": "{}",
    })
}

/// v2 entries replay with v2 digests, supplied or stripped; a v1 digest on a v2 entry fails.
#[test]
fn v2_event_digests_replay() {
    let s = Scratch::new();
    let events = chain(&[
        boot_events(),
        launch_events(&"4d".repeat(20), &"4e".repeat(32)),
    ]);
    let full = s.write_json(
        "v2.json",
        &v2_getquote(&events, |n, p| hex(&v2_digest(n, p))),
    );
    s.report(&[&full, "--skip-dcap", "--expect-commit", &"4d".repeat(20)])
        .passes()
        .has(&[
            ("event_log.digests", "passed"),
            ("rtmr3.replay", "passed"),
            ("launcher.events", "passed"),
            ("launch.1", "passed"),
        ]);
    let stripped = s.write_json(
        "v2-stripped.json",
        &v2_getquote(&events, |_, _| String::new()),
    );
    s.report(&[&stripped, "--skip-dcap"])
        .passes()
        .has(&[("rtmr3.replay", "passed")]);
    let wrong = s.write_json(
        "v2-v1.json",
        &v2_getquote(&events, |n, p| hex(&v1_digest(n, p))),
    );
    s.report(&[&wrong, "--skip-dcap"])
        .fails(&["event_log.digests"]);
}

/// MRCONFIGID bound (0x01...) but no compose-hash event in a log that replays: fails.
#[test]
fn bound_mrconfigid_without_compose_hash_event_fails() {
    let s = Scratch::new();
    let events: Vec<(String, Vec<u8>)> = boot_events()
        .into_iter()
        .filter(|(n, _)| n != "compose-hash")
        .collect();
    let mut id = [0u8; 48];
    id[0] = 1;
    id[1..33].copy_from_slice(&[0x60; 32]);
    let path = s.write_json("no-compose.json", &synthetic_getquote_with(&events, &id));
    s.report(&[&path, "--skip-dcap"])
        .fails(&["mrconfigid.compose_hash"])
        .has(&[("rtmr3.replay", "passed")]);
}

// --- 8. round trips ------------------------------------------------------------------------

/// POSTs JSON to the fake agent's socket; returns the status and body.
fn post(socket: &Path, method: &str, body: &str) -> (u16, Vec<u8>) {
    let mut stream = UnixStream::connect(socket).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "POST /{method} HTTP/1.1\r\nHost: dstack\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).unwrap();
    let end = reply.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8(reply[..end].to_vec()).unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, reply[end + 4..].to_vec())
}

fn emit(socket: &Path, name: &str, payload: &[u8]) {
    let body = json!({"event": name, "payload": hex(payload)}).to_string();
    let (status, reply) = post(socket, "EmitEvent", &body);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&reply));
}

/// The raw body of a `GetQuote` reply.
fn get_quote(socket: &Path, report_data: &[u8]) -> Vec<u8> {
    let body = json!({"report_data": hex(report_data)}).to_string();
    let (status, reply) = post(socket, "GetQuote", &body);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&reply));
    reply
}

/// A workload commit and its line config; returns the commit and config path.
fn workload(fx: &Fixture, marker: &str) -> (String, PathBuf) {
    let sha = fx.commit(&[Item::File("entrypoint.sh", &entry(marker))]);
    let config = fx.line_config(&sha, "");
    (sha, config)
}

/// `plan --json`'s config hash.
fn planned_config_sha256(fx: &Fixture, config: &Path) -> String {
    let run = Launcher::new(fx.path())
        .args(["plan", "--json", config.to_str().unwrap()])
        .run();
    run.success();
    let plan: Value = serde_json::from_str(&run.stdout).unwrap();
    plan["config"]["sha256"].as_str().unwrap().to_owned()
}

/// tee mode against `endpoint`, with the sysfs file at `rtmr3`.
fn tee(fx: &Fixture, endpoint: &str, rtmr3: &Path) -> Launcher {
    let mut launcher = Launcher::new(fx.path());
    launcher
        .env("DSTACK_SIMULATOR_ENDPOINT", endpoint)
        .args(["--platform", "tee", "--event-log"])
        .arg(fx.event_log().to_str().unwrap())
        .arg("--rtmr3-path")
        .arg(rtmr3.to_str().unwrap());
    launcher
}

/// A verify run in the fixture's dir.
fn fixture_report(fx: &Fixture, args: &[&str]) -> Report {
    let mut launcher = Launcher::new(fx.path());
    launcher
        .arg("verify")
        .args(args.iter().copied())
        .arg("--json");
    let run = launcher.run();
    let json = serde_json::from_str(&run.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON ({e})\nexit {:?}\nstdout:\n{}\nstderr:\n{}",
            run.status, run.stdout, run.stderr
        )
    });
    Report {
        run,
        json,
        skip_dcap: args.contains(&"--skip-dcap"),
    }
}

/// A real tee launch through the fake agent (normal and stripped), then the agent's
/// `GetQuote` verifies with the expectations `plan --json` gives.
#[test]
fn round_trip_tee_launch_through_the_fake_agent() {
    for mode in [Mode::Normal, Mode::Stripped] {
        let fx = Fixture::new();
        let agent = FakeAgent::start(fx.path(), mode);
        let (sha, config) = workload(&fx, "verified");
        let config_sha256 = planned_config_sha256(&fx, &config);
        tee(
            &fx,
            agent.endpoint(),
            &fx.path().join("no-such-rtmr3:sha384"),
        )
        .arg(config.to_str().unwrap())
        .run()
        .success()
        .stdout_has("RAN verified");
        assert_eq!(agent.events().len(), 3, "{mode:?}");

        let quote_path = fx.write(
            "getquote.json",
            &String::from_utf8(get_quote(agent.socket_path(), b"")).unwrap(),
        );
        let quote_path = quote_path.to_str().unwrap();
        fixture_report(
            &fx,
            &[
                quote_path,
                "--skip-dcap",
                "--expect-commit",
                &sha,
                "--expect-config-sha256",
                &config_sha256,
            ],
        )
        .passes()
        .has(&[
            ("rtmr3.replay", "passed"),
            ("event_log.digests", "passed"),
            ("launcher.events", "passed"),
            ("launch.1", "passed"),
        ]);
        fixture_report(
            &fx,
            &[
                quote_path,
                "--skip-dcap",
                "--expect-commit",
                &"0".repeat(40),
            ],
        )
        .fails(&["launch.1"]);

        // And through stdin.
        let mut launcher = Launcher::new(fx.path());
        launcher.args(["verify", "-", "--skip-dcap", "--expect-commit", &sha]);
        let run = run_with_stdin(&launcher, &fs::read(quote_path).unwrap());
        assert_eq!(
            run.status,
            Some(3),
            "{mode:?}\n{}\n{}",
            run.stdout,
            run.stderr
        );
    }
}

/// No `EmitEvent`, and `tdx-sysfs` chosen explicitly: the launcher extends natively and
/// keeps its own log. The agent's `GetQuote` alone does not replay; with
/// `--event-log <own log>` appended, it does. (`dstack-native`, where the agent's own
/// `GetQuote` suffices, is in `tests/dstack_native.rs`.)
#[test]
fn round_trip_native_extension_with_appended_own_log() {
    let fx = Fixture::new();
    let agent = FakeAgent::start(fx.path(), Mode::NoEmitEvent);
    let rtmr3 = FakeRtmr3::start_linked(
        &fx.path().join("rtmr3:sha384"),
        agent.register(),
        &fx.event_log(),
    );
    let (sha, config) = workload(&fx, "native");
    let config_sha256 = planned_config_sha256(&fx, &config);
    tee(&fx, agent.endpoint(), rtmr3.path())
        .args(["--measurement-backend", "tdx-sysfs"])
        .arg(config.to_str().unwrap())
        .run()
        .success()
        .stdout_has("RAN native");
    let deadline = Instant::now() + Duration::from_secs(10);
    while rtmr3.received().len() < 144 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(rtmr3.received().len(), 144);

    let quote_path = fx.write(
        "getquote.json",
        &String::from_utf8(get_quote(agent.socket_path(), b"")).unwrap(),
    );
    let quote_path = quote_path.to_str().unwrap();
    let own_log = fx.event_log();
    let own_log = own_log.to_str().unwrap();
    fixture_report(
        &fx,
        &[
            quote_path,
            "--skip-dcap",
            "--event-log",
            own_log,
            "--expect-commit",
            &sha,
            "--expect-config-sha256",
            &config_sha256,
        ],
    )
    .passes()
    .has(&[
        ("rtmr3.replay", "passed"),
        ("launcher.events", "passed"),
        ("launch.1", "passed"),
    ]);
    fixture_report(&fx, &[quote_path, "--skip-dcap"]).fails(&["rtmr3.replay"]);
}

/// A nontee launch: its own log, and a quote whose RTMR3 is that log's replay, verify with
/// `--quote` and `--event-log` (JSON lines as written, or a JSON array).
#[test]
fn round_trip_nontee_own_log() {
    let fx = Fixture::new();
    let (sha, config) = workload(&fx, "local");
    let config_sha256 = planned_config_sha256(&fx, &config);
    fx.launcher()
        .arg(config.to_str().unwrap())
        .run()
        .success()
        .stdout_has("RAN local");
    let own = fx.events();
    assert_eq!(own.len(), 3);
    let v1 = |e: &Value| {
        let payload = unhex(e["event_payload"].as_str().unwrap()).unwrap();
        v1_digest(e["event"].as_str().unwrap(), &payload)
    };
    let own_log = fx.event_log();
    let expectations = [
        "--expect-commit",
        sha.as_str(),
        "--expect-config-sha256",
        config_sha256.as_str(),
    ];

    // The own log alone has no system-ready: nothing places its launch after a boot.
    let own_digests: Vec<[u8; 48]> = own.iter().map(v1).collect();
    let own_quote = fx.path().join("own-quote.bin");
    fs::write(&own_quote, fake_quote(&replay(&own_digests), b"")).unwrap();
    fixture_report(
        &fx,
        &[
            &[
                "--quote",
                own_quote.to_str().unwrap(),
                "--event-log",
                own_log.to_str().unwrap(),
                "--skip-dcap",
            ][..],
            &expectations,
        ]
        .concat(),
    )
    .fails(&["boot.events", "launcher.events"])
    .has(&[("rtmr3.replay", "passed")]);

    // After dstack's boot events (as the tdx-sysfs backend's log follows the agent's), it
    // verifies: JSON lines as written.
    let mut log: Vec<Value> = boot_events()
        .iter()
        .map(|(n, p)| runtime_entry(n, p))
        .collect();
    log.extend(own);
    let digests: Vec<[u8; 48]> = log.iter().map(v1).collect();
    let quote = fake_quote(&replay(&digests), b"");
    let quote_path = fx.path().join("quote.bin");
    fs::write(&quote_path, &quote).unwrap();
    let quote_path = quote_path.to_str().unwrap();
    let lines_text = log.iter().fold(String::new(), |mut out, e| {
        let _ = writeln!(out, "{e}");
        out
    });
    let lines_path = fx.write("boot-and-own.jsonl", &lines_text);
    let array_path = fx.write("events.json", &serde_json::to_string(&log).unwrap());
    for path in [lines_path, array_path] {
        let args = ["--quote", quote_path, "--event-log", path.to_str().unwrap()];
        let report = fixture_report(&fx, &[&args[..], &["--skip-dcap"], &expectations].concat());
        report.passes().has(&[
            ("rtmr3.replay", "passed"),
            ("event_log.digests", "passed"),
            ("boot.events", "passed"),
            ("launcher.events", "passed"),
            ("launch.1", "passed"),
        ]);
        assert_eq!(report.measurement("rtmr3"), hex(&replay(&digests)));
    }

    // A log line forged after the fact (a different commit, digest recomputed) fails.
    let mut forged = log.clone();
    let workload = format!("git:{}", "9".repeat(40));
    let at = position(&forged, WORKLOAD);
    forged[at]["event_payload"] = json!(hex(workload.as_bytes()));
    forged[at]["digest"] = json!(hex(&v1_digest(WORKLOAD, workload.as_bytes())));
    let forged_text = forged.iter().fold(String::new(), |mut out, e| {
        let _ = writeln!(out, "{e}");
        out
    });
    let forged_path = fx.write("forged.jsonl", &forged_text);
    fixture_report(
        &fx,
        &[
            "--quote",
            quote_path,
            "--event-log",
            forged_path.to_str().unwrap(),
            "--skip-dcap",
        ],
    )
    .fails(&["rtmr3.replay"]);
}

fn run_with_stdin(launcher: &Launcher, input: &[u8]) -> Run {
    let mut child = launcher
        .command()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap();
    let run = Run {
        status: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    run
}

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
