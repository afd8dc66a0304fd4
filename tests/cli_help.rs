//! CLI hygiene (issue 13) and issue 16's typed parsers: each command's help lists only its own
//! options; argument errors are one line in the launcher's log form (text or JSON), exit 2;
//! `help --help` exits 0; `--version` names the source commit of a git build.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::path::Path;
use std::process::Command;

#[cfg(feature = "verify")]
use common::verdict::fixture_str;
use common::verdict::one_line_usage_error;
use common::{Fixture, Launcher};

#[cfg(feature = "verify")]
const LAUNCH_OPTIONS: &[&str] = &[
    "--platform",
    "--measurement-backend",
    "--dstack-socket",
    "--rtmr3-path",
    "--dstack-runtime-dir",
    "--docker",
    "--docker-config",
    "--compose-file",
    "--near-shared-dir",
    "--format",
];

fn help(args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let run = Launcher::new(dir.path()).args(args.iter().copied()).run();
    assert_eq!(run.status, Some(0), "{args:?}: {}", run.stderr);
    run.stdout
}

/// The lines of `help` describing `flag` (clap puts a long description on the next line).
#[cfg(feature = "verify")]
fn option_line(help: &str, flag: &str) -> Option<String> {
    let lines: Vec<&str> = help.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.split_whitespace().next() == Some(flag))?;
    Some(format!(
        "{} {}",
        lines[at],
        lines.get(at + 1).unwrap_or(&"")
    ))
}

/// `verify --help` (and `help verify`) lists no launch option and describes `--event-log` as
/// the log it reads; before, every global option (`--platform`, `--docker`, ...) was listed
/// and `--event-log` said "Where the local event log is written".
#[cfg(feature = "verify")]
#[test]
fn each_command_lists_only_its_own_options() {
    for verify in [help(&["verify", "--help"]), help(&["help", "verify"])] {
        for flag in LAUNCH_OPTIONS {
            assert!(
                option_line(&verify, flag).is_none(),
                "verify --help lists {flag}"
            );
        }
        let event_log = option_line(&verify, "--event-log").unwrap();
        assert!(
            event_log.contains("The event log to check (read, never written)"),
            "{event_log}"
        );
        assert!(!verify.contains("is written"), "{verify}");
        assert!(option_line(&verify, "--plan").is_some());
        assert!(verify.contains("Usage: trusted-launcher verify"));
    }
    for command in ["run", "plan"] {
        let text = help(&[command, "--help"]);
        for flag in LAUNCH_OPTIONS {
            assert!(
                option_line(&text, flag).is_some(),
                "{command} --help lacks {flag}"
            );
        }
        assert!(
            option_line(&text, "--event-log")
                .unwrap()
                .contains("is written")
        );
        assert!(option_line(&text, "--expect-commit").is_none());
    }
    assert!(option_line(&help(&["plan", "--help"]), "--json").is_some());
    assert!(option_line(&help(&["run", "--help"]), "--json").is_none());
}

/// `help --help` was a usage error (exit 2); it prints the help command's help.
#[test]
fn help_of_help_exits_zero() {
    let text = help(&["help", "--help"]);
    assert!(text.contains("Usage: trusted-launcher help"), "{text}");
    assert!(help(&["help"]).contains("Usage: trusted-launcher"));
    let dir = tempfile::tempdir().unwrap();
    let run = Launcher::new(dir.path()).args(["help", "nosuch"]).run();
    one_line_usage_error(&run, "help: no command \"nosuch\"");
}

