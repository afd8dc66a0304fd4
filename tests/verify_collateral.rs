//! `verify` without `--collateral` (issue 13): collateral fetched for the quote's FMSPC from a
//! PCS/PCCS (a loopback stand-in over TLS serving the fixtures' real collateral, see
//! `common/pcs.rs`), cached, reused `--offline`, saved and read back. The failures are in
//! `verify_collateral_errors.rs`. No test talks to the internet.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::fs;

use serde_json::Value;

use common::Launcher;
use common::collateral_run::{
    COLLATERAL, LATE_NOW, QUOTE, SAMPLE_NOW, Scratch, Verdict, fixture, fixture_json,
};
use common::pcs::{self, PCK_CRL_PATH, QE_PATH, ROOT_CRL_PATH, TCB_PATH};

/// The fixture's collateral, served as a PCCS serves it, verifies the quote; it is cached by
/// FMSPC and CA, and the cache alone verifies it again once the server is gone, `--offline`
/// or not.
#[test]
fn live_fetch_verifies_and_the_cache_serves_offline() {
    let s = Scratch::new();
    let server = s.pcs(&pcs::routes_for(&fixture_json(COLLATERAL)));
    let url = server.url();

    let fetched = s.verify(&["--pccs-url", &url, "--now", SAMPLE_NOW]);
    assert_eq!(fetched.verified(), "fetched");
    let collateral = &fetched.json["collateral"];
    assert_eq!(collateral["location"], url.as_str());
    assert_eq!(collateral["valid_until"], "2025-07-19T10:00:35Z");
    assert_eq!(collateral["valid_until_unix"], 1_752_919_235);
    assert_eq!(collateral["expires_first"], "PCK CRL");
    let entry = s.cache().join("tdx-b0c06f000000-platform.json");
    assert_eq!(collateral["cached"], entry.to_str().unwrap());
    let detail = fetched.check("quote.collateral").1;
    assert!(
        detail.starts_with(&format!(
            "fetched from {url} for FMSPC B0C06F000000 (platform CA); valid until 2025-07-19T10:00:35Z (PCK CRL nextUpdate); cached in "
        )),
        "{detail}"
    );
    assert_eq!(
        server.requests(),
        [PCK_CRL_PATH, TCB_PATH, QE_PATH, ROOT_CRL_PATH]
    );
    // The cache holds the fixture's collateral, item for item.
    let cached: Value = serde_json::from_slice(&fs::read(&entry).unwrap()).unwrap();
    let original = fixture_json(COLLATERAL);
    for (name, value) in original.as_object().unwrap() {
        let lower = |v: &Value| v.as_str().unwrap().to_ascii_lowercase();
        assert_eq!(lower(&cached[name]), lower(value), "{name}");
    }

    drop(server);
    let offline = s.verify(&["--offline", "--now", SAMPLE_NOW]);
    assert_eq!(offline.verified(), "cache");
    assert_eq!(
        offline.json["collateral"]["location"],
        entry.to_str().unwrap()
    );
    // Without --offline a valid entry is used as well: the stopped server is never asked.
    let again = s.verify(&["--pccs-url", &url, "--now", SAMPLE_NOW]);
    assert_eq!(again.verified(), "cache");
}

