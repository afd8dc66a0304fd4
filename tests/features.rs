//! The `verify` cargo feature (issue 16): the default build has the `verify` subcommand; the
//! launcher image's build (`--no-default-features`) has none: `verify` (with any arguments,
//! `--help` too) is refused in one line naming the verifier build (exit 2, nothing measured),
//! and it still runs and plans launches.
//! `cargo test` covers the default build; `.ci/run` runs this file with
//! `--no-default-features` too.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::{Fixture, Item, entry};

/// The subcommand list in `--help` (clap's "Commands:" section).
fn commands(help: &str) -> Vec<String> {
    help.split("Commands:")
        .nth(1)
        .expect("--help lists commands")
        .lines()
        .skip(1)
        .take_while(|line| line.starts_with("  "))
        .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
        .collect()
}

#[cfg(feature = "verify")]
#[test]
fn default_build_has_verify() {
    let fx = Fixture::new();
    let help = fx.launcher().arg("--help").run();
    help.success();
    assert_eq!(commands(&help.stdout), ["run", "verify", "plan", "help"]);
    fx.launcher()
        .args(["verify", "--help"])
        .run()
        .success()
        .stdout_has("--expect-image");
}

#[cfg(not(feature = "verify"))]
#[test]
fn launcher_build_has_no_verify() {
    let fx = Fixture::new();
    let help = fx.launcher().arg("--help").run();
    help.success();
    assert_eq!(commands(&help.stdout), ["run", "plan", "help"]);
    let quote = fx.write("quote.hex", "00");
    let run = fx
        .launcher()
        .args(["verify", quote.to_str().unwrap(), "--skip-dcap"])
        .run();
    run.fails(2, "verify is not in this build");
    assert!(fx.events().is_empty(), "nothing is measured");
    for args in [&["verify", "--help"][..], &["verify"], &["help", "verify"]] {
        let run = fx.launcher().args(args.iter().copied()).run();
        assert_eq!(run.status, Some(2), "{args:?}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "{args:?}: {}", run.stdout);
    }
}

/// Both builds plan and run a launch the same way.
#[test]
fn both_builds_plan_and_run() {
    let fx = Fixture::new();
    let sha = fx.commit(&[Item::File("entrypoint.sh", &entry("features"))]);
    let config = fx.line_config(&sha, "");
    let config = config.to_str().unwrap();
    fx.launcher()
        .args(["plan", config])
        .run()
        .success()
        .stdout_has(&sha);
    assert!(fx.events().is_empty(), "plan measures nothing");
    fx.launcher()
        .arg(config)
        .run()
        .success()
        .stdout_has("RAN features");
    assert_eq!(fx.events().len(), 3, "config, workload and ready");
}
