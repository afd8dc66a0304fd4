//! Shared by the `verify` tests of issue 13 (`verify_plan`, `verify_input`, `verify_verdict`): run
//! `verify` on the real binary and read its verdict, text and JSON.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::fake_agent::{QUOTE_LEN, QUOTE_RTMR3, boot_runtime_events, hex, replay, v1_digest};

use super::{Launcher, Run};

/// `now` values inside each collateral's validity (tests/fixtures/README.md).
pub const NEAR_NOW: &str = "1786622400";
pub const QUOTE_REPORT_NOW: &str = "1772000000";
pub const SAMPLE_NOW: &str = "1751624655";
pub const TD15EX_NOW: &str = "1792713448";

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub fn fixture_str(name: &str) -> String {
    fixture(name).to_str().unwrap().to_owned()
}

/// An unsigned v4 TDX quote whose RTMR3 is `rtmr3` (DESIGN §5 offsets, as the fake agent).
pub fn quote_with_rtmr3(rtmr3: &[u8; 48]) -> Vec<u8> {
    let mut quote = vec![0u8; QUOTE_LEN];
    quote[0..2].copy_from_slice(&4u16.to_le_bytes());
    quote[2..4].copy_from_slice(&2u16.to_le_bytes());
    quote[4..8].copy_from_slice(&0x81u32.to_le_bytes());
    quote[QUOTE_RTMR3..QUOTE_RTMR3 + 48].copy_from_slice(rtmr3);
    quote
}

/// A dstack `GetQuote` reply: boot events, then `launch` (name, payload), RTMR3 replayed.
pub fn get_quote(launch: &[(String, Vec<u8>)]) -> Value {
    let events: Vec<(String, Vec<u8>)> = boot_runtime_events()
        .into_iter()
        .chain(launch.iter().cloned())
        .collect();
    let digests: Vec<[u8; 48]> = events.iter().map(|(n, p)| v1_digest(n, p)).collect();
    let log: Vec<Value> = events
        .iter()
        .zip(&digests)
        .map(|((name, payload), digest)| {
            json!({"imr": 3, "event_type": 0x0800_0001, "digest": hex(digest),
                   "event": name, "event_payload": hex(payload)})
        })
        .collect();
    json!({
        "quote": hex(&quote_with_rtmr3(&replay(&digests))),
        "event_log": serde_json::to_string(&log).unwrap(),
    })
}

/// One `verify` run: its text report and the same run's `--json` report.
pub struct Verdict {
    pub text: Run,
    pub json: Value,
    pub json_status: Option<i32>,
}

impl Verdict {
    /// The first line of the text report.
    pub fn line(&self) -> &str {
        self.text.stdout.lines().next().unwrap_or("")
    }

    pub fn status(&self) -> Option<i32> {
        self.text.status
    }

    /// The status of check `name` in the JSON report (`passed`, `failed`, `skipped`).
    pub fn check(&self, name: &str) -> String {
        self.json["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .map_or_else(
                || "absent".to_owned(),
                |c| c["status"].as_str().unwrap().to_owned(),
            )
    }

    /// The detail of check `name`.
    pub fn detail(&self, name: &str) -> String {
        self.json["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .map_or_else(String::new, |c| c["detail"].as_str().unwrap().to_owned())
    }

    /// Asserts the verdict line starts with `prefix` (text and JSON agree), and the exit.
    #[track_caller]
    pub fn says(&self, code: i32, prefix: &str) -> &Self {
        assert_eq!(
            self.status(),
            Some(code),
            "exit\nstdout:\n{}\nstderr:\n{}",
            self.text.stdout,
            self.text.stderr
        );
        assert_eq!(self.json_status, Some(code), "--json exit differs");
        assert!(
            self.line().starts_with(prefix),
            "verdict {:?} does not start with {prefix:?}\n{}",
            self.line(),
            self.text.stdout
        );
        assert_eq!(self.json["verdict"], self.line(), "--json verdict differs");
        self
    }

    #[track_caller]
    pub fn mentions(&self, needle: &str) -> &Self {
        assert!(
            self.line().contains(needle),
            "verdict {:?} lacks {needle:?}",
            self.line()
        );
        self
    }
}

/// `trusted-launcher verify ARGS` in `cwd`, as text and as `--json`.
pub fn verify(cwd: &Path, args: &[&str]) -> Verdict {
    let run = |json: bool| {
        let mut launcher = Launcher::new(cwd);
        launcher.arg("verify").args(args.iter().copied());
        if json {
            launcher.arg("--json");
        }
        launcher.run()
    };
    let text = run(false);
    let json_run = run(true);
    let json = serde_json::from_str(&json_run.stdout).unwrap_or_else(|e| {
        panic!(
            "verify --json printed no JSON ({e})\nstdout:\n{}\nstderr:\n{}",
            json_run.stdout, json_run.stderr
        )
    });
    Verdict {
        text,
        json,
        json_status: json_run.status,
    }
}

/// A usage error: exit 2, exactly one stderr line in the documented form naming `needle`,
/// nothing on stdout.
#[track_caller]
pub fn one_line_usage_error(run: &Run, needle: &str) {
    assert_eq!(
        run.status,
        Some(2),
        "stdout:\n{}\nstderr:\n{}",
        run.stdout,
        run.stderr
    );
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line expected:\n{}", run.stderr);
    assert!(
        lines[0].starts_with("trusted-launcher: error: ") && lines[0].contains(needle),
        "{:?} lacks {needle:?}",
        lines[0]
    );
    assert!(run.stdout.is_empty(), "stdout: {}", run.stdout);
}
