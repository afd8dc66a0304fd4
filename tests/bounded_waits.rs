//! Every wait of the launcher ends: files from untrusted places that are FIFOs, a reused
//! object store with a FIFO in it, an agent socket that never accepts, an `INSTALL_CMD` that
//! never exits, and approved lists that say two things at once. Each attack is first shown
//! hanging (or being believed by) the naive behaviour, then refused by the real binary
//! with a clear error, nothing started and nothing (more) measured.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::fs::{self, OpenOptions};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::fake_registry::{FakeRegistry, Flavor, Image, Mode};
use common::{Fixture, Item, Launcher, entry};

/// A generous bound for a refusal that must not wait: far below [`common::RUN_LIMIT`].
const QUICK: Duration = Duration::from_secs(60);

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success(), "mkfifo {}", path.display());
}

/// The old reader: `File::open(path)` on a thread. On a FIFO with no writer, `open` blocks
/// until one appears (fifo(7): "opening for reading blocks until another process opens the
/// FIFO for writing").
struct NaiveOpen {
    path: PathBuf,
    thread: thread::JoinHandle<()>,
}

impl NaiveOpen {
    fn start(path: &Path) -> Self {
        let target = path.to_owned();
        let thread = thread::spawn(move || {
            let _ = fs::File::open(target);
        });
        Self {
            path: path.to_owned(),
            thread,
        }
    }

    /// The naive open is still waiting after the launcher's whole run; then let it go (a
    /// writer arrives) so the test leaves no thread behind.
    #[track_caller]
    fn assert_still_blocked(self) {
        assert!(
            !self.thread.is_finished(),
            "naive open of {} returned",
            self.path.display()
        );
        drop(OpenOptions::new().write(true).open(&self.path).unwrap());
        self.thread.join().unwrap();
    }
}

/// Runs the launcher and requires the run to end within [`QUICK`].
fn run_quick(launcher: &Launcher) -> common::Run {
    let started = Instant::now();
    let run = launcher.run();
    assert!(started.elapsed() < QUICK, "took {:?}", started.elapsed());
    run
}

fn git_fixture() -> (Fixture, String) {
    let fx = Fixture::new();
    let sha = fx.commit(&[Item::File(
        "entrypoint.sh",
        &format!("touch {}\n{}", fx.marker("ran").display(), entry("w")),
    )]);
    (fx, sha)
}

#[test]
fn fifo_config_is_refused_not_waited_on() {
    let (fx, _) = git_fixture();
    let config = fx.path().join("launcher.conf");
    mkfifo(&config);
    let naive = NaiveOpen::start(&config);
    let run = run_quick(fx.launcher().arg(config.to_str().unwrap()));
    run.fails(2, "is a FIFO, not a regular file; refusing to wait on it")
        .stderr_has(&config.display().to_string());
    naive.assert_still_blocked();
    assert!(fx.events().is_empty());
}

#[test]
fn fifo_approved_list_is_refused_before_anything_is_measured() {
    let (fx, sha) = git_fixture();
    let list = fx.path().join("approved.json");
    mkfifo(&list);
    let config = fx.line_config(&sha, &format!("APPROVED_LIST={}\n", list.display()));
    let naive = NaiveOpen::start(&list);
    let run = run_quick(fx.launcher().arg(config.to_str().unwrap()));
    run.fails(
        1,
        &format!(
            "approved list {} is a FIFO, not a regular file",
            list.display()
        ),
    );
    naive.assert_still_blocked();
    assert!(fx.events().is_empty());
    assert!(!fx.marker("ran").exists());
}

#[test]
fn fifo_event_log_is_refused_and_nothing_starts() {
    let (fx, sha) = git_fixture();
    mkfifo(&fx.event_log());
    let naive = NaiveOpen::start(&fx.event_log());
    let config = fx.line_config(&sha, "");
    let run = run_quick(fx.launcher().arg(config.to_str().unwrap()));
    run.fails(
        1,
        &format!(
            "event log {}: is a FIFO, not a regular file",
            fx.event_log().display()
        ),
    );
    naive.assert_still_blocked();
    assert!(!fx.marker("ran").exists());
    assert!(!fx.work_dir().exists(), "nothing may be checked out");
}

