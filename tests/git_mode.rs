//! git-launcher parity: every behaviour of DESIGN §7 against the real binary and real git.

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

fn events_named(fx: &Fixture) -> Vec<String> {
    fx.events()
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn default_mode_runs_entrypoint_and_logs_head_verified() {
    let fx = Fixture::new();
    let sha = fx.commit(&[Item::File("entrypoint.sh", &entry("v1"))]);
    let config = fx.line_config(&sha, "");
    let run = fx.launcher().arg(config.to_str().unwrap()).run();
    run.success()
        .stdout_has(&format!(
            "RAN v1 in {}",
            fx.work_dir().canonicalize().unwrap().display()
        ))
        .stderr_has(&format!("HEAD verified: {sha}"));
    assert_eq!(
        events_named(&fx),
        [
            "trusted-launcher.config",
            "trusted-launcher.workload",
            "trusted-launcher.ready"
        ]
    );
}

#[test]
fn run_subcommand_is_the_same_as_the_bare_form() {
    let fx = Fixture::new();
    let sha = fx.commit(&[Item::File("entrypoint.sh", &entry("v1"))]);
    let config = fx.line_config(&sha, "");
    fx.launcher()
        .args(["run", config.to_str().unwrap()])
        .run()
        .success()
        .stdout_has("RAN v1");
}

#[test]
fn custom_entry_script_in_subdir() {
    let fx = Fixture::new();
    let sha = fx.commit(&[
        Item::File("entrypoint.sh", &entry("root")),
        Item::File("app/start.sh", &entry("sub")),
    ]);
    let config = fx.line_config(&sha, "REPO_SUBDIR=app\nENTRYPOINT_SCRIPT=start.sh\n");
    let run = fx.launcher().arg(config.to_str().unwrap()).run();
    let app = fx.work_dir().join("app").canonicalize().unwrap();
    run.success()
        .stdout_has(&format!("RAN sub in {}\n", app.display()));
}

#[test]
fn missing_default_entry_script_fails_closed() {
    let fx = Fixture::new();
    let sha = fx.commit(&[Item::File("README", "no entry here\n")]);
    let config = fx.line_config(&sha, "");
    fx.launcher()
        .arg(config.to_str().unwrap())
        .run()
        .fails(1, "ENTRYPOINT_SCRIPT")
        .stderr_has("does not exist");
    assert!(!events_named(&fx).contains(&"trusted-launcher.ready".to_owned()));
}

#[test]
fn install_runs_before_run_in_the_subdir() {
    let fx = Fixture::new();
    let sha = fx.commit(&[Item::File("svc/README", "x\n")]);
    let config = fx.line_config(
        &sha,
        "REPO_SUBDIR=svc\nINSTALL_CMD=echo installed > built.txt\nRUN_CMD=echo \"RUN saw $(cat built.txt) in $(pwd)\"\n",
    );
    fx.launcher()
        .arg(config.to_str().unwrap())
        .run()
        .success()
        .stdout_has("RUN saw installed in ")
        .stdout_has("/svc");
}

#[test]
fn failing_install_stops_before_run_and_ready() {
    let fx = Fixture::new();
    let sha = fx.commit(&[Item::File("README", "x\n")]);
    let marker = fx.marker("run");
    let config = fx.line_config(
        &sha,
        &format!("INSTALL_CMD=exit 3\nRUN_CMD=touch {}\n", marker.display()),
    );
    fx.launcher()
        .arg(config.to_str().unwrap())
        .run()
        .fails(1, "INSTALL_CMD failed");
    assert!(!marker.exists());
    assert!(!events_named(&fx).contains(&"trusted-launcher.ready".to_owned()));
}

#[test]
fn run_cmd_without_install() {
    let fx = Fixture::new();
    let sha = fx.commit(&[Item::File("README", "x\n")]);
    let config = fx.line_config(&sha, "RUN_CMD=echo plain run\n");
    fx.launcher()
        .arg(config.to_str().unwrap())
        .run()
        .success()
        .stdout_has("plain run");
}

#[test]
fn rerun_advances_the_pin_and_drops_old_files() {
    let fx = Fixture::new();
    let first = fx.commit(&[
        Item::File("entrypoint.sh", &entry("v1")),
        Item::File("old.txt", "old\n"),
    ]);
    let second = fx.commit(&[Item::File(
        "entrypoint.sh",
        "echo \"RAN v2 old=$(test -e old.txt && echo yes || echo no)\"\n",
    )]);
    let config = fx.line_config(&first, "");
    fx.launcher()
        .arg(config.to_str().unwrap())
        .run()
        .success()
        .stdout_has("RAN v1");
    let config = fx.line_config(&second, "");
    fx.launcher()
        .arg(config.to_str().unwrap())
        .run()
        .success()
        .stdout_has("RAN v2 old=no")
        .stderr_has(&format!("HEAD verified: {second}"));
}

#[test]
fn dirty_reused_checkout_is_scrubbed() {
    let fx = Fixture::new();
    let sha = fx.commit(&[
        Item::File(
            "entrypoint.sh",
            "cat data.txt; ls -A | tr '\\n' ' '; echo\n",
        ),
        Item::File("data.txt", "committed\n"),
        Item::File(".gitignore", "ignored.txt\n"),
    ]);
    let config = fx.line_config(&sha, "");
    fx.launcher().arg(config.to_str().unwrap()).run().success();
    let work = fx.work_dir();
    fs::write(work.join("data.txt"), "tampered\n").unwrap();
    fs::write(work.join("untracked.txt"), "x").unwrap();
    fs::write(work.join("ignored.txt"), "x").unwrap();
    let run = fx.launcher().arg(config.to_str().unwrap()).run();
    run.success().stdout_has("committed\n");
    assert!(!run.stdout.contains("tampered"));
    assert!(
        run.stdout
            .contains(".git .gitignore data.txt entrypoint.sh"),
        "{}",
        run.stdout
    );
}

#[test]
fn environment_passes_through_minus_loader_and_shell_variables() {
    let fx = Fixture::new();
    let sha = fx.commit(&[Item::File(
        "entrypoint.sh",
        "echo \"FOO=$FOO LD_PRELOAD=${LD_PRELOAD-unset} BASH_ENV=${BASH_ENV-unset} LD_LIBRARY_PATH=${LD_LIBRARY_PATH-unset}\"\n",
    )]);
    let bash_env = fx.write(
        "bash_env.sh",
        &format!("touch {}\n", fx.marker("bash-env").display()),
    );
    let config = fx.line_config(&sha, "ALLOW_ENV=LD_LIBRARY_PATH\n");
    fx.launcher()
        .arg(config.to_str().unwrap())
        .env("FOO", "bar")
        .env("LD_PRELOAD", "/nonexistent/evil.so")
        .env("LD_LIBRARY_PATH", "/opt/lib")
        .env("BASH_ENV", bash_env.to_str().unwrap())
        .run()
        .success()
        .stdout_has("FOO=bar LD_PRELOAD=unset BASH_ENV=unset LD_LIBRARY_PATH=/opt/lib")
        .stderr_has("warning: not passing LD_PRELOAD to the workload")
        .stderr_has("warning: not passing BASH_ENV to the workload")
        .stderr_lacks("not passing LD_LIBRARY_PATH");
    assert!(!fx.marker("bash-env").exists());
}

#[test]
fn workload_keeps_the_launcher_pid_and_exit_code() {
    let fx = Fixture::new();
    let sha = fx.commit(&[Item::File("entrypoint.sh", "echo \"PID=$$\"\nexit 7\n")]);
    let config = fx.line_config(&sha, "");
    let mut launcher = fx.launcher();
    launcher.arg(config.to_str().unwrap());
    let child = launcher
        .command()
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(7));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("PID={pid}\n")
    );
}

