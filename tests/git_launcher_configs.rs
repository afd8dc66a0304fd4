//! git-launcher configs as its users write them (issue 12): empty values as its newest version
//! reads them, and its default config path when the launcher gets no argument (DESIGN §7).
//!
//! Each config is written the way git-launcher's own documentation and test suite write it:
//! advanced mode with `INSTALL_CMD=` (empty) beside `RUN_CMD`, `ENTRYPOINT_SCRIPT=` and
//! `REPO_SUBDIR=` meaning the defaults. Before this change the first two were refused
//! (`INSTALL_CMD must not be empty`, exit 2), so a user's existing config failed at once.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::fs;

use common::{Fixture, Item, entry};

const NAMES: [&str; 3] = [
    "trusted-launcher.config",
    "trusted-launcher.workload",
    "trusted-launcher.ready",
];

fn events_named(fx: &Fixture) -> Vec<String> {
    fx.events()
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_owned())
        .collect()
}

/// A `BASH_ENV` script that records the `-c` string of every bash the launcher starts: bash
/// reads `$BASH_ENV` before running a non-interactive command (bash(1), INVOCATION), so one
/// line per bash process, install or run. nontee mode passes `BASH_ENV` only because the
/// config names it in `ALLOW_ENV`.
fn bash_starts(fx: &Fixture) -> (std::path::PathBuf, std::path::PathBuf) {
    let record = fx.path().join("bash-starts");
    let script = fx.write(
        "bash-env.sh",
        &format!(
            "printf '%s\\n' \"$BASH_EXECUTION_STRING\" >> {}\n",
            record.display()
        ),
    );
    (script, record)
}

#[test]
fn empty_install_cmd_beside_run_cmd_starts_no_install_process() {
    let fx = Fixture::new();
    let sha = fx.commit(&[Item::File("README", "no entry script here\n")]);
    let (script, record) = bash_starts(&fx);
    let run_cmd = "echo \"RUN in $(pwd)\"";
    // As git-launcher's test suite writes advanced mode: INSTALL_CMD= beside RUN_CMD.
    let config = fx.line_config(
        &sha,
        &format!("INSTALL_CMD=\nRUN_CMD={run_cmd}\nALLOW_ENV=BASH_ENV\n"),
    );
    fx.launcher()
        .env("BASH_ENV", script.to_str().unwrap())
        .arg(config.to_str().unwrap())
        .run()
        .success()
        .stdout_has(&format!(
            "RUN in {}",
            fx.work_dir().canonicalize().unwrap().display()
        ))
        .stderr_lacks("running INSTALL_CMD");
    assert_eq!(events_named(&fx), NAMES);
    // Exactly one bash, the workload's: no `bash -c ''` for the empty INSTALL_CMD.
    assert_eq!(fs::read_to_string(&record).unwrap(), format!("{run_cmd}\n"));

    // The same probe sees an install process when there is one, so it can fail.
    fs::remove_file(&record).unwrap();
    let config = fx.line_config(
        &sha,
        &format!("INSTALL_CMD=true\nRUN_CMD={run_cmd}\nALLOW_ENV=BASH_ENV\n"),
    );
    fx.launcher()
        .env("BASH_ENV", script.to_str().unwrap())
        .arg(config.to_str().unwrap())
        .run()
        .success()
        .stderr_has("running INSTALL_CMD");
    assert_eq!(
        fs::read_to_string(&record).unwrap(),
        format!("true\n{run_cmd}\n")
    );
}

#[test]
fn empty_install_cmd_in_toml_is_the_same() {
    let fx = Fixture::new();
    let sha = fx.commit(&[Item::File("README", "x\n")]);
    let (script, record) = bash_starts(&fx);
    let config = fx.write(
        "launcher.toml",
        &format!(
            "[git]\nrepo = \"{}\"\ncommit = \"{sha}\"\nwork_dir = \"{}\"\ninstall = \"\"\nrun = \"echo RUN toml\"\nallow_env = [\"BASH_ENV\"]\n",
            fx.url(),
            fx.work_dir().display()
        ),
    );
    fx.launcher()
        .env("BASH_ENV", script.to_str().unwrap())
        .arg(config.to_str().unwrap())
        .run()
        .success()
        .stdout_has("RUN toml")
        .stderr_lacks("running INSTALL_CMD");
    assert_eq!(fs::read_to_string(&record).unwrap(), "echo RUN toml\n");
}

#[test]
fn empty_install_cmd_still_requires_run_cmd() {
    let fx = Fixture::new();
    let sha = fx.commit(&[Item::File("entrypoint.sh", &entry("default"))]);
    // Set-but-empty still counts as set (DESIGN §7): not silently default mode.
    let config = fx.line_config(&sha, "INSTALL_CMD=\n");
    fx.launcher()
        .arg(config.to_str().unwrap())
        .run()
        .fails(
            2,
            &format!("{}:4: INSTALL_CMD requires RUN_CMD", config.display()),
        )
        .stderr_lacks("RAN default");
    assert!(fx.events().is_empty(), "nothing may be measured");
    assert!(!fx.work_dir().exists(), "nothing may be checked out");
}

#[test]
fn empty_run_cmd_is_still_an_error() {
    let fx = Fixture::new();
    let sha = fx.commit(&[Item::File("entrypoint.sh", &entry("default"))]);
    let config = fx.line_config(&sha, "INSTALL_CMD=\nRUN_CMD=\n");
    fx.launcher()
        .arg(config.to_str().unwrap())
        .run()
        .fails(
            2,
            &format!("{}:5: RUN_CMD must not be empty", config.display()),
        )
        .stderr_lacks("RAN default");
    assert!(fx.events().is_empty(), "nothing may be measured");
    assert!(!fx.work_dir().exists(), "nothing may be checked out");
}

#[test]
fn empty_entrypoint_script_runs_entrypoint_sh() {
    let fx = Fixture::new();
    let sha = fx.commit(&[
        Item::File("entrypoint.sh", &entry("default-entry")),
        Item::File("other.sh", &entry("other")),
    ]);
    let config = fx.line_config(&sha, "ENTRYPOINT_SCRIPT=\n");
    fx.launcher()
        .arg(config.to_str().unwrap())
        .run()
        .success()
        .stdout_has("RAN default-entry")
        .stderr_has("launching: bash entrypoint.sh in");
    assert_eq!(events_named(&fx), NAMES);
}

#[test]
fn empty_entrypoint_script_beside_run_cmd_is_advanced_mode() {
    let fx = Fixture::new();
    let sha = fx.commit(&[Item::File("entrypoint.sh", &entry("default-entry"))]);
    let config = fx.line_config(
        &sha,
        "ENTRYPOINT_SCRIPT=\nINSTALL_CMD=\nRUN_CMD=echo RUN adv\n",
    );
    fx.launcher()
        .arg(config.to_str().unwrap())
        .run()
        .success()
        .stdout_has("RUN adv")
        .stderr_lacks("RAN default-entry");
}

#[test]
fn empty_repo_subdir_is_the_repository_root() {
    let fx = Fixture::new();
    let sha = fx.commit(&[
        Item::File("entrypoint.sh", &entry("root")),
        Item::File("svc/entrypoint.sh", &entry("svc")),
    ]);
    let config = fx.line_config(&sha, "REPO_SUBDIR=\nENTRYPOINT_SCRIPT=\n");
    fx.launcher()
        .arg(config.to_str().unwrap())
        .run()
        .success()
        .stdout_has(&format!(
            "RAN root in {}\n",
            fx.work_dir().canonicalize().unwrap().display()
        ));
}
