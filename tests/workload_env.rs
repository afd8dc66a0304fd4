//! The workload's environment. An operator can inject variables into the CVM (they are not
//! attested), and many run other code inside the approved workload: each attack is first
//! shown working against a naive pass-through (git-launcher's, and the launcher's own nontee
//! mode), then shown refused by tee mode's allowlist.

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
use std::path::Path;
use std::process::Command;

use common::fake_agent::{FakeAgent, Mode};
use common::{Fixture, Item, Launcher, Run};

/// `git::SAFE_PATH`, written out: the PATH tee mode gives the workload.
const SAFE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Runs `date`, `git status` (as a workload printing its version would) and `python3`, then prints
/// the names of its environment. bash itself exports `PWD`, `SHLVL` and `_` at start-up
/// (bash(1), "Shell Variables"), so those are left out.
const PROBE: &str = r#"echo "RAN probe"
date >/dev/null
git status --short >/dev/null 2>&1
python3 -c 'print("python ran")'
echo "VARS: $(env | cut -d= -f1 | grep -vxE 'PWD|SHLVL|_' | sort | tr '\n' ' ')"
echo "PATH=$PATH"
echo "MODE=${MODE-unset} RUST_LOG=${RUST_LOG-unset}"
"#;

/// A tee-mode launcher measuring through `agent`.
fn tee(fx: &Fixture, agent: &FakeAgent) -> Launcher {
    let mut launcher = Launcher::new(fx.path());
    launcher
        .env("DSTACK_SIMULATOR_ENDPOINT", agent.endpoint())
        .args(["--platform", "tee", "--event-log"])
        .arg(fx.event_log().to_str().unwrap())
        .arg("--rtmr3-path")
        .arg(fx.path().join("no-rtmr3").to_str().unwrap());
    launcher
}

fn write_exec(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// Plants the three injections; returns the variables an operator would set.
///
/// - `PATH` first names a directory with a `date` that is not date(1).
/// - `PYTHONUSERBASE` names a user site whose `.pth` file runs code: a `.pth` line starting
///   with `import` is executed at start-up (Python's `site` module documentation).
/// - `GIT_CONFIG_COUNT`/`KEY_n`/`VALUE_n` set `core.fsmonitor` to a program, which
///   `git status` runs (git-config(1), "ENVIRONMENT" and `core.fsmonitor`).
fn plant(fx: &Fixture) -> Vec<(&'static str, String)> {
    let bin = fx.path().join("evil-bin");
    write_exec(
        &bin.join("date"),
        &format!("#!/bin/sh\ntouch '{}'\n", fx.marker("path").display()),
    );
    let userbase = fx.path().join("userbase");
    let site = Command::new("python3")
        .env_clear()
        .env("PYTHONUSERBASE", &userbase)
        .args(["-c", "import site; print(site.getusersitepackages())"])
        .output()
        .unwrap();
    let site = String::from_utf8(site.stdout).unwrap();
    let site = Path::new(site.trim());
    fs::create_dir_all(site).unwrap();
    fs::write(
        site.join("evil.pth"),
        format!(
            "import os; open('{}', 'w').close()\n",
            fx.marker("pth").display()
        ),
    )
    .unwrap();
    let monitor = fx.path().join("fsmonitor");
    write_exec(
        &monitor,
        &format!("#!/bin/sh\ntouch '{}'\n", fx.marker("git").display()),
    );
    vec![
        ("PATH", format!("{}:/usr/bin:/bin", bin.display())),
        ("PYTHONUSERBASE", userbase.display().to_string()),
        ("GIT_CONFIG_COUNT", "1".to_owned()),
        ("GIT_CONFIG_KEY_0", "core.fsmonitor".to_owned()),
        ("GIT_CONFIG_VALUE_0", monitor.display().to_string()),
    ]
}

fn markers(fx: &Fixture) -> Vec<String> {
    let mut found: Vec<String> = ["path", "pth", "git"]
        .into_iter()
        .filter(|name| fx.marker(name).exists())
        .map(str::to_owned)
        .collect();
    found.sort();
    found
}

fn clear_markers(fx: &Fixture) {
    for name in ["path", "pth", "git"] {
        let _ = fs::remove_file(fx.marker(name));
    }
}

fn ready_measured(agent: &FakeAgent) -> bool {
    agent
        .events()
        .iter()
        .any(|e| e.event == "trusted-launcher.ready")
}

/// The `VARS:` line the probe printed.
fn vars(run: &Run) -> String {
    run.stdout
        .lines()
        .find_map(|l| l.strip_prefix("VARS: "))
        .unwrap_or_else(|| panic!("no VARS line:\n{}\n{}", run.stdout, run.stderr))
        .trim()
        .to_owned()
}

#[test]
fn injected_variables_run_code_under_pass_through_and_not_under_the_tee_allowlist() {
    let fx = Fixture::new();
    let sha = fx.commit(&[Item::File("entrypoint.sh", PROBE)]);
    let injected = plant(&fx);

    // The naive launcher (git-launcher): `exec bash entrypoint.sh` with the environment as
    // it came. Every injection runs.
    let scratch = fx.path().join("scratch");
    let mut naive = Command::new("bash");
    naive.arg("entrypoint.sh").current_dir(&scratch).env_clear();
    naive.envs(injected.iter().map(|(k, v)| (*k, v)));
    let output = naive.output().unwrap();
    assert!(output.status.success(), "{output:?}");
    assert_eq!(markers(&fx), ["git", "path", "pth"]);
    clear_markers(&fx);

    // The launcher's nontee mode keeps that pass-through (minus its denylist, which names
    // none of these): the same three run.
    let config = fx.line_config(&sha, "");
    let mut nontee = fx.launcher();
    for (name, value) in &injected {
        nontee.env(name, value);
    }
    nontee.arg(config.to_str().unwrap()).run().success();
    assert_eq!(markers(&fx), ["git", "path", "pth"]);
    clear_markers(&fx);

    // Tee mode: only what the config names, and the fixed PATH. Nothing planted runs.
    let agent = FakeAgent::start(fx.path(), Mode::Normal);
    let mut launcher = tee(&fx, &agent);
    for (name, value) in &injected {
        launcher.env(name, value);
    }
    let run = launcher.arg(config.to_str().unwrap()).run();
    run.success()
        .stdout_has("RAN probe")
        .stdout_has("python ran")
        .stdout_has(&format!("PATH={SAFE_PATH}\n"));
    assert_eq!(markers(&fx), Vec::<String>::new(), "{}", run.stderr);
    assert_eq!(vars(&run), "PATH");
    assert!(ready_measured(&agent));
    run.stderr_has("workload environment: PATH")
        .stderr_has("not passing to the workload (tee mode passes only PASS_ENV / git.pass_env names): DSTACK_SIMULATOR_ENDPOINT, GIT_CONFIG_COUNT, GIT_CONFIG_KEY_0, GIT_CONFIG_VALUE_0, HOME, PATH, PYTHONUSERBASE")
        // Names only: no value of an injected variable reaches the log.
        .stderr_lacks("evil-bin")
        .stderr_lacks("userbase");
}

#[test]
fn tee_passes_exactly_pass_env_the_fixed_values_and_path_to_install_and_run() {
    let fx = Fixture::new();
    let sha = fx.commit(&[Item::File("probe.sh", PROBE)]);
    let config = fx.write(
        "launcher.toml",
        &format!(
            "[git]\nrepo = \"{}\"\ncommit = \"{sha}\"\nwork_dir = \"{}\"\ninstall = \"echo INSTALL; bash probe.sh\"\nrun = \"echo RUN; bash probe.sh\"\npass_env = [\"RUST_LOG\", \"NOT_SET\"]\nenv = {{ MODE = \"prod\" }}\n",
            fx.url(),
            fx.work_dir().display()
        ),
    );
    let agent = FakeAgent::start(fx.path(), Mode::Normal);
    let run = tee(&fx, &agent)
        .env("RUST_LOG", "debug")
        .env("MODE", "injected-mode")
        .env("INJECTED", "injected-secret")
        .arg(config.to_str().unwrap())
        .run();
    run.success();
    // INSTALL_CMD and RUN_CMD see the same environment.
    let seen: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("VARS: "))
        .collect();
    assert_eq!(
        seen,
        ["VARS: MODE PATH RUST_LOG ", "VARS: MODE PATH RUST_LOG "]
    );
    assert_eq!(
        run.stdout.matches("MODE=prod RUST_LOG=debug\n").count(),
        2,
        "{}",
        run.stdout
    );
    assert_eq!(
        run.stdout.matches(&format!("PATH={SAFE_PATH}\n")).count(),
        2
    );
    run.stderr_has("workload environment: RUST_LOG, PATH, MODE")
        .stderr_has("named in PASS_ENV / git.pass_env but not set: NOT_SET")
        .stderr_has(": DSTACK_SIMULATOR_ENDPOINT, HOME, INJECTED, PATH\n")
        .stderr_lacks("injected-secret");
}

