//! Image mode, `plan`: the `[image]` config, approval of digests, and resolution through an
//! in-process registry (`common::fake_registry`) that can be hostile — mismatching bodies,
//! oversized manifests, 401 loops, silence, 503s, 404s, index rewriting. `plan` resolves
//! without pulling, measuring or starting anything; every expected digest is computed here,
//! from the bytes the fake stores.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod approval;
mod auth;
#[path = "../common/mod.rs"]
mod common;
mod config_errors;
mod fake_registry_checks;
mod hostile_registry;
mod resolution;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest as _, Sha256};

use common::fake_agent::v1_digest;
use common::fake_registry::{ACCEPT_TYPES, FakeRegistry, Request};
use common::{Fixture, Run, hex};

/// How long a refusal for a silent or slow registry may take ("timed out within ~60 s").
const TIMEOUT_BOUND: Duration = Duration::from_secs(75);
/// Most manifest attempts a persistently failing registry may see.
const MAX_ATTEMPTS: usize = 5;

/// What `plan --json` must report under `"image"`.
struct Expect<'a> {
    requested: &'a str,
    kind: &'a str,
    platform: &'a str,
    manifest: &'a str,
    config: &'a str,
}

/// An `[image]` config for `registry`, pinned to `digest`, plus `extra` lines.
fn image_config(fx: &Fixture, registry: &FakeRegistry, digest: &str, extra: &str) -> PathBuf {
    fx.write(
        "c.toml",
        &format!(
            "[image]\nreference = \"{}\"\ndigest = \"{digest}\"\n{extra}",
            registry.reference()
        ),
    )
}

fn plan(fx: &Fixture, config: &Path, json: bool) -> Run {
    let mut launcher = fx.launcher();
    launcher.arg("plan");
    if json {
        launcher.arg("--json");
    }
    launcher.arg(config.to_str().unwrap()).run()
}

/// Runs `plan --json`, expects success, returns the parsed object.
#[track_caller]
fn plan_json(fx: &Fixture, config: &Path) -> Value {
    let run = plan(fx, config, true);
    run.success();
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("plan --json is not JSON ({e}):\n{}", run.stdout))
}

/// Runs `plan --json`, timing it.
fn timed_plan(fx: &Fixture, config: &Path) -> (Run, Duration) {
    let started = Instant::now();
    let run = plan(fx, config, true);
    (run, started.elapsed())
}

/// The image facts, the workload identity, the measured events, and no side effects.
#[track_caller]
fn assert_image_plan(
    fx: &Fixture,
    config: &Path,
    registry: &FakeRegistry,
    plan: &Value,
    e: &Expect<'_>,
) {
    let image = &plan["image"];
    assert_eq!(image["reference"], registry.reference(), "{plan:#}");
    assert_eq!(image["requested"], e.requested, "{plan:#}");
    assert_eq!(image["kind"], e.kind, "{plan:#}");
    assert_eq!(image["platform"], e.platform, "{plan:#}");
    assert_eq!(image["manifest"], e.manifest, "{plan:#}");
    assert_eq!(image["config"], e.config, "{plan:#}");
    let identity = format!("oci:{}", e.requested);
    assert_eq!(plan["workload"], identity, "{plan:#}");

    let events = plan["events"].as_array().unwrap();
    let event = |name: &str| {
        events
            .iter()
            .find(|ev| ev["event"] == name)
            .unwrap_or_else(|| panic!("no {name} event: {plan:#}"))
    };
    let workload = event("trusted-launcher.workload");
    assert_eq!(workload["event_payload"], hex(identity.as_bytes()));
    assert_eq!(
        workload["digest"],
        hex(&v1_digest("trusted-launcher.workload", identity.as_bytes()))
    );
    let config_payload = format!("sha256:{}", hex(&Sha256::digest(fs::read(config).unwrap())));
    assert_eq!(
        event("trusted-launcher.config")["event_payload"],
        hex(config_payload.as_bytes())
    );
    assert_nothing_else_touched(fx, registry, plan["image"]["config"].as_str().unwrap());
}

/// `plan` measured nothing and pulled nothing: no event log, and no blob requested but the
/// image config `config` (read to check the image's own platform; layers never).
#[track_caller]
fn assert_nothing_else_touched(fx: &Fixture, registry: &FakeRegistry, config: &str) {
    assert!(
        !fx.event_log().exists(),
        "plan wrote an event log: {:?}",
        fs::read_to_string(fx.event_log())
    );
    let blobs: Vec<String> = registry
        .requests()
        .into_iter()
        .filter(Request::is_blob)
        .map(|r| r.target)
        .filter(|target| !target.ends_with(&format!("/blobs/{config}")))
        .collect();
    assert!(
        blobs.is_empty(),
        "plan pulled blobs other than the config {config}: {blobs:?}"
    );
}

/// Exit 1 with an `error:` line containing `needle` (case-insensitive) and at least one of
/// `names` (the digest or the registry), and nothing measured.
#[track_caller]
fn refused(fx: &Fixture, run: &Run, needle: &str, names: &[&str]) {
    assert_eq!(
        run.status,
        Some(1),
        "expected exit 1\nstdout:\n{}\nstderr:\n{}",
        run.stdout,
        run.stderr
    );
    let stderr = run.stderr.to_lowercase();
    assert!(stderr.contains("error:"), "no error line:\n{}", run.stderr);
    assert!(
        stderr.contains(&needle.to_lowercase()),
        "stderr lacks {needle:?}:\n{}",
        run.stderr
    );
    assert!(
        names.iter().any(|n| run.stderr.contains(n)),
        "stderr names none of {names:?}:\n{}",
        run.stderr
    );
    assert!(!fx.event_log().exists(), "a refusal measured something");
    // Shown with --nocapture: the error text a user gets.
    eprintln!("refusal: {}", run.stderr.trim_end());
}

fn hex_of(digest: &str) -> &str {
    digest.trim_start_matches("sha256:")
}

/// Every manifest request carried all four Accept types.
#[track_caller]
fn assert_all_accept_types(registry: &FakeRegistry) {
    let requests = registry.manifest_requests();
    assert!(!requests.is_empty(), "no manifest request");
    for request in requests {
        let accepted = request.accept_types();
        for wanted in ACCEPT_TYPES {
            assert!(
                accepted.iter().any(|a| a == wanted),
                "{} {} lacks Accept {wanted}: {:?}",
                request.method,
                request.target,
                request.headers
            );
        }
    }
}

/// Manifest references the launcher asked for, in order, deduplicated.
fn requested_references(registry: &FakeRegistry) -> Vec<String> {
    let mut references: Vec<String> = Vec::new();
    for request in registry.manifest_requests() {
        let reference = request.manifest_reference().unwrap().to_owned();
        if !references.contains(&reference) {
            references.push(reference);
        }
    }
    references
}
