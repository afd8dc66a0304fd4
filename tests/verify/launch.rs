//! Launches for the round trips: the fake agent's API over its socket, a workload, a
//! tee launcher, and `verify` run in the fixture's dir.

use std::io::{Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::Report;
use crate::common::fake_agent::hex;
use crate::common::{Fixture, Item, Launcher, entry};

/// POSTs JSON to the fake agent's socket; returns the status and body.
pub(crate) fn post(socket: &Path, method: &str, body: &str) -> (u16, Vec<u8>) {
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
    let head = String::from_utf8(reply[..end].to_vec()).unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, reply[end + 4..].to_vec())
}

pub(crate) fn emit(socket: &Path, name: &str, payload: &[u8]) {
    let body = json!({"event": name, "payload": hex(payload)}).to_string();
    let (status, reply) = post(socket, "EmitEvent", &body);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&reply));
}

/// The raw body of a `GetQuote` reply.
pub(crate) fn get_quote(socket: &Path, report_data: &[u8]) -> Vec<u8> {
    let body = json!({"report_data": hex(report_data)}).to_string();
    let (status, reply) = post(socket, "GetQuote", &body);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&reply));
    reply
}

/// A workload commit and its line config; returns the commit and config path.
pub(crate) fn workload(fx: &Fixture, marker: &str) -> (String, PathBuf) {
    let sha = fx.commit(&[Item::File("entrypoint.sh", &entry(marker))]);
    let config = fx.line_config(&sha, "");
    (sha, config)
}

/// `plan --json`'s config hash.
pub(crate) fn planned_config_sha256(fx: &Fixture, config: &Path) -> String {
    let run = Launcher::new(fx.path())
        .args(["plan", "--json", config.to_str().unwrap()])
        .run();
    run.success();
    let plan: Value = serde_json::from_str(&run.stdout).unwrap();
    plan["config"]["sha256"].as_str().unwrap().to_owned()
}

/// tee mode against `endpoint`, with the sysfs file at `rtmr3`.
pub(crate) fn tee(fx: &Fixture, endpoint: &str, rtmr3: &Path) -> Launcher {
    let mut launcher = Launcher::new(fx.path());
    launcher
        .env("DSTACK_SIMULATOR_ENDPOINT", endpoint)
        .args(["--platform", "tee", "--event-log"])
        .arg(fx.event_log().to_str().unwrap())
        .arg("--rtmr3-path")
        .arg(rtmr3.to_str().unwrap());
    launcher
}

/// A verify run in the fixture's dir.
pub(crate) fn fixture_report(fx: &Fixture, args: &[&str]) -> Report {
    let mut launcher = Launcher::new(fx.path());
    launcher
        .arg("verify")
        .args(args.iter().copied())
        .arg("--json");
    let run = launcher.run();
    let json = serde_json::from_str(&run.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON ({e})\nexit {:?}\nstdout:\n{}\nstderr:\n{}",
            run.status, run.stdout, run.stderr
        )
    });
    Report {
        run,
        json,
        skip_dcap: args.contains(&"--skip-dcap"),
    }
}
