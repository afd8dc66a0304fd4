//! Watch mode (`[image] watch_interval`): the real binary, the in-process registry and the
//! recording `docker`. The approved list is changed under a running (detached) workload; the
//! launcher must stop it and start the newest approved digest as a new, fully measured
//! launch, or stop it and exit non-zero. Waits are bounded polls, never fixed sleeps.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::fs;
use std::io::Read as _;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::fake_docker::FakeDocker;
use common::fake_registry::{FakeRegistry, Flavor, Image, Mode};
use common::{Fixture, Run};

/// Generous: one tick is 5 s (the smallest interval the config allows).
const WAIT: Duration = Duration::from_secs(60);

const CONTRACT: [&str; 4] = [
    "trusted-launcher.config",
    "trusted-launcher.workload",
    "trusted-launcher.compose",
    "trusted-launcher.ready",
];

struct Setup {
    fx: Fixture,
    registry: FakeRegistry,
    old: Image,
    new: Image,
    docker: FakeDocker,
    list: PathBuf,
}

fn setup() -> Setup {
    let fx = Fixture::new();
    let registry = FakeRegistry::start(Mode::Normal);
    let old = Image::new(Flavor::Oci, "linux/amd64", "watch-old");
    let new = Image::new(Flavor::Oci, "linux/amd64", "watch-new");
    registry.push_image(&old);
    registry.push_image(&new);
    let docker = FakeDocker::new(&fx);
    let list = fx.path().join("approved.json");
    let s = Setup {
        fx,
        registry,
        old,
        new,
        docker,
        list,
    };
    s.approve(&[&s.old]);
    s.docker
        .answer_inspect(&s.image(&s.old), &s.old.config_digest());
    s
}

impl Setup {
    fn image(&self, image: &Image) -> String {
        format!("{}@{}", self.registry.reference(), image.digest())
    }

    /// Replaces the list as an operator (or NEAR's node) would: a new file renamed over it.
    fn write_list(&self, text: &str) {
        let temporary = self.list.with_extension("tmp");
        fs::write(&temporary, text).unwrap();
        fs::rename(&temporary, &self.list).unwrap();
    }

    fn approve(&self, images: &[&Image]) {
        let hashes: Vec<String> = images.iter().map(|i| i.digest()).collect();
        self.write_list(&serde_json::json!({ "approved_hashes": hashes }).to_string());
    }

    fn config(&self, extra: &str) -> PathBuf {
        self.fx.write(
            "image.toml",
            &format!(
                "[image]\nreference = \"{}\"\ndigest = \"{}\"\ncompose_file = \"{}\"\napproved_list = \"{}\"\nproject = \"svc\"\n{extra}",
                self.registry.reference(),
                self.old.digest(),
                self.fx.path().join("compose.yaml").display(),
                self.list.display()
            ),
        )
    }

    fn launcher(&self, config: &std::path::Path) -> common::Launcher {
        self.launcher_with(&self.docker.script, config)
    }

    fn launcher_with(
        &self,
        docker: &std::path::Path,
        config: &std::path::Path,
    ) -> common::Launcher {
        let mut launcher = self.fx.launcher();
        launcher
            .args(["--docker", docker.to_str().unwrap()])
            .args([
                "--docker-config",
                &self.fx.path().join("docker-config").display().to_string(),
            ])
            .arg(config.to_str().unwrap());
        launcher
    }

    /// Starts the launcher in the background, its stderr to a file the test can poll.
    fn spawn(&self, config: &std::path::Path) -> Watched {
        self.spawn_with(&self.docker.script, config)
    }

    fn spawn_with(&self, docker: &std::path::Path, config: &std::path::Path) -> Watched {
        let stderr = self.fx.path().join("launcher.stderr");
        let child = self
            .launcher_with(docker, config)
            .command()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        Watched { child, stderr }
    }

    fn measured(&self) -> Vec<(String, String)> {
        self.fx
            .events()
            .iter()
            .map(|e| {
                let name = e["event"].as_str().unwrap().to_owned();
                let payload = unhex(e["event_payload"].as_str().unwrap());
                (name, String::from_utf8_lossy(&payload).into_owned())
            })
            .collect()
    }

