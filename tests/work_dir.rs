//! `WORK_DIR` shared with another writer: a directory others can write is refused in tee
//! mode (a warning in nontee mode), and a file swapped between `HEAD verified` and `exec` is
//! caught by the re-check right before `ready`.

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

use common::fake_agent::{FakeAgent, Mode};
use common::{Fixture, Item, Launcher, entry};

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

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn measured(agent: &FakeAgent) -> Vec<String> {
    agent.events().into_iter().map(|e| e.event).collect()
}

#[test]
fn a_work_dir_others_can_write_is_refused_in_tee_mode_before_anything_is_measured() {
    let fx = Fixture::new();
    let sha = fx.commit(&[Item::File("entrypoint.sh", &entry("shared"))]);
    let config = fx.line_config(&sha, "");
    let work = fx.work_dir();
    fs::create_dir(&work).unwrap();
    chmod(&work, 0o777);

    // Nontee mode (and the launcher before this check, which had none): the launch goes
    // ahead in a directory any local user or container sharing the volume can rewrite.
    let run = fx.launcher().arg(config.to_str().unwrap()).run();
    run.success()
        .stdout_has("RAN shared")
        .stderr_has("is writable by group or others (mode 0777)")
        .stderr_has("(refused in tee mode)");

    // Tee mode: refused at the first check, which comes before the first event, so the agent
    // holds no event at all and the workload did not start.
    let agent = FakeAgent::start(fx.path(), Mode::Normal);
    let canonical = fs::canonicalize(&work).unwrap();
    let run = tee(&fx, &agent).arg(config.to_str().unwrap()).run();
    run.fails(
        1,
        &format!(
            "WORK_DIR {} is writable by group or others (mode 0777): another writer could change the verified checkout before the workload runs",
            canonical.display()
        ),
    );
    assert!(!run.stdout.contains("RAN"), "{}", run.stdout);
    assert_eq!(measured(&agent), Vec::<String>::new());

    // A directory above WORK_DIR others can write (no sticky bit) lets them rename WORK_DIR
    // away and put their own in its place: refused the same way.
    chmod(&work, 0o755);
    let above = fs::canonicalize(fx.path()).unwrap();
    chmod(&above, 0o777);
    let run = tee(&fx, &agent).arg(config.to_str().unwrap()).run();
    chmod(&above, 0o700);
    run.fails(
        1,
        &format!(
            "directory above WORK_DIR {} is writable by group or others (mode 0777)",
            above.display()
        ),
    );
    assert!(!run.stdout.contains("RAN"), "{}", run.stdout);
    assert_eq!(measured(&agent), Vec::<String>::new());

    // With the modes fixed the same launch runs, measured in full.
    let run = tee(&fx, &agent).arg(config.to_str().unwrap()).run();
    run.success().stdout_has("RAN shared");
    assert_eq!(
        measured(&agent),
        [
            "trusted-launcher.config",
            "trusted-launcher.workload",
            "trusted-launcher.ready"
        ]
    );
}

#[test]
fn a_file_swapped_after_verification_is_refused_before_ready() {
    let fx = Fixture::new();
    let sha = fx.commit(&[Item::File("start.sh", "echo \"RAN approved\"\n")]);
    // A stand-in for a concurrent writer on WORK_DIR (another container sharing the
    // volume): INSTALL_CMD runs after `HEAD verified` and before `exec`, so what it writes
    // lands exactly in that window. (INSTALL_CMD itself is attested config, run on the
    // approved commit; it is used here only for its timing.)
    let config = fx.line_config(
        &sha,
        "INSTALL_CMD=printf 'echo \"RAN swapped\"\\n' > start.sh\nRUN_CMD=bash start.sh\n",
    );

    // Without the re-check (nontee mode only warns, as the launcher did not check at all
    // before): the swapped file is what runs.
    let run = fx.launcher().arg(config.to_str().unwrap()).run();
    run.success()
        .stdout_has("RAN swapped")
        .stderr_has("HEAD verified")
        .stderr_has(
            "start.sh changed after the checkout was verified: content differs from the commit",
        );
    assert!(!run.stdout.contains("RAN approved"));

    // Tee mode: refused; config and workload were measured before the checkout, `ready`
    // was not, and the workload did not start.
    let agent = FakeAgent::start(fx.path(), Mode::Normal);
    let run = tee(&fx, &agent).arg(config.to_str().unwrap()).run();
    run.fails(
        1,
        "start.sh changed after the checkout was verified: content differs from the commit (another writer on WORK_DIR, or INSTALL_CMD?)",
    )
    .stderr_has("HEAD verified");
    assert!(!run.stdout.contains("RAN"), "{}", run.stdout);
    assert_eq!(
        measured(&agent),
        ["trusted-launcher.config", "trusted-launcher.workload"]
    );

    // Untracked build output is not a change: an INSTALL_CMD that only adds files passes.
    let config = fx.line_config(
        &sha,
        "INSTALL_CMD=echo built > build.out\nRUN_CMD=bash start.sh; cat build.out\n",
    );
    // A fresh agent: a new boot, so nothing is measured yet.
    drop(agent);
    let agent = FakeAgent::start(fx.path(), Mode::Normal);
    let run = tee(&fx, &agent).arg(config.to_str().unwrap()).run();
    run.success()
        .stdout_has("RAN approved\nbuilt\n")
        .stderr_has("working tree re-checked: 1 files still match the commit");
    assert!(measured(&agent).contains(&"trusted-launcher.ready".to_owned()));
}

#[test]
fn default_mode_re_checks_the_entry_right_before_ready() {
    let fx = Fixture::new();
    let sha = fx.commit(&[
        Item::File("svc/run.sh", &entry("entry")),
        Item::Symlink("svc/link.sh", "run.sh"),
    ]);
    let config = fx.line_config(&sha, "REPO_SUBDIR=svc\nENTRYPOINT_SCRIPT=link.sh\n");
    let agent = FakeAgent::start(fx.path(), Mode::Normal);
    let run = tee(&fx, &agent).arg(config.to_str().unwrap()).run();
    // The entry is re-hashed through its symlink, at the file the commit names.
    let target = fs::canonicalize(fx.work_dir()).unwrap().join("svc/run.sh");
    run.success().stdout_has("RAN entry").stderr_has(&format!(
        "entry re-checked against the commit: {}",
        target.display()
    ));
}