/// Image mode: a FIFO as the compose template or the registry CA file.
#[test]
fn fifo_template_or_ca_file_is_refused_before_anything_is_measured() {
    let fx = Fixture::new();
    let registry = FakeRegistry::start(Mode::Normal);
    let image = Image::new(Flavor::Oci, "linux/amd64", "waits");
    registry.push_image(&image);
    let docker = fx.write("docker", "#!/bin/sh\necho \"$*\" >> calls.log\nexit 0\n");
    fs::set_permissions(&docker, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let fifo = fx.path().join("special");
    mkfifo(&fifo);
    for (key, needle) in [
        ("compose_template", "cannot read compose template"),
        ("ca_file", "CA file"),
    ] {
        let config = fx.write(
            "image.toml",
            &format!(
                "[image]\nreference = \"{}\"\ndigest = \"{}\"\ncompose_file = \"{}\"\n{key} = \"{}\"\n",
                registry.reference(),
                image.digest(),
                fx.path().join("compose.yaml").display(),
                fifo.display()
            ),
        );
        let naive = NaiveOpen::start(&fifo);
        let run = run_quick(
            fx.launcher()
                .args(["--docker", docker.to_str().unwrap()])
                .args(["--docker-config", fx.path().join("dc").to_str().unwrap()])
                .arg(config.to_str().unwrap()),
        );
        run.fails(1, needle)
            .stderr_has(&fifo.display().to_string())
            .stderr_has("is a FIFO, not a regular file");
        naive.assert_still_blocked();
        assert!(fx.events().is_empty(), "{key}");
        assert!(!fx.path().join("calls.log").exists(), "{key}: docker ran");
    }
}

/// A reused `WORK_DIR` whose loose object is a FIFO: git opens loose objects with a blocking
/// `open` (object-file.c, `git_open`), so plain git hangs on it — after the launcher has
/// measured the config and the workload. The launcher refuses the store before git reads it.
#[test]
fn fifo_in_the_reused_object_store_is_refused() {
    let (fx, sha) = git_fixture();
    let config = fx.line_config(&sha, "");
    fx.launcher().arg(config.to_str().unwrap()).run().success();
    fs::remove_file(fx.marker("ran")).unwrap();
    // The attacker owns the disk: store every object loose, so git has to open the file.
    let pack_dir = fx.work_dir().join(".git/objects/pack");
    for item in fs::read_dir(&pack_dir).unwrap() {
        let path = item.unwrap().path();
        if path.extension().is_some_and(|e| e == "pack") {
            let moved = fx.path().join("moved.pack");
            fs::rename(&path, &moved).unwrap();
            let status = common::git_command(&fx.work_dir())
                .args(["unpack-objects", "-q"])
                .stdin(fs::File::open(&moved).unwrap())
                .status()
                .unwrap();
            assert!(status.success());
        } else {
            fs::remove_file(path).unwrap();
        }
    }
    let loose = fx
        .work_dir()
        .join(".git/objects")
        .join(&sha[..2])
        .join(&sha[2..]);
    assert!(loose.is_file(), "the commit is a loose object");
    fs::remove_file(&loose).unwrap();
    mkfifo(&loose);

    // Naive: plain git reading the commit blocks on the FIFO.
    let mut plain = common::git_command(&fx.work_dir())
        .args(["cat-file", "-p", &sha])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    let measured_before = fx.events().len();
    let run = run_quick(fx.launcher().arg(config.to_str().unwrap()));
    run.fails(
        1,
        &format!(
            "{} in the reused object store is a FIFO, not a regular file",
            loose.display()
        ),
    );
    assert!(
        plain.try_wait().unwrap().is_none(),
        "plain git finished reading a FIFO object"
    );
    plain.kill().unwrap();
    plain.wait().unwrap();
    assert!(!fx.marker("ran").exists());
    let names: Vec<_> = fx.events()[measured_before..]
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        !names.contains(&"trusted-launcher.ready".to_owned()),
        "{names:?}"
    );
}