#[test]
fn non_git_non_empty_work_dir_is_refused() {
    let fx = Fixture::new();
    let sha = fx.commit(&[Item::File("entrypoint.sh", &entry("v1"))]);
    fs::create_dir_all(fx.work_dir()).unwrap();
    fs::write(fx.work_dir().join("precious.txt"), "keep me").unwrap();
    let config = fx.line_config(&sha, "");
    fx.launcher()
        .arg(config.to_str().unwrap())
        .run()
        .fails(1, "is not empty and is not a git checkout");
    assert_eq!(
        fs::read_to_string(fx.work_dir().join("precious.txt")).unwrap(),
        "keep me"
    );
}

#[test]
fn empty_work_dir_is_used() {
    let fx = Fixture::new();
    let sha = fx.commit(&[Item::File("entrypoint.sh", &entry("v1"))]);
    fs::create_dir_all(fx.work_dir()).unwrap();
    let config = fx.line_config(&sha, "");
    fx.launcher()
        .arg(config.to_str().unwrap())
        .run()
        .success()
        .stdout_has("RAN v1");
}

#[test]
fn checkout_with_another_origin_is_refused() {
    let fx = Fixture::new();
    let sha = fx.commit(&[Item::File("entrypoint.sh", &entry("v1"))]);
    let config = fx.line_config(&sha, "");
    fx.launcher().arg(config.to_str().unwrap()).run().success();
    let other = Fixture::new();
    let text = format!(
        "REPO_URL={}\nCOMMIT_SHA={sha}\nWORK_DIR={}\n",
        other.url(),
        fx.work_dir().display()
    );
    let config = fx.write("other.conf", &text);
    fx.launcher()
        .arg(config.to_str().unwrap())
        .run()
        .fails(1, "has origin")
        .stderr_has("refusing to reuse it");
}