#[test]
fn nontee_keeps_the_pass_through_minus_the_denylist() {
    let fx = Fixture::new();
    let sha = fx.commit(&[Item::File("entrypoint.sh", PROBE)]);
    let bash_env = fx.path().join("bash-env.sh");
    fs::write(
        &bash_env,
        format!("touch '{}'\n", fx.marker("bash-env").display()),
    )
    .unwrap();
    let config = fx.line_config(&sha, "PASS_ENV=RUST_LOG\n");
    let run = fx
        .launcher()
        .env("RUST_LOG", "debug")
        .env("FOO", "bar")
        .env("BASH_ENV", bash_env.to_str().unwrap())
        .arg(config.to_str().unwrap())
        .run();
    run.success()
        .stdout_has("PATH=/usr/local/bin:/usr/bin:/bin\n")
        .stderr_has("not passing BASH_ENV to the workload");
    assert_eq!(vars(&run), "FOO HOME PATH RUST_LOG");
    assert!(!fx.marker("bash-env").exists());
}

#[test]
fn a_dangerous_pass_env_name_is_a_config_error_before_anything_is_measured() {
    let fx = Fixture::new();
    let sha = fx.commit(&[Item::File("entrypoint.sh", PROBE)]);
    let agent = FakeAgent::start(fx.path(), Mode::Normal);
    let config = fx.line_config(&sha, "PASS_ENV=RUST_LOG LD_PRELOAD\n");
    let run = tee(&fx, &agent).arg(config.to_str().unwrap()).run();
    run.fails(
        2,
        &format!(
            "{}:4: PASS_ENV names LD_PRELOAD, which changes what a loader, shell or interpreter runs; name it in ALLOW_ENV too to pass it",
            config.display()
        ),
    );
    assert!(agent.events().is_empty());
    assert!(!run.stdout.contains("RAN"));

    // Named in ALLOW_ENV too, it passes.
    let config = fx.line_config(
        &sha,
        "PASS_ENV=RUST_LOG LD_LIBRARY_PATH\nALLOW_ENV=LD_LIBRARY_PATH\n",
    );
    let run = tee(&fx, &agent)
        .env("LD_LIBRARY_PATH", "/nonexistent")
        .arg(config.to_str().unwrap())
        .run();
    run.success();
    assert_eq!(vars(&run), "LD_LIBRARY_PATH PATH");
}
