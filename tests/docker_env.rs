//! Image mode's docker calls trust nothing around the launcher: each runs with a cleared
//! environment (fixed `PATH`, the configured `DOCKER_HOST`, a fresh private `DOCKER_CONFIG`), has
//! a deadline, and has its captured output capped. Driven through `--docker` with a fake
//! docker that records the environment it was given.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::fake_registry::{FakeRegistry, Flavor, Image, Mode};
use common::{Fixture, Launcher, Run};

/// The launcher's fixed search path (src/git/command.rs `SAFE_PATH`).
const SAFE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const ENGINE: &str = "unix:///run/configured-engine.sock";
/// Variables bash sets in any script; not from the launcher.
const BASH_OWN: &[&str] = &["PWD", "SHLVL", "_", "OLDPWD"];

/// A docker CLI stand-in: appends `CALL <args>` and its whole environment to `calls.log`,
/// then acts as told by flag files in its directory.
fn fake_docker(fx: &Fixture) -> PathBuf {
    let dir = fx.path();
    let script = fx.write(
        "docker",
        &format!(
            r#"#!/bin/bash
d={dir}
{{ echo "CALL $*"; env; echo END; }} >> "$d/calls.log"
case "$1" in
  login) cat > /dev/null ;;
  pull)
    [ -e "$d/pull-hang" ] && exec sleep 600
    [ -e "$d/pull-flood" ] && {{ head -c 50000000 /dev/zero | tr '\0' x >&2; exit 1; }}
    exit 0 ;;
  image)
    [ -e "$d/inspect-flood" ] && {{ head -c 50000000 /dev/zero | tr '\0' ' '; exit 0; }}
    cat "$d/inspect.json" ;;
  compose)
    [ "$2" = version ] && {{ [ -e "$d/no-plugin" ] && exit 1; exit 0; }}
    echo COMPOSE-UP ;;
esac
"#,
            dir = dir.display()
        ),
    );
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    script
}

/// Each recorded call: its arguments and the environment it received.
fn calls(fx: &Fixture) -> Vec<(String, BTreeMap<String, String>)> {
    let text = fs::read_to_string(fx.path().join("calls.log")).unwrap_or_default();
    let mut calls = Vec::new();
    let mut lines = text.lines();
    while let Some(head) = lines.next() {
        let args = head.strip_prefix("CALL ").unwrap().to_owned();
        let env = lines
            .by_ref()
            .take_while(|l| *l != "END")
            .filter_map(|l| l.split_once('='))
            .filter(|(k, _)| !BASH_OWN.contains(k))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        calls.push((args, env));
    }
    calls
}

struct Setup {
    fx: Fixture,
    _registry: FakeRegistry,
    docker: PathBuf,
    config: PathBuf,
    private: PathBuf,
}

fn setup(extra: &str) -> Setup {
    let fx = Fixture::new();
    let registry = FakeRegistry::start(Mode::Normal);
    let image = Image::new(Flavor::Oci, "linux/amd64", "env");
    registry.push_image(&image);
    let docker = fake_docker(&fx);
    let approved = format!("{}@{}", registry.reference(), image.digest());
    fx.write(
        "inspect.json",
        &format!(
            r#"{{"Id":"{}","RepoDigests":["{approved}"]}}"#,
            image.config_digest()
        ),
    );
    let config = fx.write(
        "image.toml",
        &format!(
            "[image]\nreference = \"{}\"\ndigest = \"{}\"\ncompose_file = \"{}\"\n{extra}",
            registry.reference(),
            image.digest(),
            fx.path().join("compose.yaml").display()
        ),
    );
    let private = fx.path().join("private-docker-config");
    Setup {
        fx,
        _registry: registry,
        docker,
        config,
        private,
    }
}

impl Setup {
    fn launcher(&self) -> Launcher {
        let mut launcher = self.fx.launcher();
        launcher
            .args(["--docker", self.docker.to_str().unwrap()])
            .args(["--docker-config", self.private.to_str().unwrap()]);
        launcher
    }

