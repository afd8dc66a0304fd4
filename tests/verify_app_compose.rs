//! `verify` and the app-compose the evidence carries. On Phala Cloud the measured app-compose
//! is one Phala generates (`features`, `pre_launch_script`, `public_tcbinfo`, ...), so a
//! verifier cannot rebuild it; the agent's `Info` reply carries the exact measured bytes in
//! `tcb_info.app_compose` (dstack guest-agent `Info`; the real reply in
//! `tests/fixtures/crabbox_real_attestation_info.json`). `verify` hashes those bytes and checks
//! them against the boot's `compose-hash` event and MRCONFIGID (`compose_hash.evidence_app_compose`);
//! an `--app-compose FILE` must match too and be the same bytes (`compose_hash.app_compose`).

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::path::Path;

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use common::Launcher;
use common::fake_agent::hex;
use common::forged_log::{Verdict, verify_file};

const CRABBOX_INFO: &str = "crabbox_real_attestation_info.json";
const CRABBOX_QUOTE: &str = "crabbox_real_tdx_quote.bin";
const CARRIED: &str = "compose_hash.evidence_app_compose";
const AUDITED: &str = "compose_hash.app_compose";

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
        .display()
        .to_string()
}

fn info() -> Value {
    serde_json::from_slice(&std::fs::read(fixture(CRABBOX_INFO)).unwrap()).unwrap()
}

/// The Info reply's `tcb_info`, which dstack sends as a JSON string.
fn tcb_info(info: &Value) -> Value {
    serde_json::from_str(info["tcb_info"].as_str().unwrap()).unwrap()
}

