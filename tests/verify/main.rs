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

mod attestation;
#[path = "../common/mod.rs"]
mod common;
mod config_id;
mod known_answers;
mod launch;
mod launcher_rules;
mod malformed;
mod mutations;
mod near;
mod round_trip;
mod stdin_and_output;

use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};

use common::{Launcher, Run};

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
