//! Writing the output (issue 16): `plan`'s and `verify`'s stdout failing (a closed pipe, a
//! full disk) is its own exit code, 4, with a line saying so. It used to be reported as a
//! usage error (exit 2, "usage or config error" in the README), which sent a user looking
//! for a mistake in the config, and for `verify` it is never a pass.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::fs::File;
use std::io::Read as _;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{Fixture, Item, entry};

/// The old exit code for a failed write to stdout (`Error::Usage`).
const OLD_EXIT: i32 = 2;
const EXIT_OUTPUT: i32 = 4;

/// Runs `command` with `stdout` as its standard output; returns the exit code and stderr.
/// A launcher still running after a minute is killed and fails the test.
fn run_into(mut command: Command, stdout: Stdio) -> (Option<i32>, String) {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let reader = thread::spawn(move || {
        let mut text = String::new();
        stderr.read_to_string(&mut text).unwrap();
        text
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("trusted-launcher did not exit within a minute");
        }
        thread::sleep(Duration::from_millis(10));
    };
    let stderr = reader.join().unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (status.code(), stderr)
}

/// A pipe whose read end is already closed. The launcher (a Rust binary) ignores SIGPIPE, as
/// Rust's runtime sets it to `SIG_IGN` before `main` (std's `sys::pal::unix::init`), so its
/// write(2) fails with EPIPE instead of killing it (pipe(7)).
fn closed_pipe() -> Stdio {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    Stdio::from(writer)
}

fn plan(fx: &Fixture) -> Command {
    let sha = fx.commit(&[Item::File("entrypoint.sh", &entry("output"))]);
    let config = fx.line_config(&sha, "");
    let mut launcher = fx.launcher();
    launcher.args(["plan", config.to_str().unwrap()]);
    launcher.command()
}

#[test]
fn plan_into_a_closed_pipe_exits_4() {
    let fx = Fixture::new();
    let (code, stderr) = run_into(plan(&fx), closed_pipe());
    assert_ne!(
        code,
        Some(OLD_EXIT),
        "not a usage or config error: {stderr}"
    );
    assert_eq!(code, Some(EXIT_OUTPUT), "{stderr}");
    assert!(
        stderr.contains("error: cannot write the output to stdout: Broken pipe"),
        "{stderr}"
    );
    assert!(!stderr.contains("config"), "{stderr}");
    assert!(fx.events().is_empty());
}

/// /dev/full: every write fails with ENOSPC (null(4)).
#[test]
fn plan_onto_a_full_disk_exits_4() {
    let fx = Fixture::new();
    let full = File::options().write(true).open("/dev/full").unwrap();
    let (code, stderr) = run_into(plan(&fx), Stdio::from(full));
    assert_eq!(code, Some(EXIT_OUTPUT), "{stderr}");
    assert!(
        stderr.contains("error: cannot write the output to stdout: No space left on device"),
        "{stderr}"
    );
}

/// The same input with stdout readable passes with exit 3 (`--skip-dcap`); with the pipe
/// closed the verdict never reaches the caller, so it is exit 4, never 0 or 3.
#[cfg(feature = "verify")]
#[test]
fn verify_into_a_closed_pipe_exits_4() {
    let fx = Fixture::new();
    let input = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/crabbox_real_attestation_info.json"
    );
    let verify = || {
        let mut launcher = common::Launcher::new(fx.path());
        launcher.args(["verify", input, "--skip-dcap", "--allow-no-launch"]);
        launcher.command()
    };
    let (readable, stderr) = run_into(verify(), Stdio::null());
    assert!(matches!(readable, Some(1 | 3)), "{readable:?} {stderr}");
    let (code, stderr) = run_into(verify(), closed_pipe());
    assert_eq!(code, Some(EXIT_OUTPUT), "{stderr}");
    assert!(
        stderr.contains("cannot write the output to stdout: Broken pipe"),
        "{stderr}"
    );
}
