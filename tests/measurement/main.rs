//! TEE measurement (issue 3): the real binary against a fake dstack guest agent and a fake
//! sysfs RTMR3 file. Events and payloads as `plan --json` prints them, RTMR3 replayable
//! from the agent's log, once per boot, explicit tdx-sysfs, and every failure closed.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "../common/mod.rs"]
mod common;
mod dstack;
mod failures;
mod fake_agent_checks;
mod native;

use std::io::{Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::fake_agent::FakeAgent;
use common::{Fixture, Item, Launcher, Run, entry};

const NAMES: [&str; 3] = [
    "trusted-launcher.config",
    "trusted-launcher.workload",
    "trusted-launcher.ready",
];

/// A failing run must end well inside this, whatever the agent does.
const FAIL_LIMIT: Duration = Duration::from_secs(60);

/// One event as `plan --json` prints it.
#[derive(Debug, PartialEq, Eq)]
struct Planned {
    event: String,
    payload: String,
    digest: String,
}

/// A workload whose entry script prints `RAN <marker>`; returns its commit and config.
fn workload(fx: &Fixture, marker: &str) -> (String, PathBuf) {
    let sha = fx.commit(&[Item::File("entrypoint.sh", &entry(marker))]);
    let config = fx.line_config(&sha, "");
    (sha, config)
}

/// The events `run` would measure, from `plan --json`.
fn plan(fx: &Fixture, config: &Path) -> Vec<Planned> {
    let run = Launcher::new(fx.path())
        .args(["plan", "--json", config.to_str().unwrap()])
        .run();
    run.success();
    let plan: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let events: Vec<Planned> = plan["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| Planned {
            event: e["event"].as_str().unwrap().to_owned(),
            payload: e["event_payload"].as_str().unwrap().to_owned(),
            digest: e["digest"].as_str().unwrap().to_owned(),
        })
        .collect();
    assert_eq!(
        events.iter().map(|e| e.event.as_str()).collect::<Vec<_>>(),
        NAMES
    );
    events
}

/// The launcher in tee mode, finding the agent through `DSTACK_SIMULATOR_ENDPOINT`, with a
/// sysfs path that does not exist unless the test made it (hermetic on a real TDX host).
fn tee(fx: &Fixture, endpoint: &str) -> Launcher {
    let mut launcher = Launcher::new(fx.path());
    launcher
        .env("DSTACK_SIMULATOR_ENDPOINT", endpoint)
        .args(["--platform", "tee", "--event-log"])
        .arg(fx.event_log().to_str().unwrap())
        .arg("--rtmr3-path")
        .arg(no_rtmr3(fx).to_str().unwrap());
    launcher
}

/// Like [`tee`], with the sysfs RTMR3 file at `rtmr3`.
fn tee_with_rtmr3(fx: &Fixture, endpoint: &str, rtmr3: &Path) -> Launcher {
    let mut launcher = Launcher::new(fx.path());
    launcher
        .env("DSTACK_SIMULATOR_ENDPOINT", endpoint)
        .args(["--platform", "tee", "--event-log"])
        .arg(fx.event_log().to_str().unwrap())
        .arg("--rtmr3-path")
        .arg(rtmr3.to_str().unwrap());
    launcher
}

fn no_rtmr3(fx: &Fixture) -> PathBuf {
    fx.path().join("no-such-rtmr3:sha384")
}

/// Runs and checks the run ended within [`FAIL_LIMIT`].
fn run_bounded(launcher: &Launcher) -> Run {
    let start = Instant::now();
    let run = launcher.run();
    let took = start.elapsed();
    assert!(
        took < FAIL_LIMIT,
        "run took {took:?}\nstderr:\n{}",
        run.stderr
    );
    run
}

/// The agent's emitted events as (name, payload hex, digest hex), comparable with the plan.
fn emitted(agent: &FakeAgent) -> Vec<Planned> {
    agent
        .events()
        .iter()
        .map(|e| Planned {
            event: e.event.clone(),
            payload: e.payload_hex(),
            digest: e.digest_hex(),
        })
        .collect()
}

/// A failure that started nothing: exit 1, `needle` on an error line, no workload output,
/// no `ready` event at the agent, and a short, readable message.
#[track_caller]
fn failed_closed(run: &Run, agent: &FakeAgent, needle: &str) {
    run.fails(1, needle);
    assert!(
        !run.stdout.contains("RAN "),
        "workload ran:\n{}",
        run.stdout
    );
    assert!(
        !agent.events().iter().any(|e| e.event == NAMES[2]),
        "ready measured after a failure: {:?}",
        agent.events()
    );
    assert!(agent.replay_ok());
    assert!(
        run.stderr.len() < 4096 && run.stderr.lines().all(|l| l.len() < 1024),
        "error output is not short:\n{}",
        &run.stderr[..run.stderr.len().min(4096)]
    );
}

/// POSTs raw HTTP/1.1 to a unix-socket fake; returns the status code, headers and body.
fn raw_post(
    socket: &Path,
    method: &str,
    body: &str,
    content_type: Option<&str>,
) -> (u16, String, Vec<u8>) {
    let mut stream = UnixStream::connect(socket).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let content_type = content_type
        .map(|t| format!("Content-Type: {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "POST /{method} HTTP/1.1\r\nHost: dstack\r\n{content_type}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).unwrap();
    let end = reply.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8(reply[..end].to_vec()).unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let body = reply[end + 4..].to_vec();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(length, body.len(), "{head}");
    (status, head, body)
}

fn json_post(socket: &Path, method: &str, body: &str) -> (u16, serde_json::Value) {
    let (status, head, body) = raw_post(socket, method, body, Some("application/json"));
    assert!(head.contains("Content-Type: application/json"), "{head}");
    (status, serde_json::from_slice(&body).unwrap())
}

/// Reads the launcher's own JSON-lines log.
fn own_log(fx: &Fixture) -> Vec<serde_json::Value> {
    fx.events()
}