/// `--save-collateral` writes what was used in the shape `--collateral` reads: an offline run
/// from that file repeats the verdict check for check.
#[test]
fn saved_collateral_repeats_the_verdict_offline() {
    let s = Scratch::new();
    let server = s.pcs(&pcs::routes_for(&fixture_json(COLLATERAL)));
    let saved = s.path().join("saved.json");
    let saved_str = saved.to_str().unwrap();
    let live = s.verify(&[
        "--pccs-url",
        &server.url(),
        "--now",
        SAMPLE_NOW,
        "--save-collateral",
        saved_str,
    ]);
    live.verified();
    assert_eq!(live.json["collateral"]["saved"], saved_str);
    drop(server);
    fs::remove_dir_all(s.cache()).unwrap();

    let repeat = s.verify(&["--offline", "--collateral", saved_str, "--now", SAMPLE_NOW]);
    assert_eq!(repeat.verified(), "file");
    let statuses = |v: &Verdict| -> Vec<(String, String)> {
        v.json["checks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["name"].to_string(), c["status"].to_string()))
            .collect()
    };
    assert_eq!(statuses(&repeat), statuses(&live));
    assert_eq!(repeat.json["tcb_status"], live.json["tcb_status"]);
    assert_eq!(repeat.json["measurements"], live.json["measurements"]);
    assert_eq!(
        repeat.json["collateral"]["valid_until"],
        live.json["collateral"]["valid_until"]
    );
    // Saved even when the verdict is a failure (here: verified too late), to repeat that too.
    let late = s.verify(&[
        "--offline",
        "--collateral",
        saved_str,
        "--now",
        LATE_NOW,
        "--save-collateral",
        s.path().join("late.json").to_str().unwrap(),
    ]);
    late.collateral_fails();
    assert!(s.path().join("late.json").exists());
}

/// Without --cache-dir the cache is `$XDG_CACHE_HOME/trusted-launcher/collateral` (an
/// absolute `XDG_CACHE_HOME` only, as the XDG base directory spec says), else
/// `$HOME/.cache/trusted-launcher/collateral`.
#[test]
fn the_cache_lives_in_the_xdg_cache_dir() {
    let s = Scratch::new();
    let server = s.pcs(&pcs::routes_for(&fixture_json(COLLATERAL)));
    let run = |env: Option<&str>| -> Value {
        let mut launcher = Launcher::new(s.path());
        launcher
            .args([
                "verify",
                "--quote",
                fixture(QUOTE).to_str().unwrap(),
                "--allow-no-launch",
            ])
            .args(["--json", "--now", SAMPLE_NOW, "--pccs-url", &server.url()])
            .args(["--pccs-ca-file", pcs::ca_file().to_str().unwrap()]);
        if let Some(xdg) = env {
            launcher.env("XDG_CACHE_HOME", xdg);
        }
        let run = launcher.run();
        assert_eq!(run.status, Some(0), "{}\n{}", run.stdout, run.stderr);
        serde_json::from_str(&run.stdout).unwrap()
    };
    let xdg = s.path().join("xdg");
    let json = run(Some(xdg.to_str().unwrap()));
    let entry = xdg.join("trusted-launcher/collateral/tdx-b0c06f000000-platform.json");
    assert_eq!(json["collateral"]["cached"], entry.to_str().unwrap());
    assert!(entry.is_file());
    // The launcher harness sets HOME to <scratch>/home.
    let home_entry = s
        .path()
        .join("home/.cache/trusted-launcher/collateral/tdx-b0c06f000000-platform.json");
    let json = run(Some("relative/cache"));
    assert_eq!(json["collateral"]["cached"], home_entry.to_str().unwrap());
    assert!(!s.path().join("relative").exists());
    // The entry now there is used: the server is not asked again.
    let before = server.requests().len();
    let json = run(None);
    assert_eq!(json["collateral"]["source"], "cache");
    assert_eq!(server.requests().len(), before);
}

/// A `--pccs-url` that is not https is a usage error before anything runs.
#[test]
fn pccs_url_must_be_https() {
    let s = Scratch::new();
    let mut launcher = Launcher::new(s.path());
    launcher.args(["verify", "--quote", fixture(QUOTE).to_str().unwrap()]);
    launcher.args(["--pccs-url", "http://127.0.0.1:9"]);
    let run = launcher.run();
    assert_eq!(run.status, Some(2), "{}", run.stderr);
    assert!(run.stdout.is_empty());
    assert!(
        run.stderr
            .contains("--pccs-url \"http://127.0.0.1:9\" must be an https:// URL"),
        "{}",
        run.stderr
    );
}
