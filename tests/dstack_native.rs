//! Measuring on the `next` dstack (no `EmitEvent`) exactly as dstack records events: the
//! real binary against a stand-in `next` agent (`tests/common/next_agent.rs`) whose log is its
//! runtime event log and whose RTMR3 moves only through the measurement file.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::fake_agent::{hex, unhex, v1_digest};
use common::next_agent::{NextAgent, VERSION_FILE, base64, digest};
use common::{Fixture, Item, Launcher, Run, entry};

/// A failing run must end well inside this (the lock wait is 10 s).
const FAIL_LIMIT: Duration = Duration::from_secs(60);

/// A workload whose entry script prints `RAN <marker>`; returns its commit and config.
fn workload(fx: &Fixture, marker: &str) -> (String, PathBuf) {
    let sha = fx.commit(&[Item::File("entrypoint.sh", &entry(marker))]);
    let config = fx.line_config(&sha, "");
    (sha, config)
}

/// `(event, payload bytes)` that `run` would measure, from `plan --json`.
fn plan(fx: &Fixture, config: &Path) -> Vec<(String, Vec<u8>)> {
    let run = Launcher::new(fx.path())
        .args(["plan", "--json", config.to_str().unwrap()])
        .run();
    run.success();
    let plan: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    plan["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["event"].as_str().unwrap().to_owned(),
                unhex(e["event_payload"].as_str().unwrap()).unwrap(),
            )
        })
        .collect()
}

/// The launcher in tee mode against `next`, with `backend` (or `auto` when `None`).
fn launcher(fx: &Fixture, next: &NextAgent, backend: Option<&str>) -> Launcher {
    launcher_at(fx, next, backend, next.rtmr3.path())
}

/// As [`launcher`], with the measurement file at `rtmr3`.
fn launcher_at(fx: &Fixture, next: &NextAgent, backend: Option<&str>, rtmr3: &Path) -> Launcher {
    let mut launcher = Launcher::new(fx.path());
    launcher
        .args(["--platform", "tee"])
        .args([
            "--dstack-socket",
            next.agent.socket_path().to_str().unwrap(),
        ])
        .args(["--rtmr3-path", rtmr3.to_str().unwrap()])
        .args(["--dstack-runtime-dir", next.runtime_dir().to_str().unwrap()])
        .args(["--event-log", fx.event_log().to_str().unwrap()]);
    if let Some(backend) = backend {
        launcher.args(["--measurement-backend", backend]);
    }
    launcher
}

fn run_bounded(launcher: &Launcher) -> Run {
    let start = Instant::now();
    let run = launcher.run();
    assert!(start.elapsed() < FAIL_LIMIT, "took {:?}", start.elapsed());
    run
}

/// Waits (bounded) until the measurement file has received `len` bytes, then a little
/// longer: nothing more may arrive.
fn received(next: &NextAgent, len: usize) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while next.rtmr3.received().len() < len && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(100));
    next.rtmr3.received()
}

fn emit_event_calls(next: &NextAgent) -> usize {
    next.agent
        .methods()
        .iter()
        .filter(|m| *m == "EmitEvent")
        .count()
}