/// Linux's listen(2) caps the backlog at `net.core.somaxconn`, and std's `UnixListener::bind`
/// asks for the most; a unix stream socket's queue is full once it holds one more than the
/// backlog (`net/unix/af_unix.c`, `unix_recvq_full`), and then a blocking `connect` waits for
/// room with no timeout (unix(7)).
fn somaxconn() -> usize {
    fs::read_to_string("/proc/sys/net/core/somaxconn")
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn agent_socket_that_never_accepts_fails_within_the_deadline() {
    let (fx, sha) = git_fixture();
    let socket = fx.path().join("agent.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let connected = Arc::new(AtomicUsize::new(0));
    let (count, path) = (Arc::clone(&connected), socket.clone());
    // Fills the queue; its last connect blocks until the listener is dropped (then it is
    // refused and the thread ends).
    thread::spawn(move || {
        let mut held = Vec::new();
        while let Ok(stream) = UnixStream::connect(&path) {
            held.push(stream);
            count.fetch_add(1, Ordering::SeqCst);
        }
    });
    let full = somaxconn() + 1;
    let deadline = Instant::now() + QUICK;
    while connected.load(Ordering::SeqCst) < full {
        assert!(Instant::now() < deadline, "queue never filled");
        thread::sleep(Duration::from_millis(10));
    }
    // Naive: a std connect now blocks (run on a thread, still waiting after the launcher).
    let naive_path = socket.clone();
    let naive = thread::spawn(move || UnixStream::connect(naive_path).is_ok());

    let config = fx.line_config(&sha, "");
    let mut launcher = Launcher::new(fx.path());
    launcher
        .args(["--platform", "tee", "--measurement-backend", "dstack"])
        .args(["--dstack-socket", socket.to_str().unwrap()])
        .args(["--event-log", fx.event_log().to_str().unwrap()])
        .arg(config.to_str().unwrap());
    let run = run_quick(&launcher);
    run.fails(
        1,
        &format!(
            "cannot connect to unix:{} within 10s (the socket accepts no connection)",
            socket.display()
        ),
    );
    assert!(!naive.is_finished(), "a naive connect got through");
    drop(listener);
    assert!(!naive.join().unwrap(), "the naive connect was accepted");
    assert!(!fx.marker("ran").exists());
    assert!(!fx.work_dir().exists());
}

/// `INSTALL_CMD` that never finishes: git-launcher waits forever (`bash -c "$INSTALL_CMD"`
/// in the foreground). Here it is killed at `INSTALL_TIMEOUT` with everything it started.
#[test]
fn install_cmd_past_its_timeout_is_killed_with_its_children() {
    let (fx, sha) = git_fixture();
    let pid_file = fx.path().join("bg.pid");
    let config = fx.line_config(
        &sha,
        &format!(
            "INSTALL_CMD=sleep 600 & echo $! > {}; wait\nINSTALL_TIMEOUT=2\nRUN_CMD=touch {}\n",
            pid_file.display(),
            fx.marker("ran").display()
        ),
    );
    let run = run_quick(fx.launcher().arg(config.to_str().unwrap()));
    run.fails(1, "INSTALL_CMD did not finish within 2s");
    assert!(!fx.marker("ran").exists(), "the workload started");
    let pid = fs::read_to_string(&pid_file).unwrap();
    let stat = PathBuf::from(format!("/proc/{}/stat", pid.trim()));
    let deadline = Instant::now() + QUICK;
    // Gone, or a zombie waiting for its new parent to reap it: either way not running.
    while fs::read_to_string(&stat).is_ok_and(|s| !s.contains(") Z ")) {
        assert!(Instant::now() < deadline, "background sleep {pid} survived");
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn install_timeout_is_validated() {
    let (fx, sha) = git_fixture();
    for (value, line) in [("0", "INSTALL_TIMEOUT=0"), ("soon", "INSTALL_TIMEOUT=soon")] {
        let config = fx.line_config(&sha, &format!("{line}\nINSTALL_CMD=true\nRUN_CMD=true\n"));
        fx.launcher().arg(config.to_str().unwrap()).run().fails(
            2,
            &format!(
                "INSTALL_TIMEOUT must be a whole number of seconds from 1 to 604800 (got {value:?})"
            ),
        );
    }
}

/// `serde_json` alone reads `{"k":[A],"k":[B]}` as B (last wins); another reader of the same
/// file may take A. The list is refused instead, as are fields it does not know.
#[test]
fn approved_list_with_duplicate_key_or_unknown_field_is_refused() {
    let (fx, sha) = git_fixture();
    let other = "b".repeat(40);
    let duplicate = format!(r#"{{"approved_commits":["{other}"],"approved_commits":["{sha}"]}}"#);
    let naive: serde_json::Value = serde_json::from_str(&duplicate).unwrap();
    assert_eq!(naive["approved_commits"][0], sha.as_str(), "last wins");
    for (text, needle) in [
        (duplicate, "duplicate key `approved_commits`"),
        (
            format!(r#"{{"approved_commits":["{sha}"],"comment":"x"}}"#),
            "unknown field `comment`, expected `approved_commits`",
        ),
    ] {
        let list = fx.write("approved.json", &text);
        let config = fx.line_config(&sha, &format!("APPROVED_LIST={}\n", list.display()));
        fx.launcher()
            .arg(config.to_str().unwrap())
            .run()
            .fails(
                1,
                &format!("approved list {} is malformed: ", list.display()),
            )
            .stderr_has(needle);
        assert!(fx.events().is_empty());
        assert!(!fx.marker("ran").exists());
    }
}