    fn names(&self) -> Vec<String> {
        self.measured().into_iter().map(|(n, _)| n).collect()
    }

    fn calls_with(&self, needle: &str) -> Vec<String> {
        let calls = self.docker.calls();
        calls.into_iter().filter(|c| c.contains(needle)).collect()
    }
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// The launcher under watch; killed when the test ends, whatever happened.
struct Watched {
    child: Child,
    stderr: PathBuf,
}

impl Watched {
    fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// The exit code, once the launcher exits within [`WAIT`].
    fn exit_code(&mut self) -> Option<i32> {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "the launcher did not exit within {WAIT:?}:\n{}",
                self.stderr()
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

/// Polls `done` until it holds, failing the test after [`WAIT`].
#[track_caller]
fn wait_until(what: &str, watched: &mut Watched, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        if let Some(status) = watched.child.try_wait().unwrap() {
            panic!(
                "launcher exited ({status}) before {what}:\n{}",
                watched.stderr()
            );
        }
        assert!(
            Instant::now() < deadline,
            "not within {WAIT:?}: {what}\n{}",
            watched.stderr()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// The old behaviour, and what an operator of NEAR's launcher saw: a detached launch returns
/// at once, so nothing notices when its digest leaves the approved list.
#[test]
fn without_watch_a_revoked_workload_is_never_stopped() {
    let s = setup();
    let run: Run = s.launcher(&s.config("detach = true\n")).run();
    run.success();
    s.approve(&[&s.new]);
    assert!(s.calls_with(" down").is_empty());
    assert_eq!(s.names(), CONTRACT);
}

#[test]
fn a_revoked_digest_is_stopped_and_the_newest_approved_started_and_measured() {
    let s = setup();
    let mut watched = s.spawn(&s.config("watch_interval = 5\nwatch_switch = true\n"));
    wait_until("the first launch is up", &mut watched, || {
        s.names().len() == 4 && !s.calls_with("up --detach").is_empty()
    });

    // A malformed list (untrusted input) is logged and retried: the workload keeps running.
    s.write_list("{\"approved_hashes\": [\"sha256:short\"]}");
    let log = watched.stderr.clone();
    wait_until("the bad list is reported", &mut watched, || {
        fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("watch: approved list")
    });
    assert!(watched.stderr().contains("; retrying in 5s"));
    assert!(s.calls_with(" down").is_empty(), "{:?}", s.docker.calls());

    s.docker
        .answer_inspect(&s.image(&s.new), &s.new.config_digest());
    s.approve(&[&s.new]);
    wait_until("the second launch is measured", &mut watched, || {
        s.names().len() == 8
    });
    wait_until("the second launch is up", &mut watched, || {
        s.calls_with("up --detach").len() == 2
    });

    let calls = s.docker.calls();
    let position = |needle: &str| {
        calls
            .iter()
            .position(|c| c.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} in {calls:?}"))
    };
    let down = position("--project-name svc --env-file");
    let down = down
        + calls[down..]
            .iter()
            .position(|c| c.ends_with("down --remove-orphans"))
            .unwrap();
    assert!(calls[down].starts_with("compose --project-name svc "));
    let pull_new = position(&format!("pull --quiet {}", s.image(&s.new)));
    let up = calls
        .iter()
        .rposition(|c| c.contains("up --detach"))
        .unwrap();
    assert!(down < pull_new && pull_new < up, "{calls:?}");

    let measured = s.measured();
    let names: Vec<&str> = measured.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names[..4], CONTRACT);
    assert_eq!(
        names[4..],
        CONTRACT,
        "the second launch is measured in full"
    );
    assert_eq!(measured[1].1, format!("oci:{}", s.old.digest()));
    assert_eq!(measured[5].1, format!("oci:{}", s.new.digest()));
    assert_eq!(measured[0], measured[4], "same attested config");
    // The compose file on disk now runs the new digest.
    let compose = fs::read_to_string(s.fx.path().join("compose.yaml")).unwrap();
    assert!(compose.contains(&s.new.digest()), "{compose}");
    // The same names on both launches: compose recreates `svc-workload` rather than adding a
    // second container; the default restart policy is `on-failure`.
    assert!(
        compose.contains("container_name: \"svc-workload\""),
        "{compose}"
    );
    assert!(compose.contains("restart: \"on-failure\""), "{compose}");
    assert!(!watched.stderr().contains("panicked"));
}

#[test]
fn without_switch_the_workload_is_stopped_and_the_launcher_exits_non_zero() {
    let s = setup();
    let mut watched = s.spawn(&s.config("watch_interval = 5\n"));
    wait_until("the first launch is up", &mut watched, || {
        s.names().len() == 4 && !s.calls_with("up --detach").is_empty()
    });
    s.approve(&[&s.new]);
    assert_eq!(watched.exit_code(), Some(1));
    let stderr = watched.stderr();
    assert!(
        stderr.contains(&format!(
            "image {} is no longer in the approved list {}; stopped compose project svc (watch_switch is off, so nothing else is started)",
            s.old.digest(),
            s.list.display()
        )),
        "{stderr}"
    );
    assert_eq!(s.calls_with(" down --remove-orphans").len(), 1);
    assert!(
        s.calls_with(&s.new.digest()).is_empty(),
        "nothing else pulled"
    );
    assert_eq!(s.names(), CONTRACT, "nothing more measured");
    let mut rest = String::new();
    fs::File::open(&watched.stderr)
        .unwrap()
        .read_to_string(&mut rest)
        .unwrap();
    assert!(!rest.contains("panicked"));
}

/// An engine that fails `compose down` (as docker reports a daemon error: a line on stderr,
/// exit 1) while `down-fail` exists; every other call goes to the recording fake.
fn failing_down(s: &Setup) -> (PathBuf, PathBuf) {
    use std::os::unix::fs::PermissionsExt as _;
    let flag = s.fx.path().join("down-fail");
    let script = s.fx.path().join("failing-docker");
    fs::write(
        &script,
        format!(
            "#!/bin/bash\nif [ \"$1\" = compose ] && [[ \" $* \" == *\" down \"* ]] && [ -e {flag} ]; then\n  echo 'Error response from daemon: engine unavailable' >&2; exit 1\nfi\nexec {inner} \"$@\"\n",
            flag = flag.display(),
            inner = s.docker.script.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(&flag, b"").unwrap();
    (script, flag)
}

/// A failed stop is not a stop: the watch logs it and tries again at the next tick, and
/// never starts the new digest beside an old one that may still run (what a supervisor that
/// ignored the failure would do). It does not exit or panic either.
#[test]
fn a_failed_stop_is_retried_and_nothing_new_starts_until_it_succeeds() {
    let s = setup();
    let (docker, flag) = failing_down(&s);
    let mut watched = s.spawn_with(
        &docker,
        &s.config("watch_interval = 5\nwatch_switch = true\n"),
    );
    wait_until("the first launch is up", &mut watched, || {
        s.names().len() == 4 && !s.calls_with("up --detach").is_empty()
    });
    s.docker
        .answer_inspect(&s.image(&s.new), &s.new.config_digest());
    s.approve(&[&s.new]);
    let log = watched.stderr.clone();
    wait_until("the failed stop is reported", &mut watched, || {
        fs::read_to_string(&log).unwrap_or_default().contains(
            "watch: docker compose down failed (exit status: 1): Error response from daemon: engine unavailable; retrying in 5s",
        )
    });
    assert!(
        s.calls_with(&s.new.digest()).is_empty(),
        "{:?}",
        s.docker.calls()
    );
    assert_eq!(s.names().len(), 4, "nothing measured for the new digest");

    fs::remove_file(&flag).unwrap();
    wait_until("the second launch is up", &mut watched, || {
        s.names().len() == 8 && s.calls_with("up --detach").len() == 2
    });
    assert_eq!(
        s.calls_with(" down --remove-orphans").len(),
        1,
        "the stop that worked"
    );
    assert!(!watched.stderr().contains("panicked"));
}
