//! Forged `GetQuote` replies for `verify` tests: dstack's boot events, launcher events, a
//! quote whose RTMR3 is their replay (unsigned: runs use `--skip-dcap`), the real binary's
//! verdict, and the old rules re-implemented (to show an attack fooled them).
//!
//! Logs are forged the way an attacker can: dstack's `EmitEvent` reserves no names and the
//! workload keeps the agent socket in git mode, so any event can be appended after
//! `system-ready`, and RTMR3 is then the honest replay of the forged log.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;

use serde_json::{Value, json};

use super::Launcher;
use super::Run;
use super::fake_agent::{EVENT_TYPE, QUOTE_LEN, QUOTE_RTMR3, hex, replay, v1_digest};

pub const CONFIG: &str = "trusted-launcher.config";
pub const WORKLOAD: &str = "trusted-launcher.workload";
pub const COMPOSE: &str = "trusted-launcher.compose";
pub const READY: &str = "trusted-launcher.ready";

pub type Events = Vec<(String, Vec<u8>)>;

pub fn ev(name: &str, payload: impl AsRef<[u8]>) -> (String, Vec<u8>) {
    (name.to_owned(), payload.as_ref().to_vec())
}

/// dstack's boot events in the order of the real 0.5.x log
/// (`tests/fixtures/crabbox_real_attestation_info.json`), with `compose_hash` as given.
pub fn boot(compose_hash: &[u8; 32]) -> Events {
    vec![
        ev("system-preparing", b""),
        ev("app-id", [0x94; 20]),
        ev("compose-hash", compose_hash),
        ev("instance-id", [0xce; 20]),
        ev("boot-mr-done", b""),
        ev("key-provider", br#"{"name":"kms","id":"30"}"#),
        ev("storage-fs", b"zfs"),
        ev("system-ready", b""),
    ]
}

pub fn git_launch(commit: &str, config: &str) -> Events {
    vec![
        ev(CONFIG, format!("sha256:{config}")),
        ev(WORKLOAD, format!("git:{commit}")),
        ev(READY, b""),
    ]
}

pub fn image_launch(image: &str, compose: &str) -> Events {
    vec![
        ev(CONFIG, format!("sha256:{}", "c0".repeat(32))),
        ev(WORKLOAD, format!("oci:sha256:{image}")),
        ev(COMPOSE, format!("sha256:{compose}")),
        ev(READY, b""),
    ]
}

/// A `GetQuote` reply whose quote's RTMR3 is the replay of `events` (MRCONFIGID zero, as in
/// tests/fixtures/dstack_verifier_quote-report.json) and has no signature.
pub fn getquote(events: &[(String, Vec<u8>)]) -> Value {
    let log: Vec<Value> = events
        .iter()
        .map(|(n, p)| {
            json!({"imr": 3, "event_type": EVENT_TYPE, "digest": hex(&v1_digest(n, p)),
                   "event": n, "event_payload": hex(p)})
        })
        .collect();
    let digests: Vec<[u8; 48]> = events.iter().map(|(n, p)| v1_digest(n, p)).collect();
    let mut quote = vec![0u8; QUOTE_LEN];
    quote[0..2].copy_from_slice(&4u16.to_le_bytes());
    quote[2..4].copy_from_slice(&2u16.to_le_bytes());
    quote[4..8].copy_from_slice(&0x81u32.to_le_bytes());
    quote[QUOTE_RTMR3..QUOTE_RTMR3 + 48].copy_from_slice(&replay(&digests));
    json!({"quote": hex(&quote), "event_log": serde_json::to_string(&log).unwrap(),
           "report_data": hex(&[0u8; 64]), "vm_config": "{}"})
}

/// One `verify --json` run of the real binary.
pub struct Verdict {
    pub run: Run,
    pub json: Value,
}

impl Verdict {
    pub fn status(&self, check: &str) -> String {
        self.json["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == check)
            .map_or_else(
                || "absent".to_owned(),
                |c| c["status"].as_str().unwrap().to_owned(),
            )
    }

    pub fn detail(&self, check: &str) -> String {
        let checks = self.json["checks"].as_array().unwrap();
        let found = checks.iter().find(|c| c["name"] == check);
        found.map(|c| c["detail"].to_string()).unwrap_or_default()
    }

    pub fn failed(&self) -> Vec<String> {
        let checks = self.json["checks"].as_array().unwrap();
        let failed = checks.iter().filter(|c| c["status"] == "failed");
        failed
            .map(|c| c["name"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Exit 1, `ok: false`, and each named check failed.
    #[track_caller]
    pub fn fails(&self, checks: &[&str]) -> &Self {
        let context = format!("{}\n{}", self.run.stdout, self.run.stderr);
        assert_eq!(self.run.status, Some(1), "{context}");
        assert_eq!(self.json["ok"], false, "{context}");
        for check in checks {
            assert_eq!(self.status(check), "failed", "{check}\n{context}");
        }
        self
    }

    /// Every check passed, but the signature was skipped: exit 3, `ok: false`.
    #[track_caller]
    pub fn passes_unsigned(&self) -> &Self {
        let context = format!("{}\n{}", self.run.stdout, self.run.stderr);
        assert!(self.failed().is_empty(), "{context}");
        assert_eq!(self.run.status, Some(3), "{context}");
        assert_eq!(self.json["ok"], false, "{context}");
        self
    }
}

pub fn verify_file(dir: &Path, file: &str, args: &[&str]) -> Verdict {
    let mut launcher = Launcher::new(dir);
    launcher
        .args(["verify", file, "--skip-dcap", "--json"])
        .args(args.iter().copied());
    let run = launcher.run();
    let json = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("no JSON ({e}): {}\n{}", run.stdout, run.stderr));
    Verdict { run, json }
}

pub fn verify(events: &[(String, Vec<u8>)], args: &[&str]) -> Verdict {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("getquote.json");
    std::fs::write(&path, serde_json::to_vec(&getquote(events)).unwrap()).unwrap();
    verify_file(dir.path(), path.to_str().unwrap(), args)
}

// --- the old rules, re-implemented to show each attack worked against them --------------

/// The old rule: the workload of the last complete `config, workload, ready` run.
pub fn old_last_launch(events: &[(String, Vec<u8>)]) -> Option<String> {
    let ours: Vec<&(String, Vec<u8>)> = events
        .iter()
        .filter(|(n, _)| n.starts_with("trusted-launcher."))
        .collect();
    let start = ours.iter().rposition(|(n, _)| n == CONFIG)?;
    let last = &ours[start..];
    (last.last()?.0 == READY).then(|| String::from_utf8(last.get(1)?.1.clone()).ok())?
}

/// The old rule for boot identity and `--expect-event`: the last event of that name.
pub fn old_last_payload<'a>(events: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a [u8]> {
    events
        .iter()
        .rev()
        .find(|(n, _)| n == name)
        .map(|(_, p)| p.as_slice())
}