/// clap's own rendering of an argument error is several lines (error, tip, usage, "For more
/// information"); the launcher prints one line in its log form, text or JSON, exit 2.
#[cfg(feature = "verify")]
#[test]
fn argument_errors_are_one_line_in_the_log_form() {
    // clap's default, as the launcher used to print it.
    let naive = clap::Command::new("trusted-launcher")
        .arg(clap::Arg::new("input"))
        .try_get_matches_from(["trusted-launcher", "--bogus"])
        .unwrap_err()
        .to_string();
    assert!(
        naive.lines().filter(|l| !l.trim().is_empty()).count() > 1,
        "{naive}"
    );

    let dir = tempfile::tempdir().unwrap();
    let quote = fixture_str("dcap-qvl_sample_tdx_quote");
    let cases: [(&[&str], &str); 6] = [
        (
            &["verify", &quote, "--bogus"],
            "unexpected argument '--bogus' found",
        ),
        (
            &["verify", &quote, "--expect-commit", "main"],
            "invalid value 'main' for '--expect-commit <HEX>': must be 40 or 64 lowercase hex digits",
        ),
        (
            &["verify", &quote, "--expect-image", "latest"],
            "invalid value 'latest' for '--expect-image <sha256:HEX>': must be sha256:<64 lowercase hex>",
        ),
        (
            &["verify", &quote, "--expect-config-sha256", "12"],
            "invalid value '12' for '--expect-config-sha256 <HEX>': must be 64 lowercase hex digits",
        ),
        (
            &["verify", &quote, "--allow-tcb-status", "Fine"],
            "invalid value 'Fine' for '--allow-tcb-status <STATUS>'",
        ),
        (
            &["--platform", "nontee", "verify", &quote],
            "--platform is an option of run and plan, not of verify",
        ),
    ];
    for (args, needle) in cases {
        let run = Launcher::new(dir.path()).args(args.iter().copied()).run();
        one_line_usage_error(&run, needle);
        let run = Launcher::new(dir.path())
            .args(["--log-format", "json"])
            .args(args.iter().copied())
            .run();
        assert_eq!(run.status, Some(2));
        let lines: Vec<&str> = run.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{}", run.stderr);
        let line: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(line["level"], "error");
        assert!(line["message"].as_str().unwrap().contains(needle), "{line}");
    }
    // The bare form with a command after CONFIG is refused, not guessed.
    let run = Launcher::new(dir.path()).args(["c.conf", "plan"]).run();
    assert_eq!(run.status, Some(2), "{}", run.stderr);
}

/// `--version` of a build from a git checkout ends with the checkout's HEAD commit.
#[test]
fn version_names_the_source_commit() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let version = help(&["--version"]);
    let package = env!("CARGO_PKG_VERSION");
    if !root.join(".git").exists() {
        assert_eq!(version.trim(), format!("trusted-launcher {package}"));
        return;
    }
    let head = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(root)
        .output()
        .unwrap();
    let head = String::from_utf8(head.stdout).unwrap();
    assert_eq!(
        version.trim(),
        format!("trusted-launcher {package} (commit {})", head.trim())
    );
}

/// The bare form and options before the command still parse as before (git-launcher's
/// `trusted-launcher [OPTIONS] CONFIG`), with no hand-kept option list.
#[test]
fn the_bare_form_and_leading_options_still_run() {
    let fx = Fixture::new();
    let sha = fx.commit(&[common::Item::File("entrypoint.sh", &common::entry("bare"))]);
    let config = fx.line_config(&sha, "");
    let config = config.to_str().unwrap();
    fx.launcher()
        .arg(config)
        .run()
        .success()
        .stdout_has("RAN bare");
    fx.launcher()
        .args(["run", config])
        .run()
        .success()
        .stdout_has("RAN bare");
    fx.launcher()
        .args(["--", config])
        .run()
        .success()
        .stdout_has("RAN bare");
    let log = fx.event_log();
    Launcher::new(fx.path())
        .args([
            "run",
            "--platform",
            "nontee",
            "--event-log",
            log.to_str().unwrap(),
            config,
        ])
        .run()
        .success()
        .stdout_has("RAN bare");
    Launcher::new(fx.path())
        .args(["--platform", "nontee", "plan", "--format", "line", config])
        .run()
        .success()
        .stdout_has(&sha);
}
