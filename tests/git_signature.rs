//! `[git.signature]` (issue 17): the real binary launching real gitsign-signed commits
//! (tests/fixtures/sigstore/gitsign/, from sigstore/gitsign's test data). The commit objects
//! are written into the fixture origin byte for byte (`git hash-object --literally`): their
//! tree is git's empty tree and a depth-1 fetch does not need their parent.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::path::{Path, PathBuf};

use serde_json::Value;

use common::{Fixture, Item, Run, git};

const GITSIGN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/sigstore/gitsign"
);
const BILLY: &str = "billy@chainguard.dev";
const GOOGLE: &str = "https://accounts.google.com";
const SIGNER: &str = "trusted-launcher.signer";

/// Stores `content` as a commit object in the origin, on `main`; returns its id.
fn push_object(fx: &Fixture, content: &[u8]) -> String {
    let file = fx.write("object", std::str::from_utf8(content).unwrap());
    let origin = fx.origin().display().to_string();
    let id = git(
        fx.path(),
        &[
            "--git-dir",
            &origin,
            "hash-object",
            "-t",
            "commit",
            "-w",
            "--literally",
            file.to_str().unwrap(),
        ],
    );
    git(
        fx.path(),
        &["--git-dir", &origin, "update-ref", "refs/heads/main", &id],
    );
    id
}

fn config(fx: &Fixture, commit: &str, policy: &str) -> PathBuf {
    fx.write(
        "launcher.toml",
        &format!(
            "[git]\nrepo = \"{}\"\ncommit = \"{commit}\"\nwork_dir = \"{}\"\nrun = \"echo RAN-SIGNED\"\n{policy}",
            fx.url(),
            fx.work_dir().display()
        ),
    )
}

fn keyless(identity: &str) -> String {
    format!("[git.signature]\nissuer = \"{GOOGLE}\"\nidentity = \"{identity}\"\n")
}

fn launch(fx: &Fixture, config: &Path) -> Run {
    fx.launcher().arg(config.to_str().unwrap()).run()
}

fn measured(fx: &Fixture) -> Vec<(String, String)> {
    fx.events()
        .iter()
        .map(|e| {
            let payload = e["event_payload"].as_str().unwrap();
            let bytes: Vec<u8> = (0..payload.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&payload[i..i + 2], 16).unwrap())
                .collect();
            (
                e["event"].as_str().unwrap().to_owned(),
                String::from_utf8(bytes).unwrap(),
            )
        })
        .collect()
}

fn names(events: &[(String, String)]) -> Vec<&str> {
    events.iter().map(|(n, _)| n.as_str()).collect()
}

#[test]
fn a_gitsign_commit_with_the_policys_identity_runs_with_its_signer_measured() {
    let fx = Fixture::new();
    let commit = push_object(
        &fx,
        &std::fs::read(format!("{GITSIGN}/commit.txt")).unwrap(),
    );
    let run = launch(&fx, &config(&fx, &commit, &keyless(BILLY)));
    run.success().stdout_has("RAN-SIGNED");
    let events = measured(&fx);
    assert_eq!(
        names(&events),
        [
            "trusted-launcher.config",
            "trusted-launcher.workload",
            SIGNER,
            "trusted-launcher.ready"
        ]
    );
    let signer: Value = serde_json::from_str(&events[2].1).unwrap();
    assert_eq!(signer["identity"], BILLY);
    assert_eq!(signer["issuer"], GOOGLE);
    assert!(
        signer["trusted_root"]
            .as_str()
            .unwrap()
            .starts_with("sha256:6494e21e")
    );
}

#[test]
fn another_identity_is_refused_before_anything_from_the_checkout_runs() {
    let fx = Fixture::new();
    let commit = push_object(
        &fx,
        &std::fs::read(format!("{GITSIGN}/commit.txt")).unwrap(),
    );
    let run = launch(&fx, &config(&fx, &commit, &keyless("release@example.com")));
    run.fails(
        1,
        &format!(
            "commit {commit}: its gitsign signature does not verify under [git.signature], so it is not started: certificate identity \"{BILLY}\" does not match the policy's \"release@example.com\""
        ),
    );
    assert!(!run.stdout.contains("RAN-"));
    // Nothing measured past the workload.
    assert_eq!(
        names(&measured(&fx)),
        ["trusted-launcher.config", "trusted-launcher.workload"]
    );
}

/// The attack: the real signature grafted onto another commit (another message, so another
/// id, which the config approves). Without a policy it runs; with one it is refused.
#[test]
fn a_signature_grafted_onto_another_commit_is_refused() {
    let fx = Fixture::new();
    let original = std::fs::read_to_string(format!("{GITSIGN}/commit.txt")).unwrap();
    let (head, message) = original.split_once("\n\n").unwrap();
    let grafted = format!("{head}\n\nnot what was signed\n");
    assert_ne!(message, "not what was signed\n");
    let commit = push_object(&fx, grafted.as_bytes());
    launch(&fx, &config(&fx, &commit, ""))
        .success()
        .stdout_has("RAN-SIGNED");
    std::fs::remove_file(fx.event_log()).unwrap();

    let run = launch(&fx, &config(&fx, &commit, &keyless(BILLY)));
    run.fails(1, "the signature's messageDigest is not the commit's");
    assert!(!run.stdout.contains("RAN-"));
    assert_eq!(
        names(&measured(&fx)),
        ["trusted-launcher.config", "trusted-launcher.workload"]
    );
}

#[test]
fn an_unsigned_commit_is_refused_and_runs_without_a_policy() {
    let fx = Fixture::new();
    let commit = fx.commit(&[Item::File("README", "unsigned\n")]);
    launch(&fx, &config(&fx, &commit, ""))
        .success()
        .stdout_has("RAN-SIGNED");
    assert_eq!(
        names(&measured(&fx)),
        [
            "trusted-launcher.config",
            "trusted-launcher.workload",
            "trusted-launcher.ready"
        ],
        "no policy: no signer event"
    );
    std::fs::remove_file(fx.event_log()).unwrap();
    launch(&fx, &config(&fx, &commit, &keyless(BILLY))).fails(
        1,
        "so it is not started: the commit is not signed (no gpgsig header)",
    );
    assert_eq!(measured(&fx).len(), 2);
}

#[test]
fn plan_shows_the_signer_the_policy_requires() {
    let fx = Fixture::new();
    let commit = push_object(
        &fx,
        &std::fs::read(format!("{GITSIGN}/commit.txt")).unwrap(),
    );
    let run = fx
        .launcher()
        .args(["plan", "--json"])
        .arg(config(&fx, &commit, &keyless(BILLY)).to_str().unwrap())
        .run();
    run.success();
    let plan: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        plan["signer"],
        serde_json::json!({"identity": BILLY, "issuer": GOOGLE})
    );
}