    fn run(&self, launcher: &mut Launcher) -> Run {
        let started = Instant::now();
        let run = launcher.arg(self.config.to_str().unwrap()).run();
        assert!(started.elapsed() < Duration::from_secs(60));
        run
    }

    fn measured(&self) -> Vec<String> {
        self.fx
            .events()
            .iter()
            .map(|e| e["event"].as_str().unwrap().to_owned())
            .collect()
    }
}

/// What an operator (or anything that writes the container's environment) might inject.
fn hostile(shared: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("DOCKER_HOST", "tcp://198.51.100.7:2375".to_owned()),
        (
            "DOCKER_CONFIG",
            shared.join("evil-config").display().to_string(),
        ),
        ("HOME", shared.display().to_string()),
        ("DOCKER_CONTEXT", "evil".to_owned()),
        ("DOCKER_TLS_VERIFY", "0".to_owned()),
        ("DOCKER_CERT_PATH", shared.display().to_string()),
        (
            "COMPOSE_FILE",
            shared.join("evil.yaml").display().to_string(),
        ),
        ("COMPOSE_PROJECT_NAME", "evil".to_owned()),
        (
            "PATH",
            format!("{}:/usr/bin:/bin", shared.join("bin").display()),
        ),
    ]
}

#[test]
fn docker_gets_only_the_configured_engine_and_a_fresh_private_config() {
    let s = setup(&format!("docker_host = \"{ENGINE}\"\nusername = \"u\"\n"));
    let shared = s.fx.path().join("shared");
    let hostile = hostile(&shared);

    // Naive: the old code ran docker with the launcher's environment; docker sees it all.
    let mut naive = Command::new(&s.docker);
    naive.env_clear().envs(hostile.iter().map(|(k, v)| (k, v)));
    assert!(naive.args(["pull", "x"]).status().unwrap().success());
    let (_, env) = &calls(&s.fx)[0];
    assert_eq!(env["DOCKER_HOST"], "tcp://198.51.100.7:2375");
    assert_eq!(env["DOCKER_CONFIG"], hostile[1].1);
    fs::remove_file(s.fx.path().join("calls.log")).unwrap();

    // Left over from an earlier run (or planted): the private directory is recreated.
    fs::create_dir_all(s.private.join("cli-plugins")).unwrap();
    fs::write(s.private.join("cli-plugins/docker-compose"), "#!/bin/sh\n").unwrap();
    let mut launcher = s.launcher();
    for (name, value) in &hostile {
        launcher.env(name, value.clone());
    }
    let run = s.run(&mut launcher);
    run.success().stdout_has("COMPOSE-UP");

    let private = s.private.display().to_string();
    let expected = BTreeMap::from([
        ("DOCKER_CONFIG".to_owned(), private.clone()),
        ("DOCKER_HOST".to_owned(), ENGINE.to_owned()),
        ("HOME".to_owned(), private),
        ("PATH".to_owned(), SAFE_PATH.to_owned()),
    ]);
    let calls = calls(&s.fx);
    let kinds: Vec<_> = calls
        .iter()
        .map(|(args, _)| args.split(' ').next().unwrap().to_owned())
        .collect();
    // login, pull, inspect, compose version, and the exec'd compose up.
    assert_eq!(kinds, ["login", "pull", "image", "compose", "compose"]);
    assert!(calls.last().unwrap().0.ends_with("up --remove-orphans"));
    for (args, env) in &calls {
        assert_eq!(env, &expected, "docker {args}");
    }
    let meta = fs::metadata(&s.private).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o700);
    assert!(!s.private.join("cli-plugins").exists());
}

#[test]
fn docker_host_defaults_to_the_mounted_socket_and_is_validated() {
    let s = setup("");
    s.run(&mut s.launcher()).success();
    for (_, env) in calls(&s.fx) {
        assert_eq!(env["DOCKER_HOST"], "unix:///var/run/docker.sock");
    }
    let bad = setup("docker_host = \"/var/run/docker.sock\"\n");
    bad.run(&mut bad.launcher()).fails(
        2,
        "image.docker_host must be unix:///<socket path>, tcp://<host>:<port> or ssh://<host>",
    );
}

