//! `verify` against forged launches (issue 10): each attack is first shown to fool the old
//! rules ("the last launch", "no failed check means exit 0"; re-implemented in
//! `common::forged_log`), then the real binary is shown to refuse it.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::io::{Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use common::fake_agent::{FakeAgent, Mode, hex, unhex};
use common::forged_log::{
    COMPOSE, Events, boot, ev, getquote, git_launch, image_launch, old_last_launch, verify,
    verify_file,
};
use common::{Fixture, Item, Launcher, entry};

fn post(socket: &Path, method: &str, body: &str) -> Vec<u8> {
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
    assert!(
        reply.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&reply)
    );
    reply[end + 4..].to_vec()
}

/// A real tee launch of X through the fake agent; then the workload, which keeps the socket
/// in git mode, emits a whole launch naming Y. The old "last launch" rule accepts Y; now
/// launch 1 (X) is not accepted when only Y is expected, and both must be expected to pass.
#[test]
fn a_launch_forged_by_the_workload_after_the_real_one_fails() {
    let fx = Fixture::new();
    let agent = FakeAgent::start(fx.path(), Mode::Normal);
    let real = fx.commit(&[Item::File("entrypoint.sh", &entry("real"))]);
    let config = fx.line_config(&real, "");
    let mut launcher = Launcher::new(fx.path());
    launcher
        .env("DSTACK_SIMULATOR_ENDPOINT", agent.endpoint())
        .args(["--platform", "tee", "--event-log"])
        .arg(fx.event_log().to_str().unwrap())
        .arg("--rtmr3-path")
        .arg(fx.path().join("no-rtmr3").to_str().unwrap())
        .arg(config.to_str().unwrap());
    launcher.run().success().stdout_has("RAN real");
    let expected = "ab".repeat(20);
    let config_sha256 = hex(&Sha256::digest(std::fs::read(&config).unwrap()));
    for (name, payload) in git_launch(&expected, &config_sha256) {
        let body = json!({"event": name, "payload": hex(&payload)}).to_string();
        post(agent.socket_path(), "EmitEvent", &body);
    }
    let reply = post(agent.socket_path(), "GetQuote", r#"{"report_data":""}"#);
    let path = fx.write("getquote.json", std::str::from_utf8(&reply).unwrap());
    let log: Value = serde_json::from_slice(&reply).unwrap();
    let log: Vec<Value> = serde_json::from_str(log["event_log"].as_str().unwrap()).unwrap();
    let events: Events = log
        .iter()
        .filter(|e| e["imr"] == 3)
        .map(|e| {
            ev(
                e["event"].as_str().unwrap(),
                unhex(e["event_payload"].as_str().unwrap()).unwrap(),
            )
        })
        .collect();
    assert_eq!(old_last_launch(&events), Some(format!("git:{expected}")));

    let path = path.to_str().unwrap();
    let forged = verify_file(fx.path(), path, &["--expect-commit", &expected]);
    forged.fails(&["launch.1"]);
    assert_eq!(forged.status("launch.2"), "passed");
    assert!(
        forged
            .detail("launch.1")
            .contains(&format!("workload git:{real} is not one of the expected"))
    );
    // Both launches listed, in order, with their outcome.
    let listed = forged.json["launches"].as_array().unwrap();
    let shown: Vec<(&str, &str)> = listed
        .iter()
        .map(|l| {
            (
                l["workload"].as_str().unwrap(),
                l["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        shown,
        [
            (format!("git:{real}").as_str(), "not accepted"),
            (format!("git:{expected}").as_str(), "accepted")
        ]
    );
    // Expecting the real commit fails too: the forged one is in the log.
    verify_file(fx.path(), path, &["--expect-commit", &real]).fails(&["launch.2"]);
    // Both expected (the verifier accepts either): passes, at best exit 3 unsigned.
    verify_file(
        fx.path(),
        path,
        &["--expect-commit", &real, "--expect-commit", &expected],
    )
    .passes_unsigned();
}

/// An attempt that named a workload but never reached ready still counts (`INSTALL_CMD` ran
/// its code): an unaccepted one fails even when a later complete launch is accepted.
#[test]
fn an_incomplete_attempt_naming_an_unaccepted_workload_fails() {
    let (good, bad, config) = ("1f".repeat(20), "2f".repeat(20), "c0".repeat(32));
    let mut events = boot(&[0x60; 32]);
    events.extend(git_launch(&bad, &config)[..2].to_vec());
    events.extend(git_launch(&good, &config));
    assert_eq!(old_last_launch(&events), Some(format!("git:{good}")));
    let verdict = verify(&events, &["--expect-commit", &good]);
    verdict.fails(&["launch.1"]);
    assert_eq!(verdict.json["launches"][0]["outcome"], "not accepted");
    assert_eq!(verdict.json["launches"][0]["complete"], false);
    // Accepted, it is shown as incomplete and passes.
    let both = verify(
        &events,
        &["--expect-commit", &good, "--expect-commit", &bad],
    );
    both.passes_unsigned();
    assert_eq!(both.json["launches"][0]["outcome"], "incomplete");
    // Only incomplete attempts: no complete launch, so no pass.
    let mut unfinished = boot(&[0x60; 32]);
    unfinished.extend(git_launch(&good, &config)[..2].to_vec());
    verify(
        &unfinished,
        &["--expect-commit", &good, "--allow-no-launch"],
    )
    .fails(&["launcher.events"]);
}

/// An image launch without its compose event, or a git launch with one, breaks the contract.
#[test]
fn the_compose_event_is_required_exactly_for_image_launches() {
    let (image, compose) = ("5a".repeat(32), "d0".repeat(32));
    let mut good = boot(&[0x60; 32]);
    good.extend(image_launch(&image, &compose));
    good.push(ev("mpc-image-digest", [0x5a; 32]));
    let verdict = verify(
        &good,
        &[
            "--expect-image",
            &format!("sha256:{image}"),
            "--expect-compose-sha256",
            &compose,
        ],
    );
    verdict.passes_unsigned();
    assert_eq!(
        verdict.json["launches"][0]["compose"],
        format!("sha256:{compose}")
    );

    let mut missing = boot(&[0x60; 32]);
    missing.extend(image_launch(&image, &compose));
    missing.remove(missing.len() - 2);
    let verdict = verify(&missing, &["--expect-image", &format!("sha256:{image}")]);
    verdict.fails(&["launcher.events"]);
    assert!(
        verdict
            .detail("launcher.events")
            .contains("breaks the contract order (expected trusted-launcher.compose)")
    );

    let mut on_git = boot(&[0x60; 32]);
    on_git.extend(git_launch(&"1f".repeat(20), &"c0".repeat(32)));
    on_git.insert(on_git.len() - 1, ev(COMPOSE, format!("sha256:{compose}")));
    verify(&on_git, &[]).fails(&["launcher.events"]);
}

/// `--skip-dcap` on a log that passes every other check: the old "no failed check" rule
/// exits 0 with `ok: true`; now exit 3, `ok: false`, and the text says so.
#[test]
fn skip_dcap_never_exits_zero() {
    let mut events = boot(&[0x60; 32]);
    events.extend(git_launch(&"1f".repeat(20), &"c0".repeat(32)));
    let verdict = verify(&events, &["--expect-commit", &"1f".repeat(20)]);
    assert!(
        verdict.failed().is_empty(),
        "the old rule would exit 0 here"
    );
    verdict.passes_unsigned();
    assert_eq!(verdict.json["signature_verified"], false);
    assert_eq!(verdict.status("quote.signature"), "skipped");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("getquote.json");
    std::fs::write(&path, serde_json::to_vec(&getquote(&events)).unwrap()).unwrap();
    let mut text = Launcher::new(dir.path());
    text.args(["verify", path.to_str().unwrap(), "--skip-dcap"]);
    let run = text.run();
    assert_eq!(run.status, Some(3));
    assert!(
        run.stdout
            .lines()
            .last()
            .unwrap()
            .starts_with("verification INCOMPLETE"),
        "{}",
        run.stdout
    );
}

/// No launch at all fails unless `--allow-no-launch`; on a DCAP-signed real attestation
/// (NEAR's public data, no launcher events) that is the difference between exit 1 and 0.
#[test]
fn no_launch_fails_unless_allowed() {
    let events = boot(&[0x60; 32]);
    let verdict = verify(&events, &[]);
    verdict.fails(&["launcher.events"]);
    assert!(
        verdict
            .detail("launcher.events")
            .contains("no trusted-launcher launch in the log")
    );
    verify(&events, &["--allow-no-launch"]).passes_unsigned();

    let near =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/near-mpc_public_data.json");
    let near = near.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run = |extra: &[&str]| {
        let mut launcher = Launcher::new(dir.path());
        launcher
            .args(["verify", near, "--now", "1786622400", "--json"])
            .args(extra.iter().copied());
        launcher.run()
    };
    assert_eq!(run(&[]).status, Some(1));
    let allowed = run(&["--allow-no-launch"]);
    assert_eq!(allowed.status, Some(0), "{}", allowed.stdout);
    let json: Value = serde_json::from_str(&allowed.stdout).unwrap();
    assert_eq!(
        (json["ok"].clone(), json["signature_verified"].clone()),
        (json!(true), json!(true))
    );
}

/// `--expect-file`: several accepted values in one file; a bad line is a usage error naming
/// file and line, and nothing is verified.
#[test]
fn expect_file_good_and_bad_lines() {
    let (one, two, config) = ("1f".repeat(20), "2f".repeat(20), "c0".repeat(32));
    let mut events = boot(&[0x60; 32]);
    events.extend(git_launch(&one, &config));
    events.extend(git_launch(&two, &config));
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let good = file(
        "approved.txt",
        &format!("# audited\ngit:{one}\n\n  git:{two}\nconfig:sha256:{config}\n"),
    );
    verify(&events, &["--expect-file", &good]).passes_unsigned();
    let partial = file("partial.txt", &format!("git:{one}\n"));
    verify(&events, &["--expect-file", &partial]).fails(&["launch.2"]);
    let near_json = file(
        "near.json",
        &format!(r#"{{"approved_hashes":["sha256:{}"]}}"#, "5a".repeat(32)),
    );
    verify(&events, &["--expect-file", &near_json]).fails(&["launch.1", "launch.2"]);

    let bad = file("bad.txt", &format!("git:{one}\ngit:main\n"));
    let quote = file("getquote.json", &getquote(&events).to_string());
    let mut launcher = Launcher::new(dir.path());
    launcher.args(["verify", &quote, "--skip-dcap", "--expect-file", &bad]);
    let run = launcher.run();
    assert_eq!(run.status, Some(2), "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains(&format!("{bad}:2: expected git:<40 or 64 lowercase hex>")),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains(r#"(got "git:main")"#), "{}", run.stderr);
}