fn real_app_compose() -> String {
    tcb_info(&info())["app_compose"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The boot's `compose-hash` event payload in the Info reply's log.
fn compose_hash_event(info: &Value) -> String {
    tcb_info(info)["event_log"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"] == "compose-hash")
        .unwrap()["event_payload"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// A naive verifier: the registers replay, so it believes the Info reply and shows the
/// image its app-compose names, without hashing the app-compose.
fn naive_compose_image(info: &Value) -> String {
    let compose: Value =
        serde_json::from_str(tcb_info(info)["app_compose"].as_str().unwrap()).unwrap();
    let file = compose["docker_compose_file"].as_str().unwrap();
    file.lines()
        .find_map(|l| l.trim().strip_prefix("image: "))
        .unwrap()
        .to_owned()
}

fn write(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path.display().to_string()
}

/// Known answer: the real Phala app-compose in the Info reply hashes to the boot's
/// `compose-hash` event (and to `tcb_info.compose_hash`), which MRCONFIGID binds too.
#[test]
fn the_real_phala_app_compose_is_the_measured_one() {
    let info = info();
    let compose = real_app_compose();
    // Phala-generated: keys a hand-written app-compose would not have.
    let keys: Value = serde_json::from_str(&compose).unwrap();
    for key in ["features", "pre_launch_script", "public_tcbinfo"] {
        assert!(keys.get(key).is_some(), "{key}");
    }
    let hash = sha256_hex(compose.as_bytes());
    assert_eq!(hash, compose_hash_event(&info));
    assert_eq!(hash, tcb_info(&info)["compose_hash"]);

    let dir = tempfile::tempdir().unwrap();
    let verdict = verify_file(dir.path(), &fixture(CRABBOX_INFO), &["--allow-no-launch"]);
    verdict.passes_unsigned();
    assert_eq!(verdict.status(CARRIED), "passed");
    assert_eq!(verdict.status(AUDITED), "skipped");
    assert_eq!(verdict.status("mrconfigid.compose_hash"), "passed");
    assert!(
        verdict.detail(CARRIED).contains(&format!(
            "sha256(app-compose from tcb_info.app_compose) = {hash}; the boot's compose-hash event {hash}; MRCONFIGID binds {hash}"
        )),
        "{}",
        verdict.detail(CARRIED)
    );

    // The audited file, byte for byte the measured one, passes and is said to be identical.
    let file = write(dir.path(), "app-compose.json", &compose);
    let verdict = verify_file(
        dir.path(),
        &fixture(CRABBOX_INFO),
        &["--allow-no-launch", "--app-compose", &file],
    );
    verdict.passes_unsigned();
    assert_eq!(verdict.status(AUDITED), "passed");
    assert!(
        verdict
            .detail(AUDITED)
            .contains("byte-identical to the input's tcb_info.app_compose"),
        "{}",
        verdict.detail(AUDITED)
    );
}

/// A forged Info reply: the registers and the log are real, only `tcb_info.app_compose` is
/// changed to run another image. The naive verifier reports the attacker's image; `verify`
/// fails the hash check while the replay still passes.
#[test]
fn a_forged_app_compose_in_the_evidence_fails() {
    let mut info = info();
    let mut tcb = tcb_info(&info);
    let forged = tcb["app_compose"]
        .as_str()
        .unwrap()
        .replace("debian:stable-slim", "attacker/miner:latest");
    assert_ne!(forged, real_app_compose());
    tcb["app_compose"] = json!(forged);
    info["tcb_info"] = json!(serde_json::to_string(&tcb).unwrap());
    assert_eq!(naive_compose_image(&info), "attacker/miner:latest");

    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "forged.json",
        serde_json::to_vec(&info).unwrap(),
    );
    let verdict = verify_file(dir.path(), &path, &["--allow-no-launch"]);
    verdict.fails(&[CARRIED]);
    assert_eq!(verdict.failed(), [CARRIED]);
    assert_eq!(verdict.status("rtmr3.replay"), "passed");
    assert_eq!(verdict.status("mrconfigid.compose_hash"), "passed");
    assert!(verdict.detail(CARRIED).contains(&format!(
        "sha256(app-compose from tcb_info.app_compose) = {}; the boot's compose-hash event {}",
        sha256_hex(forged.as_bytes()),
        compose_hash_event(&info)
    )));

    // The real app-compose as the audited file does not rescue it: it differs from the input's.
    let file = write(dir.path(), "real.json", real_app_compose());
    let verdict = verify_file(
        dir.path(),
        &path,
        &["--allow-no-launch", "--app-compose", &file],
    );
    verdict.fails(&[CARRIED, AUDITED]);
    assert!(
        verdict
            .detail(AUDITED)
            .contains("differs from the input's tcb_info.app_compose"),
        "{}",
        verdict.detail(AUDITED)
    );
}

/// The audited file must be the exact measured bytes: the same JSON re-serialised (pretty
/// printed, as an editor or `jq` would leave it) is another document to the hash.
#[test]
fn an_audited_file_with_other_bytes_fails() {
    let compose = real_app_compose();
    let pretty =
        serde_json::to_string_pretty(&serde_json::from_str::<Value>(&compose).unwrap()).unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&pretty).unwrap(),
        serde_json::from_str::<Value>(&compose).unwrap()
    );
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "pretty.json", &pretty);
    let verdict = verify_file(
        dir.path(),
        &fixture(CRABBOX_INFO),
        &["--allow-no-launch", "--app-compose", &file],
    );
    verdict.fails(&[AUDITED]);
    assert_eq!(verdict.status(CARRIED), "passed");
    assert_eq!(verdict.failed(), [AUDITED]);
}

/// Phala's API shape (`phala cvms attestation --json`): the agent's `tcb_info.app_compose`
/// is the one hashed; a top-level `compose_file` is used only when that is absent, and is
/// refused when it is not what was measured.
#[test]
fn phala_api_shape_uses_the_agents_app_compose() {
    let info = info();
    let tcb = tcb_info(&info);
    let quote = std::fs::read(fixture(CRABBOX_QUOTE)).unwrap();
    let mut phala = json!({
        "is_online": true,
        "is_public": true,
        "error": null,
        "app_certificates": [
            {"position_in_chain": 0, "quote": hex(&quote[..4940])},
        ],
        "tcb_info": {
            "mrtd": tcb["mrtd"], "rtmr0": tcb["rtmr0"], "rtmr1": tcb["rtmr1"],
            "rtmr2": tcb["rtmr2"], "rtmr3": tcb["rtmr3"], "event_log": tcb["event_log"],
            "app_compose": tcb["app_compose"],
        },
        "compose_file": "services: {}\n",
    });
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "phala.json",
        serde_json::to_vec(&phala).unwrap(),
    );
    let verdict = verify_file(dir.path(), &path, &["--allow-no-launch"]);
    verdict.passes_unsigned();
    assert_eq!(verdict.status(CARRIED), "passed");

    phala["tcb_info"]["app_compose"] = Value::Null;
    let path = write(
        dir.path(),
        "phala.json",
        serde_json::to_vec(&phala).unwrap(),
    );
    let verdict = verify_file(dir.path(), &path, &["--allow-no-launch"]);
    verdict.fails(&[CARRIED]);
    assert!(
        verdict
            .detail(CARRIED)
            .contains("app-compose from compose_file"),
        "{}",
        verdict.detail(CARRIED)
    );
}

/// A bare quote has no log: MRCONFIGID alone decides whether the audited file was measured.
#[test]
fn without_a_log_mrconfigid_decides() {
    let dir = tempfile::tempdir().unwrap();
    let run = |compose: &str| -> Verdict {
        let file = write(dir.path(), "compose.json", compose);
        let mut launcher = Launcher::new(dir.path());
        launcher.args([
            "verify",
            "--quote",
            &fixture(CRABBOX_QUOTE),
            "--skip-dcap",
            "--allow-no-launch",
            "--json",
            "--app-compose",
            &file,
        ]);
        let run = launcher.run();
        let json = serde_json::from_str(&run.stdout).unwrap();
        Verdict { run, json }
    };
    let good = run(&real_app_compose());
    good.passes_unsigned();
    assert_eq!(good.status(AUDITED), "passed");
    assert_eq!(good.status(CARRIED), "skipped");
    let bad = run("{}");
    bad.fails(&[AUDITED]);
    assert!(bad.detail(AUDITED).contains("MRCONFIGID binds"));
}