/// Compose v1 is looked up on the fixed PATH only: a `docker-compose` first on an injected
/// PATH is never run.
#[test]
fn compose_v1_is_not_taken_from_an_injected_path() {
    let on_safe_path = SAFE_PATH
        .split(':')
        .any(|dir| Path::new(dir).join("docker-compose").is_file());
    if on_safe_path {
        eprintln!("skipped: a real docker-compose is installed on the fixed PATH");
        return;
    }
    let s = setup("");
    s.fx.write("no-plugin", "");
    let bin = s.fx.path().join("shared/bin");
    fs::create_dir_all(&bin).unwrap();
    let marker = s.fx.marker("evil-compose");
    let evil = bin.join("docker-compose");
    fs::write(&evil, format!("#!/bin/sh\ntouch {}\n", marker.display())).unwrap();
    fs::set_permissions(&evil, fs::Permissions::from_mode(0o755)).unwrap();
    let mut launcher = s.launcher();
    launcher.env("PATH", format!("{}:/usr/bin:/bin", bin.display()));
    s.run(&mut launcher)
        .fails(1, "neither `docker compose` (v2) nor `docker-compose` (v1)");
    assert!(!marker.exists());
    assert!(!s.measured().contains(&"trusted-launcher.ready".to_owned()));
}

/// A pull that never ends is killed at `pull_timeout`; nothing is started or marked ready.
#[test]
fn hung_pull_is_killed_at_pull_timeout() {
    let s = setup("pull_timeout = 2\n");
    s.fx.write("pull-hang", "");
    // Naive: the stand-in's pull, waited on as the old code did, is still running after
    // the launcher has given up on it.
    let mut naive = Command::new(&s.docker).args(["pull", "x"]).spawn().unwrap();
    s.run(&mut s.launcher())
        .fails(1, "docker pull did not finish within 2s; killed it");
    assert!(naive.try_wait().unwrap().is_none(), "the naive pull ended");
    naive.kill().unwrap();
    naive.wait().unwrap();
    let kinds: Vec<_> = calls(&s.fx).into_iter().map(|(a, _)| a).collect();
    assert!(!kinds.iter().any(|a| a.starts_with("compose")), "{kinds:?}");
    assert!(!kinds.iter().any(|a| a.starts_with("image")), "{kinds:?}");
    assert!(!s.measured().contains(&"trusted-launcher.ready".to_owned()));
}

/// 50 MB on stderr or stdout: what is kept is capped (1 MiB), the error stays one short line.
#[test]
fn flooding_output_is_capped() {
    let s = setup("");
    s.fx.write("pull-flood", "");
    let run = s.run(&mut s.launcher());
    run.fails(1, "docker pull failed");
    let line = run
        .stderr
        .lines()
        .find(|l| l.contains("docker pull"))
        .unwrap();
    assert!(line.len() < 1024, "{} bytes", line.len());
    assert!(line.ends_with("xxx..."), "{line}");

    let s = setup("");
    s.fx.write("inspect-flood", "");
    s.run(&mut s.launcher()).fails(
        1,
        "docker image inspect printed something that is not an image",
    );
    assert!(!s.measured().contains(&"trusted-launcher.ready".to_owned()));
}

#[test]
fn pull_timeout_is_validated() {
    for (value, expected) in [
        (
            "0",
            "image.pull_timeout must be a whole number of seconds from 1 to 604800 (got \"0\")",
        ),
        ("\"60\"", "image.pull_timeout must be an integer"),
    ] {
        let s = setup(&format!("pull_timeout = {value}\n"));
        s.run(&mut s.launcher()).fails(2, expected);
        assert!(calls(&s.fx).is_empty());
    }
}
