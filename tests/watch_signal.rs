//! Watch mode stops its workload on SIGTERM/SIGINT: the real binary, the in-process registry
//! and the recording `docker`. Before, the supervisor had no handler: SIGTERM's default
//! action ended a launcher that is not PID 1 with nothing stopped (the test below would see
//! "killed by signal 15" and no `compose down`), and PID 1 of a container (how dstack runs
//! it) ignored it until `docker stop` killed it (tests/e2e/container.sh checks that case with
//! a real engine). Waits are bounded polls, never fixed sleeps.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::ExitStatusExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::Fixture;
use common::fake_docker::FakeDocker;
use common::fake_registry::{FakeRegistry, Flavor, Image, Mode};

/// Generous: the launch itself, then a stop within one 100 ms look plus `compose down`.
const WAIT: Duration = Duration::from_secs(60);

struct Watched {
    fx: Fixture,
    docker: FakeDocker,
    child: Child,
    stderr: PathBuf,
    _registry: FakeRegistry,
}

/// A watched launch (interval 60 s: no tick runs during the test) with `docker` as the
/// engine's CLI, once its first launch is measured and up.
fn watched(docker_script: Option<&str>) -> Watched {
    let fx = Fixture::new();
    let registry = FakeRegistry::start(Mode::Normal);
    let image = Image::new(Flavor::Oci, "linux/amd64", "watch-signal");
    registry.push_image(&image);
    let docker = FakeDocker::new(&fx);
    let pinned = format!("{}@{}", registry.reference(), image.digest());
    docker.answer_inspect(&pinned, &image.config_digest());
    let list = fx.write(
        "approved.json",
        &format!(r#"{{"approved_hashes":["{}"]}}"#, image.digest()),
    );
    let config = fx.write(
        "image.toml",
        &format!(
            "[image]\nreference = \"{}\"\ndigest = \"{}\"\ncompose_file = \"{}\"\napproved_list = \"{}\"\nproject = \"svc\"\nwatch_interval = 60\n",
            registry.reference(),
            image.digest(),
            fx.path().join("compose.yaml").display(),
            list.display()
        ),
    );
    let script = match docker_script {
        Some(body) => {
            let path = fx.path().join("wrapped-docker");
            fs::write(
                &path,
                format!(
                    "#!/bin/bash\n{body}\nexec {} \"$@\"\n",
                    docker.script.display()
                ),
            )
            .unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
            path
        }
        None => docker.script.clone(),
    };
    let stderr = fx.path().join("launcher.stderr");
    let mut launcher = fx.launcher();
    launcher
        .args(["--docker", script.to_str().unwrap()])
        .args([
            "--docker-config",
            &fx.path().join("docker-config").display().to_string(),
        ])
        .arg(config.to_str().unwrap());
    let child = launcher
        .command()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let watched = Watched {
        fx,
        docker,
        child,
        stderr,
        _registry: registry,
    };
    watched.wait_for("the watch to start", |w| {
        w.stderr_text()
            .contains("watching the approved list every 60s")
    });
    assert_eq!(watched.fx.events().len(), 4, "{}", watched.stderr_text());
    assert_eq!(watched.calls_with("up --detach").len(), 1);
    watched
}

impl Watched {
    fn stderr_text(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn calls_with(&self, needle: &str) -> Vec<String> {
        self.docker
            .calls()
            .into_iter()
            .filter(|c| c.contains(needle))
            .collect()
    }

    #[track_caller]
    fn wait_for(&self, what: &str, done: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !done(self) {
            assert!(
                Instant::now() < deadline,
                "not within {WAIT:?}: {what}\n{}",
                self.stderr_text()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends SIGNAL (`TERM`, `INT`) with the shell's `kill` builtin.
    fn signal(&self, signal: &str) {
        let pid = self.child.id().to_string();
        let status = Command::new("sh")
            .args(["-c", &format!("kill -{signal} {pid}")])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// How the launcher ended, within [`WAIT`].
    fn exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the launcher did not exit within {WAIT:?}:\n{}",
                self.stderr_text()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn stops_on(signal: &str, name: &str, code: i32) {
    let mut w = watched(None);
    assert!(w.calls_with(" down").is_empty());
    w.signal(signal);
    let status = w.exit();
    assert_eq!(
        (status.code(), status.signal()),
        (Some(code), None),
        "exits {code}, not killed by the signal\n{}",
        w.stderr_text()
    );
    let downs = w.calls_with(" down --remove-orphans");
    assert_eq!(downs.len(), 1, "{:?}", w.docker.calls());
    assert!(
        downs[0].starts_with("compose --project-name svc "),
        "{downs:?}"
    );
    let calls = w.docker.calls();
    assert!(calls.last().unwrap().ends_with("down --remove-orphans"));
    let stderr = w.stderr_text();
    assert!(
        stderr.contains(&format!("{name} received; stopping compose project svc")),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("stopped compose project svc; exiting with {code}")));
    assert_eq!(w.fx.events().len(), 4, "nothing more measured");
    assert!(!stderr.contains("panicked"));
}

#[test]
fn sigterm_stops_the_workload_and_exits_143() {
    stops_on("TERM", "SIGTERM", 143);
}

#[test]
fn sigint_stops_the_workload_and_exits_130() {
    stops_on("INT", "SIGINT", 130);
}

/// A stop that fails is not reported as a clean one: exit 1 with docker's reason.
#[test]
fn a_failed_stop_exits_1_naming_the_project() {
    let mut w = watched(Some(
        "if [ \"$1\" = compose ] && [[ \" $* \" == *\" down \"* ]]; then echo 'Error response from daemon: engine unavailable' >&2; exit 1; fi",
    ));
    w.signal("TERM");
    let status = w.exit();
    assert_eq!(status.code(), Some(1), "{}", w.stderr_text());
    let stderr = w.stderr_text();
    assert!(
        stderr.contains(
            "trusted-launcher: error: SIGTERM received, but stopping compose project svc failed: docker compose down failed (exit status: 1): Error response from daemon: engine unavailable"
        ),
        "{stderr}"
    );
}