/// The agent's `GetQuote` reply, raw, as a verifier would fetch it.
#[cfg(feature = "verify")]
fn get_quote(socket: &Path) -> String {
    use std::io::{Read as _, Write as _};
    let mut stream = std::os::unix::net::UnixStream::connect(socket).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let body = format!(r#"{{"report_data":"{}"}}"#, hex(&[0u8; 64]));
    write!(
        stream,
        "POST /GetQuote HTTP/1.1\r\nHost: dstack\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    let (head, body) = reply.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}\n{body}");
    body.to_owned()
}

/// One launch on a `next` boot of digest `version`: each planned event is one line of the
/// agent's runtime log in dstack's format, the register got the matching digests, the
/// agent's own log replays to its quote, and the launcher's own log is not written. Then a
/// restart in the same boot measures nothing.
fn launch_on_next(version: u32) {
    let fx = Fixture::new();
    let next = NextAgent::start(fx.path(), Some(version));
    let (_, config) = workload(&fx, "next");
    let planned = plan(&fx, &config);
    run_bounded(launcher(&fx, &next, None).arg(config.to_str().unwrap()))
        .success()
        .stderr_has("has no EmitEvent; measuring as dstack itself does")
        .stdout_has("RAN next");

    let expected: Vec<u8> = planned
        .iter()
        .flat_map(|(name, payload)| digest(version, name, payload))
        .collect();
    assert_eq!(hex(&received(&next, 144)), hex(&expected));
    if version == 2 {
        let v1: Vec<u8> = planned
            .iter()
            .flat_map(|(name, payload)| v1_digest(name, payload))
            .collect();
        assert_ne!(expected, v1, "v2 digests differ from v1");
    }
    let lines = next.lines();
    assert_eq!(lines.len(), next.boot_lines() + 3);
    for (line, (name, payload)) in lines[next.boot_lines()..].iter().zip(&planned) {
        let mut wanted = serde_json::json!({"event": name, "payload": base64(payload)});
        if version == 2 {
            wanted["version"] = 2.into();
        }
        assert_eq!(line, &wanted);
        // Field order as dstack's serde_json writes `RuntimeEvent`.
        assert_eq!(line.to_string(), wanted.to_string());
    }
    let events: Vec<(String, Vec<u8>)> = next
        .runtime_events()
        .into_iter()
        .map(|e| (e.event, e.payload))
        .collect();
    assert_eq!(events, planned);
    assert!(
        next.agent.replay_ok(),
        "the agent's own log replays to RTMR3"
    );
    assert!(
        !fx.event_log().exists(),
        "the launcher's own log is not the record"
    );
    assert_eq!(emit_event_calls(&next), 1, "{:?}", next.agent.methods());

    // Same boot, same config (a container restart): the agent's log says it is done.
    run_bounded(launcher(&fx, &next, None).arg(config.to_str().unwrap()))
        .success()
        .stderr_has("already measured in this boot")
        .stdout_has("RAN next");
    assert_eq!(received(&next, 144).len(), 144, "extended again");
    assert_eq!(next.lines().len(), next.boot_lines() + 3, "logged again");
    assert_eq!(emit_event_calls(&next), 1, "nothing to emit on a restart");
    assert!(next.agent.replay_ok());
}

#[test]
fn v1_boot_measures_into_the_agents_own_log() {
    launch_on_next(1);
}

#[test]
fn v2_boot_extends_v2_digests_and_logs_version_2() {
    launch_on_next(2);
}

/// The old behaviour on `next` (`tdx-sysfs`: the register extended, the event only in the
/// launcher's own file) leaves a `GetQuote` that no verifier replays; with `dstack-native`
/// the agent's own reply proves the launch with no launcher-side log, v2 entries included.
#[cfg(feature = "verify")]
#[test]
fn verify_proves_the_launch_from_the_agents_get_quote_alone() {
    let verify = |fx: &Fixture, quote: &Path, sha: &str| {
        Launcher::new(fx.path())
            .args(["verify", quote.to_str().unwrap(), "--skip-dcap", "--json"])
            .args(["--expect-commit", sha])
            .run()
    };
    let checks = |run: &Run| -> Vec<(String, String)> {
        let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        json["checks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["name"].as_str().unwrap().to_owned(),
                    c["status"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };

    let old = Fixture::new();
    let next = NextAgent::start(old.path(), Some(2));
    let (sha, config) = workload(&old, "old");
    run_bounded(launcher(&old, &next, Some("tdx-sysfs")).arg(config.to_str().unwrap())).success();
    received(&next, 144);
    assert!(
        !next.agent.replay_ok(),
        "tdx-sysfs left the agent's log short"
    );
    let quote = old.write("getquote.json", &get_quote(next.agent.socket_path()));
    let run = verify(&old, &quote, &sha);
    assert_eq!(run.status, Some(1), "{}", run.stdout);
    assert!(checks(&run).contains(&("rtmr3.replay".into(), "failed".into())));

    let fx = Fixture::new();
    let next = NextAgent::start(fx.path(), Some(2));
    let (sha, config) = workload(&fx, "native");
    run_bounded(launcher(&fx, &next, Some("dstack-native")).arg(config.to_str().unwrap()))
        .success()
        .stdout_has("RAN native");
    received(&next, 144);
    let reply = get_quote(next.agent.socket_path());
    assert!(
        reply.contains(r#"\"version\":2"#),
        "v2 entries in the reply"
    );
    let quote = fx.write("getquote.json", &reply);
    let run = verify(&fx, &quote, &sha);
    assert_eq!(run.status, Some(3), "{}\n{}", run.stdout, run.stderr);
    let checks = checks(&run);
    for name in ["rtmr3.replay", "launcher.events", "launch.1"] {
        assert!(
            checks.contains(&(name.into(), "passed".into())),
            "{name}: {checks:?}"
        );
    }
    assert!(!fx.event_log().exists());
}

/// An extension that fails (the measurement file cannot be written) leaves no line: the
/// register is extended before the log is appended, as dstack does. The launcher's old
/// order (log first) would have left a line the register lacks.
#[test]
fn a_failed_extension_appends_no_line() {
    let fx = Fixture::new();
    let next = NextAgent::start(fx.path(), Some(1));
    let unwritable = fx.path().join("rtmr3-is-a-directory");
    std::fs::create_dir(&unwritable).unwrap();
    let (_, config) = workload(&fx, "never");
    // The old order (tdx-sysfs: log, then register) leaves an entry nothing extended.
    run_bounded(
        launcher_at(&fx, &next, Some("tdx-sysfs"), &unwritable).arg(config.to_str().unwrap()),
    )
    .fails(1, "cannot extend RTMR3 through");
    assert_eq!(
        fx.events().len(),
        1,
        "old order: a logged event never extended"
    );

    let run = run_bounded(
        launcher_at(&fx, &next, Some("dstack-native"), &unwritable).arg(config.to_str().unwrap()),
    );
    run.fails(1, "cannot extend RTMR3 through");
    assert!(!run.stdout.contains("RAN "));
    assert_eq!(
        next.lines().len(),
        next.boot_lines(),
        "a line without an extension"
    );
    assert!(next.agent.replay_ok());
}

/// A digest version dstack does not define: stop before extending anything.
#[test]
fn unknown_runtime_event_version_fails_closed_before_extending() {
    let fx = Fixture::new();
    let next = NextAgent::start(fx.path(), Some(1));
    let version = next.runtime_dir().join(VERSION_FILE);
    std::fs::write(&version, "3\n").unwrap();
    let (_, config) = workload(&fx, "never");
    for backend in [None, Some("dstack-native")] {
        let run = run_bounded(launcher(&fx, &next, backend).arg(config.to_str().unwrap()));
        run.fails(1, version.to_str().unwrap())
            .stderr_has("holds \"3\", not 1 or 2");
        assert!(!run.stdout.contains("RAN "));
    }
    assert!(received(&next, 0).is_empty(), "extended");
    assert_eq!(next.lines().len(), next.boot_lines());
    assert!(next.agent.replay_ok());
}

/// The config file names the backend and the directory (line keys); the environment never
/// does: `DSTACK_RUNTIME_DIR` in the environment pointing at the real directory is ignored.
#[test]
fn config_keys_name_the_backend_and_directory_and_the_environment_does_not() {
    let fx = Fixture::new();
    let next = NextAgent::start(fx.path(), Some(1));
    let sha = fx.commit(&[Item::File("entrypoint.sh", &entry("configured"))]);
    let keys = |dir: &Path| {
        format!(
            "MEASUREMENT_BACKEND=dstack-native\nDSTACK_SOCKET={}\nRTMR3_PATH={}\nDSTACK_RUNTIME_DIR={}\n",
            next.agent.socket_path().display(),
            next.rtmr3.path().display(),
            dir.display()
        )
    };
    let elsewhere = fx.path().join("not-the-runtime-dir");
    let config = fx.line_config(&sha, &keys(&elsewhere));
    let run = run_bounded(
        Launcher::new(fx.path())
            .env("DSTACK_RUNTIME_DIR", next.runtime_dir().to_str().unwrap())
            .args(["--platform", "tee", config.to_str().unwrap()]),
    );
    run.fails(1, elsewhere.to_str().unwrap());
    assert!(next.rtmr3.received().is_empty());

    let config = fx.line_config(&sha, &keys(next.runtime_dir()));
    run_bounded(Launcher::new(fx.path()).args(["--platform", "tee", config.to_str().unwrap()]))
        .success()
        .stdout_has("RAN configured");
    assert_eq!(next.lines().len(), next.boot_lines() + 3);
    assert_eq!(
        emit_event_calls(&next),
        0,
        "dstack-native never calls EmitEvent"
    );
    assert!(next.agent.replay_ok());
}
