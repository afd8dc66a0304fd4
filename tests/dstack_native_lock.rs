//! `dstack-native` and other writers of dstack's runtime event log: the launcher takes
//! dstack's `flock` on `runtime_event.lock` around each extend-and-append, waits for a
//! writer that holds it, and gives up (naming the lock) on one that never lets go.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::fake_agent::hex;
use common::next_agent::{NextAgent, append_line, digest};
use common::{Fixture, Item, Launcher, entry};

fn workload(fx: &Fixture, marker: &str) -> PathBuf {
    let sha = fx.commit(&[Item::File("entrypoint.sh", &entry(marker))]);
    fx.line_config(&sha, "")
}

fn launcher(fx: &Fixture, next: &NextAgent) -> Launcher {
    let mut launcher = Launcher::new(fx.path());
    launcher
        .args(["--platform", "tee"])
        .args([
            "--dstack-socket",
            next.agent.socket_path().to_str().unwrap(),
        ])
        .args(["--rtmr3-path", next.rtmr3.path().to_str().unwrap()])
        .args(["--dstack-runtime-dir", next.runtime_dir().to_str().unwrap()]);
    launcher
}

/// Waits (bounded) until `until` holds.
fn wait(what: &str, mut until: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !until() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether someone holds an exclusive flock on `path` (flock(2) through std).
fn locked(path: &Path) -> bool {
    let file = File::options()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .unwrap();
    matches!(file.try_lock(), Err(std::fs::TryLockError::WouldBlock))
}

/// util-linux `flock -x LOCK CMD…`: a writer outside Rust holding dstack's lock.
fn flock(lock: &Path, command: &[&str]) -> Child {
    Command::new("flock")
        .arg("-x")
        .arg(lock)
        .args(command)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn util-linux flock")
}

/// Two writers that ignore the lock interleave: A extends, B extends and appends, A
/// appends. The log's order is no longer the register's and the agent's log stops
/// replaying. This is what the lock prevents.
#[test]
fn writers_without_the_lock_break_the_agents_replay() {
    let fx = Fixture::new();
    let next = NextAgent::start(fx.path(), Some(1));
    next.write_register(&digest(1, "writer-a", b"a"));
    next.extend_then_append("writer-b", b"b", 1);
    append_line(&next.log_path(), "writer-a", b"a", 1);
    wait("both extensions", || next.rtmr3.received().len() == 96);
    assert!(!next.agent.replay_ok());
}

/// Another writer holds the lock between its extension and its line: the launcher waits
/// for it (with the lock file open, nothing of its own in the register, not even a quote
/// read mid-event), then measures after it; the agent's log replays to RTMR3 with that
/// writer's event first.
#[test]
fn a_writer_holding_the_lock_goes_first() {
    let fx = Fixture::new();
    let next = NextAgent::start(fx.path(), Some(2));
    let config = workload(&fx, "after");
    let lock = File::options()
        .write(true)
        .create(true)
        .truncate(false)
        .open(next.lock_path())
        .unwrap();
    lock.lock().unwrap();
    // dstack's order: the register first.
    next.write_register(&digest(2, "other-writer", b"first"));

    let mut child = launcher(&fx, &next)
        .arg(config.to_str().unwrap())
        .command()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The launcher has dstack's lock file open: it is waiting for the lock.
    let fds = PathBuf::from(format!("/proc/{}/fd", child.id()));
    wait("the launcher to open the lock file", || {
        std::fs::read_dir(&fds).is_ok_and(|dir| {
            dir.flatten()
                .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| t == next.lock_path()))
        })
    });
    // Held a second longer: still nothing from the launcher.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        next.rtmr3.received().len(),
        48,
        "extended under another's lock"
    );
    assert!(
        !next.agent.methods().iter().any(|m| m == "GetQuote"),
        "read the agent's log mid-event: {:?}",
        next.agent.methods()
    );
    append_line(&next.log_path(), "other-writer", b"first", 2);
    lock.unlock().unwrap();

    wait("the launcher to finish", || {
        child.try_wait().unwrap().is_some()
    });
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("RAN after"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    wait("the launcher's extensions", || {
        next.rtmr3.received().len() == 48 * 4
    });
    let names: Vec<String> = next.runtime_events().into_iter().map(|e| e.event).collect();
    assert_eq!(
        names,
        [
            "other-writer",
            "trusted-launcher.config",
            "trusted-launcher.workload",
            "trusted-launcher.ready"
        ]
    );
    assert!(next.agent.replay_ok(), "{}", hex(&next.agent.rtmr3()));
}

/// A lock nobody releases (held by util-linux `flock`): a writer that waits as dstack's
/// does (`flock -x` without a timeout) is still waiting when the launcher has already
/// given up, naming the lock, with nothing extended, nothing logged and nothing started.
#[test]
fn a_lock_never_released_fails_closed_in_bounded_time() {
    let fx = Fixture::new();
    let next = NextAgent::start(fx.path(), Some(1));
    let config = workload(&fx, "never");
    let mut holder = flock(&next.lock_path(), &["sleep", "300"]);
    wait("util-linux flock to take the lock", || {
        locked(&next.lock_path())
    });
    let mut naive = flock(&next.lock_path(), &["true"]);

    let start = Instant::now();
    let run = launcher(&fx, &next).arg(config.to_str().unwrap()).run();
    let took = start.elapsed();
    let naive_still_waiting = naive.try_wait().unwrap().is_none();
    let _ = holder.kill();
    let _ = holder.wait();
    let _ = naive.kill();
    let _ = naive.wait();

    assert!(took < Duration::from_secs(60), "took {took:?}");
    run.fails(1, next.lock_path().to_str().unwrap())
        .stderr_has("still held by another writer after 10s");
    assert!(!run.stdout.contains("RAN "));
    assert!(naive_still_waiting, "an unbounded waiter would still wait");
    assert!(
        next.rtmr3.received().is_empty(),
        "extended without the lock"
    );
    assert_eq!(next.lines().len(), next.boot_lines());
    assert!(next.agent.replay_ok());
}