#[test]
fn unknown_commit_fails_after_fetch() {
    let fx = Fixture::new();
    fx.commit(&[Item::File("entrypoint.sh", &entry("v1"))]);
    let config = fx.line_config(&"0".repeat(40), "");
    fx.launcher()
        .arg(config.to_str().unwrap())
        .run()
        .fails(1, "");
    assert!(!events_named(&fx).contains(&"trusted-launcher.ready".to_owned()));
}

#[test]
fn toml_config_runs_the_same_workload() {
    let fx = Fixture::new();
    let sha = fx.commit(&[Item::File("bin/go.sh", &entry("toml"))]);
    let text = format!(
        "[git]\nrepo = \"{}\"\ncommit = \"{sha}\"\nwork_dir = \"{}\"\nsubdir = \"bin\"\nentrypoint = \"go.sh\"\n\n[measurement]\nevent_log = \"{}\"\n",
        fx.url(),
        fx.work_dir().display(),
        fx.path().join("from-config.jsonl").display()
    );
    let config = fx.write("launcher.toml", &text);
    common::Launcher::new(fx.path())
        .args(["--platform", "nontee", config.to_str().unwrap()])
        .run()
        .success()
        .stdout_has("RAN toml");
    let log = fs::read_to_string(fx.path().join("from-config.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 3);
}

#[test]
fn approved_list_selects_newest_or_listed_override() {
    let fx = Fixture::new();
    let pinned = fx.commit_on("a", &[Item::File("entrypoint.sh", &entry("pinned"))]);
    let older = fx.commit_on("b", &[Item::File("entrypoint.sh", &entry("older"))]);
    let newest = fx.commit_on("c", &[Item::File("entrypoint.sh", &entry("newest"))]);
    let list = fx.write(
        "approved.json",
        &format!(r#"{{"approved_commits":["{newest}","{older}"]}}"#),
    );
    let config = fx.line_config(&pinned, &format!("APPROVED_LIST={}\n", list.display()));
    fx.launcher()
        .arg(config.to_str().unwrap())
        .run()
        .success()
        .stdout_has("RAN newest")
        .stderr_has("newest entry of the approved list");
    assert_eq!(
        fx.events()[1]["event_payload"],
        common::hex(format!("git:{newest}").as_bytes())
    );

    let config = fx.line_config(
        &pinned,
        &format!(
            "APPROVED_LIST={}\nOVERRIDE_COMMIT={older}\n",
            list.display()
        ),
    );
    fx.launcher()
        .arg(config.to_str().unwrap())
        .run()
        .success()
        .stdout_has("RAN older");

    let config = fx.line_config(
        &pinned,
        &format!(
            "APPROVED_LIST={}\nOVERRIDE_COMMIT={pinned}\n",
            list.display()
        ),
    );
    let before = fx.events().len();
    fx.launcher()
        .arg(config.to_str().unwrap())
        .run()
        .fails(1, &format!("override {pinned} is not approved"));
    assert_eq!(fx.events().len(), before, "nothing measured on refusal");
}

#[test]
fn missing_approved_list_falls_back_to_pinned_and_malformed_fails() {
    let fx = Fixture::new();
    let pinned = fx.commit(&[Item::File("entrypoint.sh", &entry("pinned"))]);
    let list = fx.path().join("approved.json");
    let config = fx.line_config(&pinned, &format!("APPROVED_LIST={}\n", list.display()));
    fx.launcher()
        .arg(config.to_str().unwrap())
        .run()
        .success()
        .stdout_has("RAN pinned")
        .stderr_has("does not exist; using the pinned commit");
    for bad in [
        "{",
        r#"{"approved_commits":[]}"#,
        r#"{"approved_commits":["main"]}"#,
    ] {
        fs::write(&list, bad).unwrap();
        let before = fx.events().len();
        fx.launcher()
            .arg(config.to_str().unwrap())
            .run()
            .fails(1, "approved list");
        assert_eq!(fx.events().len(), before);
    }
}

#[test]
fn line_format_quotes_comments_and_indentation() {
    let fx = Fixture::new();
    let sha = fx.commit(&[Item::File("my app/run me.sh", &entry("quoted"))]);
    let text = format!(
        "# launcher config\n\n  REPO_URL=\"{}\"\n\tCOMMIT_SHA='{sha}'\nWORK_DIR={}\nREPO_SUBDIR=\"my app\"\nENTRYPOINT_SCRIPT='run me.sh'\n   # indented comment\n",
        fx.url(),
        fx.work_dir().display()
    );
    let config = fx.write("quoted.conf", &text);
    fx.launcher()
        .arg(config.to_str().unwrap())
        .run()
        .success()
        .stdout_has("RAN quoted in ")
        .stdout_has("/my app");
}
